//! Prometheus metrics, served at `GET /metrics` in the text exposition
//! format (0.0.4). `docs/metrics.md` lists every metric; a test holds the
//! two together.
//!
//! Cost on the event path: a worker updates its [`ProjectionMetrics`]
//! (atomics, no lock) once per batch. Everything that can be read from the
//! state file or the source (lag, offsets, state size, failure records,
//! status, shadow-build progress) is read at scrape time instead.

mod histogram;
mod http;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder};
use prometheus_client::metrics::MetricType;

pub use histogram::{DURATION_BUCKETS, DurationHistogram};
pub use http::{HttpMetrics, track_http};

use crate::cluster::Ownership;
use crate::projection::{PartitionProgress, ProjectionInfo, SharedProjection, Status};
use crate::registry::Registry;
use crate::source::SourceHealth;
use crate::wasm::RunError;

/// `Content-Type` of a scrape's answer.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Why an event (or a call) failed, as `projector_errors_total{kind}` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The module returned an error for the event.
    Rejected,
    /// The module trapped (a panic, an unreachable, a bad pointer).
    Trap,
    /// `limits.call_timeout_ms` ran out.
    TimeLimit,
    /// `limits.max_memory_bytes` refused a memory growth.
    MemoryLimit,
    /// The call stack overflowed.
    StackLimit,
    /// A state key or value over `limits.max_key_bytes` / `max_value_bytes`.
    StateLimit,
    /// A new instance could not be created.
    Instantiate,
    /// The state file could not be read or written (not the module's fault).
    Storage,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 8] = [
        ErrorKind::Rejected,
        ErrorKind::Trap,
        ErrorKind::TimeLimit,
        ErrorKind::MemoryLimit,
        ErrorKind::StackLimit,
        ErrorKind::StateLimit,
        ErrorKind::Instantiate,
        ErrorKind::Storage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Rejected => "rejected",
            ErrorKind::Trap => "trap",
            ErrorKind::TimeLimit => "time_limit",
            ErrorKind::MemoryLimit => "memory_limit",
            ErrorKind::StackLimit => "stack_limit",
            ErrorKind::StateLimit => "state_limit",
            ErrorKind::Instantiate => "instantiate",
            ErrorKind::Storage => "storage",
        }
    }

    /// The kind of a module call's failure. Traps carry their cause only in
    /// their message, whose wording `wasm::Instance::trap` and the host's
    /// limit checks fix.
    pub fn of(error: &RunError) -> Self {
        match error {
            RunError::Rejected { .. } => ErrorKind::Rejected,
            RunError::Instantiate(_) => ErrorKind::Instantiate,
            RunError::Storage(_) => ErrorKind::Storage,
            // Not counted: the worker stops without a verdict on the event.
            RunError::Interrupted => ErrorKind::Trap,
            RunError::Trap(reason) => {
                if reason.starts_with("time budget exceeded") {
                    ErrorKind::TimeLimit
                } else if reason.starts_with("memory limit exceeded") {
                    ErrorKind::MemoryLimit
                } else if reason.starts_with("call stack exhausted") {
                    ErrorKind::StackLimit
                } else if reason.contains("(limits.max_key_bytes)")
                    || reason.contains("(limits.max_value_bytes)")
                {
                    ErrorKind::StateLimit
                } else {
                    ErrorKind::Trap
                }
            }
        }
    }
}

/// What one projection version's worker counts. Updated once per batch.
#[derive(Debug)]
pub struct ProjectionMetrics {
    events_applied: AtomicU64,
    batches: AtomicU64,
    handler: DurationHistogram,
    commit: DurationHistogram,
    errors: [AtomicU64; ErrorKind::ALL.len()],
    events_read: AtomicU64,
    bytes_read: AtomicU64,
    /// When the worker last showed progress (a commit, or a read that found
    /// nothing new), in milliseconds since `epoch`.
    progress_ms: AtomicU64,
    epoch: Instant,
    /// Whether the stall monitor last saw this version stalled.
    stalled: AtomicBool,
}

