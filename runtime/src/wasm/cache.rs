//! Compiled modules on disk, keyed by the module's content hash and the
//! engine's compatibility fingerprint, so a restart does not recompile
//! (a Python component takes seconds to compile, a cached one milliseconds).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

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

    fn entry(&self, hash: &str) -> PathBuf {
        self.dir.join(format!("{hash}-{}.cwasm", self.fingerprint))
    }

    /// The compiled component for `bytes`, and whether it came from the
    /// cache. A cache problem is never fatal: the module is compiled instead.
    pub fn load_or_compile(&self, hash: &str, bytes: &[u8]) -> Result<(Component, bool), String> {
        let entry = self.entry(hash);
        // Read, not mmap: a cache file truncated by someone else while mapped
        // would crash the process with SIGBUS.
        if let Ok(cached) = std::fs::read(&entry) {
            // SAFETY: the cache directory is written only by this host, with
            // the output of `precompile_component` for this engine's
            // fingerprint; wasmtime additionally checks the header.
            #[allow(unsafe_code)]
            let component = unsafe { Component::deserialize(&self.engine, &cached) };
            match component {
                Ok(component) => return Ok((component, true)),
                Err(e) => tracing::warn!(
                    file = %entry.display(),
                    error = %error_chain(&e),
                    "ignoring unusable compiled-module cache entry"
                ),
            }
        }
        let compiled = self
            .engine
            .precompile_component(bytes)
            .map_err(|e| error_chain(&e))?;
        if let Err(e) = self.store(&entry, &compiled) {
            tracing::warn!(file = %entry.display(), error = %e, "could not write the compiled-module cache");
        }
        // SAFETY: `compiled` was produced by `precompile_component` just now.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(&self.engine, &compiled) };
        component.map(|c| (c, false)).map_err(|e| error_chain(&e))
    }

    fn store(&self, entry: &Path, compiled: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let tmp = entry.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, compiled)?;
        std::fs::rename(&tmp, entry)
    }
}
