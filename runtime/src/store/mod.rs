//! Projection state: one redb file per projection version, holding the state
//! table, the offsets reached, and metadata. State and offsets only ever
//! change together, in one write transaction.

mod failures;
mod overlay;
mod progress;
pub(crate) mod route;

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{PoisonError, RwLock};

use redb::{Database, Durability, ReadOnlyTable, ReadableDatabase, ReadableTable, TableDefinition};

pub use failures::{FailedEvent, FailureChanges, FailureCounts, FailureKind};
pub use overlay::{Changes, Overlay};
pub use progress::{Barrier, BarrierOutcome};
pub use route::KeyTemplate;

use crate::event::Offsets;

/// Key/value pairs in ascending key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;
/// One key/value pair.
pub type Entry = (Vec<u8>, Vec<u8>);

const STATE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("state");
/// (topic, partition) -> next offset to apply.
const OFFSETS: TableDefinition<(&str, u32), u64> = TableDefinition::new("offsets");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const EVENTS_APPLIED: &str = "events_applied";
/// id -> [`FailedEvent`] (MessagePack).
const FAILED: TableDefinition<u64, &[u8]> = TableDefinition::new("failed");
const NEXT_FAILURE_ID: &str = "failed.next_id";

/// redb's page cache of one state file unless configured
/// (`state_cache_mb`). redb's own default, 1 GiB per file, lets every
/// projection's process memory grow to the size of its whole state file;
/// this keeps the hot pages of a fold and of lookups, and the rest is read
/// back from the operating system's page cache.
pub const DEFAULT_CACHE_BYTES: usize = 4 << 20;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("state file {path} could not be opened: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: redb::Error,
    },
    #[error("state storage error in {path}: {source}")]
    Storage {
        path: PathBuf,
        #[source]
        source: redb::Error,
    },
    #[error(
        "state file {path} is closed after a write failure and could not be reopened; free space on its disk (it is reopened on the next access)"
    )]
    Closed { path: PathBuf },
    #[error("state file {path} holds an unreadable failed-event record {id}: {detail}")]
    BadRecord {
        path: PathBuf,
        id: u64,
        detail: String,
    },
}

impl StoreError {
    /// The file's content is damaged (as opposed to busy, missing rights,
    /// or a full disk): rebuilding it is the remedy.
    pub fn is_corrupt(&self) -> bool {
        match self {
            StoreError::Open { source, .. } | StoreError::Storage { source, .. } => {
                matches!(
                    source,
                    redb::Error::Corrupted(_) | redb::Error::UpgradeRequired(_)
                ) || matches!(source, redb::Error::Io(e) if e.kind() == std::io::ErrorKind::InvalidData)
            }
            StoreError::Closed { .. } | StoreError::BadRecord { .. } => false,
        }
    }

    /// The file is held open by another handle: in this process one whose
    /// last owner is still closing it, or another process.
    pub fn is_already_open(&self) -> bool {
        matches!(
            self,
            StoreError::Open {
                source: redb::Error::DatabaseAlreadyOpen,
                ..
            }
        )
    }

    /// A write failed on the device (disk full, I/O error): redb refuses
    /// every later transaction on that handle, so the file must be closed
    /// and reopened, which rolls back to the last durable commit.
    pub fn needs_reopen(&self) -> bool {
        match self {
            StoreError::Open { source, .. } | StoreError::Storage { source, .. } => {
                matches!(source, redb::Error::PreviousIo)
                    || matches!(source, redb::Error::Io(e) if e.kind() != std::io::ErrorKind::InvalidData)
            }
            StoreError::Closed { .. } => true,
            StoreError::BadRecord { .. } => false,
        }
    }

    /// The device is out of space (or quota).
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Open { source, .. } | StoreError::Storage { source, .. } => {
                matches!(source, redb::Error::Io(e)
                    if e.kind() == std::io::ErrorKind::StorageFull
                        || e.kind() == std::io::ErrorKind::QuotaExceeded)
            }
            _ => false,
        }
    }
}

/// The state file of one projection version.
#[derive(Debug)]
pub struct StateStore {
    /// `None` between closing after a write failure and a successful reopen.
    db: RwLock<Option<Database>>,
    path: PathBuf,
    /// redb's page cache for this file, bytes.
    cache_bytes: usize,
    /// Signalled after every commit.
    progress: progress::Progress,
}

/// What a batch commit writes besides the state changes.
#[derive(Debug)]
pub struct CommitPositions<'a> {
    pub offsets: &'a Offsets,
    pub events_applied: u64,
}

