//! Scenario: order-totals reading Kafka (a Tansu broker started here) vs a
//! bare rdkafka consumer that only counts the same messages.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use projector::registry::Sources;
use projector::source::{EmbeddedLog, KafkaConfig, KafkaSource, Source};

use crate::Args;
use crate::common::{order_events, run_wasm};
use crate::report::{Report, Row, thousands};

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

pub fn run(args: &Args, report: &mut Report) -> Result<()> {
    let events = args.events_or(1_000_000);
    let config = args.worker_config();
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
        .args(["--broker", &url, "--config", "retention.ms=604800000"])
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

    let bare_secs = bare_consumer(&bootstrap, events)?;
    let kafka: Arc<dyn Source> = Arc::new(KafkaSource::new(KafkaConfig::new(bootstrap.clone()))?);
    let sources = Sources {
        embedded: Arc::new(log.clone()),
        kafka: Some(kafka),
    };
    let wasm_secs = run_wasm(sources, dir, "kafka-state", &config, events)?;

    log.shutdown();
    let rate = |secs: f64| events as f64 / secs;
    eprintln!(
        "B: produced {events} events in {produce_secs:.2}s ({:.0}/s)",
        rate(produce_secs)
    );
    report.add(Row {
        scenario: "B",
        case: format!("Kafka (Tansu) {events} events, {PARTITIONS} partitions, order-totals"),
        measured: format!("{} events/s", thousands(rate(wasm_secs))),
        baseline: format!(
            "bare rdkafka consumer (count only) {} events/s",
            thousands(rate(bare_secs))
        ),
        ratio: Some(bare_secs / wasm_secs),
        target: ">= 0.7 of the bare consumer".into(),
        met: Some(bare_secs / wasm_secs >= 0.7),
    });
    Ok(())
}

/// Assigns every partition from the beginning and counts messages.
fn bare_consumer(bootstrap: &str, events: u64) -> Result<f64> {
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
    Ok(started.elapsed().as_secs_f64())
}
