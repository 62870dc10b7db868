//! Snapshots: a consistent copy of one projection version's state, offsets
//! and events applied, taken from one redb read transaction, written to
//! `data/snapshots/<name>/<hash>/<created-unix-ms>-<events_applied>.snap`.
//! They restore a lost or corrupt state file, make a rollback to an earlier
//! module quick (snapshot + replay of the tail), and serve as backups.
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

mod body;
mod checksum;
mod error;
mod format;
mod layout;
mod list;
mod reader;
mod restore;
mod retention;
mod writer;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

use serde::Serialize;

pub use error::SnapshotError;
pub use format::{FORMAT_VERSION, SnapshotMeta};
pub use layout::version_dir;
pub use list::{Listed, inspect, latest_valid, list, list_version, read_all, verify};
pub use restore::restore;
pub use retention::prune;
pub use writer::{DEFAULT_KEEP, ProjectionVersion, write, write_abandonable};

/// One snapshot file, as its header describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotInfo {
    pub path: PathBuf,
    pub size_bytes: u64,
    #[serde(flatten)]
    pub meta: SnapshotMeta,
}
