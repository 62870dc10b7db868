//! Damaged files at start-up: a projection's state file (garbage in its
//! header or its pages, cut short, emptied), its snapshots, and the
//! embedded log itself. Projector names the file, sets a damaged state file
//! aside, restores the newest valid snapshot and replays the tail (or
//! rebuilds from the log), never panics, and loses nothing.

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Server;
use common::orders::{
    fold_order_totals, order_events as orders, publish_orders as publish, state_diff,
};
use projector::event::Offsets;
use projector::source::{EmbeddedLog, LogError, Source, SourceError, TopicBinding};
use projector::store::StateStore;
use projector_test_guests::ORDER_TOTALS;
use serde_json::Value;

/// A snapshot after every 300 events, none by time.
const SNAPSHOTS_EVERY_300: &str =
    "[snapshots]\nevery_events = 300\nevery_seconds = 3600\nkeep = 5\n";
const NO_SNAPSHOTS: &str = "[snapshots]\nenabled = false\n";
const ROUND: usize = 300;
const TAIL: usize = 50;

fn start(sidecar: &str) -> Server {
    let server = Server::with_modules(&[ORDER_TOTALS]);
    server.add_file("order_totals.toml", sidecar.as_bytes());
    server.args(&["--sync-interval-ms", "10"]).start()
}

/// A stopped server whose projection applied `rounds` rounds of 300
/// events (a snapshot after each when snapshots are on) and a tail of 50
/// after the last snapshot.
struct Stopped {
    server: Server,
    events: Vec<Value>,
    /// Oldest first.
    snapshots: Vec<PathBuf>,
    state_file: PathBuf,
}

fn run_and_stop(sidecar: &str, rounds: usize) -> Stopped {
    let mut server = start(sidecar);
    let mut events = Vec::new();
    let mut snapshots = Vec::new();
    for round in 0..rounds {
        let batch = orders(round * ROUND..(round + 1) * ROUND);
        publish(&server, &batch);
        events.extend(batch);
        server.wait_applied("order-totals", events.len() as u64);
        if sidecar == SNAPSHOTS_EVERY_300 {
            snapshots.push(server.wait_for_snapshot("order-totals", events.len()));
        }
    }
    let tail = orders(rounds * ROUND..rounds * ROUND + TAIL);
    publish(&server, &tail);
    events.extend(tail);
    let info = server.wait_applied("order-totals", events.len() as u64);
    let state_file = server
        .data_dir()
        .join("projections/order-totals")
        .join(format!("{}.redb", info["hash"].as_str().unwrap()));
    assert_eq!(server.state("order-totals"), fold_order_totals(&events));
    server.stop();
    assert!(state_file.is_file());
    Stopped {
        server,
        events,
        snapshots,
        state_file,
    }
}

#[derive(Debug, Clone, Copy)]
enum Damage {
    /// Garbage over the first 4 KiB (redb's header and commit slots).
    Header,
    /// Garbage over every page after the first 4 KiB.
    Pages,
    /// Cut to half its length.
    Truncated,
    /// Zero bytes long.
    Empty,
}

fn garbage(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn damage(path: &Path, how: Damage) {
    let len = std::fs::metadata(path).unwrap().len();
    let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    match how {
        Damage::Header => {
            file.write_all(&garbage(4096.min(len as usize), 1)).unwrap();
        }
        Damage::Pages => {
            file.seek(SeekFrom::Start(4096)).unwrap();
            file.write_all(&garbage(len as usize - 4096, 2)).unwrap();
        }
        Damage::Truncated => file.set_len(len / 2).unwrap(),
        Damage::Empty => file.set_len(0).unwrap(),
    }
    file.sync_all().unwrap();
}

/// Damages a snapshot file: garbage in the middle of its compressed body.
fn damage_snapshot(path: &Path) {
    let len = std::fs::metadata(path).unwrap().len();
    let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.seek(SeekFrom::Start(len / 2)).unwrap();
    file.write_all(&garbage(16, 3)).unwrap();
}

/// The files set aside next to `state_file` (`<hash>.corrupt-<time>`).
fn set_aside(state_file: &Path) -> Vec<PathBuf> {
    let stem = state_file.file_stem().unwrap().to_str().unwrap().to_owned();
    std::fs::read_dir(state_file.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|f| f.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(&format!("{stem}.corrupt-"))
        })
        .collect()
}

