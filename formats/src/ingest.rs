//! Turning an append request body into records: one JSON event, a JSON
//! array of events, NDJSON lines, or NDJSON envelopes with explicit keys,
//! payloads (or tombstones) and headers.

use serde::Deserialize;
use serde_json::Value;

use crate::event::NewRecord;

/// How the body is laid out (`?format=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum BodyFormat {
    /// From the content type: `application/json` is one JSON value (an
    /// object is one event, an array many), anything else NDJSON.
    #[default]
    Auto,
    Json,
    Ndjson,
    /// NDJSON of `{"key": str|null, "payload": any|null, "headers": {str: str}}`.
    Envelope,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
pub struct AppendParams {
    /// Take each event's key from this top-level field.
    pub key_field: Option<String>,
    /// Use this key for every event of the request.
    pub key: Option<String>,
    /// How the body is laid out (default: from the content type).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", param(inline))]
    pub format: BodyFormat,
}

/// A malformed body, with the 1-based line (or array item) at fault.
#[derive(Debug, PartialEq, Eq)]
pub struct IngestError {
    pub line: Option<usize>,
    pub message: String,
}

impl IngestError {
    fn at(line: usize, message: impl Into<String>) -> Self {
        Self {
            line: Some(line),
            message: format!("line {line}: {}", message.into()),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    payload: Option<Box<serde_json::value::RawValue>>,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
}

pub fn parse(
    body: &[u8],
    content_type: Option<&str>,
    params: &AppendParams,
) -> Result<Vec<NewRecord>, IngestError> {
    if params.key.is_some() && params.key_field.is_some() {
        return Err(IngestError {
            line: None,
            message: "give either `key` or `key_field`, not both".into(),
        });
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(IngestError {
            line: None,
            message: "empty body: send one JSON event, a JSON array, or NDJSON lines".into(),
        });
    }
    let is_json = content_type.is_some_and(|ct| ct.trim_start().starts_with("application/json"));
    let format = match params.format {
        BodyFormat::Auto if is_json => BodyFormat::Json,
        BodyFormat::Auto => BodyFormat::Ndjson,
        other => other,
    };
    match format {
        BodyFormat::Json => parse_json(body, params),
        BodyFormat::Envelope => parse_lines(body, |line, n| envelope(line, n, params)),
        _ => parse_lines(body, |line, n| {
            let value: Value = serde_json::from_slice(line)
                .map_err(|e| IngestError::at(n, format!("not valid JSON: {e}")))?;
            record(line.to_vec(), &value, n, params)
        }),
    }
}

fn parse_json(body: &[u8], params: &AppendParams) -> Result<Vec<NewRecord>, IngestError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| IngestError {
        line: Some(e.line()),
        message: format!("line {}: not valid JSON: {e}", e.line()),
    })?;
    match value {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let bytes = serde_json::to_vec(item).expect("a JSON value serializes");
                record(bytes, item, i + 1, params).map_err(|mut e| {
                    e.message = e.message.replacen("line", "item", 1);
                    e
                })
            })
            .collect(),
        value => Ok(vec![record(body.trim_ascii().to_vec(), &value, 1, params)?]),
    }
}

fn parse_lines(
    body: &[u8],
    mut each: impl FnMut(&[u8], usize) -> Result<NewRecord, IngestError>,
) -> Result<Vec<NewRecord>, IngestError> {
    body.split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .map(|(i, line)| each(line.trim_ascii(), i + 1))
        .collect()
}

fn record(
    payload: Vec<u8>,
    value: &Value,
    line: usize,
    params: &AppendParams,
) -> Result<NewRecord, IngestError> {
    let key = match (&params.key, &params.key_field) {
        (Some(key), _) => Some(key.clone().into_bytes()),
        (None, Some(field)) => Some(key_from_field(value, field, line)?),
        (None, None) => None,
    };
    Ok(NewRecord {
        key,
        payload: Some(payload),
        headers: Vec::new(),
    })
}

fn key_from_field(value: &Value, field: &str, line: usize) -> Result<Vec<u8>, IngestError> {
    match value.get(field) {
        Some(Value::String(s)) => Ok(s.clone().into_bytes()),
        Some(Value::Number(n)) => Ok(n.to_string().into_bytes()),
        Some(Value::Bool(b)) => Ok(b.to_string().into_bytes()),
        Some(other) => Err(IngestError::at(
            line,
            format!("key field `{field}` must be a string, number or boolean, not {other}"),
        )),
        None if value.is_object() => Err(IngestError::at(
            line,
            format!("key field `{field}` is missing"),
        )),
        None => Err(IngestError::at(
            line,
            format!("key field `{field}` needs a JSON object event"),
        )),
    }
}

/// Deepest nesting of arrays and objects accepted in an event: what
/// serde_json parses into a `Value` (its recursion limit is 128, so 127
/// levels), here and in guests. An event nested deeper could be appended
/// but never projected.
const MAX_JSON_DEPTH: usize = 127;

