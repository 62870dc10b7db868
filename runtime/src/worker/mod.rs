//! The projection worker: read a batch from the source, run it through the
//! module against a write overlay, commit overlay and offsets in one
//! transaction. One OS thread per projection, so a slow module never blocks
//! the async runtime or another projection.

mod handover;
mod permits;
mod policy;
mod priority;
mod snapshots;

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use permits::FoldPermits;
pub use policy::SkipOrder;
pub use policy::{ErrorPolicy, RetryReport};
pub(crate) use policy::{FailureBook, OneByOne, run_one_by_one};
use policy::{PAGE, describe_failure, failed_again};
pub use snapshots::{SHUTDOWN_WAIT as SNAPSHOT_SHUTDOWN_WAIT, finish_all as finish_snapshots};

use crate::cluster::Gate;
use crate::event::Offsets;
use crate::metrics::ErrorKind;
use crate::projection::{ProjectionRuntime, Status, WorkerEvent, unix_now};
use crate::source::{SourceError, Subscription};
use crate::store::{
    Changes, CommitPositions, FailedEvent, FailureChanges, FailureKind, Overlay, StateStore,
    StoreError,
};
use crate::wasm::{Instance, Limits, RunError, bindings, to_wit_event};

/// How long an idle worker sleeps before it re-checks for a stop request.
const IDLE_WAIT: Duration = Duration::from_millis(500);
/// Back-off after a source read error.
const SOURCE_RETRY: Duration = Duration::from_millis(500);
/// Back-off between attempts to reopen a state file after a write failure.
const STORAGE_RETRY: Duration = Duration::from_millis(500);
/// Skipped-event records kept per projection unless configured.
pub const DEFAULT_KEEP_SKIPPED: usize = 10_000;

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Most events handed to the module in one call (and one commit).
    pub batch_max_events: usize,
    /// How long to wait for more events when a batch is not full.
    pub batch_linger: Duration,
    /// While events keep coming, successful batches are coalesced and
    /// committed together once this many events are pending...
    pub commit_max_events: usize,
    /// ...or the oldest pending batch is this old. A batch that is not full
    /// (the source had nothing more) commits at once.
    pub commit_max_delay: Duration,
    /// Longest time between durable commits. Commits in between are
    /// non-durable: a crash rolls state and offsets back together.
    pub sync_interval: Duration,
    /// Periodic snapshots of the state; `None` takes none.
    pub snapshots: Option<SnapshotPolicy>,
    /// Where snapshots are also uploaded, and a missing one fetched from
    /// (`--snapshot-store`).
    pub snapshot_store: Option<std::sync::Arc<crate::snapshot::SnapshotStore>>,
    /// How long the state files of removed or replaced versions are kept.
    pub state_retention: Duration,
    /// What happens to an event the module fails on.
    pub error_policy: ErrorPolicy,
    /// Skipped-event records kept (`keep_skipped`); the oldest beyond it
    /// are removed in the commit that adds new ones.
    pub keep_skipped: usize,
    /// Resource limits of this projection's instances.
    pub limits: Limits,
    /// With lag and nothing applied for this long, the projection is stalled.
    pub stall_after: Duration,
    /// redb's page cache of each state file (`state_cache_mb`).
    pub state_cache_bytes: usize,
    /// Nice value of the worker, commit and snapshot threads (0-19; 0 leaves
    /// them at the process's priority): folding yields the CPU to queries.
    pub worker_nice: i32,
    /// How many units of one partitioned projection fold at once.
    pub worker_threads: usize,
    /// How a partitioned projection's state keys embed event keys
    /// (sidecar `key_templates`): lookups ask the key's unit first.
    pub key_templates: Arc<[crate::store::KeyTemplate]>,
    /// This instance's slots when it is one of a group's (`--group`):
    /// workers fold only what it holds.
    pub cluster: Option<Arc<crate::cluster::Ownership>>,
    /// In a group: how many other instances keep a warm copy of each unit
    /// (`standby_replicas`, global and per sidecar).
    pub standby_replicas: u32,
}

/// When to snapshot a projection version's state, and where.
#[derive(Debug, Clone)]
pub struct SnapshotPolicy {
    /// `data/snapshots`.
    pub dir: std::path::PathBuf,
    /// After this many events since the last snapshot...
    pub every_events: u64,
    /// ...or this long, if any event was applied since.
    pub every: Duration,
    /// Snapshots kept per version.
    pub keep: usize,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            batch_max_events: 1000,
            batch_linger: Duration::ZERO,
            commit_max_events: 5_000,
            commit_max_delay: Duration::from_millis(100),
            sync_interval: Duration::from_millis(1000),
            snapshots: None,
            snapshot_store: None,
            state_retention: Duration::from_secs(7 * 24 * 3600),
            error_policy: ErrorPolicy::default(),
            keep_skipped: DEFAULT_KEEP_SKIPPED,
            limits: Limits::default(),
            stall_after: Duration::from_secs(30),
            state_cache_bytes: crate::store::DEFAULT_CACHE_BYTES,
            worker_nice: 10,
            worker_threads: std::thread::available_parallelism().map_or(1, usize::from),
            key_templates: Arc::new([]),
            cluster: None,
            standby_replicas: 0,
        }
    }
}

