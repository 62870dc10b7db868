//! Compiled modules on disk, keyed by the module's content hash and the
//! engine's compatibility fingerprint, so a restart does not recompile
//! (a Python component takes seconds to compile, a cached one milliseconds).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::component::Component;
use wasmtime::{Engine, Module};

use super::error_chain;

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
        Self {
            dir: dir.to_owned(),
            engine: engine.clone(),
            fingerprint: format!("{:016x}", hasher.finish()),
        }
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
                // for this engine's fingerprint, written by this host only
                // (the cache directory is ours); wasmtime checks the header.
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
        if let Ok(cached) = std::fs::read(entry) {
            match deserialize(&cached) {
                Ok(compiled) => return Ok((compiled, true)),
                Err(e) => tracing::warn!(
                    file = %entry.display(),
                    error = %error_chain(&e),
                    "ignoring unusable compiled-module cache entry"
                ),
            }
        }
        let compiled = precompile().map_err(|e| error_chain(&e))?;
        if let Err(e) = self.store(entry, &compiled) {
            tracing::warn!(file = %entry.display(), error = %e, "could not write the compiled-module cache");
        }
        deserialize(&compiled)
            .map(|c| (c, false))
            .map_err(|e| error_chain(&e))
    }

    fn store(&self, entry: &Path, compiled: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let tmp = entry.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, compiled)?;
        std::fs::rename(&tmp, entry)
    }
}
