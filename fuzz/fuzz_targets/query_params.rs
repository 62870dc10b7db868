//! HTTP query parameters (`?version=`, `?prefix=&start_after=&limit=`,
//! `?min_offsets=&wait_ms=&as_of=`, `?key=&key_field=&format=`) decoded as
//! the runtime's router decodes them (axum's `Query` extractor into the
//! routes' parameter structs), the offsets specs they carry, the
//! percent-encoded key of a key lookup, and the append body under the
//! decoded parameters. The router's answers to what fails here (400s with
//! an error code, never a 5xx) are checked against the OpenAPI document by
//! scripts/api-fuzz.sh.
//!
//! Input: one byte choosing the route (and the content type of an append),
//! the query string, then a newline and the key (key lookups) or the body
//! (appends).

#![no_main]

use axum::extract::Query;
use axum::http::Uri;
use libfuzzer_sys::fuzz_target;
use projector_formats::event::Offsets;
use projector_formats::ingest::{AppendParams, parse};
use projector_formats::query::{KeyError, ReadParams, ScanParams, decode_key, parse_offsets};
use serde::de::DeserializeOwned;

/// `bytes` as URI text: the characters RFC 3986 allows in a query (or a
/// path segment and `/`), and `%`, kept; every other byte escaped as `%XX`.
fn escape(bytes: &[u8], in_path: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        let keep = b.is_ascii_alphanumeric()
            || b"-._~!$&'()*+,;=:@/%".contains(&b)
            || (!in_path && b == b'?');
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `path?query`, the query raw when that is a valid URI, else escaped.
fn uri(path: &str, query: &[u8]) -> Uri {
    let mut raw = Vec::from(path.as_bytes());
    raw.push(b'?');
    raw.extend_from_slice(query);
    Uri::try_from(raw.as_slice()).unwrap_or_else(|_| {
        Uri::try_from(format!("{path}?{}", escape(query, false)))
            .expect("an escaped query is a valid URI")
    })
}

/// Whether `raw` is a non-empty key in which every `%` starts a `%XX`
/// escape with two hex digits.
fn strictly_encoded(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            match bytes.get(i + 1..i + 3) {
                Some(hex) if hex.iter().all(u8::is_ascii_hexdigit) => i += 3,
                _ => return false,
            }
        } else {
            i += 1;
        }
    }
    !bytes.is_empty()
}

const CONTENT_TYPES: [Option<&str>; 4] = [
    None,
    Some("application/json"),
    Some("application/x-ndjson"),
    Some("text/plain"),
];

/// The parameters as the route's extractor decodes them, if they do.
fn params<T: DeserializeOwned>(uri: &Uri) -> Option<T> {
    Query::<T>::try_from_uri(uri)
        .ok()
        .map(|Query(params)| params)
}

/// An offsets spec (`min_offsets`, `as_of`): parses or fails cleanly, and
/// what parses survives the JSON form (the form `X-Projector-Offsets`
/// answers with) unchanged.
fn offsets(spec: Option<&str>) {
    let Some(spec) = spec else {
        return;
    };
    match parse_offsets(spec) {
        Ok(offsets) => {
            let json = serde_json::to_string(&offsets).expect("offsets serialize");
            let again: Offsets = parse_offsets(&json).expect("the JSON form parses");
            assert_eq!(again, offsets, "{json}");
        }
        Err(err) => assert!(err.to_string().contains("orders:0=12"), "{err}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&route, rest)) = data.split_first() else {
        return;
    };
    let (query, body) = match rest.iter().position(|b| *b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let key_prefix = "/v1/projections/nope/state/";
    let path = match route & 3 {
        0 => "/v1/projections/nope/state".to_owned(),
        1 => format!("{key_prefix}{}", escape(body, true)),
        2 => "/v1/projections/nope/query/totals".to_owned(),
        _ => "/v1/topics/not%20a%20topic/events".to_owned(),
    };
    let uri = uri(&path, query);

    match route & 3 {
        0 => {
            if let Some(scan) = params::<ScanParams>(&uri) {
                offsets(scan.min_offsets.as_deref());
                offsets(scan.as_of.as_deref());
            }
        }
        3 => {
            let content_type = CONTENT_TYPES[usize::from((route >> 2) & 3)];
            // The ingest target checks what parses; here: no panic under
            // any decoded parameters (an empty JSON array is accepted).
            if let Some(append) = params::<AppendParams>(&uri) {
                let _ = parse(body, content_type, &append);
            }
        }
        route => {
            if let Some(read) = params::<ReadParams>(&uri) {
                offsets(read.min_offsets.as_deref());
                offsets(read.as_of.as_deref());
            }
            if route == 1 {
                // Keys decode strictly: `%` then two hex digits, and not
                // empty; what decodes is those bytes.
                let raw = uri.path().strip_prefix(key_prefix).unwrap_or_default();
                match decode_key(raw) {
                    Ok(key) => {
                        assert!(strictly_encoded(raw), "key {raw:?} was accepted");
                        let escaped: String = key.iter().map(|b| format!("%{b:02X}")).collect();
                        assert_eq!(decode_key(&escaped).as_ref(), Ok(&key));
                    }
                    Err(err) => {
                        assert!(!strictly_encoded(raw), "key {raw:?} was refused: {err}");
                        assert_eq!(matches!(err, KeyError::Empty), raw.is_empty());
                    }
                }
            }
        }
    }
});
