//! Test guest for sources: reads topics `t1`, `t2` and `t3` (map them to
//! real topics with a sidecar) and records every event under
//! `event/<topic>/<partition>/<offset, 20 digits>` as
//! `{"key": hex|null, "payload": text|null, "headers": [[name, hex]], "timestamp_ms": int}`.
//!
//! It keeps the last offset per partition under `last/<topic>/<partition>`
//! and fails any event at or before it: a duplicate delivery or a broken
//! partition order halts the projection instead of going unnoticed.

use projector_sdk::{Error, Event, Projection, export_projection, state};
use serde::Serialize;

pub struct Recorder;

export_projection!(Recorder);

#[derive(Serialize)]
struct Recorded {
    key: Option<String>,
    payload: Option<String>,
    headers: Vec<(String, String)>,
    timestamp_ms: i64,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Projection for Recorder {
    const NAME: &'static str = "recorder";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SOURCES: &'static [&'static str] = &["t1", "t2", "t3"];
    const STATE_VERSION: u32 = 1;

    fn handle(event: &Event) -> Result<(), Error> {
        let last_key = format!("last/{}/{}", event.source, event.partition);
        if let Some(last) = state::get_json::<u64>(&last_key)?
            && event.offset <= last
        {
            return Err(format!(
                "{}/{} offset {} arrived after offset {last}: duplicate or out of order",
                event.source, event.partition, event.offset
            )
            .into());
        }
        state::put_json(&last_key, &event.offset)?;
        let recorded = Recorded {
            key: event.key.as_deref().map(hex),
            payload: event
                .payload
                .as_deref()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
            headers: event
                .headers
                .iter()
                .map(|(name, value)| (name.clone(), hex(value)))
                .collect(),
            timestamp_ms: event.timestamp_ms,
        };
        state::put_json(
            &format!(
                "event/{}/{}/{:020}",
                event.source, event.partition, event.offset
            ),
            &recorded,
        )
    }
}

#[cfg(test)]
mod tests {
    use projector_sdk::testing;

    use super::*;

    #[test]
    fn records_events_and_refuses_duplicates() {
        testing::reset();
        let first = testing::event("t1", 4, r#"{"n": 1}"#);
        testing::handle::<Recorder>(std::slice::from_ref(&first)).unwrap();
        let state = testing::state_json();
        assert_eq!(state["last/t1/0"], 4);
        assert_eq!(
            state["event/t1/0/00000000000000000004"]["payload"],
            r#"{"n": 1}"#
        );
        let error = testing::handle::<Recorder>(&[first]).unwrap_err();
        assert!(error.message.contains("duplicate"), "{}", error.message);
    }
}
