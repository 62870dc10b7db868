//! Where each version's state lives: `<root>/<name>/<hash>.redb`.
//!
//! A version that takes over another's state (same state version) gets a
//! hard link under its own hash, so a restart finds its state by hash. A
//! file stays open at most once in the process (redb locks it), so stores are
//! shared through a table keyed by the file's inode.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use crate::store::StateStore;

/// What a sweep may delete of one projection's state files (never one a
/// version has open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sweep {
    /// Nothing: a rejected module file may provide this name.
    Keep,
    /// Files untouched for the retention time.
    Aged,
    /// Every file: the projection was removed for longer than the retention.
    Now,
}

pub(super) struct StateFiles {
    root: PathBuf,
    /// `data/snapshots`: a missing state file is restored from there.
    snapshots: PathBuf,
    /// (device, inode) -> the store open on that file.
    open: Mutex<HashMap<(u64, u64), Weak<StateStore>>>,
    /// redb's page cache of each state file, bytes.
    cache_bytes: usize,
    /// The shared snapshot store: a snapshot newer than the local ones is
    /// downloaded from there before a restore.
    store: Option<Arc<crate::snapshot::SnapshotStore>>,
}

fn inode(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl StateFiles {
    /// Every state file opened gets a page cache of `cache_bytes`.
    pub(super) fn new(
        root: PathBuf,
        snapshots: PathBuf,
        cache_bytes: usize,
        store: Option<Arc<crate::snapshot::SnapshotStore>>,
    ) -> Self {
        Self {
            root,
            snapshots,
            open: Mutex::new(HashMap::new()),
            cache_bytes,
            store,
        }
    }

    fn canonical(&self, name: &str, hash: &str) -> PathBuf {
        self.root.join(name).join(format!("{hash}.redb"))
    }

    /// Opens the state of version `hash` of `name` (creating it empty), or
    /// with `fresh` a new file `<hash>.<fresh>.redb` for a rebuild.
    pub(super) fn open(
        &self,
        name: &str,
        hash: &str,
        fresh: Option<&str>,
    ) -> Result<Arc<StateStore>, String> {
        let path = match fresh {
            Some(tag) => self.root.join(name).join(format!("{hash}.{tag}.redb")),
            None => self.canonical(name, hash),
        };
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(store) = inode(&path)
            .and_then(|id| open.get(&id))
            .and_then(Weak::upgrade)
        {
            return Ok(store);
        }
        if fresh.is_none() && !path.exists() {
            self.restore_latest(name, hash, &path);
        }
        let store = match open_until_released(&path, fresh.is_none(), self.cache_bytes) {
            Ok(store) => store,
            // A damaged file is moved aside (never deleted) and the state
            // comes back from a snapshot plus the tail, or a full replay.
            Err(Failure::Damaged(reason)) if fresh.is_none() => {
                let aside = set_aside_path(&path, "corrupt");
                tracing::warn!(
                    projection = %name,
                    file = %path.display(),
                    moved_to = %aside.display(),
                    "state file cannot be opened ({reason}); moving it aside and rebuilding"
                );
                std::fs::rename(&path, &aside)
                    .map_err(|e| format!("cannot move {} aside: {e}", path.display()))?;
                if !self.restore_latest(name, hash, &path) {
                    tracing::warn!(
                        projection = %name,
                        file = %path.display(),
                        "no valid snapshot of this version: rebuilding the state from the start of its sources"
                    );
                }
                StateStore::open_with_cache(&path, self.cache_bytes).map_err(|e| e.to_string())?
            }
            Err(Failure::Damaged(reason) | Failure::Busy(reason) | Failure::Other(reason)) => {
                return Err(reason);
            }
        };
        let store = Arc::new(store);
        if let Some(id) = inode(&path) {
            open.insert(id, Arc::downgrade(&store));
        }
        open.retain(|_, store| store.strong_count() > 0);
        Ok(store)
    }

    /// Deletes state files no version has open and nobody touched for
    /// `retention` (kept that long so a removed or replaced module can come
    /// back without replay), as `policy` allows for each projection name,
    /// and the temp files of restores a kill interrupted.
    pub(super) fn sweep(&self, retention: std::time::Duration, policy: impl Fn(&str) -> Sweep) {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let in_use = |path: &Path| {
            inode(path)
                .and_then(|id| open.get(&id))
                .is_some_and(|store| store.strong_count() > 0)
        };
        for dir in std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = dir.file_name().to_string_lossy().into_owned();
            let policy = policy(&name);
            for file in std::fs::read_dir(dir.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let path = file.path();
                // Restores run on the registry's thread, as sweeps do: a
                // temp file seen here was left by a process that died.
                if path.extension().is_some_and(|e| e == "restoring") {
                    match std::fs::remove_file(&path) {
                        Ok(()) => {
                            tracing::info!(file = %path.display(), "deleted the temp file of an interrupted restore")
                        }
                        Err(e) => {
                            tracing::warn!(file = %path.display(), "cannot delete the temp file of an interrupted restore: {e}")
                        }
                    }
                    continue;
                }
                if path.extension().is_none_or(|e| e != "redb") || in_use(&path) {
                    continue;
                }
                let due = match policy {
                    Sweep::Keep => false,
                    Sweep::Now => true,
                    Sweep::Aged => file
                        .metadata()
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|modified| modified.elapsed().ok())
                        .is_some_and(|age| age >= retention),
                };
                if !due {
                    continue;
                }
                match std::fs::remove_file(&path) {
                    Ok(()) => {
                        tracing::info!(file = %path.display(), "deleted state file past its retention")
                    }
                    Err(e) => {
                        tracing::warn!(file = %path.display(), "cannot delete old state file: {e}")
                    }
                }
            }
            if policy == Sweep::Now {
                self.delete_snapshots(&name);
            }
        }
    }

    /// A projection removed past the retention keeps no local snapshots
    /// either (the shared store's copies stay: other machines may use them).
    fn delete_snapshots(&self, name: &str) {
        let folder = self.snapshots.join(name);
        match std::fs::remove_dir_all(&folder) {
            Ok(()) => {
                tracing::info!(folder = %folder.display(), "deleted the snapshots of a projection removed past its retention")
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(folder = %folder.display(), "cannot delete the snapshots of a removed projection: {e}")
            }
        }
    }

    pub(super) fn snapshots_dir(&self) -> &Path {
        &self.snapshots
    }

    /// Restores `snapshot` into a new file `<hash>.<tag>.redb` and opens it.
    pub(super) fn restore_fresh(
        &self,
        name: &str,
        hash: &str,
        snapshot: &Path,
        tag: &str,
    ) -> Result<Arc<StateStore>, String> {
        let path = self.root.join(name).join(format!("{hash}.{tag}.redb"));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        crate::snapshot::restore(snapshot, &path).map_err(|e| e.to_string())?;
        self.open(name, hash, Some(tag))
    }

    /// Restores the newest valid snapshot of this version into `path`, if
    /// there is one; corrupt snapshots are skipped with a warning. Without
    /// one (`false`) the state starts empty and is rebuilt from the sources.
    fn restore_latest(&self, name: &str, hash: &str, path: &Path) -> bool {
        if let Some(store) = &self.store {
            match store.fetch_newer(&self.snapshots, name, hash) {
                Ok(Some(file)) => tracing::info!(
                    projection = %name,
                    version = %&hash[..12.min(hash.len())],
                    store = %store.url(),
                    file = %file.display(),
                    "downloaded a snapshot from the snapshot store"
                ),
                Ok(None) => {}
                Err(e) => tracing::warn!(
                    projection = %name,
                    "{e}; restoring from the data folder's snapshots, if any"
                ),
            }
        }
        let latest = match crate::snapshot::latest_valid(&self.snapshots, name, hash) {
            Ok(Some(latest)) => latest,
            Ok(None) => return false,
            Err(e) => {
                tracing::warn!(projection = %name, version = %&hash[..12.min(hash.len())], "cannot look for snapshots: {e}");
                return false;
            }
        };
        let started = std::time::Instant::now();
        match crate::snapshot::restore(&latest.path, path) {
            Ok(info) => {
                tracing::info!(
                    projection = %name,
                    version = %&hash[..12.min(hash.len())],
                    snapshot = %info.path.display(),
                    events_applied = info.meta.events_applied,
                    took_ms = started.elapsed().as_millis() as u64,
                    "state restored from snapshot; replaying the tail"
                );
                true
            }
            Err(e) => {
                tracing::warn!(projection = %name, version = %&hash[..12.min(hash.len())], "restoring a snapshot failed, rebuilding from the sources: {e}");
                false
            }
        }
    }

    /// Makes `<hash>.redb` of `name` name the file `store` uses.
    pub(super) fn alias(&self, name: &str, hash: &str, store: &StateStore) -> Result<(), String> {
        let target = self.canonical(name, hash);
        if inode(&target).is_some() && inode(&target) == inode(store.path()) {
            return Ok(());
        }
        if target.exists() {
            std::fs::remove_file(&target)
                .map_err(|e| format!("cannot replace {}: {e}", target.display()))?;
        }
        std::fs::hard_link(store.path(), &target).map_err(|e| {
            format!(
                "cannot link {} to {}: {e}",
                target.display(),
                store.path().display()
            )
        })
    }

    /// After a rebuild into `<hash>.<tag>.redb` replaced the serving file of
    /// the same hash, makes `<hash>.redb` name the rebuilt file (the old one
    /// is kept beside it as `<hash>.replaced-<time>.redb`). Returns what
    /// [`StateFiles::demote`] needs to undo it.
    pub(super) fn promote(
        &self,
        name: &str,
        hash: &str,
        store: &StateStore,
    ) -> Result<Promoted, String> {
        let canonical = self.canonical(name, hash);
        if inode(&canonical).is_some() && inode(&canonical) == inode(store.path()) {
            return Ok(Promoted::Already);
        }
        let kept = if canonical.exists() {
            let kept = unused(|| {
                self.root
                    .join(name)
                    .join(format!("{hash}.{}.redb", super::unique_tag("replaced")))
            });
            std::fs::rename(&canonical, &kept)
                .map_err(|e| format!("cannot move {} aside: {e}", canonical.display()))?;
            Some(kept)
        } else {
            None
        };
        if let Err(e) = self.alias(name, hash, store) {
            if let Some(kept) = &kept {
                let _ = std::fs::rename(kept, &canonical);
            }
            return Err(e);
        }
        Ok(Promoted::Replaced { canonical, kept })
    }

    /// Undoes a [`StateFiles::promote`]: the name goes back to the file it
    /// named (best effort; a failure is logged).
    pub(super) fn demote(&self, promoted: Promoted) {
        let Promoted::Replaced { canonical, kept } = promoted else {
            return;
        };
        let undone = std::fs::remove_file(&canonical).and_then(|()| match &kept {
            Some(kept) => std::fs::rename(kept, &canonical),
            None => Ok(()),
        });
        if let Err(e) = undone {
            tracing::error!(file = %canonical.display(), "cannot give the state file its earlier name back: {e}");
        }
    }
}

