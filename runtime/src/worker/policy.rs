//! What a worker does with an event its module fails on, and the
//! bookkeeping of the failures it keeps: parked keys, record ids, retries.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::projection::unix_now;
use crate::store::{FailedEvent, FailureKind, StateReader, StoreError};
use crate::wasm::bindings;

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

/// The failure records a worker knows of: the keys under quarantine and
/// the next record id.
#[derive(Debug, Default)]
pub(super) struct FailureBook {
    pub(super) parked_keys: HashSet<Vec<u8>>,
    /// Whether some parked event failed under another module version.
    pub(super) parked_by_other_version: bool,
    next_id: u64,
}

/// Records read per page when loading or retrying failures.
pub(super) const PAGE: usize = 1000;

impl FailureBook {
    pub(super) fn load(reader: &StateReader, hash: &str) -> Result<Self, StoreError> {
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
                    book.parked_keys.insert(key.clone());
                }
            }
        }
        Ok(book)
    }

    pub(super) fn is_parked(&self, event: &bindings::Event) -> bool {
        event
            .key
            .as_ref()
            .is_some_and(|key| self.parked_keys.contains(key))
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
            self.parked_keys.insert(key.clone());
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
        }
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
