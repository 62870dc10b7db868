//! The set of projections: loads every module in the modules folder at
//! start, rejects bad ones with a reason while the others run, and owns the
//! worker threads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;

use serde::Serialize;

use crate::projection::{ProjectionRuntime, SharedProjection};
use crate::source::Source;
use crate::store::StateStore;
use crate::wasm::WasmHost;
use crate::worker::{self, WorkerConfig};

/// A module file that was not accepted, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Rejected {
    pub file: String,
    pub error: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("modules folder {path} cannot be read: {source}")]
    ModulesDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub struct Registry {
    projections: RwLock<BTreeMap<String, SharedProjection>>,
    rejected: RwLock<Vec<Rejected>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    source: Arc<dyn Source>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Registry {
    /// Loads every `*.wasm` in `modules_dir` (created if missing) and starts
    /// a worker for each accepted module. State lives under
    /// `data_dir/projections/<name>/<hash>.redb`.
    pub fn start(
        host: &WasmHost,
        source: Arc<dyn Source>,
        modules_dir: &Path,
        data_dir: &Path,
        config: &WorkerConfig,
    ) -> Result<Self, RegistryError> {
        let dir_err = |source| RegistryError::ModulesDir {
            path: modules_dir.to_owned(),
            source,
        };
        std::fs::create_dir_all(modules_dir).map_err(dir_err)?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(modules_dir)
            .map_err(dir_err)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "wasm") && path.is_file())
            .collect();
        files.sort();

        let registry = Self {
            projections: RwLock::new(BTreeMap::new()),
            rejected: RwLock::new(Vec::new()),
            workers: Mutex::new(Vec::new()),
            source,
        };
        for file in files {
            if let Err(error) = registry.add(host, &file, data_dir, config) {
                tracing::error!(file = %file.display(), "module rejected: {error}");
                registry
                    .rejected
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(Rejected {
                        file: file.display().to_string(),
                        error,
                    });
            }
        }
        Ok(registry)
    }

    fn add(
        &self,
        host: &WasmHost,
        file: &Path,
        data_dir: &Path,
        config: &WorkerConfig,
    ) -> Result<(), String> {
        let module = host.load(file).map_err(|e| e.to_string())?;
        let name = module.descriptor.name.clone();
        if let Some(existing) = self.get(&name) {
            return Err(format!(
                "{}: projection name {name:?} is already served by {}; give each module its own name",
                file.display(),
                existing.module.file.display()
            ));
        }
        let state_file = data_dir
            .join("projections")
            .join(&name)
            .join(format!("{}.redb", module.hash));
        let store = StateStore::open(&state_file).map_err(|e| e.to_string())?;
        tracing::info!(
            projection = %name,
            hash = %module.short_hash(),
            file = %file.display(),
            sources = ?module.descriptor.sources,
            compiled_from_cache = module.from_cache,
            "module loaded"
        );
        let projection = Arc::new(ProjectionRuntime::new(module, store));
        let handle = worker::spawn(projection.clone(), self.source.clone(), config.clone())
            .map_err(|e| format!("could not start the worker thread: {e}"))?;
        self.workers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(handle);
        self.projections
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name, projection);
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<SharedProjection> {
        self.projections
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    pub fn all(&self) -> Vec<SharedProjection> {
        self.projections
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    pub fn rejected(&self) -> Vec<Rejected> {
        self.rejected
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn source(&self) -> &dyn Source {
        self.source.as_ref()
    }

    /// Stops every worker after its current batch and waits for them; each
    /// makes its last commit durable before it exits.
    pub fn shutdown(&self) {
        for projection in self.all() {
            projection.request_stop();
        }
        self.source.wake_all();
        let workers =
            std::mem::take(&mut *self.workers.lock().unwrap_or_else(PoisonError::into_inner));
        for worker in workers {
            let _ = worker.join();
        }
    }
}
