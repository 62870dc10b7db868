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

fn snapshot_files(server: &Server) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let root = server.data_dir().join("snapshots/order-totals");
    for version in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        for file in std::fs::read_dir(version.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if file.path().extension().is_some_and(|e| e == "snap") {
                files.push(file.path());
            }
        }
    }
    files.sort();
    files
}

fn with_snapshots_every(server: Server, events: u64) -> Server {
    let config = server.dir.path().join("projector.toml");
    std::fs::write(
        &config,
        format!("[snapshots]\nevery_events = {events}\nevery_seconds = 3600\nkeep = 5\n"),
    )
    .unwrap();
    server.args(&["--config", config.to_str().unwrap()])
}

fn state_files(server: &Server) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(server.data_dir().join("projections/order-totals"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect()
}

#[test]
fn a_lost_state_file_is_restored_from_a_snapshot_plus_the_tail() {
    let mut server = with_snapshots_every(Server::with_modules(&[ORDER_TOTALS]), 100).start();
    let lines: Vec<String> = (0..150)
        .map(|i| order(i, ["a", "b", "c"][i % 3], "OrderPlaced"))
        .collect();
    publish(&server, &lines);
    server.wait_caught_up("order-totals");
    server.wait_for("order-totals", "a snapshot", |_| {
        !snapshot_files(&server).is_empty()
    });
    let more: Vec<String> = (150..220).map(|i| order(i, "d", "OrderPlaced")).collect();
    publish(&server, &more);
    server.wait_applied("order-totals", 220);
    let state = server.state("order-totals");
    server.stop();

    for file in state_files(&server) {
        std::fs::remove_file(file).unwrap();
    }
    let server = server.start();
    let info = server.wait_applied("order-totals", 220);
    assert_eq!(info["status"]["state"], "running");
    assert_eq!(server.state("order-totals"), state);
    assert!(
        server.log().contains("state restored from snapshot"),
        "{}",
        server.log()
    );
}

/// A stop while a snapshot is being written waits for it (bounded): the
/// process does not end with a half-written temp file, and the snapshot it
/// finished restores the state.
#[test]
fn shutdown_waits_for_the_snapshot_being_written() {
    const EVENTS: usize = 200_000;
    let server = with_snapshots_every(Server::with_modules(&[ORDER_TOTALS]), EVENTS as u64)
        .args(&["--batch-max-events", "1000"]);
    let mut server = server.start();
    // One key per event: a state big enough that writing it takes a while.
    let lines: Vec<String> = (0..EVENTS)
        .map(|i| order(i, &format!("c{i}"), "OrderPlaced"))
        .collect();
    for chunk in lines.chunks(10_000) {
        publish(&server, chunk);
    }
    server.wait_for("order-totals", "a snapshot to start", |_| {
        server.log().contains("writing a snapshot")
    });
    server.stop();
    let log = server.log();
    assert!(log.contains("snapshot written"), "{log}");
    let mut temp_files = Vec::new();
    for version in std::fs::read_dir(server.data_dir().join("snapshots/order-totals"))
        .unwrap()
        .flatten()
    {
        for file in std::fs::read_dir(version.path()).unwrap().flatten() {
            if file.file_name().to_string_lossy().ends_with(".tmp") {
                temp_files.push(file.path());
            }
        }
    }
    assert!(temp_files.is_empty(), "{temp_files:?}");
    assert_eq!(snapshot_files(&server).len(), 1);

    // The snapshot is whole: it alone restores all the state.
    for file in state_files(&server) {
        std::fs::remove_file(file).unwrap();
    }
    let server = server.start();
    let info = server.wait_applied("order-totals", EVENTS as u64);
    assert_eq!(info["status"]["state"], "running");
    assert!(
        server.log().contains("state restored from snapshot"),
        "{}",
        server.log()
    );
}

#[test]
fn a_corrupt_snapshot_is_skipped_for_an_older_one() {
    let mut server = with_snapshots_every(Server::with_modules(&[ORDER_TOTALS]), 50).start();
    let first: Vec<String> = (0..60).map(|i| order(i, "a", "OrderPlaced")).collect();
    publish(&server, &first);
    server.wait_for("order-totals", "a first snapshot", |_| {
        snapshot_files(&server).len() == 1
    });
    let second: Vec<String> = (60..120).map(|i| order(i, "b", "OrderPlaced")).collect();
    publish(&server, &second);
    server.wait_for("order-totals", "a second snapshot", |_| {
        snapshot_files(&server).len() == 2
    });
    server.wait_applied("order-totals", 120);
    let state = server.state("order-totals");
    server.stop();

    let snapshots = snapshot_files(&server);
    let newest = snapshots.last().unwrap();
    let mut bytes = std::fs::read(newest).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(newest, bytes).unwrap();
    for file in state_files(&server) {
        std::fs::remove_file(file).unwrap();
    }

    let server = server.start();
    server.wait_applied("order-totals", 120);
    assert_eq!(server.state("order-totals"), state);
    let log = server.log();
    let newest_name = newest.file_name().unwrap().to_str().unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains(newest_name)),
        "the corrupt snapshot is named in a warning:\n{log}"
    );
    let oldest_name = snapshots[0].file_name().unwrap().to_str().unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("state restored from snapshot") && l.contains(oldest_name)),
        "restored from the older snapshot:\n{log}"
    );
}

