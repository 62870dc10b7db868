//! `cargo run --release -p projector-bench -- --events 1000000`
//!
//! Appends order events to a fresh embedded log, then folds them two ways in
//! the same run, over the same log, with the same batch size and the same
//! commit path (overlay -> one redb transaction with the offsets):
//! 1. through the `order-totals` Wasm component, by the real worker;
//! 2. by the same fold written natively in Rust.
//!
//! Prints events/s for each and the ratio Wasm/native, and checks that both
//! produced identical state.
//!
//! `-- --kafka --partitions 8`: produces the events into a Tansu broker
//! instead and compares order-totals reading Kafka with a bare rdkafka
//! consumer that only counts the messages.
//!
//! `cargo run --release -p projector-bench -- --languages --events 1000000`:
//! the order-totals module of every SDK language (Rust, Python, JS, TS, Go,
//! C) over the same embedded log: module size, cold compile by the host
//! (`WasmHost::load` with an empty cache dir), warm load from that cache,
//! events/s of the fold by the real worker and its ratio to Rust; checks
//! that every language's final state equals Rust's. The non-Rust modules
//! are `target/guests/<lang>/order-totals.wasm`, built beforehand by
//! `./scripts/build-{python,js,go,c}-examples.sh` (js builds ts too).
//! `--only rust,go` measures a subset (Rust, the baseline, always runs).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use serde::{Deserialize, Serialize};

use projector::event::{NewRecord, Offsets};
use projector::registry::{Registry, Sources};
use projector::source::{EmbeddedLog, Source, TopicBinding};
use projector::store::{CommitPositions, Overlay, StateReader, StateStore};
use projector::wasm::{Limits, WasmHost};
use projector::worker::WorkerConfig;

mod kafka;
mod languages;

#[derive(Debug, Parser)]
struct Args {
    /// Events to append and fold.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Distinct customers (keys).
    #[arg(long, default_value_t = 10_000)]
    customers: u64,
    /// Events per batch, for both folds.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Partitions of the `orders` topic.
    #[arg(long, default_value_t = 3)]
    partitions: u32,
    /// Read from a Kafka broker (a Tansu process started here) instead of
    /// the embedded log, against a bare rdkafka consumer.
    #[arg(long)]
    kafka: bool,
    /// Compare the order-totals module of every SDK language (size, cold
    /// compile, warm load, fold throughput) against the Rust one.
    #[arg(long, conflicts_with = "kafka")]
    languages: bool,
    /// With --languages: only these languages (comma-separated, of rust,
    /// python, js, ts, go, c); Rust, the baseline, is always measured.
    #[arg(long, value_delimiter = ',', requires = "languages")]
    only: Vec<String>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let log = EmbeddedLog::open(&dir.path().join("log.redb"), args.partitions)?;
    let config = WorkerConfig {
        batch_max_events: args.batch,
        batch_linger: Duration::ZERO,
        sync_interval: Duration::from_secs(1),
        // Measure the fold alone, as the native baseline has no snapshots.
        ..WorkerConfig::default()
    };
    if args.kafka {
        return kafka::run(&args, dir.path(), &config, &log);
    }
    if args.languages {
        return languages::run(&args, dir.path(), &config, &log);
    }
    let started = Instant::now();
    append_orders(&log, &args)?;
    let append_secs = started.elapsed().as_secs_f64();
    let sources = Sources {
        embedded: Arc::new(log.clone()),
        kafka: None,
    };
    let wasm_secs = run_wasm(sources, dir.path(), "wasm", &config, args.events)?;
    let native_secs = run_native(&log, dir.path(), &config, args.events)?;
    compare_states(dir.path())?;

    let rate = |secs: f64| args.events as f64 / secs;
    println!();
    println!(
        "order-totals over {} events, {} customers, {} partitions, batch {}",
        args.events, args.customers, args.partitions, args.batch
    );
    println!("| step | seconds | events/s |");
    println!("|---|---:|---:|");
    println!(
        "| append to embedded log | {append_secs:.2} | {:.0} |",
        rate(append_secs)
    );
    println!(
        "| fold: Wasm (order-totals component) | {wasm_secs:.2} | {:.0} |",
        rate(wasm_secs)
    );
    println!(
        "| fold: native Rust (baseline) | {native_secs:.2} | {:.0} |",
        rate(native_secs)
    );
    println!(
        "ratio Wasm/native throughput: {:.2}",
        native_secs / wasm_secs
    );
    log.shutdown();
    Ok(())
}

/// The benchmark's events, as (key, JSON payload): every tenth event
/// cancels the order placed just before it; keyed by order id so a cancel
/// lands in its order's partition.
fn order_events(events: u64, customers: u64) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> {
    let mut next_order = 0u64;
    (0..events).map(move |i| {
        let customer = format!("c{}", i % customers);
        let payload = if i % 10 == 9 {
            serde_json::json!({"type": "OrderCancelled", "order_id": format!("o{}", next_order - 1), "customer": customer, "amount_cents": 0})
        } else {
            next_order += 1;
            serde_json::json!({"type": "OrderPlaced", "order_id": format!("o{}", next_order - 1), "customer": customer, "amount_cents": 100 + i % 900})
        };
        let key = payload["order_id"].as_str().unwrap_or_default().as_bytes().to_vec();
        (key, payload.to_string().into_bytes())
    })
}

