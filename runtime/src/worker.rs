//! The projection worker: read a batch from the source, run it through the
//! module against a write overlay, commit overlay and offsets in one
//! transaction. One OS thread per projection, so a slow module never blocks
//! the async runtime or another projection.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::event::Offsets;
use crate::projection::{ProjectionRuntime, Status, unix_now};
use crate::source::Source;
use crate::store::{CommitPositions, Overlay};
use crate::wasm::{Instance, RunError, bindings, to_wit_event};

/// How long an idle worker sleeps before it re-checks for a stop request.
const IDLE_WAIT: Duration = Duration::from_millis(500);
/// Back-off after a source read error.
const SOURCE_RETRY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Most events handed to the module in one call (and one commit).
    pub batch_max_events: usize,
    /// How long to wait for more events when a batch is not full.
    pub batch_linger: Duration,
    /// Longest time between durable commits. Commits in between are
    /// non-durable: a crash rolls state and offsets back together.
    pub sync_interval: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            batch_max_events: 1000,
            batch_linger: Duration::ZERO,
            sync_interval: Duration::from_millis(1000),
        }
    }
}

pub fn spawn(
    projection: Arc<ProjectionRuntime>,
    source: Arc<dyn Source>,
    config: WorkerConfig,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("worker-{}", projection.name()))
        .spawn(move || {
            let label = projection.label();
            let mut worker = match Worker::new(&projection, source.as_ref(), &config) {
                Ok(worker) => worker,
                Err(message) => {
                    tracing::error!(projection = %label, "{message}");
                    projection.set_status(failed(None, message));
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
    source: &'a dyn Source,
    config: &'a WorkerConfig,
    label: String,
    instance: Instance,
    positions: Offsets,
    events_applied: u64,
    last_durable: Instant,
    dirty: bool,
    rotate: usize,
}

/// Whether the worker goes on after a batch.
enum Flow {
    Continue,
    Halt,
}

impl<'a> Worker<'a> {
    fn new(
        projection: &'a ProjectionRuntime,
        source: &'a dyn Source,
        config: &'a WorkerConfig,
    ) -> Result<Self, String> {
        let label = projection.label();
        let instance = projection
            .module
            .instantiate(&label)
            .map_err(|e| e.to_string())?;
        let reader = projection.store.reader().map_err(|e| e.to_string())?;
        Ok(Self {
            positions: reader.offsets().map_err(|e| e.to_string())?,
            events_applied: reader.events_applied().map_err(|e| e.to_string())?,
            projection,
            source,
            config,
            label,
            instance,
            last_durable: Instant::now(),
            dirty: false,
            rotate: 0,
        })
    }

    fn run(&mut self) {
        let topics = self.projection.module.descriptor.sources.clone();
        let mut raw = Vec::with_capacity(self.config.batch_max_events);
        while !self.projection.stop_requested() {
            let seen = self.source.change_seq();
            raw.clear();
            if let Err(e) = self.read(&topics, &mut raw) {
                tracing::warn!(projection = %self.label, error = %e, "reading the source failed; retrying");
                self.source.wait_for_change(seen, SOURCE_RETRY);
                continue;
            }
            if raw.is_empty() {
                self.idle(seen);
                continue;
            }
            if raw.len() < self.config.batch_max_events && !self.config.batch_linger.is_zero() {
                self.source.wait_for_change(seen, self.config.batch_linger);
                raw.clear();
                if self.read(&topics, &mut raw).is_err() {
                    continue;
                }
            }
            let events: Vec<bindings::Event> = raw.drain(..).map(to_wit_event).collect();
            if let Flow::Halt = self.apply(&events) {
                return;
            }
        }
    }

    fn read(
        &mut self,
        topics: &[String],
        out: &mut Vec<crate::event::Event>,
    ) -> Result<(), crate::source::LogError> {
        self.rotate = self.rotate.wrapping_add(1);
        self.source.read_batch(
            topics,
            &self.positions,
            self.config.batch_max_events,
            self.rotate,
            out,
        )
    }

    /// Nothing to read: make pending commits durable when due, then sleep
    /// until an append wakes us.
    fn idle(&mut self, seen: u64) {
        let since_durable = self.last_durable.elapsed();
        if self.dirty && since_durable >= self.config.sync_interval {
            match self.projection.store.sync() {
                Ok(()) => {
                    self.dirty = false;
                    self.last_durable = Instant::now();
                }
                Err(e) => tracing::error!(projection = %self.label, error = %e, "sync failed"),
            }
        }
        let wait = if self.dirty {
            self.config.sync_interval.saturating_sub(since_durable)
        } else {
            IDLE_WAIT
        };
        self.source
            .wait_for_change(seen, wait.max(Duration::from_millis(1)));
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
                    self.last_durable = Instant::now();
                    self.dirty = false;
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
        self.projection.set_status(failed(event, message));
        Flow::Halt
    }
}

fn advance(positions: &mut Offsets, events: &[bindings::Event]) {
    for event in events {
        positions.set(&event.source, event.partition, event.offset + 1);
    }
}
