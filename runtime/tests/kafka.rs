//! The Kafka source against real brokers over TCP: a Tansu process per test,
//! and librdkafka's mock cluster for fault injection. The `recorder` guest
//! halts on any duplicate or out-of-order delivery, so "exact state" below
//! means every produced event applied exactly once, in partition order.

mod common;

use std::time::{Duration, Instant};

use common::Server;
use common::kafka::{Produced, Tansu, TestProducer, assert_recorded_exactly, orders};
use projector::event::Offsets;
use projector::source::{KafkaConfig, KafkaSource, Source, TopicBinding};
use projector_test_guests::{ORDER_TOTALS, RECORDER};
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use serde_json::Value;

/// A server running the recorder with `t1..t3` mapped to `topics`.
fn recorder_server(bootstrap: &str, topics: [&str; 3], extra: &[&str]) -> Server {
    let server = Server::with_modules(&[RECORDER]);
    server.add_file(
        "recorder.toml",
        format!(
            "source = \"kafka\"\n[topics]\nt1 = \"{}\"\nt2 = \"{}\"\nt3 = \"{}\"\n",
            topics[0], topics[1], topics[2]
        )
        .as_bytes(),
    );
    server.args(&["--kafka", bootstrap]).args(extra).start()
}

/// A config file committing every batch on its own: with one event per
/// batch, the backlog then lasts long enough to be interrupted (the
/// default coalescing folds 20,000 events before a swap can land).
fn commit_every_batch() -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "commit_max_events = 1\n").unwrap();
    file
}

fn logical_of(topics: [&str; 3]) -> impl Fn(&str) -> String {
    let topics: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
    move |real: &str| format!("t{}", topics.iter().position(|t| t == real).unwrap() + 1)
}

fn source_state(info: &Value) -> &str {
    info["source"]["health"]["state"]
        .as_str()
        .unwrap_or_default()
}

#[test]
fn three_topics_of_four_partitions_fifty_thousand_events() {
    let tansu = Tansu::start();
    let topics = ["k-one", "k-two", "k-three"];
    for topic in topics {
        tansu.create_topic(topic, 4);
    }
    let server = recorder_server(&tansu.bootstrap, topics, &["--batch-max-events", "500"]);
    let produced = orders(&topics, 50_000, 0);
    let producer = TestProducer::new(&tansu.bootstrap);
    for event in &produced {
        producer.send(event);
    }
    producer.flush();

    let info = server.wait_applied("recorder", 50_000);
    assert_eq!(source_state(&info), "ok", "{info}");
    assert_eq!(info["source"]["kind"], "kafka");
    assert_eq!(info["topic_map"]["t1"], "k-one");
    assert_eq!(info["partitions"].as_array().unwrap().len(), 12);
    assert_recorded_exactly(&server.state("recorder"), &produced, &logical_of(topics));
}