pub fn spawn(
    projection: Arc<ProjectionRuntime>,
    config: WorkerConfig,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("worker-{}", projection.name()))
        .spawn(move || {
            // Every line this thread logs, the module's own included, carries
            // the projection and its version.
            let span = tracing::info_span!(
                "projection",
                projection = %projection.name(),
                version = %projection.module.short_hash(),
                unit = tracing::field::Empty
            );
            if let crate::source::Partitions::Only(unit) = projection.partitions {
                span.record("unit", unit);
            }
            let _entered = span.enter();
            priority::lower_this_thread(config.worker_nice);
            let ended = |message: String| {
                projection.refuse_retries(&message);
                tracing::error!("{message}");
                projection.set_status(failed(None, message.clone()));
                projection.notify(WorkerEvent::Halted {
                    name: projection.name().to_owned(),
                    hash: projection.module.hash.clone(),
                    instance: projection.instance,
                    message,
                });
            };
            let Some((ownership, slot)) = projection.cluster_slot() else {
                run_worker(&projection, &config, SlotRole::Active(None), &ended);
                return;
            };
            // In a group: fold while this instance holds the slot, or keeps
            // a standby of it.
            let mut shown_elsewhere = false;
            let mut was_standby = false;
            while !projection.stop_requested() {
                match projection.gate() {
                    Gate::Held => {
                        let Some(active) = ownership.enter(slot) else {
                            continue;
                        };
                        shown_elsewhere = false;
                        let since = Instant::now();
                        let from = handover::take_over(&projection, &config, was_standby);
                        was_standby = false;
                        let role = SlotRole::Active(Some(Handover { since, from }));
                        if !run_worker(&projection, &config, role, &ended) {
                            return;
                        }
                        if ownership.gate(slot) == Gate::Release && !projection.stop_requested() {
                            handover::hand_over(&projection, &config);
                        }
                        drop(active);
                    }
                    Gate::Standby => {
                        shown_elsewhere = false;
                        was_standby = true;
                        if !run_worker(&projection, &config, SlotRole::Standby, &ended) {
                            return;
                        }
                    }
                    Gate::Release | Gate::Closed => {
                        was_standby = false;
                        if !shown_elsewhere {
                            projection.set_status(Status::Elsewhere);
                            shown_elsewhere = true;
                        }
                        ownership.wait_change(IDLE_WAIT);
                    }
                }
            }
        })
}

/// What a worker is to its slot in a group (always `Active` outside one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotRole {
    /// It holds the slot: folds, commits, answers, hands over; with the
    /// handover it is timing, when the slot just came.
    Active(Option<Handover>),
    /// A warm copy: folds and commits into this instance's own files, and
    /// stops (committing) once the slot's standby order or owner changes.
    Standby,
}

/// A slot that came to this instance: when, and where its unit started
/// from; timed until the unit first reaches the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Handover {
    since: Instant,
    from: crate::cluster::HandoverFrom,
}

/// Runs one worker over the state until it stops; `false` when it ended
/// in failure (reported through `ended`).
fn run_worker(
    projection: &Arc<ProjectionRuntime>,
    config: &WorkerConfig,
    role: SlotRole,
    ended: &dyn Fn(String),
) -> bool {
    let mut worker = match Worker::new(projection, config, role) {
        Ok(worker) => worker,
        Err(message) => {
            ended(message);
            return false;
        }
    };
    match role {
        SlotRole::Active(_) => {
            projection.set_status(Status::Running);
            tracing::info!("projection running");
        }
        SlotRole::Standby => {
            projection.set_status(Status::Standby);
            tracing::info!("keeping a standby of this slot: folding its events here too");
        }
    }
    projection.metrics.progressed();
    // A bug (or a damaged file redb trips over) must not leave the
    // status saying "running" with nothing behind it.
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| worker.run()));
    if let Err(panic) = run {
        let reason = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        ended(format!("the worker crashed: {reason}"));
        return false;
    }
    let halted = matches!(projection.status(), Status::Failed { .. });
    // A slot that moved away may come back: its retries wait.
    let slot_moved = !projection.stop_requested() && projection.gate() != Gate::Held;
    if !slot_moved {
        projection.refuse_retries("the projection stopped before the retry ran");
    }
    if let Some(Err(e)) = projection.store().map(|store| store.sync()) {
        tracing::error!(error = %e, "final sync failed");
    }
    if matches!(
        projection.status(),
        Status::Running | Status::Paused { .. } | Status::Standby
    ) {
        projection.set_status(Status::Stopped);
    }
    !halted
}

fn failed(event: Option<&bindings::Event>, message: String) -> Status {
    Status::Failed {
        source: event.map(|e| e.source.clone()),
        partition: event.map(|e| e.partition),
        offset: event.map(|e| e.offset),
        message,
        since: unix_now(),
    }
}

struct Worker<'a> {
    projection: &'a ProjectionRuntime,
    role: SlotRole,
    /// The state file this worker folds into.
    store: Arc<StateStore>,
    subscription: Box<dyn Subscription>,
    config: &'a WorkerConfig,
    label: String,
    instance: Instance,
    positions: Offsets,
    events_applied: u64,
    last_durable: Instant,
    dirty: bool,
    /// A building version reports reaching the head once.
    reported_caught_up: bool,
    /// `events_applied` and time of the last snapshot taken.
    last_snapshot: (u64, Instant),
    snapshot_running: Arc<std::sync::atomic::AtomicBool>,
    failures: FailureBook,
    /// The event an operator asked to pass over (`resume --skip`), kept
    /// until positions pass it: a rewind after a write failure reapplies it.
    resume_skip: Option<SkipOrder>,
    pending: Pending,
    /// The commit thread's inbox: coalesced batches commit there while the
    /// next batches run here.
    committer: CommitInbox,
    in_flight: Option<InFlight>,
}

impl Drop for Worker<'_> {
    /// A worker that stops (or halts) with a commit in flight lets it end
    /// first: nothing may write the state file once the worker is gone.
    fn drop(&mut self) {
        if let Some(in_flight) = self.in_flight.take() {
            let _ = in_flight.result.recv();
        }
    }
}

