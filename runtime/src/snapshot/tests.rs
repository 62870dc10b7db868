//! End-to-end tests of the snapshot files: write, list, verify, restore,
//! and rejection of damaged files.

use std::path::{Path, PathBuf};

use super::*;
use crate::event::Offsets;
use crate::store::{CommitPositions, Entries, Overlay, StateStore};

const VERSION: ProjectionVersion<'static> = ProjectionVersion {
    name: "orders",
    hash: "ab12",
    state_version: 3,
};

fn entries(n: usize) -> Entries {
    (0..n)
        .map(|i| {
            let key = format!("order/o{i:06}").into_bytes();
            let value = format!(r#"{{"id":"o{i:06}","total":{},"items":{}}}"#, i * 7, i % 5);
            (key, value.into_bytes())
        })
        .collect()
}

fn offsets(events: u64) -> Offsets {
    let mut offsets = Offsets::default();
    offsets.set("orders", 0, events);
    offsets.set("orders", 3, 11);
    offsets.set("payments", 1, 2);
    offsets
}

/// A state file holding `data`, with offsets and events applied derived
/// from `events`.
fn store_with(path: &Path, data: &Entries, events: u64) -> StateStore {
    let store = StateStore::open(path).unwrap();
    let mut overlay = Overlay::default();
    for (key, value) in data {
        overlay.put(key.clone(), value.clone());
    }
    let offsets = offsets(events);
    store
        .commit(
            &overlay,
            CommitPositions {
                offsets: &offsets,
                events_applied: events,
            },
            true,
        )
        .unwrap();
    store
}

fn all_entries(store: &StateStore) -> Entries {
    store
        .reader()
        .unwrap()
        .iter_all()
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    snapshots: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_owned();
        Self {
            snapshots: root.join("snapshots"),
            root,
            _tmp: tmp,
        }
    }

    /// Writes a snapshot of `n` entries at `events` events applied.
    fn snapshot(&self, n: usize, events: u64) -> SnapshotInfo {
        let store = store_with(
            &self.root.join(format!("state-{events}.redb")),
            &entries(n),
            events,
        );
        write(
            &self.snapshots,
            VERSION,
            &store.reader().unwrap(),
            DEFAULT_KEEP,
        )
        .unwrap()
    }
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn round_trip_restores_state_offsets_and_events_exactly() {
    let fx = Fixture::new();
    // More than one chunk, plus an empty value and binary keys.
    let mut data = entries(25_001);
    data.push((vec![0xff, 0x00], Vec::new()));
    data.insert(0, (vec![0x00], vec![1, 2, 3]));
    let store = store_with(&fx.root.join("source.redb"), &data, 4242);
    let info = write(&fx.snapshots, VERSION, &store.reader().unwrap(), 3).unwrap();
    assert_eq!(
        info.path,
        fx.snapshots
            .join("orders/ab12")
            .join(format!("{}-4242.snap", info.meta.created_unix_ms))
    );
    assert_eq!(info.meta.key_count, data.len() as u64);
    assert_eq!(
        info.size_bytes,
        std::fs::metadata(&info.path).unwrap().len()
    );

    let target = fx.root.join("restored/state.redb");
    let restored_info = restore(&info.path, &target).unwrap();
    assert_eq!(restored_info, info);
    let restored = StateStore::open(&target).unwrap();
    assert_eq!(all_entries(&restored), all_entries(&store));
    let reader = restored.reader().unwrap();
    assert_eq!(reader.offsets().unwrap(), offsets(4242));
    assert_eq!(reader.events_applied().unwrap(), 4242);
    assert_eq!(info.meta.offsets, offsets(4242));
    assert_eq!(info.meta.state_version, 3);
}

#[test]
fn empty_state_round_trips() {
    let fx = Fixture::new();
    let info = fx.snapshot(0, 0);
    let target = fx.root.join("empty.redb");
    restore(&info.path, &target).unwrap();
    let restored = StateStore::open(&target).unwrap();
    assert!(all_entries(&restored).is_empty());
    assert_eq!(restored.reader().unwrap().offsets().unwrap(), offsets(0));
}

#[test]
fn flipped_body_byte_is_rejected_and_restore_leaves_nothing() {
    let fx = Fixture::new();
    let info = fx.snapshot(5_000, 10);
    let len = info.size_bytes as usize;
    flip_byte(&info.path, len / 2);

    let err = verify(&info.path).unwrap_err();
    assert!(
        matches!(&err, SnapshotError::ChecksumMismatch { part: "file", path } if *path == info.path),
        "{err}"
    );
    let target = fx.root.join("out/state.redb");
    let err = restore(&info.path, &target).unwrap_err();
    assert!(
        matches!(err, SnapshotError::ChecksumMismatch { .. }),
        "{err}"
    );
    assert!(!target.exists());
    // Not even the temp file is left.
    assert_eq!(std::fs::read_dir(fx.root.join("out")).unwrap().count(), 0);
}

#[test]
fn flipped_header_byte_is_rejected() {
    let fx = Fixture::new();
    let info = fx.snapshot(10, 10);
    // Inside the metadata map.
    flip_byte(&info.path, 20);
    let err = inspect(&info.path).unwrap_err();
    assert!(
        matches!(err, SnapshotError::ChecksumMismatch { part: "header", .. }),
        "{err}"
    );
    assert!(err.to_string().contains(&info.path.display().to_string()));
    assert!(restore(&info.path, &fx.root.join("t.redb")).is_err());
    assert!(!fx.root.join("t.redb").exists());
}

#[test]
fn truncated_files_are_rejected() {
    let fx = Fixture::new();
    let info = fx.snapshot(1_000, 10);
    let bytes = std::fs::read(&info.path).unwrap();
    for keep in [0, 4, 10, 40, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&info.path, &bytes[..keep]).unwrap();
        let err = verify(&info.path).unwrap_err();
        assert!(
            matches!(err, SnapshotError::Truncated { .. }),
            "cut to {keep}: {err}"
        );
    }
}

