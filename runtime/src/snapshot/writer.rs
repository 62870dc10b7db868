//! Taking a snapshot: one read transaction streamed into a temp file, which
//! is fsynced and renamed into place, then older snapshots are pruned.

use std::io::BufWriter;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use super::format::{self, SnapshotMeta};
use super::layout::{self, TMP_SUFFIX};
use super::{SnapshotError, SnapshotInfo, retention};
use crate::store::{FailedEvent, FailureKind, StateReader};

/// The projection version a snapshot belongs to.
#[derive(Debug, Clone, Copy)]
pub struct ProjectionVersion<'a> {
    pub name: &'a str,
    /// Content hash of the module file.
    pub hash: &'a str,
    pub state_version: u32,
}

/// Default number of snapshots kept per projection version.
pub const DEFAULT_KEEP: usize = 3;

/// Writes what `reader` sees (its one transaction: state, offsets and
/// events applied all from the same instant) to
/// `<dir>/<name>/<hash>/<created-unix-ms>-<events_applied>.snap`, then
/// deletes all but the newest `keep` snapshots of that version.
pub fn write(
    dir: &Path,
    version: ProjectionVersion<'_>,
    reader: &StateReader,
    keep: usize,
) -> Result<SnapshotInfo, SnapshotError> {
    write_abandonable(dir, version, reader, keep, &|| false)
}

/// [`write`], giving up with [`SnapshotError::Abandoned`] (and deleting its
/// temp file) once `abandoned` says so: checked between chunks of entries
/// and before the file is synced and renamed, so a snapshot is either
/// complete under its name or not there at all.
pub fn write_abandonable(
    dir: &Path,
    version: ProjectionVersion<'_>,
    reader: &StateReader,
    keep: usize,
    abandoned: &dyn Fn() -> bool,
) -> Result<SnapshotInfo, SnapshotError> {
    let gave_up = || SnapshotError::Abandoned {
        name: format!(
            "{}@{}",
            version.name,
            &version.hash[..version.hash.len().min(12)]
        ),
    };
    if keep == 0 {
        return Err(SnapshotError::InvalidRetention { keep });
    }
    let folder = layout::version_dir(dir, version.name, version.hash)?;
    let meta = SnapshotMeta {
        name: version.name.to_owned(),
        hash: version.hash.to_owned(),
        state_version: version.state_version,
        created_unix_ms: now_unix_ms(),
        events_applied: reader.events_applied()?,
        offsets: reader.offsets()?,
        key_count: reader.key_count()?,
        failed_events: retriable_failures(reader)?,
    };
    let header = format::encode_header(&meta);
    if header.len() > format::MAX_META_BYTES as usize {
        return Err(SnapshotError::HeaderTooLarge {
            name: meta.name,
            records: meta.failed_events.len(),
            len: header.len(),
            limit: format::MAX_META_BYTES as usize,
        });
    }
    std::fs::create_dir_all(&folder).map_err(SnapshotError::io("create", &folder))?;
    // Dropped (and so deleted) on any error: no partial file is ever named
    // like a snapshot.
    let tmp = tempfile::Builder::new()
        .prefix(".")
        .suffix(TMP_SUFFIX)
        .tempfile_in(&folder)
        .map_err(SnapshotError::io("create a temp file in", &folder))?;
    let tmp_path = tmp.path().to_owned();

    let out = BufWriter::with_capacity(1 << 20, tmp.as_file());
    let out = projector_formats::snapshot::write_file(
        out,
        &header,
        reader.iter_all()?,
        reader.path(),
        &tmp_path,
        abandoned,
    )
    .map_err(|e| match e {
        SnapshotError::Abandoned { .. } => gave_up(),
        other => other,
    })?;
    drop(out);
    if abandoned() {
        return Err(gave_up());
    }
    tmp.as_file()
        .sync_all()
        .map_err(SnapshotError::io("sync", &tmp_path))?;

    let path = folder.join(layout::file_name(meta.created_unix_ms, meta.events_applied));
    // A same-named file is a snapshot of the same instant and events: the
    // same state, so replacing it is harmless.
    tmp.persist(&path)
        .map_err(|e| SnapshotError::io("rename into place", &path)(e.error))?;
    layout::sync_dir(&folder)?;
    let size_bytes = std::fs::metadata(&path)
        .map_err(SnapshotError::io("read", &path))?
        .len();

    // The new snapshot is safe; failing to prune is only untidy.
    if let Err(e) = retention::prune(dir, version.name, version.hash, keep) {
        tracing::warn!(error = %e, "could not prune old snapshots");
    }
    Ok(SnapshotInfo {
        path,
        size_bytes,
        meta,
    })
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The failed-event records a restore must keep: dead letters and parked
/// events, which a retry still needs. Skipped records (an audit trail that
/// only grows) stay in the state file.
fn retriable_failures(reader: &StateReader) -> Result<Vec<FailedEvent>, SnapshotError> {
    let mut records = reader.failures(Some(FailureKind::DeadLetter), None, usize::MAX)?;
    records.extend(reader.failures(Some(FailureKind::Parked), None, usize::MAX)?);
    records.sort_by_key(|r| r.id);
    Ok(records)
}
