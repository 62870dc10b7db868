//! The projection worker: read a batch from the source, run it through the
//! module against a write overlay, commit overlay and offsets in one
//! transaction. One OS thread per projection, so a slow module never blocks
//! the async runtime or another projection.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::event::Offsets;
use crate::projection::{ProjectionRuntime, Status, WorkerEvent, unix_now};
use crate::source::{SourceError, Subscription};
use crate::store::{CommitPositions, Overlay};
use crate::wasm::{Instance, RunError, bindings, to_wit_event};

/// How long an idle worker sleeps before it re-checks for a stop request.
const IDLE_WAIT: Duration = Duration::from_millis(500);
/// Back-off after a source read error.
const SOURCE_RETRY: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Most events handed to the module in one call (and one commit).
    pub batch_max_events: usize,
    /// How long to wait for more events when a batch is not full.
    pub batch_linger: Duration,
    /// Longest time between durable commits. Commits in between are
    /// non-durable: a crash rolls state and offsets back together.
    pub sync_interval: Duration,
    /// Periodic snapshots of the state; `None` takes none.
    pub snapshots: Option<SnapshotPolicy>,
    /// How long the state files of removed or replaced versions are kept.
    pub state_retention: Duration,
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
            sync_interval: Duration::from_millis(1000),
            snapshots: None,
            state_retention: Duration::from_secs(7 * 24 * 3600),
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
            let label = projection.label();
            let mut worker = match Worker::new(&projection, &config) {
                Ok(worker) => worker,
                Err(message) => {
                    tracing::error!(projection = %label, "{message}");
                    projection.set_status(failed(None, message.clone()));
                    projection.notify(WorkerEvent::Halted {
                        name: projection.name().to_owned(),
                        hash: projection.module.hash.clone(),
                        instance: projection.instance,
                        message,
                    });
                    return;
                }
            };
            projection.set_status(Status::Running);
            tracing::info!(projection = %label, "projection running");
            worker.run();
            if let Err(e) = projection.store.sync() {
                tracing::error!(projection = %label, error = %e, "final sync failed");
            }
            if projection.status() == Status::Running {
                projection.set_status(Status::Stopped);
            }
        })
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
}

/// Whether the worker goes on after a batch.
enum Flow {
    Continue,
    Halt,
}

impl<'a> Worker<'a> {
    fn new(projection: &'a ProjectionRuntime, config: &'a WorkerConfig) -> Result<Self, String> {
        let label = projection.label();
        let instance = projection
            .module
            .instantiate(&label)
            .map_err(|e| e.to_string())?;
        let reader = projection.store.reader().map_err(|e| e.to_string())?;
        let positions = reader.offsets().map_err(|e| e.to_string())?;
        let subscription = projection
            .source
            .subscribe(projection.name(), &projection.topics, &positions)
            .map_err(|e| format!("cannot open the source: {e}"))?;
        projection.set_source_status(subscription.status());
        let events_applied = reader.events_applied().map_err(|e| e.to_string())?;
        Ok(Self {
            positions,
            events_applied,
            projection,
            subscription,
            config,
            label,
            instance,
            last_durable: Instant::now(),
            dirty: false,
            reported_caught_up: false,
            last_snapshot: (events_applied, Instant::now()),
            snapshot_running: Arc::default(),
        })
    }

    fn run(&mut self) {
        let max = self.config.batch_max_events;
        let mut raw = Vec::with_capacity(max);
        while !self.projection.stop_requested() {
            raw.clear();
            let wait = self.idle_wait();
            let polled = self.poll(max, wait, &mut raw);
            if polled.is_ok()
                && !raw.is_empty()
                && raw.len() < max
                && !self.config.batch_linger.is_zero()
            {
                let _ = self.poll(max - raw.len(), self.config.batch_linger, &mut raw);
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
                if self.subscription.at_head() {
                    self.report_caught_up();
                }
                self.sync_if_due();
                continue;
            }
            let events: Vec<bindings::Event> = raw.drain(..).map(to_wit_event).collect();
            if let Flow::Halt = self.apply(&events) {
                return;
            }
        }
    }

