//! Scenario A: replay of the embedded log through `order-totals` by the
//! real worker, against the same fold written natively in Rust, over the
//! same log, with the same batch size and the same commit path (overlay ->
//! one redb transaction with the offsets). Both must write identical state.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use serde::{Deserialize, Serialize};

use projector::event::Offsets;
use projector::registry::Sources;
use projector::source::{EmbeddedLog, Source, TopicBinding};
use projector::store::{CommitPositions, Overlay, StateReader, StateStore};
use projector::worker::WorkerConfig;

use crate::common::{append_orders, run_wasm, same_state, state_file, this_thread_cpu_secs};
use crate::report::{Report, Row, thousands};

/// One case of scenario A.
pub struct Case {
    pub events: u64,
    pub customers: u64,
}

/// Wasm and native events/s of one case.
pub struct Measured {
    pub wasm_rate: f64,
    pub native_rate: f64,
}

pub fn run(cases: &[Case], config: &WorkerConfig, report: &mut Report) -> Result<()> {
    for case in cases {
        let measured = measure(case, config)
            .with_context(|| format!("{} events, {} customers", case.events, case.customers))?;
        let ratio = measured.wasm_rate / measured.native_rate;
        let (target, met) = if case.customers <= 10_000 {
            (
                ">= 0.5 of native and >= 1,000,000 events/s",
                ratio >= 0.5 && measured.wasm_rate >= 1e6,
            )
        } else {
            (">= 0.5 of native", ratio >= 0.5)
        };
        report.add(Row {
            scenario: "A",
            case: format!(
                "replay {} events, {} keys, order-totals (Rust)",
                short(case.events),
                short(case.customers)
            ),
            measured: format!("{} events/s", thousands(measured.wasm_rate)),
            baseline: format!(
                "native Rust fold {} events/s",
                thousands(measured.native_rate)
            ),
            ratio: Some(ratio),
            target: target.into(),
            met: Some(met),
        });
    }
    Ok(())
}

