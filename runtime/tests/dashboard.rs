//! The web dashboard end to end in headless Chromium: the real binary with
//! the example projections and their sample events, the page driven by
//! playwright-core (runtime/tests/dashboard/check.mjs). It checks the page
//! loads without console errors, lists the projections, and that a key
//! lookup, a prefix scan and a custom query show the expected values; it
//! leaves a screenshot at `target/dashboard.png`.
//!
//! A second check (runtime/tests/dashboard/resume.mjs) drives the resume
//! buttons of a halted projection on a server with an admin token.
//!
//! Chromium and playwright-core come from `scripts/install-browser-tools.sh`
//! (scripts/test.sh runs it); when either is missing the test fails and says
//! so, it never skips.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Server, events_file, stderr, stdout};
use projector_test_guests::{ACCOUNT_BALANCES, HOSTILE, ORDER_TOTALS};

const INSTALL: &str =
    "run ./scripts/install-browser-tools.sh (Debian's chromium from apt, playwright-core from npm)";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("PROJECTOR_CHROMIUM") {
        return path.into();
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("chromium"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("chromium is not installed: {INSTALL}"))
}

fn publish(server: &Server, topic: &str, file: &str, key_field: &str) {
    let path = events_file(file);
    let output = server.cli(&[
        "publish",
        topic,
        path.to_str().unwrap(),
        "--key-field",
        key_field,
    ]);
    assert!(output.status.success(), "publish: {}", stderr(&output));
}

/// Chromium, and the folder holding playwright-core; fails when missing.
fn browser_tools() -> (PathBuf, PathBuf) {
    let chromium = chromium();
    let tools = workspace().join("target/tools/browser");
    assert!(
        tools
            .join("node_modules/playwright-core/package.json")
            .is_file(),
        "playwright-core is not installed in {}: {INSTALL}",
        tools.display()
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "node is not installed (Node 20 or newer)"
    );
    (chromium, tools)
}

#[test]
fn dashboard_shows_projections_and_state_in_chromium() {
    let (chromium, tools) = browser_tools();

    // order-totals partitioned: the dashboard answers as for a global one,
    // and shows the units.
    let server = Server::with_modules(&[ORDER_TOTALS, ACCOUNT_BALANCES]);
    server.add_file("order_totals.toml", b"scale = \"partitioned\"\n");
    let server = server.start();
    publish(&server, "orders", "orders.jsonl", "customer");
    publish(&server, "accounts", "accounts.jsonl", "account");
    for name in ["order-totals", "account-balances"] {
        let info = server.wait_caught_up(name);
        assert_eq!(info["status"]["state"], "running", "{info}");
    }

    let screenshot = workspace().join("target/dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    let output = Command::new("node")
        .arg(workspace().join("runtime/tests/dashboard/check.mjs"))
        .env("DASHBOARD_URL", format!("{}/", server.url))
        .env("CHROMIUM", &chromium)
        .env("PLAYWRIGHT_DIR", &tools)
        .env("EXPECTED_ORDERS", events_file("orders.expected.json"))
        .env("SCREENSHOT", &screenshot)
        .output()
        .expect("node runs");
    assert!(
        output.status.success(),
        "dashboard check failed:\n{}\n{}\nserver log:\n{}",
        stdout(&output),
        stderr(&output),
        server.log()
    );
    let png = std::fs::read(&screenshot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG"),
        "not a PNG: {}",
        screenshot.display()
    );
    println!("{}", stdout(&output));
}

#[test]
fn dashboard_resumes_a_failed_projection_in_chromium() {
    const TOKEN: &str = "dashboard-token-0123456789";
    let (chromium, tools) = browser_tools();
    let server = Server::with_modules(&[HOSTILE]).args(&["--api-token", TOKEN]);
    server.add_file("hostile.toml", b"error_policy = \"halt\"\n");
    let server = server.start();
    let events = server.dir.path().join("events.jsonl");
    std::fs::write(
        &events,
        [("ok", "a1"), ("fail", "f1"), ("ok", "a2"), ("fail", "f2")]
            .map(|(what, id)| format!("{{\"do\": \"{what}\", \"id\": \"{id}\", \"k\": \"a\"}}\n"))
            .concat(),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_projector"))
        .args([
            "publish",
            "orders",
            events.to_str().unwrap(),
            "--key-field",
            "k",
        ])
        .env("PROJECTOR_SERVER", &server.url)
        .env("PROJECTOR_API_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(output.status.success(), "publish: {}", stderr(&output));
    let info = server.wait_caught_up("hostile");
    assert_eq!(info["status"]["state"], "failed", "{info}");

    let screenshot = workspace().join("target/dashboard-resume.png");
    let output = Command::new("node")
        .arg(workspace().join("runtime/tests/dashboard/resume.mjs"))
        .env("DASHBOARD_URL", format!("{}/", server.url))
        .env("CHROMIUM", &chromium)
        .env("PLAYWRIGHT_DIR", &tools)
        .env("TOKEN", TOKEN)
        .env("SCREENSHOT", &screenshot)
        .output()
        .expect("node runs");
    assert!(
        output.status.success(),
        "dashboard resume check failed:\n{}\n{}\nserver log:\n{}",
        stdout(&output),
        stderr(&output),
        server.log()
    );
    // What the browser did is what the server recorded: a1 applied, f1
    // skipped, a2 applied (3 events passed), halted on f2 again after its
    // resume.
    let info = server.wait_caught_up("hostile");
    assert_eq!(info["status"]["state"], "failed", "{info}");
    assert_eq!(info["status"]["offset"], 3, "{info}");
    assert_eq!(info["events_applied"], 3, "{info}");
    assert_eq!(info["failures"]["skipped"], 1, "{info}");
    assert_eq!(server.log().matches("projection resumed").count(), 2);
    assert!(
        server.log().contains("projection resumed"),
        "{}",
        server.log()
    );
    println!("{}", stdout(&output));
}
