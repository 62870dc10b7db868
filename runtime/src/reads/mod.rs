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

pub use projector_formats::query::{OffsetsSyntaxError, format_offsets, parse_offsets};

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
    // One signal per state file (a partitioned projection has several).
    let mut commits = projection.watch_commits();
    loop {
        // Marked seen before reading, so a commit after the read wakes us.
        for signal in &mut commits {
            signal.borrow_and_update();
        }
        let reached = projection.reader()?.offsets()?;
        if reached.reached(target) {
            return Ok(reached);
        }
        let any_commit =
            futures_util::future::select_all(commits.iter_mut().map(|c| Box::pin(c.changed())));
        let woke = tokio::time::timeout_at(deadline.into(), any_commit).await;
        if !matches!(woke, Ok((Ok(()), _, _))) {
            let reached = projection.reader()?.offsets()?;
            if reached.reached(target) {
                return Ok(reached);
            }
            return Err(WaitError::TimedOut { reached });
        }
    }
}