/// A partitioned projection on Kafka: unit p reads partition p of each of
/// its three topics (the recorder's keys are per partition), every event
/// is recorded once and in order. A sidecar mapping a topic of another
/// partition count is refused, naming the counts, and the units run on.
#[test]
fn a_partitioned_projection_reads_partition_p_of_every_topic_in_unit_p() {
    let tansu = Tansu::start();
    let topics = ["u-one", "u-two", "u-three"];
    for topic in topics {
        tansu.create_topic(topic, 4);
    }
    tansu.create_topic("u-odd", 3);
    let sidecar = |t3: &str| {
        format!(
            "source = \"kafka\"\nscale = \"partitioned\"\n[topics]\nt1 = \"u-one\"\nt2 = \"u-two\"\nt3 = \"{t3}\"\n"
        )
    };
    let server = Server::with_modules(&[RECORDER]);
    server.add_file("recorder.toml", sidecar("u-three").as_bytes());
    let server = server
        .args(&["--kafka", &tansu.bootstrap, "--batch-max-events", "500"])
        .start();
    let produced = orders(&topics, 20_000, 0);
    let producer = TestProducer::new(&tansu.bootstrap);
    for event in &produced {
        producer.send(event);
    }
    producer.flush();

    let info = server.wait_applied("recorder", 20_000);
    assert_eq!(source_state(&info), "ok", "{info}");
    let units = info["units"].as_array().expect("units listed");
    assert_eq!(units.len(), 4, "{info}");
    assert!(
        units.iter().all(|u| u["events_applied"].as_u64() > Some(0)),
        "{info}"
    );
    assert_eq!(info["partitions"].as_array().unwrap().len(), 12);
    assert_recorded_exactly(&server.state("recorder"), &produced, &logical_of(topics));

    server.add_file("recorder.toml", sidecar("u-odd").as_bytes());
    let listing = server.wait_for_listing("the sidecar rejected", |listing| {
        listing["rejected"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    });
    let error = listing["rejected"][0]["error"].as_str().unwrap();
    assert!(error.contains("recorder.toml"), "{error}");
    assert!(error.contains("u-one: 4, u-two: 4, u-odd: 3"), "{error}");
    let info = server.projection("recorder");
    assert_eq!(info["units"].as_array().unwrap().len(), 4);
    assert_eq!(info["status"]["state"], "running");
}

/// A partitioned projection deployed before its topic exists cannot lay
/// out its units yet: it is rejected saying so (once), looked at again
/// every few seconds, and runs with one unit per partition as soon as the
/// topic is created.
#[test]
fn a_partitioned_projection_waits_for_its_topic_to_be_created() {
    let tansu = Tansu::start();
    let server = Server::with_modules(&[ORDER_TOTALS]);
    server.add_file(
        "order_totals.toml",
        b"source = \"kafka\"\nscale = \"partitioned\"\n",
    );
    let server = server.args(&["--kafka", &tansu.bootstrap]).start();
    server.wait_for_listing("the module rejected until its topic exists", |listing| {
        listing["rejected"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("\"orders\", which does not exist"))
    });
    tansu.create_topic("orders", 2);
    let listing = server.wait_for_listing("two units running", |listing| {
        listing["projections"][0]["units"].as_array().map(Vec::len) == Some(2)
    });
    assert_eq!(listing["rejected"], serde_json::json!([]), "{listing}");
    let producer = TestProducer::new(&tansu.bootstrap);
    for i in 0..40 {
        let customer = format!("c{}", i % 5);
        producer.send(&Produced {
            topic: "orders".into(),
            key: Some(customer.as_bytes().to_vec()),
            payload: Some(
                serde_json::json!({"type": "OrderPlaced", "order_id": format!("o{i}"), "customer": customer, "amount_cents": 10})
                    .to_string()
                    .into_bytes(),
            ),
            headers: Vec::new(),
        });
    }
    producer.flush();
    server.wait_applied("order-totals", 40);
    let c0 = server
        .get("/v1/projections/order-totals/state/customer%2Fc0")
        .body;
    assert_eq!(c0, serde_json::json!({"orders": 8, "total_cents": 80}));
    assert_eq!(
        server.log().matches("module rejected").count(),
        1,
        "the reason is logged once, not at every look: {}",
        server.log()
    );
}

#[test]
fn restarts_mid_stream_lose_and_double_nothing() {
    let tansu = Tansu::start();
    let topics = ["r-one", "r-two", "r-three"];
    for topic in topics {
        tansu.create_topic(topic, 4);
    }
    let mut server = recorder_server(&tansu.bootstrap, topics, &[]);
    let produced = orders(&topics, 30_000, 1);
    let producing = {
        let bootstrap = tansu.bootstrap.clone();
        let produced = produced.clone();
        std::thread::spawn(move || {
            let producer = TestProducer::new(&bootstrap);
            for (i, event) in produced.iter().enumerate() {
                producer.send(event);
                if i % 1000 == 999 {
                    producer.flush();
                }
            }
            producer.flush();
        })
    };
    server.wait_for("recorder", "first events", |i| {
        i["events_applied"].as_u64() > Some(3000)
    });
    server.restart(); // graceful
    server.wait_for("recorder", "more events", |i| {
        i["events_applied"].as_u64() > Some(12_000)
    });
    server.kill(); // abrupt: non-durable commits roll back with their offsets
    let server = server.start();
    producing.join().unwrap();
    server.wait_applied("recorder", 30_000);
    assert_recorded_exactly(&server.state("recorder"), &produced, &logical_of(topics));
}

#[test]
fn a_frozen_broker_shows_as_unavailable_and_nothing_is_lost() {
    let tansu = Tansu::start();
    let topics = ["f-one", "f-two", "f-three"];
    for topic in topics {
        tansu.create_topic(topic, 2);
    }
    let server = recorder_server(&tansu.bootstrap, topics, &[]);
    let producer = TestProducer::new(&tansu.bootstrap);
    let mut produced = orders(&topics, 5_000, 2);
    for event in &produced {
        producer.send(event);
    }
    producer.flush();
    server.wait_for("recorder", "first events", |i| {
        i["events_applied"].as_u64() > Some(0)
    });

    tansu.freeze();
    let frozen_at = Instant::now();
    let info = server.wait_for("recorder", "the outage in status", |i| {
        source_state(i) == "unavailable"
    });
    assert!(
        info["source"]["health"]["since"].as_u64().unwrap() > 0,
        "{info}"
    );
    // Keep the broker frozen for 10 s in all, as an outage would.
    std::thread::sleep(Duration::from_secs(10).saturating_sub(frozen_at.elapsed()));
    tansu.thaw();

    let more = orders(&topics, 5_000, 3);
    for event in &more {
        producer.send(event);
    }
    producer.flush();
    produced.extend(more);
    server.wait_applied("recorder", 10_000);
    server.wait_for("recorder", "recovery in status", |i| {
        source_state(i) == "ok"
    });
    assert_recorded_exactly(&server.state("recorder"), &produced, &logical_of(topics));
}

#[test]
fn mock_cluster_faults_broker_down_leader_moves_and_request_errors() {
    let mock = MockCluster::new(3).unwrap();
    let topics = ["m-one", "m-two", "m-three"];
    for topic in topics {
        mock.create_topic(topic, 3, 3).unwrap();
    }
    let bootstrap = mock.bootstrap_servers();
    let server = recorder_server(&bootstrap, topics, &[]);
    let producer = TestProducer::new(&bootstrap);
    let mut produced = orders(&topics, 3_000, 4);
    for event in &produced {
        producer.send(event);
    }
    producer.flush();
    server.wait_for("recorder", "first events", |i| {
        i["events_applied"].as_u64() > Some(0)
    });

    // Every broker down: the source is unavailable, then recovers.
    for broker in 1..=3 {
        mock.broker_down(broker).unwrap();
    }
    server.wait_for("recorder", "the outage in status", |i| {
        source_state(i) == "unavailable"
    });
    for broker in 1..=3 {
        mock.broker_up(broker).unwrap();
    }

    // Leaders move and fetches fail for a while.
    for topic in topics {
        for partition in 0..3 {
            mock.partition_leader(topic, partition, Some(1 + (partition + 1) % 3))
                .unwrap();
        }
    }
    mock.request_errors(
        RDKafkaApiKey::Fetch,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION; 4],
    );
    mock.request_errors(
        RDKafkaApiKey::ListOffsets,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT; 2],
    );
    let more = orders(&topics, 3_000, 5);
    for event in &more {
        producer.send(event);
    }
    producer.flush();
    produced.extend(more);
    server.wait_applied("recorder", 6_000);
    server.wait_for("recorder", "recovery in status", |i| {
        source_state(i) == "ok"
    });
    assert_recorded_exactly(&server.state("recorder"), &produced, &logical_of(topics));
}

