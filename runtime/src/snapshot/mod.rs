//! Snapshots: a consistent copy of one projection version's state, offsets
//! and events applied, taken from one redb read transaction, written to
//! `data/snapshots/<name>/<hash>/<created-unix-ms>-<events_applied>.snap`.
//! They restore a lost or corrupt state file, make a rollback to an earlier
//! module quick (snapshot + replay of the tail), and serve as backups.
//!
//! The file format, its reader and the pieces of the writer that touch
//! bytes live in `projector_formats::snapshot` (the fuzz targets drive the
//! reader there); this module lays the files out, writes, lists, prunes
//! and restores them.

mod layout;
mod list;
mod restore;
mod retention;
mod store;
mod writer;

#[cfg(test)]
mod tests;

use projector_formats::snapshot::{format, reader};

pub use layout::version_dir;
pub use list::{Listed, latest_valid, list, list_version};
pub use projector_formats::snapshot::{
    FORMAT_VERSION, SnapshotError, SnapshotInfo, SnapshotMeta, inspect, read_all, verify,
};
pub use restore::restore;
pub use retention::prune;
pub use store::{SnapshotStore, StoreError as SnapshotStoreError};
pub use writer::{DEFAULT_KEEP, ProjectionVersion, write, write_abandonable};

impl From<crate::store::StoreError> for SnapshotError {
    fn from(e: crate::store::StoreError) -> Self {
        SnapshotError::Store(Box::new(e))
    }
}
