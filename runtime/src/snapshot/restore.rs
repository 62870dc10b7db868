//! Restoring: a snapshot becomes a new state file. It is built under a temp
//! name beside the target and renamed into place only once the checksum has
//! held and the import is durable, so a bad snapshot never leaves a
//! half-restored state file behind.

use std::io;
use std::path::Path;

use super::layout;
use super::reader::SnapshotFile;
use super::{SnapshotError, SnapshotInfo};
use crate::store::{CommitPositions, FailureChanges, Overlay, StateStore};

/// Creates the state file `target` (which must not exist) from `snapshot`,
/// with its state, offsets and events applied. Returns what the snapshot's
/// header says, for the caller to check name, hash and state version.
pub fn restore(snapshot: &Path, target: &Path) -> Result<SnapshotInfo, SnapshotError> {
    let target_exists = || SnapshotError::TargetExists {
        path: target.to_owned(),
    };
    if target.symlink_metadata().is_ok() {
        return Err(target_exists());
    }
    let source = SnapshotFile::open(snapshot)?;
    let meta = source.info().meta;

    let folder = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(folder).map_err(SnapshotError::io("create", folder))?;
    let target_name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Deleted on drop, so on every error path.
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{target_name}."))
        .suffix(".restoring")
        .tempfile_in(folder)
        .map_err(SnapshotError::io("create a temp file in", folder))?
        .into_temp_path();

    let info = {
        let store = StateStore::open(&tmp)?;
        let info = source.read_entries(|batch| Ok(store.import_entries(&batch)?))?;
        if !meta.failed_events.is_empty() {
            // Made durable by `finish_import`, with the offsets.
            store.commit_with_failures(
                &Overlay::default(),
                CommitPositions {
                    offsets: &meta.offsets,
                    events_applied: meta.events_applied,
                },
                &FailureChanges {
                    upsert: meta.failed_events.clone(),
                    resolved: Vec::new(),
                },
                false,
            )?;
        }
        store.finish_import(CommitPositions {
            offsets: &meta.offsets,
            events_applied: meta.events_applied,
        })?;
        let keys = store.reader()?.key_count()?;
        if keys != meta.key_count {
            return Err(SnapshotError::Malformed {
                path: snapshot.to_owned(),
                detail: format!("it lists {} keys but restored {keys}", meta.key_count),
            });
        }
        info
        // The store closes here, before the rename.
    };

    tmp.persist_noclobber(target).map_err(|e| {
        if e.error.kind() == io::ErrorKind::AlreadyExists {
            target_exists()
        } else {
            SnapshotError::io("rename into place", target)(e.error)
        }
    })?;
    layout::sync_dir(folder)?;
    Ok(info)
}
