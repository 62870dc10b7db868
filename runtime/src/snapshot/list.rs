//! Finding snapshots: listings from headers alone, and the newest one whose
//! checksum holds.

use std::cmp::Reverse;
use std::path::{Path, PathBuf};

use super::layout::{self, SnapFile};
use super::{SnapshotError, SnapshotInfo, inspect, verify};

/// One file of a listing.
#[derive(Debug)]
pub enum Listed {
    Valid(SnapshotInfo),
    /// A `.snap` file whose header or trailer cannot be read.
    Invalid {
        path: PathBuf,
        reason: SnapshotError,
    },
}

impl Listed {
    pub fn path(&self) -> &Path {
        match self {
            Self::Valid(info) => &info.path,
            Self::Invalid { path, .. } => path,
        }
    }
}

/// Every snapshot of projection `name`, all hashes, newest first, from the
/// headers alone (fast). Files that cannot be read are listed as
/// [`Listed::Invalid`] with the reason.
pub fn list(dir: &Path, name: &str) -> Result<Vec<Listed>, SnapshotError> {
    layout::check_component("projection name", name)?;
    let mut listed = Vec::new();
    for folder in layout::subfolders(&dir.join(name))? {
        let Some(hash) = folder.file_name().and_then(|h| h.to_str()) else {
            continue;
        };
        listed.extend(list_version(dir, name, hash)?);
    }
    listed.sort_by_key(|l| (Reverse(order(l)), l.path().to_owned()));
    Ok(listed)
}

/// The snapshots of one projection version, newest first, from the headers.
pub fn list_version(dir: &Path, name: &str, hash: &str) -> Result<Vec<Listed>, SnapshotError> {
    let folder = layout::version_dir(dir, name, hash)?;
    let mut listed: Vec<Listed> = layout::snapshot_files(&folder)?
        .into_iter()
        .map(|file| inspect_in_place(file, name, hash))
        .collect();
    listed.sort_by_key(|l| (Reverse(order(l)), l.path().to_owned()));
    Ok(listed)
}

/// The newest snapshot of (`name`, `hash`) that passes the full checksum.
/// Bad ones are skipped with a warning naming the file and the reason.
pub fn latest_valid(
    dir: &Path,
    name: &str,
    hash: &str,
) -> Result<Option<SnapshotInfo>, SnapshotError> {
    for listed in list_version(dir, name, hash)? {
        let result = match listed {
            Listed::Valid(info) => verify(&info.path).map_err(|reason| (info.path, reason)),
            Listed::Invalid { path, reason } => Err((path, reason)),
        };
        match result {
            Ok(info) => return Ok(Some(info)),
            Err((path, reason)) => tracing::warn!(
                file = %path.display(),
                %reason,
                "skipping snapshot that failed verification"
            ),
        }
    }
    Ok(None)
}

/// Reads the header of a file found in the folder of (`name`, `hash`) and
/// checks that it belongs there.
fn inspect_in_place(file: SnapFile, name: &str, hash: &str) -> Listed {
    let result = inspect(&file.path).and_then(|info| {
        if info.meta.name == name && info.meta.hash == hash {
            Ok(info)
        } else {
            Err(SnapshotError::Misplaced {
                path: file.path.clone(),
                found: format!("{}/{}", info.meta.name, info.meta.hash),
                expected: format!("{name}/{hash}"),
            })
        }
    });
    match result {
        Ok(info) => Listed::Valid(info),
        Err(reason) => Listed::Invalid {
            path: file.path,
            reason,
        },
    }
}

/// Newest first: by creation time, then events applied. An unreadable file
/// is placed by its file name.
fn order(listed: &Listed) -> (u64, u64) {
    match listed {
        Listed::Valid(info) => (info.meta.created_unix_ms, info.meta.events_applied),
        Listed::Invalid { path, .. } => path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(layout::parse_file_name)
            .unwrap_or((0, 0)),
    }
}
