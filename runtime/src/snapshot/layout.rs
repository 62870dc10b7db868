//! Where snapshots live: `<dir>/<name>/<hash>/<created-unix-ms>-<events_applied>.snap`,
//! with temp files `.<random>.snap.tmp` beside them while being written.

use std::cmp::Reverse;
use std::io;
use std::path::{Path, PathBuf};

use super::SnapshotError;

const EXTENSION: &str = ".snap";
pub(crate) const TMP_SUFFIX: &str = ".snap.tmp";

pub(crate) use projector_formats::snapshot::check_component;

/// The folder holding the snapshots of one projection version.
pub fn version_dir(dir: &Path, name: &str, hash: &str) -> Result<PathBuf, SnapshotError> {
    check_component("projection name", name)?;
    check_component("module hash", hash)?;
    Ok(dir.join(name).join(hash))
}

pub(crate) fn file_name(created_unix_ms: u64, events_applied: u64) -> String {
    format!("{created_unix_ms}-{events_applied}{EXTENSION}")
}

/// (created ms, events applied) from a file name the writer gave.
pub(crate) fn parse_file_name(file_name: &str) -> Option<(u64, u64)> {
    let (created, events) = file_name.strip_suffix(EXTENSION)?.split_once('-')?;
    Some((created.parse().ok()?, events.parse().ok()?))
}

/// A `.snap` file in a version folder.
#[derive(Debug)]
pub(crate) struct SnapFile {
    pub path: PathBuf,
    /// From the file name; `None` if someone else named it.
    pub order: Option<(u64, u64)>,
}

/// The `.snap` files in `folder`, newest first by file name (unparseable
/// names last). A missing folder has none.
pub(crate) fn snapshot_files(folder: &Path) -> Result<Vec<SnapFile>, SnapshotError> {
    let mut files = Vec::new();
    for entry in read_dir(folder)? {
        let entry = entry.map_err(SnapshotError::io("list", folder))?;
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        if file_name.starts_with('.') || !file_name.ends_with(EXTENSION) {
            continue;
        }
        files.push(SnapFile {
            path: entry.path(),
            order: parse_file_name(file_name),
        });
    }
    files.sort_by_key(|f| (Reverse(f.order), f.path.clone()));
    Ok(files)
}

/// Subfolders of `folder` (one per hash under a name folder).
pub(crate) fn subfolders(folder: &Path) -> Result<Vec<PathBuf>, SnapshotError> {
    let mut dirs = Vec::new();
    for entry in read_dir(folder)? {
        let entry = entry.map_err(SnapshotError::io("list", folder))?;
        let is_dir = entry
            .file_type()
            .map_err(SnapshotError::io("list", folder))?
            .is_dir();
        if is_dir {
            dirs.push(entry.path());
        }
    }
    dirs.sort();
    Ok(dirs)
}

fn read_dir(folder: &Path) -> Result<Vec<io::Result<std::fs::DirEntry>>, SnapshotError> {
    match std::fs::read_dir(folder) {
        Ok(entries) => Ok(entries.collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(SnapshotError::io("list", folder)(e)),
    }
}

/// Makes a rename or creation in `folder` durable.
pub(crate) fn sync_dir(folder: &Path) -> Result<(), SnapshotError> {
    std::fs::File::open(folder)
        .and_then(|dir| dir.sync_all())
        .map_err(SnapshotError::io("sync folder", folder))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip_and_bad_names_are_refused() {
        assert_eq!(parse_file_name(&file_name(1700, 42)), Some((1700, 42)));
        assert_eq!(parse_file_name("x-1.snap"), None);
        for bad in ["", ".", "..", "a/b", "a\\b", "a\0b"] {
            assert!(check_component("name", bad).is_err(), "{bad:?}");
        }
        assert!(version_dir(Path::new("d"), "orders", "ab12").is_ok());
    }
}
