//! Reads at a position: read-your-writes waits (`min_offsets`), as-of reads
//! of a past position ([`history`]), and the offset specs both take.
//!
//! Offsets given by clients name real (source) topics, as appends report
//! them; a projection's state names the topics its module uses. The two
//! differ only for a projection whose sidecar maps topics, and
//! [`to_module_topics`] translates.

pub mod history;

use std::time::Instant;

use crate::event::Offsets;
use crate::projection::ProjectionRuntime;
use crate::source::TopicBinding;
use crate::store::StoreError;

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

/// A topic in client offsets that a projection does not read.
#[derive(Debug, thiserror::Error)]
#[error(
    "projection {projection:?} does not read topic {topic:?} (it reads: {reads}); give offsets of its topics only"
)]
pub struct UnreadTopic {
    pub projection: String,
    pub topic: String,
    pub reads: String,
}

/// The binding of `topic` (a real topic name, or the module's own name for it).
pub fn binding_of<'a>(topics: &'a [TopicBinding], topic: &str) -> Option<&'a TopicBinding> {
    topics
        .iter()
        .find(|b| b.physical == topic)
        .or_else(|| topics.iter().find(|b| b.logical == topic))
}

/// Client offsets (real topic names) in the projection's own topic names.
pub fn to_module_topics(
    projection: &ProjectionRuntime,
    offsets: &Offsets,
) -> Result<Offsets, UnreadTopic> {
    let mut out = Offsets::default();
    for (topic, partition, next) in offsets.iter() {
        let binding = binding_of(&projection.topics, topic).ok_or_else(|| UnreadTopic {
            projection: projection.name().to_owned(),
            topic: topic.to_owned(),
            reads: projection
                .topics
                .iter()
                .map(|b| b.physical.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
        out.set(&binding.logical, partition, next);
    }
    Ok(out)
}

/// A projection's offsets (module topic names) in real topic names.
pub fn to_source_topics(topics: &[TopicBinding], offsets: &Offsets) -> Offsets {
    let mut out = Offsets::default();
    for (topic, partition, next) in offsets.iter() {
        let physical = topics
            .iter()
            .find(|b| b.logical == topic)
            .map_or(topic, |b| b.physical.as_str());
        out.set(physical, partition, next);
    }
    out
}

/// Why a wait for offsets ended without them.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error("the projection did not reach the offsets in time")]
    TimedOut {
        /// Where it stood (module topic names).
        reached: Offsets,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Waits until `projection`'s committed offsets reach `target` (module
/// topic names) or `deadline` passes. Wakes on the state file's commit
/// signal, never by polling. Returns the offsets reached.
pub async fn wait_for(
    projection: &ProjectionRuntime,
    target: &Offsets,
    deadline: Instant,
) -> Result<Offsets, WaitError> {
    let mut commits = projection.store.watch_commits();
    loop {
        // Marked seen before reading, so a commit after the read wakes us.
        commits.borrow_and_update();
        let reached = projection.store.reader()?.offsets()?;
        if reached.reached(target) {
            return Ok(reached);
        }
        let woke = tokio::time::timeout_at(deadline.into(), commits.changed()).await;
        if !matches!(woke, Ok(Ok(()))) {
            let reached = projection.store.reader()?.offsets()?;
            if reached.reached(target) {
                return Ok(reached);
            }
            return Err(WaitError::TimedOut { reached });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