#[test]
fn rolling_back_to_an_earlier_module_replays_only_the_tail() {
    let server = Server::with_modules(&[ORDER_TOTALS]).start();
    let v1 = file_hash(ORDER_TOTALS);
    let first: Vec<String> = (0..400)
        .map(|i| order(i, ["a", "b"][i % 2], "OrderPlaced"))
        .collect();
    publish(&server, &first);
    server.wait_caught_up("order-totals");

    deploy(&server, ORDER_TOTALS_V2);
    let v2 = file_hash(ORDER_TOTALS_V2);
    server.wait_for("order-totals", "v2 serving", |info| {
        info["hash"] == v2.as_str()
    });
    let second: Vec<String> = (400..450).map(|i| order(i, "c", "OrderPlaced")).collect();
    publish(&server, &second);
    server.wait_applied("order-totals", 450);

    deploy(&server, ORDER_TOTALS);
    let info = server.wait_for("order-totals", "v1 serving again", |info| {
        info["hash"] == v1.as_str()
    });
    let info = if info["events_applied"] == 450 {
        info
    } else {
        server.wait_applied("order-totals", 450)
    };
    assert_eq!(info["events_applied"], 450);
    let log = server.log();
    let rebuild = log
        .lines()
        .rfind(|l| l.contains("building a new version in the shadow"))
        .unwrap();
    assert!(
        rebuild.contains("from_position=400"),
        "only the tail was replayed: {rebuild}"
    );
    let customers = server.state("order-totals");
    assert_eq!(customers["customer/a"]["orders"], 200);
    assert_eq!(customers["customer/c"]["orders"], 50);
}

#[test]
fn snapshots_are_listed_created_exported_and_restored_from_the_cli() {
    let server = Server::with_modules(&[ORDER_TOTALS]).start();
    let lines: Vec<String> = (0..120)
        .map(|i| order(i, ["a", "b"][i % 2], "OrderPlaced"))
        .collect();
    publish(&server, &lines);
    server.wait_caught_up("order-totals");

    let created = server.cli(&["snapshot", "create", "order-totals"]);
    assert!(created.status.success(), "{}", common::stderr(&created));
    assert!(
        stdout(&created).contains("120 events"),
        "{}",
        stdout(&created)
    );
    let listed = stdout(&server.cli(&["snapshot", "list", "order-totals"]));
    let file = listed.split_whitespace().next().unwrap().to_owned();
    assert!(file.ends_with(".snap"), "{listed}");

    let backup = server.dir.path().join("backup.snap");
    let exported = server.cli(&[
        "snapshot",
        "export",
        "order-totals",
        &file,
        backup.to_str().unwrap(),
    ]);
    assert!(exported.status.success(), "{}", common::stderr(&exported));
    assert_eq!(
        std::fs::read(&backup).unwrap(),
        std::fs::read(snapshot_files(&server).last().unwrap()).unwrap()
    );

    let more: Vec<String> = (120..150).map(|i| order(i, "c", "OrderPlaced")).collect();
    publish(&server, &more);
    server.wait_applied("order-totals", 150);
    let state = server.state("order-totals");
    let restored = server.cli(&["snapshot", "restore", "order-totals", &file]);
    assert!(restored.status.success(), "{}", common::stderr(&restored));
    server.wait_for("order-totals", "the restored version to serve", |_| {
        server.log().contains("swapped to the rebuilt version")
    });
    let info = server.wait_applied("order-totals", 150);
    assert_eq!(info["status"]["state"], "running");
    assert_eq!(
        server.state("order-totals"),
        state,
        "snapshot plus the tail"
    );
    let missing = server.cli(&["snapshot", "restore", "order-totals", "nope.snap"]);
    assert_eq!(missing.status.code(), Some(1));
}

