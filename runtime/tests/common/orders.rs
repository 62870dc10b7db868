//! The `order-totals` example's rules, folded in the test: the state a run
//! must reach from given events (the same rules as examples/events/fold.py).

use serde_json::{Map, Value, json};

/// Folds order events (payloads as JSON, in the order the projection sees
/// them within each customer's partition) into the state `order-totals`
/// must hold: `customer/<id>` and `order/<id>` entries.
pub fn fold_order_totals<'a>(events: impl IntoIterator<Item = &'a Value>) -> Value {
    let mut state = Map::new();
    for e in events {
        let order_key = format!("order/{}", e["order_id"].as_str().unwrap());
        match e["type"].as_str().unwrap() {
            "OrderPlaced" => {
                if state.contains_key(&order_key) {
                    continue; // the first OrderPlaced wins
                }
                let customer = e["customer"].as_str().unwrap();
                let amount = e["amount_cents"].as_u64().unwrap();
                let totals = state
                    .entry(format!("customer/{customer}"))
                    .or_insert_with(|| json!({"orders": 0, "total_cents": 0}));
                totals["orders"] = json!(totals["orders"].as_u64().unwrap() + 1);
                totals["total_cents"] = json!(totals["total_cents"].as_u64().unwrap() + amount);
                state.insert(
                    order_key,
                    json!({"customer": customer, "amount_cents": amount, "cancelled": false}),
                );
            }
            "OrderCancelled" => {
                let Some(order) = state.get(&order_key).cloned() else {
                    continue;
                };
                if order["cancelled"] == true {
                    continue;
                }
                let customer = format!("customer/{}", order["customer"].as_str().unwrap());
                let totals = &mut state[&customer];
                let amount = order["amount_cents"].as_u64().unwrap();
                totals["orders"] = json!(totals["orders"].as_u64().unwrap() - 1);
                totals["total_cents"] = json!(totals["total_cents"].as_u64().unwrap() - amount);
                state[&order_key]["cancelled"] = json!(true);
            }
            _ => {}
        }
    }
    Value::Object(state)
}

/// Where `a` and `b` differ: the number of keys and a few examples.
pub fn state_diff(got: &Value, want: &Value) -> String {
    let (got, want) = (got.as_object().unwrap(), want.as_object().unwrap());
    let mut keys: Vec<&String> = want.keys().chain(got.keys()).collect();
    keys.sort();
    keys.dedup();
    let differing: Vec<&&String> = keys
        .iter()
        .filter(|k| got.get(**k) != want.get(**k))
        .collect();
    let examples: Vec<String> = differing
        .iter()
        .take(10)
        .map(|k| format!("{k}: got {:?}, want {:?}", got.get(**k), want.get(**k)))
        .collect();
    format!(
        "{} keys differ, e.g.\n{}",
        differing.len(),
        examples.join("\n")
    )
}

/// Order events `range`: placements keyed by customer, every tenth a cancel
/// of an earlier order of the same customer.
pub fn order_events(range: std::ops::Range<usize>) -> Vec<Value> {
    range
        .map(|i| {
            if i % 10 == 9 {
                let order = i - 4;
                json!({"type": "OrderCancelled", "order_id": format!("o{order}"), "customer": format!("c{}", order % 7)})
            } else {
                json!({"type": "OrderPlaced", "order_id": format!("o{i}"), "customer": format!("c{}", i % 7), "amount_cents": 100 + i})
            }
        })
        .collect()
}

/// Appends `events` to the embedded log's `orders` topic, keyed by customer.
pub fn publish_orders(server: &super::Server, events: &[Value]) {
    for chunk in events.chunks(100) {
        let body: String = chunk.iter().map(|e| format!("{e}\n")).collect();
        let reply = server.post(
            "/v1/topics/orders/events?key_field=customer",
            "application/x-ndjson",
            body.as_bytes(),
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
}
