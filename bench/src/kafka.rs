//! Scenario B: order-totals reading Kafka (a Tansu broker started here) vs a
//! bare rdkafka consumer that only counts the same messages, and vs Quix
//! Streams (`bench/quix/order_totals.py`, installed by
//! `scripts/install-quix.sh`) doing the same fold over the same topic, whose
//! final per-customer totals must equal Projector's `customer/*` state.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use projector::event::Offsets;
use projector::registry::Sources;
use projector::source::{EmbeddedLog, KafkaConfig, KafkaSource, Source, TopicBinding};
use projector::store::StateStore;
use serde::Deserialize;

use crate::Args;
use crate::common::{append_orders, order_events, run_wasm, state_file};
use crate::report::{Quantity, Report, Row, Target, thousands};

/// Partitions of the topic, as the scenario B has it.
const PARTITIONS: u32 = 8;
const CUSTOMERS: u64 = 10_000;

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tansu() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("PROJECTOR_TANSU") {
        return Ok(PathBuf::from(path));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/install-tansu.sh");
    let output = Command::new(&script)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    ensure!(output.status.success(), "{} failed", script.display());
    Ok(PathBuf::from(String::from_utf8(output.stdout)?.trim()))
}

/// The command that installs Quix Streams, named when it fails.
const QUIX_INSTALL: &str = "scripts/install-quix.sh";
/// The Quix version pinned in scripts/quix/requirements.txt.
const QUIX_VERSION: &str = "3.28.1";

/// The Python of the venv Quix Streams is installed in
/// (`PROJECTOR_QUIX_PYTHON` to use another one).
fn quix_python() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("PROJECTOR_QUIX_PYTHON") {
        return Ok(PathBuf::from(path));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(QUIX_INSTALL);
    let failed = || {
        format!(
            "Quix Streams is not installed and `{QUIX_INSTALL}` failed; run it by hand (it needs python3 with venv and PyPI) and see its output"
        )
    };
    let output = Command::new(&script)
        .stderr(Stdio::inherit())
        .output()
        .with_context(failed)?;
    ensure!(output.status.success(), failed());
    Ok(PathBuf::from(String::from_utf8(output.stdout)?.trim()))
}

