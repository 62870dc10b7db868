//! The event envelope every source produces and every projection receives.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One record of a stream, the same for the embedded log and Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub source: String,
    pub partition: u32,
    pub offset: u64,
    pub key: Option<Vec<u8>>,
    /// `None` is a tombstone, distinct from an empty payload.
    pub payload: Option<Vec<u8>>,
    pub timestamp_ms: i64,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// A record to append, before the log gives it a partition and an offset.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewRecord {
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Next offset to read, per topic and partition: what a projection has reached.
///
/// Serialized as `{"topic": {"partition": next_offset}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offsets(pub BTreeMap<String, BTreeMap<u32, u64>>);

impl Offsets {
    pub fn get(&self, topic: &str, partition: u32) -> u64 {
        self.0
            .get(topic)
            .and_then(|parts| parts.get(&partition))
            .copied()
            .unwrap_or(0)
    }

    pub fn set(&mut self, topic: &str, partition: u32, next: u64) {
        // Called once per event: allocate the topic name only the first time.
        match self.0.get_mut(topic) {
            Some(parts) => {
                parts.insert(partition, next);
            }
            None => {
                self.0
                    .entry(topic.to_owned())
                    .or_default()
                    .insert(partition, next);
            }
        }
    }

    /// Every (topic, partition, next offset), in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u32, u64)> {
        self.0
            .iter()
            .flat_map(|(topic, parts)| parts.iter().map(move |(p, o)| (topic.as_str(), *p, *o)))
    }

    /// Whether every position in `target` has been reached.
    pub fn reached(&self, target: &Offsets) -> bool {
        target
            .iter()
            .all(|(topic, partition, next)| self.get(topic, partition) >= next)
    }
}

/// `{"topic": {"partition": offset}}`: per topic, per partition (as a
/// decimal string), the next offset. For the runtime's OpenAPI document;
/// here, not there, by the orphan rule.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Offsets {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};

        let partitions = ObjectBuilder::new()
            .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0))
                    .into(),
            ))))
            .property_names(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some("^[0-9]+$")),
            ));
        ObjectBuilder::new()
            .description(Some(
                "Per topic, per partition, the next offset: {\"topic\": {\"0\": 17}}",
            ))
            .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(
                partitions.into(),
            ))))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Offsets {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_default_to_zero_and_compare_per_partition() {
        let mut reached = Offsets::default();
        reached.set("orders", 0, 5);
        let mut target = Offsets::default();
        target.set("orders", 0, 5);
        assert!(reached.reached(&target));
        target.set("orders", 1, 1);
        assert!(!reached.reached(&target));
        assert_eq!(reached.get("orders", 1), 0);
    }

    #[test]
    fn set_moves_a_known_partition_and_adds_new_topics() {
        let mut offsets = Offsets::default();
        offsets.set("orders", 0, 5);
        offsets.set("orders", 0, 7);
        offsets.set("payments", 2, 1);
        assert_eq!(
            offsets.iter().collect::<Vec<_>>(),
            [("orders", 0, 7), ("payments", 2, 1)]
        );
    }
}