impl Default for ProjectionMetrics {
    fn default() -> Self {
        Self {
            events_applied: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            handler: DurationHistogram::default(),
            commit: DurationHistogram::default(),
            errors: Default::default(),
            events_read: AtomicU64::new(0),
            bytes_read: AtomicU64::new(0),
            progress_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            stalled: AtomicBool::new(false),
        }
    }
}

impl ProjectionMetrics {
    /// A batch of `events` read from the source, `bytes` of keys and payloads.
    pub fn read(&self, events: usize, bytes: u64) {
        self.events_read.fetch_add(events as u64, Ordering::Relaxed);
        self.bytes_read.fetch_add(bytes, Ordering::Relaxed);
    }

    /// One module call (`handle`) took `took`.
    pub fn handled(&self, took: Duration) {
        self.handler.observe(took);
    }

    /// One state commit took `took` and passed `events` events in
    /// `batches` batches (successive batches may commit together).
    pub fn committed(&self, took: Duration, events: u64, batches: u64) {
        self.commit.observe(took);
        if events > 0 {
            self.batches.fetch_add(batches.max(1), Ordering::Relaxed);
            self.events_applied.fetch_add(events, Ordering::Relaxed);
        }
        self.progressed();
    }

    pub fn error(&self, kind: ErrorKind) {
        let index = ErrorKind::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or_default();
        self.errors[index].fetch_add(1, Ordering::Relaxed);
    }

    /// The worker applied something, or found nothing left to apply.
    pub fn progressed(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.progress_ms.store(now, Ordering::Relaxed);
    }

    /// Time since the worker last showed progress.
    pub fn since_progress(&self) -> Duration {
        self.epoch.elapsed().saturating_sub(Duration::from_millis(
            self.progress_ms.load(Ordering::Relaxed),
        ))
    }

    pub fn events_applied(&self) -> u64 {
        self.events_applied.load(Ordering::Relaxed)
    }

    /// The metrics of a partitioned version: its units' added up (progress:
    /// the unit that showed none for longest, as in status).
    pub fn summed<'a>(units: impl IntoIterator<Item = &'a ProjectionMetrics>) -> Self {
        let sum = ProjectionMetrics::default();
        let mut since = None::<Duration>;
        for unit in units {
            let add = |mine: &AtomicU64, theirs: &AtomicU64| {
                mine.fetch_add(theirs.load(Ordering::Relaxed), Ordering::Relaxed);
            };
            add(&sum.events_applied, &unit.events_applied);
            add(&sum.batches, &unit.batches);
            add(&sum.events_read, &unit.events_read);
            add(&sum.bytes_read, &unit.bytes_read);
            for (mine, theirs) in sum.errors.iter().zip(&unit.errors) {
                add(mine, theirs);
            }
            sum.handler.add(&unit.handler);
            sum.commit.add(&unit.commit);
            let unit_since = unit.since_progress();
            since = Some(since.map_or(unit_since, |s| s.max(unit_since)));
        }
        let since = since.unwrap_or_default();
        let epoch = Instant::now().checked_sub(since).unwrap_or(sum.epoch);
        Self { epoch, ..sum }
    }

    /// Records whether the version is stalled; returns the previous value.
    pub fn swap_stalled(&self, stalled: bool) -> bool {
        self.stalled.swap(stalled, Ordering::Relaxed)
    }
}

/// Everything `/metrics` serves: HTTP metrics and, read at scrape time, the
/// projections of `registry`.
#[derive(Debug)]
pub struct Metrics {
    registry: prometheus_client::registry::Registry,
    http: Arc<HttpMetrics>,
}

impl Metrics {
    /// `cluster`: this instance's slots, when it is in a group.
    pub fn new(projections: Arc<Registry>, cluster: Option<Arc<Ownership>>) -> Self {
        let http = Arc::new(HttpMetrics::default());
        let mut registry = prometheus_client::registry::Registry::default();
        http.register(&mut registry);
        registry.register_collector(Box::new(ProjectionCollector {
            projections,
            cluster,
        }));
        Self { registry, http }
    }

    pub fn http(&self) -> Arc<HttpMetrics> {
        self.http.clone()
    }

