//! Where events come from. Every source yields the same [`Event`] envelope
//! and leaves positions to the consumer: a projection's own state file holds
//! the offsets it has reached, and each projection version opens its own
//! [`Subscription`] at those offsets.

pub mod embedded;
pub mod kafka;
mod signal;

use std::time::Duration;

use serde::Serialize;

pub use embedded::{AppendReceipt, EmbeddedLog, LogError, PartitionRange};
pub use kafka::{KafkaConfig, KafkaSource};
pub use signal::ChangeSignal;

use crate::event::{Event, Offsets};

/// A topic a projection reads: the name its module uses, and the real topic
/// in the source (the same unless the projection's sidecar maps it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicBinding {
    pub logical: String,
    pub physical: String,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("kafka: {0}")]
    Kafka(String),
}

/// How a subscription's source is doing, for status and metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default, utoipa::ToSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SourceHealth {
    #[default]
    Ok,
    /// The source cannot be reached; the subscription retries with backoff.
    Unavailable {
        /// Seconds since the Unix epoch.
        since: u64,
        error: String,
    },
    /// Some subscribed topics do not exist (yet); they are picked up when
    /// they appear.
    WaitingForTopics { topics: Vec<String> },
}

/// What status shows about a projection's source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default, utoipa::ToSchema)]
pub struct SourceStatus {
    pub kind: &'static str,
    pub health: SourceHealth,
    /// Lasting conditions worth an operator's attention, e.g. history that
    /// retention already deleted.
    pub warnings: Vec<String>,
    /// Partitions (real topic, partition) held because their log ends
    /// below the position the projection reached (a topic deleted and
    /// re-created): a rebuild from what the log holds cannot reach that
    /// position, so its swap waits for the log's end there instead.
    #[serde(skip)]
    pub held_behind: Vec<(String, u32)>,
}

/// Which partitions of its topics a subscription reads: all of them, or
/// one unit of a partitioned projection (partition `p` of every topic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum Partitions {
    #[default]
    All,
    Only(u32),
}

impl Partitions {
    /// The one partition of a unit.
    pub fn only(self) -> Option<u32> {
        match self {
            Partitions::All => None,
            Partitions::Only(only) => Some(only),
        }
    }

    pub fn includes(self, partition: u32) -> bool {
        match self {
            Partitions::All => true,
            Partitions::Only(only) => only == partition,
        }
    }
}

/// A source of partitioned topics.
pub trait Source: Send + Sync + 'static {
    /// `"embedded"` or `"kafka"`.
    fn kind(&self) -> &'static str;

    /// Opens a reader of `partitions` of `topics` for `projection`,
    /// positioned at `from` (missing partitions start at their beginning).
    fn subscribe(
        &self,
        projection: &str,
        topics: &[TopicBinding],
        partitions: Partitions,
        from: &Offsets,
    ) -> Result<Box<dyn Subscription>, SourceError>;

    /// How many partitions the real topic `topic` has, or will have when
    /// its first event creates it (the embedded log's default); `None`
    /// when it does not exist and that is not known.
    fn partition_count(&self, topic: &str) -> Result<Option<u32>, SourceError>;

    /// Next offset to be written, per partition of the real topic `topic`:
    /// best effort (possibly stale, empty if unknown), for lag.
    fn heads(&self, topic: &str) -> Vec<u64>;

    /// Wakes every subscription blocked waiting for events (used on shutdown).
    fn wake_all(&self);
}

/// One projection version's reader: it keeps its own position, starting
/// where the projection's state says and moving past every event returned.
pub trait Subscription: Send {
    /// Appends up to `max` events to `out`, in order within each partition,
    /// waiting at most `wait` for the first one. On `Err` nothing is
    /// appended and the position does not move.
    fn poll_batch(
        &mut self,
        max: usize,
        wait: Duration,
        out: &mut Vec<Event>,
    ) -> Result<(), SourceError>;

    fn status(&self) -> SourceStatus;

    /// Whether everything written so far has been returned: a shadow build
    /// that is at the head may be swapped in. An empty poll alone does not
    /// prove it for a networked source.
    fn at_head(&self) -> bool;

    /// Told after `positions` were committed durably with the state, e.g. to
    /// mirror them into a Kafka consumer group for external lag tools.
    fn committed(&mut self, _positions: &Offsets) {}
}