impl StateStore {
    /// Opens (or creates) the state file at `path` with the default page
    /// cache, [`DEFAULT_CACHE_BYTES`].
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// Opens (or creates) the state file at `path`; redb caches up to
    /// `cache_bytes` of its pages (reads and not yet written changes).
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<Self, StoreError> {
        let open_err = |source: redb::Error| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| open_err(e.into()))?;
        }
        let db = Self::open_database(path, cache_bytes).map_err(open_err)?;
        Ok(Self {
            db: RwLock::new(Some(db)),
            path: path.to_owned(),
            cache_bytes,
            progress: progress::Progress::default(),
        })
    }

    fn open_database(path: &Path, cache_bytes: usize) -> Result<Database, redb::Error> {
        let db = redb::Builder::new()
            .set_cache_size(cache_bytes)
            .create(path)?;
        let txn = db.begin_write()?;
        txn.open_table(STATE)?;
        txn.open_table(OFFSETS)?;
        txn.open_table(META)?;
        txn.open_table(FAILED)?;
        txn.commit()?;
        Ok(db)
    }

    /// Closes the file and opens it again, after a write failure left the
    /// handle unusable. State and offsets roll back together to the last
    /// durable commit; the caller must re-read its positions. Fails while
    /// readers from before the failure are still open.
    pub fn reopen(&self) -> Result<(), StoreError> {
        let mut db = self.db.write().unwrap_or_else(PoisonError::into_inner);
        *db = None;
        let reopened = Self::open_database(&self.path, self.cache_bytes).map_err(|source| {
            StoreError::Open {
                path: self.path.clone(),
                source,
            }
        })?;
        *db = Some(reopened);
        drop(db);
        self.progress.committed(None, || None);
        Ok(())
    }

    /// Puts the state file `restored` (a snapshot restored next to this
    /// one) in place of this store's file, and opens it: a unit taken over
    /// from another instance starts from the newer state. Readers open
    /// before keep what they saw (the old file stays theirs until closed).
    pub fn replace_with(&self, restored: &Path) -> Result<(), StoreError> {
        let open_err = |source: redb::Error| StoreError::Open {
            path: self.path.clone(),
            source,
        };
        let mut db = self.db.write().unwrap_or_else(PoisonError::into_inner);
        *db = None;
        std::fs::rename(restored, &self.path).map_err(|e| open_err(e.into()))?;
        *db = Some(Self::open_database(&self.path, self.cache_bytes).map_err(open_err)?);
        drop(db);
        // Waiting reads see the jump like a commit.
        let offsets = self.reader()?.offsets()?;
        self.progress
            .committed(Some(&offsets), || self.reader().ok());
        Ok(())
    }

    /// A receiver whose value changes after every commit (and reopen):
    /// await `changed()` and re-read the offsets, instead of polling.
    pub fn watch_commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.progress.subscribe()
    }

    /// Registers `barrier`: the first commit whose offsets reach it answers,
    /// with a reader opened right after that commit when it stands exactly
    /// on the barrier's exact offsets. Register before reading the current
    /// offsets, so no commit falls between.
    pub fn barrier(&self, barrier: Barrier) -> tokio::sync::oneshot::Receiver<BarrierOutcome> {
        self.progress.add(barrier)
    }

    /// The open database, reopening the file first if an earlier reopen
    /// failed (a worker stopped while paused leaves it closed).
    fn open_db(&self) -> Result<std::sync::RwLockReadGuard<'_, Option<Database>>, StoreError> {
        {
            let db = self.db.read().unwrap_or_else(PoisonError::into_inner);
            if db.is_some() {
                return Ok(db);
            }
        }
        {
            let mut db = self.db.write().unwrap_or_else(PoisonError::into_inner);
            if db.is_none() {
                let reopened =
                    Self::open_database(&self.path, self.cache_bytes).map_err(|source| {
                        StoreError::Open {
                            path: self.path.clone(),
                            source,
                        }
                    })?;
                *db = Some(reopened);
            }
        }
        Ok(self.db.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn with_db<T>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let db = self.open_db()?;
        match db.as_ref() {
            Some(db) => f(db),
            None => Err(StoreError::Closed {
                path: self.path.clone(),
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn storage(&self, err: impl Into<redb::Error>) -> StoreError {
        StoreError::Storage {
            path: self.path.clone(),
            source: err.into(),
        }
    }

    /// A consistent snapshot of state and offsets at one instant.
    pub fn reader(&self) -> Result<StateReader, StoreError> {
        let txn = self.with_db(|db| db.begin_read().map_err(|e| self.storage(e)))?;
        StateReader::open(std::sync::Arc::new(txn), self.path.clone())
    }

    /// Applies `overlay` and the new positions in one write transaction.
    /// With `durable == false` the commit is cheap but may be rolled back by
    /// a crash, together with its offsets, so nothing is lost or doubled.
    pub fn commit(
        &self,
        overlay: &Overlay,
        positions: CommitPositions<'_>,
        durable: bool,
    ) -> Result<(), StoreError> {
        self.commit_with_failures(overlay, positions, &FailureChanges::default(), durable)
    }

    /// [`StateStore::commit`], also adding and removing failed-event
    /// records in the same transaction.
    pub fn commit_with_failures(
        &self,
        overlay: &Overlay,
        positions: CommitPositions<'_>,
        failures: &FailureChanges,
        durable: bool,
    ) -> Result<(), StoreError> {
        let offsets = positions.offsets;
        self.write_commit(overlay, positions, failures, durable)?;
        // Only the committing thread writes this file, so a reader opened
        // here sees exactly this commit.
        self.progress
            .committed(Some(offsets), || self.reader().ok());
        Ok(())
    }

    fn write_commit(
        &self,
        overlay: &Overlay,
        positions: CommitPositions<'_>,
        failures: &FailureChanges,
        durable: bool,
    ) -> Result<(), StoreError> {
        let db = self.open_db()?;
        let Some(db) = db.as_ref() else {
            return Err(StoreError::Closed {
                path: self.path.clone(),
            });
        };
        let mut txn = db.begin_write().map_err(|e| self.storage(e))?;
        txn.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        })
        .map_err(|e| self.storage(e))?;
        {
            let mut state = txn.open_table(STATE).map_err(|e| self.storage(e))?;
            // The overlay is a BTreeMap, so redb receives sorted keys.
            for (key, value) in overlay.changes() {
                match value {
                    Some(value) => {
                        state
                            .insert(key.as_slice(), value.as_slice())
                            .map_err(|e| self.storage(e))?;
                    }
                    None => {
                        state.remove(key.as_slice()).map_err(|e| self.storage(e))?;
                    }
                }
            }
            let mut offsets = txn.open_table(OFFSETS).map_err(|e| self.storage(e))?;
            for (topic, partition, next) in positions.offsets.iter() {
                offsets
                    .insert((topic, partition), next)
                    .map_err(|e| self.storage(e))?;
            }
            let mut meta = txn.open_table(META).map_err(|e| self.storage(e))?;
            meta.insert(EVENTS_APPLIED, positions.events_applied)
                .map_err(|e| self.storage(e))?;
            if !failures.is_empty() {
                let mut failed = txn.open_table(FAILED).map_err(|e| self.storage(e))?;
                self.write_failures(&mut failed, &mut meta, failures)?;
            }
        }
        txn.commit().map_err(|e| self.storage(e))
    }

    fn write_failures(
        &self,
        failed: &mut redb::Table<u64, &[u8]>,
        meta: &mut redb::Table<&str, u64>,
        changes: &FailureChanges,
    ) -> Result<(), StoreError> {
        let mut deltas: Vec<(FailureKind, i64)> = Vec::new();
        let mut count =
            |kind: FailureKind, delta: i64| match deltas.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, d)) => *d += delta,
                None => deltas.push((kind, delta)),
            };
        let kind_of = |bytes: &[u8], id: u64| decode_record(&self.path, id, bytes).map(|r| r.kind);
        let mut next_id = meta
            .get(NEXT_FAILURE_ID)
            .map_err(|e| self.storage(e))?
            .map_or(0, |v| v.value());
        for record in &changes.upsert {
            let old = failed
                .insert(record.id, record.encode().as_slice())
                .map_err(|e| self.storage(e))?;
            if let Some(old) = old {
                count(kind_of(old.value(), record.id)?, -1);
            }
            count(record.kind, 1);
            next_id = next_id.max(record.id + 1);
        }
        for id in &changes.resolved {
            let old = failed.remove(id).map_err(|e| self.storage(e))?;
            if let Some(old) = old {
                count(kind_of(old.value(), *id)?, -1);
            }
        }
        meta.insert(NEXT_FAILURE_ID, next_id)
            .map_err(|e| self.storage(e))?;
        for (kind, delta) in deltas {
            let current = meta
                .get(kind.counter())
                .map_err(|e| self.storage(e))?
                .map_or(0, |v| v.value());
            meta.insert(kind.counter(), current.saturating_add_signed(delta))
                .map_err(|e| self.storage(e))?;
        }
        Ok(())
    }

    /// Bulk load for restoring a snapshot into a fresh file: inserts
    /// `entries` in one large non-durable write transaction. Nothing is
    /// durable until [`StateStore::finish_import`].
    pub fn import_entries(&self, entries: &[(Vec<u8>, Vec<u8>)]) -> Result<(), StoreError> {
        let mut txn = self.with_db(|db| db.begin_write().map_err(|e| self.storage(e)))?;
        txn.set_durability(Durability::None)
            .map_err(|e| self.storage(e))?;
        {
            let mut state = txn.open_table(STATE).map_err(|e| self.storage(e))?;
            for (key, value) in entries {
                state
                    .insert(key.as_slice(), value.as_slice())
                    .map_err(|e| self.storage(e))?;
            }
        }
        txn.commit().map_err(|e| self.storage(e))
    }

    /// Ends a bulk load: replaces the offsets with `positions` and commits
    /// durably, making every earlier [`StateStore::import_entries`] durable
    /// with it.
    pub fn finish_import(&self, positions: CommitPositions<'_>) -> Result<(), StoreError> {
        let mut txn = self.with_db(|db| db.begin_write().map_err(|e| self.storage(e)))?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| self.storage(e))?;
        {
            let mut offsets = txn.open_table(OFFSETS).map_err(|e| self.storage(e))?;
            offsets.retain(|_, _| false).map_err(|e| self.storage(e))?;
            for (topic, partition, next) in positions.offsets.iter() {
                offsets
                    .insert((topic, partition), next)
                    .map_err(|e| self.storage(e))?;
            }
            let mut meta = txn.open_table(META).map_err(|e| self.storage(e))?;
            meta.insert(EVENTS_APPLIED, positions.events_applied)
                .map_err(|e| self.storage(e))?;
        }
        txn.commit().map_err(|e| self.storage(e))?;
        self.progress
            .committed(Some(positions.offsets), || self.reader().ok());
        Ok(())
    }

    /// Makes every earlier non-durable commit durable.
    pub fn sync(&self) -> Result<(), StoreError> {
        let mut txn = self.with_db(|db| db.begin_write().map_err(|e| self.storage(e)))?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| self.storage(e))?;
        txn.commit().map_err(|e| self.storage(e))
    }
}

