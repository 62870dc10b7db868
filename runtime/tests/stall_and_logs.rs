//! Stall detection and structured logs, on the real binary with
//! `--log-format json`: a module looping within its time budget is flagged
//! `stalled` in the HTTP status, `projector status`, `/metrics` and a warning
//! line, and a recovery is logged; every log line is JSON, and every line
//! about a projection (the host's and the module's own) names the
//! projection and its version.
//!
//! Nothing here waits a fixed time: tests wait for the flag or the log line
//! to appear, with a generous deadline.

mod common;

use std::time::{Duration, Instant};

use common::{Server, stderr, stdout};
use projector_test_guests::{HOSTILE, ORDER_TOTALS};
use serde_json::{Value, json};

fn sidecar(call_timeout_ms: u64) -> String {
    format!(
        r#"
error_policy = "dead-letter"

[topics]
orders = "hostile-events"

[limits]
call_timeout_ms = {call_timeout_ms}
"#
    )
}

fn start(call_timeout_ms: u64) -> Server {
    let server = Server::with_modules(&[HOSTILE, ORDER_TOTALS]);
    server.add_file("hostile.toml", sidecar(call_timeout_ms).as_bytes());
    server
        .args(&["--stall-after-ms", "100", "--log-format", "json"])
        .start()
}

fn publish_hostile(server: &Server, events: &[(&str, &str)]) {
    let body: String = events
        .iter()
        .map(|(what, id)| json!({"do": what, "id": id, "k": id}).to_string() + "\n")
        .collect();
    let reply = server.post(
        "/v1/topics/hostile-events/events?key_field=k",
        "application/x-ndjson",
        body.as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// Every line of the server's log, each of which must be a JSON object.
fn log_lines(server: &Server) -> Vec<Value> {
    server
        .log()
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line)
                .ok()
                .filter(Value::is_object)
                .unwrap_or_else(|| panic!("log line is not a JSON object: {line:?}"))
        })
        .collect()
}

/// Waits until a log line satisfies `check`; returns it.
fn wait_for_line(server: &Server, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(line) = log_lines(server).into_iter().find(|l| check(l)) {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "no log line {what}:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn message(line: &Value) -> &str {
    line["message"].as_str().unwrap_or_default()
}

#[test]
fn a_module_looping_within_its_budget_is_flagged_stalled_everywhere() {
    // A budget longer than the test: the loop holds the worker for good.
    let server = start(3_600_000);
    let hash = server.projection("hostile")["hash"].as_str().unwrap()[..12].to_owned();
    publish_hostile(&server, &[("ok", "a"), ("panic", "p")]);
    server.wait_applied("hostile", 2);
    let before = server.projection("hostile");
    assert_eq!(before["stalled"], false, "{before}");
    publish_hostile(&server, &[("loop", "l")]);

    let info = server.wait_for("hostile", "the stall flag", |i| i["stalled"] == true);
    assert_eq!(info["status"]["state"], "running", "{info}");
    assert_eq!(info["lag"], 1, "{info}");
    assert!(
        info["seconds_since_progress"].as_f64().unwrap() >= 0.1,
        "{info}"
    );
    // A projection with nothing to do is never stalled, however idle.
    assert_eq!(server.projection("order-totals")["stalled"], false);

    let output = server.cli(&["status"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = stdout(&output);
    let row = printed
        .lines()
        .find(|l| l.starts_with("hostile "))
        .unwrap_or_else(|| panic!("{printed}"));
    assert!(row.contains("stalled"), "{printed}");
    assert!(
        printed.contains("stalled: 1 events of lag and nothing applied for"),
        "{printed}"
    );

    let metrics = String::from_utf8(server.get("/metrics").raw).unwrap();
    let stalled = format!(
        "projector_projection_stalled{{projection=\"hostile\",version=\"{hash}\",role=\"serving\"}} 1"
    );
    assert!(metrics.lines().any(|l| l == stalled), "{metrics}");

    let warning = wait_for_line(&server, "saying hostile stalled", |l| {
        message(l).starts_with("projection stalled") && l["projection"] == "hostile"
    });
    assert_eq!(warning["level"], "WARN", "{warning}");
    assert_eq!(warning["version"], hash.as_str(), "{warning}");
    assert!(warning["lag"].as_u64().unwrap() >= 1, "{warning}");

    // The structured-log half: every line is JSON (checked by log_lines),
    // and every line about a projection names it and its version.
    let lines = log_lines(&server);
    let guest_panic = lines
        .iter()
        .find(|l| l["stream"] == "stderr" && message(l).contains("panic"))
        .unwrap_or_else(|| panic!("no guest stderr line:\n{}", server.log()));
    assert_eq!(guest_panic["projection"], "hostile", "{guest_panic}");
    assert_eq!(guest_panic["version"], hash.as_str(), "{guest_panic}");
    let failed = lines
        .iter()
        .find(|l| message(l).starts_with("event failed"))
        .unwrap_or_else(|| panic!("no event failed line:\n{}", server.log()));
    assert_eq!(failed["projection"], "hostile", "{failed}");
    assert_eq!(failed["version"], hash.as_str(), "{failed}");
    for name in ["hostile", "order-totals"] {
        let running = lines
            .iter()
            .find(|l| message(l) == "projection running" && l["projection"] == name)
            .unwrap_or_else(|| panic!("no 'projection running' for {name}:\n{}", server.log()));
        assert_eq!(running["version"].as_str().unwrap().len(), 12, "{running}");
    }
    for line in &lines {
        let target = line["target"].as_str().unwrap_or_default();
        let about_projection = line.get("projection").is_some()
            || target.starts_with("projector::worker")
            || target.starts_with("projector::wasm::host");
        if about_projection {
            assert!(
                line["projection"].is_string() && line["version"].is_string(),
                "a line about a projection without projection and version: {line}"
            );
        }
        for field in ["timestamp", "level", "target", "message"] {
            assert!(line[field].is_string(), "{field} missing: {line}");
        }
    }
}

#[test]
fn a_stall_that_ends_is_logged_as_recovered() {
    // The loop ends when its 5 s budget runs out (twice: in the batch, then
    // alone to find the failing event): a failure dead-lettered, and the
    // projection goes on. The monitor checks every 25 ms and the stall
    // threshold is 100 ms, so it has about 10 s, 400 checks, to see the stall:
    // no clock is under the test's control, so this window is the one margin
    // the test relies on, and it is wide.
    let server = start(5_000);
    let hash = server.projection("hostile")["hash"].as_str().unwrap()[..12].to_owned();
    publish_hostile(&server, &[("ok", "a")]);
    server.wait_applied("hostile", 1);
    publish_hostile(&server, &[("loop", "l"), ("ok", "b")]);

    let stalled = wait_for_line(&server, "saying hostile stalled", |l| {
        message(l).starts_with("projection stalled") && l["projection"] == "hostile"
    });
    assert_eq!(stalled["version"], hash.as_str(), "{stalled}");
    let recovered = wait_for_line(&server, "saying hostile recovered", |l| {
        message(l) == "projection no longer stalled" && l["projection"] == "hostile"
    });
    assert_eq!(recovered["level"], "INFO", "{recovered}");
    assert_eq!(recovered["version"], hash.as_str(), "{recovered}");

    let info = server.wait_caught_up("hostile");
    assert_eq!(info["events_applied"], 3, "{info}");
    assert_eq!(info["stalled"], false, "{info}");
    assert_eq!(info["failures"]["dead_letters"], 1, "{info}");
}