/// One transaction for the commit thread.
struct CommitJob {
    changes: Arc<Changes>,
    positions: Offsets,
    events_applied: u64,
    durable: bool,
}

type CommitOutcome = Result<Duration, CommitFailure>;

enum CommitFailure {
    Store(StoreError),
    Crashed(String),
}

fn committer_gone() -> CommitFailure {
    CommitFailure::Crashed("the commit thread stopped unexpectedly".to_owned())
}

/// A commit handed to the commit thread and not taken in yet.
struct InFlight {
    changes: Arc<Changes>,
    positions: Offsets,
    events: u64,
    batches: u64,
    durable: bool,
    result: Receiver<CommitOutcome>,
}

type CommitInbox = SyncSender<(CommitJob, SyncSender<CommitOutcome>)>;

/// Runs commits for one worker, in the order they come, until the worker
/// drops its end. A panic (a damaged file redb trips over) is reported as
/// the commit's outcome.
fn spawn_committer(
    store: Arc<crate::store::StateStore>,
    name: &str,
    nice: i32,
) -> std::io::Result<CommitInbox> {
    let (jobs, inbox) = std::sync::mpsc::sync_channel::<(CommitJob, SyncSender<CommitOutcome>)>(1);
    let span = tracing::Span::current();
    std::thread::Builder::new()
        .name(format!("commit-{name}"))
        .spawn(move || {
            let _entered = span.enter();
            priority::lower_this_thread(nice);
            for (job, done) in inbox {
                let started = Instant::now();
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    store.commit_with_failures(
                        &Overlay::from_shared(job.changes),
                        CommitPositions {
                            offsets: &job.positions,
                            events_applied: job.events_applied,
                        },
                        &FailureChanges::default(),
                        job.durable,
                    )
                }));
                let outcome = match run {
                    Ok(Ok(())) => Ok(started.elapsed()),
                    Ok(Err(e)) => Err(CommitFailure::Store(e)),
                    Err(panic) => Err(CommitFailure::Crashed(format!(
                        "the commit crashed: {}",
                        panic
                            .downcast_ref::<&str>()
                            .map(|s| (*s).to_owned())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "unknown panic".to_owned())
                    ))),
                };
                let _ = done.send(outcome);
            }
        })?;
    Ok(jobs)
}

/// Batches applied but not committed yet. Committing them together writes a
/// key that many batches changed once, and gives redb bigger sorted
/// transactions; later batches read through these changes.
#[derive(Default)]
struct Pending {
    changes: Arc<Changes>,
    /// Where the last pending batch left the offsets.
    positions: Offsets,
    events: u64,
    batches: u64,
    /// When the oldest pending batch was applied.
    since: Option<Instant>,
}

/// Whether the worker goes on after a batch.
enum Flow {
    Continue,
    Halt,
    /// The state file was reopened after a write failure: state, offsets
    /// and subscription went back to the last durable commit, so whatever
    /// was being applied is dropped (it is read again).
    Rewound,
}

impl<'a> Worker<'a> {
    fn new(
        projection: &'a ProjectionRuntime,
        config: &'a WorkerConfig,
        role: SlotRole,
    ) -> Result<Self, String> {
        let label = projection.label();
        let mut instance = projection
            .module
            .instantiate_with(&label, &config.limits)
            .map_err(|e| e.to_string())?;
        instance.interrupt_on(projection.stop_flag());
        let store = projection.store().cloned().ok_or_else(|| {
            format!(
                "{} is a partitioned version: its units fold, each into its own state file",
                projection.label()
            )
        })?;
        let reader = store.reader().map_err(|e| e.to_string())?;
        let positions = reader.offsets().map_err(|e| e.to_string())?;
        let mut failures =
            FailureBook::load(&reader, &projection.module.hash).map_err(|e| e.to_string())?;
        let resume_skip = projection.take_skip_order();
        if let Some(order) = &resume_skip {
            failures.skip(order.clone());
        }
        let subscription = projection
            .source
            .subscribe(
                projection.name(),
                &projection.topics,
                projection.partitions,
                &positions,
            )
            .map_err(|e| format!("cannot open the source: {e}"))?;
        projection.set_source_status(subscription.status());
        let events_applied = reader.events_applied().map_err(|e| e.to_string())?;
        let committer = spawn_committer(store.clone(), projection.name(), config.worker_nice)
            .map_err(|e| format!("cannot start the commit thread: {e}"))?;
        Ok(Self {
            positions,
            events_applied,
            projection,
            role,
            store,
            subscription,
            config,
            label,
            instance,
            last_durable: Instant::now(),
            dirty: false,
            reported_caught_up: false,
            last_snapshot: (events_applied, Instant::now()),
            snapshot_running: Arc::default(),
            failures,
            resume_skip,
            pending: Pending::default(),
            committer,
            in_flight: None,
        })
    }

