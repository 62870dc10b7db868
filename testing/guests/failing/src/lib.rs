//! Test guest for error policies: counts the events it sees under the key
//! `count` (a JSON integer) and fails every event whose payload is a JSON
//! object with `"poison": true`, with the message `refusing event <order_id>`.

use projector_sdk::{Error, Event, Projection, export_projection, state};
use serde_json::Value;

pub struct Failing;

export_projection!(Failing);

impl Projection for Failing {
    const NAME: &'static str = "failing";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SOURCES: &'static [&'static str] = &["orders"];
    const STATE_VERSION: u32 = 1;

    fn handle(event: &Event) -> Result<(), Error> {
        // Payloads that are not JSON are counted too: only the poison marker
        // makes an event fail.
        if let Ok(payload) = event.payload_json::<Value>()
            && payload["poison"] == Value::Bool(true)
        {
            let order_id = match &payload["order_id"] {
                Value::String(id) => id.clone(),
                other => other.to_string(),
            };
            return Err(format!("refusing event {order_id}").into());
        }
        let count = state::get_json::<u64>("count")?.unwrap_or(0);
        state::put_json("count", &(count + 1))
    }
}

#[cfg(test)]
mod tests {
    use projector_sdk::testing;

    use super::*;

    #[test]
    fn counts_events_and_refuses_poison() {
        testing::reset();
        let ok = testing::event("orders", 0, r#"{"order_id": "o-1"}"#);
        let not_json = testing::event("orders", 1, "not json");
        let poison = testing::event("orders", 2, r#"{"order_id": "o-3", "poison": true}"#);
        testing::handle::<Failing>(&[ok.clone(), not_json]).unwrap();
        assert_eq!(testing::state_json(), serde_json::json!({"count": 2}));

        let error = testing::handle::<Failing>(&[ok, poison]).unwrap_err();
        assert_eq!(error.index, 1);
        assert_eq!(error.message, "refusing event o-3");
        assert_eq!(testing::state_json(), serde_json::json!({"count": 2}));
    }
}
