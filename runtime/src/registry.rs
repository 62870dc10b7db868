//! The set of projections: loads every module in the modules folder at
//! start, rejects bad ones with a reason while the others run, and owns the
//! worker threads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};

use crate::projection::{ProjectionRuntime, SharedProjection};
use crate::source::{Source, TopicBinding};
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

/// The sources projections can read from.
#[derive(Clone)]
pub struct Sources {
    pub embedded: Arc<dyn Source>,
    pub kafka: Option<Arc<dyn Source>>,
}

impl Sources {
    fn all(&self) -> impl Iterator<Item = &Arc<dyn Source>> {
        std::iter::once(&self.embedded).chain(self.kafka.iter())
    }
}

/// `<module>.toml` next to `<module>.wasm`: per-projection source settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sidecar {
    /// `"embedded"` or `"kafka"`; default: Kafka when configured, else the
    /// embedded log.
    source: Option<SourceKind>,
    /// Topic named by the module -> real topic in the source.
    #[serde(default)]
    topics: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum SourceKind {
    Embedded,
    Kafka,
}

impl Sidecar {
    fn read(module: &Path) -> Result<(PathBuf, Self), String> {
        let path = module.with_extension("toml");
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text)
                .map(|sidecar| (path.clone(), sidecar))
                .map_err(|e| format!("{}: invalid sidecar file: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((path, Self::default())),
            Err(e) => Err(format!("{}: cannot read sidecar file: {e}", path.display())),
        }
    }
}

pub struct Registry {
    projections: RwLock<BTreeMap<String, SharedProjection>>,
    rejected: RwLock<Vec<Rejected>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    sources: Sources,
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
        sources: Sources,
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
            sources,
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
        let (source, topics) = self.bind_source(file, &module.descriptor.sources)?;
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
            source_kind = source.kind(),
            compiled_from_cache = module.from_cache,
            "module loaded"
        );
        let projection = Arc::new(ProjectionRuntime::new(module, store, source, topics));
        let handle = worker::spawn(projection.clone(), config.clone())
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

    /// Picks the module's source and real topic names from its sidecar.
    fn bind_source(
        &self,
        file: &Path,
        module_topics: &[String],
    ) -> Result<(Arc<dyn Source>, Vec<TopicBinding>), String> {
        let (path, sidecar) = Sidecar::read(file)?;
        for topic in sidecar.topics.keys() {
            if !module_topics.contains(topic) {
                return Err(format!(
                    "{}: maps topic {topic:?}, which the module does not subscribe to (it reads: {})",
                    path.display(),
                    module_topics.join(", ")
                ));
            }
        }
        let source = match (sidecar.source, &self.sources.kafka) {
            (Some(SourceKind::Embedded), _) | (None, None) => self.sources.embedded.clone(),
            (Some(SourceKind::Kafka) | None, Some(kafka)) => kafka.clone(),
            (Some(SourceKind::Kafka), None) => {
                return Err(format!(
                    "{}: asks for source \"kafka\", but projector runs without Kafka; start it with --kafka BOOTSTRAP",
                    path.display()
                ));
            }
        };
        let topics = module_topics
            .iter()
            .map(|logical| TopicBinding {
                logical: logical.clone(),
                physical: sidecar
                    .topics
                    .get(logical)
                    .cloned()
                    .unwrap_or_else(|| logical.clone()),
            })
            .collect();
        Ok((source, topics))
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

    /// Stops every worker after its current batch and waits for them; each
    /// makes its last commit durable before it exits.
    pub fn shutdown(&self) {
        for projection in self.all() {
            projection.request_stop();
        }
        for source in self.sources.all() {
            source.wake_all();
        }
        let workers =
            std::mem::take(&mut *self.workers.lock().unwrap_or_else(PoisonError::into_inner));
        for worker in workers {
            let _ = worker.join();
        }
    }
}