/// After a restart: the projection runs and serves exactly the fold of
/// every event, having applied each once.
fn check_recovered(server: &Server, events: &[Value]) {
    let info = server.wait_caught_up("order-totals");
    assert_eq!(
        info["status"]["state"],
        "running",
        "{info}\n{}",
        server.log()
    );
    let state = server.state("order-totals");
    let expected = fold_order_totals(events);
    assert!(state == expected, "{}", state_diff(&state, &expected));
    assert_eq!(info["events_applied"], events.len() as u64, "{info}");
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

/// The log says `file` was set aside, and the aside copy exists.
fn check_set_aside(server: &Server, file: &Path) {
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("moving it aside and rebuilding"))
        .unwrap_or_else(|| panic!("no set-aside message in the log:\n{log}"));
    assert!(
        line.contains(&format!("file={}", file.display())),
        "the message names the file: {line}"
    );
    assert!(line.contains("state file cannot be opened ("), "{line}");
    let aside = set_aside(file);
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(
        line.contains(&format!("moved_to={}", aside[0].display())),
        "{line}"
    );
}

/// The log says the state came back from `snapshot` at `events_applied`.
fn check_restored_from(server: &Server, snapshot: &Path, events_applied: usize) {
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("state restored from snapshot; replaying the tail"))
        .unwrap_or_else(|| panic!("no restore message in the log:\n{log}"));
    assert!(
        line.contains(&format!("snapshot={}", snapshot.display())),
        "{line}"
    );
    assert!(
        line.contains(&format!("events_applied={events_applied}")),
        "{line}"
    );
}

/// The log says no snapshot could be used and the state is rebuilt.
fn check_rebuilt_from_the_log(server: &Server, file: &Path) {
    let log = server.log();
    assert!(!log.contains("state restored from snapshot"), "{log}");
    let line = log
        .lines()
        .find(|l| l.contains("no valid snapshot of this version: rebuilding the state from the start of its sources"))
        .unwrap_or_else(|| panic!("no rebuild message in the log:\n{log}"));
    assert!(line.contains(&format!("file={}", file.display())), "{line}");
}

fn snapshot_restores_after(how: Damage) {
    let Stopped {
        server,
        events,
        snapshots,
        state_file,
    } = run_and_stop(SNAPSHOTS_EVERY_300, 1);
    damage(&state_file, how);
    let server = server.start();
    check_set_aside(&server, &state_file);
    check_restored_from(&server, &snapshots[0], ROUND);
    check_recovered(&server, &events);
}

#[test]
fn garbage_in_the_header_restores_from_the_snapshot() {
    snapshot_restores_after(Damage::Header);
}

#[test]
fn garbage_in_the_pages_restores_from_the_snapshot() {
    snapshot_restores_after(Damage::Pages);
}

thread_local! {
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `work` catching a panic, without its report on stderr (other
/// threads' panics are reported as usual).
fn quietly<T>(work: impl FnOnce() -> T) -> std::thread::Result<T> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(std::cell::Cell::get) {
                report(info);
            }
        }));
    });
    QUIET.with(|q| q.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
    QUIET.with(|q| q.set(false));
    result
}

/// A 4 KiB page of the state file `file` whose damage redb does not notice
/// when it opens the file, only when the state is read (it then panics):
/// found by trying each page on a copy, in this process.
fn page_damaged_only_when_read(file: &Path) -> u64 {
    // A file not marked closed cleanly is verified whole when opened, and
    // every damaged copy would fail to open: open and close it once first
    // (the server's stop closes it, unless a read still held it as the
    // process ended; CI saw that once).
    drop(StateStore::open(file).unwrap());
    let original = std::fs::read(file).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for page in 1..original.len() / 4096 {
        let copy = dir.path().join(format!("{page}.redb"));
        let mut bytes = original.clone();
        bytes[page * 4096..(page + 1) * 4096].copy_from_slice(&garbage(4096, page as u64));
        std::fs::write(&copy, &bytes).unwrap();
        let opened = std::sync::atomic::AtomicBool::new(false);
        let read = quietly(|| {
            let Ok(store) = StateStore::open(&copy) else {
                return Ok(());
            };
            opened.store(true, std::sync::atomic::Ordering::Relaxed);
            let reader = store.reader().map_err(drop)?;
            reader.offsets().map_err(drop)?;
            reader
                .iter_all()
                .map_err(drop)?
                .try_for_each(|e| e.map(drop).map_err(drop))
        });
        if opened.into_inner() && !matches!(read, Ok(Ok(()))) {
            return page as u64;
        }
    }
    panic!("no page of {} is damaged only when read", file.display());
}

/// One page of live state damaged: redb opens the file without noticing
/// and would panic on the first read of that page (in the worker, or a
/// query). The integrity check at start finds it.
#[test]
fn a_damaged_page_found_only_by_reading_restores_from_the_snapshot() {
    let Stopped {
        server,
        events,
        snapshots,
        state_file,
    } = run_and_stop(SNAPSHOTS_EVERY_300, 1);
    let page = page_damaged_only_when_read(&state_file);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(&state_file)
        .unwrap();
    file.seek(SeekFrom::Start(page * 4096)).unwrap();
    file.write_all(&garbage(4096, page)).unwrap();
    drop(file);
    let server = server.start();
    check_set_aside(&server, &state_file);
    let log = server.log();
    assert!(log.contains("failed its integrity check: "), "{log}");
    check_restored_from(&server, &snapshots[0], ROUND);
    check_recovered(&server, &events);
}

