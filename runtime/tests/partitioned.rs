//! Partitioned projections (sidecar `scale = "partitioned"`) on one
//! machine: the state is kept per unit (partition p of every topic), each
//! unit folds on its own worker thread into its own state file, and every
//! read answers as the same projection kept globally would. Against the
//! real binary, with `order-totals` (events keyed by customer) run twice:
//! partitioned, and global under another name.

mod common;

use common::orders::{fold_order_totals, order_events, publish_orders, state_diff};
use common::{Server, percent, stderr, stdout};
use projector_test_guests::ORDER_TOTALS;
use serde_json::{Value, json};

const PARTITIONS: u32 = 4;

fn server() -> Server {
    let server = Server::with_modules(&[ORDER_TOTALS]).args(&[
        "--partitions",
        &PARTITIONS.to_string(),
        "--sync-interval-ms",
        "10",
    ]);
    server.add_file("order_totals.toml", b"scale = \"partitioned\"\n");
    // The same module, global, as the reference.
    let module = std::fs::read(server.modules_dir().join("order_totals.wasm")).unwrap();
    server.add_file("order_totals_global.wasm", &module);
    server.add_file(
        "order_totals_global.toml",
        b"name = \"order-totals-global\"\n",
    );
    server.start()
}

fn compact(offsets: &Value) -> String {
    let mut items = Vec::new();
    for (topic, parts) in offsets.as_object().unwrap() {
        for (partition, next) in parts.as_object().unwrap() {
            items.push(format!("{topic}:{partition}={next}"));
        }
    }
    items.join(",")
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

    // Made global by its sidecar: a different binding, rebuilt in the
    // shadow and swapped in with the same answers.
    let before = server.state("order-totals");
    server.add_file("order_totals.toml", b"# global again\n");
    let info = server.wait_for("order-totals", "the global version to serve", |info| {
        info["units"].is_null() && info["events_applied"] == applied
    });
    assert!(info["building"].is_null(), "{info}");
    assert_eq!(server.state("order-totals"), before);
}

/// The topic does not exist when the projection starts: its units are the
/// partitions a first append would create. Created with another count, the
/// topic no longer matches them: the projection is rebuilt with one unit
/// per partition in the shadow, and no event of any partition is left out.
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
            .contains("changed their partition count: rebuilding its units"),
        "{}",
        server.log()
    );
    assert_eq!(server.state("order-totals"), fold_order_totals(&events));
}
