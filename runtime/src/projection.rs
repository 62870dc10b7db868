//! A running projection version: its module, its state file, its status, and
//! the pool of read-only instances that answer custom queries.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime};

use serde::Serialize;

use crate::event::Offsets;
use crate::source::{Partitions, Source, SourceHealth, SourceStatus, TopicBinding};
use crate::store::{
    Barrier, BarrierOutcome, FailureCounts, FailureKind, StateReader, StateStore, StoreError,
};
use crate::wasm::{Instance, LoadedModule, RunError, bindings};
use crate::worker::{ErrorPolicy, RetryReport};

/// Where a worker sends the outcome of a requested retry.
pub type RetryReply = std::sync::mpsc::Sender<Result<RetryReport, String>>;
/// A purge of skipped records: how many of the newest to keep, and where
/// to send how many were removed.
pub type PurgeRequest = (usize, std::sync::mpsc::Sender<Result<u64, String>>);

/// Idle query instances kept per projection.
const QUERY_POOL_SIZE: usize = 4;

/// Where a projection is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Status {
    Starting,
    Running,
    /// Halted by the `halt` error policy (or a storage failure); other
    /// projections go on.
    Failed {
        /// The event that failed, if one did.
        source: Option<String>,
        partition: Option<u32>,
        offset: Option<u64>,
        message: String,
        /// Seconds since the Unix epoch.
        since: u64,
    },
    Stopped,
    /// Waiting for the state file to become writable again (disk full);
    /// resumes by itself from the last durable commit.
    Paused {
        reason: String,
        /// Seconds since the Unix epoch.
        since: u64,
    },
    /// The module file was removed; the state is kept.
    Removed {
        since: u64,
    },
    /// In a group: another instance holds its slot (or none does yet), so
    /// this one does not fold it; reads are answered by the owner.
    Elsewhere,
    /// In a group: another instance holds its slot, and this one keeps a
    /// warm copy (`standby_replicas`), ready to take over.
    Standby,
}

impl Status {
    pub fn label(&self) -> &'static str {
        match self {
            Status::Starting => "starting",
            Status::Running => "running",
            Status::Failed { .. } => "failed",
            Status::Stopped => "stopped",
            Status::Paused { .. } => "paused",
            Status::Removed { .. } => "removed",
            Status::Elsewhere => "elsewhere",
            Status::Standby => "standby",
        }
    }
}

/// One partition's progress.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PartitionProgress {
    pub source: String,
    pub partition: u32,
    /// Next offset the projection will apply.
    pub offset: u64,
    /// Next offset the source will write.
    pub head: u64,
    pub lag: u64,
}

/// What status and listings show of a projection.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProjectionInfo {
    pub name: String,
    /// The module's own version label.
    pub version: String,
    /// Content hash of the module file: the version the host tracks.
    pub hash: String,
    pub file: String,
    pub state_version: u32,
    pub sources: Vec<String>,
    pub queries: Vec<String>,
    pub status: Status,
    pub events_applied: u64,
    pub keys: u64,
    pub lag: u64,
    /// Lag, but nothing applied for `stall_after_ms`.
    pub stalled: bool,
    /// Seconds since the worker last applied a batch or found nothing new.
    pub seconds_since_progress: f64,
    pub partitions: Vec<PartitionProgress>,
    pub offsets: Offsets,
    pub last_error: Option<String>,
    /// What happens to an event the module fails on.
    pub error_policy: ErrorPolicy,
    /// Failed events kept by the error policy.
    pub failures: FailureCounts,
    /// The newest failed event kept, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<FailureSummary>,
    /// The source kind, its health and warnings.
    pub source: SourceStatus,
    /// Module topic -> real topic, where they differ.
    pub topic_map: BTreeMap<String, String>,
    /// Set while this version is being built in the shadow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<BuildProgressInfo>,
    /// A partitioned projection's units (partition `unit` of every topic),
    /// each with its own state file, worker and snapshots.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub units: Vec<UnitInfo>,
}

/// One unit of a partitioned projection.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UnitInfo {
    pub unit: u32,
    pub status: Status,
    pub events_applied: u64,
    pub keys: u64,
    pub lag: u64,
}

/// Where and why the newest kept failure happened (without its payload).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FailureSummary {
    pub id: u64,
    pub kind: FailureKind,
    pub source: String,
    pub partition: u32,
    pub offset: u64,
    pub error: String,
    pub module_hash: String,
    pub failed_at: u64,
}

