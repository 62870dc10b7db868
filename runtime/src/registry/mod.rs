//! The set of projections and their versions. Loads every module in the
//! modules folder at start, then reacts to module files appearing, changing
//! and disappearing: a new version builds in the shadow while the serving
//! one keeps answering, and replaces it atomically once caught up. All
//! changes go through one controller thread, so versions of a projection
//! never race each other.

mod sidecar;
mod state_files;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Instant;

use serde::Serialize;

use crate::projection::{ProjectionRuntime, Role, SharedProjection, Status, WorkerEvent, unix_now};
use crate::source::Source;
use crate::wasm::{LoadedModule, WasmHost};
use crate::worker::WorkerConfig;
use state_files::StateFiles;

/// A module file that was not accepted, and why.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Rejected {
    pub file: String,
    /// Content hash, when the file could be read.
    pub hash: Option<String>,
    pub error: String,
    /// Seconds since the Unix epoch.
    pub at: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("modules folder {path} cannot be read: {source}")]
    ModulesDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the registry is shut down")]
    Closed,
    #[error("{0}")]
    Refused(String),
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

/// What the controller thread acts on.
pub enum Command {
    /// A module file appeared or changed (and is complete).
    Changed(PathBuf),
    /// A module file disappeared.
    Removed(PathBuf),
    Worker(WorkerEvent),
    /// Rebuild a projection from the beginning in the shadow.
    Replay(String, Sender<Result<(), String>>),
    /// Rebuild a projection in the shadow from a snapshot plus the tail.
    Restore(String, PathBuf, Sender<Result<(), String>>),
    Shutdown,
}

/// One projection name: the version answering queries, and the one being
/// built to replace it.
#[derive(Default, Clone)]
struct Slot {
    serving: Option<SharedProjection>,
    building: Option<SharedProjection>,
}

struct Inner {
    host: WasmHost,
    sources: Sources,
    files: StateFiles,
    config: WorkerConfig,
    slots: RwLock<BTreeMap<String, Slot>>,
    /// Bumped on every slot change (a swap, a start, a stop): waits tied to
    /// a serving version follow the one that replaces it.
    slot_changes: tokio::sync::watch::Sender<u64>,
    rejected: RwLock<Vec<Rejected>>,
    commands: Mutex<Sender<Command>>,
}

