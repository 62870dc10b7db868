//! Opening a snapshot file: header and trailer checks (cheap, for listings),
//! checksum verification, and streaming the entries out.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::Entries;
use super::body::{self, ReadError};
use super::checksum::HashingReader;
use super::format::{self, Header, Trailer};
use super::{SnapshotError, SnapshotInfo};

/// An open snapshot whose header and trailer have been checked.
pub struct SnapshotFile {
    path: PathBuf,
    file: File,
    len: u64,
    header: Header,
    trailer: Trailer,
}

impl SnapshotFile {
    /// Reads only the header and the trailer: fast, and catches wrong
    /// magic, unknown versions, damaged headers and truncation. Damage in
    /// the body shows only in [`Self::verify`] or [`Self::read_entries`].
    pub fn open(path: &Path) -> Result<Self, SnapshotError> {
        let mut file = File::open(path).map_err(SnapshotError::io("open", path))?;
        let len = file
            .metadata()
            .map_err(SnapshotError::io("read", path))?
            .len();
        let header = format::read_header(path, &mut file)?;
        let trailer = format::read_trailer(path, &mut file, len, header.len())?;
        Ok(Self {
            path: path.to_owned(),
            file,
            len,
            header,
            trailer,
        })
    }

    pub fn info(&self) -> SnapshotInfo {
        SnapshotInfo {
            path: self.path.clone(),
            size_bytes: self.len,
            meta: self.header.meta.clone(),
        }
    }

    /// Checks the file checksum over the raw bytes, without decompressing.
    pub fn verify(self) -> Result<SnapshotInfo, SnapshotError> {
        let mut body = self.body_reader()?;
        io::copy(&mut body, &mut io::sink()).map_err(SnapshotError::io("read", &self.path))?;
        self.check_sum(body)?;
        Ok(self.info())
    }

    /// Streams every entry to `consume`, ascending, in batches, and checks
    /// the checksum. When it fails, earlier batches may already have been
    /// consumed, so consume into something that can be thrown away.
    pub fn read_entries(
        self,
        mut consume: impl FnMut(Entries) -> Result<(), SnapshotError>,
    ) -> Result<SnapshotInfo, SnapshotError> {
        let mut body = self.body_reader()?;
        let decoded = match zstd::stream::read::Decoder::new(&mut body) {
            Ok(decoder) => {
                let mut entries = BufReader::with_capacity(64 << 10, decoder);
                body::read_entries(
                    &mut entries,
                    &self.path,
                    self.header.meta.key_count,
                    &mut consume,
                )
            }
            Err(e) => Err(ReadError::Bad(SnapshotError::io("decompress", &self.path)(
                e,
            ))),
        };
        if let Err(ReadError::Consumer(e)) = decoded {
            return Err(e);
        }
        // Hash whatever the decoder left unread, then let a checksum
        // mismatch explain a decoding failure: the bytes are damaged.
        io::copy(&mut body, &mut io::sink()).map_err(SnapshotError::io("read", &self.path))?;
        self.check_sum(body)?;
        match decoded {
            Ok(()) => Ok(self.info()),
            Err(ReadError::Bad(e) | ReadError::Consumer(e)) => Err(e),
        }
    }

    /// The body, hashed as it is read, continuing the hash of the header.
    fn body_reader(&self) -> Result<HashingReader<impl Read + '_>, SnapshotError> {
        (&self.file)
            .seek(SeekFrom::Start(self.header.len()))
            .map_err(SnapshotError::io("read", &self.path))?;
        let mut hasher = blake3::Hasher::new();
        hasher.update(&self.header.bytes);
        let body = BufReader::with_capacity(256 << 10, &self.file).take(self.trailer.body_len);
        Ok(HashingReader::new(body, hasher))
    }

    fn check_sum(&self, body: HashingReader<impl Read>) -> Result<(), SnapshotError> {
        let mut hasher = body.into_hasher();
        hasher.update(&self.trailer.body_len.to_le_bytes());
        if hasher.finalize().as_bytes() != &self.trailer.checksum {
            return Err(SnapshotError::ChecksumMismatch {
                path: self.path.clone(),
                part: "file",
            });
        }
        Ok(())
    }
}
