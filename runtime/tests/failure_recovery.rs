//! Failure records and recovering a failed projection: as-of reads replay
//! every error policy exactly as the live worker ran it, `projector resume`
//! runs the failed event again or passes over it with the operator's
//! reason, and skipped-event records stay within `keep_skipped` and can be
//! purged.

mod common;

use common::hostile::{event, records};
use common::{Server, hostile, percent, stderr, stdout};
use projector_test_guests::HOSTILE;
use serde_json::{Value, json};

const TOKEN: &str = "resume-token-0123456789";

/// A POST with the admin token, if given: status and JSON body.
fn post(server: &Server, path: &str, token: Option<&str>, body: &[u8]) -> (u16, Value) {
    post_as(server, path, "application/json", token, body)
}

fn post_as(
    server: &Server,
    path: &str,
    content_type: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, Value) {
    let mut request = common::agent()
        .post(format!("{}{path}", server.url))
        .header("content-type", content_type);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let mut response = request.send(body).expect("server reachable");
    let status = response.status().as_u16();
    let bytes = response.body_mut().read_to_vec().unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, body)
}

fn publish(server: &Server, lines: &[String], token: Option<&str>) {
    let (status, body) = post_as(
        server,
        "/v1/topics/orders/events?key_field=k",
        "application/x-ndjson",
        token,
        lines.concat().as_bytes(),
    );
    assert_eq!(status, 200, "{body}");
}

/// The CLI against `server`, with the admin token in the environment.
fn cli_with_token(server: &Server, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_projector"))
        .args(args)
        .env("PROJECTOR_SERVER", &server.url)
        .env("PROJECTOR_API_TOKEN", TOKEN)
        .output()
        .unwrap()
}

/// Partitions of `orders` (the default for a topic the log creates).
const PARTITIONS: u32 = 3;