#[test]
fn a_corrupt_state_file_is_set_aside_and_rebuilt_from_a_snapshot() {
    let mut server = with_snapshots_every(Server::with_modules(&[ORDER_TOTALS]), 50).start();
    let lines: Vec<String> = (0..80)
        .map(|i| order(i, ["a", "b"][i % 2], "OrderPlaced"))
        .collect();
    publish(&server, &lines);
    server.wait_for("order-totals", "a snapshot", |_| {
        !snapshot_files(&server).is_empty()
    });
    server.wait_applied("order-totals", 80);
    let state = server.state("order-totals");
    server.stop();

    let files = state_files(&server);
    assert_eq!(files.len(), 1);
    std::fs::write(&files[0], b"this is not a redb file any more").unwrap();
    let server = server.start();
    server.wait_applied("order-totals", 80);
    assert_eq!(server.state("order-totals"), state);
    let log = server.log();
    assert!(log.contains("moving it aside and rebuilding"), "{log}");
    assert!(log.contains("state restored from snapshot"), "{log}");
    assert!(
        state_files(&server)
            .iter()
            .any(|f| f.to_string_lossy().contains(".corrupt-")),
        "the damaged file is kept for inspection"
    );
}

#[test]
fn one_module_serves_twice_under_names_its_sidecars_give() {
    let server = Server::with_modules(&[ORDER_TOTALS]).start();
    let modules = server.modules_dir();
    std::fs::write(modules.join("eu.toml"), "name = \"order-totals-eu\"\n").unwrap();
    std::fs::copy(ORDER_TOTALS, modules.join("eu.wasm")).unwrap();
    std::fs::write(modules.join("bad.toml"), "name = \"Not A Name\"\n").unwrap();
    std::fs::copy(ORDER_TOTALS, modules.join("bad.wasm")).unwrap();
    let lines: Vec<String> = (0..50).map(|i| order(i, "a", "OrderPlaced")).collect();
    publish(&server, &lines);
    server.wait_for_listing("the renamed copy", |l| {
        l["projections"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["name"] == "order-totals-eu"))
    });
    for name in ["order-totals", "order-totals-eu"] {
        server.wait_applied(name, 50);
        let reply = server.get(&format!("/v1/projections/{name}/state/customer%2Fa"));
        assert_eq!(reply.status, 200, "{name}: {}", reply.body);
        assert_eq!(reply.body["orders"], 50, "{name}: {}", reply.body);
    }
    let listing = server.wait_for_listing("the rejection", |l| {
        l["rejected"].as_array().is_some_and(|r| !r.is_empty())
    });
    let error = listing["rejected"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("bad.toml") && error.contains("Not A Name"),
        "the rejection names the sidecar and its name: {error}"
    );
}

fn sidecar(server: &Server, text: &str) {
    let path = server.modules_dir().join("order_totals.toml");
    let staging = server.modules_dir().join(".order_totals.toml.tmp");
    std::fs::write(&staging, text).unwrap();
    std::fs::rename(&staging, &path).unwrap();
}