#[test]
fn a_topic_created_after_start_is_picked_up() {
    let tansu = Tansu::start();
    let topics = ["late-one", "late-two", "late-three"];
    let server = recorder_server(&tansu.bootstrap, topics, &[]);
    let info = server.wait_for("recorder", "waiting for topics", |i| {
        source_state(i) == "waiting_for_topics"
    });
    assert_eq!(
        info["source"]["health"]["topics"].as_array().unwrap().len(),
        3
    );

    tansu.create_topic("late-two", 2);
    let producer = TestProducer::new(&tansu.bootstrap);
    let produced = orders(&["late-two"], 200, 6);
    for event in &produced {
        producer.send(event);
    }
    producer.flush();
    let info = server.wait_applied("recorder", 200);
    assert_eq!(
        info["source"]["health"]["topics"].as_array().unwrap().len(),
        2,
        "{info}"
    );
    assert_recorded_exactly(&server.state("recorder"), &produced, &logical_of(topics));
}

#[test]
fn tombstones_headers_and_binary_keys_map_onto_the_event() {
    let tansu = Tansu::start();
    let topics = ["h-one", "h-two", "h-three"];
    tansu.create_topic("h-one", 1);
    let server = recorder_server(&tansu.bootstrap, topics, &[]);
    let produced = vec![
        Produced {
            topic: "h-one".into(),
            key: Some(vec![0xff, 0x00, 0xfe]),
            payload: Some(br#"{"a":1}"#.to_vec()),
            headers: vec![
                ("trace".into(), b"abc".to_vec()),
                ("bin".into(), vec![0, 1]),
            ],
        },
        Produced {
            topic: "h-one".into(),
            key: Some(vec![0xff, 0x00, 0xfe]),
            payload: None,
            headers: Vec::new(),
        },
        Produced {
            topic: "h-one".into(),
            key: None,
            payload: Some(Vec::new()),
            headers: Vec::new(),
        },
    ];
    let producer = TestProducer::new(&tansu.bootstrap);
    for event in &produced {
        producer.send(event);
    }
    producer.flush();
    server.wait_applied("recorder", 3);
    let state = server.state("recorder");
    let first = &state["event/t1/0/00000000000000000000"];
    assert_eq!(first["key"], "ff00fe");
    assert_eq!(
        first["headers"],
        serde_json::json!([["trace", "616263"], ["bin", "0001"]])
    );
    assert!(first["timestamp_ms"].as_i64().unwrap() > 0);
    let tombstone = &state["event/t1/0/00000000000000000001"];
    assert_eq!(
        tombstone["payload"],
        Value::Null,
        "a tombstone has no payload"
    );
    let empty = &state["event/t1/0/00000000000000000002"];
    assert_eq!(empty["key"], Value::Null);
    assert_eq!(empty["payload"], "", "an empty payload is not a tombstone");
}

/// Dropping a consumer that still has unread, prefetched messages must not
/// hang (KAFKA.md: it did for subscribed consumers). Manual assignment
/// rules that out; this checks it, with a bound.
#[test]
fn dropping_a_subscription_with_unread_messages_does_not_hang() {
    let tansu = Tansu::start();
    tansu.create_topic("backlog", 3);
    let producer = TestProducer::new(&tansu.bootstrap);
    for event in orders(&["backlog"], 20_000, 7) {
        producer.send(&event);
    }
    producer.flush();

    let source = KafkaSource::new(KafkaConfig::new(tansu.bootstrap.clone())).unwrap();
    let binding = TopicBinding {
        logical: "backlog".into(),
        physical: "backlog".into(),
    };
    for _ in 0..3 {
        let mut subscription = source
            .subscribe(
                "hang-check",
                std::slice::from_ref(&binding),
                projector::source::Partitions::All,
                &Offsets::default(),
            )
            .unwrap();
        let mut out = Vec::new();
        while out.is_empty() {
            subscription
                .poll_batch(10, Duration::from_millis(500), &mut out)
                .unwrap();
        }
        assert!(out.len() <= 10);
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(subscription);
            let _ = done.send(());
        });
        finished
            .recv_timeout(Duration::from_secs(30))
            .expect("dropping a subscription with unread messages hung");
    }
}

