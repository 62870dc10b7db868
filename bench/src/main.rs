//! The performance suite: `cargo run --release -p projector-bench`
//!
//! Runs every scenario of the performance issue, each against a baseline
//! measured in the same run, and prints one table at the end (scenario,
//! case, measured, baseline, ratio, target, met):
//! - A (`replay`): the embedded log through `order-totals` by the real
//!   worker vs the same fold natively in Rust into redb, same batching.
//! - B (`kafka`): order-totals reading Kafka (a Tansu broker started here)
//!   vs a bare rdkafka consumer that only counts, and vs Quix Streams doing
//!   the same per-customer sum.
//! - C (`latency`): key-lookup latency at a fixed request rate from a
//!   separate load-generator process while ingestion runs at full speed.
//! - D (`startup`): time to serving for 10 modules, warm and cold cache.
//! - E (`memory`): peak RSS of 10 projections with 1M keys each.
//! - F (`languages`): scenario A for every SDK language vs Rust.
//! - `scaling`: events/s with 1, 2, 4 and 8 projections on one topic.
//! - `units`: one partitioned projection's units on 1 and 2 threads vs the
//!   same projection kept globally.
//! - `group`: several `projector run` instances of one group on a mock
//!   Kafka cluster: replay on 1 to 3 instances, a 1M-key unit's handover
//!   from a snapshot, a standby and a full replay, lookups local vs
//!   forwarded.
//!
//! `--scenarios a,d` runs a subset; `--events N` shrinks every scenario to
//! N events for a quick look (`--keys` picks A's key counts). The old forms `--kafka` and `--languages`
//! still run B and F alone.

use std::time::Duration;

use anyhow::{Result, bail};
use clap::{Parser, ValueEnum};

use projector::worker::WorkerConfig;

mod common;
mod group;
mod kafka;
mod languages;
mod latency;
mod memory;
mod replay;
mod report;
mod scaling;
mod server;
mod startup;
mod units;

use report::Report;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    A,
    B,
    C,
    D,
    E,
    F,
    Scaling,
    Units,
    Group,
}

#[derive(Debug, Parser)]
pub struct Args {
    /// Scenarios to run, comma-separated (a, b, c, d, e, f, scaling, units,
    /// group).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "a,b,c,d,e,f,scaling,units,group"
    )]
    scenarios: Vec<Scenario>,
    /// Events of every scenario, instead of each one's own sizes (a quick
    /// run); A and F then use 10k keys only.
    #[arg(long)]
    events: Option<u64>,
    /// Events per batch, for every fold and its baseline.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Most events committed together while a backlog lasts, for every fold
    /// and its baseline (the worker's `commit_max_events`).
    #[arg(long, default_value_t = WorkerConfig::default().commit_max_events)]
    commit_events: usize,
    /// redb page cache per state file in MiB, for every fold and its
    /// baseline (the runtime's `state_cache_mb`).
    #[arg(long, default_value_t = projector::store::DEFAULT_CACHE_BYTES >> 20)]
    state_cache_mb: usize,
    /// Rounds of scenario A per case: the Wasm and native folds alternate
    /// which runs first; the median is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Keys (customers) of scenario A's cases, comma-separated; by default
    /// 10k and 1M, or 10k only with --events.
    #[arg(long, value_delimiter = ',')]
    keys: Vec<u64>,
    /// With F: write its table of languages into this Markdown file, between
    /// the markers `<!-- languages-table:start -->` and
    /// `<!-- languages-table:end -->` (e.g. docs/languages.md).
    #[arg(long, value_name = "FILE")]
    write_table: Option<std::path::PathBuf>,
    /// Only scenario B (kept from before the suite).
    #[arg(long, conflicts_with_all = ["languages", "scenarios"])]
    kafka: bool,
    /// Only scenario F (kept from before the suite).
    #[arg(long, conflicts_with = "scenarios")]
    languages: bool,
    /// With F: only these languages (comma-separated, of rust, python, js,
    /// ts, go, c); Rust, the baseline, is always measured.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

impl Args {
    fn selected(&self) -> Vec<Scenario> {
        if self.kafka {
            vec![Scenario::B]
        } else if self.languages {
            vec![Scenario::F]
        } else {
            self.scenarios.clone()
        }
    }

