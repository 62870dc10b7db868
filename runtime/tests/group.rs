//! Instances sharing the work in a group (`--group`), several `projector`
//! processes on loopback against one broker: librdkafka's mock cluster in
//! a helper process (`projector-kafka-mock`), since Tansu's consumer
//! groups do not hold (docs/scaling.md). The `recorder` guest, kept
//! partitioned, fails on a duplicate or out-of-order event, and its state
//! read through any instance must hold every event produced exactly once;
//! `failing` (a global count) must count every event of its topic once.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use common::kafka::{Produced, TestProducer, assert_recorded_exactly, orders};
use common::{PATIENCE, Server};
use projector_test_guests::{FAILING, ORDER_TOTALS, RECORDER};
use serde_json::Value;

/// librdkafka's mock cluster, served by a helper process until dropped.
struct MockKafka {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<std::process::ChildStdout>,
    bootstrap: String,
}

impl MockKafka {
    fn start(topics: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_projector-kafka-mock"))
            .args(topics)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        let bootstrap = line
            .trim()
            .strip_prefix("bootstrap ")
            .unwrap_or_else(|| panic!("mock cluster said {line:?}"))
            .to_owned();
        let stdin = child.stdin.take();
        Self {
            child,
            stdin,
            stdout,
            bootstrap,
        }
    }

    /// Sends the helper a command (`down 1`, `up 1`) and checks its `ok`.
    fn command(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
        let mut answer = String::new();
        self.stdout.read_line(&mut answer).unwrap();
        assert_eq!(answer.trim(), "ok", "{line}");
    }
}

impl Drop for MockKafka {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::io::stdout().flush();
    }
}

const GROUP_TOPICS: [&str; 2] = ["projector.g.units:4", "projector.g.members:1"];

/// An instance of group `g` running `recorder` partitioned over
/// `topics` and `failing` (global) over the first topic.
fn member(kafka: &MockKafka, topics: [&str; 3], store: &std::path::Path) -> Server {
    member_with(kafka, topics, store, "")
}

/// [`member`], with `settings` added to both sidecars.
fn member_with(
    kafka: &MockKafka,
    topics: [&str; 3],
    store: &std::path::Path,
    settings: &str,
) -> Server {
    let server = Server::with_modules(&[RECORDER, FAILING]);
    server.add_file(
        "recorder.toml",
        format!(
            "source = \"kafka\"\nscale = \"partitioned\"\n{settings}\n[topics]\nt1 = \"{}\"\nt2 = \"{}\"\nt3 = \"{}\"\n",
            topics[0], topics[1], topics[2]
        )
        .as_bytes(),
    );
    server.add_file(
        "failing.toml",
        format!(
            "source = \"kafka\"\n{settings}\n[topics]\norders = \"{}\"\n",
            topics[0]
        )
        .as_bytes(),
    );
    let url = server.url.clone();
    server.args(&[
        "--kafka",
        &kafka.bootstrap,
        "--group",
        "g",
        "--advertise",
        &url,
        "--snapshot-store",
        store.to_str().unwrap(),
        "--batch-max-events",
        "50",
    ])
}

