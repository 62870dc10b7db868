//! Projection state: one redb file per projection version, holding the state
//! table, the offsets reached, and metadata. State and offsets only ever
//! change together, in one write transaction.

mod overlay;

use std::ops::Bound;
use std::path::{Path, PathBuf};

use redb::{Database, Durability, ReadOnlyTable, ReadableDatabase, ReadableTable, TableDefinition};

pub use overlay::Overlay;

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

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error(
        "state file {path} could not be opened: {source} (if it is corrupt, move it away and the projection will rebuild from its sources)"
    )]
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
        }
    }
}

/// The state file of one projection version.
#[derive(Debug)]
pub struct StateStore {
    db: Database,
    path: PathBuf,
}

/// What a batch commit writes besides the state changes.
#[derive(Debug)]
pub struct CommitPositions<'a> {
    pub offsets: &'a Offsets,
    pub events_applied: u64,
}

impl StateStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open_err = |source: redb::Error| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| open_err(e.into()))?;
        }
        let db = Database::create(path).map_err(|e| open_err(e.into()))?;
        let store = Self {
            db,
            path: path.to_owned(),
        };
        let txn = store.db.begin_write().map_err(|e| open_err(e.into()))?;
        txn.open_table(STATE).map_err(|e| open_err(e.into()))?;
        txn.open_table(OFFSETS).map_err(|e| open_err(e.into()))?;
        txn.open_table(META).map_err(|e| open_err(e.into()))?;
        txn.commit().map_err(|e| open_err(e.into()))?;
        Ok(store)
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
        let txn = self.db.begin_read().map_err(|e| self.storage(e))?;
        Ok(StateReader {
            state: txn.open_table(STATE).map_err(|e| self.storage(e))?,
            offsets: txn.open_table(OFFSETS).map_err(|e| self.storage(e))?,
            meta: txn.open_table(META).map_err(|e| self.storage(e))?,
            path: self.path.clone(),
        })
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
        let mut txn = self.db.begin_write().map_err(|e| self.storage(e))?;
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
        }
        txn.commit().map_err(|e| self.storage(e))
    }

    /// Bulk load for restoring a snapshot into a fresh file: inserts
    /// `entries` in one large non-durable write transaction. Nothing is
    /// durable until [`StateStore::finish_import`].
    pub fn import_entries(&self, entries: &[(Vec<u8>, Vec<u8>)]) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(|e| self.storage(e))?;
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
        let mut txn = self.db.begin_write().map_err(|e| self.storage(e))?;
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
        txn.commit().map_err(|e| self.storage(e))
    }

    /// Makes every earlier non-durable commit durable.
    pub fn sync(&self) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(|e| self.storage(e))?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| self.storage(e))?;
        txn.commit().map_err(|e| self.storage(e))
    }
}

/// Read access to one consistent version of a projection's state.
pub struct StateReader {
    state: ReadOnlyTable<&'static [u8], &'static [u8]>,
    offsets: ReadOnlyTable<(&'static str, u32), u64>,
    meta: ReadOnlyTable<&'static str, u64>,
    path: PathBuf,
}

impl std::fmt::Debug for StateReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateReader")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl StateReader {
    fn storage(&self, err: impl Into<redb::Error>) -> StoreError {
        StoreError::Storage {
            path: self.path.clone(),
            source: err.into(),
        }
    }

    /// The state file this reader reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every state entry, ascending, from this reader's one transaction:
    /// a streaming full scan (for snapshots), so the state is never held in
    /// memory whole.
    pub fn iter_all(
        &self,
    ) -> Result<impl Iterator<Item = Result<Entry, StoreError>> + '_, StoreError> {
        let range = self.state.iter().map_err(|e| self.storage(e))?;
        Ok(range.map(|entry| {
            let (key, value) = entry.map_err(|e| self.storage(e))?;
            Ok((key.value().to_vec(), value.value().to_vec()))
        }))
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .state
            .get(key)
            .map_err(|e| self.storage(e))?
            .map(|v| v.value().to_vec()))
    }

    /// Up to `limit` entries with `prefix`, ascending, strictly after
    /// `start_after` when given.
    pub fn scan(
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

    pub fn offsets(&self) -> Result<Offsets, StoreError> {
        let mut offsets = Offsets::default();
        for entry in self.offsets.iter().map_err(|e| self.storage(e))? {
            let (key, next) = entry.map_err(|e| self.storage(e))?;
            let (topic, partition) = key.value();
            offsets.set(topic, partition, next.value());
        }
        Ok(offsets)
    }

    pub fn events_applied(&self) -> Result<u64, StoreError> {
        Ok(self
            .meta
            .get(EVENTS_APPLIED)
            .map_err(|e| self.storage(e))?
            .map_or(0, |v| v.value()))
    }

    /// Number of keys in the state table.
    pub fn key_count(&self) -> Result<u64, StoreError> {
        use redb::ReadableTableMetadata;
        self.state.len().map_err(|e| self.storage(e))
    }
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
