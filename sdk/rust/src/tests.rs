use serde::Deserialize;
use serde_json::json;

use crate::{Error, Event, Projection, QueryError, query, state, testing};

#[derive(Debug, Deserialize, PartialEq)]
struct Thing {
    n: u32,
}

#[test]
fn payload_json_names_the_event_and_the_problem() {
    let event = testing::event("t", 4, r#"{"n": 1}"#);
    assert_eq!(event.payload_json::<Thing>(), Ok(Thing { n: 1 }));

    let error = testing::event("t", 5, "nope")
        .payload_json::<Thing>()
        .unwrap_err();
    assert!(
        error
            .message()
            .starts_with("event t/0@5 payload is not valid JSON for "),
        "{error}"
    );
    assert!(error.message().contains("Thing"), "{error}");

    let mut tombstone = testing::event("t", 6, "");
    tombstone.payload = None;
    let error = tombstone.payload_json::<Thing>().unwrap_err();
    assert!(
        error.message().contains("t/0@6 has no payload (tombstone)"),
        "{error}"
    );
}

#[test]
fn key_and_headers() {
    let mut event = testing::event("t", 0, "");
    assert_eq!(event.key_str(), None);
    event.key = Some(b"k-1".to_vec());
    assert_eq!(event.key_str(), Some("k-1"));
    event.key = Some(vec![0xff]);
    assert_eq!(event.key_str(), None);
    event.headers = vec![("a".into(), b"1".to_vec()), ("a".into(), b"2".to_vec())];
    assert_eq!(event.header("a"), Some(b"1".as_slice()));
    assert_eq!(event.header("b"), None);
}

#[test]
fn json_state_round_trips_and_reports_bad_values() {
    testing::reset();
    assert_eq!(state::get_json::<Thing>("x"), Ok(None));
    state::put_json("x", &json!({"n": 3})).unwrap();
    assert_eq!(state::get_json::<Thing>("x"), Ok(Some(Thing { n: 3 })));
    state::put("y", "not json");
    let error = state::get_json::<Thing>("y").unwrap_err();
    assert!(
        error
            .message()
            .starts_with("state key `y` does not hold valid JSON"),
        "{error}"
    );
    state::delete("x");
    assert_eq!(state::get("x"), None);

    let mut bad_map = std::collections::BTreeMap::new();
    bad_map.insert(vec![1u8], 1);
    assert!(state::put_json("z", &bad_map).is_err());
}

#[test]
fn scan_pages_within_the_prefix() {
    testing::reset();
    for key in ["a/1", "a/2", "a/3", "b/1", "a"] {
        state::put_json(key, &key).unwrap();
    }
    let page = state::scan_json::<String>("a/", None, 2).unwrap();
    assert_eq!(
        page,
        [("a/1".into(), "a/1".into()), ("a/2".into(), "a/2".into())]
    );
    let page = state::scan_json::<String>("a/", Some("a/2"), 2).unwrap();
    assert_eq!(page, [("a/3".to_string(), "a/3".to_string())]);
    assert!(state::scan("a/", Some(b"a/3"), 2).is_empty());
    // A start before the prefix starts at the prefix.
    assert_eq!(state::scan("b/", Some(b"a"), 9).len(), 1);

    for i in 0..600 {
        state::put(format!("c/{i:04}"), "1");
    }
    let keys: Vec<String> = state::iter_json::<u8>("c/")
        .map(|entry| entry.unwrap().0)
        .collect();
    assert_eq!(keys.len(), 600);
    assert!(keys.windows(2).all(|pair| pair[0] < pair[1]));
    assert_eq!(state::iter("d/").count(), 0);
}

struct FailsOnThird;

impl Projection for FailsOnThird {
    const NAME: &'static str = "fails-on-third";
    const VERSION: &'static str = "1";
    const SOURCES: &'static [&'static str] = &["t"];
    const STATE_VERSION: u32 = 1;

    fn handle(event: &Event) -> Result<(), Error> {
        if event.offset == 2 {
            return Err("third".into());
        }
        state::put(event.offset.to_string(), "1");
        Ok(())
    }
}

#[test]
fn a_failed_batch_names_the_event_and_leaves_no_trace() {
    testing::reset();
    let events: Vec<Event> = (0..4)
        .map(|offset| testing::event("t", offset, ""))
        .collect();
    let error = testing::handle::<FailsOnThird>(&events).unwrap_err();
    assert_eq!((error.index, error.message.as_str()), (2, "third"));
    assert!(testing::state().is_empty());
    testing::handle::<FailsOnThird>(&events[..2]).unwrap();
    assert_eq!(testing::state().len(), 2);
    assert_eq!(
        testing::query::<FailsOnThird>("anything", b""),
        Err(QueryError::UnknownQuery)
    );
}

struct WritesInQuery;

impl Projection for WritesInQuery {
    const NAME: &'static str = "writes-in-query";
    const VERSION: &'static str = "1";
    const SOURCES: &'static [&'static str] = &["t"];
    const STATE_VERSION: u32 = 1;

    fn handle(_event: &Event) -> Result<(), Error> {
        Ok(())
    }

    fn query(_name: &str, _args: &[u8]) -> Result<Vec<u8>, QueryError> {
        state::put("k", "v");
        Ok(Vec::new())
    }
}

#[test]
fn state_is_read_only_in_queries() {
    testing::reset();
    let panic = std::panic::catch_unwind(|| testing::query::<WritesInQuery>("q", b""));
    assert!(panic.is_err());
    // Writable again afterwards.
    state::put("k", "v");
}

#[test]
fn query_args_and_replies() {
    #[derive(Debug, Deserialize, PartialEq, Default)]
    struct Optional {
        #[serde(default)]
        n: u32,
    }
    assert_eq!(query::args_json::<Optional>(b""), Ok(Optional { n: 0 }));
    assert_eq!(query::args_json::<Optional>(b" \n"), Ok(Optional { n: 0 }));
    assert_eq!(
        query::args_json::<Optional>(br#"{"n": 2}"#),
        Ok(Optional { n: 2 })
    );
    assert!(
        matches!(query::args_json::<Thing>(b""), Err(QueryError::BadArgs(m)) if m.contains("missing field `n`"))
    );
    assert_eq!(query::reply_json(&json!([1])), Ok(b"[1]".to_vec()));
    assert_eq!(
        QueryError::from(Error::new("disk on fire")),
        QueryError::Failed("disk on fire".into())
    );
}
