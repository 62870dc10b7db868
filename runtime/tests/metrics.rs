//! `GET /metrics` against the real binary: every metric `docs/metrics.md`
//! lists is served with the labels it lists (the doc's table is parsed, so
//! the two cannot drift), nothing undocumented is served, and the values add
//! up: events applied and read equal the events published, lag is zero once
//! caught up, an event the module refused is counted and dead-lettered, a
//! module stuck in a loop is flagged stalled, and a version building in the
//! shadow reports its progress.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Server, events_file, read_json, stderr};
use projector_test_guests::{ACCOUNT_BALANCES, HOSTILE, ORDER_TOTALS};
use serde_json::json;

/// `hostile` reads its own topic, dead-letters what fails, and has a time
/// budget far longer than the test, so its `loop` event holds it for good.
const HOSTILE_SIDECAR: &str = r#"
error_policy = "dead-letter"

[topics]
orders = "hostile-events"

[limits]
call_timeout_ms = 3600000
"#;

/// One documented metric: its name, type and labels.
#[derive(Debug)]
struct Documented {
    name: String,
    kind: String,
    labels: BTreeSet<String>,
}

/// The rows of `docs/metrics.md`'s table.
fn documented() -> Vec<Documented> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/metrics.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let unquote = |cell: &str| cell.trim().trim_matches('`').to_owned();
    let rows: Vec<Documented> = text
        .lines()
        .filter(|line| line.starts_with("| `projector_"))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').collect();
            Documented {
                name: unquote(cells[1]),
                kind: cells[2].trim().to_owned(),
                labels: cells[3]
                    .split(',')
                    .map(unquote)
                    .filter(|l| !l.is_empty())
                    .collect(),
            }
        })
        .collect();
    assert!(rows.len() > 10, "no metrics table in {}", path.display());
    rows
}

#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text exposition: `# TYPE` lines and samples.
fn parse(text: &str) -> (BTreeMap<String, String>, Vec<Sample>) {
    let mut types = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_owned(), BTreeMap::new()),
            Some((name, rest)) => (
                name.to_owned(),
                parse_labels(rest.strip_suffix('}').unwrap()),
            ),
        };
        samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    (types, samples)
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            return labels;
        }
        assert_eq!(chars.next(), Some('"'), "label {key} in {text:?}");
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => value.push(chars.next().unwrap()),
                '"' => break,
                c => value.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').to_owned(), value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
}

struct Scrape {
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

impl Scrape {
    fn take(server: &Server) -> Self {
        let reply = server.get("/metrics");
        assert_eq!(reply.status, 200);
        let text = String::from_utf8(reply.raw).unwrap();
        let (types, samples) = parse(&text);
        Self { types, samples }
    }

    /// The samples of `name` whose labels include `want`.
    fn find(&self, name: &str, want: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                want.iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(v))
            })
            .collect()
    }

    /// The one sample of `name` with labels `want`.
    fn value(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        let found = self.find(name, want);
        assert_eq!(found.len(), 1, "{name} {want:?}: {found:?}");
        found[0].value
    }

    fn sum(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        self.find(name, want).iter().map(|s| s.value).sum()
    }
}

