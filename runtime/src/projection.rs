//! A running projection version: its module, its state file, its status, and
//! the pool of read-only instances that answer custom queries.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime};

use serde::Serialize;

use crate::event::Offsets;
use crate::source::{Source, SourceStatus, TopicBinding};
use crate::store::{FailureCounts, FailureKind, StateReader, StateStore, StoreError};
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

pub struct ProjectionRuntime {
    /// Unique per runtime in this process; tells apart versions of equal hash.
    pub instance: u64,
    pub module: LoadedModule,
    /// Shared with the next version on a swap that keeps the state.
    pub store: Arc<StateStore>,
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
    pub fn new(
        module: LoadedModule,
        store: Arc<StateStore>,
        source: Arc<dyn Source>,
        topics: Vec<TopicBinding>,
        config: crate::worker::WorkerConfig,
    ) -> Self {
        static NEXT_INSTANCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Self {
            instance: NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed),
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
            store,
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
    pub fn with_skip_order(self, order: crate::worker::SkipOrder) -> Self {
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

    pub fn set_role(&self, role: Role) {
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
        if let Some(events) = &self.events {
            events(event);
        }
    }

    /// Starts the worker thread.
    pub fn start(self: &Arc<Self>) -> std::io::Result<()> {
        let handle = crate::worker::spawn(self.clone(), self.config.clone())?;
        *self.worker.lock().unwrap_or_else(PoisonError::into_inner) = Some(handle);
        Ok(())
    }

    /// Asks the worker to stop after its current batch and waits for it;
    /// the state stays readable.
    pub fn stop_and_join(&self) {
        self.request_stop();
        self.source.wake_all();
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

    pub fn status(&self) -> Status {
        self.status
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn set_status(&self, status: Status) {
        *self.status.write().unwrap_or_else(PoisonError::into_inner) = status;
    }

    pub fn source_status(&self) -> SourceStatus {
        self.source_status
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn set_source_status(&self, status: SourceStatus) {
        *self
            .source_status
            .write()
            .unwrap_or_else(PoisonError::into_inner) = status;
    }

    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
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
    pub fn request_purge(&self, keep: usize) -> std::sync::mpsc::Receiver<Result<u64, String>> {
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
        let offsets = self.store.reader()?.offsets()?;
        Ok(self.partitions(&offsets).iter().map(|p| p.lag).sum())
    }

    /// How long this version has been stalled (lag, running, and no
    /// progress for `stall_after`), if it is.
    pub fn stalled_for(&self, lag: u64) -> Option<std::time::Duration> {
        crate::metrics::stalled_for(&self.metrics, &self.status(), lag, self.config.stall_after)
    }

    fn partitions(&self, offsets: &Offsets) -> Vec<PartitionProgress> {
        let mut partitions = Vec::new();
        for binding in &self.topics {
            let topic = &binding.logical;
            for (partition, head) in self.source.heads(&binding.physical).into_iter().enumerate() {
                let partition = partition as u32;
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
        let reader = self.store.reader()?;
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
        Ok(ProjectionInfo {
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
            seconds_since_progress: self.metrics.since_progress().as_secs_f64(),
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
        let reader: StateReader = self.store.reader()?;
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

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub type SharedProjection = Arc<ProjectionRuntime>;
