//! Query-string parameters of the read routes (`?version=`, `?prefix=
//! &start_after=&limit=`, `?min_offsets=&wait_ms=&as_of=`), the offsets
//! specs those take, and the percent-encoded key of a key lookup: what a
//! client puts in a URL, decoded before anything else looks at it.

use serde::Deserialize;

use crate::event::Offsets;

/// Query-string parameters of key lookups and custom queries.
#[derive(Debug, Deserialize, Default)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
pub struct ReadParams {
    /// `serving` (default), `building`, or a prefix of a version's hash.
    pub version: Option<String>,
    /// Answer once the projection has reached these offsets: `orders:0=12,1=3` or JSON.
    pub min_offsets: Option<String>,
    /// How long to wait for `min_offsets`, in ms (default 5000, at most 30000).
    pub wait_ms: Option<u64>,
    /// Answer as of these past offsets (same forms as `min_offsets`).
    pub as_of: Option<String>,
}

/// Query-string parameters of a state scan.
#[derive(Debug, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
pub struct ScanParams {
    /// Only keys starting with this (default: every key).
    #[serde(default)]
    pub prefix: String,
    /// Start after this key (`next_start_after` of the previous page).
    pub start_after: Option<String>,
    /// Entries per page, 1 to 10000 (default 100).
    pub limit: Option<usize>,
    /// `serving` (default), `building`, or a prefix of a version's hash.
    pub version: Option<String>,
    /// Answer once the projection has reached these offsets: `orders:0=12,1=3` or JSON.
    pub min_offsets: Option<String>,
    /// How long to wait for `min_offsets`, in ms (default 5000, at most 30000).
    pub wait_ms: Option<u64>,
    /// Answer as of these past offsets (same forms as `min_offsets`).
    pub as_of: Option<String>,
}

/// A key that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key {raw:?} has an invalid percent-escape at byte {at}: use %XX with two hex digits")]
    BadEscape { raw: String, at: usize },
    #[error("empty key: put the percent-encoded key after /state/")]
    Empty,
}

/// Decodes a percent-encoded key strictly: `%` must be followed by two hex
/// digits. Keys are bytes, so `%FF` is allowed.
pub fn decode_key(raw: &str) -> Result<Vec<u8>, KeyError> {
    let bytes = raw.as_bytes();
    let mut key = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            // Two hex digits exactly: `from_str_radix` alone takes "+0".
            let hex = bytes
                .get(i + 1..i + 3)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(byte) => key.push(byte),
                None => {
                    return Err(KeyError::BadEscape {
                        raw: raw.to_owned(),
                        at: i,
                    });
                }
            }
            i += 3;
        } else {
            key.push(bytes[i]);
            i += 1;
        }
    }
    if key.is_empty() {
        return Err(KeyError::Empty);
    }
    Ok(key)
}

/// A malformed offsets spec.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid offsets {spec:?}: {reason}; write topic:partition=next_offset pairs separated by commas (orders:0=12,orders:1=7) or JSON ({{\"orders\":{{\"0\":12}}}}), as `projector publish` prints them"
)]
pub struct OffsetsSyntaxError {
    pub spec: String,
    pub reason: String,
}

/// Parses `orders:0=12,orders:1=7` or the JSON form `{"orders":{"0":12}}`.
/// A partition named twice keeps the larger offset.
pub fn parse_offsets(spec: &str) -> Result<Offsets, OffsetsSyntaxError> {
    let spec_trimmed = spec.trim();
    let error = |reason: String| OffsetsSyntaxError {
        spec: spec.chars().take(200).collect(),
        reason,
    };
    if spec_trimmed.starts_with('{') {
        return serde_json::from_str(spec_trimmed).map_err(|e| error(e.to_string()));
    }
    let mut offsets = Offsets::default();
    for item in spec_trimmed.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(error("an empty item".to_owned()));
        }
        let (place, next) = item
            .split_once('=')
            .ok_or_else(|| error(format!("{item:?} has no '='")))?;
        let (topic, partition) = place
            .rsplit_once(':')
            .ok_or_else(|| error(format!("{place:?} has no ':partition'")))?;
        if topic.is_empty() {
            return Err(error(format!("{item:?} names no topic")));
        }
        let partition: u32 = partition
            .parse()
            .map_err(|_| error(format!("partition {partition:?} is not a number")))?;
        let next: u64 = next
            .parse()
            .map_err(|_| error(format!("offset {next:?} is not a number")))?;
        if offsets.get(topic, partition) <= next {
            offsets.set(topic, partition, next);
        }
    }
    Ok(offsets)
}

/// The compact form [`parse_offsets`] reads: `orders:0=12,orders:1=7`.
pub fn format_offsets(offsets: &Offsets) -> String {
    offsets
        .iter()
        .map(|(topic, partition, next)| format!("{topic}:{partition}={next}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_decode_strictly_and_allow_any_byte() {
        assert_eq!(decode_key("customer%2Falice").unwrap(), b"customer/alice");
        assert_eq!(decode_key("customer/alice").unwrap(), b"customer/alice");
        assert_eq!(decode_key("%ff%00").unwrap(), vec![0xff, 0x00]);
        for bad in ["a%zz", "a%4", "a%+f", "%-1"] {
            assert!(
                matches!(decode_key(bad), Err(KeyError::BadEscape { .. })),
                "{bad}"
            );
        }
        assert_eq!(decode_key(""), Err(KeyError::Empty));
    }

    #[test]
    fn offsets_parse_in_both_forms_and_print_compactly() {
        let compact = parse_offsets("orders:0=12, orders:1=7,pay.ments-x:3=0").unwrap();
        assert_eq!(compact.get("orders", 0), 12);
        assert_eq!(compact.get("orders", 1), 7);
        assert_eq!(compact.get("pay.ments-x", 3), 0);
        assert_eq!(
            format_offsets(&compact),
            "orders:0=12,orders:1=7,pay.ments-x:3=0"
        );
        let json = parse_offsets(r#"{"orders":{"0":12,"1":7},"pay.ments-x":{"3":0}}"#).unwrap();
        assert_eq!(json, compact);
        assert_eq!(parse_offsets(&format_offsets(&compact)).unwrap(), compact);
        for bad in [
            "",
            "orders",
            "orders=1",
            "orders:x=1",
            ":0=1",
            "orders:0=-1",
            "a:0=1,",
        ] {
            let err = parse_offsets(bad).unwrap_err();
            assert!(err.to_string().contains("orders:0=12"), "{err}");
        }
    }
}
