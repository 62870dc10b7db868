//! Snapshot files (`*.snap`): header, metadata, checksums, trailer and the
//! zstd + MessagePack body. A snapshot may be damaged or come from anyone
//! (restore takes an exported file), so every check must fail cleanly.
//!
//! Input: one mode byte, then the file.
//! - mode even: the bytes are the file as is (exercises the header, trailer
//!   and checksum checks).
//! - mode odd: the bytes are preamble + metadata + body *without* the
//!   checksums and the trailer, which the target fills in correctly, so
//!   mutations reach the metadata and body decoders instead of stopping
//!   at a checksum mismatch.

#![no_main]

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use projector_formats::snapshot;

/// Magic, version, metadata length.
const PREAMBLE_LEN: usize = 12;

/// The reader takes a path: one file in a private temp dir (`TMPDIR`),
/// rewritten for each input.
fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("projector-fuzz-snapshot-")
            .tempdir()
            .expect("temp dir")
            .keep();
        dir.join("1700000000000-5.snap")
    })
}

/// Adds the header checksum, the body length and the file checksum.
fn seal(unsealed: &[u8]) -> Vec<u8> {
    let Some(len) = unsealed.get(8..PREAMBLE_LEN) else {
        return unsealed.to_vec();
    };
    let meta_len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
    let Some(header_end) = PREAMBLE_LEN
        .checked_add(meta_len)
        .filter(|end| *end <= unsealed.len())
    else {
        return unsealed.to_vec();
    };
    let (covered, body) = unsealed.split_at(header_end);
    let mut file = Vec::with_capacity(unsealed.len() + 72);
    file.extend_from_slice(covered);
    file.extend_from_slice(blake3::hash(covered).as_bytes());
    file.extend_from_slice(body);
    file.extend_from_slice(&(body.len() as u64).to_le_bytes());
    let sum = blake3::hash(&file);
    file.extend_from_slice(sum.as_bytes());
    file
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let sealed = mode & 1 == 1;
    let bytes = if sealed { seal(rest) } else { rest.to_vec() };
    let path = scratch();
    {
        // Overwritten in place, then cut to length: truncating to zero first
        // makes ext4 flush the file on close (its replace-by-truncate
        // heuristic), which costs milliseconds per input.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .expect("open the scratch file");
        file.write_all(&bytes).expect("write the scratch file");
        file.set_len(bytes.len() as u64)
            .expect("cut the scratch file");
    }

    let inspected = snapshot::inspect(path);
    let verified = snapshot::verify(path);
    let read = snapshot::read_all(path);

    if let Ok(info) = &inspected {
        assert_eq!(info.size_bytes, bytes.len() as u64);
        assert_eq!(&info.path, path);
        for part in [&info.meta.name, &info.meta.hash] {
            assert!(
                !part.is_empty()
                    && part != "."
                    && part != ".."
                    && !part.contains(['/', '\\', '\0']),
                "a header naming {part:?} is refused"
            );
        }
        if sealed && bytes.len() > rest.len() {
            // Checksums written by `seal` hold.
            assert!(verified.is_ok(), "{:?}", verified.err());
        }
    }
    match &verified {
        Ok(info) => assert_eq!(Some(info), inspected.as_ref().ok()),
        Err(e) => {
            assert!(read.is_err(), "read passes where verify fails: {e}");
            if let Err(first) = &inspected {
                assert_eq!(first.to_string(), e.to_string());
            }
        }
    }
    if let Ok((info, entries)) = &read {
        assert_eq!(Some(info), verified.as_ref().ok());
        assert_eq!(entries.len() as u64, info.meta.key_count);
        assert!(
            entries.windows(2).all(|w| w[0].0 < w[1].0),
            "keys strictly ascending"
        );
    }
});
