//! HTTP query parameters (`?version=`, `?prefix=&start_after=&limit=`,
//! `?key=&key_field=&format=`) as the real router decodes them, plus the
//! percent-encoded key of a key lookup and the append body under the
//! decoded parameters.
//!
//! The parameter structs of the key, scan and query routes are private to
//! `projector::api`, so the target drives the real router, with no
//! projection loaded: every route answers a 400 for what it cannot decode
//! or, once everything decoded, 404 `unknown_projection`. The append
//! route's `AppendParams` is public, so its answer is also checked against
//! decoding the same URI and body directly. Appends go to a topic name the
//! log refuses, so nothing is ever written.
//!
//! Input: one byte choosing the route (and the content type of an append),
//! the query string, then a newline and the key (key lookups) or the body
//! (appends).

#![no_main]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::Query;
use axum::http::{Method, Request, StatusCode, Uri, header};
use libfuzzer_sys::fuzz_target;
use projector::api::ingest::{AppendParams, parse};
use projector::api::{AppState, router};
use projector::config::Config;
use projector::server::Running;
use serde_json::Value;
use tower::ServiceExt;

struct Fixture {
    runtime: tokio::runtime::Runtime,
    router: Router,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir: PathBuf = tempfile::Builder::new()
            .prefix("projector-fuzz-query-")
            .tempdir()
            .expect("temp dir")
            .keep();
        let config = Config {
            data_dir: dir.join("data"),
            modules_dir: dir.join("projections"),
            ..Config::default()
        };
        let running = Running::start(&config).expect("start an empty projector");
        let state = AppState {
            registry: Arc::clone(&running.registry),
            log: running.log.clone(),
        };
        // Leaked on purpose: the fixture lives as long as the process.
        std::mem::forget(running);
        Fixture {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime"),
            router: router(state, config.max_request_bytes, &config.http),
        }
    })
}

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

fuzz_target!(|data: &[u8]| {
    let Some((&route, rest)) = data.split_first() else {
        return;
    };
    let (query, body) = match rest.iter().position(|b| *b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let append = route & 3 == 3;
    let (method, path) = match route & 3 {
        0 => (Method::GET, "/v1/projections/nope/state".to_owned()),
        1 => (
            Method::GET,
            format!("/v1/projections/nope/state/{}", escape(body, true)),
        ),
        2 => (Method::POST, "/v1/projections/nope/query/totals".to_owned()),
        _ => (Method::POST, "/v1/topics/not%20a%20topic/events".to_owned()),
    };
    let content_type = CONTENT_TYPES[usize::from((route >> 2) & 3)];
    let uri = uri(&path, query);

    let mut request = Request::builder().method(method).uri(uri.clone());
    if let Some(ct) = content_type.filter(|_| append) {
        request = request.header(header::CONTENT_TYPE, ct);
    }
    let request = request
        .body(Body::from(if append { body.to_vec() } else { Vec::new() }))
        .expect("a request");

    let fixture = fixture();
    let (status, reply) = fixture.runtime.block_on(async {
        let response = fixture
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        let bytes = to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("a buffered body");
        (status, bytes)
    });

    assert!(!status.is_server_error(), "{status} for {uri}: {reply:?}");
    let reply: Value = serde_json::from_slice(&reply).expect("every answer is JSON");
    let code = reply["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("{status} for {uri} without an error code: {reply}"));
    assert!(
        reply["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{reply}"
    );

    if append {
        let expected = match Query::<AppendParams>::try_from_uri(&uri) {
            Err(_) => "bad_query_string",
            Ok(Query(params)) => match parse(body, content_type, &params) {
                Err(_) => "malformed_event",
                Ok(_) => "bad_topic",
            },
        };
        assert_eq!((status, code), (StatusCode::BAD_REQUEST, expected), "{uri}");
    } else if route & 3 == 1 {
        assert!(
            matches!(
                (status, code),
                (
                    StatusCode::BAD_REQUEST,
                    "bad_query_string" | "bad_key_encoding"
                ) | (StatusCode::NOT_FOUND, "unknown_projection")
            ) || (body.is_empty() && code == "unknown_route"),
            "{status} {code} for {uri}"
        );
        // Keys decode strictly: `%` then two hex digits, and not empty.
        let key = uri
            .path()
            .strip_prefix("/v1/projections/nope/state/")
            .unwrap_or_default();
        if code == "unknown_projection" {
            assert!(strictly_encoded(key), "key {key:?} was accepted");
        }
        if code == "bad_key_encoding" {
            assert!(!strictly_encoded(key), "key {key:?} was refused");
        }
    } else {
        assert!(
            matches!(
                (status, code),
                (StatusCode::BAD_REQUEST, "bad_query_string")
                    | (StatusCode::NOT_FOUND, "unknown_projection")
            ),
            "{status} {code} for {uri}"
        );
    }
});