fn publish_file(server: &Server, topic: &str, file: &str, key_field: &str) -> u64 {
    let path = events_file(file);
    let output = server.cli(&[
        "publish",
        topic,
        path.to_str().unwrap(),
        "--key-field",
        key_field,
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count() as u64
}

fn publish_hostile(server: &Server, events: &[(&str, &str)]) {
    let body: String = events
        .iter()
        .map(|(what, id)| json!({"do": what, "id": id, "k": id}).to_string() + "\n")
        .collect();
    let reply = server.post(
        "/v1/topics/hostile-events/events?key_field=k",
        "application/x-ndjson",
        body.as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// Scrapes until `check` holds (the stall monitor and shadow builds move on
/// their own); generous deadline, no fixed sleep.
fn scrape_until(server: &Server, what: &str, check: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let scrape = Scrape::take(server);
        if check(&scrape) {
            return scrape;
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting for {what}:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn every_documented_metric_is_served_with_sensible_values() {
    let server = Server::with_modules(&[ORDER_TOTALS, ACCOUNT_BALANCES, HOSTILE]);
    server.add_file("hostile.toml", HOSTILE_SIDECAR.as_bytes());
    let server = server.args(&["--stall-after-ms", "200"]).start();

    let orders = publish_file(&server, "orders", "orders.jsonl", "customer");
    let accounts = publish_file(&server, "accounts", "accounts.jsonl", "account");
    // One refused event (dead-lettered) and one good one, applied; then one
    // that never returns: the serving version stalls on it.
    publish_hostile(&server, &[("fail", "f1"), ("ok", "o1")]);
    server.wait_applied("hostile", 2);
    publish_hostile(&server, &[("loop", "l1")]);
    // A rebuild in the shadow meets the same loop: it stays building.
    let reply = server.post("/v1/projections/hostile/replay", "application/json", b"{}");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let hostile_version = reply.body["building"].as_str().unwrap()[..12].to_owned();

    let totals = server.wait_caught_up("order-totals");
    server.wait_caught_up("account-balances");
    let version = totals["hash"].as_str().unwrap()[..12].to_owned();
    // Requests to count: a hit on a templated route and an unknown path.
    assert_eq!(
        server
            .get("/v1/projections/order-totals/state/customer%2Falice")
            .status,
        200
    );
    assert_eq!(server.get("/no/such/path").status, 404);

    let scrape = scrape_until(&server, "hostile to be stalled and building", |s| {
        let serving = [("projection", "hostile"), ("role", "serving")];
        s.find("projector_projection_stalled", &serving)
            .iter()
            .any(|s| s.value == 1.0)
            && !s
                .find("projector_build_events_total", &[("projection", "hostile")])
                .is_empty()
    });

    // Doc and scrape agree, both ways.
    let docs = documented();
    for doc in &docs {
        assert_eq!(
            scrape.types.get(&doc.name).map(String::as_str),
            Some(doc.kind.as_str()),
            "{} is documented as a {} but served as {:?}",
            doc.name,
            doc.kind,
            scrape.types.get(&doc.name)
        );
        let sample_names: Vec<String> = match doc.kind.as_str() {
            "histogram" => ["_bucket", "_sum", "_count"]
                .iter()
                .map(|suffix| format!("{}{suffix}", doc.name))
                .collect(),
            _ => vec![doc.name.clone()],
        };
        for sample_name in &sample_names {
            let samples = scrape.find(sample_name, &[]);
            assert!(!samples.is_empty(), "{sample_name} has no samples");
            for sample in samples {
                let mut labels: BTreeSet<String> = sample.labels.keys().cloned().collect();
                if sample_name.ends_with("_bucket") {
                    assert!(labels.remove("le"), "{sample:?} has no le");
                }
                assert_eq!(labels, doc.labels, "{} labels", sample_name);
            }
        }
    }
    let documented_names: BTreeSet<&str> = docs.iter().map(|d| d.name.as_str()).collect();
    for served in scrape.types.keys() {
        assert!(
            documented_names.contains(served.as_str()),
            "{served} is served but not in docs/metrics.md"
        );
    }

    // Values.
    let ot = [
        ("projection", "order-totals"),
        ("version", version.as_str()),
        ("role", "serving"),
    ];
    assert_eq!(
        scrape.value("projector_events_applied_total", &ot),
        orders as f64
    );
    assert_eq!(
        scrape.value(
            "projector_events_applied_total",
            &[("projection", "account-balances")]
        ),
        accounts as f64
    );
    assert_eq!(
        scrape.value("projector_source_events_read_total", &ot),
        orders as f64
    );
    assert!(scrape.value("projector_source_read_bytes_total", &ot) > orders as f64);
    let batches = scrape.value("projector_batches_total", &ot);
    // Batches of at most 7 (the test server's batch_max_events).
    assert!(
        batches >= (orders as f64 / 7.0).ceil() && batches <= orders as f64,
        "{batches}"
    );
    assert!(scrape.value("projector_handler_duration_seconds_count", &ot) >= batches);
    // Batches that come full while a backlog lasts commit together.
    let commits = scrape.value("projector_commit_duration_seconds_count", &ot);
    assert!(commits >= 1.0 && commits <= batches, "{commits}");
    assert!(scrape.value("projector_handler_duration_seconds_sum", &ot) > 0.0);
    let inf = [ot[0], ot[1], ot[2], ("le", "+Inf")];
    assert_eq!(
        scrape.value("projector_commit_duration_seconds_bucket", &inf),
        scrape.value("projector_commit_duration_seconds_count", &ot)
    );
    assert_eq!(scrape.sum("projector_lag_events", &ot), 0.0);
    assert_eq!(scrape.sum("projector_next_offset", &ot), orders as f64);
    let expected = read_json(&events_file("orders.expected.json"));
    assert_eq!(
        scrape.value("projector_state_keys", &ot),
        expected.as_object().unwrap().len() as f64
    );
    assert!(scrape.value("projector_state_file_bytes", &ot) > 0.0);
    let state = |s: &'static str| [ot[0], ot[1], ot[2], ("state", s)];
    assert_eq!(
        scrape.value("projector_projection_status", &state("running")),
        1.0
    );
    assert_eq!(
        scrape.value("projector_projection_status", &state("failed")),
        0.0
    );
    assert_eq!(scrape.value("projector_projection_stalled", &ot), 0.0);
    assert_eq!(scrape.value("projector_source_up", &ot), 1.0);
    assert_eq!(scrape.value("projector_source_state", &state("ok")), 1.0);
    assert_eq!(
        scrape.value(
            "projector_projection_info",
            &[ot[0], ot[1], ot[2], ("source", "embedded")]
        ),
        1.0
    );
    assert_eq!(
        scrape.value(
            "projector_errors_total",
            &[ot[0], ot[1], ot[2], ("kind", "rejected")]
        ),
        0.0
    );

    // The refused event: one error, one dead letter; the loop: stalled.
    // A replay rebuilds the serving hash: the role tells them apart.
    let hs = [
        ("projection", "hostile"),
        ("version", hostile_version.as_str()),
        ("role", "serving"),
    ];
    let kind = |k: &'static str| [hs[0], hs[1], hs[2], ("kind", k)];
    assert_eq!(
        scrape.value("projector_errors_total", &kind("rejected")),
        1.0
    );
    assert_eq!(scrape.value("projector_errors_total", &kind("trap")), 0.0);
    assert_eq!(
        scrape.value("projector_failure_records", &kind("dead_letter")),
        1.0
    );
    assert_eq!(scrape.value("projector_events_applied_total", &hs), 2.0);
    assert_eq!(scrape.sum("projector_lag_events", &hs), 1.0);

    // The shadow build of hostile: three events to apply, none committed
    // (the batch holding the loop never ends).
    let hb = [
        ("projection", "hostile"),
        ("version", hostile_version.as_str()),
        ("role", "building"),
    ];
    assert_eq!(scrape.value("projector_projection_info", &hb), 1.0);
    assert_eq!(scrape.value("projector_build_events_total", &hb), 3.0);
    assert_eq!(scrape.value("projector_build_events_done", &hb), 0.0);

    // Requests by route template, not by raw path.
    let key_route = [
        ("method", "GET"),
        ("route", "/v1/projections/{name}/state/{*key}"),
        ("status", "200"),
    ];
    assert!(scrape.value("projector_http_requests_total", &key_route) >= 1.0);
    assert!(
        scrape.value(
            "projector_http_requests_total",
            &[("method", "GET"), ("route", "unmatched"), ("status", "404")]
        ) >= 1.0
    );
    assert!(
        scrape
            .find(
                "projector_http_requests_total",
                &[("route", "/no/such/path")]
            )
            .is_empty()
    );
}
