//! What a worker does with an event its module fails on, and the
//! bookkeeping of the failures it keeps: parked keys, record ids, retries.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::projection::unix_now;
use crate::store::{FailedEvent, FailureKind, StateReader, StoreError};
use crate::wasm::{RunError, bindings};

/// Per projection: `error_policy` in the config file or the sidecar.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorPolicy {
    /// Stop the projection at the failing event (after committing the
    /// events before it); the status names the event and the error.
    #[default]
    Halt,
    /// Pass over the event, logged, counted and recorded.
    Skip,
    /// Record the event for `dead-letters retry`; later events go on.
    DeadLetter,
    /// Park the event and every later event with the same key; other keys
    /// go on. A new module version retries parked events in order.
    QuarantineKey,
}

impl ErrorPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorPolicy::Halt => "halt",
            ErrorPolicy::Skip => "skip",
            ErrorPolicy::DeadLetter => "dead-letter",
            ErrorPolicy::QuarantineKey => "quarantine-key",
        }
    }
}

/// What `dead-letters retry` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RetryReport {
    /// Records run through the module again.
    pub retried: u64,
    /// Of those, applied and removed.
    pub applied: u64,
    /// Of those, failed again (kept, with the new error).
    pub failed: u64,
    /// Parked events not run because an earlier event of their key failed
    /// again (order within a key is kept).
    pub still_parked: u64,
}

/// An event an operator chose to pass over (`projector resume --skip`):
/// the event a halted projection failed on, with the reason given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SkipOrder {
    /// Module topic name, as the failed status names it.
    pub source: String,
    pub partition: u32,
    pub offset: u64,
    /// The error the event failed with.
    pub error: String,
    /// The operator's reason.
    pub reason: String,
}

impl SkipOrder {
    fn matches(&self, event: &bindings::Event) -> bool {
        self.source == event.source
            && self.partition == event.partition
            && self.offset == event.offset
    }
}

/// A parked key: quarantine is per topic, so the same key bytes on another
/// topic keep folding.
type ParkedKey = (String, Vec<u8>);

/// The failure records a worker knows of: the keys under quarantine,
/// events an operator passes over, and the next record id.
#[derive(Debug, Default)]
pub(crate) struct FailureBook {
    parked_keys: HashSet<ParkedKey>,
    /// Whether some parked event failed under another module version.
    pub(super) parked_by_other_version: bool,
    /// Events passed over without running them (`resume --skip`).
    skips: Vec<SkipOrder>,
    next_id: u64,
}

/// Records read per page when loading or retrying failures.
pub(super) const PAGE: usize = 1000;

impl FailureBook {
    /// The parked keys and next record id of the state file `reader` reads.
    pub(crate) fn load(reader: &StateReader, hash: &str) -> Result<Self, StoreError> {
        let mut book = FailureBook {
            next_id: reader.next_failure_id()?,
            ..FailureBook::default()
        };
        let mut after = None;
        loop {
            let page = reader.failures(Some(FailureKind::Parked), after, PAGE)?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for record in &page {
                book.parked_by_other_version |= record.module_hash != hash;
                if let Some(key) = &record.key {
                    book.parked_keys
                        .insert((record.source.clone(), key.clone()));
                }
            }
        }
        Ok(book)
    }

    /// Passes over `order`'s event when it comes, recording it as skipped.
    pub(crate) fn skip(&mut self, order: SkipOrder) {
        self.skips.push(order);
    }

    /// The events operators passed over in the state file `reader` reads
    /// (skipped records with a reason), to pass over again on a replay.
    pub(crate) fn load_operator_skips(&mut self, reader: &StateReader) -> Result<(), StoreError> {
        let mut after = None;
        loop {
            let page = reader.failures(Some(FailureKind::Skipped), after, PAGE)?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            self.skips.extend(page.iter().filter_map(|record| {
                record.reason.as_ref().map(|reason| SkipOrder {
                    source: record.source.clone(),
                    partition: record.partition,
                    offset: record.offset,
                    error: record.error.clone(),
                    reason: reason.clone(),
                })
            }));
        }
        Ok(())
    }

    pub(super) fn is_parked(&self, event: &bindings::Event) -> bool {
        event.key.as_ref().is_some_and(|key| {
            // No allocation on the hot path: most books are empty.
            !self.parked_keys.is_empty()
                && self
                    .parked_keys
                    .contains(&(event.source.clone(), key.clone()))
        })
    }

