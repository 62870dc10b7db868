//! D: start-up, the time from spawning `projector run` to every one of 10
//! projections serving (listed with status running, and a key lookup
//! answered: `404 key_not_found` on the empty state), with an empty state:
//! - cold: an empty compile cache (a fresh data folder);
//! - warm: the compile cache filled by an earlier run, the rest of the data
//!   folder (state files, log) removed.
//!
//! Baseline (same run): `projector run` with no modules, until it answers
//! `/v1/health`. Each case runs `REPEATS` times; the median is reported and
//! every run printed. Ratio = baseline / measured (higher = better).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::Args;
use crate::report::{Quantity, Report, Row, Target};
use crate::server::{self, Server};

const MODULES: usize = 10;
const REPEATS: usize = 5;
const TARGET_MS: f64 = 300.0;
const PATIENCE: Duration = Duration::from_secs(120);

pub fn run(_args: &Args, report: &mut Report) -> Result<()> {
    let bin = server::projector_bin()?;
    eprintln!("D: server {}", server::describe_bin(&bin));
    let dir = tempfile::tempdir()?;
    let none = dir.path().join("no-modules");
    std::fs::create_dir_all(&none)?;
    let modules = dir.path().join("modules");
    // Distinct files: a cold cache compiles each of the 10, not one.
    let names = server::distinct_order_totals(&modules, MODULES)?;

    let mut baseline = Vec::new();
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for round in 0..REPEATS {
        let data = dir.path().join(format!("bare-{round}"));
        baseline.push(time_to_serving(&bin, &data, &none, &[], dir.path())?);

        let data = dir.path().join(format!("data-{round}"));
        cold.push(time_to_serving(&bin, &data, &modules, &names, dir.path())?);
        // Keep the compile cache only.
        for entry in std::fs::read_dir(&data)? {
            let entry = entry?;
            if entry.file_name() != "cache" {
                let path = entry.path();
                if path.is_dir() {
                    std::fs::remove_dir_all(&path)?;
                } else {
                    std::fs::remove_file(&path)?;
                }
            }
        }
        warm.push(time_to_serving(&bin, &data, &modules, &names, dir.path())?);
        eprintln!(
            "D: round {round}: no modules {:.1} ms, cold {:.1} ms, warm {:.1} ms",
            baseline[round], cold[round], warm[round]
        );
    }
    let base = median(&mut baseline);
    for (label, times) in [("warm", &mut warm), ("cold", &mut cold)] {
        let (m, min, max) = (median(times), times[0], times[times.len() - 1]);
        report.add(Row {
            scenario: "D",
            case: format!(
                "time to serving, {MODULES} modules, {label} compile cache (median of \
                 {REPEATS}, {min:.0}-{max:.0} ms)"
            ),
            measured: Quantity::millis(m),
            detail: String::new(),
            baseline: format!("no modules {base:.0} ms"),
            ratio: Some(base / m),
            target: (label == "warm").then(|| Target::below(Quantity::millis(TARGET_MS))),
        });
    }
    Ok(())
}

/// Sorts `times` and returns the median.
fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Milliseconds from spawning `projector run` over `data` and `modules`
/// until it serves every projection in `names` (or, with none, answers
/// health checks). Stops it afterwards.
fn time_to_serving(
    bin: &Path,
    data: &Path,
    modules: &Path,
    names: &[String],
    logs: &Path,
) -> Result<f64> {
    let log = logs.join(format!(
        "server-{}.log",
        data.file_name().unwrap_or_default().to_string_lossy()
    ));
    let started = Instant::now();
    let mut server = Server::launch(bin, data, modules, &log)?;
    let deadline = started + PATIENCE;
    let mut waiting: Vec<&String> = names.iter().collect();
    loop {
        server.check_alive()?;
        if Instant::now() > deadline {
            bail!("not serving after {PATIENCE:?}: still waiting for {waiting:?}");
        }
        if names.is_empty() {
            if server.healthy() {
                break;
            }
        } else {
            waiting.retain(|name| !serving(&server, name));
            if waiting.is_empty() {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let ms = started.elapsed().as_secs_f64() * 1e3;
    server.stop()?;
    Ok(ms)
}

/// Whether `name` is listed as running and answers a key lookup (its empty
/// state has no such key: `404 key_not_found`, not `unknown_projection`).
fn serving(server: &Server, name: &str) -> bool {
    let running = server
        .get_json(&format!("/v1/projections/{name}"))
        .is_ok_and(|info| info["status"]["state"] == "running");
    running
        && server
            .get(&format!("/v1/projections/{name}/state/customer%2Fc0"))
            .is_ok_and(|(status, body)| {
                status == 404
                    && serde_json::from_slice::<serde_json::Value>(&body)
                        .is_ok_and(|v| v["error"]["code"] == "key_not_found")
            })
}
