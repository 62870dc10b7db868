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
use crate::report::{Quantity, Report, Row, loadavg, thousands};

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
    if args.write_table.is_some() && !args.only.is_empty() {
        bail!("--write-table writes every language's row: leave out --only");
    }
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
    if let Some(path) = &args.write_table {
        let table = languages_table(&results, events, args.batch, &load_before, &load_after);
        write_between_markers(path, &table)?;
        println!("wrote the table of languages into {}", path.display());
    }
    for m in &results[1..] {
        let rate = events as f64 / m.fold_secs;
        report.add(Row {
            scenario: "F",
            case: format!(
                "replay {events} events, {CUSTOMERS} keys, order-totals ({}, {:.1} MB)",
                m.language,
                m.size as f64 / 1e6
            ),
            measured: Quantity::events_per_sec(rate),
            detail: String::new(),
            baseline: format!("Rust module {} events/s", thousands(rust_rate)),
            ratio: Some(rate / rust_rate),
            target: None,
        });
    }
    Ok(())
}

/// Where `--write-table` puts the table in a Markdown file.
pub const TABLE_START: &str = "<!-- languages-table:start -->";
pub const TABLE_END: &str = "<!-- languages-table:end -->";

fn display_name(language: &str) -> &str {
    match language {
        "rust" => "Rust",
        "python" => "Python",
        "js" => "JavaScript",
        "ts" => "TypeScript",
        "go" => "Go",
        "c" => "C",
        other => other,
    }
}

/// `154321.0` -> `154k`, `6123.0` -> `6.1k`.
fn short_rate(rate: f64) -> String {
    if rate >= 10_000.0 {
        format!("{:.0}k", rate / 1e3)
    } else {
        format!("{:.1}k", rate / 1e3)
    }
}

/// The table of languages as docs/languages.md shows it, with how and
/// where it was measured.
fn languages_table(
    results: &[Measured],
    events: u64,
    batch: usize,
    load_before: &str,
    load_after: &str,
) -> String {
    let rust_rate = events as f64 / results[0].fold_secs;
    let mut out = String::from(
        "| language | module size | cold compile in the host | order-totals events/s (vs Rust) |\n\
         | --- | ---: | ---: | ---: |\n",
    );
    for m in results {
        let rate = events as f64 / m.fold_secs;
        out.push_str(&format!(
            "| {} | {:.2} MB | {:.2} s | {} ({:.2}×) |\n",
            display_name(m.language),
            m.size as f64 / 1e6,
            m.cold_secs,
            short_rate(rate),
            rate / rust_rate
        ));
    }
    out.push_str(&format!(
        "\nWritten by `cargo run --release -p projector-bench -- --languages --write-table docs/languages.md`: \
         {} order events, {} customers, batch {batch}, on {} cores, load average \
         (1, 5, 15 min) {} before and {} after.\n",
        thousands(events as f64),
        thousands(CUSTOMERS as f64),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_before.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        load_after.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    ));
    out
}

/// Replaces what lies between [`TABLE_START`] and [`TABLE_END`] in `path`
/// with `table`.
fn write_between_markers(path: &Path, table: &str) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let replaced = replace_between_markers(&text, table).with_context(|| {
        format!(
            "{}: put the lines {TABLE_START} and {TABLE_END} where the table goes",
            path.display()
        )
    })?;
    std::fs::write(path, replaced).with_context(|| format!("writing {}", path.display()))
}

fn replace_between_markers(text: &str, table: &str) -> Result<String> {
    let (Some(start), Some(end)) = (text.find(TABLE_START), text.find(TABLE_END)) else {
        bail!("the markers are missing");
    };
    ensure!(
        start < end
            && text.matches(TABLE_START).count() == 1
            && text.matches(TABLE_END).count() == 1,
        "the markers must appear once each, start before end"
    );
    let head = &text[..start + TABLE_START.len()];
    Ok(format!("{head}\n{table}{}", &text[end..]))
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
    )?
    .secs;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_goes_between_the_markers_only() {
        let text =
            format!("# Title\n\nbefore\n{TABLE_START}\nold\n| table |\n{TABLE_END}\nafter\n");
        let out = replace_between_markers(&text, "| new |\n").unwrap();
        assert_eq!(
            out,
            format!("# Title\n\nbefore\n{TABLE_START}\n| new |\n{TABLE_END}\nafter\n")
        );
        // Writing again gives the same file.
        assert_eq!(replace_between_markers(&out, "| new |\n").unwrap(), out);
        assert!(replace_between_markers("no markers", "x").is_err());
        let twice = format!("{TABLE_START}{TABLE_END}{TABLE_START}{TABLE_END}");
        assert!(replace_between_markers(&twice, "x").is_err());
    }

    #[test]
    fn write_table_rewrites_the_file_between_its_markers() {
        let dir = tempfile::tempdir().unwrap();
        let page = dir.path().join("languages.md");
        std::fs::write(
            &page,
            format!("intro\n{TABLE_START}\n| old |\n{TABLE_END}\noutro\n"),
        )
        .unwrap();
        write_between_markers(&page, "| new |\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&page).unwrap(),
            format!("intro\n{TABLE_START}\n| new |\n{TABLE_END}\noutro\n")
        );

        // A page without markers is left as it was, and the error says
        // which file and what to add.
        let bare = dir.path().join("bare.md");
        std::fs::write(&bare, "no table here\n").unwrap();
        let error = format!(
            "{:#}",
            write_between_markers(&bare, "| new |\n").unwrap_err()
        );
        assert!(error.contains("bare.md"), "{error}");
        assert!(
            error.contains(TABLE_START) && error.contains(TABLE_END),
            "{error}"
        );
        assert_eq!(std::fs::read_to_string(&bare).unwrap(), "no table here\n");

        // End before start is refused too.
        let backwards = format!("{TABLE_END}\n{TABLE_START}\n");
        assert!(replace_between_markers(&backwards, "x").is_err());
    }

    /// The page the command writes into keeps its markers.
    #[test]
    fn docs_languages_has_the_markers() {
        let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/languages.md");
        let text = std::fs::read_to_string(&page).unwrap();
        replace_between_markers(&text, "").unwrap();
    }

    #[test]
    fn the_table_shows_every_language_against_rust() {
        let measured = |language, size, cold_secs, fold_secs| Measured {
            language,
            size,
            cold_secs,
            warm_secs: 0.001,
            fold_secs,
            state: PathBuf::new(),
        };
        let table = languages_table(
            &[
                measured("rust", 120_000, 0.09, 1_000_000.0 / 154_000.0),
                measured("js", 12_000_000, 5.9, 1_000_000.0 / 6_100.0),
            ],
            1_000_000,
            1000,
            "1.50 1.20 1.00 2/300 4000",
            "1.60 1.30 1.10 2/300 4001",
        );
        assert!(
            table.contains("| Rust | 0.12 MB | 0.09 s | 154k (1.00×) |"),
            "{table}"
        );
        assert!(
            table.contains("| JavaScript | 12.00 MB | 5.90 s | 6.1k (0.04×) |"),
            "{table}"
        );
        assert!(
            table.contains("1,000,000 order events, 10,000 customers, batch 1000"),
            "{table}"
        );
        assert!(
            table.contains("1.50 1.20 1.00 before and 1.60 1.30 1.10 after"),
            "{table}"
        );
    }
}
