//! Orders and spend per customer, from the `orders` topic.
//!
//! Events are JSON objects
//! `{"type": "OrderPlaced" | "OrderCancelled", "order_id", "customer", "amount_cents"}`.
//!
//! State:
//! - `customer/<id>`: `{"orders": int, "total_cents": int}`, the customer's
//!   orders that are not cancelled. A customer whose orders are all cancelled
//!   keeps a record with zeros.
//! - `order/<id>`: `{"customer": str, "amount_cents": int, "cancelled": bool}`,
//!   what a later cancel needs.
//!
//! Query `top-customers` with `{"n": int}`: the `n` customers with the highest
//! `total_cents`, ties by customer id ascending.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use projector_sdk::{Error, Event, Projection, QueryError, export_projection, log, query, state};
use serde::{Deserialize, Serialize};

pub struct OrderTotals;

export_projection!(OrderTotals);

impl Projection for OrderTotals {
    const NAME: &'static str = "order-totals";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SOURCES: &'static [&'static str] = &["orders"];
    const STATE_VERSION: u32 = 1;
    const QUERIES: &'static [&'static str] = &["top-customers"];

    fn handle(event: &Event) -> Result<(), Error> {
        // Read the type first so that event types added later are skipped
        // whatever their other fields look like: old projections must keep
        // running when producers learn new events.
        let EventType { kind } = event.payload_json()?;
        match kind.as_str() {
            "OrderPlaced" => placed(event.payload_json()?),
            "OrderCancelled" => cancelled(event.payload_json()?),
            _ => Ok(()),
        }
    }

    fn query(name: &str, args: &[u8]) -> Result<Vec<u8>, QueryError> {
        match name {
            "top-customers" => {
                let TopArgs { n } = query::args_json(args)?;
                query::reply_json(&top_customers(n)?)
            }
            _ => Err(QueryError::UnknownQuery),
        }
    }
}

#[derive(Deserialize)]
struct EventType {
    #[serde(rename = "type")]
    kind: String,
}

/// Amounts are unsigned: a negative amount fails the event rather than
/// silently lowering a customer's total.
#[derive(Deserialize)]
struct OrderPlaced {
    order_id: String,
    customer: String,
    amount_cents: u64,
}

/// Only the order id is read: the customer and amount come from the
/// `OrderPlaced` the projection remembered, so a cancel cannot move money
/// between customers or take back a different amount.
#[derive(Deserialize)]
struct OrderCancelled {
    order_id: String,
}

#[derive(Serialize, Deserialize, Default)]
struct Customer {
    orders: u64,
    total_cents: u64,
}

#[derive(Serialize, Deserialize)]
struct Order {
    customer: String,
    amount_cents: u64,
    cancelled: bool,
}

#[derive(Deserialize)]
struct TopArgs {
    n: usize,
}

#[derive(Serialize, PartialEq, Eq)]
struct TopCustomer {
    customer: String,
    total_cents: u64,
}

fn placed(event: OrderPlaced) -> Result<(), Error> {
    let order_key = format!("order/{}", event.order_id);
    // A second OrderPlaced for a known id is a redelivery or a producer bug;
    // counting it again would inflate the total, so the first one wins.
    if state::get(&order_key).is_some() {
        log::warn!(
            "ignoring duplicate OrderPlaced for order {}",
            event.order_id
        );
        return Ok(());
    }
    let customer_key = format!("customer/{}", event.customer);
    let mut customer: Customer = state::get_json(&customer_key)?.unwrap_or_default();
    customer.orders += 1;
    customer.total_cents = customer
        .total_cents
        .checked_add(event.amount_cents)
        .ok_or_else(|| format!("total of customer {} overflows", event.customer))?;
    state::put_json(&customer_key, &customer)?;
    state::put_json(
        &order_key,
        &Order {
            customer: event.customer,
            amount_cents: event.amount_cents,
            cancelled: false,
        },
    )
}

