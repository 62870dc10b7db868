//! The conformance suite: every example projection in every SDK language
//! (Rust, Python, JavaScript, TypeScript, Go, C) against one set of event
//! files and expected results under `conformance/` (see its README). Each
//! language must refuse the same events, store byte-identical state and give
//! byte-identical query answers. A missing module fails the suite with the
//! command that builds it: no language is skipped.
//!
//! `PROJECTOR_CONFORMANCE_WRITE=1 cargo test --release -p projector --test
//! conformance` rewrites the expected files from the Rust examples (review
//! the diff: they are the contract the other languages are held to).

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use common::{Server, events_file, percent, read_json, stderr};
use projector::event::Offsets;
use projector::store::{CommitPositions, Overlay, StateStore};
use projector::wasm::bindings::{Event, QueryError};
use projector::wasm::{Instance, Limits, RunError, WasmHost};
use projector_test_guests::{ACCOUNT_BALANCES, ORDER_TOTALS};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

/// Every SDK language, and the script that builds its examples into
/// `target/guests/<lang>/<name>.wasm` (Rust's are built by
/// `testing/artifacts`).
const LANGUAGES: [(&str, &str); 6] = [
    ("rust", ""),
    ("python", "./scripts/build-python-examples.sh"),
    ("js", "./scripts/build-js-examples.sh"),
    ("ts", "./scripts/build-js-examples.sh"),
    ("go", "./scripts/build-go-examples.sh"),
    ("c", "./scripts/build-c-examples.sh"),
];

const PROJECTIONS: [(&str, &str); 2] =
    [("order-totals", "orders"), ("account-balances", "accounts")];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn module(lang: &str, name: &str) -> String {
    if lang == "rust" {
        return match name {
            "order-totals" => ORDER_TOTALS.to_owned(),
            "account-balances" => ACCOUNT_BALANCES.to_owned(),
            _ => unreachable!("{name}"),
        };
    }
    let path = repo()
        .join("target/guests")
        .join(lang)
        .join(format!("{name}.wasm"));
    let build = LANGUAGES.iter().find(|(l, _)| *l == lang).unwrap().1;
    assert!(
        path.is_file(),
        "{} is missing: build the {lang} examples first with `{build}` \
         (it installs its tools from the registries)",
        path.display()
    );
    path.to_str().unwrap().to_owned()
}

/// One case: events (one payload per line, verbatim: lines that are not
/// JSON or not UTF-8 are cases too), queries, and what they must give.
struct Case {
    projection: &'static str,
    topic: &'static str,
    name: &'static str,
    events: PathBuf,
}

impl Case {
    fn all() -> Vec<Case> {
        let mut cases = Vec::new();
        for (projection, topic) in PROJECTIONS {
            cases.push(Case {
                projection,
                topic,
                name: "samples",
                events: events_file(&format!("{topic}.jsonl")),
            });
            cases.push(Case {
                projection,
                topic,
                name: "edge",
                events: self::case_file(projection, "edge.jsonl"),
            });
        }
        cases
    }

    fn payloads(&self) -> Vec<Vec<u8>> {
        let bytes = std::fs::read(&self.events).unwrap();
        let mut lines: Vec<Vec<u8>> = bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
        // The newline ending the last line does not start an empty event.
        if lines.last().is_some_and(Vec::is_empty) {
            lines.pop();
        }
        lines
    }

