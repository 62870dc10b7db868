//! `order-totals` with the same fold and state layout (state version 1) but
//! new query code: a `customer-count` query. A swap to it needs no replay.

use projector_sdk::{Error, Event, Projection, QueryError, export_projection, query, state};
use serde::{Deserialize, Serialize};

pub struct OrderTotalsQuery;

export_projection!(OrderTotalsQuery);

#[derive(Deserialize)]
struct Incoming {
    #[serde(rename = "type")]
    kind: String,
    order_id: Option<String>,
    customer: Option<String>,
    amount_cents: Option<u64>,
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

impl Projection for OrderTotalsQuery {
    const NAME: &'static str = "order-totals";
    const VERSION: &'static str = "1.1.0";
    const SOURCES: &'static [&'static str] = &["orders"];
    const STATE_VERSION: u32 = 1;
    const QUERIES: &'static [&'static str] = &["customer-count"];

    fn handle(event: &Event) -> Result<(), Error> {
        let incoming: Incoming = event.payload_json()?;
        let missing = || Error::new(format!("event {} lacks a field", event.position()));
        let order_key = format!("order/{}", incoming.order_id.clone().ok_or_else(missing)?);
        match incoming.kind.as_str() {
            "OrderPlaced" => {
                if state::get(&order_key).is_some() {
                    return Ok(());
                }
                let customer = incoming.customer.ok_or_else(missing)?;
                let amount = incoming.amount_cents.ok_or_else(missing)?;
                let key = format!("customer/{customer}");
                let mut totals: Customer = state::get_json(&key)?.unwrap_or_default();
                totals.orders += 1;
                totals.total_cents += amount;
                state::put_json(&key, &totals)?;
                state::put_json(
                    &order_key,
                    &Order {
                        customer,
                        amount_cents: amount,
                        cancelled: false,
                    },
                )
            }
            "OrderCancelled" => {
                let Some(mut order) = state::get_json::<Order>(&order_key)? else {
                    return Ok(());
                };
                if order.cancelled {
                    return Ok(());
                }
                let key = format!("customer/{}", order.customer);
                let mut totals: Customer = state::get_json(&key)?.unwrap_or_default();
                totals.orders -= 1;
                totals.total_cents -= order.amount_cents;
                state::put_json(&key, &totals)?;
                order.cancelled = true;
                state::put_json(&order_key, &order)
            }
            _ => Ok(()),
        }
    }

    fn query(name: &str, _args: &[u8]) -> Result<Vec<u8>, QueryError> {
        match name {
            "customer-count" => query::reply_json(&state::iter("customer/").count()),
            _ => Err(QueryError::UnknownQuery),
        }
    }
}