/// Waits until `server`'s view of the group says `check`.
fn wait_cluster(server: &Server, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let reply = server.get("/v1/cluster");
        if reply.status == 200 && check(&reply.body) {
            return reply.body;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {}\n{}",
            reply.body,
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every slot held by one of the live members listed `urls`, each member
/// holding at least one.
fn slots_spread_over(urls: &[&str]) -> impl Fn(&Value) -> bool {
    let urls: Vec<String> = urls.iter().map(|u| u.to_string()).collect();
    move |cluster: &Value| {
        let members = cluster["members"].as_array().cloned().unwrap_or_default();
        let mut held: Vec<u64> = Vec::new();
        for url in &urls {
            let Some(member) = members.iter().find(|m| m["url"] == *url.as_str()) else {
                return false;
            };
            let slots = member["slots"].as_array().cloned().unwrap_or_default();
            if member["alive"] != true || slots.is_empty() {
                return false;
            }
            held.extend(slots.iter().filter_map(Value::as_u64));
        }
        // No live member outside `urls` holds a slot.
        let strangers = members.iter().any(|m| {
            m["alive"] == true
                && !urls.iter().any(|u| m["url"] == *u.as_str())
                && m["slots"].as_array().is_some_and(|s| !s.is_empty())
        });
        held.sort_unstable();
        !strangers && held == [0, 1, 2, 3]
    }
}

/// Reads `recorder`'s whole state through `server` until it holds
/// `produced` exactly (retrying while a handover is under way).
fn wait_recorded(server: &Server, produced: &[Produced], topics: [&str; 3]) {
    let logical =
        move |real: &str| format!("t{}", topics.iter().position(|t| *t == real).unwrap() + 1);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let state = server.try_state("recorder").ok();
        let recorded = state.as_ref().map_or(0, |s| {
            s.as_object()
                .unwrap()
                .keys()
                .filter(|k| k.starts_with("event/"))
                .count()
        });
        if recorded >= produced.len() {
            assert_recorded_exactly(state.as_ref().unwrap(), produced, &logical);
            return;
        }
        assert!(
            Instant::now() < deadline,
            "recorded {recorded} of {} events\n{}",
            produced.len(),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `failing`'s count through `server`, once it is `expected`.
fn wait_count(server: &Server, expected: usize) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let reply = server.get("/v1/projections/failing/state/count");
        if reply.status == 200 && reply.body == serde_json::json!(expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "count {} (status {}), expected {expected}\n{}",
            reply.body,
            reply.status,
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn produce(kafka: &MockKafka, events: &[Produced]) {
    let producer = TestProducer::new(&kafka.bootstrap);
    for event in events {
        producer.send(event);
    }
    producer.flush();
}

fn on_first(events: &[Produced], topic: &str) -> usize {
    events.iter().filter(|e| e.topic == topic).count()
}

/// Three instances share the units; the one folding the global projection
/// is killed with SIGKILL mid-stream: its units and the global projection
/// move to the others, which take over from the shared snapshots and
/// replay the tail. Every event is recorded once, in order, and counted
/// once by the global projection, read through either survivor.
#[test]
fn a_killed_instance_s_units_move_and_nothing_is_lost_or_doubled() {
    let topics = ["k-one", "k-two", "k-three"];
    let kafka = MockKafka::start(&[
        GROUP_TOPICS[0],
        GROUP_TOPICS[1],
        "k-one:4",
        "k-two:4",
        "k-three:4",
    ]);
    let store = tempfile::tempdir().unwrap();
    let mut members: Vec<Server> = (0..3)
        .map(|_| member(&kafka, topics, store.path()).start())
        .collect();
    let urls: Vec<String> = members.iter().map(|m| m.url.clone()).collect();
    let all: Vec<&str> = urls.iter().map(String::as_str).collect();
    let view = wait_cluster(
        &members[0],
        "the slots spread over three",
        slots_spread_over(&all),
    );

    let produced = orders(&topics, 6_000, 7);
    produce(&kafka, &produced[..3_000]);
    // The global projection's instance has folded some events before it dies.
    let global = view["projections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "failing")
        .unwrap()["units"][0]["active"]
        .as_str()
        .unwrap()
        .to_owned();
    let doomed = urls.iter().position(|u| *u == global).unwrap();
    wait_recorded(&members[doomed], &produced[..3_000], topics);
    wait_count(&members[doomed], on_first(&produced[..3_000], "k-one"));
    members[doomed].sigkill();
    produce(&kafka, &produced[3_000..]);

    let survivors: Vec<&Server> = (0..3)
        .filter(|i| *i != doomed)
        .map(|i| &members[i])
        .collect();
    let survivor_urls: Vec<&str> = survivors.iter().map(|m| m.url.as_str()).collect();
    wait_cluster(
        survivors[0],
        "the survivors hold every slot",
        slots_spread_over(&survivor_urls),
    );
    for survivor in &survivors {
        wait_recorded(survivor, &produced, topics);
        wait_count(survivor, on_first(&produced, "k-one"));
    }
    let view = wait_cluster(survivors[1], "the view", |_| true);
    let failing = view["projections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "failing")
        .unwrap()
        .clone();
    let active = failing["units"][0]["active"].as_str().unwrap();
    assert!(survivor_urls.contains(&active), "{failing}");
}

/// A new instance joins while events flow: some units move to it (handed
/// over by a snapshot, the others never pausing) and the state stays exact,
/// read through the new instance or the old one.
#[test]
fn a_joining_instance_takes_units_over_and_the_state_stays_exact() {
    let topics = ["j-one", "j-two", "j-three"];
    let kafka = MockKafka::start(&[
        GROUP_TOPICS[0],
        GROUP_TOPICS[1],
        "j-one:4",
        "j-two:4",
        "j-three:4",
    ]);
    let store = tempfile::tempdir().unwrap();
    let a = member(&kafka, topics, store.path()).start();
    wait_cluster(
        &a,
        "one instance holds every slot",
        slots_spread_over(&[&a.url]),
    );
    let produced = orders(&topics, 4_000, 8);
    produce(&kafka, &produced[..2_000]);
    wait_recorded(&a, &produced[..2_000], topics);

    let b = member(&kafka, topics, store.path()).start();
    wait_cluster(
        &a,
        "the slots spread over two",
        slots_spread_over(&[&a.url, &b.url]),
    );
    produce(&kafka, &produced[2_000..]);
    wait_recorded(&b, &produced, topics);
    wait_recorded(&a, &produced, topics);
    wait_count(&b, on_first(&produced, "j-one"));
    assert!(
        a.log().contains("slots handed over"),
        "A handed the moving slots over:\n{}",
        a.log()
    );
    assert!(
        b.log().contains("took over from a newer snapshot"),
        "B started from A's hand-over snapshots:\n{}\nA:\n{}",
        b.log(),
        a.log()
    );
}

/// An instance frozen (SIGSTOP) past its session loses its slots to the
/// others; when it wakes it knows it is fenced before anything tells it:
/// it drops what it had not committed, commits nothing more for those
/// slots and does not answer for them, and the state read anywhere stays
/// exact.
#[test]
fn a_frozen_instance_is_fenced_when_it_wakes() {
    let topics = ["f-one", "f-two", "f-three"];
    let kafka = MockKafka::start(&[
        GROUP_TOPICS[0],
        GROUP_TOPICS[1],
        "f-one:4",
        "f-two:4",
        "f-three:4",
    ]);
    let store = tempfile::tempdir().unwrap();
    let a = member(&kafka, topics, store.path()).start();
    let b = member(&kafka, topics, store.path()).start();
    wait_cluster(
        &a,
        "the slots spread over two",
        slots_spread_over(&[&a.url, &b.url]),
    );
    let produced = orders(&topics, 4_000, 9);
    produce(&kafka, &produced[..2_000]);
    wait_recorded(&a, &produced[..2_000], topics);

    let pid = b.pid().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    wait_cluster(
        &a,
        "A holds every slot while B is frozen",
        slots_spread_over(&[&a.url]),
    );
    produce(&kafka, &produced[2_000..]);
    wait_recorded(&a, &produced, topics);
    assert!(
        Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .unwrap()
            .success()
    );

    // B knows on waking, by its own clock, that it may no longer act on
    // its slots; then the group tells it they are gone.
    let deadline = Instant::now() + PATIENCE;
    while !b.log().contains("session lost") && !b.log().contains("fenced") {
        assert!(Instant::now() < deadline, "B never noticed:\n{}", b.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let woke = b.log();
    assert!(woke.contains("this instance stood still"), "{woke}");
    assert!(
        !woke.contains("slots handed over"),
        "B handed over slots it had lost:\n{woke}"
    );
    wait_cluster(
        &a,
        "the slots spread over two again",
        slots_spread_over(&[&a.url, &b.url]),
    );
    wait_recorded(&b, &produced, topics);
    wait_recorded(&a, &produced, topics);
    wait_count(&b, on_first(&produced, "f-one"));
}

/// The group's view: members with their URLs, each projection's units
/// with the instance they are active on; without --group the route says
/// how to join one.
#[test]
fn the_cluster_route_shows_members_and_units() {
    let topics = ["v-one", "v-two", "v-three"];
    let kafka = MockKafka::start(&[
        GROUP_TOPICS[0],
        GROUP_TOPICS[1],
        "v-one:4",
        "v-two:4",
        "v-three:4",
    ]);
    let store = tempfile::tempdir().unwrap();
    // order-totals too, partitioned over v-one, which every projection reads.
    let with_orders = |server: Server| {
        server.add_module(ORDER_TOTALS);
        server.add_file(
            "order_totals.toml",
            b"source = \"kafka\"\nscale = \"partitioned\"\nkey_templates = [\"customer/{key}\"]\n[topics]\norders = \"v-one\"\n",
        );
        server
    };
    let a = with_orders(member(&kafka, topics, store.path())).start();
    let b = with_orders(member(&kafka, topics, store.path())).start();
    let view = wait_cluster(
        &b,
        "the slots spread over two",
        slots_spread_over(&[&a.url, &b.url]),
    );
    assert_eq!(view["group"], "g");
    assert_eq!(view["me"], b.url.as_str());
    assert_eq!(view["slots"], 4);
    let recorder = view["projections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "recorder")
        .unwrap();
    assert_eq!(recorder["partitioned"], true);
    let units = recorder["units"].as_array().unwrap();
    assert_eq!(units.len(), 4, "{view}");
    for unit in units {
        let active = unit["active"].as_str().unwrap();
        assert!(active == a.url || active == b.url, "{view}");
    }
    // POST /v1/read across the two: every projection at one set of
    // offsets of v-one, whichever instance is asked.
    let produced: Vec<Produced> = (0..700)
        .map(|i| Produced {
            topic: "v-one".to_owned(),
            key: Some(format!("c{}", i % 7).into_bytes()),
            payload: Some(
                serde_json::json!({"type": "OrderPlaced", "order_id": format!("o{i}"), "customer": format!("c{}", i % 7), "amount_cents": 100})
                    .to_string()
                    .into_bytes(),
            ),
            headers: Vec::new(),
        })
        .collect();
    produce(&kafka, &produced);
    let body = br#"{"reads": [
        {"projection": "order-totals", "query": "top-customers", "args": {"n": 3}},
        {"projection": "order-totals", "key": "customer/c1"},
        {"projection": "recorder", "prefix": "event/", "limit": 10000},
        {"projection": "failing", "key": "count"}
    ], "min_offsets": {"v-one": {"0": 0}}}"#;
    let read_all = |server: &Server| {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let read = server.post("/v1/read", "application/json", body);
            assert_eq!(read.status, 200, "{}", read.body);
            let next: u64 = read.body["offsets"]["v-one"]
                .as_object()
                .map_or(0, |parts| parts.values().filter_map(Value::as_u64).sum());
            if next == produced.len() as u64 {
                return read.body;
            }
            assert!(Instant::now() < deadline, "{}", read.body);
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    for server in [&a, &b] {
        let read = read_all(server);
        let results = &read["results"];
        let units = results[0]["result"]["units"]
            .as_array()
            .unwrap_or_else(|| panic!("{read}"));
        assert_eq!(
            units.iter().map(|u| u["unit"].clone()).collect::<Vec<_>>(),
            [0, 1, 2, 3],
            "{read}"
        );
        assert_eq!(results[1]["found"], true, "{read}");
        assert_eq!(results[1]["value"]["orders"], 100, "{read}");
        assert_eq!(
            results[2]["items"].as_array().unwrap().len(),
            produced.len(),
            "{read}"
        );
        assert_eq!(results[3]["value"], produced.len(), "{read}");
        for name in ["order-totals", "recorder", "failing"] {
            assert_eq!(
                read["projections"][name]["offsets"]["v-one"], read["offsets"]["v-one"],
                "{name} at the read's offsets: {read}"
            );
        }
    }
    // projector status says the same.
    let status = b.cli(&["status"]);
    assert!(status.status.success(), "{}", common::stderr(&status));
    let printed = common::stdout(&status);
    assert!(printed.contains("group g: 4 slots, 2 members"), "{printed}");
    assert!(
        printed.contains(&format!("member {} (this one)", b.url)),
        "{printed}"
    );
    assert!(
        printed.contains("  recorder: unit 0 on http://"),
        "{printed}"
    );
    assert!(printed.contains("  failing: on http://"), "{printed}");
    let alone = Server::new().start();
    let reply = alone.get("/v1/cluster");
    assert_eq!(reply.status, 404);
    assert_eq!(reply.body["error"]["code"], "not_in_a_group");
}

/// Each unit's state where it is folded (its active and its standbys), by
/// (projection, unit): `{offsets, events_applied, hash}` per instance.
fn folded_states(members: &[&Server]) -> std::collections::BTreeMap<String, Vec<Value>> {
    let mut states: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
    for member in members {
        let view = member.get("/v1/cluster?hashes=true");
        assert_eq!(view.status, 200, "{}", view.body);
        for projection in view.body["projections"].as_array().unwrap() {
            for unit in projection["units"].as_array().unwrap() {
                if !unit["state"].is_null() {
                    states
                        .entry(format!("{} unit {}", projection["name"], unit["unit"]))
                        .or_default()
                        .push(unit["state"].clone());
                }
            }
        }
    }
    states
}

/// The value of the sample `series` (name and labels as served) in
/// `server`'s metrics, 0 when absent.
fn metric(server: &Server, series: &str) -> f64 {
    let reply = server.get("/metrics");
    String::from_utf8_lossy(&reply.raw)
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// With `standby_replicas = 1`, each unit (and the global projection) is
/// folded by its active instance and by the other one, a standby, with no
/// changelog: at equal offsets their states hash the same, entry for
/// entry. When the active is killed, the standby takes its units over from
/// its own warm copy, and the state stays exact.
#[test]
fn standbys_equal_their_actives_and_take_over_warm() {
    let topics = ["s-one", "s-two", "s-three"];
    let kafka = MockKafka::start(&[
        GROUP_TOPICS[0],
        GROUP_TOPICS[1],
        "s-one:4",
        "s-two:4",
        "s-three:4",
    ]);
    let store = tempfile::tempdir().unwrap();
    // Standbys for every projection, from the config file; a session long
    // enough that the read right after the kill below finds the dead
    // instance still owning its units.
    let standing = |server: Server| {
        let config = server.data_dir().with_file_name("projector.toml");
        std::fs::write(
            &config,
            "[cluster]\nstandby_replicas = 1\nsession_timeout_ms = 20000\n",
        )
        .unwrap();
        server.args(&["--config", config.to_str().unwrap()])
    };
    let mut a = standing(member(&kafka, topics, store.path())).start();
    let b = standing(member(&kafka, topics, store.path())).start();
    let view = wait_cluster(
        &b,
        "the slots spread over two, every unit with a standby",
        |view| {
            slots_spread_over(&[&a.url, &b.url])(view)
                && view["projections"].as_array().is_some_and(|projections| {
                    projections.iter().all(|p| {
                        p["units"].as_array().unwrap().iter().all(|u| {
                            u["standbys"].as_array().is_some_and(|s| s.len() == 1)
                                && u["standbys"][0] != u["active"]
                        })
                    })
                })
        },
    );
    let produced = orders(&topics, 3_000, 11);
    produce(&kafka, &produced);
    let counted = on_first(&produced, "s-one") as u64;

    // Both instances fold every unit (5 of them: 4 of recorder, failing):
    // once each has applied every event, compare.
    let deadline = Instant::now() + PATIENCE;
    let states = loop {
        let states = folded_states(&[&a, &b]);
        let applied = |name: &str| -> Option<u64> {
            states
                .iter()
                .filter(|(unit, _)| unit.starts_with(name))
                .map(|(_, copies)| {
                    let applied: Vec<u64> = copies
                        .iter()
                        .map(|c| c["events_applied"].as_u64().unwrap())
                        .collect();
                    (copies.len() == 2 && applied[0] == applied[1]).then_some(applied[0])
                })
                .sum()
        };
        if states.len() == 5
            && applied("\"recorder\"") == Some(produced.len() as u64)
            && applied("\"failing\"") == Some(counted)
        {
            break states;
        }
        assert!(
            Instant::now() < deadline,
            "the standbys never caught up: {states:#?}\n{view}\nA:\n{}\nB:\n{}",
            a.log(),
            b.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    for (unit, copies) in &states {
        assert_eq!(copies[0]["offsets"], copies[1]["offsets"], "{unit}");
        assert_eq!(
            copies[0]["hash"], copies[1]["hash"],
            "{unit}: a standby's state differs from its active's at the same offsets"
        );
    }
    for member in [&a, &b] {
        assert!(
            metric(member, "projector_units_owned{role=\"standby\"}") >= 1.0,
            "{}",
            member.log()
        );
    }

    // The active of some units dies: B, standby of all of them, takes over.
    let replays = |server: &Server| {
        metric(
            server,
            "projector_handover_duration_seconds_count{from=\"replay\"}",
        )
    };
    let replayed_before = replays(&b);
    a.sigkill();
    // Until the group moves A's units, a read that allows it is answered
    // from B's standby copies (and says so); every event is in them.
    let stale = b.get("/v1/projections/recorder/state?prefix=event/&limit=10000&allow_stale=true");
    assert_eq!(stale.status, 200, "{}", stale.body);
    assert_eq!(stale.stale_header.as_deref(), Some("true"), "{}", b.log());
    assert_eq!(
        stale.body["items"].as_array().unwrap().len(),
        produced.len(),
        "{}",
        stale.body
    );
    let count = b.get("/v1/projections/failing/state/count?allow_stale=true");
    assert_eq!(count.status, 200, "{}", count.body);
    assert_eq!(count.body, serde_json::json!(counted));
    let more = orders(&topics, 1_000, 12);
    produce(&kafka, &more);
    let all: Vec<Produced> = produced.iter().chain(&more).cloned().collect();
    wait_cluster(&b, "B holds every slot", slots_spread_over(&[&b.url]));
    wait_recorded(&b, &all, topics);
    wait_count(&b, on_first(&all, "s-one"));
    // Once its promoted units reach the head, B counts the handovers.
    let deadline = Instant::now() + PATIENCE;
    while metric(
        &b,
        "projector_handover_duration_seconds_count{from=\"standby\"}",
    ) < 1.0
    {
        assert!(
            Instant::now() < deadline,
            "B took over from its standby copies:\n{}",
            b.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        replays(&b),
        replayed_before,
        "no unit of A replayed from the start:\n{}",
        b.log()
    );
}

/// The broker goes down while a rebalance runs (a second instance just
/// joined) and comes back: the group settles over both instances, and the
/// state read through either is exact (nothing lost, nothing doubled).
#[test]
fn a_broker_restart_during_a_rebalance_loses_nothing() {
    let topics = ["r-one", "r-two", "r-three"];
    let mut kafka = MockKafka::start(&[
        GROUP_TOPICS[0],
        GROUP_TOPICS[1],
        "r-one:4",
        "r-two:4",
        "r-three:4",
    ]);
    let store = tempfile::tempdir().unwrap();
    let a = member(&kafka, topics, store.path()).start();
    wait_cluster(
        &a,
        "one instance holds every slot",
        slots_spread_over(&[&a.url]),
    );
    let produced = orders(&topics, 4_000, 13);
    produce(&kafka, &produced[..2_000]);
    wait_recorded(&a, &produced[..2_000], topics);

    // B joins: the group rebalances; the broker goes down meanwhile.
    let b = member(&kafka, topics, store.path()).start();
    let deadline = Instant::now() + PATIENCE;
    while !a.log().contains("slots revoked") && !b.log().contains("slots assigned") {
        assert!(Instant::now() < deadline, "no rebalance:\n{}", b.log());
        std::thread::sleep(Duration::from_millis(10));
    }
    kafka.command("down 1");
    std::thread::sleep(Duration::from_secs(2));
    kafka.command("up 1");

    produce(&kafka, &produced[2_000..]);
    wait_cluster(
        &a,
        "the slots spread over two after the broker came back",
        slots_spread_over(&[&a.url, &b.url]),
    );
    wait_recorded(&a, &produced, topics);
    wait_recorded(&b, &produced, topics);
    wait_count(&a, on_first(&produced, "r-one"));
    wait_count(&b, on_first(&produced, "r-one"));
}
