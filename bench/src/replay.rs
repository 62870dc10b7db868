//! Scenario A: replay of the embedded log through `order-totals` by the
//! real worker, against the same fold written natively in Rust, over the
//! same log, with the same batch size and the same commit path (overlay ->
//! one redb transaction with the offsets). Both must write identical state.
//!
//! Like with like: the native baseline pipelines its commits on a second
//! thread as the worker does (batches coalesce up to `commit_max_events`
//! and commit while the next ones fold, reading through the changes in
//! flight); both clocks stop at the durable commit of the last event; the
//! two folds alternate which runs first, round after round. The native fold
//! that commits inline on its one thread is measured too and shown beside.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use serde::{Deserialize, Serialize};

use projector::event::Offsets;
use projector::registry::Sources;
use projector::source::{EmbeddedLog, Source, TopicBinding};
use projector::store::{Changes, CommitPositions, Overlay, StateReader, StateStore};
use projector::worker::WorkerConfig;

use crate::common::{
    FoldTime, append_orders, run_wasm, same_state, state_file, this_thread_cpu_secs,
    threads_cpu_secs,
};
use crate::report::{Condition, Quantity, Report, Row, Target, loadavg, thousands};

/// One case of scenario A.
pub struct Case {
    pub events: u64,
    pub customers: u64,
}

/// Events/s and CPU nanoseconds per event (folding and commit threads) of
/// one case, each the median over the rounds.
pub struct Measured {
    pub wasm_rate: f64,
    /// Native, commits pipelined on a second thread as the worker does.
    pub native_rate: f64,
    /// Native, commits inline on the folding thread.
    pub inline_rate: f64,
    pub wasm_cpu_ns: f64,
    pub native_cpu_ns: f64,
    pub inline_cpu_ns: f64,
    pub rounds: usize,
}