/// What a promote did, to undo it.
pub(super) enum Promoted {
    /// The name already named the file.
    Already,
    /// The name now names the rebuilt file; the file it named before (if
    /// any) was moved to `kept`.
    Replaced {
        canonical: PathBuf,
        kept: Option<PathBuf>,
    },
}

/// A name no file has, for a damaged file set aside (never deleted):
/// `<hash>.<kind>-<millis>-<n>`, without the `.redb` that sweeps look for.
fn set_aside_path(path: &Path, kind: &str) -> PathBuf {
    unused(|| path.with_extension(super::unique_tag(kind)))
}

/// The first name `candidate` gives (a new one each call) that no file has:
/// set-aside files must never overwrite one another, not even those of two
/// processes started within the same millisecond.
fn unused(candidate: impl Fn() -> PathBuf) -> PathBuf {
    loop {
        let path = candidate();
        if path.symlink_metadata().is_err() {
            return path;
        }
    }
}

/// Why a state file could not be opened.
enum Failure {
    /// Its content is damaged: setting it aside and rebuilding is the remedy.
    Damaged(String),
    /// Held open by another handle: a version of this process still
    /// closing it (its last owner dropping it on another thread), or
    /// another process.
    Busy(String),
    /// Anything else (rights, a full disk).
    Other(String),
}

