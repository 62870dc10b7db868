//! Compiled modules on disk, keyed by the module's content hash and the
//! engine's compatibility fingerprint, so a restart does not recompile
//! (a Python component takes seconds to compile, a cached one milliseconds).
//!
//! An entry is native code the host will run, so it is only used when it is
//! exactly what this host wrote: a header (magic, payload length, blake3 of
//! the entry's name, length and payload) checked before the payload is
//! deserialized. A torn, truncated or altered entry is compiled again, with
//! a warning, and replaced. Entries are written to a temporary file in the
//! same folder, synced, then renamed over the entry, so a crash leaves the
//! old entry, the new one, or a stray temporary file, never half an entry.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use wasmtime::component::Component;
use wasmtime::{Engine, Module};

use super::error_chain;

/// First bytes of every entry; the digit is the entry format's version.
const MAGIC: &[u8; 8] = b"PJCWASM2";
/// Magic, payload length (u64 little-endian), blake3 checksum.
const HEADER_LEN: usize = MAGIC.len() + 8 + blake3::OUT_LEN;
/// Prefix of the temporary files entries are written to.
const TEMP_PREFIX: &str = ".tmp-";

/// Why a cache entry was not used.
#[derive(Debug, thiserror::Error)]
enum Unusable {
    #[error("{len} bytes, shorter than the header (torn write?)")]
    NoHeader { len: usize },
    #[error("not a cache entry of this host's format")]
    Magic,
    #[error(
        "truncated or extended: the header says {expected} bytes of code, the file has {found}"
    )]
    Length { expected: u64, found: u64 },
    #[error("checksum mismatch: the file was altered or damaged")]
    Checksum,
    #[error("wasmtime refused it: {0}")]
    Deserialize(String),
}

#[derive(Clone)]
pub struct CompileCache {
    dir: PathBuf,
    engine: Engine,
    fingerprint: String,
}

impl CompileCache {
    pub fn new(dir: &Path, engine: &Engine) -> Self {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        env!("CARGO_PKG_VERSION").hash(&mut hasher);
        // Entries of an older format get other names and are not read.
        MAGIC.hash(&mut hasher);
        Self {
            dir: dir.to_owned(),
            engine: engine.clone(),
            fingerprint: format!("{:016x}", hasher.finish()),
        }
    }

    /// Deletes the entries no host of this build can use (another
    /// fingerprint: another wasmtime, projector release or entry format)
    /// and those of modules `in_use` does not name that were written
    /// `unused_for` ago or longer, and temp files left by crashes. Returns
    /// how many files it deleted.
    pub fn prune(&self, in_use: &dyn Fn(&str) -> bool, unused_for: std::time::Duration) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut deleted = 0;
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let age = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|modified| modified.elapsed().ok());
            let old = age.is_some_and(|age| age >= unused_for);
            let due = if name.starts_with(TEMP_PREFIX) {
                old
            } else {
                // `<hash>-<fingerprint>.<extension>` (`cwasm`, `core.cwasm`);
                // other names are not ours.
                let Some((hash, fingerprint)) = name
                    .split_once('.')
                    .and_then(|(stem, _)| stem.rsplit_once('-'))
                else {
                    continue;
                };
                fingerprint != self.fingerprint || (old && !in_use(hash))
            };
            if !due {
                continue;
            }
            match std::fs::remove_file(&path) {
                Ok(()) => deleted += 1,
                Err(e) => {
                    tracing::warn!(file = %path.display(), "cannot delete a compile cache entry: {e}")
                }
            }
        }
        if deleted > 0 {
            tracing::info!(dir = %self.dir.display(), deleted, "pruned the compile cache");
        }
        deleted
    }

    fn entry(&self, hash: &str, extension: &str) -> PathBuf {
        self.dir
            .join(format!("{hash}-{}.{extension}", self.fingerprint))
    }

    /// The compiled component for `bytes`, and whether it came from the
    /// cache. A cache problem is never fatal: the module is compiled instead.
    pub fn load_or_compile(&self, hash: &str, bytes: &[u8]) -> Result<(Component, bool), String> {
        self.cached(
            &self.entry(hash, "cwasm"),
            || self.engine.precompile_component(bytes),
            |compiled| {
                // SAFETY: `compiled` is the output of `precompile_component`
                // for this engine's fingerprint: either compiled just now,
                // or read back from an entry whose checksum (over its name,
                // which holds the fingerprint, and every byte) matched what
                // this host wrote. wasmtime checks the header too.
                #[allow(unsafe_code)]
                unsafe {
                    Component::deserialize(&self.engine, compiled)
                }
            },
        )
    }

    /// The compiled core module for `bytes` (core-module ABI), cached like
    /// components: a Go module takes over a second to compile.
    pub fn load_or_compile_core(&self, hash: &str, bytes: &[u8]) -> Result<(Module, bool), String> {
        self.cached(
            &self.entry(hash, "core.cwasm"),
            || self.engine.precompile_module(bytes),
            |compiled| {
                // SAFETY: as for components, with `precompile_module`.
                #[allow(unsafe_code)]
                unsafe {
                    Module::deserialize(&self.engine, compiled)
                }
            },
        )
    }

    fn cached<T>(
        &self,
        entry: &Path,
        precompile: impl FnOnce() -> wasmtime::Result<Vec<u8>>,
        deserialize: impl Fn(&[u8]) -> wasmtime::Result<T>,
    ) -> Result<(T, bool), String> {
        // Read, not mmap: a cache file truncated by someone else while mapped
        // would crash the process with SIGBUS.
        if let Ok(file) = std::fs::read(entry) {
            let loaded = verified(entry, &file).and_then(|code| {
                deserialize(code).map_err(|e| Unusable::Deserialize(error_chain(&e)))
            });
            match loaded {
                Ok(compiled) => return Ok((compiled, true)),
                Err(problem) => tracing::warn!(
                    file = %entry.display(),
                    problem = %problem,
                    "unusable compiled-module cache entry; compiling the module again and replacing the entry"
                ),
            }
        }
        let compiled = precompile().map_err(|e| error_chain(&e))?;
        if let Err(e) = self.store(entry, &compiled) {
            tracing::warn!(
                file = %entry.display(),
                error = %e,
                "could not write the compiled-module cache; the next start compiles the module again"
            );
        }
        deserialize(&compiled)
            .map(|c| (c, false))
            .map_err(|e| error_chain(&e))
    }

    /// Writes `compiled` as the entry: temporary file, fsync, rename over
    /// the entry, fsync of the folder (so the rename itself is durable).
    fn store(&self, entry: &Path, compiled: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let mut file = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(&self.dir)?;
        file.write_all(&header(entry, compiled))?;
        file.write_all(compiled)?;
        file.as_file().sync_all()?;
        file.persist(entry).map_err(|e| e.error)?;
        sync_dir(&self.dir)
    }
}