/// Read access to one state file at one instant.
struct FileReader {
    /// Kept so [`StateReader::fork`] can open the tables again.
    txn: std::sync::Arc<redb::ReadTransaction>,
    state: ReadOnlyTable<&'static [u8], &'static [u8]>,
    offsets: ReadOnlyTable<(&'static str, u32), u64>,
    meta: ReadOnlyTable<&'static str, u64>,
    failed: ReadOnlyTable<u64, &'static [u8]>,
    path: PathBuf,
}

impl std::fmt::Debug for FileReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileReader")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl FileReader {
    fn open(txn: std::sync::Arc<redb::ReadTransaction>, path: PathBuf) -> Result<Self, StoreError> {
        let storage = |err: redb::TableError| StoreError::Storage {
            path: path.clone(),
            source: err.into(),
        };
        Ok(FileReader {
            state: txn.open_table(STATE).map_err(storage)?,
            offsets: txn.open_table(OFFSETS).map_err(storage)?,
            meta: txn.open_table(META).map_err(storage)?,
            failed: txn.open_table(FAILED).map_err(storage)?,
            txn,
            path,
        })
    }

    /// A second reader of the same transaction: the same state and offsets
    /// (custom queries consume a reader).
    fn fork(&self) -> Result<FileReader, StoreError> {
        FileReader::open(self.txn.clone(), self.path.clone())
    }

