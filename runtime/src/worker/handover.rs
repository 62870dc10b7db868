//! A unit (or global projection) moving between instances of a group: the
//! old owner snapshots what it committed and uploads it; the new owner
//! starts from the newest state anywhere (its own file, a local snapshot,
//! or the shared store's) and replays only the tail.

use crate::cluster::HandoverFrom;
use crate::projection::ProjectionRuntime;
use crate::worker::WorkerConfig;

/// A standby this close behind the newest snapshot (in events) goes on
/// from its own file rather than restoring the snapshot: reading the tail
/// costs less than copying a large state.
const STANDBY_TAIL_PREFERRED: u64 = 100_000;

/// Before folding a slot it just got: when a snapshot (in the shared store
/// or the data folder) holds more than the local file, it replaces the
/// local file. Failures fall back to the local file: the tail replay
/// makes it exact either way. `was_standby`: the local file is this
/// instance's standby copy. Answers where the fold starts from.
pub(super) fn take_over(
    projection: &ProjectionRuntime,
    config: &WorkerConfig,
    was_standby: bool,
) -> HandoverFrom {
    let local = projection
        .store()
        .and_then(|store| store.reader().and_then(|r| r.events_applied()).ok())
        .unwrap_or(0);
    let from_local = if was_standby {
        HandoverFrom::Standby
    } else if local == 0 {
        HandoverFrom::Replay
    } else {
        HandoverFrom::LocalState
    };
    let (Some(policy), Some(store)) = (&config.snapshots, projection.store()) else {
        return from_local;
    };
    let name = projection.name();
    let key = projection.file_key();
    if let Some(shared) = &config.snapshot_store
        && let Err(e) = shared.fetch_newer(&policy.dir, name, &key)
    {
        tracing::warn!("{e}; taking over from the local state and snapshots");
    }
    let latest = match crate::snapshot::latest_valid(&policy.dir, name, &key) {
        Ok(Some(latest)) => latest,
        Ok(None) => {
            tracing::info!(
                events_applied = local,
                from = from_local.label(),
                "taking over from the local state (no snapshot to start from)"
            );
            return from_local;
        }
        Err(e) => {
            tracing::warn!("cannot look for snapshots to take over from: {e}");
            return from_local;
        }
    };
    // A warm standby reads a short tail faster than a snapshot restores.
    let warm =
        was_standby && latest.meta.events_applied.saturating_sub(local) < STANDBY_TAIL_PREFERRED;
    if latest.meta.events_applied <= local || warm {
        tracing::info!(
            events_applied = local,
            from = from_local.label(),
            "taking over from the local state (no newer snapshot, or a warm standby)"
        );
        return from_local;
    }
    let started = std::time::Instant::now();
    let restored = store.path().with_extension("takeover.redb");
    let _ = std::fs::remove_file(&restored);
    let outcome = crate::snapshot::restore(&latest.path, &restored)
        .map_err(|e| e.to_string())
        .and_then(|_| store.replace_with(&restored).map_err(|e| e.to_string()));
    match outcome {
        Ok(()) => tracing::info!(
            snapshot = %latest.path.display(),
            events_applied = latest.meta.events_applied,
            local_events_applied = local,
            took_ms = started.elapsed().as_millis() as u64,
            "took over from a newer snapshot; replaying the tail"
        ),
        Err(e) => {
            let _ = std::fs::remove_file(&restored);
            tracing::warn!(
                "restoring {} failed, replaying from the local state: {e}",
                latest.path.display()
            );
            return from_local;
        }
    }
    HandoverFrom::Snapshot
}

/// After a cooperative revoke committed everything: a snapshot of the
/// committed state, uploaded to the shared store, for the next owner.
pub(super) fn hand_over(projection: &ProjectionRuntime, config: &WorkerConfig) {
    let (Some(policy), Some(store)) = (&config.snapshots, projection.store()) else {
        return;
    };
    let reader = match store.reader() {
        Ok(reader) => reader,
        Err(e) => return tracing::warn!("no hand-over snapshot: {e}"),
    };
    let key = projection.file_key();
    let version = crate::snapshot::ProjectionVersion {
        name: projection.name(),
        hash: &key,
        state_version: projection.module.descriptor.state_version,
    };
    let started = std::time::Instant::now();
    match crate::snapshot::write(&policy.dir, version, &reader, policy.keep) {
        Ok(info) => {
            if let Some(shared) = &config.snapshot_store {
                shared.publish(&info, policy.keep);
            }
            tracing::info!(
                events_applied = info.meta.events_applied,
                took_ms = started.elapsed().as_millis() as u64,
                "handed over: snapshot written for the next owner"
            );
        }
        Err(e) => tracing::warn!("hand-over snapshot failed (the next owner replays more): {e}"),
    }
}
