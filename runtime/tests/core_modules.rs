//! Core modules under the core-module ABI (`wit/core-abi.md`) run through
//! the same worker as components; core modules that do not follow it are
//! rejected or contained with a message that says what is wrong.

mod common;

use common::core_counter::{COUNTER, PRELUDE, counter};
use common::{Server, events_file};
use serde_json::json;

fn orders_published(server: &Server) -> u64 {
    let path = events_file("orders.jsonl");
    let output = server.cli(&[
        "publish",
        "orders",
        path.to_str().unwrap(),
        "--key-field",
        "customer",
    ]);
    assert!(output.status.success(), "{}", common::stderr(&output));
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count() as u64
}

#[test]
fn a_core_module_runs_like_a_component() {
    let server = Server::new();
    server.add_file("counter.wasm", &counter("core-counter", "(i64.const 0)"));
    let server = server.start();
    let published = orders_published(&server);
    let info = server.wait_applied("core-counter", published);
    assert_eq!(info["status"]["state"], "running", "{info}");
    assert_eq!(info["queries"], json!(["count"]));
    assert_eq!(server.state("core-counter")["count"], published);
    let answer = server.post(
        "/v1/projections/core-counter/query/count",
        "application/json",
        b"{}",
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["result"], published);
}

#[test]
fn core_modules_that_break_the_abi_are_rejected_or_contained() {
    let server = Server::new();
    // A core module that does not claim the ABI.
    server.add_file(
        "plain.wasm",
        &wat::parse_str("(module (memory (export \"memory\") 1))").unwrap(),
    );
    // Claims the ABI but lacks `projector_handle`.
    let missing = COUNTER.replace("(export \"projector_handle\")", "");
    server.add_file(
        "missing.wasm",
        &wat::parse_str(
            missing
                .replace("$PRELUDE", PRELUDE)
                .replace("$DESCRIPTOR_LEN", "2")
                .replace("$DESCRIPTOR", "{}")
                .replace("$HANDLE_RESULT", "(i64.const 0)"),
        )
        .unwrap(),
    );
    // Answers a batch with a pointer outside its memory.
    server.add_file(
        "wild.wasm",
        &counter("wild", "(i64.const 0x7fff000000000010)"),
    );
    let server = server.start();

    let listing = server.get("/v1/projections").body;
    let rejected = listing["rejected"].as_array().unwrap();
    let reason = |file: &str| {
        rejected
            .iter()
            .find(|r| r["file"].as_str().unwrap().ends_with(file))
            .unwrap_or_else(|| panic!("{file} not rejected: {listing}"))["error"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(reason("plain.wasm").contains(
        "a core WebAssembly module, not a component, and it does not follow the core-module ABI"
    ));
    assert!(reason("missing.wasm").contains("lacks the export `projector_handle`"));

    orders_published(&server);
    let wild = server.wait_caught_up("wild");
    assert_eq!(wild["status"]["state"], "failed", "{wild}");
    let message = wild["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("`projector_handle` returned bytes"),
        "{message}"
    );
    assert!(message.contains("outside the module's memory"), "{message}");
}

/// Core modules share the compile cache with components: a restart loads the
/// compiled code, and a damaged entry is recompiled rather than fatal.
#[test]
fn a_core_module_is_compiled_once_and_cached() {
    use projector::wasm::{Limits, WasmHost};
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let file = dir.path().join("counter.wasm");
    std::fs::write(&file, counter("core-counter", "(i64.const 0)")).unwrap();
    let load = || {
        WasmHost::new(&cache, Limits::default())
            .unwrap()
            .load(&file)
            .unwrap()
    };

    let first = load();
    assert!(!first.from_cache, "an empty cache compiles");
    let entries: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let second = load();
    assert!(second.from_cache, "a new host reuses the compiled module");
    assert_eq!(second.descriptor.name, "core-counter");

    std::fs::write(&entries[0], b"garbage").unwrap();
    assert!(!load().from_cache, "a damaged entry is recompiled");
    assert!(load().from_cache, "and rewritten");
}
