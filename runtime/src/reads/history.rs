//! As-of reads: the state a projection version had at a past position,
//! rebuilt from the newest snapshot of that same version at or before the
//! position plus a replay of the log from the snapshot's offsets up to
//! exactly the position, into a temporary state file deleted afterwards.
//!
//! Events go through the worker's own error-policy code
//! (`worker::run_one_by_one`), starting from the failure records the
//! snapshot carries (parked keys), so the replay passes over exactly the
//! events the live run passed over: failed events under `skip`,
//! `dead-letter` and `quarantine-key`, every later event of a parked key,
//! and events an operator skipped (`projector resume --skip`, while their
//! skipped records are kept). Under `halt` the live projection stopped at a
//! failing event, so a position past it never existed and is refused. Dead
//! letters retried later are not replayed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::event::Offsets;
use crate::projection::ProjectionRuntime;
use crate::snapshot::{Listed, SnapshotError};
use crate::source::{Partitions, SourceError};
use crate::store::{CommitPositions, FailureChanges, Overlay, StateReader, StateStore, StoreError};
use crate::wasm::{RunError, bindings, to_wit_event};
use crate::worker::{FailureBook, OneByOne, run_one_by_one};

/// Events per module call during the replay.
const BATCH: usize = 1000;
/// How long the replay waits for the source to deliver events it says it
/// has before giving up.
const SOURCE_PATIENCE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    #[error(
        "as_of leaves out {missing}, which projection {projection:?} reads: give every partition of its topics (copy the `offsets` of an earlier answer)"
    )]
    Incomplete { projection: String, missing: String },
    #[error(
        "as_of asks for {topic}/{partition} at offset {wanted}, but the log holds only {head} events there: a position in the future cannot be read; use min_offsets to wait for it"
    )]
    Ahead {
        topic: String,
        partition: u32,
        wanted: u64,
        head: u64,
    },
    #[error(
        "history before {topic}/{partition}@{needed} is gone: the log now starts at offset {first} there and no snapshot of version {hash} at or before the as_of position exists; ask for a later position, or keep snapshots (snapshot settings) older than the log's retention"
    )]
    Gone {
        topic: String,
        partition: u32,
        needed: u64,
        first: u64,
        hash: String,
    },
    #[error(
        "projection {projection:?} halts at {topic}/{partition}@{offset} (error policy halt: {message}), so no state past that event ever existed; ask for a position at or before offset {offset}"
    )]
    Halted {
        projection: String,
        topic: String,
        partition: u32,
        offset: u64,
        message: String,
    },
    #[error(
        "the source delivered no events for {waited:?} while the replay still needed {topic}/{partition} up to offset {wanted} (it reached {reached}); retry, or ask for an earlier position"
    )]
    Stuck {
        topic: String,
        partition: u32,
        wanted: u64,
        reached: u64,
        waited: Duration,
    },
    #[error("could not create a temporary state file for the replay: {0}")]
    TempDir(std::io::Error),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("reading the log for the replay failed: {0}")]
    Source(#[from] SourceError),
    #[error("the module could not be run for the replay: {0}")]
    Run(#[from] RunError),
}

/// A projection version's state at a past position, in a temporary state
/// file that is deleted on drop.
#[derive(Debug)]
pub struct PastState {
    // Field order is drop order: the files close before their folder goes.
    /// One file, or one per unit of a partitioned projection.
    stores: Vec<StateStore>,
    templates: std::sync::Arc<[crate::store::KeyTemplate]>,
    /// Exactly the position asked for (module topic names).
    pub offsets: Offsets,
    /// The snapshot the replay started from, if any (the first unit's that
    /// had one, for a partitioned projection).
    pub snapshot: Option<PathBuf>,
    /// Events applied on top of the snapshots (or of the empty state).
    pub replayed: u64,
    _dir: tempfile::TempDir,
}

impl PastState {
    pub fn reader(&self) -> Result<StateReader, StoreError> {
        if let [only] = self.stores.as_slice() {
            return only.reader();
        }
        let readers = self
            .stores
            .iter()
            .map(StateStore::reader)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(StateReader::units(readers).with_key_templates(self.templates.clone()))
    }
}

/// Rebuilds `projection`'s state at `as_of` (module topic names; every
/// partition of every topic it reads), from snapshots of its own version in
/// `snapshots_dir` and the log.
pub fn state_at(
    projection: &ProjectionRuntime,
    snapshots_dir: &Path,
    as_of: &Offsets,
) -> Result<PastState, HistoryError> {
    check_position(projection, as_of)?;
    let dir = tempfile::Builder::new()
        .prefix("projector-as-of-")
        .tempdir()
        .map_err(HistoryError::TempDir)?;
    // A partitioned projection: each unit from its own nearest snapshot,
    // replayed on its own partitions; in a group, the units this instance
    // folds (the others' owners answer for them).
    let parts: Vec<Partitions> = if projection.is_partitioned() {
        projection
            .units()
            .iter()
            .filter(|u| u.is_here())
            .map(|u| u.partitions)
            .collect()
    } else {
        vec![Partitions::All]
    };
    let mut stores = Vec::new();
    let mut first_snapshot = None;
    let mut replayed = 0;
    for partitions in parts {
        let share = share_of(as_of, partitions);
        let key = crate::projection::unit_file_key(&projection.module.hash, partitions);
        let path = dir.path().join(format!("{key}.redb"));
        let snapshot = nearest_snapshot(projection, &key, snapshots_dir, &share)?;
        let (start, events_applied) = match &snapshot {
            Some(file) => {
                let info = crate::snapshot::restore(file, &path)?;
                (info.meta.offsets, info.meta.events_applied)
            }
            None => (Offsets::default(), 0),
        };
        let store = StateStore::open(&path)?;
        replayed += replay(
            projection,
            &store,
            partitions,
            &start,
            &share,
            events_applied,
        )?;
        stores.push(store);
        if first_snapshot.is_none() {
            first_snapshot = snapshot;
        }
    }
    Ok(PastState {
        stores,
        templates: projection.config.key_templates.clone(),
        offsets: as_of.clone(),
        snapshot: first_snapshot,
        replayed,
        _dir: dir,
    })
}

/// The part of `offsets` on `partitions`.
fn share_of(offsets: &Offsets, partitions: Partitions) -> Offsets {
    let mut share = Offsets::default();
    for (topic, partition, next) in offsets.iter() {
        if partitions.includes(partition) {
            share.set(topic, partition, next);
        }
    }
    share
}

/// `as_of` names every partition the projection reads and none beyond the
/// log's head.
fn check_position(projection: &ProjectionRuntime, as_of: &Offsets) -> Result<(), HistoryError> {
    let mut missing = Vec::new();
    for binding in &projection.topics {
        let heads = projection.source.heads(&binding.physical);
        for (partition, head) in heads.iter().enumerate() {
            let partition = partition as u32;
            let named = as_of
                .0
                .get(&binding.logical)
                .is_some_and(|p| p.contains_key(&partition));
            if !named && *head > 0 {
                missing.push(format!("{}:{partition}", binding.physical));
            }
        }
        if let Some(partitions) = as_of.0.get(&binding.logical) {
            for (&partition, &wanted) in partitions {
                let head = heads.get(partition as usize).copied().unwrap_or(0);
                if wanted > head {
                    return Err(HistoryError::Ahead {
                        topic: binding.physical.clone(),
                        partition,
                        wanted,
                        head,
                    });
                }
            }
        }
    }
    if !missing.is_empty() {
        return Err(HistoryError::Incomplete {
            projection: projection.name().to_owned(),
            missing: missing.join(", "),
        });
    }
    Ok(())
}

/// The newest valid snapshot of this exact version (or unit: `key`) whose
/// offsets are all at or before `as_of`.
fn nearest_snapshot(
    projection: &ProjectionRuntime,
    key: &str,
    snapshots_dir: &Path,
    as_of: &Offsets,
) -> Result<Option<PathBuf>, HistoryError> {
    let module = &projection.module;
    let listed = match crate::snapshot::list_version(snapshots_dir, projection.name(), key) {
        Ok(listed) => listed,
        Err(SnapshotError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    let mut usable: Vec<_> = listed
        .into_iter()
        .filter_map(|l| match l {
            Listed::Valid(info) => Some(info),
            Listed::Invalid { .. } => None,
        })
        .filter(|info| {
            info.meta.state_version == module.descriptor.state_version
                && as_of.reached(&info.meta.offsets)
        })
        .collect();
    // Closest first: the most events already applied.
    usable.sort_by_key(|info| {
        std::cmp::Reverse(info.meta.offsets.iter().map(|(_, _, o)| o).sum::<u64>())
    });
    for info in usable {
        match crate::snapshot::verify(&info.path) {
            Ok(_) => return Ok(Some(info.path)),
            Err(reason) => tracing::warn!(
                file = %info.path.display(),
                %reason,
                "as-of read skips a snapshot that failed verification"
            ),
        }
    }
    Ok(None)
}

/// Applies the log from `start` up to exactly `as_of` to `store`.
fn replay(
    projection: &ProjectionRuntime,
    store: &StateStore,
    partitions: Partitions,
    start: &Offsets,
    as_of: &Offsets,
    mut events_applied: u64,
) -> Result<u64, HistoryError> {
    let mut positions = start.clone();
    let pending = |positions: &Offsets| {
        as_of
            .iter()
            .find(|(topic, partition, wanted)| positions.get(topic, *partition) < *wanted)
            .map(|(t, p, w)| (t.to_owned(), p, w))
    };
    if pending(&positions).is_none() {
        return Ok(0);
    }
    let label = format!("{} (as-of read)", projection.label());
    // Failures the replay meets again are logged as such, not as new ones.
    let _span = tracing::info_span!(
        "as_of_replay",
        projection = %projection.name(),
        version = %projection.module.short_hash()
    )
    .entered();
    let mut instance = projection
        .module
        .instantiate_with(&label, &projection.config.limits)?;
    let mut subscription = projection.source.subscribe(
        &format!("{}.as-of", projection.name()),
        &projection.topics,
        partitions,
        start,
    )?;
    let policy = projection.config.error_policy;
    // The live worker's failure book as of the start: the parked keys the
    // snapshot carries, and the events operators passed over.
    let mut book = FailureBook::load(&store.reader()?, &projection.module.hash)?;
    book.load_operator_skips(&projection.reader()?)?;
    let mut replayed = 0;
    let mut raw = Vec::with_capacity(BATCH);
    let mut last_event = Instant::now();
    while let Some((topic, partition, wanted)) = pending(&positions) {
        raw.clear();
        subscription.poll_batch(BATCH, Duration::from_millis(200), &mut raw)?;
        if raw.is_empty() {
            if last_event.elapsed() >= SOURCE_PATIENCE {
                return Err(HistoryError::Stuck {
                    reached: positions.get(&topic, partition),
                    topic: physical(projection, &topic),
                    partition,
                    wanted,
                    waited: SOURCE_PATIENCE,
                });
            }
            continue;
        }
        last_event = Instant::now();
        let mut batch = Vec::with_capacity(raw.len());
        for event in raw.drain(..) {
            let next = positions.get(&event.source, event.partition);
            let limit = as_of.get(&event.source, event.partition);
            if event.offset < next || event.offset >= limit {
                continue;
            }
            if event.offset > next {
                return Err(HistoryError::Gone {
                    topic: physical(projection, &event.source),
                    partition: event.partition,
                    needed: next,
                    first: event.offset,
                    hash: projection.module.short_hash().to_owned(),
                });
            }
            positions.set(&event.source, event.partition, event.offset + 1);
            batch.push(to_wit_event(event));
        }
        if batch.is_empty() {
            continue;
        }
        let mut changes = FailureChanges::default();
        // As the worker does: a batch holding events that must not reach
        // the module runs one by one at once; a batch that fails is
        // discarded and run one by one to find the failing events.
        let mut batch_overlay = None;
        if !book.holds_any(&batch) {
            let base = store.reader()?;
            match instance.handle(&batch, base, Overlay::default()) {
                (Ok(()), overlay) => batch_overlay = Some(overlay),
                (Err(RunError::Storage(e)), _) => return Err(e.into()),
                (Err(_), _) => {}
            }
        }
        let overlay = match batch_overlay {
            Some(overlay) => overlay,
            None => {
                let mut overlay = Overlay::default();
                let outcome = run_one_by_one(
                    &batch,
                    policy,
                    &mut book,
                    &projection.module,
                    &mut overlay,
                    &mut changes,
                    |event: &bindings::Event, overlay: Overlay| -> Result<_, HistoryError> {
                        if instance.is_poisoned() {
                            instance = projection
                                .module
                                .instantiate_with(&label, &projection.config.limits)?;
                        }
                        let base = store.reader()?;
                        match instance.handle(std::slice::from_ref(event), base, overlay) {
                            (Err(RunError::Storage(e)), _) => Err(HistoryError::from(e)),
                            outcome => Ok(outcome),
                        }
                    },
                )?;
                if let OneByOne::Halted { index, error } = outcome {
                    let event = &batch[index];
                    return Err(HistoryError::Halted {
                        projection: projection.name().to_owned(),
                        topic: physical(projection, &event.source),
                        partition: event.partition,
                        offset: event.offset,
                        message: error,
                    });
                }
                overlay
            }
        };
        replayed += batch.len() as u64;
        events_applied += batch.len() as u64;
        store.commit_with_failures(
            &overlay,
            CommitPositions {
                offsets: &positions,
                events_applied,
            },
            &changes,
            false,
        )?;
    }
    Ok(replayed)
}

fn physical(projection: &ProjectionRuntime, logical: &str) -> String {
    projection
        .topics
        .iter()
        .find(|b| b.logical == logical)
        .map_or_else(|| logical.to_owned(), |b| b.physical.clone())
}
