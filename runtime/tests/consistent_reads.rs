//! Reads at a position, against the real binary: read-your-writes
//! (`min_offsets` + `wait_ms`), as-of reads of a past position, and
//! consistent multi-projection reads (`POST /v1/read`).
//!
//! Nothing here depends on timing to pass: waits are bounded by offsets
//! that are reached or that can never be, and properties are checked on
//! whatever position an answer reports.

mod common;

use std::time::{Duration, Instant};

use common::{Server, compact, events_file, percent, read_json, stderr, stdout};
use projector_test_guests::{FAILING, ORDER_TOTALS};
use serde_json::{Value, json};

/// Publishes `file` with the CLI and returns the offsets it printed.
fn publish(server: &Server, file: &std::path::Path) -> String {
    let output = server.cli(&[
        "publish",
        "orders",
        file.to_str().unwrap(),
        "--key-field",
        "customer",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = stdout(&output);
    printed
        .lines()
        .find_map(|l| l.strip_prefix("next offsets: "))
        .unwrap_or_else(|| panic!("no offsets printed: {printed}"))
        .trim()
        .to_owned()
}

/// Appends one order over HTTP and returns the receipt's `next_offsets`.
fn append_one(server: &Server, customer: &str, amount: u64) -> Value {
    let line = json!({"type": "OrderPlaced", "order_id": format!("x-{customer}-{amount}"), "customer": customer, "amount_cents": amount});
    let reply = server.post(
        "/v1/topics/orders/events?key_field=customer",
        "application/x-ndjson",
        line.to_string().as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body["next_offsets"].clone()
}

/// `offsets` with its (one) `orders` partition one further: the position
/// the next event on that partition reaches.
fn one_past(offsets: &Value) -> Value {
    let mut beyond = offsets.clone();
    let (partition, next) = {
        let parts = beyond["orders"].as_object().unwrap();
        let (p, n) = parts.iter().next().unwrap();
        (p.clone(), n.as_u64().unwrap())
    };
    beyond["orders"][&partition] = json!(next + 1);
    beyond
}

/// Asks for `customer/zed` once `min_offsets` are reached (waiting up to
/// 30 s) on a thread of its own; joins to the status and body.
fn wait_for_zed(server: &Server, min_offsets: &Value) -> std::thread::JoinHandle<(u16, Value)> {
    let url = format!(
        "{}/v1/projections/order-totals/state/customer%2Fzed?min_offsets={}&wait_ms=30000",
        server.url,
        percent(&compact(min_offsets))
    );
    std::thread::spawn(move || {
        let mut response = common::agent().get(url).call().unwrap();
        let status = response.status().as_u16();
        let body: Value = response.body_mut().read_json().unwrap();
        (status, body)
    })
}

fn sum(offsets: &Value) -> u64 {
    offsets
        .as_object()
        .map(|parts| parts.values().map(|v| v.as_u64().unwrap()).sum())
        .unwrap_or(0)
}

fn orders_lines() -> u64 {
    std::fs::read_to_string(events_file("orders.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count() as u64
}

#[test]
fn publish_then_query_with_min_offsets_sees_the_write() {
    let server = Server::with_modules(&[ORDER_TOTALS]).start();
    let offsets = publish(&server, &events_file("orders.jsonl"));
    assert!(offsets.starts_with("orders:"), "{offsets}");
    let expected = read_json(&events_file("orders.expected.json"));

    // The CLI: the printed offsets go straight into --min-offsets.
    let output = server.cli(&[
        "query",
        "order-totals",
        "customer/alice",
        "--min-offsets",
        &offsets,
        "--wait-ms",
        "20000",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let printed: Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert_eq!(printed, expected["customer/alice"]);

    // HTTP: key lookup, prefix scan and custom query, compact and JSON forms.
    let spec = percent(&offsets);
    let reply = server.get(&format!(
        "/v1/projections/order-totals/state/customer%2Falice?min_offsets={spec}&wait_ms=20000"
    ));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reflected: Value = serde_json::from_str(&reply.offsets_header.unwrap()).unwrap();
    assert_eq!(sum(&reflected["orders"]), orders_lines());
    let reply = server.get(&format!(
        "/v1/projections/order-totals/state?prefix=customer%2F&min_offsets={spec}"
    ));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(sum(&reply.body["offsets"]["orders"]), orders_lines());
    let as_json = percent(&format!(
        "{{\"orders\":{}}}",
        serde_json::to_string(&reflected["orders"]).unwrap()
    ));
    let reply = server.post(
        &format!(
            "/v1/projections/order-totals/query/top-customers?min_offsets={as_json}&wait_ms=20000"
        ),
        "application/json",
        b"{\"n\": 1}",
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(sum(&reply.body["offsets"]["orders"]), orders_lines());

    // A write after the query started: the answer waits for it.
    let head = append_one(&server, "zed", 5);
    let beyond = one_past(&head);
    let waiting = wait_for_zed(&server, &beyond);
    // Lands on the same partition (same key), one past `head`.
    append_one(&server, "zed", 7);
    let (status, body) = waiting.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["orders"], 2, "{body}");
}

/// A `min_offsets` wait that a swap interrupts follows the projection to
/// the version that serves next: that version answers once it reaches the
/// offsets (the old one is stopped and would never get there).
#[test]
fn a_min_offsets_wait_follows_a_swap_to_the_next_version() {
    // Nothing here depends on timing but the server's own bound on a wait
    // (wait_ms, at most 30 s), and the rebuild below replays one event, so
    // the swap and the event after it come in milliseconds, however loaded
    // the machine (a backlog of 300 events here made a loaded run wait
    // for a slow rebuild). The waits are sent before the replay command
    // starts, so they are normally under way at the swap and get handed
    // over; one that reached the server only after it waits on the new
    // version and passes too.
    let server = Server::with_modules(&[ORDER_TOTALS]).start();
    let head = append_one(&server, "zed", 5);
    server.wait_caught_up("order-totals");

    let beyond = one_past(&head);
    let waiting = wait_for_zed(&server, &beyond);
    // The same wait through `POST /v1/read`.
    let read = json!({
        "reads": [{"projection": "order-totals", "key": "customer/zed"}],
        "min_offsets": compact(&beyond),
        "wait_ms": 30000,
    });
    let url = format!("{}/v1/read", server.url);
    let waiting_read = std::thread::spawn(move || {
        let mut response = common::agent()
            .post(url)
            .header("content-type", "application/json")
            .send(read.to_string().as_bytes())
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.body_mut().read_json().unwrap();
        (status, body)
    });
    // A rebuild into a new state file, swapped in while the reads wait.
    let output = server.cli(&["replay", "order-totals"]);
    assert!(output.status.success(), "{}", stderr(&output));
    server.wait_for("order-totals", "the rebuilt version to serve", |_| {
        server.log().contains("swapped to the rebuilt version")
    });
    assert!(
        !waiting.is_finished(),
        "the read answered before its offsets were reached"
    );
    assert!(
        !waiting_read.is_finished(),
        "the read answered before its offsets were reached"
    );
    // Lands on the same partition (same key), one past `head`: only the
    // new version applies it.
    append_one(&server, "zed", 7);
    let (status, body) = waiting.join().unwrap();
    assert_eq!(status, 200, "{body}\n{}", server.log());
    assert_eq!(body["orders"], 2, "{body}");
    let (status, body) = waiting_read.join().unwrap();
    assert_eq!(status, 200, "{body}\n{}", server.log());
    assert_eq!(body["results"][0]["value"]["orders"], 2, "{body}");
}

#[test]
fn unreachable_offsets_give_504_with_the_offsets_reached() {
    let server = Server::with_modules(&[ORDER_TOTALS]).start();
    let offsets = publish(&server, &events_file("orders.jsonl"));
    // Wait until the published events are folded: before its first commit a
    // projection has reached nothing, and `reached` would be empty.
    let folded = server.get(&format!(
        "/v1/projections/order-totals/state/customer%2Falice?min_offsets={}&wait_ms=30000",
        percent(&offsets)
    ));
    assert_eq!(folded.status, 200, "{}", folded.body);
    let reply = server.get(&format!(
        "/v1/projections/order-totals/state/customer%2Falice?min_offsets={}&wait_ms=0",
        percent("orders:0=1000000")
    ));
    assert_eq!(reply.status, 504, "{}", reply.body);
    assert_eq!(reply.body["error"]["code"], "offsets_not_reached");
    assert_eq!(reply.body["error"]["wanted"]["orders"]["0"], 1_000_000);
    assert!(
        reply.body["error"]["reached"]["orders"].is_object(),
        "{}",
        reply.body
    );

    // The CLI reports it and exits 1.
    let output = server.cli(&[
        "query",
        "order-totals",
        "customer/alice",
        "--min-offsets",
        "orders:0=1000000",
        "--wait-ms",
        "0",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert!(
        stderr(&output).contains("not reached"),
        "{}",
        stderr(&output)
    );

    // Mistakes name the thing and the fix.
    for (query, code, needle) in [
        (
            "min_offsets=orders",
            "bad_offsets",
            "topic:partition=next_offset",
        ),
        (
            "min_offsets=accounts%3A0%3D1",
            "bad_offsets",
            "does not read topic \"accounts\"",
        ),
        (
            "min_offsets=orders%3A0%3D1&wait_ms=999999",
            "bad_wait",
            "maximum",
        ),
        ("wait_ms=10", "bad_wait", "needs min_offsets"),
        (
            &format!("min_offsets={0}&as_of={0}", percent(&offsets)),
            "bad_position",
            "not both",
        ),
    ] {
        let reply = server.get(&format!(
            "/v1/projections/order-totals/state/customer%2Falice?{query}"
        ));
        assert_eq!(reply.status, 400, "{query}: {}", reply.body);
        assert_eq!(reply.body["error"]["code"], code, "{query}: {}", reply.body);
        let message = reply.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{query}: {message}");
    }
}

#[test]
fn as_of_reads_rebuild_a_past_position_from_snapshot_and_log() {
    let server = Server::with_modules(&[ORDER_TOTALS, FAILING]).start();
    let first = publish(&server, &events_file("orders.jsonl"));
    let expected = read_json(&events_file("orders.expected.json"));
    let at = |name: &str, key: &str, as_of: &str| {
        server.get(&format!(
            "/v1/projections/{name}/state/{}?as_of={}",
            percent(key),
            percent(as_of)
        ))
    };
    // Let both reach the first position, then write more.
    for name in ["order-totals", "failing"] {
        let reply = server.get(&format!(
            "/v1/projections/{name}/state/x?min_offsets={}&wait_ms=20000",
            percent(&first)
        ));
        assert!(matches!(reply.status, 200 | 404), "{}", reply.body);
    }
    // The same orders again under new ids (a repeated id is ignored).
    let again = server.dir.path().join("orders-again.jsonl");
    let renamed = std::fs::read_to_string(events_file("orders.jsonl"))
        .unwrap()
        .replace("\"order_id\": \"", "\"order_id\": \"b-");
    std::fs::write(&again, renamed).unwrap();
    let second = publish(&server, &again);
    let reply = server.get(&format!(
        "/v1/projections/order-totals/state/customer%2Falice?min_offsets={}&wait_ms=20000",
        percent(&second)
    ));
    assert_eq!(reply.status, 200);
    assert_ne!(
        reply.body, expected["customer/alice"],
        "the live state moved on"
    );

    // No snapshot yet: replayed from the start of the log.
    let reply = at("order-totals", "customer/alice", &first);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body, expected["customer/alice"]);
    let reflected: Value = serde_json::from_str(&reply.offsets_header.unwrap()).unwrap();
    assert_eq!(compact(&reflected), first);

    // Every position is exact: `failing` counts the events it applied.
    let positions: Vec<(String, u64)> = first
        .split(',')
        .map(|item| {
            let (place, next) = item.split_once('=').unwrap();
            (place.to_owned(), next.parse().unwrap())
        })
        .collect();
    let halfway: String = positions
        .iter()
        .map(|(place, next)| format!("{place}={}", next / 2))
        .collect::<Vec<_>>()
        .join(",");
    let reply = at("failing", "count", &halfway);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let halves: u64 = positions.iter().map(|(_, n)| n / 2).sum();
    assert_eq!(reply.body, json!(halves), "count at {halfway}");

    // A snapshot at the live position; as-of reads after it start there.
    let snap = server.post(
        "/v1/projections/order-totals/snapshots",
        "application/json",
        b"",
    );
    assert_eq!(snap.status, 200, "{}", snap.body);
    let reply = server.post(
        &format!(
            "/v1/projections/order-totals/query/top-customers?as_of={}",
            percent(&second)
        ),
        "application/json",
        b"{\"n\": 1}",
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.body["as_of"]["snapshot"], snap.body["file"],
        "{}",
        reply.body
    );
    assert_eq!(reply.body["as_of"]["replayed_events"], 0);
    // Before the snapshot: the log again, not the snapshot.
    let reply = server.get(&format!(
        "/v1/projections/order-totals/state?prefix=customer%2F&as_of={}",
        percent(&first)
    ));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["as_of"]["snapshot"], Value::Null);
    assert_eq!(reply.body["as_of"]["replayed_events"], orders_lines());

    // CLI.
    let output = server.cli(&["query", "order-totals", "customer/alice", "--as-of", &first]);
    assert!(output.status.success(), "{}", stderr(&output));
    let printed: Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert_eq!(printed, expected["customer/alice"]);

    // The future and incomplete positions are refused with the reason.
    let reply = at("order-totals", "customer/alice", "orders:0=1000000");
    assert_eq!(reply.status, 409, "{}", reply.body);
    assert_eq!(reply.body["error"]["code"], "as_of_ahead");
    let (place, next) = &positions[0];
    if positions.len() > 1 {
        let reply = at("order-totals", "customer/alice", &format!("{place}={next}"));
        assert_eq!(reply.status, 400, "{}", reply.body);
        assert!(
            reply.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("leaves out"),
            "{}",
            reply.body
        );
    }
}

#[test]
fn consistent_reads_answer_every_projection_at_the_same_offsets() {
    let server = Server::with_modules(&[ORDER_TOTALS, FAILING]).start();
    let first = publish(&server, &events_file("orders.jsonl"));
    let expected = read_json(&events_file("orders.expected.json"));
    let request = json!({
        "reads": [
            {"projection": "order-totals", "key": "customer/alice"},
            {"projection": "failing", "key": "count"},
            {"projection": "order-totals", "query": "top-customers", "args": {"n": 2}},
            {"projection": "order-totals", "prefix": "customer/", "limit": 2},
        ],
        "min_offsets": first,
        "wait_ms": 20000,
    });
    let reply = server.post(
        "/v1/read",
        "application/json",
        request.to_string().as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = &reply.body;
    assert_eq!(compact(&body["offsets"]), first, "{body}");
    assert_eq!(
        body["projections"]["order-totals"]["offsets"],
        body["offsets"]
    );
    assert_eq!(body["projections"]["failing"]["offsets"], body["offsets"]);
    assert_eq!(body["results"][0]["value"], expected["customer/alice"]);
    assert_eq!(body["results"][1]["value"], json!(orders_lines()));
    assert_eq!(body["results"][2]["result"].as_array().unwrap().len(), 2);
    assert_eq!(body["results"][3]["items"].as_array().unwrap().len(), 2);

    // While events keep arriving, every answer still stands on one set of
    // offsets: `failing` counted exactly the events of the target.
    let writer = {
        let url = server.url.clone();
        std::thread::spawn(move || {
            let lines = std::fs::read_to_string(events_file("orders.jsonl")).unwrap();
            for line in lines
                .lines()
                .filter(|l| !l.trim().is_empty())
                .cycle()
                .take(300)
            {
                let reply = common::agent()
                    .post(format!("{url}/v1/topics/orders/events?key_field=customer"))
                    .header("content-type", "application/x-ndjson")
                    .send(line.as_bytes())
                    .unwrap();
                assert_eq!(reply.status().as_u16(), 200);
            }
        })
    };
    let request = json!({
        "reads": [
            {"projection": "failing", "key": "count"},
            {"projection": "order-totals", "prefix": "customer/", "limit": 100},
        ],
        "wait_ms": 20000,
    });
    let mut checked = 0;
    while !writer.is_finished() || checked < 3 {
        let reply = server.post(
            "/v1/read",
            "application/json",
            request.to_string().as_bytes(),
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        let body = &reply.body;
        let target = &body["offsets"];
        assert_eq!(
            body["projections"]["order-totals"]["offsets"]["orders"], target["orders"],
            "{body}"
        );
        assert_eq!(
            body["projections"]["failing"]["offsets"]["orders"], target["orders"],
            "{body}"
        );
        assert_eq!(
            body["results"][0]["value"],
            json!(sum(&target["orders"])),
            "{body}"
        );
        // order-totals: every placed order counted, none from beyond.
        let counted: u64 = body["results"][1]["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["value"]["orders"].as_u64().unwrap())
            .sum();
        assert!(counted <= sum(&target["orders"]), "{body}");
        checked += 1;
    }
    writer.join().unwrap();

    // The CLI counterpart.
    let output = server.cli(&[
        "read",
        r#"{"reads": [{"projection": "failing", "key": "count"}]}"#,
        "--min-offsets",
        &first,
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let printed: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert!(printed["results"][0]["value"].as_u64().unwrap() >= orders_lines());

    // Offsets never reached: 504 naming the slow projections.
    let request = json!({
        "reads": [{"projection": "failing", "key": "count"}, {"projection": "order-totals", "key": "customer/alice"}],
        "min_offsets": "orders:0=1000000",
        "wait_ms": 0,
    });
    let reply = server.post(
        "/v1/read",
        "application/json",
        request.to_string().as_bytes(),
    );
    assert_eq!(reply.status, 504, "{}", reply.body);
    assert!(
        reply.body["error"]["reached"]["failing"]["orders"].is_object(),
        "{}",
        reply.body
    );
    assert_eq!(
        reply.body["error"]["slow_projections"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Malformed requests name the mistake.
    for (request, needle) in [
        (json!({"reads": []}), "1 to 100 reads"),
        (
            json!({"reads": [{"projection": "failing"}]}),
            "exactly one of key, prefix or query",
        ),
        (
            json!({"reads": [{"projection": "failing", "key": "count"}], "min_offsets": "accounts:0=1"}),
            "no projection in this request reads topic",
        ),
        (
            json!({"reads": [{"projection": "nope", "key": "k"}]}),
            "no projection named",
        ),
    ] {
        let reply = server.post(
            "/v1/read",
            "application/json",
            request.to_string().as_bytes(),
        );
        assert!(
            matches!(reply.status, 400 | 404),
            "{request}: {}",
            reply.body
        );
        let message = reply.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{request}: {message}");
    }
}

/// Read-your-writes, 50 times in a row: each append's receipt, passed as
/// `min_offsets`, gives a read that already sees that append. Also prints
/// the latency a `min_offsets` wait adds in the common cases, for the README
/// (`cargo test --release --test consistent_reads -- --nocapture
/// reads_with_the_receipt`); the timings are printed, never asserted.
#[test]
fn reads_with_the_receipt_see_each_append() {
    let server = Server::with_modules(&[ORDER_TOTALS]).start();
    let offsets = publish(&server, &events_file("orders.jsonl"));
    let spec = percent(&offsets);
    let agent = common::agent();
    let get = |path: &str| {
        let started = Instant::now();
        let mut response = agent.get(format!("{}{path}", server.url)).call().unwrap();
        let body = response.body_mut().read_to_vec().unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        (started.elapsed(), body)
    };
    let plain = "/v1/projections/order-totals/state/customer%2Falice".to_owned();
    let waited = format!("{plain}?min_offsets={spec}&wait_ms=20000");
    let expected = read_json(&events_file("orders.expected.json"))["customer/alice"].clone();
    let rounds = 300;
    // The published events are applied when the receipt's read answers;
    // a plain read before that may find no customer yet.
    get(&waited);
    for _ in 0..20 {
        get(&plain);
        let (_, body) = get(&waited);
        assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), expected);
    }
    let median = |mut samples: Vec<Duration>| {
        samples.sort();
        samples[samples.len() / 2]
    };
    let plain_times: Vec<Duration> = (0..rounds).map(|_| get(&plain).0).collect();
    let waited_times: Vec<Duration> = (0..rounds).map(|_| get(&waited).0).collect();

    // Publish one event and ask for it at once with the receipt: the answer
    // waits for the worker to apply and commit it, and must include it.
    let mut after_publish = Vec::new();
    let mut total_cents = 0;
    for i in 0..50u64 {
        let next = append_one(&server, "lat", i);
        total_cents += i;
        let path = format!(
            "/v1/projections/order-totals/state/customer%2Flat?min_offsets={}&wait_ms=20000",
            percent(&compact(&next))
        );
        let (took, body) = get(&path);
        assert_eq!(
            serde_json::from_slice::<Value>(&body).unwrap(),
            json!({"orders": i + 1, "total_cents": total_cents}),
            "append {i}"
        );
        after_publish.push(took);
    }
    eprintln!(
        "min_offsets latency over {rounds} key lookups: plain median {:?}, with min_offsets already reached median {:?} (added {:?}); publish-then-query with min_offsets of the receipt: median {:?}, max {:?} over 50",
        median(plain_times.clone()),
        median(waited_times.clone()),
        median(waited_times).saturating_sub(median(plain_times)),
        median(after_publish.clone()),
        after_publish.iter().max().unwrap(),
    );
}
