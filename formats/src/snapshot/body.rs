//! The body's content once decompressed: state entries as a sequence of
//! MessagePack arrays (chunks) of `[key: bin, value: bin]` pairs.
//!
//! Encoded and decoded with `rmp`, the MessagePack codec under rmp-serde,
//! rather than through serde: the decoder checks every length against a cap
//! before reading (a damaged length must not allocate gigabytes) and streams
//! entries one at a time, so neither side ever holds the whole state.

use std::io::{self, BufRead, Read, Write};
use std::path::Path;

use rmp::decode::ValueReadError;

use super::Entries;
use super::SnapshotError;

/// Entries per chunk the writer emits.
const CHUNK_ENTRIES: usize = 10_000;
/// Readers accept larger chunks than the writer emits, for future writers.
const MAX_CHUNK_ENTRIES: u32 = 1 << 16;
/// Cap on one key or one value: far above the runtime's limits (4 KiB keys,
/// 16 MiB values by default); the writer refuses anything larger, so every
/// snapshot written can be read back.
pub const MAX_PART_BYTES: usize = 256 << 20;
/// A batch handed to the reader's consumer ends at whichever comes first.
const BATCH_ENTRIES: usize = 100_000;
const BATCH_BYTES: usize = 64 << 20;

/// Writes every entry from `entries`, which must be ascending (the header
/// has already promised their number; readers check it).
pub fn write_entries<E: Into<SnapshotError>>(
    out: &mut impl Write,
    entries: impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), E>>,
    state_path: &Path,
    out_path: &Path,
    abandoned: &dyn Fn() -> bool,
) -> Result<(), SnapshotError> {
    let write_err = |source| SnapshotError::Io {
        action: "write",
        path: out_path.to_owned(),
        source,
    };
    let mut chunk = Vec::with_capacity(CHUNK_ENTRIES);
    for entry in entries {
        let (key, value) = entry.map_err(Into::<SnapshotError>::into)?;
        for part in [&key, &value] {
            if part.len() > MAX_PART_BYTES {
                return Err(SnapshotError::EntryTooLarge {
                    path: state_path.to_owned(),
                    len: part.len(),
                    limit: MAX_PART_BYTES,
                });
            }
        }
        chunk.push((key, value));
        if chunk.len() == CHUNK_ENTRIES {
            if abandoned() {
                return Err(SnapshotError::Abandoned {
                    name: state_path.display().to_string(),
                });
            }
            write_chunk(out, &chunk).map_err(write_err)?;
            chunk.clear();
        }
    }
    if !chunk.is_empty() {
        write_chunk(out, &chunk).map_err(write_err)?;
    }
    Ok(())
}

fn write_chunk(out: &mut impl Write, chunk: &[(Vec<u8>, Vec<u8>)]) -> io::Result<()> {
    // Lengths fit in u32: chunks and parts are capped far below that.
    rmp::encode::write_array_len(out, chunk.len() as u32)?;
    for (key, value) in chunk {
        rmp::encode::write_array_len(out, 2)?;
        rmp::encode::write_bin(out, key)?;
        rmp::encode::write_bin(out, value)?;
    }
    Ok(())
}

/// Why reading the body stopped: the bytes were bad, or the consumer failed.
pub enum ReadError {
    Bad(SnapshotError),
    Consumer(SnapshotError),
}

/// Reads exactly `key_count` entries and then the end of the input, and
/// hands them to `consume` in batches, ascending.
pub fn read_entries(
    input: &mut impl BufRead,
    path: &Path,
    key_count: u64,
    consume: &mut dyn FnMut(Entries) -> Result<(), SnapshotError>,
) -> Result<(), ReadError> {
    let bad = |detail: String| {
        ReadError::Bad(SnapshotError::Malformed {
            path: path.to_owned(),
            detail,
        })
    };
    let mut batch: Entries = Vec::new();
    let mut batch_bytes = 0usize;
    // The last key of the previous batch, to check order across batches.
    let mut previous: Option<Vec<u8>> = None;
    let mut read = 0u64;
    while read < key_count {
        let len = rmp::decode::read_array_len(input).map_err(|e| bad(describe(e, "a chunk")))?;
        if len == 0 || len > MAX_CHUNK_ENTRIES || u64::from(len) > key_count - read {
            return Err(bad(format!(
                "a chunk of {len} entries after {read} of {key_count} entries"
            )));
        }
        for _ in 0..len {
            let pair =
                rmp::decode::read_array_len(input).map_err(|e| bad(describe(e, "an entry")))?;
            if pair != 2 {
                return Err(bad(format!("an entry of {pair} elements instead of 2")));
            }
            let key = read_bin(input).map_err(|e| bad(format!("key {read}: {e}")))?;
            let value = read_bin(input).map_err(|e| bad(format!("value {read}: {e}")))?;
            let last = batch.last().map(|(k, _)| k).or(previous.as_ref());
            if last.is_some_and(|last| *last >= key) {
                return Err(bad(format!("key {read} is not above the key before it")));
            }
            batch_bytes += key.len() + value.len();
            batch.push((key, value));
            read += 1;
            if batch.len() >= BATCH_ENTRIES || batch_bytes >= BATCH_BYTES {
                previous = batch.last().map(|(k, _)| k.clone());
                consume(std::mem::take(&mut batch)).map_err(ReadError::Consumer)?;
                batch_bytes = 0;
            }
        }
    }
    let rest = input
        .fill_buf()
        .map_err(|e| bad(format!("unreadable compressed data: {e}")))?;
    if !rest.is_empty() {
        return Err(bad(format!("data after the last of {key_count} entries")));
    }
    if !batch.is_empty() {
        consume(batch).map_err(ReadError::Consumer)?;
    }
    Ok(())
}

/// One bin value, its length checked against the cap before reading.
fn read_bin(input: &mut impl Read) -> Result<Vec<u8>, String> {
    let len = rmp::decode::read_bin_len(input).map_err(|e| describe(e, "binary data"))? as usize;
    if len > MAX_PART_BYTES {
        return Err(format!(
            "length {len} exceeds the limit of {MAX_PART_BYTES}"
        ));
    }
    // Grows with the bytes actually there, not with the claimed length.
    let mut buf = Vec::with_capacity(len.min(64 << 10));
    let got = Read::by_ref(input)
        .take(len as u64)
        .read_to_end(&mut buf)
        .map_err(|e| format!("unreadable compressed data: {e}"))?;
    if got < len {
        return Err(format!("the data ends {} bytes early", len - got));
    }
    Ok(buf)
}

fn describe(err: ValueReadError<io::Error>, expected: &str) -> String {
    match err {
        ValueReadError::InvalidMarkerRead(e) | ValueReadError::InvalidDataRead(e)
            if e.kind() == io::ErrorKind::UnexpectedEof =>
        {
            format!("the data ends where {expected} should be")
        }
        ValueReadError::InvalidMarkerRead(e) | ValueReadError::InvalidDataRead(e) => {
            format!("unreadable compressed data: {e}")
        }
        ValueReadError::TypeMismatch(marker) => {
            format!("expected {expected}, found MessagePack marker {marker:?}")
        }
    }
}