pub fn run(args: &Args, report: &mut Report) -> Result<()> {
    let events = args.events_or(1_000_000);
    let config = args.worker_config();
    // First, so that a missing install fails the scenario at once.
    let python = quix_python()?;
    let dir = tempfile::tempdir()?;
    let dir = dir.path();
    let log = EmbeddedLog::open(&dir.join("log.redb"), 1)?;
    let binary = tansu()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let url = format!("tcp://127.0.0.1:{port}");
    let bootstrap = format!("127.0.0.1:{port}");
    let _broker = Broker(
        Command::new(&binary)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/", "--silent"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let probe: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while probe
        .fetch_metadata(None, Duration::from_millis(500))
        .is_err()
    {
        ensure!(Instant::now() < deadline, "Tansu did not start");
    }
    let created = Command::new(&binary)
        .args([
            "topic",
            "create",
            "orders",
            "--partitions",
            &PARTITIONS.to_string(),
        ])
        .args(["--broker", &url])
        // Quix Streams reads these three from the topic's configuration
        // (for its repartition and changelog topics) and fails without them.
        .args(["--config", "retention.ms=604800000"])
        .args(["--config", "retention.bytes=-1"])
        .args(["--config", "cleanup.policy=delete"])
        .stdout(Stdio::null())
        .status()?;
    ensure!(created.success(), "creating the topic failed");

    let started = Instant::now();
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    for (key, payload) in order_events(events, CUSTOMERS) {
        let mut record = BaseRecord::to("orders").key(&key).payload(&payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, returned)) => {
                    record = returned;
                    producer.poll(Duration::from_millis(5));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(300))?;
    let produce_secs = started.elapsed().as_secs_f64();

    // Both wait on fetches most of the time, so on a busy machine one run
    // of either can take twice as long as the next: the median of three,
    // taken in turns. On named threads, so that a profile tells them apart.
    let batch = config.batch_max_events;
    let mut bare = Vec::new();
    let mut source = Vec::new();
    for _ in 0..3 {
        bare.push(on_thread("bare-consumer", {
            let bootstrap = bootstrap.clone();
            move || bare_consumer(&bootstrap, events)
        })?);
        source.push(on_thread("kafka-source", {
            let bootstrap = bootstrap.clone();
            move || source_alone(&bootstrap, events, batch)
        })?);
    }
    let (bare, source) = (Timing::median(bare), Timing::median(source));
    let (bare_secs, source_secs) = (bare.secs, source.secs);
    let kafka: Arc<dyn Source> = Arc::new(KafkaSource::new(KafkaConfig::new(bootstrap.clone()))?);
    let sources = Sources {
        embedded: Arc::new(log.clone()),
        kafka: Some(kafka),
    };
    let wasm_secs = run_wasm(sources, dir, "kafka-state", &config, events)?.secs;
    let projector = customers(&state_file(&dir.join("kafka-state"), "order-totals")?)?;

    // The same fold over the same events from the embedded log: what the
    // Kafka source itself costs.
    append_orders(&log, events, CUSTOMERS)?;
    let sources = Sources {
        embedded: Arc::new(log.clone()),
        kafka: None,
    };
    let embedded_secs = run_wasm(sources, dir, "embedded-state", &config, events)?.secs;
    log.shutdown();
    let embedded = customers(&state_file(&dir.join("embedded-state"), "order-totals")?)?;
    ensure!(
        embedded == projector,
        "Projector from Kafka and from the embedded log disagree: {}",
        first_difference(&embedded, &projector)
    );

    let rate = |secs: f64| events as f64 / secs;
    eprintln!(
        "B: produced {events} events in {produce_secs:.2}s ({:.0}/s)",
        rate(produce_secs)
    );
    report.add(Row {
        scenario: "B",
        case: format!("Kafka (Tansu) {events} events, {PARTITIONS} partitions, order-totals"),
        measured: Quantity::events_per_sec(rate(wasm_secs)),
        detail: String::new(),
        baseline: format!(
            "bare rdkafka consumer (count only, median of 3) {} events/s",
            thousands(rate(bare_secs))
        ),
        ratio: Some(bare_secs / wasm_secs),
        target: Some(Target::ratio_at_least(0.7)),
    });
    report.add(Row {
        scenario: "B",
        case: format!(
            "where the time goes: the same fold of the same {events} events from the embedded log (1 partition)"
        ),
        measured: Quantity::events_per_sec(rate(wasm_secs)),
        detail: " from Kafka".into(),
        baseline: format!("embedded log {} events/s", thousands(rate(embedded_secs))),
        ratio: Some(embedded_secs / wasm_secs),
        target: None,
    });
    report.add(Row {
        scenario: "B",
        case: format!(
            "where the time goes: Projector's Kafka source alone (poll_batch of {} into events, no fold, median of 3); CPU of the consuming thread",
            config.batch_max_events
        ),
        measured: Quantity::events_per_sec(rate(source_secs)),
        detail: format!(", {:.2} µs CPU/event", source.cpu_secs * 1e6 / events as f64),
        baseline: format!(
            "bare rdkafka consumer (count only, median of 3) {} events/s, {:.2} µs CPU/event",
            thousands(rate(bare_secs)),
            bare.cpu_secs * 1e6 / events as f64
        ),
        ratio: Some(bare_secs / source_secs),
        target: None,
    });
    let quix = run_quix(&python, &bootstrap, events, dir)?;
    ensure!(
        quix.customers == projector,
        "Quix Streams and Projector disagree: {}",
        first_difference(&quix.customers, &projector)
    );
    let quix_secs = quix.last_message - quix.first_message;
    let quix_startup = quix.first_message - quix.started;

    eprintln!(
        "B: Quix Streams start-up (process start to first message) {quix_startup:.1}s, first to last message {quix_secs:.2}s; {} customers equal to Projector's",
        projector.len()
    );
    report.add(Row {
        scenario: "B",
        case: format!(
            "Kafka (Tansu) {events} events, {PARTITIONS} partitions, order-totals vs Quix Streams (state equal, {} customers)",
            thousands(projector.len() as f64)
        ),
        measured: Quantity::events_per_sec(rate(wasm_secs)),
        detail: String::new(),
        baseline: format!(
            "Quix Streams {QUIX_VERSION} (RocksDB state, group_by customer) {} events/s first to last message; its start-up of {quix_startup:.1}s not counted",
            thousands(rate(quix_secs))
        ),
        ratio: Some(quix_secs / wasm_secs),
        target: None,
    });
    Ok(())
}

/// What `bench/quix/order_totals.py` writes: wall-clock times (Unix
/// seconds) and every customer's final totals.
#[derive(Deserialize)]
struct QuixResult {
    started: f64,
    first_message: f64,
    last_message: f64,
    customers: BTreeMap<String, Totals>,
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
struct Totals {
    orders: u64,
    total_cents: u64,
}

/// Runs the Quix Streams app over the topic until it has processed
/// `events`, state and output under `dir`.
fn run_quix(python: &Path, bootstrap: &str, events: u64, dir: &Path) -> Result<QuixResult> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("quix/order_totals.py");
    let out = dir.join("quix.json");
    let log = dir.join("quix.log");
    let mut child = Command::new(python)
        .args(["-W", "ignore"])
        .arg(&script)
        .args(["--broker", bootstrap, "--topic", "orders"])
        .args(["--events", &events.to_string()])
        .arg("--state-dir")
        .arg(dir.join("quix-state"))
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .with_context(|| format!("starting {}", python.display()))?;
    let deadline = Instant::now() + Duration::from_secs(1800);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("Quix Streams did not finish in 30 minutes");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if !status.success() {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        bail!(
            "Quix Streams ({}) failed ({status}):\n{}",
            script.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    let text = std::fs::read(&out).with_context(|| format!("reading {}", out.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("parsing {}", out.display()))
}

/// The `customer/<id>` records of a Projector state file, by id.
fn customers(path: &Path) -> Result<BTreeMap<String, Totals>> {
    const PREFIX: &[u8] = b"customer/";
    let store = StateStore::open(path)?;
    let reader = store.reader()?;
    let mut found = BTreeMap::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = reader.scan(PREFIX, after.as_deref(), 10_000)?;
        let Some((last, _)) = page.last() else {
            break;
        };
        after = Some(last.clone());
        for (key, value) in page {
            let id = String::from_utf8(key[PREFIX.len()..].to_vec())?;
            found.insert(id, serde_json::from_slice(&value)?);
        }
    }
    ensure!(
        !found.is_empty(),
        "no customer/* state in {}",
        path.display()
    );
    Ok(found)
}

/// The first customer on which two sets of totals differ, for the error.
fn first_difference(a: &BTreeMap<String, Totals>, b: &BTreeMap<String, Totals>) -> String {
    let ids = a
        .keys()
        .chain(b.keys())
        .collect::<std::collections::BTreeSet<_>>();
    ids.into_iter()
        .find(|id| a.get(*id) != b.get(*id))
        .map_or_else(
            || "no difference".to_owned(),
            |id| format!("customer {id}: {:?} vs {:?}", a.get(id), b.get(id)),
        )
}

/// Wall-clock time of a consumer loop, and the CPU time of the thread that
/// ran it (which the machine's other load does not inflate much: librdkafka's
/// own fetch threads are the same for both consumers and not counted).
struct Timing {
    secs: f64,
    cpu_secs: f64,
}

impl Timing {
    /// The run of median wall-clock time.
    fn median(mut runs: Vec<Timing>) -> Timing {
        runs.sort_by(|a, b| a.secs.total_cmp(&b.secs));
        runs.swap_remove(runs.len() / 2)
    }

    fn since(started: Instant, cpu_started: f64) -> Result<Self> {
        Ok(Self {
            secs: started.elapsed().as_secs_f64(),
            cpu_secs: thread_cpu()? - cpu_started,
        })
    }
}

/// CPU time of the calling thread so far, in seconds (Linux schedstat).
fn thread_cpu() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat")?;
    let nanos: u64 = stat
        .split_whitespace()
        .next()
        .context("empty schedstat")?
        .parse()?;
    Ok(nanos as f64 / 1e9)
}

fn on_thread<T: Send + 'static>(
    name: &str,
    run: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(run)?
        .join()
        .map_err(|_| anyhow::anyhow!("{name} panicked"))?
}

/// Projector's Kafka source without a worker: subscribes from the
/// beginning and reads batches of `batch` events until it has `events`.
fn source_alone(bootstrap: &str, events: u64, batch: usize) -> Result<Timing> {
    let source = KafkaSource::new(KafkaConfig::new(bootstrap))?;
    let topics = [TopicBinding {
        logical: "orders".into(),
        physical: "orders".into(),
    }];
    let started = Instant::now();
    let cpu_started = thread_cpu()?;
    let mut subscription = source.subscribe(
        "bench-source",
        &topics,
        projector::source::Partitions::All,
        &Offsets::default(),
    )?;
    let mut out = Vec::with_capacity(batch);
    let mut count = 0u64;
    let deadline = Instant::now() + Duration::from_secs(600);
    while count < events {
        out.clear();
        subscription.poll_batch(batch, Duration::from_millis(100), &mut out)?;
        count += out.len() as u64;
        ensure!(Instant::now() < deadline, "Kafka source stalled at {count}");
    }
    Timing::since(started, cpu_started)
}

/// Assigns every partition from the beginning and counts messages.
fn bare_consumer(bootstrap: &str, events: u64) -> Result<Timing> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "bench.bare")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut partitions = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        partitions.add_partition_offset("orders", partition as i32, Offset::Beginning)?;
    }
    let started = Instant::now();
    let cpu_started = thread_cpu()?;
    consumer.assign(&partitions)?;
    let mut count = 0u64;
    let deadline = Instant::now() + Duration::from_secs(600);
    while count < events {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(_)) => count += 1,
            Some(Err(e)) => bail!("bare consumer: {e}"),
            None => ensure!(
                Instant::now() < deadline,
                "bare consumer stalled at {count}"
            ),
        }
    }
    Timing::since(started, cpu_started)
}
