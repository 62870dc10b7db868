//! Retention: keep the newest N snapshots of each projection version.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::SnapshotError;
use super::layout::{self, TMP_SUFFIX};

/// A temp file this old is left over from a crashed writer, not one being
/// written now.
const STALE_TMP_AGE: Duration = Duration::from_secs(3600);

/// Deletes all but the newest `keep` snapshots of (`name`, `hash`), judged by
/// their file names (files named otherwise are not ours and stay), and temp
/// files left by crashed writers. Returns the deleted snapshots.
pub fn prune(
    dir: &Path,
    name: &str,
    hash: &str,
    keep: usize,
) -> Result<Vec<PathBuf>, SnapshotError> {
    if keep == 0 {
        return Err(SnapshotError::InvalidRetention { keep });
    }
    let folder = layout::version_dir(dir, name, hash)?;
    let mut removed = Vec::new();
    let ours = layout::snapshot_files(&folder)?
        .into_iter()
        .filter(|f| f.order.is_some());
    for old in ours.skip(keep) {
        std::fs::remove_file(&old.path).map_err(SnapshotError::io("delete", &old.path))?;
        removed.push(old.path);
    }
    remove_stale_temp_files(&folder)?;
    if !removed.is_empty() {
        layout::sync_dir(&folder)?;
    }
    Ok(removed)
}

fn remove_stale_temp_files(folder: &Path) -> Result<(), SnapshotError> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let is_tmp = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with('.') && n.ends_with(TMP_SUFFIX));
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > STALE_TMP_AGE);
        if is_tmp && stale {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(SnapshotError::io("delete", &path))?;
        }
    }
    Ok(())
}
