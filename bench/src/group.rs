//! Group: instances of one group (`--group`) sharing a partitioned
//! `order-totals` through a Kafka consumer group, on librdkafka's mock
//! cluster served from this process (the broker Projector's group tests
//! use; Tansu's consumer groups do not hold, docs/scaling.md).
//!
//! - Replay: the same events (keyed by customer, a 4-partition topic)
//!   folded from the start by 1 instance with `worker_threads` 1 and 2, and
//!   by 2 and 3 instances (one worker thread each): total events/s from
//!   the launch of the instances to the last event applied (start-up and
//!   the group forming included), and CPU per event of the `projector`
//!   processes. Baseline: 1 instance, 1 thread.
//! - Handover: a unit of about 1M keys (a 1-partition topic) moves to a
//!   new owner that starts from a shared snapshot (the old owner leaves
//!   with SIGTERM and hands over), from its standby copy (the old owner is
//!   killed), or from nothing (killed, no snapshots): the time from the
//!   slot coming to the new owner to the unit serving at the head (its
//!   `took over: caught up` log line), and from the kill to serving (the
//!   session timeout included). Baseline: the replay.
//! - Lookups through a group of 2: key lookups answered by the instance
//!   asked (the key's unit is there) vs forwarded to the other instance
//!   (`key_templates` tell which), sequential, p50 and p99.
//!
//! The mock broker runs in this process and takes CPU of its own (it is
//! not counted in the instances' CPU).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use serde_json::Value;

use crate::Args;
use crate::common::order_events;
use crate::report::{Quantity, Report, Row, thousands};
use crate::server::{self, Server};

const CUSTOMERS: u64 = 10_000;
const PARTITIONS: i32 = 4;
const NAME: &str = "order-totals";
const PATIENCE: Duration = Duration::from_secs(900);
/// Lookups of each kind (local, forwarded).
const LOOKUPS: usize = 2_000;

pub fn run(args: &Args, report: &mut Report) -> Result<()> {
    let bin = server::projector_bin()?;
    eprintln!("group: using {}", server::describe_bin(&bin));
    let mock = MockCluster::new(1).context("starting the mock cluster")?;
    let bootstrap = mock.bootstrap_servers();
    let dir = tempfile::tempdir()?;
    let bench = Bench {
        bin,
        bootstrap,
        dir: dir.path().to_owned(),
    };
    replay(&bench, &mock, args, report)?;
    handover(&bench, &mock, args, report)?;
    Ok(())
}

struct Bench {
    bin: PathBuf,
    bootstrap: String,
    dir: PathBuf,
}

/// One instance's settings.
struct Instance<'a> {
    group: &'a str,
    topic: &'a str,
    worker_threads: usize,
    /// `[cluster] standby_replicas`.
    standbys: u32,
    /// Snapshots on, into a snapshot store shared by the group.
    snapshots: bool,
}

impl Bench {
    fn launch(&self, id: &str, instance: &Instance<'_>) -> Result<Server> {
        let root = self.dir.join(id);
        let modules = root.join("modules");
        std::fs::create_dir_all(&modules)?;
        std::fs::copy(
            projector_test_guests::ORDER_TOTALS,
            modules.join(format!("{NAME}.wasm")),
        )?;
        std::fs::write(
            modules.join(format!("{NAME}.toml")),
            format!(
                "source = \"kafka\"\nscale = \"partitioned\"\nkey_templates = [\"customer/{{key}}\"]\n[topics]\norders = \"{}\"\n",
                instance.topic
            ),
        )?;
        let config = root.join("projector.toml");
        std::fs::write(
            &config,
            format!(
                "[snapshots]\nenabled = {}\n[cluster]\nstandby_replicas = {}\n",
                instance.snapshots, instance.standbys
            ),
        )?;
        let store = self.dir.join(format!("store-{}", instance.group));
        let (bootstrap, group, threads) = (
            self.bootstrap.clone(),
            instance.group.to_owned(),
            instance.worker_threads.to_string(),
        );
        Server::launch_with(
            &self.bin,
            &root.join("data"),
            &modules,
            &root.join("log"),
            |url| {
                vec![
                    "--config".into(),
                    config.display().to_string(),
                    "--kafka".into(),
                    bootstrap,
                    "--group".into(),
                    group,
                    "--advertise".into(),
                    url.to_owned(),
                    "--snapshot-store".into(),
                    store.display().to_string(),
                    "--worker-threads".into(),
                    threads,
                ]
            },
            "info",
        )
    }
}

