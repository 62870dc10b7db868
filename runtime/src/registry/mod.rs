//! The set of projections and their versions. Loads every module in the
//! modules folder at start, then reacts to module files appearing, changing
//! and disappearing: a new version builds in the shadow while the serving
//! one keeps answering, and replaces it atomically once caught up. All
//! changes go through one controller thread, so versions of a projection
//! never race each other.

mod sidecar;
mod state_files;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Instant;

use serde::Serialize;

use crate::projection::{
    ProjectionRuntime, Role, SharedProjection, Status, WorkerEvent, unit_file_key, unix_now,
};
use crate::source::{Partitions, Source};
use crate::store::StateStore;
use crate::wasm::{LoadedModule, WasmHost};
use crate::worker::{SkipOrder, WorkerConfig};
use sidecar::{Settings, SettingsError};
use state_files::{StateFiles, Sweep};

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

/// Why a failed projection could not be resumed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResumeError {
    #[error("no projection named {0:?}")]
    Unknown(String),
    #[error(
        "projection {name:?} is {status}, not failed: only a failed projection resumes (`projector status` shows why it stopped)"
    )]
    NotFailed { name: String, status: &'static str },
    #[error(
        "projection {name:?} failed without a failing event ({message}), so there is no event to skip; resume without --skip to start it again"
    )]
    NothingToSkip { name: String, message: String },
    #[error("projection {name:?} could not be resumed: {reason}")]
    Start { name: String, reason: String },
    #[error("the registry is shut down")]
    Closed,
}

/// What `resume` asks for: run the failed event again, or pass over it.
#[derive(Debug, Clone, Default)]
pub struct ResumeRequest {
    pub skip: bool,
    /// Recorded with the skipped event.
    pub reason: Option<String>,
}

/// A resumed projection: its version, and the event passed over, if any.
#[derive(Debug, Clone, Serialize)]
pub struct Resumed {
    pub hash: String,
    pub skipped: Option<SkipOrder>,
}