/// How far a shadow build is.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BuildProgressInfo {
    /// Events applied since the build started.
    pub events_done: u64,
    /// Events the build had to apply when it started (heads then).
    pub events_total: u64,
    pub events_per_second: f64,
    pub eta_seconds: Option<f64>,
    pub elapsed_seconds: f64,
}

/// Serving answers queries; building catches up in the shadow.
#[derive(Debug, Clone)]
pub enum Role {
    Serving,
    Building {
        started: Instant,
        /// Sum of offsets when the build started.
        start_position: u64,
        /// Sum of source heads when the build started.
        start_heads: u64,
    },
}

/// What a worker tells the registry.
#[derive(Debug, Clone)]
pub enum WorkerEvent {
    /// A building version read everything there was: it can be swapped in.
    CaughtUp {
        name: String,
        hash: String,
        /// Which runtime: a rebuild shares its hash with the serving version.
        instance: u64,
    },
    /// A version halted (an event failed, or storage failed).
    Halted {
        name: String,
        hash: String,
        instance: u64,
        message: String,
    },
}

/// Where a runtime's state is: one state file its worker folds into, or
/// (a partitioned projection) the units that each fold one partition of
/// every topic into a file of their own.
enum Held {
    File(Arc<StateStore>),
    Units(Vec<SharedProjection>),
}

pub struct ProjectionRuntime {
    /// Unique per runtime in this process; tells apart versions of equal hash.
    pub instance: u64,
    pub module: LoadedModule,
    /// The partitions of its topics this runtime folds: all of them, or
    /// (a unit of a partitioned projection) one.
    pub partitions: Partitions,
    /// Shared with the next version on a swap that keeps the state.
    held: Held,
    /// A unit of a building version that reached the head.
    caught_up: AtomicBool,
    /// Shared by the units of a partitioned version: how many fold at once.
    pub(crate) permits: Option<Arc<crate::worker::FoldPermits>>,
    pub source: Arc<dyn Source>,
    pub topics: Vec<TopicBinding>,
    /// Batching, durability and snapshot settings of this projection.
    pub config: crate::worker::WorkerConfig,
    /// What the worker counts, for `/metrics` and stall detection.
    pub metrics: crate::metrics::ProjectionMetrics,
    role: RwLock<Role>,
    events: Option<Box<dyn Fn(WorkerEvent) + Send + Sync>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    status: RwLock<Status>,
    source_status: RwLock<SourceStatus>,
    queries: Mutex<Vec<Instance>>,
    /// Shared with the worker's instances, which end a running call when set.
    stop: Arc<AtomicBool>,
    /// Pending retry requests; `None` once the worker has ended.
    retries: Mutex<Option<Vec<RetryReply>>>,
    /// Pending purges of skipped records; `None` once the worker has ended.
    purges: Mutex<Option<Vec<PurgeRequest>>>,
    /// The event the worker passes over when it starts (`resume --skip`).
    skip_order: Mutex<Option<crate::worker::SkipOrder>>,
}

impl std::fmt::Debug for ProjectionRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectionRuntime")
            .field("name", &self.module.descriptor.name)
            .field("hash", &self.module.hash)
            .finish_non_exhaustive()
    }
}

/// The state file closed before a barrier was reached (its version stopped).
#[derive(Debug, thiserror::Error)]
#[error("the state file closed before the barrier was reached")]
pub struct BarrierGone;

