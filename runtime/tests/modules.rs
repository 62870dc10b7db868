//! Bad modules are rejected with their own clear reason while good ones
//! serve; a handler error halts only its own projection.

mod common;

use common::{Server, stdout};
use projector_test_guests::{FAILING, MISSING_EXPORT, ORDER_TOTALS, WRONG_VERSION};
use serde_json::Value;

fn rejection<'a>(listing: &'a Value, file: &str) -> &'a str {
    listing["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["file"].as_str().unwrap().ends_with(file))
        .unwrap_or_else(|| panic!("{file} not rejected: {listing}"))["error"]
        .as_str()
        .unwrap()
}

#[test]
fn bad_modules_are_rejected_each_with_its_reason_and_good_ones_serve() {
    let server = Server::with_modules(&[ORDER_TOTALS, MISSING_EXPORT, WRONG_VERSION]);
    server.add_file("notes.wasm", b"these are not WebAssembly bytes");
    // A valid core module (empty), not a component.
    server.add_file("core.wasm", b"\0asm\x01\0\0\0");
    let server = server.start();

    let listing = server.get("/v1/projections").body;
    let names: Vec<&str> = listing["projections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["order-totals"]);

    let missing = rejection(&listing, "missing_export.wasm");
    assert!(missing.contains("missing required export"), "{missing}");
    assert!(
        missing.contains("query"),
        "names the missing function: {missing}"
    );

    let wrong = rejection(&listing, "wrong_version.wasm");
    assert!(wrong.contains("projector:projection@0.2.0"), "{wrong}");
    assert!(wrong.contains("projector:projection@0.1.0"), "{wrong}");

    let not_wasm = rejection(&listing, "notes.wasm");
    assert!(not_wasm.contains("not a WebAssembly file"), "{not_wasm}");

    let core = rejection(&listing, "core.wasm");
    assert!(
        core.contains("core WebAssembly module, not a component"),
        "{core}"
    );

    // Status shows the rejections; the good module serves.
    let table = stdout(&server.cli(&["status"]));
    assert!(
        table.contains("rejected") && table.contains("notes.wasm"),
        "{table}"
    );
    let reply = server.post(
        "/v1/topics/orders/events?key_field=customer",
        "application/x-ndjson",
        br#"{"type":"OrderPlaced","order_id":"o1","customer":"zoe","amount_cents":250}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    server.wait_caught_up("order-totals");
    let value = server
        .get("/v1/projections/order-totals/state/customer%2Fzoe")
        .body;
    assert_eq!(value["total_cents"], 250);
}

#[test]
fn a_failing_handler_halts_only_its_projection() {
    let server = Server::with_modules(&[ORDER_TOTALS, FAILING]).start();
    let mut body = String::new();
    for i in 0..5 {
        body.push_str(&format!(
            "{{\"type\":\"OrderPlaced\",\"order_id\":\"o{i}\",\"customer\":\"c\",\"amount_cents\":10}}\n"
        ));
    }
    body.push_str("{\"type\":\"OrderPlaced\",\"order_id\":\"bad\",\"customer\":\"c\",\"amount_cents\":10,\"poison\":true}\n");
    for i in 5..9 {
        body.push_str(&format!(
            "{{\"type\":\"OrderPlaced\",\"order_id\":\"o{i}\",\"customer\":\"c\",\"amount_cents\":10}}\n"
        ));
    }
    // One key: one partition, so the offsets are 0..=9 in file order.
    let reply = server.post(
        "/v1/topics/orders/events?key=c",
        "application/x-ndjson",
        body.as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let partition = reply.body["partitions"][0]["partition"].as_u64().unwrap();

    let failing = server.wait_caught_up("failing");
    let status = &failing["status"];
    assert_eq!(status["state"], "failed", "{failing}");
    assert_eq!(status["source"], "orders");
    assert_eq!(status["partition"].as_u64(), Some(partition));
    assert_eq!(
        status["offset"], 5,
        "the poisoned event's offset: {failing}"
    );
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("refusing event bad"),
        "{failing}"
    );
    assert_eq!(failing["last_error"], status["message"]);
    // Events before the failing one were applied and committed.
    assert_eq!(failing["events_applied"], 5);
    let count = server.get("/v1/projections/failing/state/count").body;
    assert_eq!(count, 5);

    // The other projection applied all ten and keeps serving.
    let totals = server.wait_caught_up("order-totals");
    assert_eq!(totals["status"]["state"], "running");
    assert_eq!(totals["events_applied"], 10);
    let customer = server
        .get("/v1/projections/order-totals/state/customer%2Fc")
        .body;
    assert_eq!(customer["orders"], 10);

    let table = stdout(&server.cli(&["status"]));
    assert!(table.contains("failed at orders/"), "{table}");
    assert!(table.contains("@5"), "{table}");
}
