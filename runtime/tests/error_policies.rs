//! The error policies: `skip` records and counts, `dead-letter` keeps the
//! event for `projector dead-letters retry`, `quarantine-key` parks a key's
//! events while other keys flow and replays them in order once a fixed
//! version is deployed. No event is ever dropped without a record.

mod common;

use common::hostile::{event, records};
use common::{Server, hostile, stderr, stdout};
use projector_test_guests::{HOSTILE, HOSTILE_FIXED};
use serde_json::json;

fn publish(server: &Server, lines: &[String]) {
    let reply = server.post(
        "/v1/topics/orders/events?key_field=k",
        "application/x-ndjson",
        lines.concat().as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
}

fn server_with_policy(policy: &str) -> Server {
    hostile::server(&format!("error_policy = \"{policy}\"\n"), &[])
}

/// Replaces the module file with the fixed version (same name and state
/// version: it takes over the state without replay).
fn deploy_fix(server: &Server) -> String {
    let target = server.modules_dir().join("hostile.wasm");
    let staged = server.modules_dir().join(".hostile.wasm.tmp");
    std::fs::copy(HOSTILE_FIXED, &staged).unwrap();
    std::fs::rename(&staged, &target).unwrap();
    let hash = blake3::hash(&std::fs::read(HOSTILE_FIXED).unwrap())
        .to_hex()
        .to_string();
    server.wait_for("hostile", "the fixed version", |info| {
        info["hash"] == hash.as_str()
    });
    hash
}

#[test]
fn skip_records_and_counts_the_failed_event_and_goes_on() {
    let server = server_with_policy("skip");
    publish(
        &server,
        &[
            event("ok", "a1", "a"),
            event("fail", "f1", "a"),
            event("ok", "a2", "a"),
        ],
    );
    let info = server.wait_applied("hostile", 3);
    assert_eq!(info["status"]["state"], "running");
    assert_eq!(info["failures"]["skipped"], 1, "{info}");
    assert_eq!(info["last_failure"]["error"], "refusing f1");
    assert_eq!(info["last_failure"]["offset"], 1);
    assert_eq!(server.state("hostile")["seen/a"], json!(["a1", "a2"]));

    let skipped = records(&server, "skipped");
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0]["payload"]["id"], "f1");
    assert_eq!(skipped[0]["key"], "a");
    assert!(server.log().contains("event failed: refusing f1"));
}