    fn run(&mut self) {
        if self.failures.parked_by_other_version && !self.projection.is_building() {
            // A new version took over parked keys: give it their events, in
            // order, before anything newer.
            tracing::info!("retrying events parked under an earlier version");
            // Rewound or stopping: the next start retries them again.
            if let Err(Flow::Halt) = self.retry(true) {
                return;
            }
        }
        let max = self.config.batch_max_events;
        let mut raw = Vec::with_capacity(max);
        while !self.projection.stop_requested() {
            match (self.role, self.projection.gate()) {
                (SlotRole::Active(_), Gate::Held) | (SlotRole::Standby, Gate::Standby) => {}
                // A cooperative revoke: what is applied commits below.
                (SlotRole::Active(_), Gate::Release) => {
                    tracing::info!("the group moves this slot away: committing, then handing over");
                    break;
                }
                // Promoted, or the standbys moved: a standby's commits are
                // its own files', so what is applied commits below.
                (SlotRole::Standby, gate) => {
                    tracing::info!(
                        promoted = gate == Gate::Held,
                        "this instance no longer keeps a standby of this slot: committing"
                    );
                    break;
                }
                // Fenced: nothing more is committed.
                (SlotRole::Active(_), Gate::Closed | Gate::Standby) => {
                    tracing::warn!(
                        uncommitted_events = self.pending.events,
                        "this instance no longer holds the slot (moved, or its lease lapsed): stopped without committing"
                    );
                    self.pending = Pending::default();
                    return;
                }
            }
            raw.clear();
            let requests = self.projection.take_retry_requests();
            if !requests.is_empty() {
                let outcome = match self.flush_and_settle() {
                    Flow::Continue => self.retry(false),
                    flow => Err(flow),
                };
                let report = match &outcome {
                    Ok(report) => Ok(report.clone()),
                    Err(Flow::Rewound) => Err(
                        "the retry was interrupted: the state file could not be written and went back to its last durable commit; retry again"
                            .to_owned(),
                    ),
                    Err(_) => Err("the projection stopped before the retry finished".to_owned()),
                };
                for reply in requests {
                    let _ = reply.send(report.clone());
                }
                if let Err(Flow::Halt) = outcome {
                    return;
                }
            }
            let purges = self.projection.take_purge_requests();
            if !purges.is_empty() {
                let flow = self.flush_and_settle();
                for (keep, reply) in purges {
                    let outcome = match flow {
                        Flow::Continue => self.purge_skipped(keep),
                        Flow::Rewound => Err(Flow::Rewound),
                        Flow::Halt => Err(Flow::Halt),
                    };
                    let _ = reply.send(outcome.map_err(|flow| match flow {
                        Flow::Halt => "the projection stopped before the purge ran".to_owned(),
                        _ => "the purge was interrupted by a write failure; purge again".to_owned(),
                    }));
                }
                if let Flow::Halt = flow {
                    return;
                }
            }
            // With batches pending, take what is there and commit if that
            // is nothing: waiting would only delay them.
            let wait = if self.pending.events > 0 || self.in_flight.is_some() {
                Duration::ZERO
            } else {
                self.idle_wait()
            };
            let polled = self.poll(max, wait, &mut raw);
            if polled.is_ok()
                && !raw.is_empty()
                && raw.len() < max
                && !self.config.batch_linger.is_zero()
            {
                let _ = self.poll(max - raw.len(), self.config.batch_linger, &mut raw);
            }
            if (polled.is_err() || raw.is_empty()) && matches!(self.flush_and_settle(), Flow::Halt)
            {
                return;
            }
            if polled.is_err() {
                // A failed poll returns nothing to apply (sources promise
                // it); back off and try again.
                raw.clear();
                std::thread::sleep(SOURCE_RETRY);
                self.sync_if_due();
                continue;
            }
            if raw.is_empty() {
                self.projection.metrics.progressed();
                if self.subscription.at_head() {
                    self.report_caught_up();
                    self.report_handover_done();
                }
                self.sync_if_due();
                continue;
            }
            let bytes: usize = raw
                .iter()
                .map(|e| {
                    e.payload.as_ref().map_or(0, Vec::len) + e.key.as_ref().map_or(0, Vec::len)
                })
                .sum();
            self.projection.metrics.read(raw.len(), bytes as u64);
            let events: Vec<bindings::Event> = raw.drain(..).map(to_wit_event).collect();
            // A unit folds only while it holds one of its projection's
            // permits; stopping while waiting drops the batch unapplied
            // (the next start reads it again from the state's offsets).
            let projection = self.projection;
            let permit = match &projection.permits {
                Some(permits) => match permits.acquire(IDLE_WAIT, || projection.stop_requested()) {
                    Some(permit) => Some(permit),
                    None => break,
                },
                None => None,
            };
            let flow = self.apply(&events);
            drop(permit);
            if let Flow::Halt = flow {
                return;
            }
        }
        self.flush_and_settle();
    }

    /// A unit that came to this instance reached the head: it serves
    /// current answers from here on.
    fn report_handover_done(&mut self) {
        let SlotRole::Active(handover @ Some(_)) = &mut self.role else {
            return;
        };
        let Some(Handover { since, from }) = handover.take() else {
            return;
        };
        let took = since.elapsed();
        if let Some((ownership, _)) = self.projection.cluster_slot() {
            ownership.handover_done(from, took);
        }
        tracing::info!(
            from = from.label(),
            events_applied = self.events_applied,
            took_ms = took.as_millis() as u64,
            "took over: caught up with the source, serving"
        );
    }

    /// Nothing left to read: a shadow build has reached the live head. Its
    /// progress is made durable first so the swap hands over synced state.
    fn report_caught_up(&mut self) {
        if self.reported_caught_up || !self.projection.is_building() {
            return;
        }
        if self.dirty {
            match self.store.sync() {
                Ok(()) => self.mark_durable(),
                Err(e) => {
                    tracing::error!(error = %e, "sync failed");
                    return;
                }
            }
        }
        self.reported_caught_up = true;
        self.projection.notify(WorkerEvent::CaughtUp {
            name: self.projection.name().to_owned(),
            hash: self.projection.module.hash.clone(),
            instance: self.projection.instance,
        });
    }

    fn poll(
        &mut self,
        max: usize,
        wait: Duration,
        out: &mut Vec<crate::event::Event>,
    ) -> Result<(), SourceError> {
        let result = self.subscription.poll_batch(max, wait, out);
        if let Err(e) = &result {
            tracing::warn!(error = %e, "reading the source failed; retrying");
        }
        self.projection
            .set_source_status(self.subscription.status());
        result
    }