/// SIGTERM while a projection is mid-backlog: the process finishes or
/// abandons its batch, keeps what it committed, and exits.
#[test]
fn shutdown_mid_backlog_is_bounded_and_resumes_exactly() {
    let tansu = Tansu::start();
    let topics = ["s-one", "s-two", "s-three"];
    for topic in topics {
        tansu.create_topic(topic, 2);
    }
    let producer = TestProducer::new(&tansu.bootstrap);
    let produced = orders(&topics, 20_000, 8);
    for event in &produced {
        producer.send(event);
    }
    producer.flush();
    let config = commit_every_batch();
    let mut server = recorder_server(
        &tansu.bootstrap,
        topics,
        &[
            "--batch-max-events",
            "1",
            "--config",
            config.path().to_str().unwrap(),
        ],
    );
    server.wait_for("recorder", "first events", |i| {
        i["events_applied"].as_u64() > Some(0)
    });
    server.stop(); // asserts a clean exit; a hang would never return
    let server = server.start();
    server.wait_applied("recorder", 20_000);
    assert_recorded_exactly(&server.state("recorder"), &produced, &logical_of(topics));
}

/// The example projection runs unchanged on Kafka.
#[test]
fn order_totals_runs_unchanged_on_kafka() {
    let tansu = Tansu::start();
    tansu.create_topic("orders", 3);
    let server = Server::with_modules(&[ORDER_TOTALS])
        .args(&["--kafka", &tansu.bootstrap])
        .start();
    let producer = TestProducer::new(&tansu.bootstrap);
    let text = std::fs::read_to_string(common::events_file("orders.jsonl")).unwrap();
    let mut count = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let event: Value = serde_json::from_str(line).unwrap();
        producer.send(&Produced {
            topic: "orders".into(),
            key: Some(event["customer"].as_str().unwrap().as_bytes().to_vec()),
            payload: Some(line.as_bytes().to_vec()),
            headers: Vec::new(),
        });
        count += 1;
    }
    producer.flush();
    server.wait_applied("order-totals", count);
    assert_eq!(
        server.state("order-totals"),
        common::read_json(&common::events_file("orders.expected.json"))
    );

    // `projector publish --kafka` produces straight to the broker.
    let file = server.dir.path().join("more.jsonl");
    std::fs::write(
        &file,
        "{\"type\":\"OrderPlaced\",\"order_id\":\"k-1\",\"customer\":\"zed\",\"amount_cents\":700}\n",
    )
    .unwrap();
    let output = server.cli(&[
        "publish",
        "orders",
        file.to_str().unwrap(),
        "--key-field",
        "customer",
        "--kafka",
        &tansu.bootstrap,
    ]);
    assert!(output.status.success(), "{}", common::stderr(&output));
    assert!(common::stdout(&output).contains("published 1 events to Kafka topic orders"));
    server.wait_applied("order-totals", count + 1);
    let zed = server
        .get("/v1/projections/order-totals/state/customer%2Fzed")
        .body;
    assert_eq!(zed, serde_json::json!({"orders": 1, "total_cents": 700}));
}