#[test]
fn dead_letters_are_kept_listed_and_retried_after_a_fix() {
    let server = server_with_policy("dead-letter");
    publish(
        &server,
        &[
            event("ok", "a1", "a"),
            event("fail", "f1", "a"),
            event("ok", "b1", "b"),
            event("fail", "f2", "b"),
        ],
    );
    let info = server.wait_applied("hostile", 4);
    assert_eq!(info["failures"]["dead_letters"], 2, "{info}");
    let listed = records(&server, "dead_letter");
    assert_eq!(
        listed
            .iter()
            .map(|r| r["payload"]["id"].clone())
            .collect::<Vec<_>>(),
        [json!("f1"), json!("f2")]
    );
    assert_eq!(listed[0]["module_version"], "1");

    let output = server.cli(&["dead-letters", "list", "hostile"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("2 dead letters"),
        "{}",
        stdout(&output)
    );
    assert!(
        stdout(&output).contains("refusing f2"),
        "{}",
        stdout(&output)
    );

    // Retrying on the same buggy version fails again: kept, attempt counted.
    let output = server.cli(&["dead-letters", "retry", "hostile"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("retried 2, applied 0, failed again 2"),
        "{}",
        stdout(&output)
    );
    assert_eq!(records(&server, "dead_letter")[0]["attempts"], 2);

    let fixed = deploy_fix(&server);
    let output = server.cli(&["dead-letters", "retry", "hostile"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("retried 2, applied 2, failed again 0"),
        "{}",
        stdout(&output)
    );
    assert!(records(&server, "all").is_empty());
    let info = server.projection("hostile");
    assert_eq!(info["hash"], fixed.as_str());
    assert_eq!(info["failures"]["dead_letters"], 0);
    let state = server.state("hostile");
    // Dead letters are applied after the events that passed them.
    assert_eq!(state["seen/a"], json!(["a1", "f1"]));
    assert_eq!(state["seen/b"], json!(["b1", "f2"]));
    assert_eq!(state["count"], 4);
}

#[test]
fn quarantine_parks_a_key_while_others_flow_and_a_fix_replays_it_in_order() {
    let server = server_with_policy("quarantine-key");
    publish(
        &server,
        &[
            event("ok", "a1", "a"),
            event("fail", "a2", "a"),
            event("ok", "b1", "b"),
            event("ok", "a3", "a"),
            event("ok", "b2", "b"),
        ],
    );
    let info = server.wait_applied("hostile", 5);
    assert_eq!(info["failures"]["parked"], 2, "{info}");
    let state = server.state("hostile");
    assert_eq!(state["seen/a"], json!(["a1"]));
    assert_eq!(state["seen/b"], json!(["b1", "b2"]));
    let parked = records(&server, "parked");
    assert_eq!(parked[0]["error"], "refusing a2");
    assert!(
        parked[1]["error"]
            .as_str()
            .unwrap()
            .contains("key under quarantine"),
        "{parked:?}"
    );

    // A later event of the parked key is parked too; other keys go on.
    publish(&server, &[event("ok", "a4", "a"), event("ok", "b3", "b")]);
    let info = server.wait_applied("hostile", 7);
    assert_eq!(info["failures"]["parked"], 3, "{info}");
    assert_eq!(server.state("hostile")["seen/b"], json!(["b1", "b2", "b3"]));

    // The fixed version takes over and runs the parked events first, in
    // their order, then new events of that key.
    deploy_fix(&server);
    let info = server.wait_for("hostile", "the parked events replayed", |info| {
        info["failures"]["parked"] == 0
    });
    assert_eq!(info["status"]["state"], "running");
    publish(&server, &[event("ok", "a5", "a")]);
    server.wait_applied("hostile", 8);
    let state = server.state("hostile");
    assert_eq!(state["seen/a"], json!(["a1", "a2", "a3", "a4", "a5"]));
    assert_eq!(state["count"], 8);
    assert!(records(&server, "all").is_empty());
}

#[test]
fn retry_on_a_halted_projection_says_why_it_cannot_run() {
    let server = server_with_policy("halt");
    publish(&server, &[event("fail", "f1", "a")]);
    let info = server.wait_caught_up("hostile");
    assert_eq!(info["status"]["state"], "failed");
    let output = server.cli(&["dead-letters", "retry", "hostile"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("is failed"), "{}", stderr(&output));
    let output = server.cli(&["dead-letters", "retry", "nope"]);
    assert!(
        stderr(&output).contains("no projection named"),
        "{}",
        stderr(&output)
    );
}

/// A retry whose event loops runs under the call's time budget (here ten
/// minutes, far beyond the test's patience); a swap to a new version must
/// not wait for it: the stop ends the call at once, and the event stays a
/// dead letter with no attempt counted.
#[test]
fn a_long_dead_letter_retry_does_not_hold_up_a_swap() {
    let sidecar = |timeout_ms: u64| {
        format!("error_policy = \"dead-letter\"\n[limits]\ncall_timeout_ms = {timeout_ms}\n")
    };
    let server = Server::with_modules(&[HOSTILE]);
    server.add_file("hostile.toml", sidecar(200).as_bytes());
    let mut server = server.start();
    publish(
        &server,
        &[
            event("ok", "a1", "a"),
            event("loop", "l1", "l"),
            event("ok", "a2", "a"),
        ],
    );
    let info = server.wait_applied("hostile", 3);
    assert_eq!(info["failures"]["dead_letters"], 1, "{info}");

    server.stop();
    server.add_file("hostile.toml", sidecar(600_000).as_bytes());
    server.launch();
    server.wait_up();
    let server = std::sync::Arc::new(server);
    let retry = {
        let server = server.clone();
        std::thread::spawn(move || server.cli(&["dead-letters", "retry", "hostile"]))
    };
    server.wait_for("hostile", "the retry to start", |_| {
        server.log().contains("retrying failed events")
    });
    // Same state version: the old version stops, the new one takes over.
    deploy_fix(&server);
    let output = retry.join().unwrap();
    assert!(!output.status.success(), "{}", stdout(&output));
    assert!(
        stderr(&output).contains("stopped before the retry finished"),
        "{}",
        stderr(&output)
    );
    let records = records(&server, "dead_letter");
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["payload"]["id"], "l1");
    assert_eq!(records[0]["attempts"], 1, "{records:?}");
}
