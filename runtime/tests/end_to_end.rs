//! The sample events through the example projections, end to end: publish
//! with the CLI, query over HTTP and the CLI, restart, publish again.

mod common;

use common::{Server, events_file, read_json, stderr, stdout};
use projector_test_guests::{ACCOUNT_BALANCES, ORDER_TOTALS};
use serde_json::{Value, json};

fn publish(server: &Server, topic: &str, file: &str, key_field: &str) -> String {
    let path = events_file(file);
    let output = server.cli(&[
        "publish",
        topic,
        path.to_str().unwrap(),
        "--key-field",
        key_field,
    ]);
    assert!(
        output.status.success(),
        "publish failed: {}",
        stderr(&output)
    );
    stdout(&output)
}

#[test]
fn sample_events_produce_the_expected_state() {
    let server = Server::with_modules(&[ORDER_TOTALS, ACCOUNT_BALANCES]).start();
    let printed = publish(&server, "orders", "orders.jsonl", "customer");
    assert!(printed.contains("published"), "{printed}");
    assert!(printed.contains("next offsets"), "{printed}");
    publish(&server, "accounts", "accounts.jsonl", "account");

    for (name, expected) in [
        ("order-totals", "orders.expected.json"),
        ("account-balances", "accounts.expected.json"),
    ] {
        let info = server.wait_caught_up(name);
        assert_eq!(info["status"]["state"], "running", "{info}");
        assert_eq!(
            server.state(name),
            read_json(&events_file(expected)),
            "{name} state differs from {expected}"
        );
    }

    // One key over HTTP: the stored JSON value, with the offsets it reflects.
    let expected = read_json(&events_file("orders.expected.json"));
    let reply = server.get("/v1/projections/order-totals/state/customer%2Falice");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, expected["customer/alice"]);
    let offsets: Value = serde_json::from_str(&reply.offsets_header.unwrap()).unwrap();
    let total: u64 = offsets["orders"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    let lines = std::fs::read_to_string(events_file("orders.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count() as u64;
    assert_eq!(total, lines, "the answer reflects every published event");

    // The same key with the CLI: the value as JSON on stdout.
    let output = server.cli(&["query", "order-totals", "customer/alice"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let printed: Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    assert_eq!(printed, expected["customer/alice"]);

    // An absent key: exit code 1 and a message on stderr.
    let output = server.cli(&["query", "order-totals", "customer/nobody"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("customer/nobody"),
        "{}",
        stderr(&output)
    );
    assert!(stdout(&output).is_empty());

    // The custom query, over the CLI: highest total first, ties by id.
    let output = server.cli(&[
        "query",
        "order-totals",
        "--query",
        "top-customers",
        "--args",
        r#"{"n": 2}"#,
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let top: Value = serde_json::from_str(&stdout(&output)).unwrap();
    let mut customers: Vec<(String, i64)> = expected
        .as_object()
        .unwrap()
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("customer/")
                .map(|c| (c.to_owned(), v["total_cents"].as_i64().unwrap()))
        })
        .collect();
    customers.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let want: Vec<Value> = customers
        .iter()
        .take(2)
        .map(|(c, t)| json!({"customer": c, "total_cents": t}))
        .collect();
    assert_eq!(top, Value::Array(want));

    // Prefix scan with the CLI.
    let output = server.cli(&["query", "order-totals", "--prefix", "customer/"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let items: Vec<Value> = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(items.len(), customers.len());

    // Status as a table names both projections as running.
    let output = server.cli(&["status"]);
    let table = stdout(&output);
    assert!(
        table.contains("order-totals") && table.contains("account-balances"),
        "{table}"
    );
    assert_eq!(table.matches("running").count(), 2, "{table}");
}

/// Publishing the same file twice around a restart doubles every count
/// exactly: nothing lost, nothing applied twice.
#[test]
fn state_survives_restarts_without_double_applying() {
    let mut server = Server::with_modules(&[ORDER_TOTALS]).start();
    publish(&server, "orders", "orders.jsonl", "customer");
    server.wait_caught_up("order-totals");
    let once = server.state("order-totals");
    let applied_once = server.projection("order-totals")["events_applied"]
        .as_u64()
        .unwrap();

    server.restart();
    let info = server.wait_caught_up("order-totals");
    assert_eq!(info["events_applied"].as_u64().unwrap(), applied_once);
    assert_eq!(
        server.state("order-totals"),
        once,
        "a restart changes nothing"
    );

    // Same events again, with fresh order ids, after an abrupt kill.
    server.kill();
    let text = std::fs::read_to_string(events_file("orders.jsonl")).unwrap();
    let renamed = text
        .replace("\"order_id\": \"", "\"order_id\": \"again-")
        .replace("\"order_id\":\"", "\"order_id\":\"again-");
    let second = server.dir.path().join("again.jsonl");
    std::fs::write(&second, renamed).unwrap();
    let mut server = server.start();
    let output = server.cli(&[
        "publish",
        "orders",
        second.to_str().unwrap(),
        "--key-field",
        "customer",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let info = server.wait_caught_up("order-totals");
    assert_eq!(info["events_applied"].as_u64().unwrap(), 2 * applied_once);

    let twice = server.state("order-totals");
    for (key, value) in once.as_object().unwrap() {
        if let Some(customer) = key.strip_prefix("customer/") {
            let doubled = &twice[key.as_str()];
            assert_eq!(
                doubled["orders"].as_i64().unwrap(),
                2 * value["orders"].as_i64().unwrap(),
                "{customer}"
            );
            assert_eq!(
                doubled["total_cents"].as_i64().unwrap(),
                2 * value["total_cents"].as_i64().unwrap(),
                "{customer}"
            );
        }
    }
    server.stop();
}

/// An acknowledged append is durable: killing the process right after the
/// answer loses none of it, and the projection catches up after restart.
#[test]
fn acknowledged_appends_survive_a_kill() {
    let mut server = Server::with_modules(&[ORDER_TOTALS]).start();
    let mut total = 0;
    for round in 0..3 {
        let body: String = (0..50)
            .map(|i| {
                format!(
                    "{{\"type\":\"OrderPlaced\",\"order_id\":\"r{round}-{i}\",\"customer\":\"c{}\",\"amount_cents\":1}}\n",
                    i % 7
                )
            })
            .collect();
        let reply = server.post(
            "/v1/topics/orders/events?key_field=customer",
            "application/x-ndjson",
            body.as_bytes(),
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        total += 50;
    }
    server.kill();
    let server = server.start();
    let heads: u64 = server.get("/v1/topics").body["topics"][0]["heads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_u64().unwrap())
        .sum();
    assert_eq!(heads, total);
    let info = server.wait_caught_up("order-totals");
    assert_eq!(info["events_applied"], total);
    let orders: i64 = server
        .state("order-totals")
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("customer/"))
        .map(|(_, v)| v["orders"].as_i64().unwrap())
        .sum();
    assert_eq!(orders, total as i64);
}
