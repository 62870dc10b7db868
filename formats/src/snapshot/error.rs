//! What can go wrong with a snapshot. Every variant names the file and says
//! what to do about it: snapshot files are untrusted bytes (copied around,
//! cut short by crashes, damaged on disk), so bad input is an error, never a
//! panic.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    #[error("could not {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Reading the projection's state file failed (the runtime's store
    /// error, which this crate does not know).
    #[error(transparent)]
    Store(Box<dyn std::error::Error + Send + Sync>),

    /// The writer was asked to give up (the process is shutting down); its
    /// temp file is deleted and no snapshot was added.
    #[error("the snapshot of {name} was abandoned before it was complete: the process is stopping")]
    Abandoned { name: String },

    #[error(
        "{path} is not a Projector snapshot (it does not start with PJSNAP): point at a .snap file under data/snapshots"
    )]
    NotASnapshot { path: PathBuf },

    #[error(
        "{path} uses snapshot format version {found}, this build reads version {supported}: restore it with the projector release that wrote it, or a newer one"
    )]
    UnsupportedVersion {
        path: PathBuf,
        found: u16,
        supported: u16,
    },

    #[error(
        "{path} is truncated: {detail} (cut short by a crash or an incomplete copy); delete it and use an older snapshot"
    )]
    Truncated { path: PathBuf, detail: String },

    #[error(
        "{path} is corrupt: its {part} checksum does not match; delete it and use an older snapshot"
    )]
    ChecksumMismatch { path: PathBuf, part: &'static str },

    #[error(
        "{path} is malformed: {detail}; delete it and use an older snapshot (if its checksum matched, please report it: the writer has a bug)"
    )]
    Malformed { path: PathBuf, detail: String },

    #[error(
        "{path} is a snapshot of {found}, but it lies in the folder of {expected}: move it back to data/snapshots/<name>/<hash>/"
    )]
    Misplaced {
        path: PathBuf,
        found: String,
        expected: String,
    },

    #[error(
        "restore target {path} already exists: restore never overwrites a state file; move it away first"
    )]
    TargetExists { path: PathBuf },

    #[error(
        "{what} {value:?} cannot be used as a snapshot folder name: it must be non-empty, at most 255 bytes, not '.' or '..', without '/', '\\\\' or NUL"
    )]
    InvalidName { what: &'static str, value: String },

    #[error(
        "state file {path} holds an entry of {len} bytes, over the snapshot limit of {limit} bytes: lower limits.max_key_bytes / limits.max_value_bytes"
    )]
    EntryTooLarge {
        path: PathBuf,
        len: usize,
        limit: usize,
    },

    #[error(
        "the snapshot header of {name} would be {len} bytes, over the limit of {limit}: its {records} dead-lettered and parked events make it so; deploy a fix and run `projector dead-letters retry {name}`, then snapshot again"
    )]
    HeaderTooLarge {
        name: String,
        records: usize,
        len: usize,
        limit: usize,
    },
    #[error("snapshot retention must keep at least 1 snapshot, not {keep}: set a positive count")]
    InvalidRetention { keep: usize },
}

impl SnapshotError {
    /// Maps an I/O error of `action` on `path`.
    pub fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }
}