/// The reason recorded when an operator gives none.
const NO_REASON: &str = "(no reason given)";

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
    /// The sidecar of this module file (`<module>.toml`) appeared, changed
    /// or disappeared.
    SidecarChanged(PathBuf),
    Worker(WorkerEvent),
    /// Rebuild a projection from the beginning in the shadow.
    Replay(String, Sender<Result<(), String>>),
    /// Rebuild a projection in the shadow from a snapshot plus the tail.
    Restore(String, PathBuf, Sender<Result<(), String>>),
    /// Start a failed projection again (`projector resume`).
    Resume(String, ResumeRequest, Sender<Result<Resumed, ResumeError>>),
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
    /// Module files of partitioned projections whose layout could not be
    /// read (broker down, topic missing): looked at again by the layout check.
    layout_retries: Mutex<std::collections::BTreeSet<PathBuf>>,
    /// Set while those are looked at again: a rejection already shown is
    /// not logged as an error again.
    quiet_rejects: std::sync::atomic::AtomicBool,
    /// Per projection, the (version, unit count) last laid out after its
    /// topics' partition count changed.
    layout_attempts: Mutex<BTreeMap<String, (String, u32)>>,
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
                config.snapshot_store.clone(),
            ),
            config: config.clone(),
            slots: RwLock::new(BTreeMap::new()),
            slot_changes: tokio::sync::watch::Sender::new(0),
            rejected: RwLock::new(Vec::new()),
            commands: Mutex::new(commands),
            layout_retries: Mutex::default(),
            quiet_rejects: std::sync::atomic::AtomicBool::new(false),
            layout_attempts: Mutex::default(),
        });
        for file in files {
            inner.changed(&file, false);
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

    /// Starts a failed projection again from the event it failed on: runs
    /// it again, or (`skip`) records it as skipped with the reason and
    /// goes on after it. The sidecar is read again, so a changed error
    /// policy applies.
    pub fn resume(&self, name: &str, request: ResumeRequest) -> Result<Resumed, ResumeError> {
        let (reply, answer) = mpsc::channel();
        self.commands()
            .send(Command::Resume(name.to_owned(), request, reply))
            .map_err(|_| ResumeError::Closed)?;
        answer.recv().map_err(|_| ResumeError::Closed)?
    }

    /// `data/snapshots`.
    pub fn snapshots_dir(&self) -> &Path {
        self.inner.files.snapshots_dir()
    }

    /// The shared snapshot store, if one is configured.
    pub fn snapshot_store(&self) -> Option<&Arc<crate::snapshot::SnapshotStore>> {
        self.inner.config.snapshot_store.as_ref()
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

/// How often partitioned projections' topics are checked for a changed
/// partition count.
const LAYOUT_CHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// How often the state files are swept while the process runs: often
/// enough that a file is deleted soon after its retention ends.
fn sweep_every(retention: std::time::Duration) -> std::time::Duration {
    (retention / 4).clamp(
        std::time::Duration::from_millis(100),
        std::time::Duration::from_secs(600),
    )
}

fn worker_start_error(e: std::io::Error) -> String {
    format!("could not start the worker thread: {e}")
}

/// The names the state files of version `hash` go by: the hash, or one
/// per unit of a partitioned projection.
fn file_keys(hash: &str, units: Option<u32>) -> Vec<String> {
    match units {
        None => vec![hash.to_owned()],
        Some(units) => (0..units)
            .map(|unit| unit_file_key(hash, Partitions::Only(unit)))
            .collect(),
    }
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
    // Offsets of a topic in one source say nothing about another source.
    let same_source = building.source.kind() == serving.source.kind();
    let shared: Vec<&str> = building
        .topics
        .iter()
        .map(|b| b.physical.as_str())
        .filter(|t| same_source && serving.topics.iter().any(|s| s.physical == *t))
        .collect();
    let target: Vec<((String, u32), u64)> = physical_offsets(serving)?
        .into_iter()
        .filter(|((topic, _), _)| shared.contains(&topic.as_str()))
        .collect();
    // Where the serving version is held because the log now ends below
    // its position (re-created topic), the build can only reach the log's
    // end: that is its goal there (unknown until the head is known).
    let held = serving.source_status().held_behind;
    let goal = |(topic, partition): &(String, u32), next: u64| {
        if !held.iter().any(|(t, p)| t == topic && p == partition) {
            return next;
        }
        building
            .source
            .heads(topic)
            .get(*partition as usize)
            .map_or(next, |&log_end| log_end.min(next))
    };
    let deadline = Instant::now() + SWAP_CATCH_UP;
    loop {
        let reached = physical_offsets(building)?;
        if target
            .iter()
            .all(|(at, next)| reached.get(at).copied().unwrap_or(0) >= goal(at, *next))
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

    /// Puts `next` where `old` was (serving or building).
    fn replace_version(&self, old: &SharedProjection, next: &SharedProjection) {
        self.update_slot(old.name(), |slot| {
            for version in [&mut slot.serving, &mut slot.building] {
                if version.as_ref().is_some_and(|v| v.instance == old.instance) {
                    *version = Some(next.clone());
                }
            }
        });
    }

    fn run(&self, inbox: &Receiver<Command>) {
        self.sweep();
        let every = sweep_every(self.config.state_retention);
        let mut next_sweep = Instant::now() + every;
        let mut next_layout_check = Instant::now() + LAYOUT_CHECK;
        loop {
            let next = next_sweep.min(next_layout_check);
            match inbox.recv_timeout(next.saturating_duration_since(Instant::now())) {
                Ok(command) => {
                    if matches!(
                        command,
                        Command::Worker(WorkerEvent::CaughtUp { .. }) | Command::Removed(_)
                    ) {
                        self.sweep();
                    }
                    if !self.handle(command) {
                        return;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
            // Checked after commands too: a steady stream of them must not
            // put these off.
            if Instant::now() >= next_layout_check {
                self.check_unit_layouts();
                next_layout_check = Instant::now() + LAYOUT_CHECK;
            }
            if Instant::now() >= next_sweep {
                // Removed projections reach their retention while the
                // process runs, not only across restarts.
                self.sweep();
                next_sweep = Instant::now() + every;
            }
        }
    }

    /// Acts on one command; `false` once the registry shuts down.
    fn handle(&self, command: Command) -> bool {
        match command {
            Command::Changed(path) => self.changed(&path, false),
            Command::Removed(path) => self.removed(&path),
            Command::SidecarChanged(path) => self.sidecar_changed(&path),
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
            Command::Resume(name, request, reply) => {
                let _ = reply.send(self.resume(&name, request));
            }
            Command::Shutdown => return false,
        }
        true
    }

    /// A partitioned projection whose topics gained partitions (or whose
    /// topics now differ in count) no longer matches its units: keys moved
    /// between partitions, so it is rebuilt in the shadow with the new
    /// layout while the old one serves, and events of the new partitions
    /// are never left unread. A layout that cannot be read or is refused
    /// is reported and the version serves on.
    fn check_unit_layouts(&self) {
        let retries = std::mem::take(
            &mut *self
                .layout_retries
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for file in retries.into_iter().filter(|file| file.exists()) {
            self.quiet_rejects
                .store(true, std::sync::atomic::Ordering::Relaxed);
            self.changed(&file, true);
            self.quiet_rejects
                .store(false, std::sync::atomic::Ordering::Relaxed);
        }
        let slots: Vec<(String, Slot)> = self
            .slots
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(name, slot)| (name.clone(), slot.clone()))
            .collect();
        for (name, slot) in slots {
            let Some(serving) = slot.serving.filter(|s| s.is_partitioned()) else {
                continue;
            };
            if slot.building.is_some()
                || matches!(
                    serving.status(),
                    Status::Removed { .. } | Status::Failed { .. }
                )
            {
                continue;
            }
            let settings = Settings::of(&serving);
            let sidecar_file = serving.module.file.with_extension("toml");
            let units = match sidecar::unit_count(
                &sidecar_file,
                settings.source.as_ref(),
                &settings.topics,
            ) {
                Ok(units) => units,
                // A source that does not answer shows in status already.
                Err((error, _)) => {
                    tracing::debug!(projection = %name, "{error}");
                    continue;
                }
            };
            let current = settings.units.unwrap_or(1);
            if units == current {
                continue;
            }
            // Each change is acted on once: a layout that could not be
            // applied is not tried again every few seconds.
            let attempt = (serving.module.hash.clone(), units);
            if self
                .layout_attempts
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(name.clone(), attempt.clone())
                == Some(attempt)
            {
                continue;
            }
            let relaid = Settings {
                units: Some(units),
                ..settings
            };
            let outcome = if units > current {
                tracing::warn!(
                    projection = %name,
                    version = %serving.module.short_hash(),
                    from = current,
                    to = units,
                    "the topics of a partitioned projection gained partitions: units added for them; a key written before whose events now go to a new partition keeps its earlier state in its old unit (Kafka moves keys when a topic gains partitions)"
                );
                self.add_units(&serving, relaid)
            } else {
                tracing::warn!(
                    projection = %name,
                    version = %serving.module.short_hash(),
                    from = current,
                    to = units,
                    "the topics of a partitioned projection have fewer partitions than it has units (re-created?): rebuilding it in the shadow"
                );
                self.start_build(
                    &serving,
                    serving.module.clone(),
                    relaid,
                    Some(unique_tag("relayout").as_str()),
                )
            };
            if let Err(error) = outcome {
                self.reject(
                    &serving.module.file,
                    Some(serving.module.hash.clone()),
                    error,
                );
            }
        }
    }

    /// `serving` with more units (its topics gained partitions): its units
    /// go on with their own files, the new ones start on theirs.
    fn add_units(&self, serving: &SharedProjection, settings: Settings) -> Result<(), String> {
        let name = serving.name().to_owned();
        // The existing units' files are open: the same stores come back.
        let stores = self.open_state(&name, &serving.module.hash, settings.units, None)?;
        let next = Arc::new(self.runtime(serving.module.clone(), stores, settings)?);
        serving.stop_and_join();
        if let Err(e) = next.start() {
            self.restart(serving);
            return Err(worker_start_error(e));
        }
        self.update_slot(&name, |slot| slot.serving = Some(next));
        Ok(())
    }

    /// Forgets projections removed for longer than the retention time, then
    /// deletes the state files nothing needs any more.
    fn sweep(&self) {
        let retention = self.config.state_retention;
        let now = unix_now();
        let expired: Vec<String> = {
            let mut slots = self.slots.write().unwrap_or_else(PoisonError::into_inner);
            let expired: Vec<String> = slots
                .iter()
                .filter(|(_, slot)| {
                    slot.building.is_none()
                        && slot.serving.as_ref().is_some_and(|v| {
                            matches!(v.status(), Status::Removed { since }
                                if now.saturating_sub(since) >= retention.as_secs())
                        })
                })
                .map(|(name, _)| name.clone())
                .collect();
            for name in &expired {
                slots.remove(name);
                tracing::info!(projection = %name, "removed for longer than the state retention: its state is deleted");
            }
            expired
        };
        if !expired.is_empty() {
            self.slot_changes.send_modify(|n| *n = n.wrapping_add(1));
        }
        // A rejected module file may be the one that provides a name no
        // version serves now (a bad deploy, at start or later): the state
        // of such names is kept until no file is rejected.
        let keep_unserved = !self
            .rejected
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty();
        let slots = self.slots.read().unwrap_or_else(PoisonError::into_inner);
        self.files.sweep(retention, |name| {
            if expired.iter().any(|n| n == name) {
                Sweep::Now
            } else if keep_unserved && !slots.contains_key(name) {
                Sweep::Keep
            } else {
                Sweep::Aged
            }
        });
        // Compiled code of versions no slot holds (a removed projection
        // keeps its slot, so its code, until its retention ends).
        let in_use: std::collections::BTreeSet<String> = slots
            .values()
            .flat_map(|slot| [&slot.serving, &slot.building])
            .flatten()
            .map(|version| version.module.hash.clone())
            .chain(
                self.rejected
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .iter()
                    .filter_map(|r| r.hash.clone()),
            )
            .collect();
        drop(slots);
        self.host
            .prune_cache(&|hash| in_use.contains(hash), retention);
    }

    fn reject(&self, file: &Path, hash: Option<String>, error: String) {
        let mut rejected = self
            .rejected
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        // A layout tried again every few seconds says its reason once.
        let again = self
            .quiet_rejects
            .load(std::sync::atomic::Ordering::Relaxed)
            && rejected
                .iter()
                .any(|r| r.file == file.display().to_string() && r.error == error);
        if again {
            tracing::debug!(file = %file.display(), hash = ?hash, "module still rejected: {error}");
        } else {
            tracing::error!(file = %file.display(), hash = ?hash, "module rejected: {error}");
        }
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

    /// The projection that `file` provides (its removed versions aside),
    /// if any.
    fn slot_of_file(&self, file: &Path) -> Option<(String, Slot)> {
        self.slots
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|(_, slot)| {
                slot.serving
                    .iter()
                    .chain(slot.building.iter())
                    .any(|v| v.module.file == file && !matches!(v.status(), Status::Removed { .. }))
            })
            .map(|(name, slot)| (name.clone(), slot.clone()))
    }

    /// The sidecar of `file` changed: the module is looked at again with it.
    fn sidecar_changed(&self, file: &Path) {
        if !file.exists() {
            // A sidecar without its module configures nothing.
            self.accepted(&file.with_extension("toml"));
            return;
        }
        self.changed(file, true);
    }

    /// `file` appeared or changed, or (`sidecar`) its sidecar did.
    fn changed(&self, file: &Path, sidecar: bool) {
        let sidecar_file = file.with_extension("toml");
        // Bounded by the module size limit: a huge file is refused unread.
        let bytes = match self.host.read_module(file) {
            Ok(bytes) => bytes,
            Err(e) => return self.reject(file, None, e.to_string()),
        };
        let hash = blake3::hash(&bytes).to_hex().to_string();
        let current = self.slot_of_file(file);
        if let Some((name, slot)) = current.as_ref().filter(|_| !sidecar) {
            let unchanged =
                |v: &Option<SharedProjection>| v.as_ref().is_some_and(|v| v.module.hash == hash);
            if unchanged(&slot.building) {
                return;
            }
            if unchanged(&slot.serving) {
                // The file went back to the serving version: a build of
                // the version it had in between is no longer wanted.
                self.abandon_build(name, "the module file went back to the serving version");
                self.accepted(file);
                return;
            }
        }
        let started = Instant::now();
        let mut module = match self.host.load_bytes(file, &bytes) {
            Ok(module) => module,
            Err(e) => return self.reject(file, Some(hash), e.to_string()),
        };
        // An invalid sidecar is the sidecar's fault: it is named as the
        // rejected file, and whatever runs keeps running as it was.
        let settings = match sidecar::settings(&self.sources, &mut module, &self.config) {
            Ok(settings) => settings,
            Err(SettingsError::Layout(error)) => {
                // The layout cannot be read yet: looked at again by the
                // layout check, until it can or the file changes.
                self.layout_retries
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(file.to_owned());
                return self.reject(&sidecar_file, Some(hash), error);
            }
            Err(SettingsError::Invalid(error)) => {
                self.layout_retries
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(file);
                return self.reject(&sidecar_file, Some(hash), error);
            }
        };
        self.layout_retries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(file);
        self.accepted(&sidecar_file);
        let name = module.descriptor.name.clone();
        let result = match self.slot(&name).and_then(|slot| slot.serving) {
            None => self.start_serving(module, settings),
            // A renamed or replaced file may take over a removed projection.
            Some(serving)
                if serving.module.file != file
                    && (matches!(serving.status(), Status::Removed { .. })
                        || !serving.module.file.exists()) =>
            {
                self.update(&serving, module, settings)
            }
            Some(serving) if serving.module.file != file => Err(format!(
                "{}: projection name {name:?} is already served by {}; give each module its own name",
                file.display(),
                serving.module.file.display()
            )),
            Some(serving) => self.update(&serving, module, settings),
        };
        match result {
            Ok(()) => {
                self.accepted(file);
                tracing::info!(projection = %name, version = %&hash[..12], took_ms = started.elapsed().as_millis() as u64, "module accepted");
                // The file no longer provides the name it did: that
                // projection stops as if its file had been removed.
                if let Some((old, _)) = current.filter(|(old, _)| *old != name) {
                    self.stop_name(
                        &old,
                        file,
                        &format!("its module file now provides {name:?}"),
                    );
                }
            }
            Err(error) => self.reject(file, Some(hash), error),
        }
    }

    /// A new version (or a restarted one) with the settings its sidecar
    /// gave, over `stores`: its state file, or its units' in order.
    fn runtime(
        &self,
        module: LoadedModule,
        stores: Vec<Arc<StateStore>>,
        settings: Settings,
    ) -> Result<ProjectionRuntime, String> {
        let events = || {
            let commands = self
                .commands
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            move |event| {
                let _ = commands.send(Command::Worker(event));
            }
        };
        let Some(units) = settings.units else {
            let [store] = <[_; 1]>::try_from(stores).map_err(|stores| {
                format!(
                    "{} is not partitioned but {} state files were given",
                    module.descriptor.name,
                    stores.len()
                )
            })?;
            return Ok(ProjectionRuntime::new(
                module,
                store,
                settings.source,
                settings.topics,
                settings.config,
            )
            .with_events(events()));
        };
        if stores.len() != units as usize {
            return Err(format!(
                "{} has {units} units but {} state files were given",
                module.descriptor.name,
                stores.len()
            ));
        }
        let permits = Arc::new(crate::worker::FoldPermits::new(
            settings.config.worker_threads,
        ));
        let units = (0u32..)
            .zip(stores)
            .map(|(index, store)| {
                Arc::new(
                    ProjectionRuntime::unit(
                        module.clone(),
                        store,
                        index,
                        permits.clone(),
                        settings.source.clone(),
                        settings.topics.clone(),
                        settings.config.clone(),
                    )
                    .with_events(events()),
                )
            })
            .collect();
        Ok(ProjectionRuntime::partitioned(
            module,
            units,
            settings.source,
            settings.topics,
            settings.config,
        )
        .with_events(events()))
    }

    /// Opens the state of version `hash` of `name` as `units` lays it out
    /// (one file, or one per unit), or with `fresh` new files for a rebuild.
    fn open_state(
        &self,
        name: &str,
        hash: &str,
        units: Option<u32>,
        fresh: Option<&str>,
    ) -> Result<Vec<Arc<StateStore>>, String> {
        file_keys(hash, units)
            .iter()
            .map(|key| self.files.open(name, key, fresh))
            .collect()
    }

    /// Makes the files of version `hash` name the files `version` uses.
    fn alias_state(
        &self,
        name: &str,
        hash: &str,
        version: &ProjectionRuntime,
    ) -> Result<(), String> {
        let keys = file_keys(hash, Settings::of(version).units);
        for (key, store) in keys.iter().zip(version.stores()) {
            self.files.alias(name, key, &store)?;
        }
        Ok(())
    }

    /// After a rebuild replaced the serving files of the same hash, makes
    /// the names of version `hash` name the rebuilt files: all of them or,
    /// on a failure, none (the units of a version never mix two builds).
    fn promote_state(
        &self,
        name: &str,
        hash: &str,
        version: &ProjectionRuntime,
    ) -> Result<(), String> {
        let keys = file_keys(hash, Settings::of(version).units);
        let mut done = Vec::new();
        for (key, store) in keys.iter().zip(version.stores()) {
            match self.files.promote(name, key, &store) {
                Ok(promoted) => done.push(promoted),
                Err(e) => {
                    for promoted in done.into_iter().rev() {
                        self.files.demote(promoted);
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// A projection with no serving version: it serves at once, from its
    /// retained state file if this exact version ran before.
    fn start_serving(&self, module: LoadedModule, settings: Settings) -> Result<(), String> {
        let name = module.descriptor.name.clone();
        let stores = self.open_state(&name, &module.hash, settings.units, None)?;
        let projection = Arc::new(self.runtime(module, stores, settings)?);
        projection.start().map_err(worker_start_error)?;
        tracing::info!(
            projection = %name,
            version = %projection.module.short_hash(),
            file = %projection.module.file.display(),
            source_kind = projection.source.kind(),
            units = projection.units().len(),
            compiled_from_cache = projection.module.from_cache,
            "projection started"
        );
        self.update_slot(&name, |slot| slot.serving = Some(projection));
        Ok(())
    }

    /// A new version of a projection that has a serving version, or the
    /// same version with a changed sidecar.
    fn update(
        &self,
        serving: &SharedProjection,
        module: LoadedModule,
        settings: Settings,
    ) -> Result<(), String> {
        let name = module.descriptor.name.clone();
        let removed = matches!(serving.status(), Status::Removed { .. });
        let building = self.slot(&name).and_then(|slot| slot.building);
        if let Some(building) = building.filter(|b| b.module.hash == module.hash) {
            // The sidecar of the version being built changed.
            if !settings.binds_like(&building) {
                let changes = settings.binding_changes(&building).join(", ");
                self.abandon_build(
                    &name,
                    &format!("its sidecar changed its binding ({changes})"),
                );
                return self.start_build(
                    serving,
                    module,
                    settings,
                    Some(unique_tag("rebind").as_str()),
                );
            }
            self.apply_live(&building, &settings)?;
            if !removed && serving.module.file == module.file && settings.binds_like(serving) {
                self.apply_live(serving, &settings)?;
            }
            return Ok(());
        }
        if module.hash == serving.module.hash && !removed {
            // Same module, changed sidecar.
            if settings.binds_like(serving) {
                return self.apply_live(serving, &settings);
            }
            let changes = settings.binding_changes(serving).join(", ");
            tracing::info!(projection = %name, version = %serving.module.short_hash(), "sidecar changed the binding ({changes}): rebuilding in the shadow");
            self.abandon_build(&name, "the sidecar changed the binding");
            return self.start_build(
                serving,
                module,
                settings,
                Some(unique_tag("rebind").as_str()),
            );
        }
        if let Some(building) = self.slot(&name).and_then(|slot| slot.building)
            && module.descriptor.state_version != serving.module.descriptor.state_version
            && module.descriptor.state_version == building.module.descriptor.state_version
            && settings.binds_like(&building)
            && !matches!(building.status(), Status::Failed { .. })
        {
            return self.continue_build(serving, &building, module, settings);
        }
        self.abandon_build(&name, "a newer module arrived");
        let same_layout = module.hash == serving.module.hash
            || module.descriptor.state_version == serving.module.descriptor.state_version;
        if same_layout && settings.binds_like(serving) {
            return self.take_over(serving, module, settings, removed);
        }
        // A state built from other events is no base for this binding.
        let fresh = (!settings.binds_like(serving)).then(|| unique_tag("rebind"));
        self.start_build(serving, module, settings, fresh.as_deref())
    }

    /// Restarts `version`'s worker with `settings` (same module, state and
    /// binding): the error policy, limits and snapshot schedule change at
    /// once, without replay. A halted version goes on with them.
    fn apply_live(&self, version: &SharedProjection, settings: &Settings) -> Result<(), String> {
        let changes = sidecar::changes(&version.config, &settings.config);
        if changes.is_empty() {
            return Ok(());
        }
        let next =
            Arc::new(self.runtime(version.module.clone(), version.stores(), settings.clone())?);
        next.set_role(version.role());
        version.stop_and_join();
        if let Err(e) = next.start() {
            if version.is_building() {
                self.drop_build(version.name(), version);
            } else {
                self.restart(version);
            }
            return Err(worker_start_error(e));
        }
        self.replace_version(version, &next);
        tracing::info!(
            projection = %version.name(),
            version = %version.module.short_hash(),
            changes = %changes.join(", "),
            "sidecar settings applied without replay"
        );
        Ok(())
    }

    /// Same state layout: the new version takes over the serving state at
    /// once, without replay.
    fn take_over(
        &self,
        serving: &SharedProjection,
        module: LoadedModule,
        settings: Settings,
        removed: bool,
    ) -> Result<(), String> {
        let name = module.descriptor.name.clone();
        // Everything that can fail happens while the old version still runs.
        let next = Arc::new(self.runtime(module, serving.stores(), settings)?);
        self.alias_state(&name, &next.module.hash, serving)?;
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

    /// A version with the state layout of the one being built replaces it
    /// and goes on from where its build is: the build's state file becomes
    /// its own (a hard link), as a swap of the same state version shares
    /// the serving file.
    fn continue_build(
        &self,
        serving: &SharedProjection,
        building: &SharedProjection,
        module: LoadedModule,
        settings: Settings,
    ) -> Result<(), String> {
        let name = module.descriptor.name.clone();
        let from = building.module.short_hash().to_owned();
        self.alias_state(&name, &module.hash, building)
            .map_err(|e| format!("{}: {e}", module.file.display()))?;
        let stores = building.stores();
        self.drop_build(&name, building);
        tracing::info!(projection = %name, from = %from, to = %module.short_hash(), "the new version has the state version of the one being built: it goes on from that build's progress");
        self.build_with(serving, module, stores, settings)
    }

    /// A new state layout or binding: build the new version in the shadow
    /// from the beginning (or from its retained state file) while `serving`
    /// serves.
    fn start_build(
        &self,
        serving: &SharedProjection,
        module: LoadedModule,
        settings: Settings,
        fresh_file: Option<&str>,
    ) -> Result<(), String> {
        let name = module.descriptor.name.clone();
        let stores = self.open_state(&name, &module.hash, settings.units, fresh_file)?;
        self.build_with(serving, module, stores, settings)
    }

    fn build_with(
        &self,
        serving: &SharedProjection,
        module: LoadedModule,
        stores: Vec<Arc<StateStore>>,
        settings: Settings,
    ) -> Result<(), String> {
        let name = module.descriptor.name.clone();
        let building = Arc::new(self.runtime(module, stores, settings)?);
        let position: u64 = building
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
        let Some(building) = slot.building.filter(|b| b.is_or_holds(instance)) else {
            return;
        };
        // A partitioned build swaps once every unit has caught up.
        if !building.caught_up() {
            return;
        }
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
        if let Err(e) = self.promote_state(name, hash, &building) {
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

    /// Starts a fresh worker for a stopped serving version: same module,
    /// state and settings it ran with (its sidecar may have been edited
    /// for the version that failed to replace it).
    fn restart(&self, stopped: &SharedProjection) {
        let name = stopped.name().to_owned();
        let runtime = self
            .runtime(
                stopped.module.clone(),
                stopped.stores(),
                Settings::of(stopped),
            )
            .map(Arc::new)
            .and_then(|runtime| {
                runtime.start().map_err(worker_start_error)?;
                Ok(runtime)
            });
        match runtime {
            Ok(runtime) => self.update_slot(&name, |slot| slot.serving = Some(runtime)),
            Err(e) => {
                tracing::error!(projection = %name, version = %stopped.module.short_hash(), "could not restart the serving version: {e}")
            }
        }
    }

    fn halted(&self, name: &str, hash: &str, instance: u64, message: &str) {
        let Some(slot) = self.slot(name) else { return };
        let Some(building) = slot.building.filter(|b| b.is_or_holds(instance)) else {
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
        let Some((name, _)) = self.slot_of_file(file) else {
            return;
        };
        self.stop_name(&name, file, "its module file was removed");
    }

    /// Stops projection `name` as a removed one: its state stays readable
    /// and is kept for the retention time.
    fn stop_name(&self, name: &str, file: &Path, why: &str) {
        self.abandon_build(name, why);
        if let Some(serving) = self.slot(name).and_then(|slot| slot.serving) {
            serving.stop_and_join();
            serving.set_status(Status::Removed { since: unix_now() });
            tracing::info!(projection = %name, version = %serving.module.short_hash(), file = %file.display(), "projection stopped, state kept: {why}");
        }
    }

    /// A replay or restore replaces the serving version's state; a build of
    /// another version would replace the serving version itself. Dropping
    /// that build (a deploy in progress) for the operator's request must
    /// not happen unseen: the request is refused and says why.
    fn refuse_over_upgrade(
        &self,
        name: &str,
        serving: &SharedProjection,
        what: &str,
    ) -> Result<(), String> {
        match self.slot(name).and_then(|slot| slot.building) {
            Some(building) if building.module.hash != serving.module.hash => Err(format!(
                "projection {name:?} is building version {} from {} to replace the serving version {}; \
                 a {what} of the serving version would abandon that build. Wait until it swaps in \
                 (`projector status` shows its progress) and {what} then, or put the serving module back \
                 in {} first",
                building.module.short_hash(),
                building.module.file.display(),
                serving.module.short_hash(),
                building.module.file.display(),
            )),
            _ => Ok(()),
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
        self.refuse_over_upgrade(name, &serving, "restore")?;
        if serving.is_partitioned() {
            return Err(format!(
                "projection {name:?} is partitioned: its snapshots are per unit and a restore of one unit's snapshot is not supported; \
                 `projector replay {name}` rebuilds every unit, and a unit whose state file is lost or damaged is restored from its newest snapshot by itself at start"
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
        self.build_with(
            &serving,
            module.clone(),
            vec![store],
            Settings::of(&serving),
        )
    }

    fn resume(&self, name: &str, request: ResumeRequest) -> Result<Resumed, ResumeError> {
        let serving = self
            .slot(name)
            .and_then(|slot| slot.serving)
            .ok_or_else(|| ResumeError::Unknown(name.to_owned()))?;
        let Status::Failed {
            source,
            partition,
            offset,
            message,
            ..
        } = serving.status()
        else {
            return Err(ResumeError::NotFailed {
                name: name.to_owned(),
                status: serving.status().label(),
            });
        };
        let skipped = match (request.skip, source, partition, offset) {
            (false, ..) => None,
            (true, Some(source), Some(partition), Some(offset)) => Some(SkipOrder {
                source,
                partition,
                offset,
                error: message,
                reason: request
                    .reason
                    .filter(|r| !r.trim().is_empty())
                    .unwrap_or_else(|| NO_REASON.to_owned()),
            }),
            (true, ..) => {
                return Err(ResumeError::NothingToSkip {
                    name: name.to_owned(),
                    message,
                });
            }
        };
        // The worker has ended; this collects its thread.
        serving.stop_and_join();
        let settings = self.resume_settings(&serving);
        let mut runtime = self
            .runtime(serving.module.clone(), serving.stores(), settings)
            .map_err(|reason| ResumeError::Start {
                name: name.to_owned(),
                reason,
            })?;
        if let Some(order) = &skipped {
            runtime = runtime.with_skip_order(order.clone());
        }
        let runtime = Arc::new(runtime);
        runtime.start().map_err(|e| ResumeError::Start {
            name: name.to_owned(),
            reason: worker_start_error(e),
        })?;
        tracing::info!(
            projection = %name,
            version = %runtime.module.short_hash(),
            skip = ?skipped.as_ref().map(|s| format!("{}/{}@{}: {}", s.source, s.partition, s.offset, s.reason)),
            "projection resumed"
        );
        self.update_slot(name, |slot| slot.serving = Some(runtime));
        Ok(Resumed {
            hash: serving.module.hash.clone(),
            skipped,
        })
    }

    /// The settings a resumed version runs with: its sidecar as the file
    /// is now, when it is valid and keeps the binding (an edit the watcher
    /// has not delivered yet applies at once); else the ones the version
    /// ran with (an invalid sidecar or a new binding is the watcher's to
    /// reject or to rebuild).
    fn resume_settings(&self, version: &SharedProjection) -> Settings {
        let mut module = version.module.clone();
        match sidecar::settings(&self.sources, &mut module, &self.config) {
            Ok(settings)
                if settings.binds_like(version) && module.descriptor.name == version.name() =>
            {
                settings
            }
            _ => Settings::of(version),
        }
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
        self.refuse_over_upgrade(name, &serving, "replay")?;
        self.abandon_build(name, "a replay was requested");
        let fresh = unique_tag("replay");
        self.start_build(
            &serving,
            serving.module.clone(),
            Settings::of(&serving),
            Some(&fresh),
        )
    }
}
