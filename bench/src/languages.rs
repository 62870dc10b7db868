//! Scenario `--languages`: the order-totals module of every SDK language
//! over the same embedded log, against the Rust one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};

use projector::registry::Sources;
use projector::source::EmbeddedLog;
use projector::wasm::{Limits, WasmHost};
use projector::worker::WorkerConfig;

use crate::Args;
use crate::common::{append_orders, fold_by_registry, same_state, state_file};
use crate::report::{Report, Row, loadavg, thousands};

const CUSTOMERS: u64 = 10_000;

/// Every SDK language, in table order, with the script that builds its
/// order-totals module (none for Rust: the test-guests crate builds it).
const LANGUAGES: [(&str, Option<&str>); 6] = [
    ("rust", None),
    ("python", Some("build-python-examples.sh")),
    ("js", Some("build-js-examples.sh")),
    ("ts", Some("build-js-examples.sh")),
    ("go", Some("build-go-examples.sh")),
    ("c", Some("build-c-examples.sh")),
];

struct Measured {
    language: &'static str,
    size: u64,
    cold_secs: f64,
    warm_secs: f64,
    fold_secs: f64,
    state: PathBuf,
}

fn module_file(language: &str, script: Option<&str>) -> Result<PathBuf> {
    let file = match script {
        None => PathBuf::from(projector_test_guests::ORDER_TOTALS),
        Some(_) => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .context("bench has no parent directory")?
            .join("target/guests")
            .join(language)
            .join("order-totals.wasm"),
    };
    if !file.is_file() {
        match script {
            Some(script) => bail!(
                "{language}: no module at {}; build it with ./scripts/{script}",
                file.display()
            ),
            None => bail!("rust: no module at {}", file.display()),
        }
    }
    Ok(file)
}

pub fn run(args: &Args, report: &mut Report) -> Result<()> {
    let events = args.events_or(1_000_000);
    let config = &args.worker_config();
    let dir = tempfile::tempdir()?;
    let dir = dir.path();
    let log = &EmbeddedLog::open(&dir.join("log.redb"), 3)?;
    for name in &args.only {
        ensure!(
            LANGUAGES.iter().any(|(language, _)| language == name),
            "--only: unknown language {name:?}; known: rust, python, js, ts, go, c"
        );
    }
    let selected: Vec<_> = LANGUAGES
        .iter()
        .filter(|(language, _)| {
            *language == "rust" || args.only.is_empty() || args.only.iter().any(|o| o == language)
        })
        .map(|&(language, script)| Ok((language, module_file(language, script)?)))
        .collect::<Result<_>>()?;

    let load_before = loadavg();
    let started = Instant::now();
    append_orders(log, events, CUSTOMERS)?;
    eprintln!(
        "appended {} events in {:.2}s",
        events,
        started.elapsed().as_secs_f64()
    );
    let sources = Sources {
        embedded: Arc::new(log.clone()),
        kafka: None,
    };

    let mut results: Vec<Measured> = Vec::new();
    for (language, file) in selected {
        let measured = measure(language, &file, &sources, dir, config, events)
            .with_context(|| format!("{language}: {}", file.display()))?;
        if let Some(rust) = results.first() {
            let keys = same_state(
                &measured.state,
                &rust.state,
                &format!("{language} and rust"),
            )?;
            eprintln!("{language}: state equals Rust's ({keys} keys and values)");
        }
        results.push(measured);
    }
    let load_after = loadavg();

    let rust_rate = events as f64 / results[0].fold_secs;
    println!();
    println!(
        "order-totals per SDK language over {} events, {} customers, {} partitions, batch {}",
        events, CUSTOMERS, 3, args.batch
    );
    println!("| language | module size | cold compile | warm load | events/s | vs Rust |");
    println!("|---|---:|---:|---:|---:|---:|");
    for m in &results {
        let rate = events as f64 / m.fold_secs;
        println!(
            "| {} | {:.2} MB ({} B) | {:.2} s | {:.1} ms | {:.0} | {:.3} |",
            m.language,
            m.size as f64 / 1e6,
            m.size,
            m.cold_secs,
            m.warm_secs * 1e3,
            rate,
            rate / rust_rate
        );
    }
    println!(
        "state check: every language's final state equals Rust's ({} compared)",
        results.len() - 1
    );
    println!(
        "load average (/proc/loadavg, {} cores): before {load_before}; after {load_after}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    log.shutdown();
    for m in &results[1..] {
        let rate = events as f64 / m.fold_secs;
        report.add(Row {
            scenario: "F",
            case: format!(
                "replay {events} events, {CUSTOMERS} keys, order-totals ({}, {:.1} MB)",
                m.language,
                m.size as f64 / 1e6
            ),
            measured: format!("{} events/s", thousands(rate)),
            baseline: format!("Rust module {} events/s", thousands(rust_rate)),
            ratio: Some(rate / rust_rate),
            target: String::new(),
            met: None,
        });
    }
    Ok(())
}

/// One language: cold compile into an empty cache, warm load from it, then
/// the fold of the whole log by the real worker (as `run_wasm` does).
fn measure(
    language: &'static str,
    file: &Path,
    sources: &Sources,
    dir: &Path,
    config: &WorkerConfig,
    events: u64,
) -> Result<Measured> {
    let base = dir.join(language);
    let modules = base.join("modules");
    std::fs::create_dir_all(&modules)?;
    let module = modules.join("order-totals.wasm");
    std::fs::copy(file, &module)?;
    let size = std::fs::metadata(&module)?.len();
    let cache = base.join("cache");

    let cold_host = WasmHost::new(&cache, Limits::default())?;
    let started = Instant::now();
    let loaded = cold_host.load(&module)?;
    let cold_secs = started.elapsed().as_secs_f64();
    ensure!(!loaded.from_cache, "cold load came from the cache");
    let name = loaded.descriptor.name.clone();
    drop(loaded);
    drop(cold_host);

    // A new host: nothing compiled in memory, only the on-disk cache.
    let host = WasmHost::new(&cache, Limits::default())?;
    let started = Instant::now();
    let loaded = host.load(&module)?;
    let warm_secs = started.elapsed().as_secs_f64();
    ensure!(loaded.from_cache, "warm load did not come from the cache");
    drop(loaded);
    eprintln!(
        "{language}: {size} B, cold compile {cold_secs:.2}s, warm load {:.1}ms; folding {events} events (load average {})",
        warm_secs * 1e3,
        loadavg()
    );

    let data = base.join("data");
    let fold_secs = fold_by_registry(
        &host,
        sources.clone(),
        &modules,
        &data,
        &name,
        config,
        events,
    )?;
    eprintln!(
        "{language}: folded in {fold_secs:.2}s ({:.0} events/s)",
        events as f64 / fold_secs
    );
    Ok(Measured {
        language,
        size,
        cold_secs,
        warm_secs,
        fold_secs,
        state: state_file(&data, &name)?,
    })
}
