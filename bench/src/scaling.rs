//! Scaling: events/s with 1, 2, 4 and 8 projections on the same topic (N
//! copies of order-totals, named by sidecars, each with its own worker and
//! state file), and what one more projection costs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use projector::registry::{Registry, Sources};
use projector::source::EmbeddedLog;
use projector::wasm::{Limits, WasmHost};

use crate::Args;
use crate::common::append_orders;
use crate::report::{Quantity, Report, Row, thousands};
use crate::server::order_totals_copies;

const CUSTOMERS: u64 = 10_000;
const COUNTS: [usize; 4] = [1, 2, 4, 8];

pub fn run(args: &Args, report: &mut Report) -> Result<()> {
    let events = args.events_or(1_000_000);
    let dir = tempfile::tempdir()?;
    let log = EmbeddedLog::open(&dir.path().join("log.redb"), 3)?;
    append_orders(&log, events, CUSTOMERS)?;
    let sources = Sources {
        embedded: Arc::new(log.clone()),
        kafka: None,
    };
    let host = WasmHost::new(&dir.path().join("cache"), Limits::default())?;
    let mut secs_of = Vec::new();
    for count in COUNTS {
        let run_dir = dir.path().join(format!("n{count}"));
        let modules = run_dir.join("modules");
        let names = order_totals_copies(&modules, count)?;
        // Compile once before timing: the cache serves every copy.
        host.load(&modules.join(format!("{}.wasm", names[0])))?;
        let started = Instant::now();
        let registry = Registry::start(
            &host,
            sources.clone(),
            &modules,
            &run_dir.join("data"),
            &args.worker_config(),
        )?;
        wait_all(&registry, &names, events)?;
        let secs = started.elapsed().as_secs_f64();
        registry.shutdown();
        eprintln!("scaling: {count} projection(s) folded {events} events each in {secs:.2}s");
        secs_of.push((count, secs));
    }
    log.shutdown();

    let (_, one) = secs_of[0];
    for &(count, secs) in &secs_of {
        let per_topic = events as f64 / secs;
        report.add(Row {
            scenario: "scaling",
            case: format!("{count} projection(s) on one topic, {events} events"),
            measured: Quantity::events_per_sec(per_topic),
            detail: format!(
                " per projection, {} applied/s in all",
                thousands(per_topic * count as f64)
            ),
            baseline: format!("1 projection {} events/s", thousands(events as f64 / one)),
            ratio: Some(one * count as f64 / secs),
            target: None,
        });
    }
    let (last_count, last) = secs_of[secs_of.len() - 1];
    let marginal_ns = (last - one) / (last_count - 1) as f64 / events as f64 * 1e9;
    report.add(Row {
        scenario: "scaling",
        case: format!("one more projection (from 1 to {last_count})"),
        measured: Quantity::nanos_per_event(marginal_ns),
        detail: " of wall time".into(),
        baseline: format!("1 projection {:.0} ns per event", one / events as f64 * 1e9),
        ratio: None,
        target: None,
    });
    Ok(())
}

fn wait_all(registry: &Registry, names: &[String], events: u64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(3600);
    for name in names {
        loop {
            let projection = registry
                .get(name)
                .with_context(|| format!("{name} did not load: {:?}", registry.rejected()))?;
            let info = projection.info()?;
            if info.events_applied >= events {
                break;
            }
            if info.last_error.is_some() {
                bail!("{name} failed: {:?}", info.status);
            }
            if Instant::now() > deadline {
                bail!("{name} did not finish within an hour");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    Ok(())
}