/// A custom query's failure, as the API maps it.
#[derive(Debug, thiserror::Error)]
pub enum QueryFailure {
    #[error("projection {projection:?} has no query named {name:?} (it has: {known})")]
    UnknownQuery {
        projection: String,
        name: String,
        known: String,
    },
    #[error("bad query arguments: {0}")]
    BadArgs(String),
    #[error("query failed: {0}")]
    Failed(String),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ProjectionRuntime {
    /// A runtime folding every partition of `topics` into `store`.
    pub fn new(
        module: LoadedModule,
        store: Arc<StateStore>,
        source: Arc<dyn Source>,
        topics: Vec<TopicBinding>,
        config: crate::worker::WorkerConfig,
    ) -> Self {
        Self::holding(module, Held::File(store), source, topics, config)
    }

    /// A partitioned projection's version: `units[u]` folds partition `u`
    /// of every topic (see [`ProjectionRuntime::unit`]).
    pub fn partitioned(
        module: LoadedModule,
        units: Vec<SharedProjection>,
        source: Arc<dyn Source>,
        topics: Vec<TopicBinding>,
        config: crate::worker::WorkerConfig,
    ) -> Self {
        Self::holding(module, Held::Units(units), source, topics, config)
    }

    /// Unit `index` of a partitioned projection: partition `index` of every
    /// topic, folded into `store`.
    /// `permits` are shared by all units of the version.
    pub fn unit(
        module: LoadedModule,
        store: Arc<StateStore>,
        index: u32,
        permits: Arc<crate::worker::FoldPermits>,
        source: Arc<dyn Source>,
        topics: Vec<TopicBinding>,
        config: crate::worker::WorkerConfig,
    ) -> Self {
        let mut unit = Self::new(module, store, source, topics, config);
        unit.partitions = Partitions::Only(index);
        unit.permits = Some(permits);
        unit
    }

    fn holding(
        module: LoadedModule,
        held: Held,
        source: Arc<dyn Source>,
        topics: Vec<TopicBinding>,
        config: crate::worker::WorkerConfig,
    ) -> Self {
        static NEXT_INSTANCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Self {
            instance: NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed),
            partitions: Partitions::All,
            held,
            caught_up: AtomicBool::new(false),
            permits: None,
            config,
            metrics: crate::metrics::ProjectionMetrics::default(),
            role: RwLock::new(Role::Serving),
            events: None,
            worker: Mutex::new(None),
            source_status: RwLock::new(SourceStatus {
                kind: source.kind(),
                ..SourceStatus::default()
            }),
            module,
            source,
            topics,
            status: RwLock::new(Status::Starting),
            queries: Mutex::new(Vec::new()),
            stop: Arc::new(AtomicBool::new(false)),
            retries: Mutex::new(Some(Vec::new())),
            purges: Mutex::new(Some(Vec::new())),
            skip_order: Mutex::new(None),
        }
    }

    /// The worker, once started, records `order`'s event as skipped (with
    /// the operator's reason) instead of running it.
    /// (A partitioned version: the unit that reads the event's partition.)
    pub fn with_skip_order(self, order: crate::worker::SkipOrder) -> Self {
        if let Some(unit) = self
            .units()
            .iter()
            .find(|u| u.partitions.includes(order.partition))
        {
            *unit
                .skip_order
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(order);
            return self;
        }
        *self
            .skip_order
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(order);
        self
    }