    /// Events for a scenario whose own size is `default`.
    pub fn events_or(&self, default: u64) -> u64 {
        self.events.unwrap_or(default)
    }

    /// The worker settings every fold runs with.
    pub fn worker_config(&self) -> WorkerConfig {
        WorkerConfig {
            batch_max_events: self.batch,
            commit_max_events: self.commit_events,
            state_cache_bytes: self.state_cache_mb << 20,
            batch_linger: Duration::ZERO,
            sync_interval: Duration::from_secs(1),
            // The native baseline runs at the process's priority: so do the
            // worker and commit threads (the runtime lowers them to yield
            // to queries; on a shared machine that would handicap them).
            worker_nice: 0,
            // Measure the fold alone, as the native baseline has no snapshots.
            ..WorkerConfig::default()
        }
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut report = Report::default();
    println!(
        "projector-bench: {} cores, load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        report::loadavg()
    );
    for scenario in args.selected() {
        let (name, result) = match scenario {
            Scenario::A => ("A", run_a(&args, &mut report)),
            Scenario::B => ("B", kafka::run(&args, &mut report)),
            Scenario::C => ("C", latency::run(&args, &mut report)),
            Scenario::D => ("D", startup::run(&args, &mut report)),
            Scenario::E => ("E", memory::run(&args, &mut report)),
            Scenario::F => ("F", languages::run(&args, &mut report)),
            Scenario::Scaling => ("scaling", scaling::run(&args, &mut report)),
            Scenario::Units => ("units", units::run(&args, &mut report)),
            Scenario::Group => ("group", group::run(&args, &mut report)),
        };
        if let Err(error) = result {
            report.failed(name, &error);
        }
    }
    println!();
    println!(
        "load average at the end: {} (command: {})",
        report::loadavg(),
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    print!("{}", report.table());
    if !report.failures().is_empty() {
        bail!("{} scenario(s) failed", report.failures().len());
    }
    Ok(())
}

fn run_a(args: &Args, report: &mut Report) -> Result<()> {
    replay::run(
        &a_cases(args.events, &args.keys),
        &args.worker_config(),
        args.rounds,
        report,
    )
}

/// Scenario A's cases: every event count (1M and 10M, or `--events`) with
/// every key count (`--keys`; 10k and 1M, or 10k only with `--events`).
fn a_cases(events: Option<u64>, keys: &[u64]) -> Vec<replay::Case> {
    let event_counts = match events {
        Some(events) => vec![events],
        None => vec![1_000_000, 10_000_000],
    };
    let key_counts = match (keys, events) {
        ([], Some(_)) => vec![10_000],
        ([], None) => vec![10_000, 1_000_000],
        (keys, _) => keys.to_vec(),
    };
    event_counts
        .into_iter()
        .flat_map(|events| {
            key_counts
                .iter()
                .map(move |&customers| replay::Case { events, customers })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every page that gives a benchmark command writes it as `cargo run
    /// --release -p projector-bench -- ...`, which needs the crate's
    /// default binary named (it has two).
    #[test]
    fn cargo_run_of_the_crate_runs_the_benchmark() {
        let manifest = include_str!("../Cargo.toml");
        assert!(
            manifest.contains("\ndefault-run = \"projector-bench\"\n"),
            "bench/Cargo.toml must say default-run = \"projector-bench\""
        );
    }

    fn cases(events: Option<u64>, keys: &[u64]) -> Vec<(u64, u64)> {
        a_cases(events, keys)
            .into_iter()
            .map(|case| (case.events, case.customers))
            .collect()
    }

    #[test]
    fn scenario_a_cases_from_events_and_keys() {
        assert_eq!(
            cases(None, &[]),
            [
                (1_000_000, 10_000),
                (1_000_000, 1_000_000),
                (10_000_000, 10_000),
                (10_000_000, 1_000_000)
            ]
        );
        assert_eq!(cases(Some(5_000), &[]), [(5_000, 10_000)]);
        // The 1M cases alone, when 10M takes too long.
        assert_eq!(
            cases(Some(1_000_000), &[10_000, 1_000_000]),
            [(1_000_000, 10_000), (1_000_000, 1_000_000)]
        );
        assert_eq!(cases(None, &[7]), [(1_000_000, 7), (10_000_000, 7)]);
    }
}