    /// Nothing left to read: a shadow build has reached the live head. Its
    /// progress is made durable first so the swap hands over synced state.
    fn report_caught_up(&mut self) {
        if self.reported_caught_up || !self.projection.is_building() {
            return;
        }
        if self.dirty {
            match self.projection.store.sync() {
                Ok(()) => self.mark_durable(),
                Err(e) => {
                    tracing::error!(projection = %self.label, error = %e, "sync failed");
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
            tracing::warn!(projection = %self.label, error = %e, "reading the source failed; retrying");
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
            match self.projection.store.sync() {
                Ok(()) => self.mark_durable(),
                Err(e) => tracing::error!(projection = %self.label, error = %e, "sync failed"),
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
        let reader = match self.projection.store.reader() {
            Ok(reader) => reader,
            Err(e) => {
                tracing::warn!(projection = %self.label, error = %e, "snapshot skipped");
                self.snapshot_running
                    .store(false, std::sync::atomic::Ordering::Release);
                return;
            }
        };
        let policy = policy.clone();
        let running = self.snapshot_running.clone();
        let label = self.label.clone();
        let module = &self.projection.module;
        let (name, hash, state_version) = (
            module.descriptor.name.clone(),
            module.hash.clone(),
            module.descriptor.state_version,
        );
        let spawned = std::thread::Builder::new()
            .name(format!("snapshot-{name}"))
            .spawn(move || {
                let version = crate::snapshot::ProjectionVersion {
                    name: &name,
                    hash: &hash,
                    state_version,
                };
                match crate::snapshot::write(&policy.dir, version, &reader, policy.keep) {
                    Ok(info) => tracing::info!(
                        projection = %label,
                        file = %info.path.display(),
                        bytes = info.size_bytes,
                        events = info.meta.events_applied,
                        "snapshot written"
                    ),
                    Err(e) => tracing::warn!(projection = %label, "snapshot failed: {e}"),
                }
                running.store(false, std::sync::atomic::Ordering::Release);
            });
        if spawned.is_err() {
            self.snapshot_running
                .store(false, std::sync::atomic::Ordering::Release);
        }
    }

    fn apply(&mut self, events: &[bindings::Event]) -> Flow {
        let base = match self.projection.store.reader() {
            Ok(base) => base,
            Err(e) => return self.halt(None, e.to_string()),
        };
        let (result, overlay) = self.instance.handle(events, base, Overlay::default());
        match result {
            Ok(()) => {
                let mut positions = self.positions.clone();
                advance(&mut positions, events);
                self.commit(&overlay, positions, events.len() as u64)
            }
            Err(err) => {
                tracing::debug!(projection = %self.label, error = %err, "batch failed; re-running it event by event");
                self.find_failure(events)
            }
        }
    }

    /// Re-runs a failed batch one event at a time (replay is deterministic),
    /// commits the events before the failing one, and applies the error
    /// policy (`halt`) to that event.
    fn find_failure(&mut self, events: &[bindings::Event]) -> Flow {
        let mut overlay = Overlay::default();
        let mut positions = self.positions.clone();
        for (i, event) in events.iter().enumerate() {
            if self.instance.is_poisoned() && !self.recreate_instance() {
                return Flow::Halt;
            }
            let base = match self.projection.store.reader() {
                Ok(base) => base,
                Err(e) => return self.halt(None, e.to_string()),
            };
            let before = overlay.clone();
            let (result, after) = self
                .instance
                .handle(std::slice::from_ref(event), base, overlay);
            match result {
                Ok(()) => {
                    overlay = after;
                    advance(&mut positions, std::slice::from_ref(event));
                }
                Err(err) => {
                    if let Flow::Halt = self.commit(&before, positions, i as u64) {
                        return Flow::Halt;
                    }
                    let message = match err {
                        RunError::Rejected { message, .. } => message,
                        other => other.to_string(),
                    };
                    return self.halt(Some(event), message);
                }
            }
        }
        // Every event passed on its own: the batch as a whole hit a limit
        // (e.g. the time budget). Keep the progress and go on.
        tracing::warn!(projection = %self.label, "batch failed as a whole but each event passed alone");
        self.commit(&overlay, positions, events.len() as u64)
    }

    fn recreate_instance(&mut self) -> bool {
        match self.projection.module.instantiate(&self.label) {
            Ok(instance) => {
                self.instance = instance;
                true
            }
            Err(e) => {
                self.halt(
                    None,
                    format!("could not recreate the instance after a trap: {e}"),
                );
                false
            }
        }
    }

    fn commit(&mut self, overlay: &Overlay, positions: Offsets, count: u64) -> Flow {
        let durable = self.last_durable.elapsed() >= self.config.sync_interval;
        let events_applied = self.events_applied + count;
        let result = self.projection.store.commit(
            overlay,
            CommitPositions {
                offsets: &positions,
                events_applied,
            },
            durable,
        );
        match result {
            Ok(()) => {
                self.positions = positions;
                self.events_applied = events_applied;
                if durable {
                    self.mark_durable();
                } else {
                    self.dirty = true;
                }
                Flow::Continue
            }
            Err(e) => self.halt(None, format!("commit failed: {e}")),
        }
    }

    fn halt(&mut self, event: Option<&bindings::Event>, message: String) -> Flow {
        match event {
            Some(e) => tracing::error!(
                projection = %self.label,
                source = %e.source,
                partition = e.partition,
                offset = e.offset,
                "projection halted: {message}"
            ),
            None => tracing::error!(projection = %self.label, "projection halted: {message}"),
        }
        self.projection.set_status(failed(event, message.clone()));
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
