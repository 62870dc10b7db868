//! Run a projection natively, without a host, for unit tests.
//!
//! State is an in-memory map private to the current thread, so tests running
//! in parallel do not see each other's state. [`handle`] and [`query`] follow
//! the host's rules: a failed batch leaves no trace, and state is read-only
//! during a query.
//!
//! ```
//! use projector_sdk::{Error, Event, Projection, testing};
//!
//! struct Counter;
//!
//! impl Projection for Counter {
//!     const NAME: &'static str = "counter";
//!     const VERSION: &'static str = "1";
//!     const SOURCES: &'static [&'static str] = &["orders"];
//!     const STATE_VERSION: u32 = 1;
//!
//!     fn handle(_event: &Event) -> Result<(), Error> {
//!         let count = projector_sdk::state::get_json::<u64>("count")?.unwrap_or(0);
//!         projector_sdk::state::put_json("count", &(count + 1))
//!     }
//! }
//!
//! testing::reset();
//! let events = [testing::event("orders", 0, "{}"), testing::event("orders", 1, "{}")];
//! testing::handle::<Counter>(&events).unwrap();
//! assert_eq!(testing::state_json(), serde_json::json!({"count": 2}));
//! ```

use std::collections::BTreeMap;

/// Why a batch failed: the index of the failing event and its message.
pub use crate::__bindings::projector::projection::types::HandleError;
use crate::state::backend::{READ_ONLY, STATE};
use crate::{Event, Projection, QueryError};

/// An event on partition 0 with no key, no headers and timestamp 0.
pub fn event(source: &str, offset: u64, payload: impl Into<Vec<u8>>) -> Event {
    Event {
        source: source.into(),
        partition: 0,
        offset,
        key: None,
        payload: Some(payload.into()),
        timestamp_ms: 0,
        headers: Vec::new(),
    }
}

/// Apply a batch as the host does: on failure, every state change of the
/// batch is undone and the error names the failing event's index.
pub fn handle<P: Projection>(events: &[Event]) -> Result<(), HandleError> {
    let before = STATE.with_borrow(Clone::clone);
    let result = crate::__private::handle_batch::<P>(events);
    if result.is_err() {
        STATE.set(before);
    }
    result
}

/// Run a custom query with state read-only, as the host does.
pub fn query<P: Projection>(name: &str, args: &[u8]) -> Result<Vec<u8>, QueryError> {
    READ_ONLY.set(true);
    // Reset even if the query panics, so the next test on this thread can write.
    struct Writable;
    impl Drop for Writable {
        fn drop(&mut self) {
            READ_ONLY.set(false);
        }
    }
    let _writable = Writable;
    P::query(name, args)
}

/// Empty this thread's state.
pub fn reset() {
    STATE.with_borrow_mut(BTreeMap::clear);
    READ_ONLY.set(false);
}

/// A copy of this thread's state, raw.
pub fn state() -> BTreeMap<Vec<u8>, Vec<u8>> {
    STATE.with_borrow(Clone::clone)
}

/// This thread's state as one JSON object mapping each key to its value.
///
/// # Panics
///
/// If a key is not UTF-8 or a value is not JSON.
pub fn state_json() -> serde_json::Value {
    STATE.with_borrow(|state| {
        state
            .iter()
            .map(|(key, value)| {
                let key = String::from_utf8(key.clone()).expect("state key is not UTF-8");
                let value = serde_json::from_slice(value)
                    .unwrap_or_else(|error| panic!("state key `{key}` is not JSON: {error}"));
                (key, value)
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    })
}
