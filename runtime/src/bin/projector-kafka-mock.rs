//! librdkafka's mock cluster on loopback TCP, for tests and demos of a
//! group on one machine: several `projector` processes can share it,
//! where Tansu's consumer groups fail (see docs/scaling.md).
//!
//! `projector-kafka-mock [--brokers N] [TOPIC:PARTITIONS ...]` prints
//! `bootstrap HOST:PORT,...` and then serves until its standard input
//! closes. Lines on standard input: `create TOPIC PARTITIONS`,
//! `down BROKER`, `up BROKER` (broker ids start at 1); each is answered
//! with `ok` or `error ...`.

use std::io::{BufRead, Write};

use rdkafka::mocking::MockCluster;

fn main() {
    let mut brokers = 1;
    let mut topics = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--brokers" {
            brokers = args
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| fail("--brokers needs a number"));
        } else if let Some((topic, partitions)) = arg.rsplit_once(':') {
            let partitions = partitions
                .parse()
                .unwrap_or_else(|_| fail(&format!("{arg}: expected TOPIC:PARTITIONS")));
            topics.push((topic.to_owned(), partitions));
        } else {
            fail(&format!("{arg}: expected TOPIC:PARTITIONS or --brokers N"));
        }
    }
    let mock = MockCluster::new(brokers).unwrap_or_else(|e| fail(&format!("mock cluster: {e}")));
    for (topic, partitions) in &topics {
        if let Err(e) = mock.create_topic(topic, *partitions, 1) {
            fail(&format!("cannot create {topic}: {e}"));
        }
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "bootstrap {}", mock.bootstrap_servers());
    let _ = out.flush();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        let outcome = match words.as_slice() {
            ["create", topic, partitions] => match partitions.parse() {
                Ok(partitions) => mock
                    .create_topic(topic, partitions, 1)
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            },
            ["down", broker] => match broker.parse() {
                Ok(broker) => mock.broker_down(broker).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            },
            ["up", broker] => match broker.parse() {
                Ok(broker) => mock.broker_up(broker).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            },
            [] => continue,
            _ => Err(format!("unknown command {line:?}")),
        };
        let _ = match outcome {
            Ok(()) => writeln!(out, "ok"),
            Err(e) => writeln!(out, "error {e}"),
        };
        let _ = out.flush();
    }
}

fn fail(message: &str) -> ! {
    eprintln!("projector-kafka-mock: {message}");
    std::process::exit(2)
}
