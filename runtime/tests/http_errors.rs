//! Every bad request gets its status and a JSON error, and nothing is appended.

mod common;

use common::Server;
use projector_test_guests::ORDER_TOTALS;
use serde_json::Value;

fn assert_error(reply: &common::Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.body["error"]["code"], code, "{}", reply.body);
    assert!(
        !reply.body["error"]["message"].as_str().unwrap().is_empty(),
        "{}",
        reply.body
    );
}

fn heads(server: &Server) -> Value {
    server.get("/v1/topics").body
}

#[test]
fn bad_requests_get_json_errors_and_append_nothing() {
    let server = Server::with_modules(&[ORDER_TOTALS]).start();
    let good = br#"{"type":"OrderPlaced","order_id":"o1","customer":"a","amount_cents":5}"#;
    assert_eq!(
        server
            .post("/v1/topics/orders/events", "application/x-ndjson", good)
            .status,
        200
    );
    server.wait_caught_up("order-totals");
    let before = heads(&server);

    assert_error(
        &server.get("/v1/projections/nope"),
        404,
        "unknown_projection",
    );
    assert_error(
        &server.get("/v1/projections/nope/state/k"),
        404,
        "unknown_projection",
    );
    assert_error(
        &server.post(
            "/v1/projections/order-totals/query/nope",
            "application/json",
            b"{}",
        ),
        404,
        "unknown_query",
    );
    assert_error(
        &server.get("/v1/projections/order-totals/state/customer%2"),
        400,
        "bad_key_encoding",
    );
    assert_error(
        &server.get("/v1/projections/order-totals/state/customer%zza"),
        400,
        "bad_key_encoding",
    );
    assert_error(
        &server.get("/v1/projections/order-totals/state/customer%2Fnobody"),
        404,
        "key_not_found",
    );

    // Line 3 is malformed: the whole request is refused, naming the line.
    let body = format!(
        "{}\n{}\n{{\"type\": oops}}\n",
        std::str::from_utf8(good).unwrap(),
        std::str::from_utf8(good).unwrap()
    );
    let reply = server.post(
        "/v1/topics/orders/events",
        "application/x-ndjson",
        body.as_bytes(),
    );
    assert_error(&reply, 400, "malformed_event");
    assert_eq!(reply.body["error"]["line"], 3);
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 3")
    );

    let reply = server.post(
        "/v1/topics/orders/events?key_field=customer",
        "application/x-ndjson",
        b"{\"type\":\"OrderPlaced\"}",
    );
    assert_error(&reply, 400, "malformed_event");

    assert_error(
        &server.post(
            "/v1/topics/bad%20topic/events",
            "application/x-ndjson",
            good,
        ),
        400,
        "bad_topic",
    );
    assert_error(
        &server.post("/v1/topics/orders/events", "application/x-ndjson", b"  \n"),
        400,
        "malformed_event",
    );

    // Over the default 64 MiB limit.
    let line = format!("{}\n", std::str::from_utf8(good).unwrap());
    let huge = line.repeat((65 << 20) / line.len());
    assert_error(
        &server.post(
            "/v1/topics/orders/events",
            "application/x-ndjson",
            huge.as_bytes(),
        ),
        413,
        "body_too_large",
    );

    assert_error(&server.get("/v1/no/such/route"), 404, "unknown_route");
    assert_eq!(
        heads(&server),
        before,
        "no rejected request appended anything"
    );
}
