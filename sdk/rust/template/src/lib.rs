//! `{{name}}`: counts the events of the `events` topic by their JSON `type`.
//!
//! State: `count/<type>` -> `{"count": N}`.
//! Query `count` with `{"type": str}`: that object, or `null` for a type
//! never seen.

use projector_sdk::{Error, Event, Projection, QueryError, export_projection, query, state};
use serde::{Deserialize, Serialize};

pub struct Counter;

export_projection!(Counter);

impl Projection for Counter {
    const NAME: &'static str = "{{name}}";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SOURCES: &'static [&'static str] = &["events"];
    /// Bump when the state layout changes: the host then rebuilds the state
    /// by replaying the events.
    const STATE_VERSION: u32 = 1;
    const QUERIES: &'static [&'static str] = &["count"];

    fn handle(event: &Event) -> Result<(), Error> {
        let Typed { kind } = event.payload_json()?;
        let key = format!("count/{kind}");
        let mut count: Count = state::get_json(&key)?.unwrap_or_default();
        count.count += 1;
        state::put_json(&key, &count)
    }

    fn query(name: &str, args: &[u8]) -> Result<Vec<u8>, QueryError> {
        match name {
            "count" => {
                let Typed { kind } = query::args_json(args)?;
                let count: Option<Count> = state::get_json(&format!("count/{kind}"))
                    .map_err(|e| QueryError::Failed(e.to_string()))?;
                query::reply_json(&count)
            }
            _ => Err(QueryError::UnknownQuery),
        }
    }
}

/// An event (or query arguments): only `type` is read, other fields are
/// ignored.
#[derive(Deserialize)]
struct Typed {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Serialize, Deserialize, Default)]
struct Count {
    count: u64,
}

#[cfg(test)]
mod tests {
    use projector_sdk::testing;
    use serde_json::{Value, json};

    use super::*;

    fn events(lines: &[&str]) -> Vec<Event> {
        (0u64..)
            .zip(lines)
            .map(|(offset, line)| testing::event("events", offset, *line))
            .collect()
    }

    #[test]
    fn sample_events_fold_to_the_expected_state() {
        testing::reset();
        let sample: Vec<&str> = include_str!("../events.jsonl")
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        testing::handle::<Counter>(&events(&sample)).unwrap();
        let expected: Value = serde_json::from_str(include_str!("../expected.json")).unwrap();
        assert_eq!(testing::state_json(), expected);
    }

    #[test]
    fn query_answers_a_count_or_null() {
        testing::reset();
        testing::handle::<Counter>(&events(&[r#"{"type":"a"}"#, r#"{"type":"a"}"#])).unwrap();
        let ask = |args: Value| -> Value {
            let answer = testing::query::<Counter>("count", args.to_string().as_bytes()).unwrap();
            serde_json::from_slice(&answer).unwrap()
        };
        assert_eq!(ask(json!({"type": "a"})), json!({"count": 2}));
        assert_eq!(ask(json!({"type": "b"})), Value::Null);
    }

    #[test]
    fn an_event_without_a_type_fails_and_changes_nothing() {
        testing::reset();
        let failed = testing::handle::<Counter>(&events(&[r#"{"type":"a"}"#, r#"{"kind":"a"}"#]));
        assert_eq!(failed.unwrap_err().index, 1);
        assert_eq!(testing::state_json(), json!({}));
    }
}