    fn queries(&self) -> Vec<QueryCase> {
        let path = case_file(self.projection, &format!("{}.queries.json", self.name));
        serde_json::from_slice(&std::fs::read(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn expected_path(&self) -> PathBuf {
        case_file(self.projection, &format!("{}.expected.json", self.name))
    }

    fn label(&self) -> String {
        format!("{}/{}", self.projection, self.name)
    }
}

fn case_file(projection: &str, file: &str) -> PathBuf {
    repo().join("conformance").join(projection).join(file)
}

#[derive(Deserialize)]
struct QueryCase {
    query: String,
    args: String,
}

/// What a case must give, with every value kept as the exact text of the
/// expected file: the stored bytes must equal it.
#[derive(Deserialize)]
struct Expected<'a> {
    /// Line numbers (from 1) of the events the projection refuses.
    refused: Vec<usize>,
    #[serde(borrow)]
    state: BTreeMap<String, &'a RawValue>,
    #[serde(borrow)]
    answers: Vec<ExpectedAnswer<'a>>,
}

/// `{"ok": <answer>}` or `{"error": "<kind>"}` (a map, so that an `ok` of
/// `null` is kept rather than read as absent).
type ExpectedAnswer<'a> = BTreeMap<String, &'a RawValue>;

/// What one language made of a case.
struct Outcome {
    refused: Vec<usize>,
    state: Vec<(Vec<u8>, Vec<u8>)>,
    answers: Vec<Result<Vec<u8>, &'static str>>,
}

/// A module instance and a state file of its own.
struct Driver {
    lang: &'static str,
    instance: Instance,
    store: StateStore,
    applied: u64,
}

impl Driver {
    fn new(host: &WasmHost, dir: &Path, lang: &'static str, name: &str) -> Self {
        let file = module(lang, name);
        let module = host
            .load(Path::new(&file))
            .unwrap_or_else(|e| panic!("{lang} {file}: {e}"));
        let instance = module.instantiate(lang).unwrap();
        let store = StateStore::open(&dir.join(format!("{lang}-{name}.redb"))).unwrap();
        Self {
            lang,
            instance,
            store,
            applied: 0,
        }
    }

    /// Runs a batch; commits its writes if every event applied. Otherwise
    /// the failing index and the module's message. A trap fails the test.
    fn apply(&mut self, events: &[Event]) -> Result<(), (u32, String)> {
        let base = self.store.reader().unwrap();
        let (result, overlay) = self.instance.handle(events, base, Overlay::default());
        match result {
            Ok(()) => {
                self.applied += events.len() as u64;
                let positions = CommitPositions {
                    offsets: &Offsets::default(),
                    events_applied: self.applied,
                };
                self.store.commit(&overlay, positions, false).unwrap();
                Ok(())
            }
            Err(RunError::Rejected { index, message }) => Err((index, message)),
            Err(other) => panic!("{}: the batch trapped: {other}", self.lang),
        }
    }

    /// The answer bytes, or the kind of query error.
    fn query(&mut self, name: &str, args: &str) -> Result<Vec<u8>, &'static str> {
        let base = self.store.reader().unwrap();
        match self
            .instance
            .query(base, name, args.as_bytes())
            .unwrap_or_else(|e| panic!("{}: query {name} {args:?} trapped: {e}", self.lang))
        {
            Ok(bytes) => Ok(bytes),
            Err(QueryError::UnknownQuery) => Err("unknown-query"),
            Err(QueryError::BadArgs(_)) => Err("bad-args"),
            Err(QueryError::Failed(_)) => Err("failed"),
        }
    }

    fn state(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let reader = self.store.reader().unwrap();
        reader.iter_all().unwrap().map(Result::unwrap).collect()
    }
}

fn event(topic: &str, offset: u64, payload: Option<Vec<u8>>) -> Event {
    Event {
        source: topic.into(),
        partition: 0,
        offset,
        key: None,
        payload,
        timestamp_ms: 0,
        headers: Vec::new(),
    }
}

/// Runs a case event by event (so that each refusal is seen), then a
/// tombstone, which every example refuses without a trace, then the queries.
fn run_case(host: &WasmHost, dir: &Path, lang: &'static str, case: &Case) -> Outcome {
    let mut driver = Driver::new(host, dir, lang, case.projection);
    let mut refused = Vec::new();
    for (offset, payload) in (0u64..).zip(case.payloads()) {
        if driver
            .apply(&[event(case.topic, offset, Some(payload))])
            .is_err()
        {
            refused.push(offset as usize + 1);
        }
    }
    let state = driver.state();
    let tombstone = event(case.topic, u64::MAX, None);
    match driver.apply(&[tombstone]) {
        Err((0, message)) => assert!(
            message.contains("tombstone"),
            "{lang} {}: a tombstone's message should say so: {message}",
            case.label()
        ),
        other => panic!("{lang} {}: a tombstone gave {other:?}", case.label()),
    }
    assert!(
        driver.state() == state,
        "{lang}: a refused tombstone changed the state"
    );
    let answers = case
        .queries()
        .iter()
        .map(|q| driver.query(&q.query, &q.args))
        .collect();
    Outcome {
        refused,
        state,
        answers,
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec())
        .unwrap_or_else(|_| format!("{} (not UTF-8)", String::from_utf8_lossy(bytes)))
}

/// The expected file for an outcome: one state entry and one answer per
/// line, each value the stored bytes verbatim.
fn render(outcome: &Outcome) -> String {
    let mut out = format!("{{\n\"refused\": {:?},\n\"state\": {{", outcome.refused);
    for (i, (key, value)) in outcome.state.iter().enumerate() {
        let key = String::from_utf8(key.clone()).expect("example keys are UTF-8");
        let value = std::str::from_utf8(value).expect("example values are UTF-8");
        serde_json::from_str::<&RawValue>(value).expect("example values are JSON");
        let sep = if i == 0 { "" } else { "," };
        write!(out, "{sep}\n{}: {value}", Value::String(key)).unwrap();
    }
    out.push_str("\n},\n\"answers\": [");
    for (i, answer) in outcome.answers.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        match answer {
            Ok(bytes) => write!(
                out,
                "{sep}\n{{\"ok\": {}}}",
                std::str::from_utf8(bytes).unwrap()
            ),
            Err(kind) => write!(out, "{sep}\n{{\"error\": \"{kind}\"}}"),
        }
        .unwrap();
    }
    out.push_str("\n]\n}\n");
    out
}