/// History deleted by retention before the projection read it: status and
/// logs say so. The mock cluster keeps about 5 MiB per partition.
#[test]
fn history_lost_to_retention_is_reported() {
    let mock = MockCluster::new(1).unwrap();
    let topics = ["ret-one", "ret-two", "ret-three"];
    mock.create_topic("ret-one", 1, 1).unwrap();
    let bootstrap = mock.bootstrap_servers();
    let producer = TestProducer::new(&bootstrap);
    let filler = "x".repeat(4096);
    for i in 0..3_000 {
        producer.send(&Produced {
            topic: "ret-one".into(),
            key: Some(b"k".to_vec()),
            payload: Some(format!("{{\"i\":{i},\"pad\":\"{filler}\"}}").into_bytes()),
            headers: Vec::new(),
        });
        if i % 100 == 99 {
            producer.flush();
        }
    }
    producer.flush();
    let server = recorder_server(&bootstrap, topics, &[]);
    let info = server.wait_for("recorder", "a retention warning", |i| {
        !i["source"]["warnings"].as_array().unwrap().is_empty()
    });
    let warning = info["source"]["warnings"][0].as_str().unwrap();
    assert!(
        warning.contains("history incomplete: ret-one/0"),
        "{warning}"
    );
    assert!(server.log().contains("history incomplete"));
}