/// `10000000` -> `10M`, `10000` -> `10k`.
pub fn short(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

pub fn measure(case: &Case, config: &WorkerConfig) -> Result<Measured> {
    let dir = tempfile::tempdir()?;
    let log = EmbeddedLog::open(&dir.path().join("log.redb"), 3)?;
    let started = Instant::now();
    append_orders(&log, case.events, case.customers)?;
    let append_secs = started.elapsed().as_secs_f64();
    let sources = Sources {
        embedded: Arc::new(log.clone()),
        kafka: None,
    };
    let wasm_secs = run_wasm(sources, dir.path(), "wasm", config, case.events)?;
    let native_secs = run_native(&log, dir.path(), config, case.events)?;
    compare_states(dir.path())?;
    log.shutdown();
    let rate = |secs: f64| case.events as f64 / secs;
    eprintln!(
        "A: {} events, {} customers: append {:.0}/s, Wasm {:.0}/s, native {:.0}/s",
        case.events,
        case.customers,
        rate(append_secs),
        rate(wasm_secs),
        rate(native_secs)
    );
    Ok(Measured {
        wasm_rate: rate(wasm_secs),
        native_rate: rate(native_secs),
    })
}

#[derive(Deserialize)]
struct EventType {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct OrderPlaced {
    order_id: String,
    customer: String,
    amount_cents: u64,
}

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

fn get_json<T: for<'de> Deserialize<'de>>(
    overlay: &Overlay,
    base: &StateReader,
    key: &str,
) -> Result<Option<T>> {
    match overlay.get(base, key.as_bytes())? {
        Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
        None => Ok(None),
    }
}

fn put_json<T: Serialize>(overlay: &mut Overlay, key: &str, value: &T) -> Result<()> {
    overlay.put(key.as_bytes().to_vec(), serde_json::to_vec(value)?);
    Ok(())
}

/// The order-totals fold, natively: same parsing, same keys, same values.
fn fold(overlay: &mut Overlay, base: &StateReader, payload: &[u8]) -> Result<()> {
    let EventType { kind } = serde_json::from_slice(payload)?;
    match kind.as_str() {
        "OrderPlaced" => {
            let event: OrderPlaced = serde_json::from_slice(payload)?;
            let order_key = format!("order/{}", event.order_id);
            if overlay.get(base, order_key.as_bytes())?.is_some() {
                return Ok(());
            }
            let customer_key = format!("customer/{}", event.customer);
            let mut customer: Customer =
                get_json(overlay, base, &customer_key)?.unwrap_or_default();
            customer.orders += 1;
            customer.total_cents += event.amount_cents;
            put_json(overlay, &customer_key, &customer)?;
            put_json(
                overlay,
                &order_key,
                &Order {
                    customer: event.customer,
                    amount_cents: event.amount_cents,
                    cancelled: false,
                },
            )
        }
        "OrderCancelled" => {
            let event: OrderCancelled = serde_json::from_slice(payload)?;
            let order_key = format!("order/{}", event.order_id);
            let Some(mut order) = get_json::<Order>(overlay, base, &order_key)? else {
                return Ok(());
            };
            if order.cancelled {
                return Ok(());
            }
            let customer_key = format!("customer/{}", order.customer);
            let mut customer: Customer =
                get_json(overlay, base, &customer_key)?.context("customer record missing")?;
            customer.orders -= 1;
            customer.total_cents -= order.amount_cents;
            put_json(overlay, &customer_key, &customer)?;
            order.cancelled = true;
            put_json(overlay, &order_key, &order)
        }
        _ => Ok(()),
    }
}

pub fn run_native(
    log: &EmbeddedLog,
    dir: &Path,
    config: &WorkerConfig,
    events: u64,
) -> Result<f64> {
    let store =
        StateStore::open_with_cache(&dir.join("native/state.redb"), config.state_cache_bytes)?;
    let topics = [TopicBinding {
        logical: "orders".into(),
        physical: "orders".into(),
    }];
    let started = Instant::now();
    let cpu_before = this_thread_cpu_secs();
    let mut subscription = log.subscribe("native", &topics, &Offsets::default())?;
    let mut positions = Offsets::default();
    let mut applied = 0u64;
    let mut last_durable = Instant::now();
    let mut batch = Vec::with_capacity(config.batch_max_events);
    // Batches coalesce into one overlay and commit together, as the worker
    // does (`commit_max_events`; a batch that is not full commits at once).
    let mut overlay = Overlay::default();
    let mut uncommitted = 0u64;
    let mut base = store.reader()?;
    while applied < events {
        batch.clear();
        subscription.poll_batch(config.batch_max_events, Duration::ZERO, &mut batch)?;
        ensure!(!batch.is_empty(), "log ended after {applied} events");
        for event in &batch {
            fold(
                &mut overlay,
                &base,
                event.payload.as_deref().unwrap_or_default(),
            )?;
            positions.set(&event.source, event.partition, event.offset + 1);
        }
        applied += batch.len() as u64;
        uncommitted += batch.len() as u64;
        if uncommitted < config.commit_max_events as u64
            && batch.len() == config.batch_max_events
            && applied < events
        {
            continue;
        }
        let durable = last_durable.elapsed() >= config.sync_interval;
        store.commit(
            &overlay,
            CommitPositions {
                offsets: &positions,
                events_applied: applied,
            },
            durable,
        )?;
        overlay = Overlay::default();
        uncommitted = 0;
        base = store.reader()?;
        if durable {
            last_durable = Instant::now();
        }
    }
    store.sync()?;
    let cpu = this_thread_cpu_secs() - cpu_before;
    eprintln!(
        "native: {events} events, {cpu:.2}s CPU ({:.2} us/event)",
        cpu / events as f64 * 1e6
    );
    Ok(started.elapsed().as_secs_f64())
}

/// Both folds must have produced byte-identical state.
fn compare_states(dir: &Path) -> Result<()> {
    let wasm_file = state_file(&dir.join("wasm"), "order-totals")?;
    let compared = same_state(
        &wasm_file,
        &dir.join("native/state.redb"),
        "Wasm and native",
    )?;
    println!("state check: Wasm and native fold wrote the same {compared} keys and values");
    Ok(())
}
