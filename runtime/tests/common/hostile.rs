//! The `hostile` test guest (topic `orders`, key field `k`): events that
//! succeed (`"do": "ok"`) or fail (`"do": "fail"`) on demand, for the
//! tests of error policies and recovery.

use serde_json::{Value, json};

use super::Server;

/// One NDJSON line: `what` is `ok` or `fail`; `id` names the event in the
/// state (`seen/<key>`) and in failure messages (`refusing <id>`).
pub fn event(what: &str, id: &str, key: &str) -> String {
    json!({"do": what, "id": id, "k": key}).to_string() + "\n"
}

/// A server running `hostile` with `sidecar` as its `hostile.toml`.
pub fn server(sidecar: &str, args: &[&str]) -> Server {
    let server = Server::with_modules(&[projector_test_guests::HOSTILE]).args(args);
    server.add_file("hostile.toml", sidecar.as_bytes());
    server.start()
}

/// The failure records of one kind (`skipped`, `dead_letter`, `parked`).
pub fn records(server: &Server, kind: &str) -> Vec<Value> {
    let reply = server.get(&format!("/v1/projections/hostile/dead-letters?kind={kind}"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body["records"].as_array().unwrap().clone()
}