#[test]
fn a_truncated_state_file_restores_from_the_snapshot() {
    snapshot_restores_after(Damage::Truncated);
}

#[test]
fn an_empty_state_file_restores_from_the_snapshot() {
    snapshot_restores_after(Damage::Empty);
}

/// Without snapshots the damaged file is set aside and the state rebuilt
/// from the log, which the embedded log keeps whole: nothing is lost.
#[test]
fn without_a_snapshot_the_state_is_rebuilt_from_the_log() {
    let Stopped {
        server,
        events,
        state_file,
        ..
    } = run_and_stop(NO_SNAPSHOTS, 1);
    assert!(!server.data_dir().join("snapshots/order-totals").exists());
    damage(&state_file, Damage::Header);
    let server = server.start();
    check_set_aside(&server, &state_file);
    check_rebuilt_from_the_log(&server, &state_file);
    check_recovered(&server, &events);
}

/// The newest snapshot is damaged too: it is skipped with a message naming
/// it, and the older one is restored (then the longer tail replayed).
#[test]
fn a_damaged_newest_snapshot_falls_back_to_the_older_one() {
    let Stopped {
        server,
        events,
        snapshots,
        state_file,
    } = run_and_stop(SNAPSHOTS_EVERY_300, 2);
    damage(&state_file, Damage::Header);
    damage_snapshot(&snapshots[1]);
    let server = server.start();
    check_set_aside(&server, &state_file);
    let log = server.log();
    let skipped = log
        .lines()
        .find(|l| l.contains("skipping snapshot that failed verification"))
        .unwrap_or_else(|| panic!("no skip message:\n{log}"));
    assert!(
        skipped.contains(&format!("file={}", snapshots[1].display())),
        "{skipped}"
    );
    assert!(skipped.contains("is corrupt"), "{skipped}");
    check_restored_from(&server, &snapshots[0], ROUND);
    check_recovered(&server, &events);
}

/// Every snapshot is damaged: each is skipped, and the state is rebuilt
/// from the log.
#[test]
fn with_every_snapshot_damaged_the_state_is_rebuilt_from_the_log() {
    let Stopped {
        server,
        events,
        snapshots,
        state_file,
    } = run_and_stop(SNAPSHOTS_EVERY_300, 2);
    damage(&state_file, Damage::Truncated);
    for snapshot in &snapshots {
        damage_snapshot(snapshot);
    }
    let server = server.start();
    check_set_aside(&server, &state_file);
    let log = server.log();
    for snapshot in &snapshots {
        assert!(
            log.lines()
                .any(|l| l.contains("skipping snapshot that failed verification")
                    && l.contains(&format!("file={}", snapshot.display()))),
            "{} not skipped:\n{log}",
            snapshot.display()
        );
    }
    check_rebuilt_from_the_log(&server, &state_file);
    check_recovered(&server, &events);
}

fn damaged_log_stops_the_start(how: Damage) {
    let Stopped { mut server, .. } = run_and_stop(NO_SNAPSHOTS, 1);
    let log_file = server.data_dir().join("log.redb");
    damage(&log_file, how);
    let status = server.run_to_exit();
    let log = server.log();
    assert_eq!(status.code(), Some(2), "{status}:\n{log}");
    assert!(!log.contains("panicked"), "{log}");
    let message = format!(
        "error: the embedded log at {} could not be opened: ",
        log_file.display()
    );
    assert!(log.contains(&message), "expected {message:?} in:\n{log}");
}

/// A page of the log file whose damage opening the log does not notice,
/// only reading its records: redb panics there (or, guarded, the read fails
/// as damaged). Found by trying each page on a copy, in this process.
fn log_page_damaged_only_when_read(file: &Path) -> u64 {
    let original = std::fs::read(file).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for page in 1..original.len() / 4096 {
        let copy = dir.path().join(format!("{page}.redb"));
        let mut bytes = original.clone();
        bytes[page * 4096..(page + 1) * 4096].copy_from_slice(&garbage(4096, page as u64));
        std::fs::write(&copy, &bytes).unwrap();
        let opened = std::sync::atomic::AtomicBool::new(false);
        let read = quietly(|| {
            let Ok(log) = EmbeddedLog::open(&copy, 3) else {
                return false;
            };
            opened.store(true, std::sync::atomic::Ordering::Relaxed);
            let binding = TopicBinding {
                logical: "orders".into(),
                physical: "orders".into(),
            };
            let mut subscription = log
                .subscribe(
                    "probe",
                    &[binding],
                    projector::source::Partitions::All,
                    &Offsets::default(),
                )
                .unwrap();
            let damaged = loop {
                let mut out = Vec::new();
                match subscription.poll_batch(1000, Duration::ZERO, &mut out) {
                    Ok(()) if out.is_empty() => break false,
                    Ok(()) => {}
                    Err(e) => break matches!(e, SourceError::Log(LogError::Damaged { .. })),
                }
            };
            log.shutdown();
            damaged
        });
        if opened.into_inner() && !matches!(read, Ok(false)) {
            return page as u64;
        }
    }
    panic!("no page of {} is damaged only when read", file.display());
}