/// The control and members topics of `group` (an instance would create
/// them itself; made here so that every case starts alike).
fn create_group_topics(mock: &MockCluster<'_, DefaultProducerContext>, group: &str) -> Result<()> {
    mock.create_topic(&format!("projector.{group}.units"), 12, 1)?;
    mock.create_topic(&format!("projector.{group}.members"), 1, 1)?;
    Ok(())
}

/// Produces `events` order events keyed by customer to `topic`.
fn produce(bootstrap: &str, topic: &str, events: u64) -> Result<()> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    for (_, payload) in order_events(events, CUSTOMERS) {
        let customer = serde_json::from_slice::<Value>(&payload)?["customer"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let mut record = BaseRecord::to(topic).key(&customer).payload(&payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, returned)) => {
                    record = returned;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
    producer
        .flush(Duration::from_secs(300))
        .context("flushing the produced events")?;
    Ok(())
}

/// Events applied by the units `server` folds as active.
fn applied_here(server: &Server) -> Result<u64> {
    let info = server.get_json(&format!("/v1/projections/{NAME}"))?;
    Ok(info["units"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|u| u["status"]["state"] == "running")
        .filter_map(|u| u["events_applied"].as_u64())
        .sum())
}

/// CPU seconds (user + system) a process has used.
fn cpu_secs(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which ends with the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
    Ok(ticks as f64 / 100.0)
}

fn replay(
    bench: &Bench,
    mock: &MockCluster<'_, DefaultProducerContext>,
    args: &Args,
    report: &mut Report,
) -> Result<()> {
    let events = args.events_or(4_000_000);
    let topic = "orders";
    mock.create_topic(topic, PARTITIONS, 1)?;
    let started = Instant::now();
    produce(&bench.bootstrap, topic, events)?;
    eprintln!(
        "group: produced {events} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let cases: [(&str, usize, usize); 4] = [
        ("1 instance, worker_threads = 1", 1, 1),
        ("1 instance, worker_threads = 2", 1, 2),
        ("2 instances, worker_threads = 1 each", 2, 1),
        ("3 instances, worker_threads = 1 each", 3, 1),
    ];
    let mut baseline = None;
    for (case, (label, count, threads)) in cases.iter().enumerate() {
        let group = format!("replay{case}");
        create_group_topics(mock, &group)?;
        eprintln!("group: {label}");
        let started = Instant::now();
        let mut servers = (0..*count)
            .map(|i| {
                bench.launch(
                    &format!("{group}-{i}"),
                    &Instance {
                        group: &group,
                        topic,
                        worker_threads: *threads,
                        standbys: 0,
                        snapshots: true,
                    },
                )
            })
            .collect::<Result<Vec<_>>>()?;
        for server in &mut servers {
            server.wait_up(Duration::from_secs(60))?;
        }
        loop {
            let mut applied = 0;
            for server in &mut servers {
                server.check_alive()?;
                applied += applied_here(server)?;
            }
            if applied >= events {
                break;
            }
            ensure!(
                started.elapsed() < PATIENCE,
                "{label}: {applied} of {events} events applied after {PATIENCE:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let secs = started.elapsed().as_secs_f64();
        let cpu: f64 = servers
            .iter()
            .map(|s| cpu_secs(s.pid()))
            .sum::<Result<f64>>()?;
        let base = *baseline.get_or_insert(secs);
        report.add(Row {
            scenario: "group",
            case: format!("order-totals replay, {events} events, {PARTITIONS} partitions: {label}"),
            measured: Quantity::events_per_sec(events as f64 / secs),
            detail: format!(
                ", CPU {:.2} us/event (projector processes; start-up and group forming included)",
                cpu / events as f64 * 1e6
            ),
            baseline: format!(
                "1 instance, 1 thread {} events/s",
                thousands(events as f64 / base)
            ),
            ratio: Some(base / secs),
            target: None,
        });
        if *count == 2 {
            lookups(&servers, report)?;
        }
        for server in servers {
            server.stop()?;
        }
    }
    Ok(())
}

/// p50 and p99 of `samples` (seconds), in ms.
fn percentiles(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)] * 1e3;
    (at(0.5), at(0.99))
}

/// Key lookups through the first of two instances: keys whose unit it
/// folds, and keys whose unit the other folds.
fn lookups(servers: &[Server], report: &mut Report) -> Result<()> {
    let asked = &servers[0];
    let cluster = asked.get_json("/v1/cluster")?;
    let projection = cluster["projections"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == NAME)
        .context("order-totals in /v1/cluster")?;
    let here: Vec<u32> = projection["units"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|u| u["active"] == asked.url.as_str())
        .filter_map(|u| u["unit"].as_u64().map(|u| u as u32))
        .collect();
    ensure!(
        !here.is_empty() && here.len() < PARTITIONS as usize,
        "the units are not spread over both instances: {projection}"
    );
    let mut local = Vec::new();
    let mut forwarded = Vec::new();
    let mut customer = 0u64;
    while local.len() < LOOKUPS || forwarded.len() < LOOKUPS {
        let key = format!("c{}", customer % CUSTOMERS);
        customer += 1;
        let unit = projector::partitioner::partition_for_key(key.as_bytes(), PARTITIONS as u32);
        let samples = if here.contains(&unit) {
            &mut local
        } else {
            &mut forwarded
        };
        if samples.len() >= LOOKUPS {
            continue;
        }
        let started = Instant::now();
        let (status, _) = asked.get(&format!("/v1/projections/{NAME}/state/customer%2F{key}"))?;
        let took = started.elapsed().as_secs_f64();
        if status != 200 {
            bail!("lookup of customer/{key} answered {status}");
        }
        samples.push(took);
    }
    let (local_p50, local_p99) = percentiles(local);
    let (forwarded_p50, forwarded_p99) = percentiles(forwarded);
    for (label, p50, p99) in [
        ("answered by the instance asked", local_p50, local_p99),
        ("forwarded to the owner", forwarded_p50, forwarded_p99),
    ] {
        report.add(Row {
            scenario: "group",
            case: format!("key lookup through a group of 2, {label}, {LOOKUPS} sequential"),
            measured: Quantity::millis(p50),
            detail: format!(" p50, p99 {p99:.2} ms"),
            baseline: format!("local p50 {local_p50:.2} ms"),
            ratio: Some(local_p50 / p50),
            target: None,
        });
    }
    Ok(())
}

/// `took_ms` of the new owner's `took over: caught up` line for the big
/// unit (the one with the most events), started from `from`.
fn handover_ms(server: &Server, from: &str) -> Option<(u64, u64)> {
    server
        .log_text()
        .lines()
        .filter(|line| {
            line.contains("took over: caught up") && line.contains(&format!("from=\"{from}\""))
        })
        .filter_map(|line| {
            let field = |name: &str| -> Option<u64> {
                let rest = line.split(&format!("{name}=")).nth(1)?;
                rest.split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse()
                    .ok()
            };
            Some((field("events_applied")?, field("took_ms")?))
        })
        .max_by_key(|(events, _)| *events)
}

/// Waits until `server` logs that the big unit took over from `from`, then
/// until it serves every event; answers the handover time (ms).
fn wait_taken_over(server: &mut Server, from: &str, events: u64) -> Result<u64> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        server.check_alive()?;
        if let Some((applied, took)) = handover_ms(server, from)
            && applied >= events / 2
            && applied_here(server)? >= events
        {
            return Ok(took);
        }
        ensure!(
            Instant::now() < deadline,
            "no handover from {from} of the big unit:\n{}",
            server.log_tail()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn handover(
    bench: &Bench,
    mock: &MockCluster<'_, DefaultProducerContext>,
    args: &Args,
    report: &mut Report,
) -> Result<()> {
    let events = args.events_or(1_100_000);
    let topic = "big";
    mock.create_topic(topic, 1, 1)?;
    produce(&bench.bootstrap, topic, events)?;
    for group in ["snapshot", "standby", "replay"] {
        create_group_topics(mock, group)?;
    }
    let instance = |group: &'static str, standbys: u32, snapshots: bool| Instance {
        group,
        topic,
        worker_threads: 1,
        standbys,
        snapshots,
    };
    let wait_folded = |server: &mut Server| -> Result<()> {
        let deadline = Instant::now() + PATIENCE;
        while applied_here(server)? < events {
            server.check_alive()?;
            ensure!(Instant::now() < deadline, "the big unit never caught up");
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    };
    let keys = |server: &Server| -> Result<u64> {
        Ok(server.get_json(&format!("/v1/projections/{NAME}"))?["keys"]
            .as_u64()
            .unwrap_or(0))
    };
    let mut results: Vec<(&str, u64, f64, u64)> = Vec::new();

    // From a snapshot: A folds alone, B joins, A leaves (SIGTERM: it
    // commits, snapshots the unit into the shared store, lets it go).
    {
        let mut a = bench.launch("snap-a", &instance("snapshot", 0, true))?;
        a.wait_up(Duration::from_secs(60))?;
        wait_folded(&mut a)?;
        let keys = keys(&a)?;
        let mut b = bench.launch("snap-b", &instance("snapshot", 0, true))?;
        b.wait_up(Duration::from_secs(60))?;
        wait_members(&b, 2)?;
        let left = Instant::now();
        a.stop()?;
        let took = wait_taken_over(&mut b, "snapshot", events)?;
        results.push((
            "from a snapshot (old owner left with SIGTERM)",
            took,
            left.elapsed().as_secs_f64(),
            keys,
        ));
        b.stop()?;
    }
    // From a standby: A and B both fold the unit; its active is killed.
    {
        let mut a = bench.launch("standby-a", &instance("standby", 1, true))?;
        let mut b = bench.launch("standby-b", &instance("standby", 1, true))?;
        a.wait_up(Duration::from_secs(60))?;
        b.wait_up(Duration::from_secs(60))?;
        let (mut active, mut standby) = loop {
            if applied_here(&a)? >= events {
                break (a, b);
            }
            if applied_here(&b)? >= events {
                break (b, a);
            }
            a.check_alive()?;
            std::thread::sleep(Duration::from_millis(50));
        };
        let keys = keys(&active)?;
        // The standby caught up too.
        let deadline = Instant::now() + PATIENCE;
        loop {
            let info = standby.get_json(&format!("/v1/projections/{NAME}"))?;
            let warm = info["units"].as_array().into_iter().flatten().any(|u| {
                u["status"]["state"] == "standby" && u["events_applied"].as_u64() >= Some(events)
            });
            if warm {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "the standby never caught up: {info}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let killed = Instant::now();
        active.kill();
        let took = wait_taken_over(&mut standby, "standby", events)?;
        results.push((
            "from its standby (old owner killed)",
            took,
            killed.elapsed().as_secs_f64(),
            keys,
        ));
        standby.stop()?;
    }
    // By full replay: no snapshots, no standby; the owner is killed.
    {
        let mut a = bench.launch("replay-a", &instance("replay", 0, false))?;
        a.wait_up(Duration::from_secs(60))?;
        wait_folded(&mut a)?;
        let keys = keys(&a)?;
        let mut b = bench.launch("replay-b", &instance("replay", 0, false))?;
        b.wait_up(Duration::from_secs(60))?;
        wait_members(&b, 2)?;
        let killed = Instant::now();
        a.kill();
        let took = wait_taken_over(&mut b, "replay", events)?;
        results.push((
            "by full replay (old owner killed, no snapshot)",
            took,
            killed.elapsed().as_secs_f64(),
            keys,
        ));
        b.stop()?;
    }
    let replay_ms = results.last().map_or(1, |r| r.1.max(1));
    for (label, took, total, keys) in results {
        report.add(Row {
            scenario: "group",
            case: format!("handover of a {keys}-key unit ({events} events) {label}"),
            measured: Quantity::millis(took as f64),
            detail: format!(
                " slot assigned -> serving at the head; {:.1} s from the leave/kill (session timeout 6 s)",
                total
            ),
            baseline: format!("full replay {replay_ms} ms"),
            ratio: Some(replay_ms as f64 / took.max(1) as f64),
            target: None,
        });
    }
    Ok(())
}

/// Waits until `server` sees `count` live members in its group.
fn wait_members(server: &Server, count: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let cluster = server.get_json("/v1/cluster")?;
        let alive = cluster["members"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["alive"] == true)
            .count();
        if alive >= count {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "the group never had {count} members: {cluster}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
