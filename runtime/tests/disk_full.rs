//! A full disk under the state files: the projection pauses with a status
//! that says so, and resumes by itself once space is freed, with nothing
//! lost and nothing applied twice. The test mounts a small tmpfs under the
//! data folder (it needs root, as CI and this project's machines run it).

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;

use common::Server;
use projector_test_guests::ORDER_TOTALS;
use serde_json::{Value, json};

/// A tmpfs mounted for the test's life.
struct Mount(std::path::PathBuf);

impl Mount {
    fn tmpfs(at: &Path, size: &str) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a tmpfs at {} failed: this test needs root (CI runs as root)",
            at.display()
        );
        Mount(at.to_owned())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system holding `dir` with one file; returns its path.
fn fill(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 64 << 10];
    loop {
        match file.write_all(&chunk) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    // Smaller writes take the last pages.
    while file.write_all(&[0u8; 512]).is_ok() {}
    path
}

fn orders(range: std::ops::Range<usize>) -> Vec<Value> {
    range
        .map(|i| {
            json!({
                "type": "OrderPlaced",
                "order_id": format!("order-{i:06}"),
                "customer": format!("c{}", i % 50),
                "amount_cents": 100 + (i % 7) as u64,
            })
        })
        .collect()
}

fn publish(server: &Server, events: &[Value]) {
    let body: String = events.iter().map(|e| format!("{e}\n")).collect();
    let reply = server.post(
        "/v1/topics/orders/events?key_field=customer",
        "application/x-ndjson",
        body.as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// The `order-totals` fold of `events`.
fn fold(events: &[Value]) -> Value {
    let mut state = serde_json::Map::new();
    for e in events {
        let customer = e["customer"].as_str().unwrap();
        let amount = e["amount_cents"].as_u64().unwrap();
        let key = format!("customer/{customer}");
        let totals = state
            .entry(key)
            .or_insert_with(|| json!({"orders": 0, "total_cents": 0}));
        totals["orders"] = json!(totals["orders"].as_u64().unwrap() + 1);
        totals["total_cents"] = json!(totals["total_cents"].as_u64().unwrap() + amount);
        state.insert(
            format!("order/{}", e["order_id"].as_str().unwrap()),
            json!({"customer": customer, "amount_cents": amount, "cancelled": false}),
        );
    }
    Value::Object(state)
}

#[test]
fn a_full_disk_pauses_the_projection_and_freeing_space_resumes_it() {
    let server = Server::with_modules(&[ORDER_TOTALS]);
    let state_dir = server.data_dir().join("projections");
    let _mount = Mount::tmpfs(&state_dir, "8m");
    let server = server.args(&["--sync-interval-ms", "50"]).start();

    let first = orders(0..2_000);
    publish(&server, &first);
    server.wait_applied("order-totals", first.len() as u64);

    let filler = fill(&state_dir);
    // Each order adds a key: the state file must grow, and cannot.
    let second = orders(2_000..40_000);
    publish(&server, &second);
    let paused = server.wait_for("order-totals", "a pause for the full disk", |info| {
        info["status"]["state"] == "paused"
    });
    let reason = paused["status"]["reason"].as_str().unwrap();
    assert!(reason.contains("disk full"), "{reason}");
    assert!(reason.contains("No space left on device"), "{reason}");
    assert!(reason.contains("resumes by itself"), "{reason}");
    assert!(
        reason.contains(&state_dir.display().to_string()),
        "{reason}"
    );
    // Queries keep being answered from what is durable, or say why not.
    let health = server.get("/v1/health");
    assert_eq!(health.status, 200);

    std::fs::remove_file(&filler).unwrap();
    let all: Vec<Value> = first.iter().chain(&second).cloned().collect();
    let info = server.wait_applied("order-totals", all.len() as u64);
    assert_eq!(info["status"]["state"], "running", "{info}");
    assert_eq!(info["lag"], 0, "{info}");
    assert_eq!(server.state("order-totals"), fold(&all));
    assert!(server.log().contains("projection resumed"));
}

#[test]
fn a_full_disk_refuses_appends_clearly_and_they_work_again_once_space_returns() {
    let server = Server::with_modules(&[ORDER_TOTALS]);
    let data = server.data_dir();
    let _mount = Mount::tmpfs(&data, "24m");
    let server = server.start();

    let first = orders(0..2_000);
    publish(&server, &first);
    server.wait_applied("order-totals", first.len() as u64);

    let filler = fill(&data);
    let second = orders(2_000..40_000);
    let body: String = second.iter().map(|e| format!("{e}\n")).collect();
    let refused = server.post(
        "/v1/topics/orders/events?key_field=customer",
        "application/x-ndjson",
        body.as_bytes(),
    );
    assert_eq!(refused.status, 503, "{}", refused.body);
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("nothing was written"), "{message}");
    assert!(message.contains("disk full"), "{message}");
    assert!(message.contains("log.redb"), "{message}");
    // Nothing of the refused request is in the log.
    let topics = server.get("/v1/topics").body;
    let heads: u64 = topics["topics"][0]["heads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_u64().unwrap())
        .sum();
    assert_eq!(heads, first.len() as u64, "{topics}");

    std::fs::remove_file(&filler).unwrap();
    publish(&server, &second);
    let all: Vec<Value> = first.iter().chain(&second).cloned().collect();
    let info = server.wait_applied("order-totals", all.len() as u64);
    assert_eq!(info["status"]["state"], "running", "{info}");
    assert_eq!(server.state("order-totals"), fold(&all));
}