/// Damage in pages that opening the log does not read: the server starts;
/// a projection reading them reports the damaged file in its status,
/// instead of its worker (or the status request) panicking.
#[test]
fn a_log_page_damaged_only_when_read_shows_in_status_without_a_panic() {
    let Stopped { server, .. } = run_and_stop(NO_SNAPSHOTS, 1);
    let log_file = server.data_dir().join("log.redb");
    let page = log_page_damaged_only_when_read(&log_file);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(&log_file)
        .unwrap();
    file.seek(SeekFrom::Start(page * 4096)).unwrap();
    file.write_all(&garbage(4096, page)).unwrap();
    drop(file);
    // Without its state the projection reads the log from the start.
    std::fs::remove_dir_all(server.data_dir().join("projections")).unwrap();
    let server = server.start();
    let damaged = format!(
        "the embedded log at {} is damaged: reading it failed (",
        log_file.display()
    );
    // Depending on the page, opening the subscription (the partition heads)
    // or reading records meets it: the projection halts, or its source
    // shows as unavailable while the worker retries.
    let listing = server.wait_for_listing("the damage in status", |listing| {
        let info = &listing["projections"][0];
        info["status"]["state"] == "failed" || info["source"]["health"]["state"] == "unavailable"
    });
    let info = &listing["projections"][0];
    let error = if info["status"]["state"] == "failed" {
        let message = info["status"]["message"].as_str().unwrap();
        message
            .strip_prefix("cannot open the source: ")
            .unwrap_or_else(|| panic!("{message}"))
    } else {
        assert_eq!(info["status"]["state"], "running", "{info}");
        info["source"]["health"]["error"].as_str().unwrap()
    };
    assert!(error.starts_with(&damaged), "{error}");
    let log = server.log();
    assert!(!log.contains("panicked"), "{log}");
    assert!(log.lines().any(|l| l.contains(&damaged)), "{log}");
}

/// The log file is gone (or replaced by an older copy) while the state
/// remembers more events: the projection halts with a message naming the
/// log, the partition and both positions, instead of silently skipping the
/// new appends whose offsets it believes it has applied.
#[test]
fn a_log_behind_the_projection_halts_it_with_a_clear_message() {
    let Stopped { server, .. } = run_and_stop(NO_SNAPSHOTS, 1);
    let log_file = server.data_dir().join("log.redb");
    std::fs::remove_file(&log_file).unwrap();
    let server = server.start();
    publish(&server, &orders(10_000..10_010));
    let listing = server.wait_for_listing("order-totals to halt", |listing| {
        listing["projections"][0]["status"]["state"] != "starting"
    });
    let info = &listing["projections"][0];
    assert_eq!(info["status"]["state"], "failed", "{info}");
    let message = info["status"]["message"].as_str().unwrap();
    // The new appends may land before or after the worker opens the log:
    // it holds 0 to 10 events of a partition whose offset 100 was applied.
    let expected = format!(
        "cannot open the source: the embedded log at {} holds ",
        log_file.display()
    );
    let held: u64 = message
        .strip_prefix(&expected)
        .and_then(|rest| rest.split_once(" events in orders/"))
        .and_then(|(held, _)| held.parse().ok())
        .unwrap_or_else(|| panic!("{message}"));
    assert!(held <= 10, "{message}");
    assert!(
        message.contains("but projection \"order-totals\" has applied up to offset "),
        "{message}"
    );
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

#[test]
fn garbage_in_the_log_header_stops_the_start_with_the_file_named() {
    damaged_log_stops_the_start(Damage::Header);
}

#[test]
fn garbage_in_the_log_pages_stops_the_start_with_the_file_named() {
    damaged_log_stops_the_start(Damage::Pages);
}

#[test]
fn a_truncated_log_stops_the_start_with_the_file_named() {
    damaged_log_stops_the_start(Damage::Truncated);
}

#[test]
fn an_empty_log_stops_the_start_with_the_file_named() {
    damaged_log_stops_the_start(Damage::Empty);
}
