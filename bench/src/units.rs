//! Units: one partitioned `order-totals` (sidecar `scale = "partitioned"`,
//! one unit per partition, each folding on its own thread into its own
//! state file) against the same module kept globally, on the same events
//! of a 4-partition topic keyed by customer: events/s and CPU per event
//! with `worker_threads` 1 and 2 (the units of one projection folding at
//! once).

use std::sync::Arc;

use anyhow::Result;

use projector::event::NewRecord;
use projector::registry::Sources;
use projector::source::EmbeddedLog;
use projector::wasm::{Limits, WasmHost};
use projector::worker::WorkerConfig;

use crate::Args;
use crate::common::{FoldTime, fold_by_registry, order_events};
use crate::report::{Quantity, Report, Row, thousands};

const CUSTOMERS: u64 = 10_000;
const PARTITIONS: u32 = 4;

pub fn run(args: &Args, report: &mut Report) -> Result<()> {
    let events = args.events_or(4_000_000);
    let dir = tempfile::tempdir()?;
    let log = EmbeddedLog::open(&dir.path().join("log.redb"), PARTITIONS)?;
    append_by_customer(&log, events)?;
    let sources = Sources {
        embedded: Arc::new(log.clone()),
        kafka: None,
    };
    let host = WasmHost::new(&dir.path().join("cache"), Limits::default())?;
    let cases: [(&str, Option<usize>); 3] = [
        ("global (one worker)", None),
        ("partitioned, worker_threads = 1", Some(1)),
        ("partitioned, worker_threads = 2", Some(2)),
    ];
    let mut times: Vec<FoldTime> = Vec::new();
    for (i, (case, threads)) in cases.iter().enumerate() {
        let run_dir = dir.path().join(format!("run{i}"));
        let modules = run_dir.join("modules");
        std::fs::create_dir_all(&modules)?;
        std::fs::copy(
            projector_test_guests::ORDER_TOTALS,
            modules.join("order-totals.wasm"),
        )?;
        if threads.is_some() {
            std::fs::write(
                modules.join("order-totals.toml"),
                "scale = \"partitioned\"\n",
            )?;
        }
        host.load(&modules.join("order-totals.wasm"))?;
        let config = WorkerConfig {
            worker_threads: threads.unwrap_or(1),
            ..args.worker_config()
        };
        eprintln!("units: {case}");
        let time = fold_by_registry(
            &host,
            sources.clone(),
            &modules,
            &run_dir.join("data"),
            "order-totals",
            &config,
            events,
        )?;
        times.push(time);
    }
    log.shutdown();
    let global = times[0];
    for ((case, _), time) in cases.iter().zip(&times) {
        report.add(Row {
            scenario: "units",
            case: format!("order-totals {case}, {events} events, {PARTITIONS} partitions"),
            measured: Quantity::events_per_sec(events as f64 / time.secs),
            detail: format!(
                ", CPU {:.2} us/event (workers + commits)",
                time.cpu_secs / events as f64 * 1e6
            ),
            baseline: format!("global {} events/s", thousands(events as f64 / global.secs)),
            ratio: Some(global.secs / time.secs),
            target: None,
        });
    }
    Ok(())
}

/// The benchmark's order events keyed by customer, so every key of
/// `order-totals` (customer and order) is written from one partition.
fn append_by_customer(log: &EmbeddedLog, events: u64) -> Result<()> {
    const CHUNK: usize = 10_000;
    let mut all = order_events(events, CUSTOMERS).peekable();
    while all.peek().is_some() {
        let records = all
            .by_ref()
            .take(CHUNK)
            .map(|(_, payload)| {
                let customer = serde_json::from_slice::<serde_json::Value>(&payload)
                    .ok()
                    .and_then(|v| v["customer"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                NewRecord {
                    key: Some(customer.into_bytes()),
                    payload: Some(payload),
                    headers: Vec::new(),
                }
            })
            .collect();
        log.append("orders", records)?;
    }
    Ok(())
}