#[test]
fn a_sidecar_edit_of_the_error_policy_lets_a_halted_projection_go_on_without_replay() {
    let server = Server::with_modules(&[ORDER_TOTALS]).start();
    let mut lines: Vec<String> = (0..20).map(|i| order(i, "a", "OrderPlaced")).collect();
    lines.push(
        json!({"type": "OrderPlaced", "order_id": "bad", "customer": "a", "amount_cents": "lots"})
            .to_string(),
    );
    publish(&server, &lines);
    let halted = server.wait_for("order-totals", "the halt", |info| {
        info["status"]["state"] == "failed"
    });
    assert_eq!(halted["error_policy"], "halt");

    sidecar(&server, "error_policy = \"skip\"\n");
    publish(&server, &[order(100, "a", "OrderPlaced")]);
    // Failed until the watcher delivers the edit.
    let info = server.wait_through_failure("order-totals", "the skip and the next event", |info| {
        info["status"]["state"] == "running" && offsets_sum(&info["offsets"]) == 22
    });
    assert_eq!(info["error_policy"], "skip");
    assert_eq!(info["failures"]["skipped"], 1, "{info}");
    assert_eq!(server.state("order-totals")["customer/a"]["orders"], 21);
    let log = server.log();
    assert!(
        log.lines()
            .any(|l| l.contains("sidecar settings applied without replay")
                && l.contains("error_policy: halt -> skip")),
        "the log says what changed:\n{log}"
    );
    assert!(!log.contains("building a new version"), "no replay:\n{log}");

    // The version the edit restarted halts and resumes like any other.
    sidecar(&server, "error_policy = \"halt\"\n");
    server.wait_for("order-totals", "the halt policy", |info| {
        info["error_policy"] == "halt"
    });
    let bad =
        json!({"type": "OrderPlaced", "order_id": "bad2", "customer": "a", "amount_cents": "more"});
    publish(&server, &[bad.to_string(), order(101, "a", "OrderPlaced")]);
    let halted = server.wait_through_failure("order-totals", "the second halt", |info| {
        info["status"]["state"] == "failed"
    });
    assert_eq!(halted["status"]["offset"], 22, "{halted}");
    let output = server.cli(&["resume", "order-totals", "--skip", "--reason", "bad amount"]);
    assert!(output.status.success(), "{}", common::stderr(&output));
    let info = server.wait_for("order-totals", "the resumed run", |info| {
        offsets_sum(&info["offsets"]) == 24
    });
    assert_eq!(info["status"]["state"], "running", "{info}");
    assert_eq!(info["failures"]["skipped"], 2, "{info}");
    assert_eq!(server.state("order-totals")["customer/a"]["orders"], 22);
}

#[test]
fn a_sidecar_edit_of_the_topics_rebinds_the_projection_in_the_shadow() {
    let server = Server::with_modules(&[ORDER_TOTALS]).start();
    let lines: Vec<String> = (0..30).map(|i| order(i, "a", "OrderPlaced")).collect();
    publish(&server, &lines);
    server.wait_caught_up("order-totals");
    let eu: Vec<String> = (0..5).map(|i| order(i, "eu", "OrderPlaced")).collect();
    let reply = server.post(
        "/v1/topics/orders-eu/events?key_field=customer",
        "application/x-ndjson",
        eu.join("\n").as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);

    sidecar(&server, "[topics]\norders = \"orders-eu\"\n");
    server.wait_for("order-totals", "the rebound version to serve", |info| {
        info["topic_map"]["orders"] == "orders-eu" && info["building"].is_null()
    });
    server.wait_caught_up("order-totals");
    let state = server.state("order-totals");
    assert_eq!(state["customer/eu"]["orders"], 5, "{state}");
    assert!(state.get("customer/a").is_none(), "{state}");
    let log = server.log();
    assert!(
        log.contains("sidecar changed the binding (topics.orders: orders -> orders-eu)"),
        "{log}"
    );
    assert!(log.contains("swapped to the rebuilt version"), "{log}");
}

#[test]
fn an_invalid_sidecar_is_rejected_while_the_projection_keeps_running() {
    let server = Server::with_modules(&[ORDER_TOTALS]).start();
    publish(&server, &[order(0, "a", "OrderPlaced")]);
    server.wait_applied("order-totals", 1);
    let hash = serving_hash(&server);

    sidecar(&server, "error_policy = \"sometimes\"\n");
    let listing = server.wait_for_listing("the rejection of the sidecar", |l| {
        l["rejected"].as_array().is_some_and(|r| !r.is_empty())
    });
    let rejected = &listing["rejected"][0];
    assert!(
        rejected["file"]
            .as_str()
            .unwrap()
            .ends_with("order_totals.toml"),
        "{rejected}"
    );
    assert!(
        rejected["error"].as_str().unwrap().contains("sometimes"),
        "{rejected}"
    );
    publish(&server, &[order(1, "a", "OrderPlaced")]);
    let info = server.wait_applied("order-totals", 2);
    assert_eq!(info["status"]["state"], "running");
    assert_eq!(info["hash"], hash.as_str());
    assert_eq!(info["error_policy"], "halt");
    let log = server.log();
    assert!(
        log.lines()
            .any(|l| l.contains("rejected") && l.contains("order_totals.toml")),
        "{log}"
    );
    let table = stdout(&server.cli(&["status"]));
    assert!(table.contains("order_totals.toml"), "{table}");
}
