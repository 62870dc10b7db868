//! The event envelope every source produces and every projection receives
//! (defined with the other decoded formats in `projector-formats`).

pub use projector_formats::event::{Event, NewRecord, Offsets};
