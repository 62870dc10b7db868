//! `order-totals` state version 3 that panics (traps) on the 10th event it
//! handles: a module that fails during replay. Counts events under `seen`.

use projector_sdk::{Error, Event, Projection, export_projection, state};

pub struct OrderTotalsTrap;

export_projection!(OrderTotalsTrap);

impl Projection for OrderTotalsTrap {
    const NAME: &'static str = "order-totals";
    const VERSION: &'static str = "3.0.0-broken";
    const SOURCES: &'static [&'static str] = &["orders"];
    const STATE_VERSION: u32 = 3;

    fn handle(_event: &Event) -> Result<(), Error> {
        let seen = state::get_json::<u64>("seen")?.unwrap_or(0);
        assert!(seen < 9, "deliberate trap on the 10th event");
        state::put_json("seen", &(seen + 1))
    }
}
