//! The body of `POST /v1/topics/{topic}/events`: one JSON event, a JSON
//! array, NDJSON lines or NDJSON envelopes, under every `?format=`, content
//! type and key option. Input: one byte choosing the options, then the body.

#![no_main]

use libfuzzer_sys::fuzz_target;
use projector_formats::ingest::{AppendParams, BodyFormat, parse};
use serde_json::Value;

const KEY_FIELDS: [&str; 4] = ["customer", "account", "order_id", "id"];

fn is_json(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
}

fuzz_target!(|data: &[u8]| {
    let Some((&options, body)) = data.split_first() else {
        return;
    };
    let format = match options & 3 {
        0 => BodyFormat::Auto,
        1 => BodyFormat::Json,
        2 => BodyFormat::Ndjson,
        _ => BodyFormat::Envelope,
    };
    let content_type = match (options >> 2) & 3 {
        0 => None,
        1 => Some("application/json"),
        2 => Some("application/x-ndjson"),
        _ => Some(" application/json; charset=utf-8"),
    };
    let field = KEY_FIELDS[usize::from(options >> 6)];
    let (key, key_field) = match (options >> 4) & 3 {
        0 => (None, None),
        1 => (Some("k-1"), None),
        2 => (None, Some(field)),
        _ => (Some("k-1"), Some(field)),
    };
    let params = AppendParams {
        key_field: key_field.map(str::to_owned),
        key: key.map(str::to_owned),
        format,
    };

    let result = parse(body, content_type, &params);

    let lines = body.split(|b| *b == b'\n').count();
    let non_blank: Vec<&[u8]> = body
        .split(|b| *b == b'\n')
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .map(<[u8]>::trim_ascii)
        .collect();
    let json_mode = match format {
        BodyFormat::Auto => {
            content_type.is_some_and(|ct| ct.trim_start().starts_with("application/json"))
        }
        BodyFormat::Json => true,
        _ => false,
    };

    let records = match result {
        Ok(records) => records,
        Err(err) => {
            if key.is_some() && key_field.is_some() || non_blank.is_empty() {
                assert_eq!(err.line, None, "{}", err.message);
            }
            match err.line {
                Some(n) => {
                    assert!(n >= 1, "line numbers are 1-based: {}", err.message);
                    if !json_mode {
                        assert!(n <= lines, "line {n} of {lines}: {}", err.message);
                    }
                    assert!(
                        err.message.starts_with(&format!("line {n}:"))
                            || err.message.starts_with(&format!("item {n}:")),
                        "{}",
                        err.message
                    );
                }
                None => assert!(!err.message.is_empty()),
            }
            return;
        }
    };
    assert!(
        !(key.is_some() && key_field.is_some()),
        "conflicting key options are refused"
    );
    assert!(!non_blank.is_empty(), "an empty body is refused");

    if json_mode {
        let value: Value = serde_json::from_slice(body).expect("accepted JSON parses");
        match &value {
            Value::Array(items) => assert_eq!(records.len(), items.len()),
            _ => assert_eq!(records.len(), 1),
        }
    } else {
        assert_eq!(records.len(), non_blank.len(), "one record per line");
    }
    for (i, record) in records.iter().enumerate() {
        match &record.payload {
            Some(payload) => assert!(is_json(payload), "payload {i} is JSON"),
            None => assert_eq!(
                format,
                BodyFormat::Envelope,
                "only envelopes are tombstones"
            ),
        }
        if format != BodyFormat::Envelope {
            assert!(record.headers.is_empty());
            if !json_mode {
                assert_eq!(record.payload.as_deref(), Some(non_blank[i]));
            }
            match (key, key_field) {
                (Some(key), _) => assert_eq!(record.key.as_deref(), Some(key.as_bytes())),
                (None, Some(_)) => assert!(record.key.is_some()),
                (None, None) => assert_eq!(record.key, None),
            }
        }
    }
});