    /// The text exposition of every metric (blocking: reads state files).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

struct ProjectionCollector {
    projections: Arc<Registry>,
    cluster: Option<Arc<Ownership>>,
}

impl std::fmt::Debug for ProjectionCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectionCollector")
            .finish_non_exhaustive()
    }
}

/// One projection version as a scrape sees it.
struct Sample {
    projection: SharedProjection,
    /// A partitioned version's units' metrics, added up.
    summed: Option<ProjectionMetrics>,
    info: ProjectionInfo,
    role: &'static str,
    state_bytes: u64,
    stalled: bool,
}

impl Sample {
    fn labels(&self) -> Labels {
        // A replay rebuilds the serving hash in the shadow: only the role
        // tells the two apart.
        vec![
            ("projection", self.info.name.clone()),
            ("version", self.projection.module.short_hash().to_owned()),
            ("role", self.role.to_owned()),
        ]
    }

    fn labels_with(&self, extra: &[(&'static str, &str)]) -> Labels {
        let mut labels = self.labels();
        labels.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        labels
    }

    fn metrics(&self) -> &ProjectionMetrics {
        self.summed.as_ref().unwrap_or(&self.projection.metrics)
    }

    /// One series per source partition, labelled with topic and partition.
    fn per_partition(
        &self,
        value: fn(&PartitionProgress) -> u64,
    ) -> impl Iterator<Item = (Labels, u64)> + '_ {
        self.info.partitions.iter().map(move |p| {
            let partition = p.partition.to_string();
            let labels = self.labels_with(&[
                ("topic", p.source.as_str()),
                ("partition", partition.as_str()),
            ]);
            (labels, value(p))
        })
    }

    fn source_labels(&self) -> Labels {
        self.labels_with(&[("source", self.info.source.kind)])
    }
}

const STATES: [&str; 8] = [
    "starting",
    "running",
    "failed",
    "stopped",
    "paused",
    "removed",
    "elsewhere",
    "standby",
];
const SOURCE_STATES: [&str; 3] = ["ok", "unavailable", "waiting_for_topics"];

type Labels = Vec<(&'static str, String)>;

/// Sum in seconds, count, and per-bucket counts of a histogram.
type HistogramRead = (f64, u64, Vec<(f64, u64)>);

fn gauge<V: prometheus_client::encoding::EncodeGaugeValue>(
    encoder: &mut MetricEncoder<'_>,
    labels: Labels,
    value: V,
) -> Result<(), std::fmt::Error> {
    encoder.encode_family(&labels)?.encode_gauge(&value)
}

fn counter(
    encoder: &mut MetricEncoder<'_>,
    labels: Labels,
    value: u64,
) -> Result<(), std::fmt::Error> {
    encoder
        .encode_family(&labels)?
        .encode_counter::<prometheus_client::encoding::NoLabelSet, _, f64>(&value, None)
}

/// One gauge family: its descriptor, then one series per (labels, value).
fn gauges<V: prometheus_client::encoding::EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Labels, V)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in series {
        gauge(&mut family, labels, value)?;
    }
    Ok(())
}

/// One counter family: its descriptor, then one series per (labels, value).
fn counters(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Labels, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in series {
        counter(&mut family, labels, value)?;
    }
    Ok(())
}

