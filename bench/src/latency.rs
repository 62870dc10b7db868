//! C: key-lookup latency (p50, p99, p999) at a fixed request rate while the
//! projection folds at full speed, measured by a separate load-generator
//! process (`projector-loadgen`) against the real `projector run`.
//!
//! - Measured: a log of many events is appended before the server starts,
//!   so order-totals folds flat out (it has lag) during the whole window;
//!   lookups of `customer/c<k>` at `RATE` req/s for `SECS` s after a
//!   warm-up. The lag is polled during the window: it must stay > 0, and
//!   the events/s folded in the window is reported.
//! - Baseline (same run): the same load on a server whose projection has
//!   folded a small log and is idle (lag 0).
//!
//! Latency is from each request's due time (open loop: no coordinated
//! omission), percentiles exact from the sorted samples. Ratio = baseline /
//! measured (higher = better, as everywhere in the table). Every non-200
//! answer or connection error is counted and shown.
//!
//! On the 2-core machine this runs on, the load generator, the server's
//! HTTP threads and the fold thread share the cores: the lookups compete
//! with the fold for CPU, which is the point of the measurement but also
//! means the numbers are for this machine's core count.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

use projector::source::EmbeddedLog;

use crate::Args;
use crate::common::append_orders;
use crate::report::{Condition, Quantity, Report, Row, Target, thousands};
use crate::server::{self, Server};

const RATE: u64 = 5_000;
const WARMUP_SECS: f64 = 1.0;
const SECS: f64 = 10.0;
const CONNECTIONS: u64 = 8;
/// Not a multiple of 10: the generator's every tenth event is a cancel, so
/// with 10,000 customers those ending in 9 would never place an order and
/// their lookups would be 404s. With 9,999 every customer has placed an
/// order within the first 2 x 9,999 events.
const CUSTOMERS: u64 = 9_999;
/// Events the idle baseline folds first (every customer has a key).
const BASELINE_EVENTS: u64 = 100_000;
/// Events appended for the measured run: enough that the fold is still
/// busy when the window ends (order-totals under `projector run` with its
/// default snapshots folds ~60-100k events/s on 2 cores while serving the
/// lookups; the lag check below tells when this is too few).
const INGEST_EVENTS: u64 = 4_000_000;
const NAME: &str = "order-totals";

/// One load run's answer from the load generator.
struct Load {
    json: Value,
}

impl Load {
    fn us(&self, field: &str) -> f64 {
        self.json[field].as_f64().unwrap_or(f64::NAN)
    }
    fn count(&self, field: &str) -> u64 {
        self.json[field].as_u64().unwrap_or_default()
    }
    fn errors(&self) -> String {
        let errors = self.count("errors");
        if errors == 0 {
            format!("0 errors of {}", thousands(self.count("sent") as f64))
        } else {
            format!(
                "{errors} ERRORS of {} ({})",
                thousands(self.count("sent") as f64),
                self.json["errors_by_kind"]
            )
        }
    }
}

/// A poll of the projection during a load run.
struct Poll {
    unix_ms: f64,
    applied: u64,
    lag: u64,
}