pub fn run(
    cases: &[Case],
    config: &WorkerConfig,
    rounds: usize,
    report: &mut Report,
) -> Result<()> {
    for (index, case) in cases.iter().enumerate() {
        let measured = measure(case, config, rounds, index)
            .with_context(|| format!("{} events, {} customers", case.events, case.customers))?;
        let ratio = measured.wasm_rate / measured.native_rate;
        let mut conditions = vec![Condition::RatioAtLeast(0.5)];
        if case.customers <= 10_000 {
            conditions.push(Condition::AtLeast(Quantity::events_per_sec(1e6)));
        }
        let what = format!(
            "replay {} events, {} keys, order-totals (Rust), median of {} rounds",
            short(case.events),
            short(case.customers),
            measured.rounds
        );
        report.add(Row {
            scenario: "A",
            case: what.clone(),
            measured: Quantity::events_per_sec(measured.wasm_rate),
            detail: String::new(),
            baseline: format!(
                "native Rust fold, commits pipelined as the worker's, {} events/s",
                thousands(measured.native_rate)
            ),
            ratio: Some(ratio),
            target: Some(Target::new(conditions)),
        });
        report.add(Row {
            scenario: "A",
            case: format!("{what}; against the native fold that commits inline (one thread)"),
            measured: Quantity::events_per_sec(measured.wasm_rate),
            detail: String::new(),
            baseline: format!(
                "native Rust fold, commits inline, {} events/s",
                thousands(measured.inline_rate)
            ),
            ratio: Some(measured.wasm_rate / measured.inline_rate),
            target: None,
        });
        // What a busy machine skews least: CPU time per event. The ratio
        // reads as the others do (baseline cost / measured cost: higher is
        // better for Wasm).
        report.add(Row {
            scenario: "A",
            case: format!("{what}; CPU time per event, folding and commit threads"),
            measured: Quantity::nanos_per_event(measured.wasm_cpu_ns),
            detail: String::new(),
            baseline: format!(
                "native Rust fold, commits pipelined {:.0} ns, inline {:.0} ns per event",
                measured.native_cpu_ns, measured.inline_cpu_ns
            ),
            ratio: Some(measured.native_cpu_ns / measured.wasm_cpu_ns),
            target: None,
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

/// The three folds of one round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fold {
    Wasm,
    Native,
    Inline,
}

/// The order the folds run in: round after round (and case after case) the
/// first one moves to the end, so none always has the cold caches or the
/// warm ones.
fn fold_order(turn: usize) -> [Fold; 3] {
    let mut order = [Fold::Wasm, Fold::Native, Fold::Inline];
    order.rotate_left(turn % 3);
    order
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

pub fn measure(
    case: &Case,
    config: &WorkerConfig,
    rounds: usize,
    case_index: usize,
) -> Result<Measured> {
    ensure!(rounds >= 1, "--rounds must be at least 1");
    let dir = tempfile::tempdir()?;
    let log = EmbeddedLog::open(&dir.path().join("log.redb"), 3)?;
    let started = Instant::now();
    append_orders(&log, case.events, case.customers)?;
    let append_secs = started.elapsed().as_secs_f64();
    let sources = Sources {
        embedded: Arc::new(log.clone()),
        kafka: None,
    };
    let rate = |secs: f64| case.events as f64 / secs;
    let cpu_ns = |time: &FoldTime| time.cpu_secs / case.events as f64 * 1e9;
    // Per fold: events/s and CPU ns per event, one of each per round.
    let (mut wasm, mut native, mut inline) = (Vec::new(), Vec::new(), Vec::new());
    let (mut wasm_cpu, mut native_cpu, mut inline_cpu) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let order = fold_order(case_index + round);
        let mut line = Vec::new();
        for fold in order {
            let round_dir = dir.path().join(format!("round-{round}"));
            let time = match fold {
                Fold::Wasm => run_wasm(sources.clone(), &round_dir, "wasm", config, case.events)?,
                Fold::Native => {
                    run_native(&log, &round_dir.join("native"), config, case.events, true)?
                }
                Fold::Inline => {
                    run_native(&log, &round_dir.join("inline"), config, case.events, false)?
                }
            };
            line.push(format!(
                "{fold:?} {:.0}/s ({:.0} ns CPU/event)",
                rate(time.secs),
                cpu_ns(&time)
            ));
            let (rates, cpus) = match fold {
                Fold::Wasm => (&mut wasm, &mut wasm_cpu),
                Fold::Native => (&mut native, &mut native_cpu),
                Fold::Inline => (&mut inline, &mut inline_cpu),
            };
            rates.push(rate(time.secs));
            cpus.push(cpu_ns(&time));
        }
        compare_states(&dir.path().join(format!("round-{round}")))?;
        eprintln!(
            "A: {} events, {} customers, round {round} (in this order): {} (load average {})",
            case.events,
            case.customers,
            line.join(", "),
            loadavg()
        );
    }
    log.shutdown();
    let measured = Measured {
        wasm_rate: median(&mut wasm),
        native_rate: median(&mut native),
        inline_rate: median(&mut inline),
        wasm_cpu_ns: median(&mut wasm_cpu),
        native_cpu_ns: median(&mut native_cpu),
        inline_cpu_ns: median(&mut inline_cpu),
        rounds,
    };
    eprintln!(
        "A: {} events, {} customers: append {:.0}/s; median of {rounds}: Wasm {:.0}/s, native pipelined {:.0}/s, native inline {:.0}/s",
        case.events,
        case.customers,
        rate(append_secs),
        measured.wasm_rate,
        measured.native_rate,
        measured.inline_rate
    );
    Ok(measured)
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

/// One transaction for the native fold's commit thread.
struct CommitJob {
    changes: Arc<Changes>,
    positions: Offsets,
    events_applied: u64,
    durable: bool,
}

/// Time for the native fold of `events` events into `dir/state.redb`,
/// until the last event's commit is durable. With `pipelined`, commits run
/// on a second thread as the worker's do (the next batches fold meanwhile,
/// reading through the changes in flight); else inline, on this thread.
pub fn run_native(
    log: &EmbeddedLog,
    dir: &Path,
    config: &WorkerConfig,
    events: u64,
    pipelined: bool,
) -> Result<FoldTime> {
    std::fs::create_dir_all(dir)?;
    // The clock starts where the Wasm fold's does (before `Registry::start`
    // opens its state file): opening the state file and starting the
    // commit thread are counted on both sides.
    let started = Instant::now();
    let cpu_before = this_thread_cpu_secs();
    let store = Arc::new(StateStore::open_with_cache(
        &dir.join("state.redb"),
        config.state_cache_bytes,
    )?);
    let topics = [TopicBinding {
        logical: "orders".into(),
        physical: "orders".into(),
    }];
    // The commit thread: one job in flight at a time, as the worker's.
    let (jobs, inbox) = std::sync::mpsc::sync_channel::<CommitJob>(1);
    let (done, outcomes) = std::sync::mpsc::sync_channel::<Result<(), String>>(1);
    let committer = {
        let store = store.clone();
        std::thread::Builder::new()
            .name("native-commit".into())
            .spawn(move || {
                for job in inbox {
                    let result = store
                        .commit(
                            &Overlay::from_shared(job.changes),
                            CommitPositions {
                                offsets: &job.positions,
                                events_applied: job.events_applied,
                            },
                            job.durable,
                        )
                        .map_err(|e| e.to_string());
                    if done.send(result).is_err() {
                        break;
                    }
                }
            })?
    };
    let mut subscription = log.subscribe(
        "native",
        &topics,
        projector::source::Partitions::All,
        &Offsets::default(),
    )?;
    let mut positions = Offsets::default();
    let mut applied = 0u64;
    let mut last_durable = Instant::now();
    let mut batch = Vec::with_capacity(config.batch_max_events);
    // Batches applied but not committed yet, and the changes being
    // committed by the commit thread: later batches read through both.
    let mut pending: Arc<Changes> = Arc::default();
    let mut pending_events = 0u64;
    let mut pending_since: Option<Instant> = None;
    let mut in_flight: Option<Arc<Changes>> = None;
    while applied < events {
        batch.clear();
        subscription.poll_batch(config.batch_max_events, Duration::ZERO, &mut batch)?;
        ensure!(!batch.is_empty(), "log ended after {applied} events");
        let base = store.reader()?;
        let mut overlay = Overlay::over(pending.clone(), in_flight.clone().unwrap_or_default());
        for event in &batch {
            fold(
                &mut overlay,
                &base,
                event.payload.as_deref().unwrap_or_default(),
            )?;
            positions.set(&event.source, event.partition, event.offset + 1);
        }
        // The overlay lets go of its reference to `pending`: no copy.
        let changes = overlay.into_batch_changes();
        let coalesced = Arc::make_mut(&mut pending);
        if coalesced.is_empty() {
            *coalesced = changes;
        } else {
            coalesced.extend(changes);
        }
        applied += batch.len() as u64;
        pending_events += batch.len() as u64;
        pending_since.get_or_insert_with(Instant::now);
        // When the worker commits (`Worker::commit_due`): a short batch at
        // the head of the log, or enough pending, or the oldest pending
        // batch old enough; and after the last event, as the worker's empty
        // poll that follows it does.
        let due = (batch.len() < config.batch_max_events && subscription.at_head())
            || applied >= events
            || pending_events >= config.commit_max_events as u64
            || pending_since.is_some_and(|since| since.elapsed() >= config.commit_max_delay);
        if !due {
            continue;
        }
        // The previous commit ends first, as the worker's `flush` waits.
        if in_flight.take().is_some() {
            outcomes.recv()?.map_err(anyhow::Error::msg)?;
        }
        let durable = last_durable.elapsed() >= config.sync_interval;
        if durable {
            last_durable = Instant::now();
        }
        let changes = std::mem::take(&mut pending);
        let job = CommitJob {
            changes: changes.clone(),
            positions: positions.clone(),
            events_applied: applied,
            durable,
        };
        pending_events = 0;
        pending_since = None;
        if pipelined {
            jobs.send(job)?;
            in_flight = Some(changes);
        } else {
            store.commit(
                &Overlay::from_shared(job.changes),
                CommitPositions {
                    offsets: &job.positions,
                    events_applied: job.events_applied,
                },
                job.durable,
            )?;
        }
    }
    if in_flight.take().is_some() {
        outcomes.recv()?.map_err(anyhow::Error::msg)?;
    }
    // The clock stops where the worker's does: the last event's commit
    // made durable.
    store.sync()?;
    let secs = started.elapsed().as_secs_f64();
    let cpu = this_thread_cpu_secs() - cpu_before;
    let commit_cpu = threads_cpu_secs("native-commit");
    drop(jobs);
    committer
        .join()
        .map_err(|_| anyhow::anyhow!("the native commit thread panicked"))?;
    eprintln!(
        "native ({}): {events} events in {secs:.2}s wall; CPU: fold thread {cpu:.2}s ({:.2} us/event), commit thread {commit_cpu:.2}s ({:.2} us/event)",
        if pipelined {
            "commits pipelined"
        } else {
            "commits inline"
        },
        cpu / events as f64 * 1e6,
        commit_cpu / events as f64 * 1e6
    );
    Ok(FoldTime {
        secs,
        cpu_secs: cpu + commit_cpu,
    })
}

/// All three folds of a round must have produced byte-identical state.
fn compare_states(dir: &Path) -> Result<()> {
    let wasm_file = state_file(&dir.join("wasm"), "order-totals")?;
    for native in ["native", "inline"] {
        let compared = same_state(
            &wasm_file,
            &dir.join(native).join("state.redb"),
            &format!("Wasm and {native}"),
        )?;
        println!("state check: Wasm and {native} fold wrote the same {compared} keys and values");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fold_runs_first_once_in_three_turns() {
        let firsts: Vec<Fold> = (0..3).map(|turn| fold_order(turn)[0]).collect();
        assert_eq!(firsts, [Fold::Wasm, Fold::Native, Fold::Inline]);
        for turn in 0..6 {
            let mut order = fold_order(turn).to_vec();
            order.sort_by_key(|fold| *fold as u8);
            assert_eq!(
                order,
                [Fold::Wasm, Fold::Native, Fold::Inline],
                "turn {turn}"
            );
        }
        // The next case starts where the last one left off, not always
        // with the Wasm fold.
        assert_eq!(fold_order(1), fold_order(4));
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&mut [7.0]), 7.0);
    }

    #[test]
    fn case_sizes_read_short() {
        assert_eq!(short(10_000_000), "10M");
        assert_eq!(short(1_000_000), "1M");
        assert_eq!(short(10_000), "10k");
        assert_eq!(short(1_500), "1500");
        assert_eq!(short(999), "999");
    }
}