/// Every difference between an outcome and the expected file, one per line.
fn differences(outcome: &Outcome, expected: &Expected, queries: &[QueryCase]) -> Vec<String> {
    let mut found = Vec::new();
    if outcome.refused != expected.refused {
        found.push(format!(
            "refused lines {:?}, expected {:?}",
            outcome.refused, expected.refused
        ));
    }
    let state: BTreeMap<String, &[u8]> = outcome
        .state
        .iter()
        .map(|(k, v)| (text(k), v.as_slice()))
        .collect();
    for (key, want) in &expected.state {
        match state.get(key) {
            None => found.push(format!("missing key {key:?} (expected {})", want.get())),
            Some(got) if *got != want.get().as_bytes() => found.push(format!(
                "key {key:?}: stored {}, expected {}",
                text(got),
                want.get()
            )),
            Some(_) => {}
        }
    }
    for (key, got) in &state {
        if !expected.state.contains_key(key) {
            found.push(format!("extra key {key:?} = {}", text(got)));
        }
    }
    if outcome.answers.len() != expected.answers.len() {
        found.push(format!(
            "{} answers, expected {}: rewrite the expected file",
            outcome.answers.len(),
            expected.answers.len()
        ));
    }
    for ((got, want), q) in outcome.answers.iter().zip(&expected.answers).zip(queries) {
        let args: String = q.args.chars().take(60).collect();
        let shown = match got {
            Ok(bytes) => format!("{{\"ok\": {}}}", text(bytes)),
            Err(kind) => format!("{{\"error\": \"{kind}\"}}"),
        };
        let matches = match got {
            Ok(bytes) => want
                .get("ok")
                .is_some_and(|raw| raw.get().as_bytes() == bytes),
            Err(kind) => want
                .get("error")
                .is_some_and(|raw| raw.get() == format!("\"{kind}\"")),
        };
        if !matches || want.len() != 1 {
            let want: Vec<String> = want
                .iter()
                .map(|(k, v)| format!("{k}: {}", v.get()))
                .collect();
            found.push(format!(
                "query {} {args:?}: answered {shown}, expected {{{}}}",
                q.query,
                want.join(", ")
            ));
        }
    }
    found
}

