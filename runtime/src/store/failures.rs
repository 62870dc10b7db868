//! Events the module failed on and the error policy did not halt for:
//! skipped, dead-lettered or parked under a quarantined key. Each is kept
//! whole (the source may not keep it) in the projection's own state file,
//! written in the same transaction as the offsets that pass over it, so no
//! policy ever loses an event without a record.

use serde::{Deserialize, Serialize};

use crate::event::Event;

/// What the error policy did with a failed event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// `skip`: passed over; kept for the record, never retried.
    Skipped,
    /// `dead-letter`: kept until `dead-letters retry` applies it.
    DeadLetter,
    /// `quarantine-key`: its key is parked; retried in order by a fixed
    /// version or `dead-letters retry`.
    Parked,
}

impl FailureKind {
    pub const ALL: [FailureKind; 3] = [
        FailureKind::Skipped,
        FailureKind::DeadLetter,
        FailureKind::Parked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Skipped => "skipped",
            FailureKind::DeadLetter => "dead_letter",
            FailureKind::Parked => "parked",
        }
    }

    /// The meta counter of records of this kind currently kept.
    pub(super) fn counter(self) -> &'static str {
        match self {
            FailureKind::Skipped => "failed.skipped",
            FailureKind::DeadLetter => "failed.dead_letter",
            FailureKind::Parked => "failed.parked",
        }
    }
}

impl std::str::FromStr for FailureKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FailureKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s || k.as_str().replace('_', "-") == s)
            .ok_or_else(|| format!("unknown kind {s:?}; use skipped, dead_letter or parked"))
    }
}

/// One failed event, with why and under which module version it failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedEvent {
    /// Ascending in the order failures happened; retries go in this order.
    pub id: u64,
    pub kind: FailureKind,
    pub source: String,
    pub partition: u32,
    pub offset: u64,
    #[serde(with = "serde_bytes")]
    pub key: Option<Vec<u8>>,
    #[serde(with = "serde_bytes")]
    pub payload: Option<Vec<u8>>,
    pub timestamp_ms: i64,
    pub headers: Vec<(String, serde_bytes::ByteBuf)>,
    pub error: String,
    /// Content hash of the module version that failed on it.
    pub module_hash: String,
    /// The module's own version label.
    pub module_version: String,
    /// Seconds since the Unix epoch of the last failure.
    pub failed_at: u64,
    /// How many times the event has failed (1 + failed retries).
    pub attempts: u32,
    /// Why an operator passed over the event (`projector resume --skip
    /// --reason`); `None` when the error policy recorded it. Records
    /// written before this field existed read as `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl FailedEvent {
    pub fn event(&self) -> Event {
        Event {
            source: self.source.clone(),
            partition: self.partition,
            offset: self.offset,
            key: self.key.clone(),
            payload: self.payload.clone(),
            timestamp_ms: self.timestamp_ms,
            headers: self
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.to_vec()))
                .collect(),
        }
    }

    pub(super) fn encode(&self) -> Vec<u8> {
        // Plain data with named fields: encoding cannot fail.
        rmp_serde::to_vec_named(self).unwrap_or_default()
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<Self, String> {
        rmp_serde::from_slice(bytes).map_err(|e| format!("undecodable failed-event record: {e}"))
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_with_binary_keys_and_tombstones() {
        let record = FailedEvent {
            id: 3,
            kind: FailureKind::Parked,
            source: "orders".into(),
            partition: 1,
            offset: 42,
            key: Some(vec![0xff, 0, 1]),
            payload: None,
            timestamp_ms: -5,
            headers: vec![("h".into(), serde_bytes::ByteBuf::from(vec![9]))],
            error: "boom".into(),
            module_hash: "abc".into(),
            module_version: "1.0".into(),
            failed_at: 7,
            attempts: 1,
            reason: Some("operator".into()),
        };
        assert_eq!(FailedEvent::decode(&record.encode()).unwrap(), record);
        assert_eq!(record.event().headers, vec![("h".to_owned(), vec![9])]);
        assert_eq!(
            "dead-letter".parse::<FailureKind>(),
            Ok(FailureKind::DeadLetter)
        );
        assert!("nope".parse::<FailureKind>().is_err());
    }
}