impl Collector for ProjectionCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut samples = Vec::new();
        for (serving, building) in self.projections.versions() {
            let versions = [
                Some((serving, "serving")),
                building.map(|b| (b, "building")),
            ];
            for (projection, role) in versions.into_iter().flatten() {
                // A state file that cannot be read now shows in status; the
                // scrape goes on without it.
                let Ok(info) = projection.info() else {
                    continue;
                };
                let state_bytes = projection
                    .stores()
                    .iter()
                    .map(|store| std::fs::metadata(store.path()).map_or(0, |m| m.len()))
                    .sum();
                let stalled = info.stalled;
                let summed = projection.is_partitioned().then(|| {
                    ProjectionMetrics::summed(projection.units().iter().map(|u| &u.metrics))
                });
                samples.push(Sample {
                    summed,
                    projection,
                    info,
                    role,
                    state_bytes,
                    stalled,
                });
            }
        }

        let mut family = encoder.encode_descriptor(
            "projector_projection",
            "A projection version: its module version label, full hash, error policy and source kind; always 1",
            None,
            MetricType::Info,
        )?;
        for s in &samples {
            let policy = s.info.error_policy.as_str();
            let labels = s.labels_with(&[
                ("hash", s.info.hash.as_str()),
                ("module_version", s.info.version.as_str()),
                ("error_policy", policy),
                ("source", s.info.source.kind),
            ]);
            family.encode_info(&labels)?;
        }

        let mut family = encoder.encode_descriptor(
            "projector_projection_status",
            "1 for the projection version's current state, 0 for the others",
            None,
            MetricType::Gauge,
        )?;
        for s in &samples {
            let current = s.info.status.label();
            for state in STATES {
                gauge(
                    &mut family,
                    s.labels_with(&[("state", state)]),
                    i64::from(current == state),
                )?;
            }
        }

        // What this instance folds, in units: one per unit of a partitioned
        // projection, one per global projection (serving versions only; in
        // a group, those whose slot it holds).
        let active: usize = samples
            .iter()
            .filter(|s| s.role == "serving" && !matches!(s.info.status, Status::Removed { .. }))
            .map(|s| {
                if s.projection.is_partitioned() {
                    s.projection.units_here().len()
                } else {
                    usize::from(s.projection.is_here())
                }
            })
            .sum();
        // Outside a group both stay 0.
        let cluster = self.cluster.as_deref();
        counters(
            &mut encoder,
            "projector_rebalances",
            "Changes of this instance's slots in its group (assignments, revokes, losses)",
            [(Vec::new(), cluster.map_or(0, Ownership::rebalances))],
        )?;
        gauges(
            &mut encoder,
            "projector_cluster_slots_held",
            "Slots of its group this instance holds (and may act on) now",
            [(Vec::new(), cluster.map_or(0, |o| o.held().len() as i64))],
        )?;
        // Standby copies, and how far each projection's lag behind the
        // source (its active owner is at most that far ahead of it).
        let standby_lag: Vec<(Labels, u64, usize)> = samples
            .iter()
            .filter(|s| s.role == "serving")
            .map(|s| {
                let standbys: Vec<u64> = if s.info.units.is_empty() {
                    (matches!(s.info.status, Status::Standby))
                        .then_some(s.info.lag)
                        .into_iter()
                        .collect()
                } else {
                    s.info
                        .units
                        .iter()
                        .filter(|u| matches!(u.status, Status::Standby))
                        .map(|u| u.lag)
                        .collect()
                };
                (s.labels(), standbys.iter().sum(), standbys.len())
            })
            .collect();
        gauges(
            &mut encoder,
            "projector_units_owned",
            "Units this instance folds, by role: active (a unit of a partitioned projection, or a global projection); standby (warm copies kept for standby_replicas; none without a group)",
            [
                (vec![("role", "active".to_owned())], active as i64),
                (
                    vec![("role", "standby".to_owned())],
                    standby_lag.iter().map(|(_, _, n)| *n as i64).sum(),
                ),
            ],
        )?;
        gauges(
            &mut encoder,
            "projector_standby_lag_events",
            "Events of its source partitions the standby copies of a projection kept here have not applied yet (0 without standbys here)",
            standby_lag
                .iter()
                .map(|(labels, lag, _)| (labels.clone(), *lag)),
        )?;
        let mut family = encoder.encode_descriptor(
            "projector_handover_duration_seconds",
            "From a slot coming to this instance to a unit of it reaching the head of its partitions, by where the unit started: standby (its warm copy), snapshot (a newer snapshot restored), local_state (its own earlier file), replay (from the start)",
            None,
            MetricType::Histogram,
        )?;
        // Outside a group every series stays empty.
        let none = DurationHistogram::default();
        for from in crate::cluster::HandoverFrom::ALL {
            let histogram = cluster.map_or(&none, |ownership| ownership.handovers(from));
            let (sum, count, buckets) = histogram.read();
            family
                .encode_family(&vec![("from", from.label().to_owned())])?
                .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                    sum, count, &buckets, None,
                )?;
        }
        gauges(
            &mut encoder,
            "projector_projection_stalled",
            "1 while the projection version has lag but has applied nothing for stall_after_ms",
            samples.iter().map(|s| (s.labels(), i64::from(s.stalled))),
        )?;
        gauges(
            &mut encoder,
            "projector_projection_seconds_since_progress",
            "Seconds since the worker last applied a batch or found nothing new to read",
            samples
                .iter()
                .map(|s| (s.labels(), s.metrics().since_progress().as_secs_f64())),
        )?;
        counters(
            &mut encoder,
            "projector_events_applied",
            "Events this process applied (failed events the error policy passed over included)",
            samples
                .iter()
                .map(|s| (s.labels(), s.metrics().events_applied())),
        )?;
        counters(
            &mut encoder,
            "projector_batches",
            "Batches this process committed",
            samples
                .iter()
                .map(|s| (s.labels(), s.metrics().batches.load(Ordering::Relaxed))),
        )?;

        for (name, help, pick) in [
            (
                "projector_handler_duration_seconds",
                "Time of one module call: a batch, or one event when a failed batch is re-run event by event",
                (|m: &ProjectionMetrics| m.handler.read())
                    as fn(&ProjectionMetrics) -> HistogramRead,
            ),
            (
                "projector_commit_duration_seconds",
                "Time of one state commit (state changes, offsets and failure records in one transaction)",
                |m: &ProjectionMetrics| m.commit.read(),
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
            for s in &samples {
                let (sum, count, buckets) = pick(s.metrics());
                family
                    .encode_family(&s.labels())?
                    .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                        sum, count, &buckets, None,
                    )?;
            }
        }

        let mut family = encoder.encode_descriptor(
            "projector_errors",
            "Events (or calls) that failed, by kind: rejected, trap, time_limit, memory_limit, stack_limit, state_limit, instantiate, storage",
            None,
            MetricType::Counter,
        )?;
        for s in &samples {
            for (kind, count) in ErrorKind::ALL.iter().zip(&s.metrics().errors) {
                counter(
                    &mut family,
                    s.labels_with(&[("kind", kind.as_str())]),
                    count.load(Ordering::Relaxed),
                )?;
            }
        }

        let mut family = encoder.encode_descriptor(
            "projector_failure_records",
            "Failed events the error policy keeps in the state file, by kind: dead_letter, parked, skipped",
            None,
            MetricType::Gauge,
        )?;
        for s in &samples {
            let f = &s.info.failures;
            for (kind, count) in [
                ("dead_letter", f.dead_letters),
                ("parked", f.parked),
                ("skipped", f.skipped),
            ] {
                gauge(&mut family, s.labels_with(&[("kind", kind)]), count)?;
            }
        }

        gauges(
            &mut encoder,
            "projector_lag_events",
            "Events in the source partition the projection version has not applied yet",
            samples.iter().flat_map(|s| s.per_partition(|p| p.lag)),
        )?;
        gauges(
            &mut encoder,
            "projector_next_offset",
            "Next offset the projection version will apply, per source partition",
            samples.iter().flat_map(|s| s.per_partition(|p| p.offset)),
        )?;
        gauges(
            &mut encoder,
            "projector_state_keys",
            "Keys in the projection version's state",
            samples.iter().map(|s| (s.labels(), s.info.keys)),
        )?;
        gauges(
            &mut encoder,
            "projector_state_file_bytes",
            "Size of the projection version's state file",
            samples.iter().map(|s| (s.labels(), s.state_bytes)),
        )?;

        for (name, help, pick) in [
            (
                "projector_build_events_done",
                "Events a version building in the shadow has applied since its build started",
                (|p: &crate::projection::BuildProgressInfo| p.events_done)
                    as fn(&crate::projection::BuildProgressInfo) -> u64,
            ),
            (
                "projector_build_events_total",
                "Events a version building in the shadow had to apply when its build started",
                |p: &crate::projection::BuildProgressInfo| p.events_total,
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for s in &samples {
                if let Some(progress) = &s.info.progress {
                    gauge(&mut family, s.labels(), pick(progress))?;
                }
            }
        }

        counters(
            &mut encoder,
            "projector_source_events_read",
            "Events the projection version's subscription read from its source",
            samples.iter().map(|s| {
                let read = s.metrics().events_read.load(Ordering::Relaxed);
                (s.source_labels(), read)
            }),
        )?;
        counters(
            &mut encoder,
            "projector_source_read_bytes",
            "Bytes of keys and payloads the projection version's subscription read from its source",
            samples.iter().map(|s| {
                let read = s.metrics().bytes_read.load(Ordering::Relaxed);
                (s.source_labels(), read)
            }),
        )?;
        gauges(
            &mut encoder,
            "projector_source_up",
            "1 while the projection version's source is reachable and every subscribed topic exists",
            samples.iter().map(|s| {
                let up = matches!(s.info.source.health, SourceHealth::Ok);
                (s.source_labels(), i64::from(up))
            }),
        )?;

        let mut family = encoder.encode_descriptor(
            "projector_source_state",
            "1 for the connection state of the projection version's source (ok, unavailable, waiting_for_topics), 0 for the others",
            None,
            MetricType::Gauge,
        )?;
        for s in &samples {
            let current = match s.info.source.health {
                SourceHealth::Ok => "ok",
                SourceHealth::Unavailable { .. } => "unavailable",
                SourceHealth::WaitingForTopics { .. } => "waiting_for_topics",
            };
            for state in SOURCE_STATES {
                let mut labels = s.source_labels();
                labels.push(("state", state.to_owned()));
                gauge(&mut family, labels, i64::from(current == state))?;
            }
        }
        Ok(())
    }
}