/// The header of the entry at `entry` holding `code`.
fn header(entry: &Path, code: &[u8]) -> Vec<u8> {
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&(code.len() as u64).to_le_bytes());
    header.extend_from_slice(checksum(entry, code).as_bytes());
    header
}

/// Covers the entry's file name (module hash and engine fingerprint: an
/// entry copied under another name is refused), the length and the code.
fn checksum(entry: &Path, code: &[u8]) -> blake3::Hash {
    let name = entry
        .file_name()
        .map(|n| n.as_encoded_bytes())
        .unwrap_or(&[]);
    let mut hasher = blake3::Hasher::new();
    hasher.update(&(name.len() as u64).to_le_bytes());
    hasher.update(name);
    hasher.update(&(code.len() as u64).to_le_bytes());
    hasher.update(code);
    hasher.finalize()
}

/// The compiled code of an entry's bytes, if they are exactly what
/// [`CompileCache::store`] wrote under this name.
fn verified<'a>(entry: &Path, file: &'a [u8]) -> Result<&'a [u8], Unusable> {
    if file.len() < HEADER_LEN {
        return Err(Unusable::NoHeader { len: file.len() });
    }
    let (header, code) = file.split_at(HEADER_LEN);
    if &header[..MAGIC.len()] != MAGIC {
        return Err(Unusable::Magic);
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&header[MAGIC.len()..MAGIC.len() + 8]);
    let expected = u64::from_le_bytes(len);
    if expected != code.len() as u64 {
        return Err(Unusable::Length {
            expected,
            found: code.len() as u64,
        });
    }
    if checksum(entry, code).as_bytes()[..] != header[MAGIC.len() + 8..] {
        return Err(Unusable::Checksum);
    }
    Ok(code)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_keeps_entries_in_use_and_recent_ones_and_drops_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::new(dir.path(), &Engine::default());
        let ours = |hash: &str| format!("{hash}-{}.cwasm", cache.fingerprint);
        let core = |hash: &str| format!("{hash}-{}.core.cwasm", cache.fingerprint);
        for name in [
            ours("aaa"),
            core("aaa"),
            ours("bbb"),
            core("bbb"),
            "ccc-0123456789abcdef.cwasm".into(),
            "notes.txt".into(),
            format!("{TEMP_PREFIX}x"),
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let names = || {
            let mut names: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            names
        };
        let in_use = |hash: &str| hash == "aaa";
        // Recent: only the entry of another engine goes.
        assert_eq!(
            cache.prune(&in_use, std::time::Duration::from_secs(3600)),
            1
        );
        assert!(
            !names().iter().any(|n| n.starts_with("ccc-")),
            "{:?}",
            names()
        );
        // Old: what is not in use goes too; files named otherwise stay.
        assert_eq!(cache.prune(&in_use, std::time::Duration::ZERO), 3);
        assert_eq!(
            names(),
            vec![core("aaa"), ours("aaa"), "notes.txt".to_owned()]
        );
    }

    #[test]
    fn an_entry_verifies_only_under_its_own_name_and_bytes() {
        let entry = Path::new("/cache/abc-0123.cwasm");
        let code = b"native code".to_vec();
        let mut file = header(entry, &code);
        file.extend_from_slice(&code);
        assert_eq!(verified(entry, &file).unwrap(), code.as_slice());

        let other = Path::new("/cache/abd-0123.cwasm");
        assert!(matches!(verified(other, &file), Err(Unusable::Checksum)));
        let mut flipped = file.clone();
        *flipped.last_mut().unwrap() ^= 0x80;
        assert!(matches!(verified(entry, &flipped), Err(Unusable::Checksum)));
        assert!(matches!(
            verified(entry, &file[..file.len() - 1]),
            Err(Unusable::Length {
                expected: 11,
                found: 10
            })
        ));
        assert!(matches!(
            verified(entry, &file[..10]),
            Err(Unusable::NoHeader { len: 10 })
        ));
        let mut old = file.clone();
        old[7] = b'1';
        assert!(matches!(verified(entry, &old), Err(Unusable::Magic)));
    }
}