/// With `commit_group_offsets`, positions are mirrored into the consumer
/// group `projector.<name>` for external lag tools.
#[test]
fn positions_are_mirrored_to_the_consumer_group_when_asked() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};

    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("g-one", 2, 1).unwrap();
    let bootstrap = mock.bootstrap_servers();
    let producer = TestProducer::new(&bootstrap);
    let produced = orders(&["g-one"], 500, 9);
    for event in &produced {
        producer.send(event);
    }
    producer.flush();

    let server = Server::with_modules(&[RECORDER]);
    server.add_file(
        "recorder.toml",
        b"[topics]\nt1 = \"g-one\"\nt2 = \"g-two\"\nt3 = \"g-three\"\n",
    );
    let config = server.dir.path().join("projector.toml");
    std::fs::write(
        &config,
        format!("[kafka]\nbootstrap = \"{bootstrap}\"\ncommit_group_offsets = true\n"),
    )
    .unwrap();
    let server = server.args(&["--config", config.to_str().unwrap()]).start();
    let info = server.wait_applied("recorder", 500);
    let reached: u64 = info["offsets"]["t1"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(reached, 500);

    let lag_tool: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "projector.recorder")
        .create()
        .unwrap();
    let mut partitions = TopicPartitionList::new();
    partitions.add_partition("g-one", 0);
    partitions.add_partition("g-one", 1);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let committed = lag_tool
            .committed_offsets(partitions.clone(), Duration::from_secs(5))
            .unwrap();
        let sum: i64 = committed
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(o) => o,
                _ => 0,
            })
            .sum();
        if sum == 500 {
            break;
        }
        assert!(Instant::now() < deadline, "group offsets stayed at {sum}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Projector starts before its broker: status says the source is
/// unavailable, and it consumes once the broker is up.
#[test]
fn a_broker_that_is_down_at_start_is_waited_for() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bootstrap = format!("127.0.0.1:{port}");
    let topics = ["d-one", "d-two", "d-three"];
    let server = recorder_server(&bootstrap, topics, &[]);
    let info = server.wait_for("recorder", "the outage in status", |i| {
        source_state(i) == "unavailable"
    });
    assert!(
        info["source"]["health"]["error"]
            .as_str()
            .unwrap()
            .contains("metadata"),
        "{info}"
    );

    let tansu = Tansu::start_on(port);
    for topic in topics {
        tansu.create_topic(topic, 2);
    }
    let producer = TestProducer::new(&tansu.bootstrap);
    let produced = orders(&topics, 1_000, 10);
    for event in &produced {
        producer.send(event);
    }
    producer.flush();
    server.wait_applied("recorder", 1_000);
    assert_eq!(source_state(&server.projection("recorder")), "ok");
    assert_recorded_exactly(&server.state("recorder"), &produced, &logical_of(topics));
}

/// A module file with different bytes (an extra custom section), so a new
/// version with the same state version.
fn same_module_new_hash(module: &str) -> Vec<u8> {
    let mut bytes = std::fs::read(module).unwrap();
    let name = b"projector-test";
    let payload = b"v2";
    bytes.push(0); // custom section
    bytes.push((1 + name.len() + payload.len()) as u8);
    bytes.push(name.len() as u8);
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(payload);
    bytes
}

/// Swapping and removing a module whose Kafka consumer still has unread,
/// prefetched messages: every step finishes, nothing is lost or doubled.
#[test]
fn hot_swap_and_removal_with_unread_kafka_messages_do_not_hang() {
    let tansu = Tansu::start();
    let topics = ["w-one", "w-two", "w-three"];
    for topic in topics {
        tansu.create_topic(topic, 2);
    }
    let producer = TestProducer::new(&tansu.bootstrap);
    let produced = orders(&topics, 20_000, 11);
    for event in &produced {
        producer.send(event);
    }
    producer.flush();
    let config = commit_every_batch();
    let server = recorder_server(
        &tansu.bootstrap,
        topics,
        &[
            "--batch-max-events",
            "1",
            "--config",
            config.path().to_str().unwrap(),
        ],
    );
    server.wait_for("recorder", "first events", |i| {
        i["events_applied"].as_u64() > Some(0)
    });

    // Same state version: the new version takes over; the old consumer is
    // dropped mid-backlog.
    let staging = server.modules_dir().join(".recorder.wasm.tmp");
    std::fs::write(&staging, same_module_new_hash(RECORDER)).unwrap();
    std::fs::rename(&staging, server.modules_dir().join("recorder.wasm")).unwrap();
    let swapped = server.wait_for("recorder", "the swap", |i| {
        i["hash"].as_str()
            != Some(
                blake3::hash(&std::fs::read(RECORDER).unwrap())
                    .to_hex()
                    .as_str(),
            )
    });
    assert!(
        swapped["events_applied"].as_u64().unwrap() < 20_000,
        "still mid-backlog"
    );

    // Removal mid-backlog stops it.
    std::fs::remove_file(server.modules_dir().join("recorder.wasm")).unwrap();
    server.wait_for("recorder", "removal", |i| i["status"]["state"] == "removed");

    // Back again: it resumes where it stopped and finishes exactly.
    std::fs::write(&staging, same_module_new_hash(RECORDER)).unwrap();
    std::fs::rename(&staging, server.modules_dir().join("recorder.wasm")).unwrap();
    server.wait_applied("recorder", 20_000);
    assert_recorded_exactly(&server.state("recorder"), &produced, &logical_of(topics));
}

