//! The fixed parts of a snapshot file: header (preamble, metadata, header
//! checksum) and trailer (body length, file checksum). The layout is
//! documented in the module docs of [`crate::snapshot`]; it is a contract.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::SnapshotError;
use super::check_component;
use crate::event::Offsets;
use crate::failure::FailedEvent;

pub const MAGIC: &[u8; 6] = b"PJSNAP";
/// The format version this build writes and the only one it reads. Bumped
/// only for changes old readers cannot skip over; new optional metadata
/// fields do not need a bump (readers ignore unknown metadata keys).
pub const FORMAT_VERSION: u16 = 1;
/// Magic, version, metadata length.
const PREAMBLE_LEN: usize = 6 + 2 + 4;
/// Caps what a damaged length field can make a reader allocate. The
/// metadata carries the projection's failed-event records, hence the room.
pub const MAX_META_BYTES: u32 = 64 << 20;
const HASH_LEN: usize = 32;
/// Body length, file checksum.
pub const TRAILER_LEN: u64 = 8 + HASH_LEN as u64;
pub const ZSTD_LEVEL: i32 = 3;

/// What the header of a snapshot says. The field names are the keys of the
/// metadata map on disk: renaming one changes the format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// Projection name.
    pub name: String,
    /// Content hash of the module file: the projection version.
    pub hash: String,
    pub state_version: u32,
    /// When the snapshot was taken, in milliseconds since the Unix epoch.
    pub created_unix_ms: u64,
    pub events_applied: u64,
    /// Next offset to apply per topic and partition, consistent with the state.
    pub offsets: Offsets,
    /// Number of state entries in the body.
    pub key_count: u64,
    /// Events the error policy kept for a retry (dead-lettered and parked),
    /// so a restore keeps them too. Absent in snapshots without any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_events: Vec<FailedEvent>,
}

/// The header as read: the metadata, and its raw bytes (the start of what
/// the file checksum covers).
pub struct Header {
    pub meta: SnapshotMeta,
    pub bytes: Vec<u8>,
}

impl Header {
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

pub struct Trailer {
    pub body_len: u64,
    pub checksum: [u8; HASH_LEN],
}

/// Preamble, metadata and header checksum, ready to write.
pub fn encode_header(meta: &SnapshotMeta) -> Vec<u8> {
    // Serializing plain strings and integers into a Vec cannot fail.
    let encoded = rmp_serde::to_vec_named(meta).expect("metadata serializes");
    let mut bytes = Vec::with_capacity(PREAMBLE_LEN + encoded.len() + HASH_LEN);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&(encoded.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&encoded);
    let header_sum = blake3::hash(&bytes);
    bytes.extend_from_slice(header_sum.as_bytes());
    bytes
}

/// Reads and checks the header from the start of `file`, leaving the file
/// positioned at the body.
pub fn read_header(path: &Path, file: &mut File) -> Result<Header, SnapshotError> {
    let truncated = |detail: String| SnapshotError::Truncated {
        path: path.to_owned(),
        detail,
    };
    let mut bytes = vec![0u8; PREAMBLE_LEN];
    let got = read_full(file, &mut bytes).map_err(SnapshotError::io("read", path))?;
    // Judge the magic on what is there, so a short foreign file is "not a
    // snapshot" rather than "truncated".
    let magic_part = got.min(MAGIC.len());
    if bytes[..magic_part] != MAGIC[..magic_part] {
        return Err(SnapshotError::NotASnapshot {
            path: path.to_owned(),
        });
    }
    if got < PREAMBLE_LEN {
        return Err(truncated(format!(
            "it ends after {got} bytes, inside the header"
        )));
    }
    let version = u16::from_le_bytes([bytes[6], bytes[7]]);
    if version != FORMAT_VERSION {
        return Err(SnapshotError::UnsupportedVersion {
            path: path.to_owned(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let meta_len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if meta_len > MAX_META_BYTES {
        return Err(SnapshotError::Malformed {
            path: path.to_owned(),
            detail: format!("metadata length {meta_len} exceeds the limit of {MAX_META_BYTES}"),
        });
    }
    let header_len = PREAMBLE_LEN + meta_len as usize + HASH_LEN;
    bytes.resize(header_len, 0);
    let got =
        read_full(file, &mut bytes[PREAMBLE_LEN..]).map_err(SnapshotError::io("read", path))?;
    if PREAMBLE_LEN + got < header_len {
        return Err(truncated(format!(
            "it ends after {} bytes, inside the {header_len}-byte header",
            PREAMBLE_LEN + got
        )));
    }
    let (covered, stored_sum) = bytes.split_at(header_len - HASH_LEN);
    if blake3::hash(covered).as_bytes() != stored_sum {
        return Err(SnapshotError::ChecksumMismatch {
            path: path.to_owned(),
            part: "header",
        });
    }
    let meta: SnapshotMeta =
        rmp_serde::from_slice(&covered[PREAMBLE_LEN..]).map_err(|e| SnapshotError::Malformed {
            path: path.to_owned(),
            detail: format!("unreadable metadata: {e}"),
        })?;
    for (what, value) in [("name", &meta.name), ("hash", &meta.hash)] {
        check_component(what, value).map_err(|_| SnapshotError::Malformed {
            path: path.to_owned(),
            detail: format!("invalid {what} {value:?} in the metadata"),
        })?;
    }
    Ok(Header { meta, bytes })
}

/// Reads the trailer and checks that it agrees with the file's length.
pub fn read_trailer(
    path: &Path,
    file: &mut File,
    file_len: u64,
    header_len: u64,
) -> Result<Trailer, SnapshotError> {
    let truncated = |detail: String| SnapshotError::Truncated {
        path: path.to_owned(),
        detail,
    };
    if file_len < header_len + TRAILER_LEN {
        return Err(truncated(format!(
            "it is {file_len} bytes, too short for its {header_len}-byte header and the {TRAILER_LEN}-byte trailer"
        )));
    }
    let mut raw = [0u8; TRAILER_LEN as usize];
    file.seek(SeekFrom::Start(file_len - TRAILER_LEN))
        .and_then(|_| file.read_exact(&mut raw))
        .map_err(SnapshotError::io("read", path))?;
    let body_len = u64::from_le_bytes(raw[..8].try_into().expect("8 bytes"));
    let checksum = raw[8..].try_into().expect("32 bytes");
    let expected = header_len
        .checked_add(body_len)
        .and_then(|n| n.checked_add(TRAILER_LEN));
    if expected != Some(file_len) {
        // A cut-off file has body bytes where the trailer should be, which
        // read as a nonsense length.
        return Err(truncated(format!(
            "it is {file_len} bytes, but its trailer gives a body length of {body_len}"
        )));
    }
    Ok(Trailer { body_len, checksum })
}

/// Fills as much of `buf` as the reader has; returns how much that was.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
