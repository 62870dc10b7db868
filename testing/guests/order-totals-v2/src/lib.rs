//! `order-totals` with a new state layout (state version 2) and new logic:
//! counts every order a customer ever placed, cancelled or not, under
//! `placed/<customer>` (a JSON integer). Used to test shadow rebuilds.

use projector_sdk::{Error, Event, Projection, export_projection, state};
use serde::Deserialize;

pub struct OrderTotalsV2;

export_projection!(OrderTotalsV2);

#[derive(Deserialize)]
struct Order {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    customer: String,
}

impl Projection for OrderTotalsV2 {
    const NAME: &'static str = "order-totals";
    const VERSION: &'static str = "2.0.0";
    const SOURCES: &'static [&'static str] = &["orders"];
    const STATE_VERSION: u32 = 2;

    fn handle(event: &Event) -> Result<(), Error> {
        let order: Order = event.payload_json()?;
        if order.kind == "OrderPlaced" {
            let key = format!("placed/{}", order.customer);
            let placed = state::get_json::<u64>(&key)?.unwrap_or(0);
            state::put_json(&key, &(placed + 1))?;
        }
        Ok(())
    }
}