#[test]
fn wrong_magic_is_rejected() {
    let fx = Fixture::new();
    let info = fx.snapshot(10, 10);
    flip_byte(&info.path, 0);
    let err = inspect(&info.path).unwrap_err();
    assert!(matches!(err, SnapshotError::NotASnapshot { .. }), "{err}");
    std::fs::write(&info.path, b"{}").unwrap();
    let err = inspect(&info.path).unwrap_err();
    assert!(matches!(err, SnapshotError::NotASnapshot { .. }), "{err}");
}

#[test]
fn unknown_version_is_rejected() {
    let fx = Fixture::new();
    let info = fx.snapshot(10, 10);
    let mut bytes = std::fs::read(&info.path).unwrap();
    bytes[6..8].copy_from_slice(&2u16.to_le_bytes());
    std::fs::write(&info.path, bytes).unwrap();
    let err = inspect(&info.path).unwrap_err();
    assert!(
        matches!(
            err,
            SnapshotError::UnsupportedVersion {
                found: 2,
                supported: 1,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn huge_length_fields_are_rejected_without_allocating() {
    let fx = Fixture::new();
    let info = fx.snapshot(10, 10);
    let mut bytes = std::fs::read(&info.path).unwrap();
    bytes[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&info.path, bytes).unwrap();
    let err = inspect(&info.path).unwrap_err();
    assert!(matches!(err, SnapshotError::Malformed { .. }), "{err}");

    // A well-checksummed body claiming a 4 GiB value.
    let mut body = Vec::new();
    rmp::encode::write_array_len(&mut body, 1).unwrap();
    rmp::encode::write_array_len(&mut body, 2).unwrap();
    rmp::encode::write_bin(&mut body, b"k").unwrap();
    rmp::encode::write_bin_len(&mut body, u32::MAX).unwrap();
    body.extend_from_slice(b"short");
    let path = fx.root.join("crafted.snap");
    std::fs::write(&path, assemble(&info.meta, 1, &body)).unwrap();
    let err = restore(&path, &fx.root.join("t.redb")).unwrap_err();
    assert!(
        matches!(&err, SnapshotError::Malformed { detail, .. } if detail.contains("exceeds")),
        "{err}"
    );
    assert!(!fx.root.join("t.redb").exists());
}

#[test]
fn out_of_order_or_missing_entries_are_rejected() {
    let fx = Fixture::new();
    let info = fx.snapshot(10, 10);
    let mut body = Vec::new();
    rmp::encode::write_array_len(&mut body, 2).unwrap();
    for key in [b"b", b"a"] {
        rmp::encode::write_array_len(&mut body, 2).unwrap();
        rmp::encode::write_bin(&mut body, key).unwrap();
        rmp::encode::write_bin(&mut body, b"v").unwrap();
    }
    let path = fx.root.join("crafted.snap");
    std::fs::write(&path, assemble(&info.meta, 2, &body)).unwrap();
    let err = restore(&path, &fx.root.join("a.redb")).unwrap_err();
    assert!(matches!(err, SnapshotError::Malformed { .. }), "{err}");
    std::fs::write(&path, assemble(&info.meta, 3, &body)).unwrap();
    let err = restore(&path, &fx.root.join("b.redb")).unwrap_err();
    assert!(matches!(err, SnapshotError::Malformed { .. }), "{err}");
}

/// A snapshot file around `raw_body` with valid checksums.
fn assemble(meta: &SnapshotMeta, key_count: u64, raw_body: &[u8]) -> Vec<u8> {
    let meta = SnapshotMeta {
        key_count,
        ..meta.clone()
    };
    let mut file = format::encode_header(&meta);
    let body = zstd::encode_all(raw_body, 3).unwrap();
    file.extend_from_slice(&body);
    file.extend_from_slice(&(body.len() as u64).to_le_bytes());
    let sum = blake3::hash(&file);
    file.extend_from_slice(sum.as_bytes());
    file
}

#[test]
fn retention_keeps_the_newest_n() {
    let fx = Fixture::new();
    for events in 1..=5 {
        let store = store_with(
            &fx.root.join(format!("s{events}.redb")),
            &entries(3),
            events,
        );
        write(&fx.snapshots, VERSION, &store.reader().unwrap(), 3).unwrap();
    }
    let listed = list_version(&fx.snapshots, "orders", "ab12").unwrap();
    let events: Vec<u64> = listed
        .iter()
        .map(|l| match l {
            Listed::Valid(info) => info.meta.events_applied,
            Listed::Invalid { reason, .. } => panic!("{reason}"),
        })
        .collect();
    assert_eq!(events, [5, 4, 3]);
    assert!(matches!(
        write(
            &fx.snapshots,
            VERSION,
            &store_with(&fx.root.join("z.redb"), &entries(1), 9)
                .reader()
                .unwrap(),
            0
        ),
        Err(SnapshotError::InvalidRetention { keep: 0 })
    ));
}

#[test]
fn latest_valid_skips_a_corrupt_newest() {
    let fx = Fixture::new();
    let older = fx.snapshot(2_000, 10);
    let newer = fx.snapshot(2_000, 20);
    assert_eq!(
        latest_valid(&fx.snapshots, "orders", "ab12").unwrap(),
        Some(newer.clone())
    );
    flip_byte(&newer.path, newer.size_bytes as usize - 100);
    assert_eq!(
        latest_valid(&fx.snapshots, "orders", "ab12").unwrap(),
        Some(older.clone())
    );
    flip_byte(&older.path, 0);
    assert_eq!(latest_valid(&fx.snapshots, "orders", "ab12").unwrap(), None);
    assert_eq!(latest_valid(&fx.snapshots, "orders", "none").unwrap(), None);
}

#[test]
fn list_reports_unreadable_and_misplaced_files_without_failing() {
    let fx = Fixture::new();
    let good = fx.snapshot(10, 10);
    let folder = good.path.parent().unwrap();
    std::fs::write(folder.join("1-1.snap"), b"garbage").unwrap();
    let other = fx.snapshots.join("orders/cd34");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(&good.path, other.join("5-5.snap")).unwrap();

    let listed = list(&fx.snapshots, "orders").unwrap();
    assert_eq!(listed.len(), 3);
    assert!(matches!(&listed[0], Listed::Valid(info) if *info == good));
    let reasons: Vec<String> = listed[1..]
        .iter()
        .map(|l| match l {
            Listed::Invalid { reason, .. } => reason.to_string(),
            Listed::Valid(info) => panic!("{info:?} listed as valid"),
        })
        .collect();
    assert!(reasons[0].contains("orders/ab12"), "{}", reasons[0]);
    assert!(
        reasons[1].contains("not a Projector snapshot"),
        "{}",
        reasons[1]
    );
    assert!(list(&fx.snapshots, "missing").unwrap().is_empty());
}

#[test]
fn restore_refuses_to_overwrite() {
    let fx = Fixture::new();
    let info = fx.snapshot(10, 10);
    let target = fx.root.join("existing.redb");
    std::fs::write(&target, b"precious").unwrap();
    let err = restore(&info.path, &target).unwrap_err();
    assert!(matches!(err, SnapshotError::TargetExists { .. }), "{err}");
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");
}

#[test]
fn failed_event_records_survive_a_snapshot_and_restore() {
    use crate::store::{FailedEvent, FailureChanges, FailureKind};
    let fx = Fixture::new();
    let store = store_with(&fx.root.join("source.redb"), &entries(10), 12);
    let record = |id: u64, kind| FailedEvent {
        id,
        kind,
        source: "orders".into(),
        partition: 0,
        offset: id,
        key: Some(b"k".to_vec()),
        payload: Some(b"{}".to_vec()),
        timestamp_ms: 1,
        headers: Vec::new(),
        error: format!("refusing {id}"),
        module_hash: "ab12".into(),
        module_version: "1".into(),
        failed_at: 5,
        attempts: 1,
        reason: None,
    };
    store
        .commit_with_failures(
            &Overlay::default(),
            CommitPositions {
                offsets: &offsets(12),
                events_applied: 12,
            },
            &FailureChanges {
                upsert: vec![
                    record(0, FailureKind::DeadLetter),
                    record(1, FailureKind::Skipped),
                    record(2, FailureKind::Parked),
                ],
                resolved: Vec::new(),
            },
            true,
        )
        .unwrap();
    let info = write(&fx.snapshots, VERSION, &store.reader().unwrap(), 3).unwrap();
    // Skipped records are an audit trail in the state file, not carried.
    assert_eq!(info.meta.failed_events.len(), 2);

    let target = fx.root.join("restored.redb");
    restore(&info.path, &target).unwrap();
    let restored = StateStore::open(&target).unwrap();
    let reader = restored.reader().unwrap();
    let kept: Vec<_> = store
        .reader()
        .unwrap()
        .failures(None, None, 10)
        .unwrap()
        .into_iter()
        .filter(|r| r.kind != FailureKind::Skipped)
        .collect();
    assert_eq!(reader.failures(None, None, 10).unwrap(), kept);
    let counts = reader.failure_counts().unwrap();
    assert_eq!(
        (counts.dead_letters, counts.parked, counts.skipped),
        (1, 1, 0)
    );
    assert_eq!(reader.next_failure_id().unwrap(), 3);
    assert_eq!(all_entries(&restored), entries(10));
}

#[test]
fn an_abandoned_snapshot_leaves_no_file_at_all() {
    let fx = Fixture::new();
    let store = store_with(&fx.root.join("source.redb"), &entries(25_001), 7);
    let reader = store.reader().unwrap();
    // Given up mid-body (after the first chunk) and right before the rename.
    for give_up_after in [1, 3] {
        let calls = std::cell::Cell::new(0);
        let abandoned = || {
            calls.set(calls.get() + 1);
            calls.get() >= give_up_after
        };
        let err =
            super::write_abandonable(&fx.snapshots, VERSION, &reader, 3, &abandoned).unwrap_err();
        assert!(matches!(err, SnapshotError::Abandoned { .. }), "{err}");
        assert!(err.to_string().contains("orders@ab12"), "{err}");
        let folder = fx.snapshots.join("orders/ab12");
        let left: Vec<_> = std::fs::read_dir(&folder).unwrap().flatten().collect();
        assert!(left.is_empty(), "{left:?}");
    }
    // Not abandoned: the same call writes a complete snapshot.
    let info = super::write_abandonable(&fx.snapshots, VERSION, &reader, 3, &|| false).unwrap();
    verify(&info.path).unwrap();
}
