//! Paths of the example and test projections, built as `wasm32-wasip2`
//! components by this crate's build script, for the host's tests and
//! benchmarks.
//!
//! - [`ORDER_TOTALS`], [`ACCOUNT_BALANCES`]: the projections in `examples/`.
//! - [`FAILING`]: `failing`, topic `orders`, counts events under `count` and
//!   fails every event whose payload has `"poison": true` with the message
//!   `refusing event <order_id>`.
//! - [`MISSING_EXPORT`]: a component whose `handler` interface lacks `query`.
//! - [`WRONG_VERSION`]: a working projection built against
//!   `projector:projection@0.2.0`.
//! - [`RECORDER`]: `recorder`, topics `t1`, `t2`, `t3`: records every event
//!   and fails on a duplicate or out-of-order delivery.
//! - [`ORDER_TOTALS_V2`], [`ORDER_TOTALS_QUERY`], [`ORDER_TOTALS_TRAP`]:
//!   versions of `order-totals` for hot reload: a new state layout and logic
//!   (counts placed orders under `placed/<customer>`), the same layout with a
//!   new `customer-count` query, and one that traps on its 10th event.
//! - [`GLOBAL_COUNTER`]: `global-counter`, topic `orders`: not deterministic
//!   on purpose, it counts events in a global that lives as long as its
//!   instance and stores the count under `seen` (and the last offset under
//!   `last`), for `projector test`'s determinism check.
//! - [`EXAMPLE_EVENTS_DIR`]: `orders.jsonl` and `accounts.jsonl` (one JSON
//!   event per line) and `orders.expected.json`, `accounts.expected.json`:
//!   the state the examples must reach, as one JSON object mapping every key
//!   to its value.

include!(concat!(env!("OUT_DIR"), "/guests.rs"));
