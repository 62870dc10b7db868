//! Writes the seed corpus under `fuzz/corpus/<target>/` from real data:
//! records as the embedded log encodes them, the sample event files,
//! snapshot files as the snapshot writer writes them (the encoders the
//! runtime uses, from projector-formats), and typical query strings.
//!
//! `cargo run --release --example seed` from `fuzz/` (an ordinary build,
//! without coverage instrumentation). Rewrites the seed files it names and
//! leaves other corpus files alone.

use std::path::Path;

use projector_formats::event::{NewRecord, Offsets};
use projector_formats::failure::{FailedEvent, FailureKind};
use projector_formats::record::encode_record;
use projector_formats::snapshot::{SnapshotMeta, format, write_file};
use serde_json::Value;

/// A fixed time stamp, so that the seeds are the same on every run.
const TIMESTAMP_MS: i64 = 1_700_000_000_000;

fn main() {
    let fuzz_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = fuzz_dir.join("corpus");
    let events = fuzz_dir.join("../examples/events");
    embedded_records(&corpus.join("embedded_record"));
    ingest(&corpus.join("ingest"), &events);
    snapshots(&corpus.join("snapshot"), &events);
    failure_records(&corpus.join("failure_record"));
    read_bodies(&corpus.join("read_body"));
    query_params(&corpus.join("query_params"), &events);
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).expect("corpus dir");
    std::fs::write(dir.join(name), bytes).expect("write a seed");
}