    /// Whether `events` must run one at a time without a batch attempt:
    /// some of them must not reach the module at all.
    pub(crate) fn holds_any(&self, events: &[bindings::Event]) -> bool {
        (!self.parked_keys.is_empty() || !self.skips.is_empty())
            && events
                .iter()
                .any(|e| self.is_parked(e) || self.skips.iter().any(|s| s.matches(e)))
    }

    /// A new record of `event` failing with `error`.
    pub(super) fn record(
        &mut self,
        kind: FailureKind,
        event: &bindings::Event,
        error: String,
        module: &crate::wasm::LoadedModule,
    ) -> FailedEvent {
        let id = self.next_id;
        self.next_id += 1;
        if kind == FailureKind::Parked
            && let Some(key) = &event.key
        {
            self.parked_keys.insert((event.source.clone(), key.clone()));
        }
        FailedEvent {
            id,
            kind,
            source: event.source.clone(),
            partition: event.partition,
            offset: event.offset,
            key: event.key.clone(),
            payload: event.payload.clone(),
            timestamp_ms: event.timestamp_ms,
            headers: event
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), serde_bytes::ByteBuf::from(v.clone())))
                .collect(),
            error,
            module_hash: module.hash.clone(),
            module_version: module.descriptor.version.clone(),
            failed_at: unix_now(),
            attempts: 1,
            reason: None,
        }
    }
}

/// What the error policy makes of an event the module failed on: `None`
/// halts, else the kind of record kept.
pub(crate) fn failure_kind(policy: ErrorPolicy, event: &bindings::Event) -> Option<FailureKind> {
    match policy {
        ErrorPolicy::Halt => None,
        ErrorPolicy::Skip => Some(FailureKind::Skipped),
        ErrorPolicy::DeadLetter => Some(FailureKind::DeadLetter),
        // A keyless event has no key to park: it is dead-lettered.
        ErrorPolicy::QuarantineKey if event.key.is_some() => Some(FailureKind::Parked),
        ErrorPolicy::QuarantineKey => Some(FailureKind::DeadLetter),
    }
}

/// How an event-by-event run ended.
#[derive(Debug)]
pub(crate) enum OneByOne {
    /// Every event was applied or recorded.
    Completed,
    /// The event at `index` failed under `halt`: the events before it are
    /// in the overlay and changes, it and the later ones are not.
    Halted { index: usize, error: String },
}

/// Runs `events` one at a time (replay is deterministic, so this finds the
/// events a failed batch failed on) and applies the error policy to each
/// failing event. Events of parked keys and events an operator skips never
/// reach the module. `run` runs one event on top of an overlay; its error
/// ends the run (storage failures, stops). The worker and as-of reads both
/// go through here, so a replay passes over exactly what the live run did.
pub(crate) fn run_one_by_one<E>(
    events: &[bindings::Event],
    policy: ErrorPolicy,
    book: &mut FailureBook,
    module: &crate::wasm::LoadedModule,
    overlay: &mut crate::store::Overlay,
    changes: &mut crate::store::FailureChanges,
    mut run: impl FnMut(
        &bindings::Event,
        crate::store::Overlay,
    ) -> Result<(Result<(), RunError>, crate::store::Overlay), E>,
) -> Result<OneByOne, E> {
    for (index, event) in events.iter().enumerate() {
        if let Some(at) = book.skips.iter().position(|s| s.matches(event)) {
            let order = book.skips.swap_remove(at);
            tracing::warn!(
                source = %event.source,
                partition = event.partition,
                offset = event.offset,
                reason = %order.reason,
                "event skipped by the operator: {}",
                order.error
            );
            let mut record = book.record(FailureKind::Skipped, event, order.error, module);
            record.reason = Some(order.reason);
            changes.upsert.push(record);
            continue;
        }
        if book.is_parked(event) {
            let record = book.record(
                FailureKind::Parked,
                event,
                "key under quarantine: an earlier event with this key failed".to_owned(),
                module,
            );
            changes.upsert.push(record);
            continue;
        }
        let (result, after) = run(event, overlay.clone())?;
        let error = match result {
            Ok(()) => {
                *overlay = after;
                continue;
            }
            Err(err) => describe_failure(err, 1),
        };
        let Some(kind) = failure_kind(policy, event) else {
            return Ok(OneByOne::Halted { index, error });
        };
        tracing::warn!(
            source = %event.source,
            partition = event.partition,
            offset = event.offset,
            policy = policy.as_str(),
            recorded_as = kind.as_str(),
            "event failed: {error}"
        );
        changes.upsert.push(book.record(kind, event, error, module));
    }
    Ok(OneByOne::Completed)
}

