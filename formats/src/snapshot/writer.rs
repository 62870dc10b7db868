//! The bytes of a snapshot file, written in one pass: header, compressed
//! body, trailer. Where the file goes (a temp file, fsync, rename) is the
//! runtime's business.

use std::io::{BufWriter, Write};
use std::path::Path;

use super::SnapshotError;
use super::body;
use super::checksum::HashingWriter;
use super::format::ZSTD_LEVEL;

/// Writes a whole snapshot to `out`: `header` (from
/// [`super::format::encode_header`]), the body of `entries` (ascending,
/// exactly the header's `key_count` of them), the trailer. `state_path`
/// names where the entries come from and `out_path` where they go, for
/// errors. Gives up with [`SnapshotError::Abandoned`] once `abandoned`
/// says so (checked between chunks). Returns `out`, flushed.
pub fn write_file<W: Write, E: Into<SnapshotError>>(
    out: W,
    header: &[u8],
    entries: impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), E>>,
    state_path: &Path,
    out_path: &Path,
    abandoned: &dyn Fn() -> bool,
) -> Result<W, SnapshotError> {
    let write_err = || SnapshotError::io("write", out_path);
    let mut out = HashingWriter::new(out);
    out.write_all(header).map_err(write_err())?;
    let body_start = out.written();
    {
        let encoder = zstd::stream::write::Encoder::new(&mut out, ZSTD_LEVEL)
            .map_err(SnapshotError::io("start compressing into", out_path))?;
        // rmp writes a few bytes at a time; the encoder wants big writes.
        let mut entries_out = BufWriter::with_capacity(64 << 10, encoder);
        body::write_entries(&mut entries_out, entries, state_path, out_path, abandoned)?;
        entries_out
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|encoder| encoder.finish())
            .map_err(write_err())?;
    }
    let body_len = out.written() - body_start;
    out.write_all(&body_len.to_le_bytes())
        .map_err(write_err())?;
    let (checksum, mut file_out) = out.finish();
    file_out
        .write_all(checksum.as_bytes())
        .and_then(|()| file_out.flush())
        .map_err(write_err())?;
    Ok(file_out)
}