/// `GET /metrics`: renders off the async threads (it reads state files).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "dashboard",
    responses((status = 200, description = "Prometheus text exposition format (docs/metrics.md lists every metric)", content_type = "text/plain", body = String)),
)]
pub async fn serve(metrics: Arc<Metrics>) -> axum::response::Response {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    match tokio::task::spawn_blocking(move || metrics.render()).await {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("rendering the metrics failed: {e}"),
        )
            .into_response(),
    }
}

/// Whether a running projection version with `lag` has shown no progress for
/// its `stall_after`; how long, if so.
pub fn stalled_for(
    metrics: &ProjectionMetrics,
    status: &Status,
    lag: u64,
    stall_after: Duration,
) -> Option<Duration> {
    if lag == 0 || !matches!(status, Status::Running) {
        return None;
    }
    let idle = metrics.since_progress();
    (idle >= stall_after).then_some(idle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trap_messages_map_to_their_kind() {
        let trap = |m: &str| ErrorKind::of(&RunError::Trap(m.to_owned()));
        assert_eq!(
            trap("time budget exceeded: the call ran longer than 5 ms (limits.call_timeout_ms)"),
            ErrorKind::TimeLimit
        );
        assert_eq!(
            trap("memory limit exceeded: the module asked"),
            ErrorKind::MemoryLimit
        );
        assert_eq!(
            trap("call stack exhausted (unbounded recursion)"),
            ErrorKind::StackLimit
        );
        assert_eq!(
            trap(
                "state value of 9 bytes under key \"k\" exceeds the limit of 1 bytes (limits.max_value_bytes)"
            ),
            ErrorKind::StateLimit
        );
        assert_eq!(trap("wasm trap: unreachable"), ErrorKind::Trap);
        assert_eq!(
            ErrorKind::of(&RunError::Rejected {
                index: 0,
                message: "no".into()
            }),
            ErrorKind::Rejected
        );
    }

    #[test]
    fn only_a_running_version_with_lag_and_no_progress_is_stalled() {
        let metrics = ProjectionMetrics::default();
        let zero = Duration::ZERO;
        assert!(stalled_for(&metrics, &Status::Running, 1, zero).is_some());
        assert!(stalled_for(&metrics, &Status::Running, 0, zero).is_none());
        assert!(stalled_for(&metrics, &Status::Stopped, 1, zero).is_none());
        metrics.progressed();
        assert!(stalled_for(&metrics, &Status::Running, 1, Duration::from_secs(3600)).is_none());
    }
}
