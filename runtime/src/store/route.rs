//! Which unit of a partitioned projection holds a state key, when its
//! sidecar says how state keys embed the event key (`key_templates =
//! ["customer/{key}"]`): the unit of the partition the event key goes to
//! under Kafka's default partitioner, so a lookup asks that unit first.

use std::fmt;

/// `<prefix>{key}<suffix>`: a state key that embeds the event key.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    prefix: Vec<u8>,
    suffix: Vec<u8>,
}

const PLACEHOLDER: &str = "{key}";

impl KeyTemplate {
    /// A template with exactly one `{key}`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.split_once(PLACEHOLDER) {
            Some((prefix, suffix)) if !suffix.contains(PLACEHOLDER) => Ok(Self {
                prefix: prefix.as_bytes().to_vec(),
                suffix: suffix.as_bytes().to_vec(),
            }),
            _ => Err(format!(
                "key template {text:?} must hold {PLACEHOLDER} exactly once, e.g. \"customer/{PLACEHOLDER}\""
            )),
        }
    }

    /// The event key `state_key` embeds, if it has this template's form.
    fn event_key<'a>(&self, state_key: &'a [u8]) -> Option<&'a [u8]> {
        let rest = state_key.strip_prefix(self.prefix.as_slice())?;
        rest.strip_suffix(self.suffix.as_slice())
    }
}

impl fmt::Debug for KeyTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{PLACEHOLDER}{}",
            String::from_utf8_lossy(&self.prefix),
            String::from_utf8_lossy(&self.suffix)
        )
    }
}

/// The unit (of `units`) whose partition the event key embedded in
/// `state_key` goes to, by the first template it matches.
pub fn unit_of(templates: &[KeyTemplate], state_key: &[u8], units: usize) -> Option<usize> {
    let units = u32::try_from(units).ok().filter(|&u| u > 0)?;
    templates
        .iter()
        .find_map(|t| t.event_key(state_key))
        .map(|event_key| crate::partitioner::partition_for_key(event_key, units) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_find_the_event_key_and_its_unit() {
        let templates = [
            KeyTemplate::parse("customer/{key}").unwrap(),
            KeyTemplate::parse("c:{key}:totals").unwrap(),
        ];
        let unit = crate::partitioner::partition_for_key(b"alice", 4) as usize;
        assert_eq!(unit_of(&templates, b"customer/alice", 4), Some(unit));
        assert_eq!(unit_of(&templates, b"c:alice:totals", 4), Some(unit));
        assert_eq!(unit_of(&templates, b"order/o-1", 4), None);
        assert_eq!(unit_of(&templates, b"c:alice", 4), None);
        for bad in ["customer/", "{key}/{key}", "{kee}"] {
            assert!(KeyTemplate::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(format!("{:?}", templates[1]), "c:{key}:totals");
    }
}
