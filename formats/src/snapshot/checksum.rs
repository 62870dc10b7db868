//! Reader and writer adapters that BLAKE3-hash every byte passing through,
//! so the checksum is computed in the same single pass that writes or reads
//! the file.

use std::io::{self, Read, Write};

/// Hashes and counts what is written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: blake3::Hasher,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: blake3::Hasher::new(),
            written: 0,
        }
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    /// The hash of everything written so far, and the inner writer (to
    /// append the hash itself, unhashed).
    pub fn finish(self) -> (blake3::Hash, W) {
        (self.hasher.finalize(), self.inner)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Hashes what is read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: blake3::Hasher,
}

impl<R: Read> HashingReader<R> {
    /// Continues `hasher`, which already covers the bytes before `inner`.
    pub fn new(inner: R, hasher: blake3::Hasher) -> Self {
        Self { inner, hasher }
    }

    pub fn into_hasher(self) -> blake3::Hasher {
        self.hasher
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
