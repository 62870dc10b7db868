//! Where events come from. Every source yields the same [`Event`] envelope
//! and leaves positions to the consumer: a projection's own state file holds
//! the offsets it has reached, so sources keep no consumer state.

pub mod embedded;
mod signal;

use std::time::Duration;

pub use embedded::{AppendReceipt, EmbeddedLog, LogError, PartitionRange};
pub use signal::ChangeSignal;

use crate::event::{Event, Offsets};

/// A readable stream of partitioned topics.
pub trait Source: Send + Sync + 'static {
    /// Reads up to `max` events of `topics` starting at `positions`, appending
    /// them to `out` in per-partition order. `rotate` picks the partition to
    /// start with so that one busy partition cannot starve the others.
    fn read_batch(
        &self,
        topics: &[String],
        positions: &Offsets,
        max: usize,
        rotate: usize,
        out: &mut Vec<Event>,
    ) -> Result<(), LogError>;

    /// Next offset to be written, per partition of `topic` (empty if the
    /// topic does not exist yet).
    fn heads(&self, topic: &str) -> Result<Vec<u64>, LogError>;

    /// A counter that moves whenever new events may be readable.
    fn change_seq(&self) -> u64;

    /// Blocks until the change counter moves past `seen` or `timeout` passes.
    fn wait_for_change(&self, seen: u64, timeout: Duration) -> u64;

    /// Wakes every waiter (used on shutdown).
    fn wake_all(&self);
}
