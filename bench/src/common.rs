//! What the scenarios share: the order events, appending them, folding a
//! log by the real worker, and comparing two state files.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use projector::event::NewRecord;
use projector::projection::Status;
use projector::registry::{Registry, Sources};
use projector::source::EmbeddedLog;
use projector::store::StateStore;
use projector::wasm::{Limits, WasmHost};
use projector::worker::WorkerConfig;

/// The benchmark's events, as (key, JSON payload): every tenth event
/// cancels the order placed just before it; keyed by order id so a cancel
/// lands in its order's partition.
pub fn order_events(events: u64, customers: u64) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> {
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

pub fn append_orders(log: &EmbeddedLog, events: u64, customers: u64) -> Result<()> {
    const CHUNK: usize = 10_000;
    let mut events = order_events(events, customers).peekable();
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

/// What one fold took: wall time, and the CPU time of the threads that
/// fold and commit (which a busy machine does not inflate as it does wall
/// time).
#[derive(Debug, Clone, Copy)]
pub struct FoldTime {
    pub secs: f64,
    pub cpu_secs: f64,
}

/// Time for the real worker to fold `events` through order-totals, read
/// from `sources` (Kafka when it has one), state under `dir/<state>`.
pub fn run_wasm(
    sources: Sources,
    dir: &Path,
    state: &str,
    config: &WorkerConfig,
    events: u64,
) -> Result<FoldTime> {
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
pub fn fold_by_registry(
    host: &WasmHost,
    sources: Sources,
    modules: &Path,
    data: &Path,
    name: &str,
    config: &WorkerConfig,
    events: u64,
) -> Result<FoldTime> {
    let started = Instant::now();
    let registry = Registry::start(host, sources, modules, data, config)?;
    let projection = registry
        .get(name)
        .with_context(|| format!("{name} did not load"))?;
    let start_secs = started.elapsed().as_secs_f64();
    // The cheapest look at progress (one read of the counter the commit
    // writes), not `info()`: that scans partitions, heads and failure
    // records, a thousand times a second on the cores the fold runs on,
    // which the native baseline does not pay.
    loop {
        if projection.reader()?.events_applied()? >= events {
            break;
        }
        if let status @ (Status::Failed { .. } | Status::Paused { .. }) = projection.status() {
            bail!("{name} failed: {status:?}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    // The clock stops at the durable commit of the last event, as the
    // native baseline's does (the worker would make it durable within
    // `sync_interval`, when idle).
    for store in projection.stores() {
        store.sync()?;
    }
    let secs = started.elapsed().as_secs_f64();
    let (worker, commit) = (threads_cpu_secs("worker-"), threads_cpu_secs("commit-"));
    eprintln!(
        "{name}: {events} events in {secs:.2}s wall (of which start-up {:.1} ms: state file, compiled module from the cache, threads); CPU: workers {worker:.2}s ({:.2} us/event), commit threads {commit:.2}s ({:.2} us/event)",
        start_secs * 1e3,
        worker / events as f64 * 1e6,
        commit / events as f64 * 1e6
    );
    registry.shutdown();
    Ok(FoldTime {
        secs,
        cpu_secs: worker + commit,
    })
}

/// The one state file of projection `name` in the registry data dir `data`.
pub fn state_file(data: &Path, name: &str) -> Result<std::path::PathBuf> {
    let dir = data.join("projections").join(name);
    Ok(std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .next()
        .with_context(|| format!("no state file in {}", dir.display()))??
        .path())
}

/// Checks that two state stores hold byte-identical keys and values;
/// returns how many. `what` names the two in the error.
pub fn same_state(a: &Path, b: &Path, what: &str) -> Result<u64> {
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

/// CPU seconds (user + system) used so far by this process's threads whose
/// name starts with `prefix` (e.g. `worker-`): a fold's cost that a busy
/// machine does not inflate as it does wall time.
pub fn threads_cpu_secs(prefix: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("stat")).ok())
        .filter_map(|stat| {
            let (name, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
            name.starts_with(prefix).then(|| stat_cpu_secs(rest))
        })
        .sum()
}

/// CPU seconds used so far by the calling thread.
pub fn this_thread_cpu_secs() -> f64 {
    std::fs::read_to_string("/proc/thread-self/stat")
        .ok()
        .and_then(|stat| Some(stat_cpu_secs(stat.rsplit_once(") ")?.1)))
        .unwrap_or(0.0)
}

/// utime + stime from the fields after a `/proc/.../stat` line's `(comm) `.
fn stat_cpu_secs(after_comm: &str) -> f64 {
    // Fields 14 and 15 of the line; the text after "(comm) " starts at 3.
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Linux reports these in USER_HZ, 100 on every mainstream configuration.
    (ticks(11) + ticks(12)) / 100.0
}