/// Opens the state file at `path`. With `verify`, an existing file is first
/// read whole by redb's integrity check (checksums of every page, about
/// 1.5 ms per MB when cached): redb panics on a damaged page it reads
/// rather than returning an error, so a damaged file must be caught before
/// a worker or a query reads it. An empty file is damaged too (redb would
/// silently start it over), and any panic inside redb is caught.
/// Both the check and the store get a page cache of `cache_bytes`, so the
/// check does not hold a whole file in memory.
/// How long an open waits for another handle of the file to close.
const RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// [`open_checked`], waiting while the file is still held: a version
/// stopped a moment ago may still be closing it on another thread (its
/// last owner, e.g. a commit or snapshot thread, runs redb's close), and
/// a module put back right after a bad deploy must not be rejected for it.
fn open_until_released(
    path: &Path,
    verify: bool,
    cache_bytes: usize,
) -> Result<StateStore, Failure> {
    let deadline = std::time::Instant::now() + RELEASE_WAIT;
    loop {
        match open_checked(path, verify, cache_bytes) {
            Err(Failure::Busy(_)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(Failure::Busy(reason)) => {
                return Err(Failure::Busy(format!(
                    "{reason}; it is still open after {} s: is another projector running on this data folder?",
                    RELEASE_WAIT.as_secs()
                )));
            }
            other => return other,
        }
    }
}

fn open_checked(path: &Path, verify: bool, cache_bytes: usize) -> Result<StateStore, Failure> {
    let damaged = |why: String| Failure::Damaged(format!("state file {} {why}", path.display()));
    let classify = |e: crate::store::StoreError| {
        if e.is_already_open() {
            Failure::Busy(e.to_string())
        } else if e.is_corrupt() {
            Failure::Damaged(e.to_string())
        } else {
            Failure::Other(e.to_string())
        }
    };
    if verify && let Ok(meta) = std::fs::metadata(path) {
        if meta.len() == 0 {
            return Err(damaged("is empty (0 bytes)".into()));
        }
        let checked = crate::panic_guard::catch(|| {
            let mut db = redb::Builder::new()
                .set_cache_size(cache_bytes)
                .open(path)?;
            db.check_integrity().map_err(redb::Error::from)
        });
        match checked {
            Err(panic) => return Err(damaged(format!("is damaged: reading it failed ({panic})"))),
            Ok(Err(source)) => {
                let error = crate::store::StoreError::Open {
                    path: path.to_owned(),
                    source,
                };
                return Err(match error {
                    error if error.is_already_open() => Failure::Busy(error.to_string()),
                    crate::store::StoreError::Open { source, .. } if error.is_corrupt() => {
                        damaged(format!("failed its integrity check: {source}"))
                    }
                    error => Failure::Other(error.to_string()),
                });
            }
            Ok(Ok(false)) => tracing::warn!(
                file = %path.display(),
                "state file failed its integrity check and redb repaired it"
            ),
            Ok(Ok(true)) => {}
        }
    }
    match crate::panic_guard::catch(|| StateStore::open_with_cache(path, cache_bytes)) {
        Ok(Ok(store)) => Ok(store),
        Ok(Err(e)) => Err(classify(e)),
        Err(panic) => Err(damaged(format!("is damaged: reading it failed ({panic})"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_deletes_only_files_nobody_has_open() {
        let dir = tempfile::tempdir().unwrap();
        let files = StateFiles::new(
            dir.path().join("projections"),
            dir.path().join("snapshots"),
            crate::store::DEFAULT_CACHE_BYTES,
            None,
        );
        let serving = files.open("p", "aaa", None).unwrap();
        drop(files.open("p", "bbb", None).unwrap());
        files.sweep(std::time::Duration::ZERO, |_| Sweep::Aged);
        assert!(serving.path().exists(), "an open file is kept");
        assert!(!dir.path().join("projections/p/bbb.redb").exists());
        files.sweep(std::time::Duration::from_secs(3600), |_| Sweep::Aged);
        assert!(serving.path().exists());
    }

    #[test]
    fn damaged_files_set_aside_within_one_second_keep_distinct_names() {
        let dir = tempfile::tempdir().unwrap();
        let files = StateFiles::new(
            dir.path().join("projections"),
            dir.path().join("snapshots"),
            crate::store::DEFAULT_CACHE_BYTES,
            None,
        );
        let canonical = dir.path().join("projections/p/aaa.redb");
        std::fs::create_dir_all(canonical.parent().unwrap()).unwrap();
        for damage in [&b"first damaged file"[..], b"second damaged file"] {
            std::fs::write(&canonical, damage).unwrap();
            drop(files.open("p", "aaa", None).unwrap());
        }
        let mut aside: Vec<Vec<u8>> = std::fs::read_dir(canonical.parent().unwrap())
            .unwrap()
            .flatten()
            .filter(|f| f.file_name().to_string_lossy().contains(".corrupt-"))
            .map(|f| std::fs::read(f.path()).unwrap())
            .collect();
        aside.sort();
        assert_eq!(
            aside,
            [
                b"first damaged file".to_vec(),
                b"second damaged file".to_vec()
            ],
            "each damaged file is kept under its own name"
        );
    }

    #[test]
    fn sweep_deletes_interrupted_restores_and_follows_the_policy() {
        let dir = tempfile::tempdir().unwrap();
        let files = StateFiles::new(
            dir.path().join("projections"),
            dir.path().join("snapshots"),
            crate::store::DEFAULT_CACHE_BYTES,
            None,
        );
        drop(files.open("kept", "aaa", None).unwrap());
        drop(files.open("gone", "bbb", None).unwrap());
        let restoring = dir
            .path()
            .join("projections/kept/.aaa.redb.x1y2z3.restoring");
        std::fs::write(&restoring, b"half a restore").unwrap();
        let hour = std::time::Duration::from_secs(3600);
        files.sweep(hour, |name| {
            if name == "kept" {
                Sweep::Keep
            } else {
                Sweep::Now
            }
        });
        assert!(!restoring.exists(), "a kill's leftover restore is deleted");
        assert!(dir.path().join("projections/kept/aaa.redb").exists());
        assert!(!dir.path().join("projections/gone/bbb.redb").exists());
    }

    #[test]
    fn alias_and_promote_name_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let files = StateFiles::new(
            dir.path().join("projections"),
            dir.path().join("snapshots"),
            crate::store::DEFAULT_CACHE_BYTES,
            None,
        );
        let store = files.open("p", "aaa", None).unwrap();
        files.alias("p", "bbb", &store).unwrap();
        let again = files.open("p", "bbb", None).unwrap();
        assert!(Arc::ptr_eq(&store, &again), "one open store per file");

        let rebuilt = files.open("p", "aaa", Some("replay-1")).unwrap();
        files.promote("p", "aaa", &rebuilt).unwrap();
        assert_eq!(
            inode(&dir.path().join("projections/p/aaa.redb")),
            inode(rebuilt.path())
        );
    }
}