fn append_orders(log: &EmbeddedLog, args: &Args) -> Result<()> {
    const CHUNK: usize = 10_000;
    let mut events = order_events(args.events, args.customers).peekable();
    while events.peek().is_some() {
        let records = events
            .by_ref()
            .take(CHUNK)
            .map(|(key, payload)| NewRecord {
                key: Some(key),
                payload: Some(payload),
                headers: Vec::new(),
            })
            .collect();
        log.append("orders", records)?;
    }
    Ok(())
}

/// Time for the real worker to fold `events` through order-totals, read
/// from `sources` (Kafka when it has one), state under `dir/<state>`.
fn run_wasm(
    sources: Sources,
    dir: &Path,
    state: &str,
    config: &WorkerConfig,
    events: u64,
) -> Result<f64> {
    let modules = dir.join("modules");
    std::fs::create_dir_all(&modules)?;
    std::fs::copy(
        projector_test_guests::ORDER_TOTALS,
        modules.join("order-totals.wasm"),
    )?;
    let host = WasmHost::new(&dir.join("cache"), Limits::default())?;
    // Warm the compile cache so the timing below is the fold, not cranelift.
    host.load(&modules.join("order-totals.wasm"))?;
    fold_by_registry(
        &host,
        sources,
        &modules,
        &dir.join(state),
        "order-totals",
        config,
        events,
    )
}

/// Time for the real worker (a registry over `modules`, state under
/// `data`) to fold `events` through the projection `name`.
fn fold_by_registry(
    host: &WasmHost,
    sources: Sources,
    modules: &Path,
    data: &Path,
    name: &str,
    config: &WorkerConfig,
    events: u64,
) -> Result<f64> {
    let started = Instant::now();
    let registry = Registry::start(host, sources, modules, data, config)?;
    let projection = registry
        .get(name)
        .with_context(|| format!("{name} did not load"))?;
    loop {
        let info = projection.info()?;
        if info.events_applied >= events {
            break;
        }
        if info.last_error.is_some() {
            bail!("{name} failed: {:?}", info.status);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let secs = started.elapsed().as_secs_f64();
    registry.shutdown();
    Ok(secs)
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

fn run_native(log: &EmbeddedLog, dir: &Path, config: &WorkerConfig, events: u64) -> Result<f64> {
    let store = StateStore::open(&dir.join("native/state.redb"))?;
    let topics = [TopicBinding {
        logical: "orders".into(),
        physical: "orders".into(),
    }];
    let started = Instant::now();
    let mut subscription = log.subscribe("native", &topics, &Offsets::default())?;
    let mut positions = Offsets::default();
    let mut applied = 0u64;
    let mut last_durable = Instant::now();
    let mut batch = Vec::with_capacity(config.batch_max_events);
    while applied < events {
        batch.clear();
        subscription.poll_batch(config.batch_max_events, Duration::ZERO, &mut batch)?;
        ensure!(!batch.is_empty(), "log ended after {applied} events");
        let base = store.reader()?;
        let mut overlay = Overlay::default();
        for event in &batch {
            fold(
                &mut overlay,
                &base,
                event.payload.as_deref().unwrap_or_default(),
            )?;
            positions.set(&event.source, event.partition, event.offset + 1);
        }
        applied += batch.len() as u64;
        let durable = last_durable.elapsed() >= config.sync_interval;
        store.commit(
            &overlay,
            CommitPositions {
                offsets: &positions,
                events_applied: applied,
            },
            durable,
        )?;
        if durable {
            last_durable = Instant::now();
        }
    }
    store.sync()?;
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

/// The one state file of projection `name` in the registry data dir `data`.
fn state_file(data: &Path, name: &str) -> Result<std::path::PathBuf> {
    let dir = data.join("projections").join(name);
    Ok(std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .next()
        .with_context(|| format!("no state file in {}", dir.display()))??
        .path())
}

/// Checks that two state stores hold byte-identical keys and values;
/// returns how many. `what` names the two in the error.
fn same_state(a: &Path, b: &Path, what: &str) -> Result<u64> {
    // Keep the stores open while their readers are in use.
    let a_store = StateStore::open(a)?;
    let b_store = StateStore::open(b)?;
    let a_reader = a_store.reader()?;
    let b_reader = b_store.reader()?;
    let mut after: Option<Vec<u8>> = None;
    let mut compared = 0u64;
    loop {
        let a = a_reader.scan(b"", after.as_deref(), 10_000)?;
        let b = b_reader.scan(b"", after.as_deref(), 10_000)?;
        if a != b {
            let show = |entry: Option<&(Vec<u8>, Vec<u8>)>| match entry {
                Some((key, value)) => format!(
                    "{} = {}",
                    String::from_utf8_lossy(key),
                    String::from_utf8_lossy(value)
                ),
                None => "(no more keys)".to_owned(),
            };
            let at = (0..a.len().max(b.len()))
                .find(|&i| a.get(i) != b.get(i))
                .unwrap_or_default();
            bail!(
                "{what} state differ at key {}: {} vs {}",
                compared + at as u64,
                show(a.get(at)),
                show(b.get(at))
            );
        }
        compared += a.len() as u64;
        match a.last() {
            Some((key, _)) => after = Some(key.clone()),
            None => break,
        }
    }
    ensure!(compared > 0, "no state to compare");
    Ok(compared)
}