    /// How long to wait for events: until the next durable commit is due
    /// when commits are pending, else a while (stop requests wake us).
    fn idle_wait(&self) -> Duration {
        if self.dirty {
            self.config
                .sync_interval
                .saturating_sub(self.last_durable.elapsed())
                .max(Duration::from_millis(1))
        } else {
            IDLE_WAIT
        }
    }

    /// Makes pending non-durable commits durable once the interval is over.
    fn sync_if_due(&mut self) {
        if self.dirty && self.last_durable.elapsed() >= self.config.sync_interval {
            match self.store.sync() {
                Ok(()) => self.mark_durable(),
                Err(e) if e.needs_reopen() => {
                    let _ = self.recover_storage(e);
                }
                Err(e) => tracing::error!(error = %e, "sync failed"),
            }
        }
    }

    fn mark_durable(&mut self) {
        self.dirty = false;
        self.last_durable = Instant::now();
        // Only the serving version speaks for the projection to lag tools.
        if !self.projection.is_building() {
            self.subscription.committed(&self.positions);
        }
        self.snapshot_if_due();
    }

    /// Snapshots durable state in the background when the policy says so;
    /// the read transaction keeps it consistent while batches go on.
    fn snapshot_if_due(&mut self) {
        let Some(policy) = &self.config.snapshots else {
            return;
        };
        let (events, at) = self.last_snapshot;
        let since = self.events_applied.saturating_sub(events);
        let due = since >= policy.every_events || (since > 0 && at.elapsed() >= policy.every);
        if !due
            || self
                .snapshot_running
                .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            return;
        }
        self.last_snapshot = (self.events_applied, Instant::now());
        let reader = match self.store.reader() {
            Ok(reader) => reader,
            Err(e) => {
                tracing::warn!(error = %e, "snapshot skipped");
                self.snapshot_running
                    .store(false, std::sync::atomic::Ordering::Release);
                return;
            }
        };
        let module = &self.projection.module;
        let job = snapshots::Job {
            dir: policy.dir.clone(),
            keep: policy.keep,
            name: module.descriptor.name.clone(),
            hash: self.projection.file_key(),
            state_version: module.descriptor.state_version,
            nice: self.config.worker_nice,
            // The active owner publishes; a standby's snapshots stay here.
            store: match self.role {
                SlotRole::Active(_) => self.config.snapshot_store.clone(),
                SlotRole::Standby => None,
            },
        };
        if snapshots::spawn(job, reader, self.snapshot_running.clone()).is_err() {
            self.snapshot_running
                .store(false, std::sync::atomic::Ordering::Release);
        }
    }

    fn apply(&mut self, events: &[bindings::Event]) -> Flow {
        if let flow @ (Flow::Halt | Flow::Rewound) = self.settle_if_done() {
            return flow;
        }
        if self.failures.holds_any(events) {
            // Events of quarantined keys (and events an operator skips)
            // must not reach the module.
            return match self.flush_and_settle() {
                Flow::Continue => self.apply_one_by_one(events),
                flow => flow,
            };
        }
        if self.instance.is_poisoned() && !self.recreate_instance() {
            return Flow::Halt;
        }
        let base = match self.store.reader() {
            Ok(base) => base,
            Err(e) => return self.storage_failed(e),
        };
        let started = Instant::now();
        let committing = self
            .in_flight
            .as_ref()
            .map(|c| c.changes.clone())
            .unwrap_or_default();
        let over = Overlay::over(self.pending.changes.clone(), committing);
        let (result, overlay) = self.instance.handle(events, base, over);
        self.projection.metrics.handled(started.elapsed());
        match result {
            // The state file failed under the module: not the module's fault.
            Err(RunError::Storage(e)) => self.storage_failed(e),
            // Stopping: the batch is dropped unapplied (read again on the
            // next start); what is pending still commits on the way out.
            Err(RunError::Interrupted) => Flow::Continue,
            Ok(()) => {
                self.add_pending(events, overlay.into_batch_changes());
                if self.commit_due(events.len()) {
                    self.flush()
                } else {
                    Flow::Continue
                }
            }
            Err(err) => {
                tracing::debug!(error = %err, "batch failed; re-running it event by event");
                match self.flush_and_settle() {
                    Flow::Continue => self.apply_one_by_one(events),
                    flow => flow,
                }
            }
        }
    }

    /// Keeps a successful batch's changes to commit with the next ones.
    fn add_pending(&mut self, events: &[bindings::Event], batch: Changes) {
        let pending = &mut self.pending;
        if pending.events == 0 {
            // Start where the commit in flight, if any, leaves the offsets:
            // a partition this batch does not touch keeps its position.
            pending.positions = match &self.in_flight {
                Some(in_flight) => in_flight.positions.clone(),
                None => self.positions.clone(),
            };
            pending.since = Some(Instant::now());
        }
        advance(&mut pending.positions, events);
        pending.events += events.len() as u64;
        pending.batches += 1;
        // The batch's overlay let go of its reference: no copy is made.
        let changes = Arc::make_mut(&mut pending.changes);
        if changes.is_empty() {
            *changes = batch;
        } else {
            changes.extend(batch);
        }
    }

    /// Whether the pending batches commit now: the source has nothing more
    /// (a batch that is not full, at the head: Kafka also hands over short
    /// batches mid-backlog, as fetches arrive), or enough is pending.
    fn commit_due(&self, batch_len: usize) -> bool {
        (batch_len < self.config.batch_max_events && self.subscription.at_head())
            || self.pending.events >= self.config.commit_max_events as u64
            || self
                .pending
                .since
                .is_some_and(|since| since.elapsed() >= self.config.commit_max_delay)
    }

    /// An active worker whose slot is no longer provably this instance's:
    /// what it applied must not commit. (A standby commits into its own
    /// files whatever the group does.)
    fn fenced(&self) -> bool {
        matches!(self.role, SlotRole::Active(_))
            && matches!(self.projection.gate(), Gate::Closed | Gate::Standby)
    }

    /// Hands the pending batches, if any, to the commit thread as one
    /// transaction, after the previous one is done; the next batches read
    /// through them until they are committed.
    fn flush(&mut self) -> Flow {
        if self.pending.events == 0 {
            return Flow::Continue;
        }
        if self.fenced() {
            // The slot is no longer provably ours (fenced): the batches
            // are dropped, and read again by whoever owns it.
            tracing::warn!(
                events = self.pending.events,
                "the group moved this slot away: uncommitted batches dropped"
            );
            self.pending = Pending::default();
            return Flow::Halt;
        }
        if let flow @ (Flow::Halt | Flow::Rewound) = self.settle() {
            return flow;
        }
        let pending = std::mem::take(&mut self.pending);
        let durable = self.last_durable.elapsed() >= self.config.sync_interval;
        let job = CommitJob {
            changes: pending.changes.clone(),
            positions: pending.positions.clone(),
            events_applied: self.events_applied + pending.events,
            durable,
        };
        let (done, result) = std::sync::mpsc::sync_channel(1);
        if self.committer.send((job, done)).is_err() {
            return self.halt(None, "the commit thread is gone".to_owned());
        }
        self.in_flight = Some(InFlight {
            changes: pending.changes,
            positions: pending.positions,
            events: pending.events,
            batches: pending.batches,
            durable,
            result,
        });
        Flow::Continue
    }

    /// Waits for the commit in flight, if any, and takes in its outcome.
    fn settle(&mut self) -> Flow {
        let Some(in_flight) = self.in_flight.take() else {
            return Flow::Continue;
        };
        let outcome = in_flight
            .result
            .recv()
            .unwrap_or_else(|_| Err(committer_gone()));
        self.take_outcome(in_flight, outcome)
    }

    /// Takes in a commit that finished while batches ran, without waiting.
    fn settle_if_done(&mut self) -> Flow {
        let Some(in_flight) = self.in_flight.take() else {
            return Flow::Continue;
        };
        match in_flight.result.try_recv() {
            Ok(outcome) => self.take_outcome(in_flight, outcome),
            Err(TryRecvError::Disconnected) => self.take_outcome(in_flight, Err(committer_gone())),
            Err(TryRecvError::Empty) => {
                self.in_flight = Some(in_flight);
                Flow::Continue
            }
        }
    }

    fn take_outcome(&mut self, in_flight: InFlight, outcome: CommitOutcome) -> Flow {
        match outcome {
            Ok(took) => {
                self.committed(
                    in_flight.positions,
                    (in_flight.events, in_flight.batches),
                    in_flight.durable,
                    took,
                );
                Flow::Continue
            }
            Err(CommitFailure::Store(e)) => self.storage_failed(e),
            Err(CommitFailure::Crashed(message)) => self.halt(None, message),
        }
    }

    /// Commits everything applied so far and waits until it is committed:
    /// what runs next (retries, event-by-event runs, stops) starts from
    /// committed state.
    fn flush_and_settle(&mut self) -> Flow {
        match self.flush() {
            Flow::Continue => self.settle(),
            flow => flow,
        }
    }

    /// Runs a batch one event at a time through the error policy
    /// (`policy::run_one_by_one`) and commits the events it applied with
    /// the failure records it made.
    fn apply_one_by_one(&mut self, events: &[bindings::Event]) -> Flow {
        let mut overlay = Overlay::default();
        let mut changes = FailureChanges::default();
        // Taken out so that `run` may borrow the worker; put back below.
        let mut book = std::mem::take(&mut self.failures);
        let projection = self.projection;
        let outcome = run_one_by_one(
            events,
            self.config.error_policy,
            &mut book,
            &projection.module,
            &mut overlay,
            &mut changes,
            |event, overlay| {
                let outcome = self.run_one(event, overlay)?;
                if let (Err(err), _) = &outcome {
                    projection.metrics.error(ErrorKind::of(err));
                }
                Ok(outcome)
            },
        );
        self.failures = book;
        if let Err(e) = self.trim_skipped(&mut changes) {
            return self.storage_failed(e);
        }
        let mut positions = self.positions.clone();
        match outcome {
            Err(flow) => flow,
            Ok(OneByOne::Completed) => {
                advance(&mut positions, events);
                self.commit(&overlay, positions, (events.len() as u64, 1), &changes)
            }
            Ok(OneByOne::Halted { index, error }) => {
                advance(&mut positions, &events[..index]);
                match self.commit(&overlay, positions, (index as u64, 1), &changes) {
                    Flow::Continue => self.halt(Some(&events[index]), error),
                    other => other,
                }
            }
        }
    }

    /// After the failure book was loaded again: the operator's skip still
    /// holds while the positions have not passed its event.
    fn keep_resume_skip(&mut self) {
        if let Some(order) = &self.resume_skip
            && self.positions.get(&order.source, order.partition) <= order.offset
        {
            self.failures.skip(order.clone());
        }
    }

    /// Keeps the skipped records within `keep_skipped`: the oldest stored
    /// ones (and, for a tiny limit, the oldest new ones) are removed in the
    /// commit that adds the new ones.
    fn trim_skipped(&self, changes: &mut FailureChanges) -> Result<(), StoreError> {
        let new = changes
            .upsert
            .iter()
            .filter(|r| r.kind == FailureKind::Skipped)
            .count();
        if new == 0 {
            return Ok(());
        }
        let reader = self.store.reader()?;
        let stored = reader.failure_counts()?.skipped as usize;
        let excess = (stored + new).saturating_sub(self.config.keep_skipped);
        if excess == 0 {
            return Ok(());
        }
        let from_store = excess.min(stored);
        changes.resolved.extend(
            reader
                .failures(Some(FailureKind::Skipped), None, from_store)?
                .iter()
                .map(|r| r.id),
        );
        let mut drop_new = excess - from_store;
        changes.upsert.retain(|r| {
            let dropped = drop_new > 0 && r.kind == FailureKind::Skipped;
            drop_new -= usize::from(dropped);
            !dropped
        });
        Ok(())
    }

    /// Removes all but the `keep` newest skipped records (`dead-letters
    /// purge`), a page per commit; answers how many went.
    fn purge_skipped(&mut self, keep: usize) -> Result<u64, Flow> {
        let mut removed = 0;
        loop {
            let page = self.store.reader().and_then(|reader| {
                let stored = reader.failure_counts()?.skipped as usize;
                let excess = stored.saturating_sub(keep).min(PAGE);
                reader.failures(Some(FailureKind::Skipped), None, excess)
            });
            let page = match page {
                Ok(page) if page.is_empty() => break,
                Ok(page) => page,
                Err(e) => return Err(self.storage_failed(e)),
            };
            let changes = FailureChanges {
                upsert: Vec::new(),
                resolved: page.iter().map(|r| r.id).collect(),
            };
            let positions = self.positions.clone();
            match self.commit(&Overlay::default(), positions, (0, 1), &changes) {
                Flow::Continue => removed += page.len() as u64,
                flow => return Err(flow),
            }
        }
        tracing::info!(removed, keep, "skipped-event records purged");
        Ok(removed)
    }

    /// Runs one event against `overlay` on a healthy instance (recreated
    /// after a trap).
    fn run_one(
        &mut self,
        event: &bindings::Event,
        overlay: Overlay,
    ) -> Result<(Result<(), RunError>, Overlay), Flow> {
        if self.instance.is_poisoned() && !self.recreate_instance() {
            return Err(Flow::Halt);
        }
        let base = match self.store.reader() {
            Ok(base) => base,
            Err(e) => return Err(self.storage_failed(e)),
        };
        let started = Instant::now();
        let outcome = self
            .instance
            .handle(std::slice::from_ref(event), base, overlay);
        self.projection.metrics.handled(started.elapsed());
        match outcome {
            // The state file failed under the module: not the module's fault.
            (Err(RunError::Storage(e)), _) => Err(self.storage_failed(e)),
            // Stopping mid-call: no verdict on the event, nothing recorded.
            (Err(RunError::Interrupted), _) => Err(Flow::Continue),
            outcome => Ok(outcome),
        }
    }

    /// Runs dead-lettered and parked events again, oldest first, on the
    /// current module version (`parked_only`: the parked ones a new version
    /// takes over). An event that applies is removed from the records; one
    /// that fails again stays, with the new error, and so do the later
    /// parked events of its key.
    fn retry(&mut self, parked_only: bool) -> Result<RetryReport, Flow> {
        tracing::info!(parked_only, "retrying failed events");
        let mut report = RetryReport::default();
        let mut blocked_keys = std::collections::HashSet::new();
        let mut after = None;
        loop {
            let page = self
                .store
                .reader()
                .and_then(|reader| reader.failures(None, after, PAGE));
            let page: Vec<FailedEvent> = match page {
                Ok(page) => page,
                Err(e) => return Err(self.storage_failed(e)),
            };
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            let mut overlay = Overlay::default();
            let mut changes = FailureChanges::default();
            for record in &page {
                let wanted = match record.kind {
                    FailureKind::Parked => true,
                    FailureKind::DeadLetter => !parked_only,
                    FailureKind::Skipped => false,
                };
                if !wanted {
                    continue;
                }
                let blocked = record.kind == FailureKind::Parked
                    && record.key.as_ref().is_some_and(|k| {
                        blocked_keys.contains(&(record.source.clone(), k.clone()))
                    });
                if blocked {
                    report.still_parked += 1;
                    if record.module_hash != self.projection.module.hash {
                        // Waiting behind its key under this version now: a
                        // restart need not run its key again.
                        let mut waiting = record.clone();
                        waiting.module_hash.clone_from(&self.projection.module.hash);
                        waiting
                            .module_version
                            .clone_from(&self.projection.module.descriptor.version);
                        changes.upsert.push(waiting);
                    }
                    continue;
                }
                if self.projection.stop_requested() {
                    return Err(Flow::Continue);
                }
                report.retried += 1;
                let event = to_wit_event(record.event());
                let (result, after_event) = self.run_one(&event, overlay.clone())?;
                match result {
                    Ok(()) => {
                        overlay = after_event;
                        changes.resolved.push(record.id);
                        report.applied += 1;
                    }
                    Err(err) => {
                        self.projection.metrics.error(ErrorKind::of(&err));
                        report.failed += 1;
                        if let (FailureKind::Parked, Some(key)) = (record.kind, &record.key) {
                            blocked_keys.insert((record.source.clone(), key.clone()));
                        }
                        let error = describe_failure(err, 1);
                        changes
                            .upsert
                            .push(failed_again(record, error, &self.projection.module));
                    }
                }
            }
            if !changes.is_empty() {
                // Positions do not move: these events were passed over before.
                let positions = self.positions.clone();
                match self.commit(&overlay, positions, (0, 1), &changes) {
                    Flow::Continue => {}
                    other => return Err(other),
                }
            }
        }
        let book = self
            .store
            .reader()
            .and_then(|reader| FailureBook::load(&reader, &self.projection.module.hash));
        self.failures = match book {
            Ok(book) => book,
            Err(e) => return Err(self.storage_failed(e)),
        };
        self.keep_resume_skip();
        tracing::info!(
            retried = report.retried,
            applied = report.applied,
            failed = report.failed,
            still_parked = report.still_parked,
            "failed events retried"
        );
        Ok(report)
    }

    fn recreate_instance(&mut self) -> bool {
        match self
            .projection
            .module
            .instantiate_with(&self.label, &self.config.limits)
        {
            Ok(mut instance) => {
                instance.interrupt_on(self.projection.stop_flag());
                self.instance = instance;
                true
            }
            Err(e) => {
                self.projection.metrics.error(ErrorKind::Instantiate);
                self.halt(
                    None,
                    format!("could not recreate the instance after a trap: {e}"),
                );
                false
            }
        }
    }

    /// A commit of `count` events in `batches` batches reached `positions`.
    fn committed(
        &mut self,
        positions: Offsets,
        (count, batches): (u64, u64),
        durable: bool,
        took: Duration,
    ) {
        self.projection.metrics.committed(took, count, batches);
        self.positions = positions;
        self.events_applied += count;
        if durable {
            self.mark_durable();
        } else {
            self.dirty = true;
        }
    }

    fn commit(
        &mut self,
        overlay: &Overlay,
        positions: Offsets,
        (count, batches): (u64, u64),
        failures: &FailureChanges,
    ) -> Flow {
        let durable = self.last_durable.elapsed() >= self.config.sync_interval;
        let events_applied = self.events_applied + count;
        let started = Instant::now();
        let result = self.store.commit_with_failures(
            overlay,
            CommitPositions {
                offsets: &positions,
                events_applied,
            },
            failures,
            durable,
        );
        match result {
            Ok(()) => {
                self.committed(positions, (count, batches), durable, started.elapsed());
                Flow::Continue
            }
            Err(e) => self.storage_failed(e),
        }
    }

    /// A read or commit failed. A device failure (disk full) pauses the
    /// projection until the file can be written again; anything else halts.
    fn storage_failed(&mut self, error: StoreError) -> Flow {
        self.projection.metrics.error(ErrorKind::Storage);
        if error.needs_reopen() {
            self.recover_storage(error)
        } else {
            self.halt(None, format!("state storage failed: {error}"))
        }
    }

    /// Pauses until the state file can be reopened and written, then goes
    /// on from what it durably holds: the reopen rolls state and offsets
    /// back together to the last durable commit, and the source is read
    /// again from there, so nothing is lost or applied twice.
    fn recover_storage(&mut self, error: StoreError) -> Flow {
        // A commit still in flight ends first; whatever it did is rolled
        // back or kept by the reopen below like any other non-durable commit.
        if let Some(in_flight) = self.in_flight.take() {
            let _ = in_flight.result.recv();
        }
        let reason = if error.is_disk_full() {
            format!("disk full: {error}; the projection resumes by itself once space is freed")
        } else {
            format!(
                "state file write failed: {error}; the projection retries until the file can be written"
            )
        };
        tracing::error!("projection paused: {reason}");
        self.projection.set_status(Status::Paused {
            reason,
            since: unix_now(),
        });
        loop {
            if self.wait_or_stop(STORAGE_RETRY) {
                return Flow::Halt;
            }
            let attempt = self.store.reopen().and_then(|()| self.store.sync());
            match attempt {
                Ok(()) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "state file not writable yet")
                }
            }
        }
        let resumed = self.store.reader().and_then(|reader| {
            Ok((
                reader.offsets()?,
                reader.events_applied()?,
                FailureBook::load(&reader, &self.projection.module.hash)?,
            ))
        });
        let (positions, events_applied, failures) = match resumed {
            Ok(resumed) => resumed,
            Err(e) => {
                return self.halt(None, format!("state file unreadable after reopening: {e}"));
            }
        };
        let subscription = match self.projection.source.subscribe(
            self.projection.name(),
            &self.projection.topics,
            self.projection.partitions,
            &positions,
        ) {
            Ok(subscription) => subscription,
            Err(e) => return self.halt(None, format!("cannot reopen the source: {e}")),
        };
        self.subscription = subscription;
        self.positions = positions;
        self.events_applied = events_applied;
        self.failures = failures;
        self.keep_resume_skip();
        // Applied on top of what the reopen rolled back: read again.
        self.pending = Pending::default();
        self.dirty = false;
        self.last_durable = Instant::now();
        if !self.recreate_instance() {
            return Flow::Halt;
        }
        tracing::info!(
            events_applied,
            "state file writable again; projection resumed"
        );
        self.projection.set_status(Status::Running);
        Flow::Rewound
    }

    /// Sleeps `wait` unless a stop is requested first; true when stopping.
    fn wait_or_stop(&self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if self.projection.stop_requested() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.projection.stop_requested()
    }

    fn halt(&mut self, event: Option<&bindings::Event>, message: String) -> Flow {
        match event {
            Some(e) => tracing::error!(
                source = %e.source,
                partition = e.partition,
                offset = e.offset,
                "projection halted: {message}"
            ),
            None => tracing::error!("projection halted: {message}"),
        }
        self.projection.set_status(failed(event, message.clone()));
        // The worker ends here, whichever path reported the halt.
        self.projection.request_stop();
        let at = event.map_or(String::new(), |e| {
            format!(" at {}/{}@{}", e.source, e.partition, e.offset)
        });
        self.projection.notify(WorkerEvent::Halted {
            name: self.projection.name().to_owned(),
            hash: self.projection.module.hash.clone(),
            instance: self.projection.instance,
            message: format!("{message}{at}"),
        });
        Flow::Halt
    }
}

fn advance(positions: &mut Offsets, events: &[bindings::Event]) {
    for event in events {
        positions.set(&event.source, event.partition, event.offset + 1);
    }
}