pub struct Registry {
    inner: Arc<Inner>,
    controller: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Registry {
    /// Loads every `*.wasm` in `modules_dir` (created if missing), starts a
    /// worker for each accepted module, and starts the controller that
    /// applies later changes. State lives under
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
        let files = crate::watcher::module_files(modules_dir).map_err(dir_err)?;

        let (commands, inbox) = mpsc::channel();
        let inner = Arc::new(Inner {
            host: host.clone(),
            sources,
            files: StateFiles::new(
                data_dir.join("projections"),
                data_dir.join("snapshots"),
                config.state_cache_bytes,
            ),
            config: config.clone(),
            slots: RwLock::new(BTreeMap::new()),
            slot_changes: tokio::sync::watch::Sender::new(0),
            rejected: RwLock::new(Vec::new()),
            commands: Mutex::new(commands),
        });
        for file in files {
            inner.changed(&file);
        }
        let controller = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name("registry".into())
                .spawn(move || inner.run(&inbox))
                .map_err(dir_err)?
        };
        Ok(Self {
            inner,
            controller: Mutex::new(Some(controller)),
        })
    }

    /// A sender for module-file changes (the folder watcher feeds it).
    pub fn commands(&self) -> Sender<Command> {
        self.inner
            .commands
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The serving version of `name`.
    pub fn get(&self, name: &str) -> Option<SharedProjection> {
        self.inner.slot(name).and_then(|slot| slot.serving)
    }

    /// Changes whenever a projection's serving or building version changes.
    pub fn watch_slots(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.slot_changes.subscribe()
    }

    /// The version of `name` being built in the shadow, if any.
    pub fn get_building(&self, name: &str) -> Option<SharedProjection> {
        self.inner.slot(name).and_then(|slot| slot.building)
    }

    /// Every serving version, by name.
    pub fn all(&self) -> Vec<SharedProjection> {
        self.versions()
            .into_iter()
            .map(|(serving, _)| serving)
            .collect()
    }

    /// Every projection: its serving version and the one building, by name.
    pub fn versions(&self) -> Vec<(SharedProjection, Option<SharedProjection>)> {
        self.inner
            .slots
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter_map(|slot| {
                slot.serving
                    .clone()
                    .map(|serving| (serving, slot.building.clone()))
            })
            .collect()
    }

    pub fn rejected(&self) -> Vec<Rejected> {
        self.inner
            .rejected
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Starts rebuilding `name` from the beginning in the shadow; the
    /// serving version answers until the rebuild has caught up.
    pub fn replay(&self, name: &str) -> Result<(), RegistryError> {
        let (reply, answer) = mpsc::channel();
        self.commands()
            .send(Command::Replay(name.to_owned(), reply))
            .map_err(|_| RegistryError::Closed)?;
        answer
            .recv()
            .map_err(|_| RegistryError::Closed)?
            .map_err(RegistryError::Refused)
    }

    /// Rebuilds `name` in the shadow from `snapshot` plus the events after
    /// it; the serving version answers until then.
    pub fn restore(&self, name: &str, snapshot: &Path) -> Result<(), RegistryError> {
        let (reply, answer) = mpsc::channel();
        self.commands()
            .send(Command::Restore(
                name.to_owned(),
                snapshot.to_owned(),
                reply,
            ))
            .map_err(|_| RegistryError::Closed)?;
        answer
            .recv()
            .map_err(|_| RegistryError::Closed)?
            .map_err(RegistryError::Refused)
    }

    /// `data/snapshots`.
    pub fn snapshots_dir(&self) -> &Path {
        self.inner.files.snapshots_dir()
    }

    /// Snapshots kept per version.
    pub fn snapshots_keep(&self) -> usize {
        self.inner
            .config
            .snapshots
            .as_ref()
            .map_or(crate::snapshot::DEFAULT_KEEP, |p| p.keep)
    }

    /// Stops the controller and every worker after its current batch; each
    /// makes its last commit durable before it exits.
    pub fn shutdown(&self) {
        let _ = self.commands().send(Command::Shutdown);
        let controller = self
            .controller
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(controller) = controller {
            let _ = controller.join();
        }
        for source in self.inner.sources.all() {
            source.wake_all();
        }
        let slots: Vec<Slot> = self
            .inner
            .slots
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        for slot in slots {
            for version in slot.serving.iter().chain(slot.building.iter()) {
                version.request_stop();
            }
        }
        for slot in self
            .inner
            .slots
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
        {
            for version in slot.serving.iter().chain(slot.building.iter()) {
                version.stop_and_join();
            }
        }
    }
}

/// How long a swap waits for the new version to reach the frozen serving
/// version's offsets (it is normally a few batches behind).
const SWAP_CATCH_UP: std::time::Duration = std::time::Duration::from_secs(60);

fn worker_start_error(e: std::io::Error) -> String {
    format!("could not start the worker thread: {e}")
}

/// A file tag no other rebuild in this process uses.
fn unique_tag(kind: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("{kind}-{millis}-{n}")
}

/// A version's offsets keyed by real topic, so versions that name their
/// topics differently can be compared.
fn physical_offsets(version: &SharedProjection) -> Result<BTreeMap<(String, u32), u64>, String> {
    let offsets = version
        .store
        .reader()
        .and_then(|r| r.offsets())
        .map_err(|e| e.to_string())?;
    Ok(offsets
        .iter()
        .filter_map(|(logical, partition, next)| {
            version
                .topics
                .iter()
                .find(|b| b.logical == logical)
                .map(|b| ((b.physical.clone(), partition), next))
        })
        .collect())
}

/// Waits until `building` has applied everything `serving` had, on the
/// real topics both read.
fn wait_until_reached(
    building: &SharedProjection,
    serving: &SharedProjection,
) -> Result<(), String> {
    let shared: Vec<&str> = building
        .topics
        .iter()
        .map(|b| b.physical.as_str())
        .filter(|t| serving.topics.iter().any(|s| s.physical == *t))
        .collect();
    let target: Vec<((String, u32), u64)> = physical_offsets(serving)?
        .into_iter()
        .filter(|((topic, _), _)| shared.contains(&topic.as_str()))
        .collect();
    let deadline = Instant::now() + SWAP_CATCH_UP;
    loop {
        let reached = physical_offsets(building)?;
        if target
            .iter()
            .all(|(at, next)| reached.get(at).copied().unwrap_or(0) >= *next)
        {
            return Ok(());
        }
        if let Status::Failed { message, .. } = building.status() {
            return Err(format!("failed while catching up: {message}"));
        }
        if Instant::now() >= deadline {
            return Err("did not reach the serving version's offsets in time".into());
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

impl Inner {
    fn slot(&self, name: &str) -> Option<Slot> {
        self.slots
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    fn update_slot(&self, name: &str, update: impl FnOnce(&mut Slot)) {
        let mut slots = self.slots.write().unwrap_or_else(PoisonError::into_inner);
        update(slots.entry(name.to_owned()).or_default());
        drop(slots);
        self.slot_changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn run(&self, inbox: &Receiver<Command>) {
        self.files.sweep(self.config.state_retention);
        while let Ok(command) = inbox.recv() {
            if matches!(
                command,
                Command::Worker(WorkerEvent::CaughtUp { .. }) | Command::Removed(_)
            ) {
                self.files.sweep(self.config.state_retention);
            }
            match command {
                Command::Changed(path) => self.changed(&path),
                Command::Removed(path) => self.removed(&path),
                Command::Worker(WorkerEvent::CaughtUp {
                    name,
                    hash,
                    instance,
                }) => self.caught_up(&name, &hash, instance),
                Command::Worker(WorkerEvent::Halted {
                    name,
                    hash,
                    instance,
                    message,
                }) => self.halted(&name, &hash, instance, &message),
                Command::Replay(name, reply) => {
                    let _ = reply.send(self.replay(&name));
                }
                Command::Restore(name, snapshot, reply) => {
                    let _ = reply.send(self.restore(&name, &snapshot));
                }
                Command::Shutdown => return,
            }
        }
    }

    fn reject(&self, file: &Path, hash: Option<String>, error: String) {
        tracing::error!(file = %file.display(), hash = ?hash, "module rejected: {error}");
        let mut rejected = self
            .rejected
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        rejected.retain(|r| r.file != file.display().to_string());
        rejected.push(Rejected {
            file: file.display().to_string(),
            hash,
            error,
            at: unix_now(),
        });
    }

    fn accepted(&self, file: &Path) {
        self.rejected
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|r| r.file != file.display().to_string());
    }

    /// The version of the projection that `file` provides, if any.
    fn slot_of_file(&self, file: &Path) -> Option<(String, Slot)> {
        self.slots
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|(_, slot)| {
                slot.serving
                    .iter()
                    .chain(slot.building.iter())
                    .any(|v| v.module.file == file)
            })
            .map(|(name, slot)| (name.clone(), slot.clone()))
    }

    fn changed(&self, file: &Path) {
        // Bounded by the module size limit: a huge file is refused unread.
        let bytes = match self.host.read_module(file) {
            Ok(bytes) => bytes,
            Err(e) => return self.reject(file, None, e.to_string()),
        };
        let hash = blake3::hash(&bytes).to_hex().to_string();
        if let Some((name, slot)) = self.slot_of_file(file) {
            let unchanged = |v: &Option<SharedProjection>| {
                v.as_ref().is_some_and(|v| {
                    v.module.hash == hash && !matches!(v.status(), Status::Removed { .. })
                })
            };
            if unchanged(&slot.building) {
                return;
            }
            if unchanged(&slot.serving) {
                // The file went back to the serving version: a build of
                // the version it had in between is no longer wanted.
                self.abandon_build(&name, "the module file went back to the serving version");
                self.accepted(file);
                return;
            }
        }
        let started = Instant::now();
        let mut module = match self.host.load_bytes(file, &bytes) {
            Ok(module) => module,
            Err(e) => return self.reject(file, Some(hash), e.to_string()),
        };
        if let Err(error) = sidecar::apply_name(&mut module) {
            return self.reject(file, Some(hash), error);
        }
        let name = module.descriptor.name.clone();
        let result = match self.slot(&name).and_then(|slot| slot.serving) {
            None => self.start_serving(module),
            // A renamed or replaced file may take over a removed projection.
            Some(serving)
                if serving.module.file != file
                    && (matches!(serving.status(), Status::Removed { .. })
                        || !serving.module.file.exists()) =>
            {
                self.update(&serving, module)
            }
            Some(serving) if serving.module.file != file => Err(format!(
                "{}: projection name {name:?} is already served by {}; give each module its own name",
                file.display(),
                serving.module.file.display()
            )),
            Some(serving) => self.update(&serving, module),
        };
        match result {
            Ok(()) => {
                self.accepted(file);
                tracing::info!(projection = %name, version = %&hash[..12], took_ms = started.elapsed().as_millis() as u64, "module accepted");
            }
            Err(error) => self.reject(file, Some(hash), error),
        }
    }

    fn runtime(
        &self,
        module: LoadedModule,
        store: Arc<crate::store::StateStore>,
    ) -> Result<ProjectionRuntime, String> {
        let binding = sidecar::bind_source(&self.sources, &module)?;
        let config = binding.worker_config(&self.config)?;
        let (source, topics) = (binding.source, binding.topics);
        let commands = self
            .commands
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        Ok(
            ProjectionRuntime::new(module, store, source, topics, config).with_events(
                move |event| {
                    let _ = commands.send(Command::Worker(event));
                },
            ),
        )
    }

    /// A projection with no serving version: it serves at once, from its
    /// retained state file if this exact version ran before.
    fn start_serving(&self, module: LoadedModule) -> Result<(), String> {
        let name = module.descriptor.name.clone();
        let store = self.files.open(&name, &module.hash, None)?;
        let projection = Arc::new(self.runtime(module, store)?);
        projection.start().map_err(worker_start_error)?;
        tracing::info!(
            projection = %name,
            version = %projection.module.short_hash(),
            file = %projection.module.file.display(),
            source_kind = projection.source.kind(),
            compiled_from_cache = projection.module.from_cache,
            "projection started"
        );
        self.update_slot(&name, |slot| slot.serving = Some(projection));
        Ok(())
    }

    /// A new version of a projection that has a serving version.
    fn update(&self, serving: &SharedProjection, module: LoadedModule) -> Result<(), String> {
        let name = module.descriptor.name.clone();
        self.abandon_build(&name, "a newer module arrived");
        let removed = matches!(serving.status(), Status::Removed { .. });
        if module.hash == serving.module.hash
            || module.descriptor.state_version == serving.module.descriptor.state_version
        {
            return self.take_over(serving, module, removed);
        }
        self.start_build(serving, module, None)
    }

    /// Same state layout: the new version takes over the serving state at
    /// once, without replay.
    fn take_over(
        &self,
        serving: &SharedProjection,
        module: LoadedModule,
        removed: bool,
    ) -> Result<(), String> {
        let name = module.descriptor.name.clone();
        // Everything that can fail happens while the old version still runs.
        let next = Arc::new(self.runtime(module, serving.store.clone())?);
        self.files.alias(&name, &next.module.hash, &serving.store)?;
        serving.stop_and_join();
        if let Err(e) = next.start() {
            self.restart(serving);
            return Err(worker_start_error(e));
        }
        tracing::info!(
            projection = %name,
            version = %next.module.short_hash(),
            from = %serving.module.short_hash(),
            to = %next.module.short_hash(),
            restored = removed,
            "swapped without replay (same state version)"
        );
        self.update_slot(&name, |slot| slot.serving = Some(next));
        Ok(())
    }

    /// A new state layout: build the new version in the shadow from the
    /// beginning (or from its retained state file) while `serving` serves.
    fn start_build(
        &self,
        serving: &SharedProjection,
        module: LoadedModule,
        fresh_file: Option<&str>,
    ) -> Result<(), String> {
        let name = module.descriptor.name.clone();
        let store = self.files.open(&name, &module.hash, fresh_file)?;
        self.build_with(serving, module, store)
    }

    fn build_with(
        &self,
        serving: &SharedProjection,
        module: LoadedModule,
        store: Arc<crate::store::StateStore>,
    ) -> Result<(), String> {
        let name = module.descriptor.name.clone();
        let building = Arc::new(self.runtime(module, store)?);
        let position: u64 = building
            .store
            .reader()
            .and_then(|r| r.offsets())
            .map_err(|e| e.to_string())?
            .iter()
            .map(|(_, _, o)| o)
            .sum();
        let heads: u64 = building
            .topics
            .iter()
            .map(|b| building.source.heads(&b.physical).iter().sum::<u64>())
            .sum();
        building.set_role(Role::Building {
            started: Instant::now(),
            start_position: position,
            start_heads: heads.max(position),
        });
        building.start().map_err(worker_start_error)?;
        tracing::info!(
            projection = %name,
            version = %building.module.short_hash(),
            serving = %serving.module.short_hash(),
            building = %building.module.short_hash(),
            from_position = position,
            "building a new version in the shadow"
        );
        self.update_slot(&name, |slot| slot.building = Some(building));
        Ok(())
    }

    fn caught_up(&self, name: &str, hash: &str, instance: u64) {
        let Some(slot) = self.slot(name) else { return };
        let Some(building) = slot.building.filter(|b| b.instance == instance) else {
            return;
        };
        // Freeze the serving version (it keeps answering reads), then let
        // the new one reach exactly its offsets: answers never go back.
        if let Some(old) = &slot.serving {
            old.stop_and_join();
            if let Err(reason) = wait_until_reached(&building, old) {
                tracing::warn!(projection = %name, version = %building.module.short_hash(), "swap abandoned: {reason}");
                self.drop_build(name, &building);
                self.reject(
                    &building.module.file,
                    Some(hash.to_owned()),
                    format!("{}: {reason}", building.module.file.display()),
                );
                self.restart(old);
                return;
            }
        }
        // Name the rebuilt file first, so a crash after the swap restarts
        // from what was swapped in.
        if let Err(e) = self.files.promote(name, hash, &building.store) {
            tracing::warn!(projection = %name, version = %building.module.short_hash(), "swap abandoned: {e}");
            self.drop_build(name, &building);
            self.reject(&building.module.file, Some(hash.to_owned()), e);
            if let Some(old) = &slot.serving {
                self.restart(old);
            }
            return;
        }
        building.set_role(Role::Serving);
        // One write: readers see the old version or the new one, never none.
        self.update_slot(name, |slot| {
            slot.serving = Some(building.clone());
            slot.building = None;
        });
        if let Some(old) = slot.serving {
            tracing::info!(
                projection = %name,
                version = %building.module.short_hash(),
                from = %old.module.short_hash(),
                to = %building.module.short_hash(),
                "swapped to the rebuilt version"
            );
        }
    }

    /// Stops and forgets the shadow build of `name`, if there is one.
    fn abandon_build(&self, name: &str, why: &str) {
        if let Some(building) = self.slot(name).and_then(|s| s.building) {
            tracing::info!(projection = %name, version = %building.module.short_hash(), "abandoning the shadow build: {why}");
            self.drop_build(name, &building);
        }
    }

    /// Stops `building` and removes it from its slot.
    fn drop_build(&self, name: &str, building: &SharedProjection) {
        building.stop_and_join();
        self.update_slot(name, |slot| {
            if slot
                .building
                .as_ref()
                .is_some_and(|b| b.instance == building.instance)
            {
                slot.building = None;
            }
        });
    }

    /// Starts a fresh worker for a stopped version (same module and state).
    fn restart(&self, stopped: &SharedProjection) {
        let name = stopped.name().to_owned();
        let restarted = self
            .runtime(stopped.module.clone(), stopped.store.clone())
            .and_then(|runtime| {
                let runtime = Arc::new(runtime);
                runtime.start().map_err(worker_start_error)?;
                Ok(runtime)
            });
        match restarted {
            Ok(runtime) => self.update_slot(&name, |slot| slot.serving = Some(runtime)),
            Err(e) => {
                tracing::error!(projection = %name, version = %stopped.module.short_hash(), "could not restart the serving version: {e}")
            }
        }
    }

    fn halted(&self, name: &str, hash: &str, instance: u64, message: &str) {
        let Some(slot) = self.slot(name) else { return };
        let Some(building) = slot.building.filter(|b| b.instance == instance) else {
            return;
        };
        self.drop_build(name, &building);
        self.reject(
            &building.module.file,
            Some(hash.to_owned()),
            format!(
                "{}: failed during replay, the serving version keeps serving: {message}",
                building.module.file.display()
            ),
        );
    }

    fn removed(&self, file: &Path) {
        self.accepted(file);
        let Some((name, slot)) = self.slot_of_file(file) else {
            return;
        };
        self.abandon_build(&name, "the module file was removed");
        if let Some(serving) = slot.serving {
            serving.stop_and_join();
            serving.set_status(Status::Removed { since: unix_now() });
            tracing::info!(projection = %name, version = %serving.module.short_hash(), file = %file.display(), "module removed; projection stopped, state kept");
        }
    }

    fn restore(&self, name: &str, snapshot: &Path) -> Result<(), String> {
        let serving = self
            .slot(name)
            .and_then(|slot| slot.serving)
            .ok_or_else(|| format!("no projection named {name:?}"))?;
        if matches!(serving.status(), Status::Removed { .. }) {
            return Err(format!(
                "projection {name:?} was removed; put its module back first"
            ));
        }
        let info = crate::snapshot::verify(snapshot).map_err(|e| e.to_string())?;
        let module = &serving.module;
        if info.meta.name != name || info.meta.state_version != module.descriptor.state_version {
            return Err(format!(
                "snapshot {} is of {} state version {}, but the serving {name} module has state version {}",
                snapshot.display(),
                info.meta.name,
                info.meta.state_version,
                module.descriptor.state_version
            ));
        }
        self.abandon_build(name, "a snapshot restore was requested");
        let store =
            self.files
                .restore_fresh(name, &module.hash, snapshot, &unique_tag("restore"))?;
        self.build_with(&serving, module.clone(), store)
    }

    fn replay(&self, name: &str) -> Result<(), String> {
        let serving = self
            .slot(name)
            .and_then(|slot| slot.serving)
            .ok_or_else(|| format!("no projection named {name:?}"))?;
        if matches!(serving.status(), Status::Removed { .. }) {
            return Err(format!(
                "projection {name:?} was removed; put its module back first"
            ));
        }
        self.abandon_build(name, "a replay was requested");
        let fresh = unique_tag("replay");
        self.start_build(&serving, serving.module.clone(), Some(&fresh))
    }
}