    fn storage(&self, err: impl Into<redb::Error>) -> StoreError {
        StoreError::Storage {
            path: self.path.clone(),
            source: err.into(),
        }
    }

    /// The state file this reader reads.
    fn path(&self) -> &Path {
        &self.path
    }

    /// Every state entry, ascending, from this reader's one transaction:
    /// a streaming full scan (for snapshots), so the state is never held in
    /// memory whole.
    fn iter_all(&self) -> Result<impl Iterator<Item = Result<Entry, StoreError>> + '_, StoreError> {
        let range = self.state.iter().map_err(|e| self.storage(e))?;
        Ok(range.map(|entry| {
            let (key, value) = entry.map_err(|e| self.storage(e))?;
            Ok((key.value().to_vec(), value.value().to_vec()))
        }))
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .state
            .get(key)
            .map_err(|e| self.storage(e))?
            .map(|v| v.value().to_vec()))
    }

    /// Up to `limit` entries with `prefix`, ascending, strictly after
    /// `start_after` when given.
    fn scan(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Entries, StoreError> {
        let lower = scan_lower_bound(prefix, start_after);
        let range = self
            .state
            .range::<&[u8]>((lower, Bound::Unbounded))
            .map_err(|e| self.storage(e))?;
        let mut entries = Vec::new();
        for entry in range {
            if entries.len() >= limit {
                break;
            }
            let (key, value) = entry.map_err(|e| self.storage(e))?;
            if !key.value().starts_with(prefix) {
                break;
            }
            entries.push((key.value().to_vec(), value.value().to_vec()));
        }
        Ok(entries)
    }

    fn offsets(&self) -> Result<Offsets, StoreError> {
        let mut offsets = Offsets::default();
        for entry in self.offsets.iter().map_err(|e| self.storage(e))? {
            let (key, next) = entry.map_err(|e| self.storage(e))?;
            let (topic, partition) = key.value();
            offsets.set(topic, partition, next.value());
        }
        Ok(offsets)
    }

    fn events_applied(&self) -> Result<u64, StoreError> {
        Ok(self
            .meta
            .get(EVENTS_APPLIED)
            .map_err(|e| self.storage(e))?
            .map_or(0, |v| v.value()))
    }

    /// Failure records of `kind` (all kinds when `None`) with ids above
    /// `after`, ascending, at most `limit`.
    fn failures(
        &self,
        kind: Option<FailureKind>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<FailedEvent>, StoreError> {
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        let range = self
            .failed
            .range::<u64>((lower, Bound::Unbounded))
            .map_err(|e| self.storage(e))?;
        let mut records = Vec::new();
        for entry in range {
            if records.len() >= limit {
                break;
            }
            let (id, bytes) = entry.map_err(|e| self.storage(e))?;
            let record = decode_record(&self.path, id.value(), bytes.value())?;
            if kind.is_none_or(|k| k == record.kind) {
                records.push(record);
            }
        }
        Ok(records)
    }

    fn failure_counts(&self) -> Result<FailureCounts, StoreError> {
        let mut counts = FailureCounts::default();
        for kind in FailureKind::ALL {
            *counts.get_mut(kind) = self
                .meta
                .get(kind.counter())
                .map_err(|e| self.storage(e))?
                .map_or(0, |v| v.value());
        }
        Ok(counts)
    }

    /// The newest failure record.
    fn last_failure(&self) -> Result<Option<FailedEvent>, StoreError> {
        let Some(entry) = self.failed.last().map_err(|e| self.storage(e))? else {
            return Ok(None);
        };
        let (id, bytes) = entry;
        decode_record(&self.path, id.value(), bytes.value()).map(Some)
    }

    /// The id the next failure record gets.
    fn next_failure_id(&self) -> Result<u64, StoreError> {
        Ok(self
            .meta
            .get(NEXT_FAILURE_ID)
            .map_err(|e| self.storage(e))?
            .map_or(0, |v| v.value()))
    }

    /// Number of keys in the state table.
    fn key_count(&self) -> Result<u64, StoreError> {
        use redb::ReadableTableMetadata;
        self.state.len().map_err(|e| self.storage(e))
    }
}

/// Read access to one consistent version of a projection's state: its state
/// file, or for a partitioned projection the files of its units (disjoint
/// keys and partitions), each read at one instant and seen as one state.
pub struct StateReader {
    /// In unit order; exactly one for a projection that is not partitioned.
    files: Vec<FileReader>,
    /// How state keys embed event keys: a lookup asks the key's unit first.
    templates: std::sync::Arc<[KeyTemplate]>,
}

impl std::fmt::Debug for StateReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.files).finish()
    }
}

