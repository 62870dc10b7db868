//! Partitioned projections (sidecar `scale = "partitioned"`) on one
//! machine: the state is kept per unit (partition p of every topic), each
//! unit folds on its own worker thread into its own state file, and every
//! read answers as the same projection kept globally would. Against the
//! real binary, with `order-totals` (events keyed by customer) run twice:
//! partitioned, and global under another name.

mod common;

use common::orders::{fold_order_totals, order_events, publish_orders, state_diff};
use common::{Server, compact, percent, stderr, stdout};
use projector_test_guests::{ORDER_TOTALS, ORDER_TOTALS_QUERY, ORDER_TOTALS_V2};
use serde_json::{Value, json};

const PARTITIONS: u32 = 4;

fn server() -> Server {
    let server = Server::with_modules(&[ORDER_TOTALS]).args(&[
        "--partitions",
        &PARTITIONS.to_string(),
        "--sync-interval-ms",
        "10",
    ]);
    server.add_file(
        "order_totals.toml",
        b"scale = \"partitioned\"\nkey_templates = [\"customer/{key}\"]\n",
    );
    // The same module, global, as the reference.
    let module = std::fs::read(server.modules_dir().join("order_totals.wasm")).unwrap();
    server.add_file("order_totals_global.wasm", &module);
    server.add_file(
        "order_totals_global.toml",
        b"name = \"order-totals-global\"\n",
    );
    server.start()
}

/// Replaces `order_totals.wasm` with `module` (renamed into place, as a
/// deploy does) and waits until that version serves; its hash.
fn deploy(server: &Server, module: &str) -> String {
    let staged = server.modules_dir().join(".order_totals.wasm.tmp");
    std::fs::copy(module, &staged).unwrap();
    std::fs::rename(&staged, server.modules_dir().join("order_totals.wasm")).unwrap();
    let hash = blake3::hash(&std::fs::read(module).unwrap())
        .to_hex()
        .to_string();
    server.wait_for("order-totals", "the new version", |info| {
        info["hash"] == hash.as_str() && info["building"].is_null()
    });
    hash
}