fn order_event(topic: &str, customer: &str, id: usize) -> Produced {
    let line = format!(
        "{{\"type\":\"OrderPlaced\",\"order_id\":\"r-{id}\",\"customer\":\"{customer}\",\"amount_cents\":100}}"
    );
    Produced {
        topic: topic.into(),
        key: Some(customer.as_bytes().to_vec()),
        payload: Some(line.into_bytes()),
        headers: Vec::new(),
    }
}

fn log_behind_warning(info: &Value) -> Option<String> {
    info["source"]["warnings"]
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .find(|w| w.starts_with("log behind the projection"))
        .map(str::to_owned)
}

/// Waits for `order-totals` to report `orders/0` held below offset 6
/// (status and `projector status`), with none of its events applied.
fn assert_held_below_six(server: &Server) {
    let info = server.wait_for("order-totals", "the log-behind warning", |info| {
        log_behind_warning(info).is_some()
    });
    let warning = log_behind_warning(&info).unwrap();
    for needle in [
        "orders/0 ends at offset",
        "events before offset 6",
        "re-created",
        "projector replay order-totals",
    ] {
        assert!(warning.contains(needle), "{needle:?} not in {warning}");
    }
    assert_eq!(info["events_applied"], 6, "{info}");
    let output = server.cli(&["status"]);
    assert!(
        common::stdout(&output).contains("log behind the projection"),
        "{}",
        common::stdout(&output)
    );
}

/// The operator's choice: `projector replay` rebuilds `order-totals` from
/// what the re-created topic holds (`bob`'s `orders` events) and swaps it in.
fn replay_rebuilds_from_the_new_topic(server: &Server, orders: u64) {
    let output = server.cli(&["replay", "order-totals"]);
    assert!(output.status.success(), "{}", common::stderr(&output));
    server.wait_for("order-totals", "the rebuilt version to serve", |_| {
        server.log().contains("swapped to the rebuilt version")
    });
    let info = server.wait_applied("order-totals", orders);
    assert_eq!(log_behind_warning(&info), None, "{info}");
    let bob = server
        .get("/v1/projections/order-totals/state/customer%2Fbob")
        .body;
    assert_eq!(bob["orders"], orders, "{bob}");
}

/// A topic deleted and re-created while the process is stopped restarts
/// its offsets at 0, below the positions in the state file: at start the
/// partition is held, never read as redeliveries; status names it with
/// the operator's choices, and a replay rebuilds from what the topic holds.
#[test]
fn a_topic_recreated_while_stopped_is_held_and_reported_never_dropped() {
    let tansu = Tansu::start();
    tansu.create_topic("orders", 1);
    let mut server = Server::with_modules(&[ORDER_TOTALS])
        .args(&["--kafka", &tansu.bootstrap])
        .start();
    let producer = TestProducer::new(&tansu.bootstrap);
    for i in 0..6 {
        producer.send(&order_event("orders", "ann", i));
    }
    producer.flush();
    server.wait_applied("order-totals", 6);
    server.stop();

    tansu.delete_topic("orders");
    tansu.create_topic("orders", 1);
    let producer = TestProducer::new(&tansu.bootstrap);
    for i in 0..4 {
        producer.send(&order_event("orders", "bob", i));
    }
    producer.flush();
    let server = server.start();
    assert_held_below_six(&server);
    assert_eq!(
        server
            .get("/v1/projections/order-totals/state/customer%2Fbob")
            .status,
        404,
        "no event of the new topic was applied on top of the old state"
    );

    // The operator's choice: rebuild from what the topic holds now.
    replay_rebuilds_from_the_new_topic(&server, 4);
}