impl StateReader {
    fn open(txn: std::sync::Arc<redb::ReadTransaction>, path: PathBuf) -> Result<Self, StoreError> {
        Ok(StateReader {
            files: vec![FileReader::open(txn, path)?],
            templates: std::sync::Arc::new([]),
        })
    }

    /// The readers of a partitioned projection's units, in unit order, as
    /// one: keys are looked up in every unit, scans merged in key order,
    /// offsets joined, counts added. Failure record ids are made unique as
    /// `id * units + unit`.
    pub fn units(units: Vec<StateReader>) -> StateReader {
        StateReader {
            files: units.into_iter().flat_map(|u| u.files).collect(),
            templates: std::sync::Arc::new([]),
        }
    }

    /// Lookups of keys of the form of `templates` ask the unit of the
    /// event key they embed first (the others only when it lacks the key).
    pub fn with_key_templates(mut self, templates: std::sync::Arc<[KeyTemplate]>) -> Self {
        self.templates = templates;
        self
    }

    /// One reader per state file (per unit of a partitioned projection),
    /// in order.
    pub fn split(self) -> Vec<StateReader> {
        self.files
            .into_iter()
            .map(|file| StateReader {
                files: vec![file],
                templates: std::sync::Arc::from([]),
            })
            .collect()
    }

    /// How many state files this reader reads (units of a partitioned
    /// projection; 1 otherwise).
    pub fn unit_count(&self) -> usize {
        self.files.len()
    }

    /// A second reader of the same transactions: the same state and offsets
    /// (custom queries consume a reader).
    pub fn fork(&self) -> Result<StateReader, StoreError> {
        Ok(StateReader {
            files: self
                .files
                .iter()
                .map(FileReader::fork)
                .collect::<Result<_, _>>()?,
            templates: self.templates.clone(),
        })
    }

    /// The state file this reader reads (the first unit's, when several).
    pub fn path(&self) -> &Path {
        self.files.first().map_or(Path::new(""), |f| f.path())
    }

