//! The shared snapshot store (`--snapshot-store`): snapshots are uploaded
//! as they are written, with the data folder's retention, and a process
//! that starts with an empty data folder (a new machine) downloads the
//! newest one and replays only the tail of its source. Tested against a
//! shared folder and against a real S3 API (moto's server over HTTP).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::Server;
use common::orders::{fold_order_totals, order_events, publish_orders};
use common::s3::S3Server;
use projector_test_guests::ORDER_TOTALS;
use serde_json::Value;

/// A snapshot after every 300 events, none by time; two kept.
const SNAPSHOTS: &str = "[snapshots]\nevery_events = 300\nevery_seconds = 3600\nkeep = 2\n";

/// Where the store is and what the process needs to reach it.
struct Store<'a> {
    url: String,
    env: Vec<(&'static str, String)>,
    /// The snapshot file names the store holds for the projection.
    files: &'a dyn Fn() -> Vec<String>,
}

fn server(store: &Store, data_from: Option<&Path>) -> Server {
    let mut server = Server::with_modules(&[ORDER_TOTALS]).args(&[
        "--sync-interval-ms",
        "10",
        "--snapshot-store",
        &store.url,
    ]);
    for (key, value) in &store.env {
        server = server.env(key, value);
    }
    server.add_file("order_totals.toml", SNAPSHOTS.as_bytes());
    if let Some(old) = data_from {
        // The new machine has the source (the embedded log stands for a
        // Kafka topic here) and nothing else: no state, no snapshot.
        std::fs::create_dir_all(server.data_dir()).unwrap();
        std::fs::copy(old.join("log.redb"), server.data_dir().join("log.redb")).unwrap();
    }
    server.start()
}

fn wait_for_store(store: &Store, want: &[String], log: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut files = (store.files)();
        files.sort();
        if files == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the store holds {files:?}, expected {want:?}\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `.snap` files under a projection's folder of a folder store.
fn folder_files(projection: &Path) -> Vec<String> {
    let Ok(hashes) = std::fs::read_dir(projection) else {
        return Vec::new();
    };
    hashes
        .flatten()
        .flat_map(|hash| std::fs::read_dir(hash.path()).unwrap().flatten())
        .map(|f| file_name(&f.path()))
        .filter(|name| name.ends_with(".snap"))
        .collect()
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_str().unwrap().to_owned()
}

/// Three snapshots on machine A (the store keeps the newest two), a tail
/// after them, then machine B with an empty data folder: it downloads the
/// newest snapshot, replays the tail only, and reaches the same state.
fn a_new_machine_restores_from_the_store(store: &Store) {
    let mut a = server(store, None);
    let mut events = Vec::new();
    let mut taken = Vec::new();
    for round in 0..3 {
        let batch = order_events(round * 300..(round + 1) * 300);
        publish_orders(&a, &batch);
        events.extend(batch);
        a.wait_applied("order-totals", events.len() as u64);
        taken.push(file_name(
            &a.wait_for_snapshot("order-totals", events.len()),
        ));
        let mut want = taken[taken.len().saturating_sub(2)..].to_vec();
        want.sort();
        wait_for_store(store, &want, || a.log());
    }
    let tail = order_events(900..950);
    publish_orders(&a, &tail);
    events.extend(tail);
    a.wait_applied("order-totals", events.len() as u64);
    a.stop();

    let b = server(store, Some(&a.data_dir()));
    let info = b.wait_applied("order-totals", events.len() as u64);
    assert_eq!(b.state("order-totals"), fold_order_totals(&events));
    let log = b.log();
    assert!(
        log.contains("downloaded a snapshot from the snapshot store"),
        "{log}"
    );
    assert!(
        log.contains("state restored from snapshot; replaying the tail")
            && log.contains("events_applied=900"),
        "B must start from the newest snapshot (900 events), not replay all:\n{log}"
    );
    let hash = info["hash"].as_str().unwrap();
    let downloaded = b
        .data_dir()
        .join("snapshots/order-totals")
        .join(hash)
        .join(&taken[2]);
    assert!(downloaded.is_file(), "{}", downloaded.display());
}

#[test]
fn a_shared_folder_store_restores_a_new_machine() {
    let shared = tempfile::tempdir().unwrap();
    a_new_machine_restores_from_the_store(&Store {
        url: shared.path().to_str().unwrap().to_owned(),
        env: Vec::new(),
        files: &|| folder_files(&shared.path().join("order-totals")),
    });
}

/// `projector snapshot create` (the admin route) uploads its snapshot too.
#[test]
fn a_snapshot_taken_on_request_is_uploaded() {
    let shared = tempfile::tempdir().unwrap();
    let store = Store {
        url: shared.path().to_str().unwrap().to_owned(),
        env: Vec::new(),
        files: &|| folder_files(&shared.path().join("order-totals")),
    };
    let server = server(&store, None);
    let events = order_events(0..10);
    publish_orders(&server, &events);
    server.wait_applied("order-totals", 10);
    let output = server.cli(&["snapshot", "create", "order-totals"]);
    assert!(output.status.success(), "{}", common::stderr(&output));
    let taken = file_name(&server.wait_for_snapshot("order-totals", 10));
    wait_for_store(&store, &[taken], || server.log());
}

#[test]
fn an_s3_store_restores_a_new_machine() {
    let s3 = S3Server::start();
    s3.create_bucket("projector-snapshots");
    let files = || -> Vec<String> {
        s3.keys("projector-snapshots", "team/order-totals/")
            .iter()
            .map(|key| key.rsplit('/').next().unwrap().to_owned())
            .collect()
    };
    a_new_machine_restores_from_the_store(&Store {
        url: "s3://projector-snapshots/team".into(),
        env: s3.env().into(),
        files: &files,
    });
}

/// A store that cannot be reached costs the uploads, never a snapshot:
/// the local snapshot is written, the failure is logged with the store's
/// name, and the projection goes on.
#[test]
fn an_unreachable_store_keeps_local_snapshots_and_says_why() {
    // Nothing listens there: bound, then closed.
    let port = common::free_port();
    let store = Store {
        url: "s3://nowhere/x".into(),
        env: S3Server::env_for(&format!("http://127.0.0.1:{port}")).into(),
        files: &Vec::new,
    };
    let server = server(&store, None);
    let events = order_events(0..300);
    publish_orders(&server, &events);
    server.wait_applied("order-totals", 300);
    let local = server.wait_for_snapshot("order-totals", 300);
    assert!(local.is_file());
    let deadline = Instant::now() + Duration::from_secs(120);
    while !server
        .log()
        .contains("the snapshot stays in the data folder")
    {
        assert!(Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(server.log().contains("s3://nowhere/x"), "{}", server.log());
    let info: Value = server.projection("order-totals");
    assert_eq!(info["status"]["state"], "running", "{info}");
}

#[test]
fn a_bad_store_url_is_refused_at_start_with_the_forms_read() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_projector"))
        .args(["run", "--snapshot-store", "ftp://host/x", "--data"])
        .arg(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("ftp://host/x") && stderr.contains("s3://bucket/prefix"),
        "{stderr}"
    );
}