fn cancelled(event: OrderCancelled) -> Result<(), Error> {
    let order_key = format!("order/{}", event.order_id);
    let Some(mut order) = state::get_json::<Order>(&order_key)? else {
        log::warn!("ignoring cancel of unknown order {}", event.order_id);
        return Ok(());
    };
    if order.cancelled {
        return Ok(());
    }
    let customer_key = format!("customer/{}", order.customer);
    let mut customer: Customer = state::get_json(&customer_key)?.ok_or_else(|| {
        format!(
            "order {} names customer {} with no record",
            event.order_id, order.customer
        )
    })?;
    customer.orders -= 1;
    customer.total_cents -= order.amount_cents;
    state::put_json(&customer_key, &customer)?;
    order.cancelled = true;
    state::put_json(&order_key, &order)
}

/// Ranks customers: a higher total first, then the lower id.
#[derive(PartialEq, Eq)]
struct Ranked(TopCustomer);

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .total_cents
            .cmp(&other.0.total_cents)
            .then_with(|| other.0.customer.cmp(&self.0.customer))
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Pages through every customer, keeping only the best `n` in memory.
fn top_customers(n: usize) -> Result<Vec<TopCustomer>, Error> {
    let mut best = BinaryHeap::with_capacity(n.saturating_add(1).min(1024));
    for entry in state::iter_json::<Customer>("customer/") {
        let (key, customer) = entry?;
        let id = key.strip_prefix("customer/").unwrap_or(&key);
        best.push(Reverse(Ranked(TopCustomer {
            customer: id.to_owned(),
            total_cents: customer.total_cents,
        })));
        if best.len() > n {
            best.pop();
        }
    }
    // Ascending `Reverse` order is descending rank: the best first.
    Ok(best
        .into_sorted_vec()
        .into_iter()
        .map(|Reverse(Ranked(top))| top)
        .collect())
}

#[cfg(test)]
mod tests {
    use projector_sdk::testing;
    use serde_json::{Value, json};

    use super::*;

    fn events(lines: &[Value]) -> Vec<Event> {
        (0u64..)
            .zip(lines)
            .map(|(offset, line)| testing::event("orders", offset, line.to_string()))
            .collect()
    }

    fn top(n: usize) -> Value {
        let answer = testing::query::<OrderTotals>(
            "top-customers",
            json!({ "n": n }).to_string().as_bytes(),
        )
        .unwrap();
        serde_json::from_slice(&answer).unwrap()
    }

    #[test]
    fn sample_events_fold_to_the_expected_state() {
        testing::reset();
        let sample = include_str!("../../events/orders.jsonl");
        let events: Vec<Event> = (0u64..)
            .zip(sample.lines())
            .map(|(offset, line)| testing::event("orders", offset, line))
            .collect();
        testing::handle::<OrderTotals>(&events).unwrap();
        let expected: Value =
            serde_json::from_str(include_str!("../../events/orders.expected.json")).unwrap();
        assert_eq!(testing::state_json(), expected);
        assert_eq!(
            top(3),
            json!([
                {"customer": "carol", "total_cents": 32472},
                {"customer": "bob", "total_cents": 18490},
                {"customer": "dave", "total_cents": 18349},
            ])
        );
    }

    #[test]
    fn cancel_uses_the_remembered_order() {
        testing::reset();
        testing::handle::<OrderTotals>(&events(&[
            json!({"type": "OrderPlaced", "order_id": "1", "customer": "ann", "amount_cents": 500}),
            json!({"type": "OrderPlaced", "order_id": "2", "customer": "ann", "amount_cents": 700}),
            json!({"type": "OrderCancelled", "order_id": "1", "customer": "bea", "amount_cents": 1}),
            json!({"type": "OrderCancelled", "order_id": "1"}),
            json!({"type": "OrderCancelled", "order_id": "404"}),
            json!({"type": "OrderPlaced", "order_id": "2", "customer": "bea", "amount_cents": 9}),
        ]))
        .unwrap();
        assert_eq!(
            testing::state_json(),
            json!({
                "customer/ann": {"orders": 1, "total_cents": 700},
                "order/1": {"customer": "ann", "amount_cents": 500, "cancelled": true},
                "order/2": {"customer": "ann", "amount_cents": 700, "cancelled": false},
            })
        );
    }

