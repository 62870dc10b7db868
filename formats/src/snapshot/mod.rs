//! Snapshot files (`*.snap`): the format, its reader and the pieces the
//! runtime's writer uses. A snapshot may be damaged or come from anyone
//! (restore takes an exported file), so every check fails cleanly with an
//! error that names the file.
//!
//! # File format, version 1
//!
//! This layout is a contract: later releases must keep reading it.
//! Integers are little-endian unless MessagePack encodes them.
//!
//! | offset      | size | field                                                    |
//! |-------------|------|----------------------------------------------------------|
//! | 0           | 6    | magic `PJSNAP`                                           |
//! | 6           | 2    | format version, u16 (1)                                  |
//! | 8           | 4    | metadata length M, u32 (at most 4 MiB)                   |
//! | 12          | M    | metadata: a MessagePack map, see below                   |
//! | 12+M        | 32   | header checksum: BLAKE3 of bytes `0 .. 12+M`             |
//! | 44+M        | B    | body: a zstd stream (written at level 3)                 |
//! | 44+M+B      | 8    | body length B, u64                                       |
//! | 52+M+B      | 32   | file checksum: BLAKE3 of every byte before it            |
//!
//! Metadata map keys (rmp-serde, named fields): `name` (str), `hash` (str,
//! the module's content hash), `state_version` (u32), `created_unix_ms`
//! (u64), `events_applied` (u64), `offsets` (map topic -> map partition ->
//! next offset to apply), `key_count` (u64). Readers ignore keys they do
//! not know, so optional fields can be added without a version bump; any
//! change an old reader cannot skip bumps the format version, and readers
//! reject versions they do not know.
//!
//! The body decompresses to zero or more MessagePack arrays (chunks, the
//! writer emits up to 10,000 entries each, readers accept up to 65,536),
//! each element an array `[key: bin, value: bin]`. Keys are strictly
//! ascending across the whole body, there are exactly `key_count` of them,
//! and nothing follows the last. A key or value is at most 256 MiB.
//!
//! The header checksum lets a listing reject a damaged header without
//! reading the body; the file checksum covers everything. Truncation shows
//! as a body length that does not match the file's length.

pub mod body;
pub mod checksum;
mod error;
pub mod format;
pub mod reader;
mod writer;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use error::SnapshotError;
pub use format::{FORMAT_VERSION, SnapshotMeta};
use reader::SnapshotFile;
pub use writer::write_file;

/// State entries, ascending by key.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// One snapshot file, as its header describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotInfo {
    pub path: PathBuf,
    pub size_bytes: u64,
    #[serde(flatten)]
    pub meta: SnapshotMeta,
}

/// Header and trailer of one snapshot file, without reading the body.
pub fn inspect(path: &Path) -> Result<SnapshotInfo, SnapshotError> {
    Ok(SnapshotFile::open(path)?.info())
}

/// Header, trailer and the checksum over the whole file (reads it all,
/// without decompressing).
pub fn verify(path: &Path) -> Result<SnapshotInfo, SnapshotError> {
    SnapshotFile::open(path)?.verify()
}

/// Header, trailer, every entry (ascending) and the checksum over the whole
/// file. Holds the whole state in memory: for tools, tests and fuzzing;
/// a restore streams with [`reader::SnapshotFile::read_entries`] instead.
pub fn read_all(path: &Path) -> Result<(SnapshotInfo, Entries), SnapshotError> {
    let mut entries = Entries::new();
    let info = SnapshotFile::open(path)?.read_entries(|batch| {
        entries.extend(batch);
        Ok(())
    })?;
    Ok((info, entries))
}

/// Refuses names that would escape or confuse the folder layout
/// (`<dir>/<name>/<hash>/`): a header naming one is malformed.
pub fn check_component(what: &'static str, value: &str) -> Result<(), SnapshotError> {
    let ok = !value.is_empty()
        && value.len() <= 255
        && value != "."
        && value != ".."
        && !value.contains(['/', '\\', '\0']);
    if ok {
        Ok(())
    } else {
        Err(SnapshotError::InvalidName {
            what,
            value: value.to_owned(),
        })
    }
}
