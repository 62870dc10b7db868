//! Test guest for `projector test`'s determinism check: a projection with
//! the bug the check is there to catch. It counts events in a global
//! variable instead of in its state, and stores that count under `seen`
//! (a JSON integer) and the event's offset under `last`. The global lives
//! as long as the instance, so the state depends on where the host
//! happened to start a new instance (a restart, a trap, a hot swap) rather
//! than on the events alone.

use std::sync::atomic::{AtomicU64, Ordering};

use projector_sdk::{Error, Event, Projection, export_projection, state};

static SEEN: AtomicU64 = AtomicU64::new(0);

pub struct GlobalCounter;

export_projection!(GlobalCounter);

impl Projection for GlobalCounter {
    const NAME: &'static str = "global-counter";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SOURCES: &'static [&'static str] = &["orders"];
    const STATE_VERSION: u32 = 1;

    fn handle(event: &Event) -> Result<(), Error> {
        let seen = SEEN.fetch_add(1, Ordering::Relaxed) + 1;
        state::put_json("last", &event.offset)?;
        state::put_json("seen", &seen)
    }
}