#[test]
fn a_partitioned_projection_keeps_one_state_file_per_unit_and_answers_as_the_global_one() {
    let mut server = server();
    let events = order_events(0..2000);
    publish_orders(&server, &events);
    let info = server.wait_applied("order-totals", events.len() as u64);
    server.wait_applied("order-totals-global", events.len() as u64);

    // One unit per partition, each with its own events and state file.
    let units = info["units"].as_array().expect("units listed");
    assert_eq!(units.len(), PARTITIONS as usize, "{info}");
    let per_unit: u64 = units
        .iter()
        .map(|u| u["events_applied"].as_u64().unwrap())
        .sum();
    assert_eq!(per_unit, events.len() as u64, "{info}");
    assert!(
        units.iter().filter(|u| u["events_applied"] != 0).count() > 1,
        "the events spread over several units: {info}"
    );
    assert!(units.iter().all(|u| u["status"]["state"] == "running"));
    let hash = info["hash"].as_str().unwrap();
    let folder = server.data_dir().join("projections/order-totals");
    for unit in 0..PARTITIONS {
        let file = folder.join(format!("{hash}.unit-{unit}.redb"));
        assert!(file.exists(), "{} missing", file.display());
    }
    assert!(!folder.join(format!("{hash}.redb")).exists());
    assert!(
        server.log().contains("units=4"),
        "the start is logged with its units"
    );

    // Metrics count the units' work as the projection's.
    let metrics = String::from_utf8(server.get("/metrics").raw).unwrap();
    let applied = metrics
        .lines()
        .find(|l| {
            l.starts_with("projector_events_applied_total{")
                && l.contains("projection=\"order-totals\"")
        })
        .unwrap_or_else(|| panic!("no events counter: {metrics}"));
    assert!(applied.ends_with(" 2000"), "{applied}");
    // Four units and the global copy.
    assert!(
        metrics.contains("projector_units_owned{role=\"active\"} 5"),
        "{metrics}"
    );

    // Scans (paged, merged in key order), lookups and custom queries.
    let want = fold_order_totals(&events);
    let got = server.state("order-totals");
    assert_eq!(got, want, "{}", state_diff(&got, &want));
    assert_eq!(got, server.state("order-totals-global"));
    for key in ["customer/c3", "order/o1234", "customer/nobody"] {
        let partitioned = server.get(&format!(
            "/v1/projections/order-totals/state/{}",
            percent(key)
        ));
        let global = server.get(&format!(
            "/v1/projections/order-totals-global/state/{}",
            percent(key)
        ));
        assert_eq!(partitioned.status, global.status, "{key}");
        if partitioned.status == 200 {
            assert_eq!(partitioned.body, global.body, "{key}");
        } else {
            assert_eq!(
                partitioned.body["error"]["code"],
                global.body["error"]["code"]
            );
            assert_eq!(
                partitioned.body["error"]["offsets"],
                global.body["error"]["offsets"]
            );
        }
    }
    let top = |name: &str| {
        server
            .post(
                &format!("/v1/projections/{name}/query/top-customers"),
                "application/json",
                br#"{"n": 3}"#,
            )
            .body
    };
    assert_eq!(top("order-totals"), top("order-totals-global"));
    assert_eq!(top("order-totals")["result"].as_array().unwrap().len(), 3);

    // Read-your-writes through the CLI, and one consistent read of both:
    // the partitioned one's units together stand on the same offsets.
    let more = order_events(2000..2100);
    publish_orders(&server, &more);
    let reply = server.post(
        "/v1/topics/orders/events?key_field=customer",
        "application/x-ndjson",
        json!({"type": "OrderPlaced", "order_id": "late", "customer": "zed", "amount_cents": 7})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let offsets = compact(&reply.body["next_offsets"]);
    let output = server.cli(&[
        "query",
        "order-totals",
        "customer/zed",
        "--min-offsets",
        &offsets,
        "--wait-ms",
        "30000",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let zed: Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert_eq!(zed, json!({"orders": 1, "total_cents": 7}));
    let request = json!({
        "reads": [
            {"projection": "order-totals", "prefix": "customer/", "limit": 100},
            {"projection": "order-totals-global", "prefix": "customer/", "limit": 100},
        ],
        "min_offsets": offsets,
        "wait_ms": 30000,
    });
    let reply = server.post(
        "/v1/read",
        "application/json",
        request.to_string().as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = &reply.body;
    assert_eq!(
        body["projections"]["order-totals"]["offsets"],
        body["projections"]["order-totals-global"]["offsets"],
        "{body}"
    );
    assert_eq!(body["results"][0]["items"], body["results"][1]["items"]);

    let output = server.cli(&["status"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("4 units (partition p of each topic): 0 running"),
        "{}",
        stdout(&output)
    );

    // A snapshot per unit, by the CLI.
    let output = server.cli(&["snapshot", "create", "order-totals"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = stdout(&output);
    for unit in 0..PARTITIONS {
        assert!(
            printed.contains(&format!("unit {unit}: snapshot ")),
            "{printed}"
        );
    }

    // A restart goes on from every unit's own file, with no replay.
    let applied = 2000 + 100 + 1;
    server.restart();
    let info = server.wait_applied("order-totals", applied);
    assert_eq!(info["units"].as_array().unwrap().len(), PARTITIONS as usize);
    let log = server.log();
    assert!(!log.contains("building a new version"), "{log}");

    // New query code, same state version: every unit's file is taken over
    // at once, without replay.
    let query_hash = deploy(&server, ORDER_TOTALS_QUERY);
    let info = server.projection("order-totals");
    assert_eq!(info["events_applied"], applied, "{info}");
    assert!(server.log().contains("swapped without replay"));
    for unit in 0..PARTITIONS {
        let file = folder.join(format!("{query_hash}.unit-{unit}.redb"));
        assert!(file.exists(), "{} missing", file.display());
    }
    let count = server.post(
        "/v1/projections/order-totals/query/customer-count",
        "application/json",
        b"{}",
    );
    assert_eq!(count.status, 200, "{}", count.body);
    // A new state version: every unit rebuilt in the shadow, swapped together.
    let v2_hash = deploy(&server, ORDER_TOTALS_V2);
    let info = server.wait_for("order-totals", "v2 caught up", |info| {
        info["events_applied"] == applied
    });
    assert_eq!(info["hash"], v2_hash.as_str());
    assert_eq!(info["units"].as_array().unwrap().len(), PARTITIONS as usize);
    assert!(server.log().contains("swapped to the rebuilt version"));

    // Made global by its sidecar: a different binding, rebuilt in the
    // shadow and swapped in with the same answers.
    let before = server.state("order-totals");
    server.add_file(
        "order_totals.toml",
        b"key_templates = [\"customer/{key}\"]\n",
    );
    let listing = server.wait_for_listing("the sidecar rejected", |listing| {
        listing["rejected"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    });
    let error = listing["rejected"][0]["error"].as_str().unwrap();
    assert!(error.contains("add scale = \"partitioned\""), "{error}");
    server.add_file("order_totals.toml", b"# global again\n");
    let info = server.wait_for("order-totals", "the global version to serve", |info| {
        info["units"].is_null() && info["events_applied"] == applied
    });
    assert!(info["building"].is_null(), "{info}");
    assert_eq!(server.state("order-totals"), before);
}

/// The topic does not exist when the projection starts: its units are the
/// partitions a first append would create. Created with more partitions,
/// the projection gets a unit for each new one at once (the others go on
/// with their files), and no event of any partition is left out.
#[test]
fn a_partitioned_projection_follows_its_topic_when_the_partition_count_changes() {
    let server = server();
    let info = server.wait_for("order-totals", "running", |info| {
        info["status"]["state"] == "running"
    });
    assert_eq!(info["units"].as_array().unwrap().len(), PARTITIONS as usize);

    let reply = server.post(
        "/v1/topics/orders",
        "application/json",
        br#"{"partitions": 6}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let events = order_events(0..600);
    publish_orders(&server, &events);
    let info = server.wait_for("order-totals", "six units, every event", |info| {
        info["units"].as_array().map(Vec::len) == Some(6)
            && info["events_applied"] == events.len() as u64
    });
    assert!(info["building"].is_null(), "{info}");
    assert!(
        server
            .log()
            .contains("gained partitions: units added for them"),
        "{}",
        server.log()
    );
    assert_eq!(server.state("order-totals"), fold_order_totals(&events));
}

/// Failed events are kept per unit: a dead-lettered event of each of several
/// partitions is listed once, in pages, with ids unique across the units;
/// a retry runs every unit's. Under `halt`, a failing event stops its unit
/// only, and `resume --skip` restarts it past the event.
#[test]
fn failures_are_kept_per_unit_listed_together_and_resumed_in_their_unit() {
    use common::hostile::{event, records};
    let server = common::hostile::server(
        "scale = \"partitioned\"\nerror_policy = \"dead-letter\"\n",
        &["--partitions", &PARTITIONS.to_string()],
    );
    let keys: Vec<String> = (0..12).map(|k| format!("k{k}")).collect();
    let mut lines = Vec::new();
    for key in &keys {
        lines.push(event("ok", &format!("{key}-1"), key));
        lines.push(event("fail", &format!("{key}-f"), key));
        lines.push(event("ok", &format!("{key}-2"), key));
    }
    let publish = |lines: &[String]| {
        let reply = server.post(
            "/v1/topics/orders/events?key_field=k",
            "application/x-ndjson",
            lines.concat().as_bytes(),
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
    };
    publish(&lines);
    let info = server.wait_applied("hostile", lines.len() as u64);
    assert_eq!(info["failures"]["dead_letters"], 12, "{info}");
    let failing_units = info["units"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["events_applied"] != 0)
        .count();
    assert!(failing_units > 1, "{info}");

    // Paged by `after`: every record once, ids ascending.
    let mut ids = Vec::new();
    let mut after: Option<u64> = None;
    loop {
        let mut path = "/v1/projections/hostile/dead-letters?limit=5".to_owned();
        if let Some(after) = after {
            path.push_str(&format!("&after={after}"));
        }
        let page = server.get(&path).body;
        for record in page["records"].as_array().unwrap() {
            ids.push(record["id"].as_u64().unwrap());
        }
        match page["next_after"].as_u64() {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(ids.len(), 12, "{ids:?}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let mut failed: Vec<String> = records(&server, "dead_letter")
        .iter()
        .map(|r| r["payload"]["id"].as_str().unwrap().to_owned())
        .collect();
    failed.sort();
    let mut want: Vec<String> = keys.iter().map(|k| format!("{k}-f")).collect();
    want.sort();
    assert_eq!(failed, want);

    // A retry asks every unit; the module still refuses them.
    let reply = server.post(
        "/v1/projections/hostile/dead-letters/retry",
        "application/json",
        b"",
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["report"]["retried"], 12, "{}", reply.body);
    assert_eq!(reply.body["report"]["failed"], 12, "{}", reply.body);

    // Halt: one unit stops at its failing event, the others go on.
    server.add_file(
        "hostile.toml",
        b"scale = \"partitioned\"\nerror_policy = \"halt\"\n",
    );
    server.wait_for("hostile", "the halt policy", |info| {
        info["error_policy"] == "halt"
    });
    publish(&[event("fail", "stop", "k1"), event("ok", "after", "k1")]);
    let info = server.wait_for("hostile", "a halted unit", |info| {
        info["status"]["state"] == "failed"
    });
    let stopped: Vec<&serde_json::Value> = info["units"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["status"]["state"] == "failed")
        .collect();
    assert_eq!(stopped.len(), 1, "{info}");
    assert_eq!(
        stopped[0]["unit"], info["status"]["partition"],
        "the failed unit is the one of the event's partition: {info}"
    );
    let output = server.cli(&["resume", "hostile", "--skip", "--reason", "bad input"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let info = server.wait_applied("hostile", lines.len() as u64 + 2);
    assert_eq!(info["status"]["state"], "running", "{info}");
    assert_eq!(info["failures"]["skipped"], 1, "{info}");
    assert!(
        server.state("hostile")["seen/k1"]
            .as_array()
            .unwrap()
            .contains(&json!("after"))
    );
}

/// Each unit's snapshots go to the shared store under the unit's key, and a
/// new machine (only the source, no data) restores every unit from the
/// store's newest snapshot of that unit, then replays only its tail: how a
/// unit will move to another instance.
#[test]
fn a_new_machine_restores_every_unit_from_the_shared_store() {
    let shared = tempfile::tempdir().unwrap();
    let store = shared.path().to_str().unwrap().to_owned();
    let machine = |data_from: Option<&std::path::Path>| {
        let server = Server::with_modules(&[ORDER_TOTALS]).args(&[
            "--partitions",
            &PARTITIONS.to_string(),
            "--sync-interval-ms",
            "10",
            "--snapshot-store",
            &store,
        ]);
        server.add_file("order_totals.toml", b"scale = \"partitioned\"\n");
        if let Some(old) = data_from {
            std::fs::create_dir_all(server.data_dir()).unwrap();
            std::fs::copy(old.join("log.redb"), server.data_dir().join("log.redb")).unwrap();
        }
        server.start()
    };
    let mut a = machine(None);
    let mut events = order_events(0..1000);
    publish_orders(&a, &events);
    let info = a.wait_applied("order-totals", 1000);
    let hash = info["hash"].as_str().unwrap().to_owned();
    let output = a.cli(&["snapshot", "create", "order-totals"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let units_in_store = || {
        (0..PARTITIONS)
            .filter(|unit| {
                std::fs::read_dir(
                    shared
                        .path()
                        .join(format!("order-totals/{hash}.unit-{unit}")),
                )
                .is_ok_and(|mut files| {
                    files.any(|f| f.unwrap().path().extension().is_some_and(|e| e == "snap"))
                })
            })
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while units_in_store() < PARTITIONS as usize {
        assert!(std::time::Instant::now() < deadline, "{}", a.log());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let tail = order_events(1000..1100);
    publish_orders(&a, &tail);
    events.extend(tail);
    a.wait_applied("order-totals", events.len() as u64);
    a.stop();

    let b = machine(Some(&a.data_dir()));
    let info = b.wait_applied("order-totals", events.len() as u64);
    assert_eq!(info["units"].as_array().unwrap().len(), PARTITIONS as usize);
    assert_eq!(b.state("order-totals"), fold_order_totals(&events));
    let log = b.log();
    assert_eq!(
        log.matches("downloaded a snapshot from the snapshot store")
            .count(),
        PARTITIONS as usize,
        "{log}"
    );
    assert_eq!(
        log.matches("state restored from snapshot; replaying the tail")
            .count(),
        PARTITIONS as usize,
        "{log}"
    );
}

/// `POST /v1/read` waiting for offsets one unit has not reached: the units
/// already at their share answer at once from where they stand (they may
/// never commit again), the behind one when its commit reaches it.
#[test]
fn a_consistent_read_waits_only_for_the_units_behind() {
    let server = server();
    publish_orders(&server, &order_events(0..100));
    let info = server.wait_applied("order-totals", 100);
    let zed = projector::partitioner::partition_for_key(b"zed", PARTITIONS);
    let mut target = info["offsets"].clone();
    let next = target["orders"][zed.to_string()].as_u64().unwrap_or(0) + 1;
    target["orders"][zed.to_string()] = json!(next);
    let request = json!({
        "reads": [{"projection": "order-totals", "key": "customer/zed"}],
        "min_offsets": compact(&target),
        "wait_ms": 30000,
    });
    let url = format!("{}/v1/read", server.url);
    let waiting = std::thread::spawn(move || {
        let mut response = common::agent()
            .post(url)
            .header("content-type", "application/json")
            .send(request.to_string().as_bytes())
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.body_mut().read_json().unwrap();
        (status, body)
    });
    let reply = server.post(
        "/v1/topics/orders/events?key_field=customer",
        "application/x-ndjson",
        json!({"type": "OrderPlaced", "order_id": "z1", "customer": "zed", "amount_cents": 5})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let (status, body) = waiting.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["results"][0]["value"],
        json!({"orders": 1, "total_cents": 5})
    );
    assert_eq!(
        body["projections"]["order-totals"]["offsets"], target,
        "{body}"
    );
}

/// An as-of read of a partitioned projection starts each unit from that
/// unit's own nearest snapshot and replays only its partitions' tail.
#[test]
fn as_of_reads_start_every_unit_from_its_own_snapshot() {
    let server = server();
    let first = order_events(0..400);
    publish_orders(&server, &first);
    let at_400 = compact(&server.wait_applied("order-totals", 400)["offsets"]);
    let output = server.cli(&["snapshot", "create", "order-totals"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let second = order_events(400..600);
    publish_orders(&server, &second);
    let at_600 = compact(&server.wait_applied("order-totals", 600)["offsets"]);
    publish_orders(&server, &order_events(600..800));
    server.wait_applied("order-totals", 800);

    let scan_at = |offsets: &str| {
        let reply = server.get(&format!(
            "/v1/projections/order-totals/state?limit=1000&as_of={}",
            percent(offsets)
        ));
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.body
    };
    let state_of = |body: &Value| -> Value {
        let mut state = serde_json::Map::new();
        for item in body["items"].as_array().unwrap() {
            state.insert(
                item["key"].as_str().unwrap().to_owned(),
                item["value"].clone(),
            );
        }
        Value::Object(state)
    };
    let body = scan_at(&at_400);
    assert_eq!(state_of(&body), fold_order_totals(&first));
    assert_eq!(body["as_of"]["replayed_events"], 0, "{}", body["as_of"]);
    assert!(body["as_of"]["snapshot"].is_string(), "{}", body["as_of"]);
    let body = scan_at(&at_600);
    let mut both = first.clone();
    both.extend(second);
    assert_eq!(state_of(&body), fold_order_totals(&both));
    assert_eq!(body["as_of"]["replayed_events"], 200, "{}", body["as_of"]);
}