/// Whether syntactically valid JSON nests arrays and objects deeper than
/// `max` (serde_json checks raw values without a depth limit).
fn nested_deeper_than(json: &str, max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for byte in json.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

fn envelope(line: &[u8], n: usize, params: &AppendParams) -> Result<NewRecord, IngestError> {
    let envelope: Envelope = serde_json::from_slice(line)
        .map_err(|e| IngestError::at(n, format!("not a valid envelope: {e}")))?;
    let payload = envelope.payload.filter(|raw| raw.get() != "null");
    if let Some(raw) = &payload
        && nested_deeper_than(raw.get(), MAX_JSON_DEPTH)
    {
        return Err(IngestError::at(
            n,
            format!("payload nests arrays and objects more than {MAX_JSON_DEPTH} deep"),
        ));
    }
    let payload = payload.map(|raw| raw.get().as_bytes().to_vec());
    let key = match (envelope.key, &params.key) {
        (Some(key), _) => Some(key.into_bytes()),
        (None, Some(key)) => Some(key.clone().into_bytes()),
        (None, None) => match (&params.key_field, &payload) {
            (Some(field), Some(bytes)) => {
                let value: Value = serde_json::from_slice(bytes)
                    .map_err(|e| IngestError::at(n, format!("payload: {e}")))?;
                Some(key_from_field(&value, field, n)?)
            }
            _ => None,
        },
    };
    Ok(NewRecord {
        key,
        payload,
        headers: envelope
            .headers
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes()))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(key_field: Option<&str>) -> AppendParams {
        AppendParams {
            key_field: key_field.map(str::to_owned),
            ..AppendParams::default()
        }
    }

    #[test]
    fn ndjson_lines_become_records_with_keys_from_a_field() {
        let body = b"{\"customer\":\"alice\",\"n\":1}\n\n{\"customer\":7}\n";
        let records = parse(body, None, &params(Some("customer"))).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].key.as_deref(), Some(&b"alice"[..]));
        assert_eq!(records[1].key.as_deref(), Some(&b"7"[..]));
        assert_eq!(
            records[0].payload.as_deref(),
            Some(&b"{\"customer\":\"alice\",\"n\":1}"[..])
        );
    }

    #[test]
    fn malformed_line_is_reported_with_its_number() {
        let body = b"{\"a\":1}\n{\"a\":2}\n{oops\n";
        let err = parse(body, None, &params(None)).unwrap_err();
        assert_eq!(err.line, Some(3));
        assert!(err.message.starts_with("line 3:"), "{}", err.message);
    }

    #[test]
    fn missing_key_field_is_an_error() {
        let err = parse(b"{\"a\":1}", None, &params(Some("customer"))).unwrap_err();
        assert_eq!(err.line, Some(1));
        assert!(err.message.contains("`customer` is missing"));
    }

    #[test]
    fn json_content_type_takes_one_value_or_an_array() {
        let one = parse(b"{\n \"a\": 1\n}", Some("application/json"), &params(None)).unwrap();
        assert_eq!(one.len(), 1);
        let many = parse(
            b"[{\"a\":1},{\"a\":2}]",
            Some("application/json"),
            &params(None),
        )
        .unwrap();
        assert_eq!(many.len(), 2);
        assert_eq!(many[1].payload.as_deref(), Some(&b"{\"a\":2}"[..]));
    }

    #[test]
    fn envelopes_carry_keys_tombstones_and_headers() {
        let body = b"{\"key\":\"k1\",\"payload\":{\"a\":1},\"headers\":{\"h\":\"v\"}}\n{\"key\":\"k1\",\"payload\":null}\n";
        let p = AppendParams {
            format: BodyFormat::Envelope,
            ..AppendParams::default()
        };
        let records = parse(body, None, &p).unwrap();
        assert_eq!(records[0].key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(records[0].payload.as_deref(), Some(&b"{\"a\":1}"[..]));
        assert_eq!(records[0].headers, vec![("h".to_string(), b"v".to_vec())]);
        assert_eq!(records[1].payload, None);
    }

    #[test]
    fn deep_json_is_refused_in_every_format() {
        let deep = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        for format in [BodyFormat::Ndjson, BodyFormat::Json] {
            let p = AppendParams {
                format,
                ..AppendParams::default()
            };
            let err = parse(deep(100_000).as_bytes(), None, &p).unwrap_err();
            assert!(err.message.contains("recursion limit"), "{}", err.message);
        }
        let p = AppendParams {
            format: BodyFormat::Envelope,
            key_field: Some("k".into()),
            ..AppendParams::default()
        };
        let line = format!("{{\"payload\": {}}}", deep(100_000));
        let err = parse(line.as_bytes(), None, &p).unwrap_err();
        assert!(
            err.message.contains("more than 127 deep"),
            "{}",
            err.message
        );
        let line = format!("{{\"payload\": {}}}", deep(127));
        assert_eq!(
            parse(
                line.as_bytes(),
                None,
                &AppendParams {
                    format: BodyFormat::Envelope,
                    ..AppendParams::default()
                }
            )
            .unwrap()
            .len(),
            1
        );
        assert!(!nested_deeper_than(r#"["[[[[", {"a": "\\\"{{{"}]"#, 2));
        assert!(nested_deeper_than(r#"[[["]"]]]"#, 2));
    }

    #[test]
    fn envelope_payloads_serde_json_cannot_read_are_refused_not_a_panic() {
        // A lone surrogate escape is valid JSON syntax (RawValue takes it) but
        // no JSON string: reading the payload for `key_field` used to panic.
        let p = AppendParams {
            key_field: Some("id".into()),
            format: BodyFormat::Envelope,
            ..AppendParams::default()
        };
        let err = parse(b"{\"payload\":\"\\ud800\"}", None, &p).unwrap_err();
        assert_eq!(err.line, Some(1));
        assert!(err.message.starts_with("line 1:"), "{}", err.message);
    }

    #[test]
    fn empty_body_and_conflicting_keys_are_rejected() {
        assert!(parse(b"  \n", None, &params(None)).is_err());
        let p = AppendParams {
            key: Some("k".into()),
            key_field: Some("f".into()),
            ..AppendParams::default()
        };
        assert!(parse(b"{}", None, &p).is_err());
    }
}
