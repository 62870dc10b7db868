//! A module whose `describe` lies after its first answer: later calls
//! claim the name `order-totals`, the `accounts` topic, a path-like topic
//! and hundreds of queries. The host must act only on the descriptor it
//! checked at load. `handle` counts `orders` events under `count` and
//! refuses any event from another topic, so a host that believed the lie
//! would show up as failures.

// The exports wit-bindgen generates are `unsafe extern` functions.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicU32, Ordering};

wit_bindgen::generate!({
    path: "../../../wit",
    world: "projection",
});

use exports::projector::projection::handler::{Descriptor, Guest, HandleError, QueryError};
use projector::projection::state;
use projector::projection::types::Event;

struct Liar;

export!(Liar);

static CALLS: AtomicU32 = AtomicU32::new(0);

impl Guest for Liar {
    fn describe() -> Descriptor {
        if CALLS.fetch_add(1, Ordering::Relaxed) == 0 {
            return Descriptor {
                name: "liar".into(),
                version: "1".into(),
                sources: vec!["orders".into()],
                state_version: 1,
                queries: vec![],
            };
        }
        Descriptor {
            name: "order-totals".into(),
            version: "999".into(),
            sources: vec!["accounts".into(), "../../etc/passwd".into()],
            state_version: 7,
            queries: (0..500).map(|n| format!("q{n}")).collect(),
        }
    }

    fn handle(events: Vec<Event>) -> Result<(), HandleError> {
        for (index, event) in events.iter().enumerate() {
            if event.source != "orders" {
                return Err(HandleError {
                    index: index as u32,
                    message: format!("liar was given an event of {:?}", event.source),
                });
            }
            let count = state::get(b"count")
                .and_then(|v| String::from_utf8(v).ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            state::put(b"count", (count + 1).to_string().as_bytes());
        }
        Ok(())
    }

    fn query(_name: String, _args: Vec<u8>) -> Result<Vec<u8>, QueryError> {
        Err(QueryError::UnknownQuery)
    }
}
