// Written against the WIT directly, not the SDK, so it can do what the SDK
// never lets a projection do (e.g. report an error for an event index the
// batch does not have).
//
// `do` values:
// - `ok` (or anything unknown): appends `id` to `seen/<key>` (a JSON list)
//   and counts it under `count`;
// - `fail`: refused with `refusing <id>` (applied like `ok` when FIXED);
// - `loop`: never returns; `bomb`: allocates until it is stopped;
// - `recurse`: recursion without end; `big-value`: puts a 100 MB value;
// - `big-key`: puts under a 64 KiB key;
// - `huge-scan`: writes 2000 keys, scans them with limit u32::MAX and
//   stores how many came back under `scan-count`;
// - `panic`: panics; `bad-index`: fails with index 999999;
// - `probe`: tries files, environment, network, clocks, randomness and
//   another projection's key, and stores what it saw under `probe`.
//
// Queries: `count`; `write` (puts during a query); `loop` (never returns).

wit_bindgen::generate!({
    path: "../../../wit",
    world: "projection",
});

use exports::projector::projection::handler::{Descriptor, Guest, HandleError, QueryError};
use projector::projection::state;
use projector::projection::types::Event;
use serde_json::{Value, json};

struct Hostile;

export!(Hostile);

fn get_json(key: &str) -> Option<Value> {
    state::get(key.as_bytes()).and_then(|v| serde_json::from_slice(&v).ok())
}

fn put_json(key: &str, value: &Value) {
    state::put(key.as_bytes(), &serde_json::to_vec(value).unwrap());
}

fn record(event: &Event, id: &str) {
    let key = String::from_utf8_lossy(event.key.as_deref().unwrap_or_default()).into_owned();
    let seen_key = format!("seen/{key}");
    let mut seen = get_json(&seen_key).unwrap_or_else(|| json!([]));
    seen.as_array_mut().unwrap().push(json!(id));
    put_json(&seen_key, &seen);
    let count = get_json("count").and_then(|c| c.as_u64()).unwrap_or(0);
    put_json("count", &json!(count + 1));
}

/// Recursion whose frames live on the Wasm stack (locals only, nothing in
/// linear memory), so it is the engine's stack limit that stops it.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    if depth == 0 {
        return 0;
    }
    recurse(core::hint::black_box(depth - 1)).wrapping_mul(3) + 1
}

fn probe() -> Value {
    use std::hash::BuildHasher;
    let file = match std::fs::read("/etc/passwd") {
        Ok(bytes) => format!("read {} bytes", bytes.len()),
        Err(e) => format!("error: {e}"),
    };
    let cwd_listing = match std::fs::read_dir(".") {
        Ok(entries) => format!("listed {} entries", entries.count()),
        Err(e) => format!("error: {e}"),
    };
    let network = match std::net::TcpStream::connect("127.0.0.1:7878") {
        Ok(_) => "connected".to_owned(),
        Err(e) => format!("error: {e}"),
    };
    let wall_clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(u64::MAX);
    let start = std::time::Instant::now();
    // Seeded from WASI's random source: fixed here, so replays agree.
    let random_hash = std::collections::hash_map::RandomState::new().hash_one(42u32);
    let other_key = state::get(b"customer/alice").map(|v| String::from_utf8_lossy(&v).into_owned());
    // Lands in this projection's own state, whatever the key.
    state::put(b"customer/alice", b"\"hostile was here\"");
    json!({
        "file": file,
        "cwd": cwd_listing,
        "env": std::env::vars().count(),
        "args": std::env::args().count(),
        "network": network,
        "wall_clock_ns": wall_clock,
        "monotonic_elapsed_ns": start.elapsed().as_nanos() as u64,
        "random_hash": random_hash,
        "other_projection_key": other_key,
    })
}

impl Guest for Hostile {
    fn describe() -> Descriptor {
        Descriptor {
            name: "hostile".into(),
            version: if FIXED { "2-fixed".into() } else { "1".into() },
            sources: vec!["orders".into()],
            state_version: 1,
            queries: vec!["count".into(), "write".into(), "loop".into()],
        }
    }

    fn handle(events: Vec<Event>) -> Result<(), HandleError> {
        for (index, event) in events.iter().enumerate() {
            let payload: Value = event
                .payload
                .as_deref()
                .and_then(|p| serde_json::from_slice(p).ok())
                .unwrap_or(Value::Null);
            let what = payload["do"].as_str().unwrap_or("ok");
            let id = payload["id"].as_str().unwrap_or("?").to_owned();
            match what {
                "fail" if !FIXED => {
                    return Err(HandleError {
                        index: index as u32,
                        message: format!("refusing {id}"),
                    });
                }
                "loop" => {
                    let mut n = 0u64;
                    loop {
                        n = core::hint::black_box(n.wrapping_add(1));
                    }
                }
                "bomb" => {
                    let mut hoard: Vec<Vec<u8>> = Vec::new();
                    loop {
                        hoard.push(vec![1u8; 1 << 20]);
                        core::hint::black_box(&hoard);
                    }
                }
                "recurse" => {
                    let depth = core::hint::black_box(u64::MAX);
                    put_json("recursed", &json!(recurse(depth)));
                }
                "big-value" => state::put(b"big", &vec![7u8; 100 << 20]),
                "big-key" => state::put(&vec![b'k'; 64 << 10], b"1"),
                "huge-scan" => {
                    for n in 0..2000 {
                        state::put(format!("scan/{n:05}").as_bytes(), b"x");
                    }
                    let entries = state::scan(b"scan/", None, u32::MAX);
                    put_json("scan-count", &json!(entries.len()));
                }
                "panic" => panic!("hostile panic on {id}"),
                "bad-index" => {
                    return Err(HandleError {
                        index: 999_999,
                        message: format!("bad index on {id}"),
                    });
                }
                "probe" => put_json("probe", &probe()),
                _ => {}
            }
            record(event, &id);
        }
        Ok(())
    }

    fn query(name: String, _args: Vec<u8>) -> Result<Vec<u8>, QueryError> {
        match name.as_str() {
            "count" => Ok(serde_json::to_vec(&get_json("count").unwrap_or(json!(0))).unwrap()),
            "write" => {
                state::put(b"written-in-query", b"1");
                Ok(b"wrote".to_vec())
            }
            "loop" => {
                let mut n = 0u64;
                loop {
                    n = core::hint::black_box(n.wrapping_add(1));
                }
            }
            _ => Err(QueryError::UnknownQuery),
        }
    }
}
