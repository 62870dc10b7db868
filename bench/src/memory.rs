//! E: peak RSS (`VmHWM` of `/proc/<pid>/status`) of `projector run` with 10
//! projections (sidecar-named copies of order-totals on one topic), each
//! having folded events that leave 1M keys: 555,556 events with a distinct
//! customer per order make 500,000 `order/<id>` and 500,000
//! `customer/<id>` keys.
//!
//! Baseline (same run): the same process with the same 10 projections and
//! no events. The state files' size on disk is shown beside it.

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, ensure};

use projector::source::EmbeddedLog;

use crate::Args;
use crate::common::append_orders;
use crate::report::{Quantity, Report, Row, Target, thousands};
use crate::server::{self, Server};

const PROJECTIONS: usize = 10;
/// 500,000 orders placed (every tenth event is a cancel).
const EVENTS: u64 = 555_556;
/// Megabytes (10^6 bytes), the unit every figure of this scenario uses.
const TARGET_MB: f64 = 300.0;

struct Memory {
    peak_kb: u64,
    rss_kb: u64,
    /// Keys of every projection (they must all have the same).
    keys: u64,
    /// From the start to every projection caught up.
    secs: f64,
}

pub fn run(args: &Args, report: &mut Report) -> Result<()> {
    let bin = server::projector_bin()?;
    eprintln!("E: server {}", server::describe_bin(&bin));
    let events = args.events_or(EVENTS);
    let dir = tempfile::tempdir()?;
    let modules = dir.path().join("modules");
    let names = server::order_totals_copies(&modules, PROJECTIONS)?;

    let empty = dir.path().join("empty");
    let baseline = measure(&bin, &empty, &modules, &names, 0)?;
    eprintln!(
        "E: no events: VmHWM {} kB, VmRSS {} kB",
        baseline.peak_kb, baseline.rss_kb
    );

    let full = dir.path().join("full");
    std::fs::create_dir_all(&full)?;
    let log = EmbeddedLog::open(&full.join("log.redb"), 3)?;
    // A distinct customer for every order.
    append_orders(&log, events, events)?;
    log.shutdown();
    drop(log);
    let measured = measure(&bin, &full, &modules, &names, events)?;
    let state_bytes = server::dir_bytes(&full.join("projections"));
    let log_bytes = std::fs::metadata(full.join("log.redb"))?.len();
    let keys = measured.keys;
    eprintln!(
        "E: {events} events, {keys} keys each, all folded in {:.1} s: VmHWM {} kB, VmRSS {} kB, \
         state files {}, log {}",
        measured.secs,
        measured.peak_kb,
        measured.rss_kb,
        Quantity::bytes(state_bytes),
        Quantity::bytes(log_bytes)
    );

    // One unit for the measurement, its target and the sizes beside them:
    // MB (10^6 bytes); /proc's "kB" are KiB.
    let peak = Quantity::from_kib(measured.peak_kb);
    report.add(Row {
        scenario: "E",
        case: format!(
            "peak RSS, {PROJECTIONS} projections x {} keys ({} events each)",
            thousands(keys as f64),
            thousands(events as f64)
        ),
        measured: peak,
        detail: format!(" (RSS at the end {})", Quantity::from_kib(measured.rss_kb)),
        baseline: format!(
            "no events {}; state files on disk {}, log {}",
            Quantity::from_kib(baseline.peak_kb),
            Quantity::bytes(state_bytes),
            Quantity::bytes(log_bytes)
        ),
        ratio: None,
        target: Some(Target::below(Quantity::megabytes(TARGET_MB))),
    });
    Ok(())
}

/// Starts `projector run` over `data`, waits until every projection has
/// folded `events` (and is running), and reads its memory.
fn measure(
    bin: &Path,
    data: &Path,
    modules: &Path,
    names: &[String],
    events: u64,
) -> Result<Memory> {
    let started = std::time::Instant::now();
    let mut server = Server::launch(bin, data, modules, &data.with_extension("log"))?;
    server.wait_up(Duration::from_secs(120))?;
    server.wait_all(names, "the log folded", Duration::from_secs(3600), |info| {
        info["status"]["state"] == "running"
            && info["events_applied"].as_u64() >= Some(events)
            && info["lag"] == 0
    })?;
    let mut keys = Vec::new();
    for name in names {
        let info = server.get_json(&format!("/v1/projections/{name}"))?;
        keys.push(info["keys"].as_u64().unwrap_or_default());
    }
    ensure!(
        keys.iter().all(|&k| k == keys[0]),
        "the projections hold different key counts: {keys:?}"
    );
    let pid = server.pid();
    let memory = Memory {
        peak_kb: server::proc_status_kb(pid, "VmHWM")?,
        rss_kb: server::proc_status_kb(pid, "VmRSS")?,
        keys: keys[0],
        secs: started.elapsed().as_secs_f64(),
    };
    server.stop()?;
    Ok(memory)
}