#[test]
fn every_language_gives_the_expected_bytes_for_every_case() {
    let writing = std::env::var_os("PROJECTOR_CONFORMANCE_WRITE").is_some();
    let dir = tempfile::tempdir().unwrap();
    let host = WasmHost::new(&dir.path().join("cache"), Limits::default()).unwrap();
    let mut report = Vec::new();
    for (i, case) in Case::all().iter().enumerate() {
        let path = case.expected_path();
        if writing {
            let case_dir = dir.path().join(format!("write-{i}"));
            std::fs::create_dir_all(&case_dir).unwrap();
            let outcome = run_case(&host, &case_dir, "rust", case);
            std::fs::write(&path, render(&outcome)).unwrap();
        }
        let bytes = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; write it with PROJECTOR_CONFORMANCE_WRITE=1",
                path.display()
            )
        });
        let expected: Expected =
            serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let queries = case.queries();
        // Writing checks the Rust examples against what they just wrote.
        let languages = if writing {
            &LANGUAGES[..1]
        } else {
            &LANGUAGES[..]
        };
        for (lang, _) in languages {
            let case_dir = dir.path().join(format!("{i}-{lang}"));
            std::fs::create_dir_all(&case_dir).unwrap();
            let outcome = run_case(&host, &case_dir, lang, case);
            for difference in differences(&outcome, &expected, &queries) {
                report.push(format!("{lang} {}: {difference}", case.label()));
            }
        }
        if case.name == "samples" {
            // The expected bytes say what the README's expected states say
            // (those are checked by examples/events/fold.py).
            let semantic: BTreeMap<&String, Value> = expected
                .state
                .iter()
                .map(|(k, v)| (k, serde_json::from_str(v.get()).unwrap()))
                .collect();
            let readme = events_file(&format!("{}.expected.json", case.topic));
            assert_eq!(
                serde_json::to_value(&semantic).unwrap(),
                read_json(&readme),
                "{} disagrees with {}",
                path.display(),
                readme.display()
            );
        }
        assert!(
            expected.refused.len() < case.payloads().len() && !expected.state.is_empty(),
            "{}: a case should mix applied and refused events",
            case.label()
        );
    }
    assert!(
        report.is_empty(),
        "{} differences:\n{}",
        report.len(),
        report.join("\n")
    );
}

/// A batch stops at its first failing event: every language names that
/// event's index, keeps nothing of the batch, and the events before it then
/// apply on their own. A whole file in one batch gives what it gives event
/// by event.
#[test]
fn a_batch_fails_at_its_failing_event_and_leaves_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let host = WasmHost::new(&dir.path().join("cache"), Limits::default()).unwrap();
    let placed = |id: &str, customer: &str, amount: &str| {
        format!(
            r#"{{"type": "OrderPlaced", "order_id": "{id}", "customer": "{customer}", "amount_cents": {amount}}}"#
        )
        .into_bytes()
    };
    let payloads = [
        placed("1", "ann", "5"),
        placed("2", "ann", "6"),
        b"{\"type\": \"OrderShipped\"}".to_vec(),
        placed("3", "bea", "-7"),
        placed("4", "bea", "8"),
    ];
    let events: Vec<Event> = (0u64..)
        .zip(&payloads)
        .map(|(offset, payload)| event("orders", offset, Some(payload.clone())))
        .collect();
    let samples = &Case::all()[0];
    let sample_events: Vec<Event> = (0u64..)
        .zip(samples.payloads())
        .map(|(offset, payload)| event("orders", offset, Some(payload)))
        .collect();
    let mut states = Vec::new();
    for (lang, _) in LANGUAGES {
        let mut driver = Driver::new(&host, dir.path(), lang, "order-totals");
        let (index, message) = driver.apply(&events).unwrap_err();
        assert_eq!(index, 3, "{lang}: {message}");
        assert!(
            driver.state().is_empty(),
            "{lang}: the failed batch left state"
        );
        driver.apply(&events[..3]).unwrap();
        assert_eq!(driver.state().len(), 3, "{lang}");
        driver.apply(&sample_events).unwrap();
        states.push((lang, driver.state()));
    }
    for (lang, state) in &states[1..] {
        assert!(state == &states[0].1, "{lang}: state differs from rust's");
    }
}