fn lines(events: &Path, file: &str) -> Vec<String> {
    std::fs::read_to_string(events.join(file))
        .expect("sample events")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// Records as the log encodes them when it appends them.
fn embedded_records(out: &Path) {
    let record =
        |key: Option<&[u8]>, payload: Option<&[u8]>, headers: &[(&str, &[u8])]| NewRecord {
            key: key.map(<[u8]>::to_vec),
            payload: payload.map(<[u8]>::to_vec),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
                .collect(),
        };
    let records = vec![
        record(
            Some(b"alice"),
            Some(br#"{"type":"OrderPlaced","order_id":"o-1001","customer":"alice","amount_cents":2599}"#),
            &[],
        ),
        record(None, Some(br#"{"type":"Deposited","account":"acc-100","amount_cents":50000}"#), &[]),
        record(Some(b"k1"), None, &[]),
        record(None, Some(b""), &[]),
        record(
            Some(&[0xfe, 0x00, 0xff]),
            Some(&[0x00, 0x01, 0x80, 0xff]),
            &[("trace-id", b"abc123"), ("bin", &[0xff, 0x00])],
        ),
        record(Some(b""), Some(b"{}"), &[("", b"")]),
    ];
    let names = [
        "keyed-json",
        "keyless-json",
        "tombstone",
        "empty-payload",
        "binary-with-headers",
        "empty-key-and-header",
    ];
    for (name, record) in names.iter().zip(&records) {
        let mut bytes = Vec::new();
        encode_record(record, TIMESTAMP_MS, &mut bytes).expect("a record encodes");
        write(out, name, &bytes);
    }
}

/// Option byte of the ingest target: format (bits 0-1: auto, json, ndjson,
/// envelope), content type (bits 2-3: none, application/json, x-ndjson,
/// json with charset), key option (bits 4-5: none, key, key_field, both),
/// key field (bits 6-7: customer, account, order_id, id).
fn ingest_options(format: u8, content_type: u8, key: u8, field: u8) -> u8 {
    format | content_type << 2 | key << 4 | field << 6
}

fn ingest(out: &Path, events: &Path) {
    let orders = lines(events, "orders.jsonl");
    let accounts = lines(events, "accounts.jsonl");
    let seed = |name: &str, options: u8, body: &str| {
        let mut bytes = vec![options];
        bytes.extend_from_slice(body.as_bytes());
        write(out, name, &bytes);
    };
    let ndjson = |lines: &[String]| lines.join("\n") + "\n";
    let array = |lines: &[String]| format!("[{}]", lines.join(",\n"));
    let envelopes = |lines: &[String], field: &str| {
        lines
            .iter()
            .map(|line| {
                let value: Value = serde_json::from_str(line).expect("sample JSON");
                let key = value[field].clone();
                serde_json::json!({ "key": key, "payload": value, "headers": {"source": "seed"} })
                    .to_string()
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    // NDJSON, keyed by field, by content type and by `?format=`.
    seed(
        "orders-ndjson-auto-customer",
        ingest_options(0, 2, 2, 0),
        &ndjson(&orders),
    );
    seed(
        "accounts-ndjson-auto-account",
        ingest_options(0, 0, 2, 1),
        &ndjson(&accounts),
    );
    seed(
        "orders-ndjson-format-key",
        ingest_options(2, 1, 1, 0),
        &ndjson(&orders[..5]),
    );
    seed(
        "orders-ndjson-order-id",
        ingest_options(2, 0, 2, 2),
        &ndjson(&orders[..8]),
    );
    // One JSON value and JSON arrays.
    seed("orders-json-one", ingest_options(0, 1, 2, 0), &orders[0]);
    seed(
        "orders-json-array",
        ingest_options(0, 3, 2, 0),
        &array(&orders[..10]),
    );
    seed(
        "accounts-json-array-format",
        ingest_options(1, 0, 0, 0),
        &array(&accounts),
    );
    // Envelopes with keys, headers and tombstones.
    let mut env = envelopes(&accounts[..6], "account");
    env.push_str(
        "\n{\"key\":\"acc-100\",\"payload\":null}\n{\"payload\":{\"account\":\"acc-9\"}}\n",
    );
    seed("accounts-envelope", ingest_options(3, 0, 0, 0), &env);
    seed(
        "orders-envelope-key-field",
        ingest_options(3, 2, 2, 0),
        &envelopes(&orders[..6], "customer"),
    );
    // Refusals: a malformed line, conflicting keys, a blank body.
    seed(
        "orders-bad-line",
        ingest_options(2, 0, 0, 0),
        &format!("{}\n{{\"type\": oops}}\n", orders[0]),
    );
    seed("conflicting-keys", ingest_options(0, 0, 3, 3), "{\"id\":1}");
    seed("blank", ingest_options(0, 0, 0, 0), " \n\t\n");
}

/// A state file with `entries`, snapshotted by the real writer.
fn snapshot_of(
    label: &str,
    entries: &[(Vec<u8>, Vec<u8>)],
    events: u64,
    failed_events: Vec<FailedEvent>,
) -> Vec<u8> {
    let mut offsets = Offsets::default();
    offsets.set("orders", 0, events);
    offsets.set("orders", 2, events / 2);
    offsets.set("payments", 1, 3);
    let meta = SnapshotMeta {
        name: label.to_owned(),
        hash: "5f3c9a0d1e2b4c6a".to_owned(),
        state_version: 1,
        created_unix_ms: TIMESTAMP_MS as u64,
        events_applied: events,
        offsets,
        key_count: entries.len() as u64,
        failed_events,
    };
    let header = format::encode_header(&meta);
    let entries = entries
        .iter()
        .map(|entry| Ok::<_, projector_formats::snapshot::SnapshotError>(entry.clone()));
    let path = Path::new(label);
    write_file(Vec::new(), &header, entries, path, path, &|| false).expect("snapshot")
}

fn unsealed(file: &[u8]) -> Vec<u8> {
    let meta_len = u32::from_le_bytes(file[8..12].try_into().expect("4 bytes")) as usize;
    let header_end = 12 + meta_len;
    let mut out = file[..header_end].to_vec();
    out.extend_from_slice(&file[header_end + 32..file.len() - 40]);
    out
}

fn snapshots(out: &Path, events: &Path) {
    // The order-totals fold of the sample orders, as key/value state.
    let mut totals = std::collections::BTreeMap::<String, i64>::new();
    for line in lines(events, "orders.jsonl") {
        let value: Value = serde_json::from_str(&line).expect("sample JSON");
        if let (Some(customer), Some(amount)) =
            (value["customer"].as_str(), value["amount_cents"].as_i64())
        {
            *totals.entry(format!("customer/{customer}")).or_default() += amount;
        }
    }
    let orders: Vec<_> = totals
        .iter()
        .map(|(k, v)| {
            (
                k.clone().into_bytes(),
                format!("{{\"total_cents\":{v}}}").into_bytes(),
            )
        })
        .collect();
    let binary: Vec<_> = (0u8..40)
        .map(|i| (vec![i, 0xff - i], vec![i; usize::from(i % 7)]))
        .collect();
    // More than one chunk (the writer emits 10,000 entries per chunk).
    let many: Vec<_> = (0..10_050)
        .map(|i| (format!("k{i:05}").into_bytes(), Vec::new()))
        .collect();
    // Dead letters and parked events travel in the metadata.
    let failed =
        |id: u64, kind: FailureKind, key: Option<&[u8]>, payload: Option<&[u8]>| FailedEvent {
            id,
            kind,
            source: "orders".to_owned(),
            partition: 0,
            offset: 40 + id,
            key: key.map(<[u8]>::to_vec),
            payload: payload.map(<[u8]>::to_vec),
            timestamp_ms: TIMESTAMP_MS,
            headers: vec![("trace-id".to_owned(), b"abc"[..].to_vec().into())],
            error: "projection error: amount_cents is not a number".to_owned(),
            module_hash: "5f3c9a0d1e2b4c6a".to_owned(),
            module_version: "1.0.0".to_owned(),
            failed_at: 1_700_000_000,
            attempts: 2,
            reason: None,
        };
    let failures = vec![
        failed(
            1,
            FailureKind::DeadLetter,
            Some(b"alice"),
            Some(br#"{"amount_cents":"lots"}"#),
        ),
        failed(2, FailureKind::Parked, Some(&[0xff, 0x00]), None),
    ];
    for (label, entries, events, failed_events) in [
        ("order-totals", &orders, 52, Vec::new()),
        ("empty", &Vec::new(), 0, Vec::new()),
        ("binary", &binary, 40, Vec::new()),
        ("two-chunks", &many, 10_050, Vec::new()),
        ("with-failures", &orders, 52, failures),
    ] {
        let file = snapshot_of(label, entries, events, failed_events);
        let mut raw = vec![0u8];
        raw.extend_from_slice(&file);
        write(out, &format!("{label}.snap"), &raw);
        let mut open = vec![1u8];
        open.extend_from_slice(&unsealed(&file));
        write(out, &format!("{label}.unsealed"), &open);
    }
}

/// Failure records as a projection's state file stores them.
fn failure_records(out: &Path) {
    let record =
        |id: u64, kind: FailureKind, key: Option<&[u8]>, payload: Option<&[u8]>| FailedEvent {
            id,
            kind,
            source: "orders".to_owned(),
            partition: 1,
            offset: 100 + id,
            key: key.map(<[u8]>::to_vec),
            payload: payload.map(<[u8]>::to_vec),
            timestamp_ms: TIMESTAMP_MS,
            headers: Vec::new(),
            error: "projection error: amount_cents is not a number".to_owned(),
            module_hash: "5f3c9a0d1e2b4c6a".to_owned(),
            module_version: "1.0.0".to_owned(),
            failed_at: 1_700_000_000,
            attempts: 1,
            reason: None,
        };
    let mut skipped_by_operator = record(
        1,
        FailureKind::Skipped,
        Some(b"alice"),
        Some(br#"{"amount_cents":"lots"}"#),
    );
    skipped_by_operator.reason = Some("bad data from the importer".to_owned());
    let mut dead_letter = record(2, FailureKind::DeadLetter, None, Some(b"{}"));
    dead_letter.headers = vec![
        ("trace-id".to_owned(), b"abc"[..].to_vec().into()),
        (String::new(), vec![0xff, 0].into()),
    ];
    dead_letter.attempts = 3;
    let parked_tombstone = record(3, FailureKind::Parked, Some(&[0xff, 0x00]), None);
    for (name, record) in [
        ("skipped-with-reason", skipped_by_operator),
        ("dead-letter-with-headers", dead_letter),
        ("parked-tombstone", parked_tombstone),
    ] {
        write(out, name, &record.encode());
    }
}

/// Bodies of `POST /v1/read`, as docs/consistent-reads.md writes them.
fn read_bodies(out: &Path) {
    for (name, body) in [
        (
            "key-and-prefix",
            r#"{"reads": [{"projection": "order-totals", "key": "customer/alice"}, {"projection": "account-balances", "prefix": "account/", "limit": 10}]}"#,
        ),
        (
            "query-with-args",
            r#"{"reads": [{"projection": "order-totals", "query": "top", "args": {"n": 3}}], "wait_ms": 2000}"#,
        ),
        (
            "min-offsets-spec",
            r#"{"reads": [{"projection": "order-totals", "key": "customer/bob"}], "min_offsets": "orders:0=12,orders:1=7", "wait_ms": 500}"#,
        ),
        (
            "min-offsets-json",
            r#"{"reads": [{"projection": "order-totals", "prefix": "", "start_after": "customer/a"}], "min_offsets": {"orders": {"0": 12}}}"#,
        ),
        (
            "two-kinds",
            r#"{"reads": [{"projection": "order-totals", "key": "k", "query": "q"}]}"#,
        ),
        ("unknown-field", r#"{"reads": [], "as_of": "orders:0=1"}"#),
    ] {
        write(out, name, body.as_bytes());
    }
}

fn query_params(out: &Path, events: &Path) {
    // Route byte: 0 scan, 1 key lookup, 2 custom query, 3 append; bits 2-3
    // the append's content type (none, json, ndjson, text/plain). After the
    // query, a newline and the key (lookups) or the body (appends).
    let seed = |name: &str, route: u8, query: &str, body: Option<&str>| {
        let mut bytes = vec![route];
        bytes.extend_from_slice(query.as_bytes());
        if let Some(body) = body {
            bytes.push(b'\n');
            bytes.extend_from_slice(body.as_bytes());
        }
        write(out, name, &bytes);
    };
    let orders = lines(events, "orders.jsonl");
    seed(
        "scan-all",
        0,
        "prefix=customer%2F&start_after=customer%2Falice&limit=10&version=serving",
        None,
    );
    seed("scan-limit-bad", 0, "limit=-1", None);
    seed("scan-limit-huge", 0, "limit=99999999999999999999999", None);
    seed("scan-repeated", 0, "prefix=a&prefix=b", None);
    seed(
        "scan-plus-escapes",
        0,
        "prefix=a+b%20c%ff&start_after=",
        None,
    );
    seed(
        "key-building",
        1,
        "version=building",
        Some("customer%2Falice"),
    );
    seed(
        "key-hash-prefix",
        1,
        "version=5f3c9a",
        Some("customer/alice"),
    );
    seed("key-binary", 1, "", Some("%FF%00%fe/x"));
    seed("key-bad-escape", 1, "version=serving", Some("customer%2"));
    seed("query-version", 2, "version=serving&extra=1", None);
    seed(
        "append-ndjson-key-field",
        3 | 2 << 2,
        "key_field=customer&format=ndjson",
        Some(&(orders[..3].join("\n") + "\n")),
    );
    seed(
        "append-json-array",
        3 | 1 << 2,
        "key=k1&format=json",
        Some(&format!("[{}]", orders[..2].join(","))),
    );
    seed(
        "append-envelope",
        3,
        "format=envelope",
        Some("{\"key\":\"k\",\"payload\":null,\"headers\":{\"h\":\"v\"}}"),
    );
    seed("append-bad-format", 3, "format=xml", Some("{}"));
    seed(
        "append-both-keys",
        3 | 3 << 2,
        "key=a&key_field=b",
        Some("{}"),
    );
}