    pub(crate) fn take_skip_order(&self) -> Option<crate::worker::SkipOrder> {
        self.skip_order
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Reports catch-up and halts to `events`.
    pub fn with_events(mut self, events: impl Fn(WorkerEvent) + Send + Sync + 'static) -> Self {
        self.events = Some(Box::new(events));
        self
    }

    /// The state file this runtime's worker folds into (`None` for a
    /// partitioned version: each of its units has one).
    pub fn store(&self) -> Option<&Arc<StateStore>> {
        match &self.held {
            Held::File(store) => Some(store),
            Held::Units(_) => None,
        }
    }

    /// The units of a partitioned version, in partition order (empty for
    /// one that is not partitioned).
    pub fn units(&self) -> &[SharedProjection] {
        match &self.held {
            Held::File(_) => &[],
            Held::Units(units) => units,
        }
    }

    pub fn is_partitioned(&self) -> bool {
        matches!(self.held, Held::Units(_))
    }

    /// Every state file of this version: its own, or its units' in order.
    pub fn stores(&self) -> Vec<Arc<StateStore>> {
        match &self.held {
            Held::File(store) => vec![store.clone()],
            Held::Units(units) => units.iter().filter_map(|u| u.store().cloned()).collect(),
        }
    }

    /// The name its state file and snapshots go by under the projection's
    /// folder: the module hash, and a unit's index after it.
    pub fn file_key(&self) -> String {
        unit_file_key(&self.module.hash, self.partitions)
    }

    /// A consistent read of this version's state: its file, or its units'
    /// files each at one instant, seen as one state.
    pub fn reader(&self) -> Result<StateReader, StoreError> {
        self.reader_including(&[])
    }

    /// [`Self::reader`], with the units `standbys` read from the standby
    /// copies this instance keeps of them (a stale read, `allow_stale`).
    pub fn reader_including(&self, standbys: &[u32]) -> Result<StateReader, StoreError> {
        match &self.held {
            Held::File(store) => store.reader(),
            Held::Units(units) => {
                let here: Vec<StateReader> = units
                    .iter()
                    .enumerate()
                    .filter(|(i, u)| u.is_here() || standbys.contains(&(*i as u32)))
                    .map(|(_, u)| u.reader())
                    .collect::<Result<_, _>>()?;
                let whole = here.len() == units.len();
                let reader = StateReader::units(here);
                // Key templates name a unit by its place among all of them:
                // with some units elsewhere (a group), every local unit is
                // asked (the group routed the lookup to its owner already).
                Ok(if whole {
                    reader.with_key_templates(self.config.key_templates.clone())
                } else {
                    reader
                })
            }
        }
    }

    /// One receiver per state file whose value changes after every commit.
    pub fn watch_commits(&self) -> Vec<tokio::sync::watch::Receiver<u64>> {
        self.stores().iter().map(|s| s.watch_commits()).collect()
    }

    /// Answers once the commits reach `barrier` (see [`StateStore::barrier`]);
    /// a partitioned version's units each wait for their partitions, and
    /// their readers at the exact offsets together are the exact read.
    pub fn barrier(
        &self,
        barrier: Barrier,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<BarrierOutcome, BarrierGone>> + Send>,
    > {
        let units = match &self.held {
            Held::File(store) => {
                let pending = store.barrier(barrier);
                return Box::pin(async move { pending.await.map_err(|_| BarrierGone) });
            }
            Held::Units(units) => units,
        };
        let part = |offsets: &Offsets, unit: usize| {
            let mut mine = Offsets::default();
            for (topic, partition, next) in offsets.iter() {
                // A partition no unit reads is never reached (as on a
                // projection that is not partitioned): unit 0 waits for it.
                let owner = if (partition as usize) < units.len() {
                    partition as usize
                } else {
                    0
                };
                if owner == unit {
                    mine.set(topic, partition, next);
                }
            }
            mine
        };
        type UnitOutcome = std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<BarrierOutcome, BarrierGone>> + Send>,
        >;
        let pending: Vec<UnitOutcome> = units
            .iter()
            .enumerate()
            .filter_map(|(i, unit)| {
                // In a group, units held elsewhere answer there.
                if !unit.is_here() {
                    return None;
                }
                let store = unit.store()?;
                let share = Barrier {
                    exact: part(&barrier.exact, i),
                    at_least: part(&barrier.at_least, i),
                };
                // Registered first, then a look at where the unit stands: a
                // unit already at (or past) its share may never commit
                // again, and a commit between the two is seen by the look.
                let later = store.barrier(Barrier {
                    exact: share.exact.clone(),
                    at_least: share.at_least.clone(),
                });
                let now = store.reader().ok().and_then(|reader| {
                    let offsets = reader.offsets().ok()?;
                    Some(match share.check(&offsets)? {
                        true => BarrierOutcome::Exact(Box::new(reader)),
                        false => BarrierOutcome::Passed(offsets),
                    })
                });
                Some(match now {
                    Some(outcome) => Box::pin(std::future::ready(Ok(outcome))) as UnitOutcome,
                    None => Box::pin(async move { later.await.map_err(|_| BarrierGone) }),
                })
            })
            .collect();
        let templates = self.config.key_templates.clone();
        Box::pin(async move {
            let mut readers = Vec::new();
            let mut passed: Option<Offsets> = None;
            for outcome in futures_util::future::join_all(pending).await {
                match outcome.map_err(|_| BarrierGone)? {
                    BarrierOutcome::Exact(reader) => readers.push(*reader),
                    BarrierOutcome::Passed(offsets) => {
                        let all = passed.get_or_insert_with(Offsets::default);
                        for (topic, partition, next) in offsets.iter() {
                            all.set(topic, partition, next);
                        }
                    }
                }
            }
            match passed {
                None => Ok(BarrierOutcome::Exact(Box::new(
                    StateReader::units(readers).with_key_templates(templates),
                ))),
                Some(mut all) => {
                    for reader in &readers {
                        for (topic, partition, next) in
                            reader.offsets().map_err(|_| BarrierGone)?.iter()
                        {
                            all.set(topic, partition, next);
                        }
                    }
                    Ok(BarrierOutcome::Passed(all))
                }
            }
        })
    }

    /// Whether this unit (or every unit of this version) reached the head
    /// while building; in a group, every unit this instance folds.
    pub fn caught_up(&self) -> bool {
        match &self.held {
            Held::File(_) => !self.is_here() || self.caught_up.load(Ordering::Acquire),
            Held::Units(units) => units.iter().all(|u| u.caught_up()),
        }
    }

    /// In a group, the slot this runtime's worker folds for: a unit's, or
    /// a global projection's (none for a partitioned version's parent,
    /// whose units each have one, none for a projection of the embedded
    /// log, and none outside a group).
    pub fn cluster_slot(&self) -> Option<(Arc<crate::cluster::Ownership>, u32)> {
        // The embedded log is each instance's own: every instance folds it.
        if self.source.kind() != "kafka" {
            return None;
        }
        let ownership = self.config.cluster.clone()?;
        let slot = match (&self.held, self.partitions) {
            (Held::Units(_), _) => return None,
            (Held::File(_), Partitions::Only(unit)) => ownership.slot_of_unit(unit),
            (Held::File(_), Partitions::All) => ownership.slot_of_name(self.name()),
        };
        Some((ownership, slot))
    }

    /// What this instance may do with this runtime's slot now
    /// ([`Gate::Held`](crate::cluster::Gate) outside a group).
    pub fn gate(&self) -> crate::cluster::Gate {
        use crate::cluster::Gate;
        let Some((ownership, slot)) = self.cluster_slot() else {
            return Gate::Held;
        };
        match ownership.gate(slot) {
            Gate::Closed
                if ownership
                    .standby_rank(slot)
                    .is_some_and(|rank| rank < self.config.standby_replicas) =>
            {
                Gate::Standby
            }
            gate => gate,
        }
    }

    /// Whether this instance folds (and answers for) this runtime now: it
    /// holds the slot, or it is not in a group. A partitioned version is
    /// here when one of its units is.
    pub fn is_here(&self) -> bool {
        match &self.held {
            Held::File(_) => self.gate() == crate::cluster::Gate::Held,
            Held::Units(units) => units.iter().any(|u| u.is_here()),
        }
    }

    /// Whether this instance folds all of it now (always outside a group).
    pub fn wholly_here(&self) -> bool {
        match &self.held {
            Held::File(_) => self.is_here(),
            Held::Units(units) => units.iter().all(|u| u.is_here()),
        }
    }

    /// The units this instance folds now (every unit outside a group).
    pub fn units_here(&self) -> Vec<SharedProjection> {
        self.units()
            .iter()
            .filter(|u| u.is_here())
            .cloned()
            .collect()
    }

    /// Whether `instance` is this runtime or one of its units.
    pub fn is_or_holds(&self, instance: u64) -> bool {
        self.instance == instance || self.units().iter().any(|u| u.instance == instance)
    }

    pub fn set_role(&self, role: Role) {
        for unit in self.units() {
            unit.set_role(role.clone());
        }
        *self.role.write().unwrap_or_else(PoisonError::into_inner) = role;
    }

    pub fn role(&self) -> Role {
        self.role
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn is_building(&self) -> bool {
        matches!(self.role(), Role::Building { .. })
    }

    pub(crate) fn notify(&self, event: WorkerEvent) {
        if matches!(event, WorkerEvent::CaughtUp { .. }) {
            self.caught_up.store(true, Ordering::Release);
        }
        if let Some(events) = &self.events {
            events(event);
        }
    }

    /// Starts the worker thread (a partitioned version: its units').
    pub fn start(self: &Arc<Self>) -> std::io::Result<()> {
        if let Held::Units(units) = &self.held {
            for (started, unit) in units.iter().enumerate() {
                if let Err(e) = unit.start() {
                    for unit in &units[..started] {
                        unit.stop_and_join();
                    }
                    return Err(e);
                }
            }
            return Ok(());
        }
        let handle = crate::worker::spawn(self.clone(), self.config.clone())?;
        *self.worker.lock().unwrap_or_else(PoisonError::into_inner) = Some(handle);
        Ok(())
    }

    /// Asks the worker to stop after its current batch and waits for it;
    /// the state stays readable.
    pub fn stop_and_join(&self) {
        self.request_stop();
        self.source.wake_all();
        for unit in self.units() {
            unit.stop_and_join();
        }
        let handle = self
            .worker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }

    pub fn name(&self) -> &str {
        &self.module.descriptor.name
    }

    /// `name@short-hash`, used in logs.
    pub fn label(&self) -> String {
        format!("{}@{}", self.name(), self.module.short_hash())
    }

    /// A partitioned version's status is its units': the first failed or
    /// paused one's, else running once all run.
    pub fn status(&self) -> Status {
        let own = self
            .status
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let units = self.units();
        if units.is_empty() || matches!(own, Status::Removed { .. }) {
            return own;
        }
        let statuses: Vec<Status> = units.iter().map(|u| u.status()).collect();
        let first = |f: fn(&Status) -> bool| statuses.iter().find(|s| f(s)).cloned();
        first(|s| matches!(s, Status::Failed { .. }))
            .or_else(|| first(|s| matches!(s, Status::Paused { .. })))
            .or_else(|| first(|s| matches!(s, Status::Starting)))
            .or_else(|| first(|s| matches!(s, Status::Running)))
            .or_else(|| first(|s| matches!(s, Status::Standby)))
            .or_else(|| first(|s| matches!(s, Status::Elsewhere)))
            .unwrap_or(Status::Stopped)
    }

    pub fn set_status(&self, status: Status) {
        *self.status.write().unwrap_or_else(PoisonError::into_inner) = status;
    }

    pub fn source_status(&self) -> SourceStatus {
        let own = self
            .source_status
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        self.units().iter().fold(own, |mut all, unit| {
            let unit = unit.source_status();
            if all.health == SourceHealth::Ok {
                all.health = unit.health;
            }
            for warning in unit.warnings {
                if !all.warnings.contains(&warning) {
                    all.warnings.push(warning);
                }
            }
            all.held_behind.extend(unit.held_behind);
            all
        })
    }

    pub fn set_source_status(&self, status: SourceStatus) {
        *self
            .source_status
            .write()
            .unwrap_or_else(PoisonError::into_inner) = status;
    }

    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        for unit in self.units() {
            unit.request_stop();
        }
    }

    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The stop flag, for instances that must end a call once it is set.
    pub(crate) fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Asks the worker to run dead-lettered and parked events again; the
    /// receiver gets its report once it has (or an error if it stops first).
    pub fn request_retry(&self) -> std::sync::mpsc::Receiver<Result<RetryReport, String>> {
        if self.is_partitioned() {
            let pending: Vec<_> = self.units().iter().map(|u| u.request_retry()).collect();
            return gather(pending, |all, unit: RetryReport| RetryReport {
                retried: all.retried + unit.retried,
                applied: all.applied + unit.applied,
                failed: all.failed + unit.failed,
                still_parked: all.still_parked + unit.still_parked,
            });
        }
        let (reply, report) = std::sync::mpsc::channel();
        match &mut *self.retries.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(pending) => pending.push(reply),
            None => {
                let _ = reply.send(Err(format!(
                    "projection {:?} is not running ({}), so nothing can run its failed events",
                    self.name(),
                    self.status().label()
                )));
            }
        }
        self.source.wake_all();
        report
    }

    /// Asks the worker to remove all but the `keep` newest skipped-event
    /// records; the receiver gets how many it removed.
    /// (A partitioned version's units each keep `keep`.)
    pub fn request_purge(&self, keep: usize) -> std::sync::mpsc::Receiver<Result<u64, String>> {
        if self.is_partitioned() {
            let pending: Vec<_> = self.units().iter().map(|u| u.request_purge(keep)).collect();
            return gather(pending, |all, unit| all + unit);
        }
        let (reply, removed) = std::sync::mpsc::channel();
        match &mut *self.purges.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(pending) => pending.push((keep, reply)),
            None => {
                let _ = reply.send(Err(format!(
                    "projection {:?} is not running ({}), so its records cannot be purged now; resume it first",
                    self.name(),
                    self.status().label()
                )));
            }
        }
        self.source.wake_all();
        removed
    }