/// `orders:partition=next,...` from an answer's offsets object, naming
/// every partition (one the projection never reached is at 0).
fn compact(offsets: &Value) -> String {
    (0..PARTITIONS)
        .map(|p| {
            let next = offsets["orders"][p.to_string()].as_u64().unwrap_or(0);
            format!("orders:{p}={next}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The whole state (every key) and the offsets it reflects, live or as of
/// a past position.
fn scan(server: &Server, as_of: Option<&str>) -> (Value, Value) {
    let mut path = "/v1/projections/hostile/state?limit=1000".to_owned();
    if let Some(as_of) = as_of {
        path.push_str(&format!("&as_of={}", percent(as_of)));
    }
    let reply = server.get(&path);
    assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    assert_eq!(reply.body["next_start_after"], Value::Null);
    let items: serde_json::Map<String, Value> = reply.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["key"].as_str().unwrap().to_owned(), i["value"].clone()))
        .collect();
    (Value::Object(items), reply.body["offsets"].clone())
}

/// Waits until the projection has applied everything published or has
/// halted (a halted one stays put).
fn settle(server: &Server) -> Value {
    server.wait_caught_up("hostile")
}

#[test]
fn as_of_answers_equal_the_live_answers_under_every_error_policy() {
    // Key `a` fails at a2 and later succeeds (a3, a4): under quarantine-key
    // those stay parked. A snapshot after a2 carries the parked key, and
    // the as-of reads after it start there.
    let steps: [&[(&str, &str, &str)]; 4] = [
        &[("ok", "a1", "a"), ("ok", "b1", "b")],
        &[("fail", "a2", "a"), ("ok", "b2", "b")],
        &[("ok", "a3", "a"), ("ok", "b3", "b"), ("ok", "c1", "c")],
        &[("fail", "b4", "b"), ("ok", "a4", "a"), ("ok", "c2", "c")],
    ];
    for policy in ["halt", "skip", "dead-letter", "quarantine-key"] {
        let server = hostile::server(&format!("error_policy = \"{policy}\"\n"), &[]);
        let mut live = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            let lines: Vec<String> = step.iter().map(|(w, id, k)| event(w, id, k)).collect();
            publish(&server, &lines, None);
            settle(&server);
            let (state, offsets) = scan(&server, None);
            live.push((compact(&offsets), state));
            if i == 1 {
                let snap =
                    server.post("/v1/projections/hostile/snapshots", "application/json", b"");
                assert_eq!(snap.status, 200, "{policy}: {}", snap.body);
            }
        }
        // The stream did fail: every policy kept or halted on something.
        let info = server.projection("hostile");
        if policy == "halt" {
            assert_eq!(info["status"]["state"], "failed", "{info}");
        } else {
            assert!(!records(&server, "all").is_empty(), "{policy}: {info}");
        }
        if policy == "quarantine-key" {
            assert_eq!(live[3].1["seen/a"], json!(["a1"]), "a stays parked live");
        }
        for (as_of, want) in &live {
            let (got, reflected) = scan(&server, Some(as_of.as_str()));
            assert_eq!(&compact(&reflected), as_of, "{policy}");
            assert_eq!(
                &got, want,
                "{policy}: as_of {as_of} differs from the live answer"
            );
        }
    }
}

#[test]
fn resume_runs_the_failed_event_again_once_the_cause_is_gone() {
    // A value limit too small for one event: it fails until the limit is
    // raised, a cause outside the module.
    let sidecar =
        |max: usize| format!("error_policy = \"halt\"\n[limits]\nmax_value_bytes = {max}\n");
    // The watcher would apply a sidecar edit on its own (see
    // a_halted_projection_goes_on_under_the_policy_its_sidecar_now_names):
    // a settle time longer than the test keeps it out, so that the edit
    // below reaches the projection through resume, which reads the sidecar.
    let server = Server::with_modules(&[HOSTILE]);
    server.add_file("hostile.toml", sidecar(64).as_bytes());
    let config = server.modules_dir().join("../slow-watch.toml");
    std::fs::write(&config, "watch_settle_ms = 3600000\n").unwrap();
    let server = server.args(&["--config", config.to_str().unwrap()]).start();
    let long = "x".repeat(100);
    publish(
        &server,
        // One key, one partition: the order is the log's.
        &[
            event("ok", "a1", "a"),
            event("ok", &long, "a"),
            event("ok", "a2", "a"),
        ],
        None,
    );
    let info = settle(&server);
    assert_eq!(info["status"]["state"], "failed", "{info}");
    assert_eq!(info["status"]["offset"], 1, "{info}");

    // Not failed: 409 naming the status; unknown: 404.
    let reply = server.post("/v1/projections/nope/resume", "application/json", b"{}");
    assert_eq!(reply.status, 404, "{}", reply.body);
    assert_eq!(reply.body["error"]["code"], "unknown_projection");

    // Resumed with the cause still there: it runs the event again and
    // halts on it again.
    let output = server.cli(&["resume", "hostile"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("hostile resumed"),
        "{}",
        stdout(&output)
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while server.log().matches("projection halted").count() < 2 {
        assert!(std::time::Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let info = settle(&server);
    assert_eq!(info["status"]["state"], "failed", "{info}");
    assert_eq!(info["events_applied"], 1, "{info}");

    // The cause removed: resume applies it and goes on.
    server.add_file("hostile.toml", sidecar(4096).as_bytes());
    let reply = server.post("/v1/projections/hostile/resume", "application/json", b"");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["skipped"], Value::Null);
    let info = server.wait_applied("hostile", 3);
    assert_eq!(info["status"]["state"], "running", "{info}");
    assert_eq!(server.state("hostile")["seen/a"], json!(["a1", long, "a2"]));
    assert!(records(&server, "all").is_empty());

    let reply = server.post("/v1/projections/hostile/resume", "application/json", b"{}");
    assert_eq!(reply.status, 409, "{}", reply.body);
    assert_eq!(reply.body["error"]["code"], "not_failed");
    let message = reply.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("is running"), "{message}");
    let output = server.cli(&["resume", "hostile", "--skip", "--reason", "x"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("is running"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn resume_skip_records_the_event_with_the_operators_reason_and_goes_on() {
    let server = hostile::server("error_policy = \"halt\"\n", &["--api-token", TOKEN]);
    publish(
        &server,
        &[
            event("ok", "a1", "a"),
            event("fail", "f1", "a"),
            event("ok", "a2", "a"),
            event("ok", "b1", "b"),
        ],
        Some(TOKEN),
    );
    let info = settle(&server);
    assert_eq!(info["status"]["state"], "failed", "{info}");
    let (halted_state, halted_at) = scan(&server, None);

    let path = "/v1/projections/hostile/resume";
    let (status, body) = post(&server, path, None, b"{\"skip\": true}");
    assert_eq!(status, 401, "token-guarded: {body}");
    let (status, body) = post(&server, path, Some(TOKEN), b"{\"skip\": \"yes\"}");
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "bad_body", "{body}");
    assert_eq!(server.projection("hostile")["status"]["state"], "failed");

    let output = cli_with_token(
        &server,
        &[
            "resume",
            "hostile",
            "--skip",
            "--reason",
            "bad upstream data, ticket 42",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("recorded as skipped (bad upstream data, ticket 42)"),
        "{}",
        stdout(&output)
    );
    // Events applied count the skipped one too.
    let info = server.wait_applied("hostile", 4);
    assert_eq!(info["status"]["state"], "running", "{info}");
    assert_eq!(info["failures"]["skipped"], 1, "{info}");
    let state = server.state("hostile");
    assert_eq!(state["seen/a"], json!(["a1", "a2"]));
    assert_eq!(state["seen/b"], json!(["b1"]));

    let skipped = records(&server, "skipped");
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0]["payload"]["id"], "f1");
    assert_eq!(skipped[0]["error"], "refusing f1");
    assert_eq!(skipped[0]["reason"], "bad upstream data, ticket 42");
    assert!(skipped[0]["failed_at"].as_u64().unwrap() > 0);
    let output = server.cli(&["dead-letters", "list", "hostile"]);
    assert!(
        stdout(&output).contains("skipped by the operator: bad upstream data, ticket 42"),
        "{}",
        stdout(&output)
    );

    // As-of reads pass over the skipped event as the live run did.
    let (live, offsets) = scan(&server, None);
    let (past, _) = scan(&server, Some(compact(&offsets).as_str()));
    assert_eq!(past, live);
    let (past, _) = scan(&server, Some(compact(&halted_at).as_str()));
    assert_eq!(past, halted_state);
}

#[test]
fn a_halted_projection_goes_on_under_the_policy_its_sidecar_now_names() {
    for (policy, kind) in [("skip", "skipped"), ("dead-letter", "dead-letter")] {
        let server = hostile::server("error_policy = \"halt\"\n", &[]);
        publish(
            &server,
            &[
                event("ok", "a1", "a"),
                event("fail", "f1", "a"),
                event("ok", "a2", "a"),
            ],
            None,
        );
        let info = settle(&server);
        assert_eq!(info["status"]["state"], "failed", "{info}");

        // No restart, no resume: the edit alone lets it go on, and the
        // failed event is handled by the new policy.
        server.add_file(
            "hostile.toml",
            format!("error_policy = \"{policy}\"\n").as_bytes(),
        );
        // Status, policy and progress are published one after the other:
        // wait for all three.
        let info = server.wait_through_failure("hostile", "the edited policy", |info| {
            info["events_applied"] == 3
                && info["status"]["state"] == "running"
                && info["error_policy"] == policy
        });
        assert_eq!(info["status"]["state"], "running", "{policy}: {info}");
        assert_eq!(info["error_policy"], policy, "{info}");
        assert_eq!(server.state("hostile")["seen/a"], json!(["a1", "a2"]));
        let kept = records(&server, kind);
        assert_eq!(kept.len(), 1, "{policy}: {kept:?}");
        assert_eq!(kept[0]["payload"]["id"], "f1");
        assert_eq!(kept[0]["error"], "refusing f1");
        let log = server.log();
        assert!(
            log.lines()
                .any(|l| l.contains("sidecar settings applied without replay")
                    && l.contains(&format!("error_policy: halt -> {policy}"))),
            "{policy}: the log says what changed:\n{log}"
        );
    }
}

#[test]
fn skipped_records_stay_within_keep_skipped_and_are_purged_on_request() {
    let server = hostile::server(
        "error_policy = \"skip\"\nkeep_skipped = 3\n",
        &["--api-token", TOKEN],
    );
    let lines: Vec<String> = (0..5)
        .flat_map(|n| {
            [
                event("fail", &format!("f{n}"), "a"),
                event("ok", &format!("a{n}"), "a"),
            ]
        })
        .collect();
    publish(&server, &lines, Some(TOKEN));
    let info = server.wait_applied("hostile", 10);
    // The newest three are kept.
    assert_eq!(info["failures"]["skipped"], 3, "{info}");
    let kept: Vec<Value> = records(&server, "skipped")
        .iter()
        .map(|r| r["payload"]["id"].clone())
        .collect();
    assert_eq!(kept, [json!("f2"), json!("f3"), json!("f4")]);

    let path = "/v1/projections/hostile/dead-letters/purge";
    let (status, body) = post(&server, path, None, b"");
    assert_eq!(status, 401, "token-guarded: {body}");
    let output = cli_with_token(
        &server,
        &["dead-letters", "purge", "hostile", "--keep", "1"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("removed 2 skipped records; 1 skipped kept"),
        "{}",
        stdout(&output)
    );
    let kept = records(&server, "skipped");
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0]["payload"]["id"], "f4");

    let (status, body) = post(&server, path, Some(TOKEN), b"{\"keep\": \"all\"}");
    assert_eq!(status, 400, "{body}");
    let (status, body) = post(&server, path, Some(TOKEN), b"");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["removed"], 1, "{body}");
    assert_eq!(server.projection("hostile")["failures"]["skipped"], 0);
}