    #[test]
    fn unknown_types_are_skipped_and_bad_payloads_fail() {
        testing::reset();
        testing::handle::<OrderTotals>(&events(&[
            json!({"type": "OrderShipped", "order_id": 7, "carrier": ["x"]}),
        ]))
        .unwrap();
        assert_eq!(testing::state_json(), json!({}));

        for (payload, needle) in [
            (
                json!({"type": "OrderPlaced", "order_id": "1", "amount_cents": 5}),
                "missing field `customer`",
            ),
            (
                json!({"type": "OrderPlaced", "order_id": "1", "customer": "a", "amount_cents": -5}),
                "integer `-5`, expected u64",
            ),
            (
                json!({"type": "OrderCancelled"}),
                "missing field `order_id`",
            ),
            (json!({"order_id": "1"}), "missing field `type`"),
            (json!([1, 2]), "invalid type"),
        ] {
            let ok = json!({"type": "OrderPlaced", "order_id": "ok", "customer": "a", "amount_cents": 1});
            let error =
                testing::handle::<OrderTotals>(&events(&[ok, payload.clone()])).unwrap_err();
            assert_eq!(error.index, 1, "{payload}");
            assert!(
                error.message.contains(needle),
                "{payload}: {}",
                error.message
            );
            // The failed batch left no trace.
            assert_eq!(testing::state_json(), json!({}));
        }

        let mut tombstone = testing::event("orders", 0, "");
        tombstone.payload = None;
        let error = testing::handle::<OrderTotals>(&[tombstone]).unwrap_err();
        assert!(error.message.contains("tombstone"), "{}", error.message);
    }

    #[test]
    fn top_customers_ranks_by_total_then_id() {
        testing::reset();
        testing::handle::<OrderTotals>(&events(&[
            json!({"type": "OrderPlaced", "order_id": "1", "customer": "cy", "amount_cents": 300}),
            json!({"type": "OrderPlaced", "order_id": "2", "customer": "al", "amount_cents": 100}),
            json!({"type": "OrderPlaced", "order_id": "3", "customer": "bo", "amount_cents": 300}),
            json!({"type": "OrderPlaced", "order_id": "4", "customer": "di", "amount_cents": 50}),
        ]))
        .unwrap();
        assert_eq!(
            top(10),
            json!([
                {"customer": "bo", "total_cents": 300},
                {"customer": "cy", "total_cents": 300},
                {"customer": "al", "total_cents": 100},
                {"customer": "di", "total_cents": 50},
            ])
        );
        assert_eq!(
            top(2),
            json!([{"customer": "bo", "total_cents": 300}, {"customer": "cy", "total_cents": 300}])
        );
        assert_eq!(top(0), json!([]));

        assert!(matches!(
            testing::query::<OrderTotals>("top-customers", b"{\"n\": -1}"),
            Err(QueryError::BadArgs(_))
        ));
        assert!(matches!(
            testing::query::<OrderTotals>("top-customers", b""),
            Err(QueryError::BadArgs(_))
        ));
        assert_eq!(
            testing::query::<OrderTotals>("nope", b"{}"),
            Err(QueryError::UnknownQuery)
        );
    }

    #[test]
    fn top_customers_pages_through_many_customers() {
        testing::reset();
        let placed: Vec<Value> = (0..1000)
            .map(|i| json!({"type": "OrderPlaced", "order_id": i.to_string(), "customer": format!("c{i:04}"), "amount_cents": i % 7}))
            .collect();
        testing::handle::<OrderTotals>(&events(&placed)).unwrap();
        assert_eq!(
            top(2),
            json!([{"customer": "c0006", "total_cents": 6}, {"customer": "c0013", "total_cents": 6}])
        );
    }
}