    pub(crate) fn take_purge_requests(&self) -> Vec<PurgeRequest> {
        self.purges
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    pub(crate) fn take_retry_requests(&self) -> Vec<RetryReply> {
        self.retries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// The worker has ended: answers pending retry requests with `reason`
    /// and later ones at once.
    pub(crate) fn refuse_retries(&self, reason: &str) {
        let pending = self
            .retries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .unwrap_or_default();
        for reply in pending {
            let _ = reply.send(Err(reason.to_owned()));
        }
        let purges = self
            .purges
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .unwrap_or_default();
        for (_, reply) in purges {
            let _ = reply.send(Err(reason.to_owned()));
        }
    }

    /// Events in the sources this version has not applied yet.
    pub fn lag(&self) -> Result<u64, StoreError> {
        let offsets = self.reader()?.offsets()?;
        Ok(self.partitions(&offsets).iter().map(|p| p.lag).sum())
    }

    /// How long this version has been stalled (lag, running, and no
    /// progress for `stall_after`), if it is.
    pub fn stalled_for(&self, lag: u64) -> Option<std::time::Duration> {
        if self.is_partitioned() {
            // Stalled when a unit with lag is: the longest such stall.
            return self
                .units()
                .iter()
                .filter_map(|u| u.lag().ok().and_then(|lag| u.stalled_for(lag)))
                .max();
        }
        crate::metrics::stalled_for(&self.metrics, &self.status(), lag, self.config.stall_after)
    }

    fn partitions(&self, offsets: &Offsets) -> Vec<PartitionProgress> {
        let mut partitions = Vec::new();
        for binding in &self.topics {
            let topic = &binding.logical;
            for (partition, head) in self.source.heads(&binding.physical).into_iter().enumerate() {
                let partition = partition as u32;
                if !self.partitions.includes(partition) {
                    continue;
                }
                let offset = offsets.get(topic, partition);
                partitions.push(PartitionProgress {
                    source: topic.clone(),
                    partition,
                    offset,
                    head,
                    lag: head.saturating_sub(offset),
                });
            }
        }
        partitions
    }

    pub fn info(&self) -> Result<ProjectionInfo, StoreError> {
        let reader = self.reader()?;
        let offsets = reader.offsets()?;
        let partitions = self.partitions(&offsets);
        let lag = partitions.iter().map(|p| p.lag).sum();
        let status = self.status();
        let last_error = match &status {
            Status::Failed { message, .. } => Some(message.clone()),
            Status::Paused { reason, .. } => Some(reason.clone()),
            _ => None,
        };
        let last_failure = reader.last_failure()?.map(|f| FailureSummary {
            id: f.id,
            kind: f.kind,
            source: f.source,
            partition: f.partition,
            offset: f.offset,
            error: f.error,
            module_hash: f.module_hash,
            failed_at: f.failed_at,
        });
        let progress = match self.role() {
            Role::Serving => None,
            Role::Building {
                started,
                start_position,
                start_heads,
            } => {
                let position: u64 = offsets.iter().map(|(_, _, o)| o).sum();
                let events_done = position.saturating_sub(start_position);
                let events_total = start_heads.saturating_sub(start_position);
                let elapsed = started.elapsed().as_secs_f64();
                let rate = if elapsed > 0.0 {
                    events_done as f64 / elapsed
                } else {
                    0.0
                };
                let heads: u64 = partitions.iter().map(|p| p.head).sum();
                Some(BuildProgressInfo {
                    events_done,
                    events_total,
                    events_per_second: rate,
                    eta_seconds: (rate > 0.0).then(|| heads.saturating_sub(position) as f64 / rate),
                    elapsed_seconds: elapsed,
                })
            }
        };
        let descriptor = &self.module.descriptor;
        let units = self
            .units()
            .iter()
            .map(|unit| {
                let reader = unit.reader()?;
                let offsets = reader.offsets()?;
                Ok(UnitInfo {
                    unit: match unit.partitions {
                        Partitions::Only(index) => index,
                        Partitions::All => 0,
                    },
                    status: unit.status(),
                    events_applied: reader.events_applied()?,
                    keys: reader.key_count()?,
                    lag: unit.partitions(&offsets).iter().map(|p| p.lag).sum(),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(ProjectionInfo {
            units,
            progress,
            name: descriptor.name.clone(),
            version: descriptor.version.clone(),
            hash: self.module.hash.clone(),
            file: self.module.file.display().to_string(),
            state_version: descriptor.state_version,
            sources: descriptor.sources.clone(),
            queries: descriptor.queries.clone(),
            status,
            events_applied: reader.events_applied()?,
            keys: reader.key_count()?,
            lag,
            stalled: self.stalled_for(lag).is_some(),
            seconds_since_progress: self
                .units()
                .iter()
                .map(|u| u.metrics.since_progress())
                .max()
                .unwrap_or_else(|| self.metrics.since_progress())
                .as_secs_f64(),
            partitions,
            offsets,
            last_error,
            error_policy: self.config.error_policy,
            failures: reader.failure_counts()?,
            last_failure,
            source: self.source_status(),
            topic_map: self
                .topics
                .iter()
                .filter(|b| b.logical != b.physical)
                .map(|b| (b.logical.clone(), b.physical.clone()))
                .collect(),
        })
    }

    /// Runs custom query `name` on a pooled read-only instance. Returns the
    /// answer and the offsets of the state it read.
    pub fn query(&self, name: &str, args: &[u8]) -> Result<(Vec<u8>, Offsets), QueryFailure> {
        if !self.module.descriptor.queries.iter().any(|q| q == name) {
            return Err(self.unknown_query(name));
        }
        let reader: StateReader = self.reader()?;
        self.query_reader(reader, name, args)
    }

    /// Runs custom query `name` against `reader` (this version's state at
    /// some position: live, or rebuilt for an as-of read).
    pub fn query_reader(
        &self,
        reader: StateReader,
        name: &str,
        args: &[u8],
    ) -> Result<(Vec<u8>, Offsets), QueryFailure> {
        if !self.module.descriptor.queries.iter().any(|q| q == name) {
            return Err(self.unknown_query(name));
        }
        let offsets = reader.offsets()?;
        let pooled = self
            .queries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut instance = match pooled {
            Some(instance) => instance,
            None => self
                .module
                .instantiate_with(&self.label(), &self.config.limits)?,
        };
        let outcome = instance.query(reader, name, args);
        if !instance.is_poisoned() {
            let mut pool = self.queries.lock().unwrap_or_else(PoisonError::into_inner);
            if pool.len() < QUERY_POOL_SIZE {
                pool.push(instance);
            }
        }
        match outcome? {
            Ok(answer) => Ok((answer, offsets)),
            Err(bindings::QueryError::UnknownQuery) => Err(self.unknown_query(name)),
            Err(bindings::QueryError::BadArgs(message)) => Err(QueryFailure::BadArgs(message)),
            Err(bindings::QueryError::Failed(message)) => Err(QueryFailure::Failed(message)),
        }
    }

    fn unknown_query(&self, name: &str) -> QueryFailure {
        let queries = &self.module.descriptor.queries;
        QueryFailure::UnknownQuery {
            projection: self.name().to_owned(),
            name: name.to_owned(),
            known: if queries.is_empty() {
                "no queries".to_owned()
            } else {
                queries.join(", ")
            },
        }
    }
}

/// What a unit's state file and snapshots go by: `<hash>.unit-<index>`.
pub fn unit_file_key(hash: &str, partitions: Partitions) -> String {
    match partitions {
        Partitions::All => hash.to_owned(),
        Partitions::Only(index) => format!("{hash}.unit-{index}"),
    }
}

/// One answer from the answers of every unit, folded by `add`; the first
/// unit's error is the answer when one fails.
fn gather<T: Default + Send + 'static>(
    pending: Vec<std::sync::mpsc::Receiver<Result<T, String>>>,
    add: impl Fn(T, T) -> T + Send + 'static,
) -> std::sync::mpsc::Receiver<Result<T, String>> {
    let (reply, answer) = std::sync::mpsc::channel();
    let collect = move || {
        let mut all = T::default();
        for (unit, receiver) in pending.into_iter().enumerate() {
            match receiver.recv() {
                Ok(Ok(part)) => all = add(all, part),
                Ok(Err(e)) => return Err(format!("unit {unit}: {e}")),
                Err(_) => return Err(format!("unit {unit} stopped before it answered")),
            }
        }
        Ok(all)
    };
    let spawned = std::thread::Builder::new()
        .name("gather-units".into())
        .spawn({
            let reply = reply.clone();
            move || {
                let _ = reply.send(collect());
            }
        });
    if let Err(e) = spawned {
        let _ = reply.send(Err(format!(
            "cannot start a thread to gather the units' answers: {e}"
        )));
    }
    answer
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub type SharedProjection = Arc<ProjectionRuntime>;