pub fn run(args: &Args, report: &mut Report) -> Result<()> {
    let bin = server::projector_bin()?;
    let loadgen = server::bench_bin("projector-loadgen")?;
    eprintln!("C: server {}", server::describe_bin(&bin));
    let ingest_events = args.events_or(INGEST_EVENTS);
    let dir = tempfile::tempdir()?;

    // Baseline: the projection is caught up and idle.
    let base_dir = dir.path().join("baseline");
    prepare(&base_dir, BASELINE_EVENTS)?;
    let mut base_server = start(&bin, &base_dir)?;
    base_server.wait_all(
        &[NAME.to_owned()],
        "the baseline log folded",
        Duration::from_secs(600),
        |info| info["events_applied"].as_u64() >= Some(BASELINE_EVENTS) && info["lag"] == 0,
    )?;
    let (baseline, base_polls) = load(&mut base_server, &loadgen)?;
    base_server.stop()?;
    eprintln!("C: baseline (idle) {}", baseline.json);
    ensure!(
        base_polls.iter().all(|p| p.lag == 0),
        "the baseline projection was not idle"
    );

    // Measured: the fold runs flat out during the whole window.
    let ingest_dir = dir.path().join("ingest");
    eprintln!("C: appending {ingest_events} events");
    prepare(&ingest_dir, ingest_events)?;
    let mut ingest_server = start(&bin, &ingest_dir)?;
    // Every customer has a key before lookups start.
    ingest_server.wait_all(
        &[NAME.to_owned()],
        "every customer folded",
        Duration::from_secs(600),
        |info| info["events_applied"].as_u64() >= Some(CUSTOMERS * 3),
    )?;
    let (measured, polls) = load(&mut ingest_server, &loadgen)?;
    ingest_server.stop()?;
    eprintln!("C: during ingestion {}", measured.json);

    // The ingestion over the window: lag > 0 at every poll, events/s.
    let (from, to) = (
        measured.us("window_start_unix_ms"),
        measured.us("window_end_unix_ms"),
    );
    let in_window: Vec<&Poll> = polls
        .iter()
        .filter(|p| p.unix_ms >= from - 300.0 && p.unix_ms <= to + 300.0)
        .collect();
    ensure!(
        in_window.len() >= 2,
        "too few polls of the projection in the window"
    );
    let lag_min = in_window.iter().map(|p| p.lag).min().unwrap_or_default();
    let (first, last) = (in_window[0], in_window[in_window.len() - 1]);
    let ingest_rate =
        (last.applied - first.applied) as f64 / ((last.unix_ms - first.unix_ms) / 1e3);
    let busy = lag_min > 0;
    let ingestion = if busy {
        format!(
            "ingesting {} events/s, lag > 0 throughout",
            thousands(ingest_rate)
        )
    } else {
        format!(
            "ingesting {} events/s, but the lag reached 0 (more events: --events)",
            thousands(ingest_rate)
        )
    };
    eprintln!(
        "C: {ingestion} (min lag {lag_min}, {} polls); send lateness p50 {:.0} us / p99 {:.0} us (timer overshoot and \
         per-connection queueing, included in the latencies)",
        in_window.len(),
        measured.us("send_late_p50_us"),
        measured.us("send_late_p99_us")
    );

    let clean = measured.count("errors") == 0 && baseline.count("errors") == 0 && busy;
    for (label, field, target) in [
        ("p50", "p50_us", None),
        ("p99", "p99_us", Some(1000.0)),
        ("p999", "p999_us", None),
    ] {
        let (m, b) = (measured.us(field), baseline.us(field));
        report.add(Row {
            scenario: "C",
            case: format!(
                "{label} key lookup at {} req/s for {SECS:.0} s, {ingestion}; {}",
                thousands(RATE as f64),
                measured.errors()
            ),
            measured: Quantity::millis(m / 1e3),
            detail: String::new(),
            baseline: format!("no ingestion {:.3} ms ({})", b / 1e3, baseline.errors()),
            ratio: Some(b / m),
            target: target.map(|t: f64| {
                Target::new(vec![
                    Condition::Below(Quantity::millis(t / 1e3)),
                    Condition::Requires {
                        what: "no errors, lag > 0 throughout".into(),
                        holds: clean,
                    },
                ])
            }),
        });
    }
    if !busy {
        bail!("the projection caught up during the window: the measurement is not under ingestion");
    }
    Ok(())
}

/// A data dir whose embedded log holds `events` order events, and a
/// modules dir with order-totals.
fn prepare(dir: &Path, events: u64) -> Result<()> {
    let data = dir.join("data");
    std::fs::create_dir_all(&data)?;
    let log = EmbeddedLog::open(&data.join("log.redb"), 3)?;
    append_orders(&log, events, CUSTOMERS)?;
    log.shutdown();
    drop(log);
    let modules = dir.join("modules");
    std::fs::create_dir_all(&modules)?;
    std::fs::copy(
        projector_test_guests::ORDER_TOTALS,
        modules.join("order-totals.wasm"),
    )?;
    Ok(())
}

fn start(bin: &Path, dir: &Path) -> Result<Server> {
    let mut server = Server::launch(
        bin,
        &dir.join("data"),
        &dir.join("modules"),
        &dir.join("server.log"),
    )?;
    server.wait_up(Duration::from_secs(120))?;
    Ok(server)
}

/// Runs the load generator against `server`, polling the projection's
/// lag meanwhile.
fn load(server: &mut Server, loadgen: &Path) -> Result<(Load, Vec<Poll>)> {
    let done = Arc::new(AtomicBool::new(false));
    let poller = {
        let done = done.clone();
        let agent = server::agent();
        let url = format!("{}/v1/projections/{NAME}", server.url);
        std::thread::spawn(move || -> Result<Vec<Poll>> {
            let mut polls = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let info: Value = agent.get(&url).call()?.body_mut().read_json()?;
                polls.push(Poll {
                    unix_ms: SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs_f64() * 1e3,
                    applied: info["events_applied"].as_u64().unwrap_or_default(),
                    lag: info["lag"].as_u64().unwrap_or_default(),
                });
                std::thread::sleep(Duration::from_millis(250));
            }
            Ok(polls)
        })
    };
    let output = std::process::Command::new(loadgen)
        .args(["--addr", &format!("127.0.0.1:{}", server.port)])
        .args(["--projection", NAME])
        .args(["--customers", &CUSTOMERS.to_string()])
        .args(["--rate", &RATE.to_string()])
        .args(["--warmup-secs", &WARMUP_SECS.to_string()])
        .args(["--secs", &SECS.to_string()])
        .args(["--connections", &CONNECTIONS.to_string()])
        .output()
        .with_context(|| format!("running {}", loadgen.display()))?;
    done.store(true, Ordering::Relaxed);
    let polls = poller
        .join()
        .map_err(|_| anyhow::anyhow!("the lag poller panicked"))??;
    server.check_alive()?;
    if !output.status.success() {
        bail!(
            "the load generator failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let json = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "the load generator's output: {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })?;
    Ok((Load { json }, polls))
}