    /// Every state entry, ascending, from this reader's transactions: a
    /// streaming full scan (for snapshots), so the state is never held in
    /// memory whole.
    pub fn iter_all(
        &self,
    ) -> Result<impl Iterator<Item = Result<Entry, StoreError>> + '_, StoreError> {
        let parts = self
            .files
            .iter()
            .map(|f| f.iter_all().map(|it| it.peekable()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(MergeByKey { parts })
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let [only] = self.files.as_slice() {
            return only.get(key);
        }
        let routed = route::unit_of(&self.templates, key, self.files.len());
        if let Some(unit) = routed
            && let Some(value) = self.files[unit].get(key)?
        {
            return Ok(Some(value));
        }
        for (unit, file) in self.files.iter().enumerate() {
            if Some(unit) == routed {
                continue;
            }
            if let Some(value) = file.get(key)? {
                if routed.is_some() {
                    self.warn_misrouted(key, unit);
                }
                return Ok(Some(value));
            }
        }
        Ok(None)
    }

    /// Up to `limit` entries with `prefix`, ascending, strictly after
    /// `start_after` when given.
    pub fn scan(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Entries, StoreError> {
        if let [only] = self.files.as_slice() {
            return only.scan(prefix, start_after, limit);
        }
        let mut entries = Vec::new();
        for file in &self.files {
            entries.extend(file.scan(prefix, start_after, limit)?);
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let before = entries.len();
        entries.dedup_by(|later, first| later.0 == first.0);
        if entries.len() < before {
            self.warn_shared_keys();
        }
        entries.truncate(limit);
        Ok(entries)
    }

    /// A key of a template's form was in another unit than its event key's
    /// partition: the events are not partitioned as the template says (a
    /// producer with another partitioner?). Answers stay right, only slower;
    /// said at most once a minute.
    fn warn_misrouted(&self, key: &[u8], unit: usize) {
        static LAST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        if once_a_minute(&LAST) {
            tracing::warn!(
                state_file = %self.path().display(),
                key = %String::from_utf8_lossy(key),
                found_in_unit = unit,
                "a state key was not in the unit its key_templates point to: its events were not partitioned by Kafka's default partitioner on the embedded key; lookups still ask every unit"
            );
        }
    }

    /// Two units hold one key: the projection writes it from two partitions,
    /// so it is not partitioned as its sidecar says. Said at most once a
    /// minute per process (a scan may meet many such keys).
    fn warn_shared_keys(&self) {
        static LAST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        if once_a_minute(&LAST) {
            tracing::warn!(
                state_file = %self.path().display(),
                "a key is held by two units of a partitioned projection: it is written from two partitions, so the projection is not partitioned; remove scale = \"partitioned\" from its sidecar (answers show one unit's value)"
            );
        }
    }

    /// BLAKE3 of every state entry in key order (each key and value
    /// length-prefixed): two states are equal exactly when their hashes
    /// are, whatever the files' page layouts. A full scan.
    pub fn content_hash(&self) -> Result<blake3::Hash, StoreError> {
        let mut hasher = blake3::Hasher::new();
        for entry in self.iter_all()? {
            let (key, value) = entry?;
            hasher.update(&(key.len() as u64).to_le_bytes());
            hasher.update(&key);
            hasher.update(&(value.len() as u64).to_le_bytes());
            hasher.update(&value);
        }
        Ok(hasher.finalize())
    }

    pub fn offsets(&self) -> Result<Offsets, StoreError> {
        let mut offsets = Offsets::default();
        for file in &self.files {
            for (topic, partition, next) in file.offsets()?.iter() {
                offsets.set(topic, partition, next);
            }
        }
        Ok(offsets)
    }

    pub fn events_applied(&self) -> Result<u64, StoreError> {
        self.files.iter().map(FileReader::events_applied).sum()
    }

    /// Failure records of `kind` (all kinds when `None`) with ids above
    /// `after`, ascending, at most `limit`.
    pub fn failures(
        &self,
        kind: Option<FailureKind>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<FailedEvent>, StoreError> {
        if let [only] = self.files.as_slice() {
            return only.failures(kind, after, limit);
        }
        let units = self.files.len() as u64;
        let mut records = Vec::new();
        for (unit, file) in (0u64..).zip(&self.files) {
            // Global id = local * units + unit > after  <=>  local > (after - unit) / units.
            let local_after = after.and_then(|after| after.checked_sub(unit).map(|a| a / units));
            for mut record in file.failures(kind, local_after, limit)? {
                record.id = record.id * units + unit;
                records.push(record);
            }
        }
        records.sort_by_key(|r| r.id);
        records.truncate(limit);
        Ok(records)
    }

    pub fn failure_counts(&self) -> Result<FailureCounts, StoreError> {
        let mut counts = FailureCounts::default();
        for file in &self.files {
            let unit = file.failure_counts()?;
            counts.skipped += unit.skipped;
            counts.dead_letters += unit.dead_letters;
            counts.parked += unit.parked;
        }
        Ok(counts)
    }

    /// The newest failure record (the most recent failure of any unit).
    pub fn last_failure(&self) -> Result<Option<FailedEvent>, StoreError> {
        if let [only] = self.files.as_slice() {
            return only.last_failure();
        }
        let units = self.files.len() as u64;
        let mut newest: Option<FailedEvent> = None;
        for (unit, file) in (0u64..).zip(&self.files) {
            if let Some(mut record) = file.last_failure()? {
                record.id = record.id * units + unit;
                if newest
                    .as_ref()
                    .is_none_or(|n| (record.failed_at, record.id) > (n.failed_at, n.id))
                {
                    newest = Some(record);
                }
            }
        }
        Ok(newest)
    }

    /// The id the next failure record of this state file gets (a worker's
    /// own file).
    pub fn next_failure_id(&self) -> Result<u64, StoreError> {
        self.files
            .iter()
            .map(FileReader::next_failure_id)
            .try_fold(0, |max, id| id.map(|id| max.max(id)))
    }

    /// Number of keys in the state.
    pub fn key_count(&self) -> Result<u64, StoreError> {
        self.files.iter().map(FileReader::key_count).sum()
    }
}

/// Whether a minute has passed since `last` (Unix seconds) said yes; sets it.
fn once_a_minute(last: &std::sync::atomic::AtomicU64) -> bool {
    use std::sync::atomic::Ordering::Relaxed;
    let now = crate::projection::unix_now();
    let before = last.load(Relaxed);
    now >= before + 60 && last.compare_exchange(before, now, Relaxed, Relaxed).is_ok()
}

/// Entries of several ascending iterators, ascending.
struct MergeByKey<I: Iterator<Item = Result<Entry, StoreError>>> {
    parts: Vec<std::iter::Peekable<I>>,
}

impl<I: Iterator<Item = Result<Entry, StoreError>>> Iterator for MergeByKey<I> {
    type Item = Result<Entry, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut smallest: Option<(usize, &Vec<u8>)> = None;
        for (i, part) in self.parts.iter_mut().enumerate() {
            match part.peek() {
                None => {}
                // An error goes out first.
                Some(Err(_)) => {
                    let failed = i;
                    return self.parts[failed].next();
                }
                Some(Ok((key, _))) if smallest.is_none_or(|(_, best)| key < best) => {
                    smallest = Some((i, key));
                }
                Some(Ok(_)) => {}
            }
        }
        let (i, _) = smallest?;
        self.parts[i].next()
    }
}

/// A failed-event record of the state file at `path`.
fn decode_record(path: &Path, id: u64, bytes: &[u8]) -> Result<FailedEvent, StoreError> {
    FailedEvent::decode(bytes).map_err(|detail| StoreError::BadRecord {
        path: path.to_owned(),
        id,
        detail,
    })
}

/// Where a prefix scan starts: at the prefix, or just after `start_after`
/// when that lies at or beyond the prefix.
pub(crate) fn scan_lower_bound<'a>(
    prefix: &'a [u8],
    start_after: Option<&'a [u8]>,
) -> Bound<&'a [u8]> {
    match start_after {
        Some(after) if after >= prefix => Bound::Excluded(after),
        _ => Bound::Included(prefix),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(overlay: &mut Overlay, key: &str, value: &str) {
        overlay.put(key.as_bytes().to_vec(), value.as_bytes().to_vec());
    }

    /// A unit's state file holding `keys`, at offset `next` of `partition`.
    fn unit(dir: &Path, partition: u32, keys: &[&str], next: u64) -> StateStore {
        let store = StateStore::open(&dir.join(format!("u{partition}.redb"))).unwrap();
        let mut overlay = Overlay::default();
        for key in keys {
            put(&mut overlay, key, &format!("from {partition}"));
        }
        let mut offsets = Offsets::default();
        offsets.set("orders", partition, next);
        store
            .commit(
                &overlay,
                CommitPositions {
                    offsets: &offsets,
                    events_applied: next,
                },
                true,
            )
            .unwrap();
        store
    }

    #[test]
    fn units_read_as_one_state_in_key_order() {
        let dir = tempfile::tempdir().unwrap();
        let units = [
            unit(dir.path(), 0, &["c/a", "c/d", "o/1"], 5),
            unit(dir.path(), 1, &["c/b", "c/e"], 3),
            unit(dir.path(), 2, &[], 0),
            unit(dir.path(), 3, &["c/c", "o/2"], 4),
        ];
        let reader = StateReader::units(
            units
                .iter()
                .map(|u| u.reader().unwrap())
                .collect::<Vec<_>>(),
        );
        assert_eq!(reader.unit_count(), 4);
        assert_eq!(reader.get(b"c/e").unwrap(), Some(b"from 1".to_vec()));
        assert_eq!(reader.get(b"o/2").unwrap(), Some(b"from 3".to_vec()));
        assert_eq!(reader.get(b"c/z").unwrap(), None);
        let keys = |entries: Entries| -> Vec<String> {
            entries
                .into_iter()
                .map(|(k, _)| String::from_utf8(k).unwrap())
                .collect()
        };
        // Pages of a merged scan, as a client walks them.
        assert_eq!(keys(reader.scan(b"c/", None, 2).unwrap()), ["c/a", "c/b"]);
        assert_eq!(
            keys(reader.scan(b"c/", Some(b"c/b"), 2).unwrap()),
            ["c/c", "c/d"]
        );
        assert_eq!(keys(reader.scan(b"c/", Some(b"c/d"), 2).unwrap()), ["c/e"]);
        let all: Vec<String> = reader
            .iter_all()
            .unwrap()
            .map(|e| String::from_utf8(e.unwrap().0).unwrap())
            .collect();
        assert_eq!(all, ["c/a", "c/b", "c/c", "c/d", "c/e", "o/1", "o/2"]);
        let offsets = reader.offsets().unwrap();
        assert_eq!(
            (0..4).map(|p| offsets.get("orders", p)).collect::<Vec<_>>(),
            [5, 3, 0, 4]
        );
        assert_eq!(reader.events_applied().unwrap(), 12);
        assert_eq!(reader.key_count().unwrap(), 7);
        let fork = reader.fork().unwrap();
        assert_eq!(fork.get(b"c/c").unwrap(), Some(b"from 3".to_vec()));
        // Routed lookups ask the key's unit first and the others after it:
        // keys that are not where the template points are still found.
        let routed = reader
            .fork()
            .unwrap()
            .with_key_templates(vec![KeyTemplate::parse("c/{key}").unwrap()].into());
        for (key, unit) in [("c/a", 0), ("c/b", 1), ("c/c", 3), ("c/d", 0), ("c/e", 1)] {
            assert_eq!(
                routed.get(key.as_bytes()).unwrap(),
                Some(format!("from {unit}").into_bytes()),
                "{key}"
            );
        }
        assert_eq!(routed.get(b"c/zz").unwrap(), None);
    }

    #[test]
    fn a_garbage_file_is_reported_as_corrupted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        std::fs::write(&path, b"this is not a redb file any more").unwrap();
        let err = StateStore::open(&path).unwrap_err();
        assert!(err.is_corrupt(), "{err:?}");
    }

    #[test]
    fn state_and_offsets_commit_together_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p/v.redb");
        {
            let store = StateStore::open(&path).unwrap();
            let mut overlay = Overlay::default();
            put(&mut overlay, "a", "1");
            put(&mut overlay, "b", "2");
            let mut offsets = Offsets::default();
            offsets.set("orders", 2, 7);
            store
                .commit(
                    &overlay,
                    CommitPositions {
                        offsets: &offsets,
                        events_applied: 7,
                    },
                    true,
                )
                .unwrap();
        }
        let store = StateStore::open(&path).unwrap();
        let reader = store.reader().unwrap();
        assert_eq!(reader.get(b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(reader.offsets().unwrap().get("orders", 2), 7);
        assert_eq!(reader.events_applied().unwrap(), 7);
        assert_eq!(reader.key_count().unwrap(), 2);
    }

    #[test]
    fn scan_respects_prefix_start_after_and_limit() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&dir.path().join("s.redb")).unwrap();
        let mut overlay = Overlay::default();
        for key in ["a/1", "a/2", "a/3", "b/1", "a"] {
            put(&mut overlay, key, "x");
        }
        store
            .commit(
                &overlay,
                CommitPositions {
                    offsets: &Offsets::default(),
                    events_applied: 0,
                },
                false,
            )
            .unwrap();
        let reader = store.reader().unwrap();
        let keys = |entries: Vec<(Vec<u8>, Vec<u8>)>| {
            entries
                .into_iter()
                .map(|(k, _)| String::from_utf8(k).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            keys(reader.scan(b"a/", None, 10).unwrap()),
            ["a/1", "a/2", "a/3"]
        );
        assert_eq!(keys(reader.scan(b"a/", Some(b"a/1"), 1).unwrap()), ["a/2"]);
        assert_eq!(
            keys(reader.scan(b"a/", Some(b"0"), 10).unwrap()),
            ["a/1", "a/2", "a/3"]
        );
        assert!(reader.scan(b"a/", Some(b"a/3"), 10).unwrap().is_empty());
    }
}