/// The error text recorded for an event that failed on its own.
pub(crate) fn describe_failure(err: RunError, batch_len: usize) -> String {
    match err {
        RunError::Rejected { index, message } if index as usize >= batch_len => format!(
            "{message} (the module reported the error for event index {index} of a batch of {batch_len}: a bug in the module)"
        ),
        RunError::Rejected { message, .. } => message,
        other => other.to_string(),
    }
}

/// The same record after failing again under `module`.
pub(super) fn failed_again(
    record: &FailedEvent,
    error: String,
    module: &crate::wasm::LoadedModule,
) -> FailedEvent {
    FailedEvent {
        error,
        module_hash: module.hash.clone(),
        module_version: module.descriptor.version.clone(),
        failed_at: unix_now(),
        attempts: record.attempts.saturating_add(1),
        ..record.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(source: &str, offset: u64, key: &[u8]) -> bindings::Event {
        bindings::Event {
            source: source.to_owned(),
            partition: 0,
            offset,
            key: Some(key.to_vec()),
            payload: None,
            timestamp_ms: 0,
            headers: Vec::new(),
        }
    }

    fn parked(id: u64, source: &str, key: &[u8]) -> FailedEvent {
        FailedEvent {
            id,
            kind: FailureKind::Parked,
            source: source.to_owned(),
            partition: 0,
            offset: id,
            key: Some(key.to_vec()),
            payload: None,
            timestamp_ms: 0,
            headers: Vec::new(),
            error: "refused".to_owned(),
            module_hash: "h".to_owned(),
            module_version: "1".to_owned(),
            failed_at: 0,
            attempts: 1,
            reason: None,
        }
    }

    #[test]
    fn quarantine_parks_a_key_on_its_own_topic_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::StateStore::open(&dir.path().join("s.redb")).unwrap();
        let offsets = crate::event::Offsets::default();
        store
            .commit_with_failures(
                &crate::store::Overlay::default(),
                crate::store::CommitPositions {
                    offsets: &offsets,
                    events_applied: 0,
                },
                &crate::store::FailureChanges {
                    upsert: vec![parked(0, "orders", b"k")],
                    resolved: Vec::new(),
                },
                true,
            )
            .unwrap();
        let book = FailureBook::load(&store.reader().unwrap(), "h").unwrap();
        assert!(!book.parked_by_other_version);
        // Same key bytes: parked on `orders`, folding on `returns`.
        assert!(book.is_parked(&event("orders", 5, b"k")));
        assert!(!book.is_parked(&event("returns", 5, b"k")));
        assert!(!book.is_parked(&event("orders", 5, b"other")));
        assert!(book.holds_any(&[event("returns", 1, b"k"), event("orders", 2, b"k")]));
        assert!(!book.holds_any(&[event("returns", 1, b"k")]));
    }

    #[test]
    fn an_operator_skip_holds_exactly_its_event() {
        let mut book = FailureBook::default();
        book.skip(SkipOrder {
            source: "orders".to_owned(),
            partition: 0,
            offset: 7,
            error: "refused".to_owned(),
            reason: "bad data".to_owned(),
        });
        assert!(book.holds_any(&[event("orders", 6, b"k"), event("orders", 7, b"k")]));
        assert!(!book.holds_any(&[event("orders", 8, b"k"), event("returns", 7, b"k")]));
    }

    #[test]
    fn policies_read_as_their_documented_names() {
        #[derive(Deserialize)]
        struct Doc {
            error_policy: ErrorPolicy,
        }
        for policy in [
            ErrorPolicy::Halt,
            ErrorPolicy::Skip,
            ErrorPolicy::DeadLetter,
            ErrorPolicy::QuarantineKey,
        ] {
            let doc: Doc =
                toml::from_str(&format!("error_policy = {:?}", policy.as_str())).unwrap();
            assert_eq!(doc.error_policy, policy);
        }
        assert!(toml::from_str::<Doc>("error_policy = \"ignore\"").is_err());
    }
}
