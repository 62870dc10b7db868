//! Events the module failed on and the error policy did not halt for:
//! skipped, dead-lettered or parked under a quarantined key. Each is kept
//! whole (the source may not keep it) in the projection's own state file,
//! written in the same transaction as the offsets that pass over it, so no
//! policy ever loses an event without a record. The record itself is
//! defined with the other decoded formats in `projector-formats`.

use serde::Serialize;

pub use projector_formats::failure::{FailedEvent, FailureKind};

/// Failure records a commit adds, rewrites or removes, together with the
/// state and offsets.
#[derive(Debug, Default, Clone)]
pub struct FailureChanges {
    /// Inserted or replaced by id.
    pub upsert: Vec<FailedEvent>,
    /// Ids whose events have now been applied.
    pub resolved: Vec<u64>,
}

impl FailureChanges {
    pub fn is_empty(&self) -> bool {
        self.upsert.is_empty() && self.resolved.is_empty()
    }
}

/// How many failure records of each kind a state file keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FailureCounts {
    pub skipped: u64,
    pub dead_letters: u64,
    pub parked: u64,
}

impl FailureCounts {
    pub(super) fn get_mut(&mut self, kind: FailureKind) -> &mut u64 {
        match kind {
            FailureKind::Skipped => &mut self.skipped,
            FailureKind::DeadLetter => &mut self.dead_letters,
            FailureKind::Parked => &mut self.parked,
        }
    }
}
