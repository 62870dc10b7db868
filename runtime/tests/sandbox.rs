//! Hostile modules are contained: endless loops, memory bombs, deep
//! recursion, oversized values, huge scans, panics, lying error indexes,
//! writes during queries and lying descriptors each end as a handler error
//! under the error policy (or a query error), with a message naming the
//! limit, while the host and the other projections go on. A module file
//! over the size limit is refused before it is read. The sandbox
//! probe shows no files, network, environment, real clock or real
//! randomness, and no other projection's state.

mod common;

use common::{Server, events_file, read_json, stderr, stdout};
use projector_test_guests::{HOSTILE, LIAR, ORDER_TOTALS};
use serde_json::{Value, json};

/// `hostile` reads its own topic, with tight limits and the dead-letter
/// policy, so every misdeed is kept as a record and later events go on.
const HOSTILE_SIDECAR: &str = r#"
error_policy = "dead-letter"

[topics]
orders = "hostile-events"

[limits]
call_timeout_ms = 1000
# Room for the 100 MB value the module builds before putting it.
max_memory_bytes = 268435456
max_scan_entries = 100
"#;

fn event(what: &str, id: &str, key: &str) -> String {
    json!({"do": what, "id": id, "k": key}).to_string() + "\n"
}

fn publish(server: &Server, topic: &str, lines: &[String]) {
    let reply = server.post(
        &format!("/v1/topics/{topic}/events?key_field=k"),
        "application/x-ndjson",
        lines.concat().as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
}

fn publish_orders(server: &Server) {
    let output = server.cli(&[
        "publish",
        "orders",
        events_file("orders.jsonl").to_str().unwrap(),
        "--key-field",
        "customer",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
}

fn dead_letters(server: &Server, name: &str) -> Vec<Value> {
    let reply = server.get(&format!("/v1/projections/{name}/dead-letters?limit=1000"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body["records"].as_array().unwrap().clone()
}

fn error_of<'a>(records: &'a [Value], id: &str) -> &'a str {
    records
        .iter()
        .find(|r| r["payload"]["id"] == id)
        .unwrap_or_else(|| panic!("no dead letter for {id}: {records:?}"))["error"]
        .as_str()
        .unwrap()
}

#[test]
fn every_hostile_event_is_contained_and_recorded_while_others_go_on() {
    let server = Server::with_modules(&[HOSTILE, ORDER_TOTALS]);
    server.add_file("hostile.toml", HOSTILE_SIDECAR.as_bytes());
    let server = server.start();

    let misdeeds = [
        (
            "loop",
            "time budget exceeded: the call ran longer than 1000 ms",
        ),
        ("bomb", "memory limit exceeded"),
        ("recurse", "call stack exhausted"),
        ("big-value", "limits.max_value_bytes"),
        (
            "big-key",
            "state key of 65536 bytes exceeds the limit of 4096 bytes (limits.max_key_bytes)",
        ),
        ("panic", "hostile panic on panic-1"),
        ("bad-index", "event index 999999 of a batch of 1"),
    ];
    let mut lines = vec![event("ok", "a1", "a")];
    for (what, _) in misdeeds {
        lines.push(event(what, &format!("{what}-1"), what));
        lines.push(event("ok", &format!("after-{what}"), "a"));
    }
    lines.push(event("huge-scan", "scan-1", "s"));
    lines.push(event("probe", "probe-1", "z"));
    publish(&server, "hostile-events", &lines);
    // The other projection is fed at the same time and must not notice.
    publish_orders(&server);

    let info = server.wait_caught_up("hostile");
    assert_eq!(info["status"]["state"], "running", "{info}");
    assert_eq!(info["events_applied"], lines.len() as u64);
    assert_eq!(
        info["failures"]["dead_letters"],
        misdeeds.len() as u64,
        "{info}"
    );
    assert_eq!(info["error_policy"], "dead-letter");

    let records = dead_letters(&server, "hostile");
    for (what, message) in misdeeds {
        let error = error_of(&records, &format!("{what}-1"));
        assert!(
            error.contains(message),
            "{what}: {error:?} lacks {message:?}"
        );
    }
    for record in &records {
        assert_eq!(record["module_hash"], info["hash"]);
        assert_eq!(record["kind"], "dead_letter");
        assert_eq!(record["attempts"], 1);
    }

    let state = server.state("hostile");
    let mut expected_a = vec![json!("a1")];
    expected_a.extend(misdeeds.iter().map(|(w, _)| json!(format!("after-{w}"))));
    assert_eq!(state["seen/a"], Value::Array(expected_a));
    assert_eq!(state["count"], lines.len() as u64 - misdeeds.len() as u64);
    // The scan asked for u32::MAX entries and got the projection's cap.
    assert_eq!(state["scan-count"], 100);
    assert!(state.get("big").is_none(), "the oversized value was stored");

    // The sandbox: nothing of the machine is visible, time stands still,
    // randomness is fixed, and the other projection's key is not there.
    let probe = &state["probe"];
    assert!(
        probe["file"].as_str().unwrap().starts_with("error"),
        "{probe}"
    );
    assert!(
        probe["cwd"].as_str().unwrap().starts_with("error"),
        "{probe}"
    );
    assert!(
        probe["network"].as_str().unwrap().starts_with("error"),
        "{probe}"
    );
    assert_eq!(probe["env"], 0, "{probe}");
    assert_eq!(probe["wall_clock_ns"], 0, "{probe}");
    assert_eq!(probe["monotonic_elapsed_ns"], 0, "{probe}");
    assert_eq!(probe["other_projection_key"], Value::Null, "{probe}");
    assert_eq!(state["customer/alice"], "hostile was here");

    let totals = server.wait_caught_up("order-totals");
    assert_eq!(totals["status"]["state"], "running", "{totals}");
    assert_eq!(
        server.state("order-totals"),
        read_json(&events_file("orders.expected.json"))
    );

    // The CLI lists the same records.
    let output = server.cli(&["dead-letters", "list", "hostile"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = stdout(&output);
    assert!(printed.contains("7 dead letters"), "{printed}");
    assert!(printed.contains("memory limit exceeded"), "{printed}");

    // A replay computes the same probe: clock and randomness are the
    // same live and in replay.
    let reply = server.post("/v1/projections/hostile/replay", "application/json", b"{}");
    assert_eq!(reply.status, 200, "{}", reply.body);
    server.wait_for("hostile", "the rebuild to be served", |_| {
        server.log().contains("swapped to the rebuilt version")
    });
    let rebuilt = server.state("hostile");
    assert_eq!(rebuilt["probe"], *probe);
    assert_eq!(rebuilt["seen/a"], state["seen/a"]);
    assert_eq!(dead_letters(&server, "hostile").len(), misdeeds.len());
}

#[test]
fn hostile_queries_get_errors_and_the_projection_keeps_answering() {
    let server = Server::with_modules(&[HOSTILE]);
    server.add_file("hostile.toml", HOSTILE_SIDECAR.as_bytes());
    let server = server.start();
    publish(&server, "hostile-events", &[event("ok", "a1", "a")]);
    server.wait_applied("hostile", 1);

    let write = server.post(
        "/v1/projections/hostile/query/write",
        "application/json",
        b"{}",
    );
    assert!(write.status >= 400, "{}", write.body);
    let message = write.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("read-only while a query runs"),
        "{message}"
    );

    let looping = server.post(
        "/v1/projections/hostile/query/loop",
        "application/json",
        b"{}",
    );
    assert!(looping.status >= 400, "{}", looping.body);
    let message = looping.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("time budget exceeded"), "{message}");

    let count = server.post(
        "/v1/projections/hostile/query/count",
        "application/json",
        b"{}",
    );
    assert_eq!(count.status, 200, "{}", count.body);
    assert_eq!(count.body["result"], json!(1));
    assert!(server.state("hostile").get("written-in-query").is_none());
    assert_eq!(server.projection("hostile")["status"]["state"], "running");
}

#[test]
fn under_the_default_policy_a_hostile_event_halts_only_its_projection() {
    let server = Server::with_modules(&[HOSTILE, ORDER_TOTALS]);
    server.add_file(
        "hostile.toml",
        b"[topics]\norders = \"hostile-events\"\n[limits]\ncall_timeout_ms = 500\n",
    );
    let server = server.start();
    publish(
        &server,
        "hostile-events",
        &[
            event("ok", "a1", "a"),
            event("loop", "loop-1", "a"),
            event("ok", "a2", "a"),
        ],
    );
    publish_orders(&server);

    let info = server.wait_caught_up("hostile");
    let status = &info["status"];
    assert_eq!(status["state"], "failed", "{info}");
    assert_eq!(status["offset"], 1, "{info}");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("time budget exceeded: the call ran longer than 500 ms"),
        "{info}"
    );
    // The event before the loop is kept; nothing after it is applied.
    assert_eq!(info["events_applied"], 1);
    assert_eq!(server.state("hostile")["seen/a"], json!(["a1"]));

    let totals = server.wait_caught_up("order-totals");
    assert_eq!(totals["status"]["state"], "running");
    assert_eq!(
        server.state("order-totals"),
        read_json(&events_file("orders.expected.json"))
    );
}

#[test]
fn a_describe_that_lies_later_is_never_believed() {
    let server = Server::with_modules(&[LIAR, ORDER_TOTALS]).start();
    publish_orders(&server);
    let output = server.cli(&[
        "publish",
        "accounts",
        events_file("accounts.jsonl").to_str().unwrap(),
        "--key-field",
        "account",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));

    let orders = std::fs::read_to_string(events_file("orders.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count() as u64;
    let liar = server.wait_applied("liar", orders);
    assert_eq!(liar["status"]["state"], "running", "{liar}");
    assert_eq!(liar["sources"], json!(["orders"]));
    assert_eq!(liar["queries"], json!([]));
    assert_eq!(liar["state_version"], 1);
    assert_eq!(server.state("liar")["count"], orders);

    // The projection it later claims to be is untouched.
    let totals = server.wait_caught_up("order-totals");
    assert_eq!(totals["status"]["state"], "running");
    assert_eq!(totals["state_version"], 1);
    assert_eq!(
        server.state("order-totals"),
        read_json(&events_file("orders.expected.json"))
    );
}

#[test]
fn a_module_over_the_size_limit_is_rejected_naming_the_limit() {
    let server = Server::with_modules(&[ORDER_TOTALS, HOSTILE]);
    let config = server.data_dir().with_file_name("projector.toml");
    let small = std::fs::metadata(ORDER_TOTALS).unwrap().len();
    let large = std::fs::metadata(HOSTILE).unwrap().len();
    assert!(
        large > small,
        "the test needs hostile.wasm to be the larger"
    );
    std::fs::write(&config, format!("[limits]\nmax_module_bytes = {small}\n")).unwrap();
    let server = server.args(&["--config", config.to_str().unwrap()]).start();
    let listing = server.wait_for_listing("the rejection", |l| {
        l["rejected"].as_array().is_some_and(|r| !r.is_empty())
    });
    let error = listing["rejected"][0]["error"].as_str().unwrap();
    assert!(error.contains("hostile.wasm"), "{error}");
    assert!(
        error.contains(&format!(
            "module is {large} bytes, over the limit of {small} bytes (limits.max_module_bytes)"
        )),
        "{error}"
    );
    // The other module is unaffected (it may still be starting when the
    // rejection is listed).
    server.wait_for("order-totals", "running", |p| {
        p["status"]["state"] == "running"
    });
}