/// What one language's modules served.
struct Served {
    lang: &'static str,
    listing: Value,
    /// `"<projection> <key>"` -> the bytes served for it.
    state: BTreeMap<String, Vec<u8>>,
    /// Status and body of each query.
    answers: Vec<(u16, Vec<u8>)>,
}

/// Through the real server: every language's modules load with the same
/// descriptor, log through the host, fold the published samples and answer
/// over HTTP with the same bytes.
#[test]
fn every_language_serves_the_samples_alike_over_http() {
    let mut seen: Vec<Served> = Vec::new();
    for (lang, _) in LANGUAGES {
        let server = Server::with_modules(&[
            &module(lang, "order-totals"),
            &module(lang, "account-balances"),
        ])
        .start();
        for (topic, key) in [("orders", "customer"), ("accounts", "account")] {
            let path = events_file(&format!("{topic}.jsonl"));
            let output =
                server.cli(&["publish", topic, path.to_str().unwrap(), "--key-field", key]);
            assert!(output.status.success(), "{lang}: {}", stderr(&output));
        }
        let mut listing = Vec::new();
        let mut state = BTreeMap::new();
        let mut answers = Vec::new();
        for (name, _) in PROJECTIONS {
            let info = server.wait_caught_up(name);
            assert_eq!(info["status"]["state"], "running", "{lang} {name}: {info}");
            listing.push(json!({
                "name": info["name"],
                "state_version": info["state_version"],
                "sources": info["sources"],
                "queries": info["queries"],
            }));
            let keys = server.state(name);
            for key in keys.as_object().unwrap().keys() {
                let reply = server.get(&format!("/v1/projections/{name}/state/{}", percent(key)));
                assert_eq!(reply.status, 200, "{lang} {name} {key}: {}", reply.body);
                state.insert(format!("{name} {key}"), reply.raw);
            }
            let case = Case::all()
                .into_iter()
                .find(|c| c.projection == name && c.name == "samples")
                .unwrap();
            for q in case.queries() {
                let reply = server.post(
                    &format!("/v1/projections/{name}/query/{}", q.query),
                    "application/json",
                    q.args.as_bytes(),
                );
                answers.push((reply.status, reply.raw));
            }
        }
        let log = server.log();
        assert!(
            log.contains("ignoring cancel of unknown order"),
            "{lang}: no log line from order-totals reached the host's log:\n{log}"
        );
        seen.push(Served {
            lang,
            listing: Value::Array(listing),
            state,
            answers,
        });
    }
    let Served {
        listing,
        state,
        answers,
        ..
    } = &seen[0];
    assert!(
        answers.iter().any(|(status, _)| *status == 404),
        "an unknown query is a 404"
    );
    assert!(
        answers.iter().any(|(status, _)| *status == 400),
        "bad arguments are a 400"
    );
    for Served {
        lang,
        listing: other_listing,
        state: other_state,
        answers: other_answers,
    } in &seen[1..]
    {
        assert_eq!(other_listing, listing, "{lang}: descriptor");
        assert!(
            other_state == state,
            "{lang}: state over HTTP differs from rust's"
        );
        for (i, (got, want)) in other_answers.iter().zip(answers).enumerate() {
            assert_eq!(got.0, want.0, "{lang}: status of answer {i}");
            // Error bodies carry each module's own message.
            if want.0 == 200 {
                assert_eq!(text(&got.1), text(&want.1), "{lang}: answer {i}");
            }
        }
    }
}
