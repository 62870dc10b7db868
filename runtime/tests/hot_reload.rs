//! Hot reload: module files dropped into, replaced in and removed from the
//! watched folder of a running projector.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{Server, stdout};
use projector_test_guests::{ORDER_TOTALS, ORDER_TOTALS_QUERY, ORDER_TOTALS_TRAP, ORDER_TOTALS_V2};
use serde_json::{Value, json};

fn order(id: usize, customer: &str, kind: &str) -> String {
    json!({"type": kind, "order_id": format!("h{id}"), "customer": customer, "amount_cents": 100 + id % 50})
        .to_string()
}

fn publish(server: &Server, lines: &[String]) {
    let body = lines.join("\n");
    let reply = server.post(
        "/v1/topics/orders/events?key_field=customer",
        "application/x-ndjson",
        body.as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// Replaces `order-totals.wasm` atomically (write aside, rename), as a
/// deploy tool would.
fn deploy(server: &Server, module: &str) {
    let target = server.modules_dir().join("order_totals.wasm");
    let staging = server.modules_dir().join(".order_totals.wasm.tmp");
    std::fs::copy(module, &staging).unwrap();
    std::fs::rename(&staging, &target).unwrap();
}

fn file_hash(path: &str) -> String {
    blake3::hash(&std::fs::read(path).unwrap())
        .to_hex()
        .to_string()
}

fn serving_hash(server: &Server) -> String {
    server.projection("order-totals")["hash"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn offsets_sum(offsets: &Value) -> u64 {
    offsets
        .as_object()
        .map(|topics| {
            topics
                .values()
                .flat_map(|parts| parts.as_object().unwrap().values())
                .map(|o| o.as_u64().unwrap())
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn a_new_version_builds_in_the_shadow_and_swaps_while_events_arrive() {
    let server = Arc::new(Server::with_modules(&[ORDER_TOTALS]).start());
    let customers = ["ann", "ben", "cid", "dot", "eve"];
    let mut placed: BTreeMap<String, u64> = BTreeMap::new();
    let mut all = Vec::new();
    for i in 0..3_000 {
        let customer = customers[i % customers.len()];
        let kind = if i % 7 == 6 {
            "OrderCancelled"
        } else {
            "OrderPlaced"
        };
        if kind == "OrderPlaced" {
            *placed.entry(customer.to_owned()).or_default() += 1;
        }
        all.push(order(
            if kind == "OrderCancelled" { i - 1 } else { i },
            customer,
            kind,
        ));
    }
    publish(&server, &all[..2_000]);
    server.wait_caught_up("order-totals");

    // Readers during the whole build and swap: every answer succeeds and
    // the offsets it reflects never go back.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let server = server.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut last = 0;
            let mut answers = 0;
            while !stop.load(Ordering::Relaxed) {
                let reply = server.get("/v1/projections/order-totals/state?limit=1");
                assert_eq!(reply.status, 200, "{}", reply.body);
                let now = offsets_sum(&reply.body["offsets"]);
                assert!(now >= last, "offsets went back from {last} to {now}");
                last = now;
                answers += 1;
            }
            answers
        })
    };
    let writer = {
        let server = server.clone();
        let rest = all[2_000..].to_vec();
        std::thread::spawn(move || {
            for chunk in rest.chunks(50) {
                publish(&server, chunk);
            }
        })
    };
    deploy(&server, ORDER_TOTALS_V2);
    let new_hash = file_hash(ORDER_TOTALS_V2);
    writer.join().unwrap();
    server.wait_for("order-totals", "the swap to v2", |info| {
        info["hash"] == new_hash.as_str()
    });
    let info = server.wait_caught_up("order-totals");
    stop.store(true, Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
    assert_eq!(info["version"], "2.0.0");
    assert!(info.get("building").is_none(), "{info}");

    let expected: serde_json::Map<String, Value> = placed
        .into_iter()
        .map(|(customer, n)| (format!("placed/{customer}"), json!(n)))
        .collect();
    assert_eq!(server.state("order-totals"), Value::Object(expected));
}

#[test]
fn the_same_state_version_swaps_without_replay() {
    let server = Server::with_modules(&[ORDER_TOTALS]).start();
    let lines: Vec<String> = (0..500)
        .map(|i| order(i, ["a", "b", "c"][i % 3], "OrderPlaced"))
        .collect();
    publish(&server, &lines);
    let before = server.wait_caught_up("order-totals");
    let state = server.state("order-totals");

    deploy(&server, ORDER_TOTALS_QUERY);
    let new_hash = file_hash(ORDER_TOTALS_QUERY);
    let after = server.wait_for("order-totals", "the swap", |info| {
        info["hash"] == new_hash.as_str()
    });
    // The new version continued the old state: nothing was replayed.
    assert_eq!(after["events_applied"], before["events_applied"]);
    assert!(after.get("building").is_none());
    assert_eq!(server.state("order-totals"), state);
    let answer = server.post(
        "/v1/projections/order-totals/query/customer-count",
        "application/json",
        b"{}",
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["result"], 3);
    // And it goes on applying new events.
    publish(&server, &[order(9_999, "d", "OrderPlaced")]);
    server.wait_applied("order-totals", 501);
    assert!(server.log().contains("swapped without replay"));
}

#[test]
fn broken_modules_dropped_over_a_serving_one_are_rejected() {
    let server = Server::with_modules(&[ORDER_TOTALS]).start();
    let lines: Vec<String> = (0..100).map(|i| order(i, "a", "OrderPlaced")).collect();
    publish(&server, &lines);
    server.wait_caught_up("order-totals");
    let serving = file_hash(ORDER_TOTALS);
    let state = server.state("order-totals");

    let target = server.modules_dir().join("order_totals.wasm");
    std::fs::write(&target, b"definitely not wasm").unwrap();
    let rejected = |server: &Server, needle: &str| {
        server.get("/v1/projections").body["rejected"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["error"].as_str().unwrap().contains(needle))
    };
    server.wait_for("order-totals", "the rejection of the non-Wasm file", |_| {
        rejected(&server, "not a WebAssembly file")
    });
    assert_eq!(serving_hash(&server), serving);

    deploy(&server, ORDER_TOTALS_TRAP);
    server.wait_for(
        "order-totals",
        "the rejection of the trapping build",
        |_| rejected(&server, "failed during replay"),
    );
    let listing = server.get("/v1/projections").body;
    let error = listing["rejected"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("deliberate trap on the 10th event"),
        "{error}"
    );
    assert!(
        error.contains("at orders/"),
        "names the failing offset: {error}"
    );
    let info = server.projection("order-totals");
    assert_eq!(
        info["hash"],
        serving.as_str(),
        "the serving version is unchanged"
    );
    assert!(info.get("building").is_none());
    assert_eq!(server.state("order-totals"), state);
    let table = stdout(&server.cli(&["status"]));
    assert!(table.contains("failed during replay"), "{table}");
}

#[test]
fn a_module_copied_slowly_is_loaded_once_complete() {
    let server = Server::new().start();
    let bytes = std::fs::read(ORDER_TOTALS).unwrap();
    let target = server.modules_dir().join("order_totals.wasm");
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&target).unwrap();
        for chunk in bytes.chunks(bytes.len() / 8 + 1) {
            file.write_all(chunk).unwrap();
            file.flush().unwrap();
            // Well under the watcher's settle time (250 ms) between writes.
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    server.wait_for_listing("order-totals loaded", |listing| {
        listing["projections"].as_array().unwrap().len() == 1
    });
    let listing = server.get("/v1/projections").body;
    assert!(
        listing["rejected"].as_array().unwrap().is_empty(),
        "{listing}"
    );
    assert_eq!(
        server.log().matches("module accepted").count(),
        1,
        "{}",
        server.log()
    );
    assert_eq!(serving_hash(&server), file_hash(ORDER_TOTALS));
}

#[test]
fn a_removed_module_stops_and_comes_back_without_replay() {
    let server = Server::with_modules(&[ORDER_TOTALS]).start();
    let lines: Vec<String> = (0..200).map(|i| order(i, "a", "OrderPlaced")).collect();
    publish(&server, &lines);
    server.wait_caught_up("order-totals");
    let target = server.modules_dir().join("order_totals.wasm");
    std::fs::remove_file(&target).unwrap();
    let info = server.wait_for("order-totals", "removal", |info| {
        info["status"]["state"] == "removed"
    });
    assert_eq!(info["events_applied"], 200);
    // Its state stays readable.
    assert_eq!(
        server
            .get("/v1/projections/order-totals/state/customer%2Fa")
            .status,
        200
    );

    publish(&server, &[order(500, "a", "OrderPlaced")]);
    std::fs::copy(ORDER_TOTALS, &target).unwrap();
    let info = server.wait_applied("order-totals", 201);
    assert_eq!(info["status"]["state"], "running");
    assert!(
        !server.log().contains("building a new version"),
        "no replay happened"
    );
}

#[test]
fn manual_replay_rebuilds_in_the_shadow_and_swaps() {
    let server = Server::with_modules(&[ORDER_TOTALS]).start();
    let lines: Vec<String> = (0..300)
        .map(|i| order(i, ["a", "b"][i % 2], "OrderPlaced"))
        .collect();
    publish(&server, &lines);
    server.wait_caught_up("order-totals");
    let state = server.state("order-totals");

    let output = server.cli(&["replay", "order-totals"]);
    assert!(output.status.success(), "{}", common::stderr(&output));
    assert!(stdout(&output).contains("rebuilding order-totals"));
    server.wait_for("order-totals", "the rebuilt version to serve", |_| {
        server.log().contains("swapped to the rebuilt version")
    });
    let info = server.wait_caught_up("order-totals");
    assert_eq!(info["events_applied"], 300);
    assert_eq!(server.state("order-totals"), state);

    let unknown = server.post("/v1/projections/nope/replay", "application/json", b"{}");
    assert_eq!(unknown.status, 404);
}
