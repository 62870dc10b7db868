//! `<module>.toml` next to `<module>.wasm`: which source a projection reads,
//! what its topics are called there, and its own error policy, limits and
//! snapshot schedule. The file is watched: see the registry for what a
//! change does to a running projection.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::Sources;
use crate::projection::ProjectionRuntime;
use crate::source::{Source, TopicBinding};
use crate::store::KeyTemplate;
use crate::wasm::LoadedModule;
use crate::worker::{ErrorPolicy, WorkerConfig};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Sidecar {
    /// Serve the module under this name instead of the one it describes:
    /// the same module can then run more than once (one per tenant or topic).
    name: Option<String>,
    /// `"embedded"` or `"kafka"`; default: Kafka when configured, else the
    /// embedded log.
    source: Option<SourceKind>,
    /// Topic named by the module -> real topic in the source.
    #[serde(default)]
    topics: BTreeMap<String, String>,
    /// This projection's snapshot schedule, over the global `[snapshots]`.
    #[serde(default)]
    snapshots: SnapshotOverrides,
    /// This projection's error policy, over the global `error_policy`.
    error_policy: Option<ErrorPolicy>,
    /// Skipped-event records kept, over the global `keep_skipped`.
    keep_skipped: Option<usize>,
    /// This projection's resource limits, over the global `[limits]`.
    #[serde(default)]
    limits: LimitOverrides,
    /// `"partitioned"`: each state key is written by events of one source
    /// partition, so the state is kept per unit (partition p of every
    /// topic) and units fold in parallel. Default `"global"`.
    #[serde(default)]
    scale: Scale,
    /// With `scale = "partitioned"`: state keys that embed the event key,
    /// as `"customer/{key}"`, so a lookup asks the key's unit first.
    #[serde(default)]
    key_templates: Vec<String>,
    /// In a group: other instances keeping a warm copy of each unit, over
    /// the global `[cluster] standby_replicas`.
    standby_replicas: Option<u32>,
}

impl Sidecar {
    /// `standby_replicas`, over the global setting.
    fn apply_standbys(&self, config: &mut WorkerConfig, path: &Path) -> Result<(), String> {
        let Some(standbys) = self.standby_replicas else {
            return Ok(());
        };
        if standbys > crate::config::MAX_STANDBY_REPLICAS {
            return Err(format!(
                "{}: standby_replicas = {standbys}: choose 0 to {} (each standby folds every event of its units once more)",
                path.display(),
                crate::config::MAX_STANDBY_REPLICAS
            ));
        }
        config.standby_replicas = standbys;
        Ok(())
    }
}

/// How a projection's state divides.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Scale {
    /// One state over every partition.
    #[default]
    Global,
    /// One state per unit of co-partitioned source partitions.
    Partitioned,
}

/// `[limits]` in a sidecar: each key overrides the global setting. The
/// module size limit is global: it applies before the sidecar is read.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LimitOverrides {
    call_timeout_ms: Option<u64>,
    max_memory_bytes: Option<usize>,
    max_key_bytes: Option<usize>,
    max_value_bytes: Option<usize>,
    max_scan_entries: Option<usize>,
    batch_max_events: Option<usize>,
}

impl LimitOverrides {
    fn apply(&self, config: &mut WorkerConfig, path: &Path) -> Result<(), String> {
        let limits = &mut config.limits;
        if let Some(ms) = self.call_timeout_ms {
            if ms < 10 {
                return Err(format!(
                    "{}: limits.call_timeout_ms = {ms}: a call needs some time; use at least 10",
                    path.display()
                ));
            }
            limits.call_timeout = std::time::Duration::from_millis(ms);
        }
        limits.max_memory_bytes = self.max_memory_bytes.unwrap_or(limits.max_memory_bytes);
        limits.max_key_bytes = self.max_key_bytes.unwrap_or(limits.max_key_bytes);
        limits.max_value_bytes = self.max_value_bytes.unwrap_or(limits.max_value_bytes);
        limits.max_scan_entries = self.max_scan_entries.unwrap_or(limits.max_scan_entries);
        if let Some(max) = self.batch_max_events {
            if max == 0 {
                return Err(format!(
                    "{}: limits.batch_max_events = 0: a batch holds at least one event",
                    path.display()
                ));
            }
            config.batch_max_events = max;
        }
        Ok(())
    }
}

/// `[snapshots]` in a sidecar: each key overrides the global setting.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SnapshotOverrides {
    enabled: Option<bool>,
    every_events: Option<u64>,
    every_seconds: Option<u64>,
    keep: Option<usize>,
}

impl SnapshotOverrides {
    pub(super) fn apply(&self, config: &mut WorkerConfig) {
        if self.enabled == Some(false) {
            config.snapshots = None;
            return;
        }
        if let Some(policy) = config.snapshots.as_mut() {
            policy.every_events = self.every_events.unwrap_or(policy.every_events).max(1);
            policy.every = self
                .every_seconds
                .map_or(policy.every, std::time::Duration::from_secs);
            policy.keep = self.keep.unwrap_or(policy.keep).max(1);
        }
    }
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

/// What a module's sidecar decides for one version: read once when the
/// version starts and kept with it, so that restarting the version later
/// uses what it ran with, whatever the file says by then.
#[derive(Clone)]
pub(super) struct Settings {
    pub(super) source: Arc<dyn Source>,
    pub(super) topics: Vec<TopicBinding>,
    /// `Some(units)` for a partitioned projection: its topics' partition
    /// count when the version started.
    pub(super) units: Option<u32>,
    /// The global worker settings with the sidecar's overrides.
    pub(super) config: WorkerConfig,
}

impl Settings {
    /// The settings a running version was started with.
    pub(super) fn of(version: &ProjectionRuntime) -> Self {
        Self {
            source: version.source.clone(),
            topics: version.topics.clone(),
            units: version
                .is_partitioned()
                .then(|| version.units().len() as u32),
            config: version.config.clone(),
        }
    }

    /// Whether these settings read the same events as `version` does (same
    /// source, same real topics): its state is then valid under them.
    pub(super) fn binds_like(&self, version: &ProjectionRuntime) -> bool {
        self.source.kind() == version.source.kind()
            && self.topics == version.topics
            && self.units == Settings::of(version).units
    }

    /// How the binding differs from `version`'s, for the log.
    pub(super) fn binding_changes(&self, version: &ProjectionRuntime) -> Vec<String> {
        let mut changes = Vec::new();
        if self.source.kind() != version.source.kind() {
            changes.push(format!(
                "source: {} -> {}",
                version.source.kind(),
                self.source.kind()
            ));
        }
        let units = Settings::of(version).units;
        if self.units != units {
            let scale = |units: Option<u32>| {
                units.map_or("global".to_owned(), |n| {
                    format!("partitioned into {n} units")
                })
            };
            changes.push(format!("scale: {} -> {}", scale(units), scale(self.units)));
        }
        for (old, new) in version.topics.iter().zip(&self.topics) {
            if old.physical != new.physical {
                changes.push(format!(
                    "topics.{}: {} -> {}",
                    new.logical, old.physical, new.physical
                ));
            }
        }
        changes
    }
}

/// What differs between two versions' worker settings, one `what: old ->
/// new` line per setting a sidecar can change.
pub(super) fn changes(old: &WorkerConfig, new: &WorkerConfig) -> Vec<String> {
    let mut out = Vec::new();
    let mut diff = |what: &str, a: String, b: String| {
        if a != b {
            out.push(format!("{what}: {a} -> {b}"));
        }
    };
    diff(
        "error_policy",
        old.error_policy.as_str().into(),
        new.error_policy.as_str().into(),
    );
    let (a, b) = (&old.limits, &new.limits);
    diff(
        "limits.call_timeout_ms",
        a.call_timeout.as_millis().to_string(),
        b.call_timeout.as_millis().to_string(),
    );
    diff(
        "limits.max_memory_bytes",
        a.max_memory_bytes.to_string(),
        b.max_memory_bytes.to_string(),
    );
    diff(
        "limits.max_key_bytes",
        a.max_key_bytes.to_string(),
        b.max_key_bytes.to_string(),
    );
    diff(
        "limits.max_value_bytes",
        a.max_value_bytes.to_string(),
        b.max_value_bytes.to_string(),
    );
    diff(
        "limits.max_scan_entries",
        a.max_scan_entries.to_string(),
        b.max_scan_entries.to_string(),
    );
    diff(
        "key_templates",
        format!("{:?}", old.key_templates),
        format!("{:?}", new.key_templates),
    );
    diff(
        "standby_replicas",
        old.standby_replicas.to_string(),
        new.standby_replicas.to_string(),
    );
    diff(
        "keep_skipped",
        old.keep_skipped.to_string(),
        new.keep_skipped.to_string(),
    );
    diff(
        "limits.batch_max_events",
        old.batch_max_events.to_string(),
        new.batch_max_events.to_string(),
    );
    match (&old.snapshots, &new.snapshots) {
        (Some(a), Some(b)) => {
            diff(
                "snapshots.every_events",
                a.every_events.to_string(),
                b.every_events.to_string(),
            );
            diff(
                "snapshots.every_seconds",
                a.every.as_secs().to_string(),
                b.every.as_secs().to_string(),
            );
            diff("snapshots.keep", a.keep.to_string(), b.keep.to_string());
        }
        (a, b) => diff(
            "snapshots.enabled",
            a.is_some().to_string(),
            b.is_some().to_string(),
        ),
    }
    out
}

/// Why a module's sidecar gives no settings (the message names the file).
#[derive(Debug)]
pub(super) enum SettingsError {
    /// Wrong in itself: a new edit must fix it.
    Invalid(String),
    /// A partitioned projection whose topics' partition count cannot be read
    /// now (broker down, topic not created yet): tried again later.
    Layout(String),
}

impl From<String> for SettingsError {
    fn from(message: String) -> Self {
        SettingsError::Invalid(message)
    }
}

/// Reads `module`'s sidecar: applies its `name`, if it sets one, to the
/// module, and returns the source, real topic names and worker settings it
/// decides. The error names the sidecar file and what is wrong in it.
pub(super) fn settings(
    sources: &Sources,
    module: &mut LoadedModule,
    global: &WorkerConfig,
) -> Result<Settings, SettingsError> {
    let (path, sidecar) = Sidecar::read(&module.file)?;
    if let Some(name) = &sidecar.name {
        if !crate::wasm::is_valid_projection_name(name) {
            return Err(format!(
                "{}: name = {name:?}: use 1 to 64 characters of a-z, 0-9 and '-', not starting with '-'",
                path.display()
            )
            .into());
        }
        module.descriptor.name = name.clone();
    }
    let module_topics = &module.descriptor.sources;
    for topic in sidecar.topics.keys() {
        if !module_topics.contains(topic) {
            return Err(format!(
                "{}: maps topic {topic:?}, which the module does not subscribe to (it reads: {})",
                path.display(),
                module_topics.join(", ")
            )
            .into());
        }
    }
    let source = match (sidecar.source, &sources.kafka) {
        (Some(SourceKind::Embedded), _) | (None, None) => sources.embedded.clone(),
        (Some(SourceKind::Kafka) | None, Some(kafka)) => kafka.clone(),
        (Some(SourceKind::Kafka), None) => {
            return Err(format!(
                "{}: asks for source \"kafka\", but projector runs without Kafka; start it with --kafka BOOTSTRAP",
                path.display()
            )
            .into());
        }
    };
    let topics: Vec<TopicBinding> = module_topics
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
    let mut config = global.clone();
    sidecar.snapshots.apply(&mut config);
    sidecar.limits.apply(&mut config, &path)?;
    if let Some(policy) = sidecar.error_policy {
        config.error_policy = policy;
    }
    if let Some(keep) = sidecar.keep_skipped {
        config.keep_skipped = keep;
    }
    sidecar.apply_standbys(&mut config, &path)?;
    let units = match sidecar.scale {
        Scale::Global => None,
        Scale::Partitioned => Some(unit_count(&path, source.as_ref(), &topics).map_err(
            |(error, retry)| {
                if retry {
                    SettingsError::Layout(error)
                } else {
                    SettingsError::Invalid(error)
                }
            },
        )?),
    };
    if !sidecar.key_templates.is_empty() && units.is_none() {
        return Err(format!(
            "{}: key_templates route lookups to the units of a partitioned projection; add scale = \"partitioned\" or remove them",
            path.display()
        )
        .into());
    }
    config.key_templates = sidecar
        .key_templates
        .iter()
        .map(|t| KeyTemplate::parse(t).map_err(|e| format!("{}: {e}", path.display())))
        .collect::<Result<Vec<_>, _>>()?
        .into();
    Ok(Settings {
        source,
        topics,
        units,
        config,
    })
}

/// The units of a partitioned projection: the partition count its topics
/// share. Topics of unequal counts are refused: partition p of one would
/// not hold the keys of partition p of another. The error says whether a
/// later try may succeed (a topic not created yet, a source that does not
/// answer).
pub(super) fn unit_count(
    sidecar: &Path,
    source: &dyn Source,
    topics: &[TopicBinding],
) -> Result<u32, (String, bool)> {
    let mut counts = Vec::new();
    for binding in topics {
        match source.partition_count(&binding.physical) {
            Ok(Some(count)) => counts.push((binding.physical.as_str(), count)),
            Ok(None) => {
                return Err((
                    format!(
                        "{}: scale = \"partitioned\" needs the partition count of topic {:?}, which does not exist in the {} source yet; create it (its partitions become the projection's units): the module is looked at again every few seconds",
                        sidecar.display(),
                        binding.physical,
                        source.kind()
                    ),
                    true,
                ));
            }
            Err(e) => {
                return Err((
                    format!(
                        "{}: scale = \"partitioned\": cannot read the partition count of topic {:?} ({e}); tried again every few seconds",
                        sidecar.display(),
                        binding.physical
                    ),
                    true,
                ));
            }
        }
    }
    let Some(&(_, first)) = counts.first() else {
        return Err((
            format!(
                "{}: scale = \"partitioned\" needs at least one topic",
                sidecar.display()
            ),
            false,
        ));
    };
    if counts.iter().any(|&(_, count)| count != first) {
        let listed: Vec<String> = counts
            .iter()
            .map(|(topic, count)| format!("{topic}: {count}"))
            .collect();
        return Err((
            format!(
                "{}: scale = \"partitioned\" needs topics of equal partition counts (partition p of each is one unit), but they have {}; give them equal counts or remove scale",
                sidecar.display(),
                listed.join(", ")
            ),
            false,
        ));
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::SnapshotPolicy;

    #[test]
    fn units_are_the_shared_partition_count_and_unequal_counts_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let log = crate::source::EmbeddedLog::open(&dir.path().join("log.redb"), 4).unwrap();
        log.create_topic("orders", 6).unwrap();
        log.create_topic("payments", 6).unwrap();
        log.create_topic("refunds", 2).unwrap();
        let bind = |topics: &[&str]| -> Vec<TopicBinding> {
            topics
                .iter()
                .map(|t| TopicBinding {
                    logical: (*t).into(),
                    physical: (*t).into(),
                })
                .collect()
        };
        let sidecar = Path::new("m.toml");
        assert_eq!(
            unit_count(sidecar, &log, &bind(&["orders", "payments"])),
            Ok(6)
        );
        // Not created yet: the count a first append gives it.
        assert_eq!(unit_count(sidecar, &log, &bind(&["later"])), Ok(4));
        let (refused, retry) =
            unit_count(sidecar, &log, &bind(&["orders", "refunds"])).unwrap_err();
        assert!(!retry, "only a new count or sidecar changes this");
        assert!(refused.contains("m.toml"), "{refused}");
        assert!(refused.contains("orders: 6, refunds: 2"), "{refused}");
        log.shutdown();
    }

    #[test]
    fn sidecar_snapshot_settings_override_the_global_ones() {
        let mut config = WorkerConfig {
            snapshots: Some(SnapshotPolicy {
                dir: "snapshots".into(),
                every_events: 100_000,
                every: std::time::Duration::from_secs(300),
                keep: 3,
            }),
            ..WorkerConfig::default()
        };
        let sidecar: Sidecar =
            toml::from_str("[snapshots]\nevery_events = 500\nkeep = 7\n").unwrap();
        sidecar.snapshots.apply(&mut config);
        let policy = config.snapshots.clone().unwrap();
        assert_eq!((policy.every_events, policy.keep), (500, 7));
        assert_eq!(policy.every, std::time::Duration::from_secs(300));

        let off: Sidecar = toml::from_str("[snapshots]\nenabled = false\n").unwrap();
        off.snapshots.apply(&mut config);
        assert!(config.snapshots.is_none());
        assert!(toml::from_str::<Sidecar>("[snapshots]\nevery = 1\n").is_err());
    }

    #[test]
    fn changes_name_each_setting_that_differs() {
        let old = WorkerConfig::default();
        let mut new = old.clone();
        assert!(changes(&old, &new).is_empty());
        new.error_policy = ErrorPolicy::Skip;
        new.limits.call_timeout = std::time::Duration::from_millis(250);
        new.snapshots = Some(SnapshotPolicy {
            dir: "snapshots".into(),
            every_events: 10,
            every: std::time::Duration::from_secs(60),
            keep: 2,
        });
        assert_eq!(
            changes(&old, &new),
            [
                "error_policy: halt -> skip".to_owned(),
                format!(
                    "limits.call_timeout_ms: {} -> 250",
                    old.limits.call_timeout.as_millis()
                ),
                "snapshots.enabled: false -> true".to_owned(),
            ]
        );
    }

    #[test]
    fn sidecar_limits_and_policy_override_the_global_ones() {
        let global = WorkerConfig::default();
        let sidecar: Sidecar = toml::from_str(
            "error_policy = \"dead-letter\"\n[limits]\ncall_timeout_ms = 250\nmax_memory_bytes = 1048576\nbatch_max_events = 7\n",
        )
        .unwrap();
        let path = PathBuf::from("m.toml");
        let mut config = global.clone();
        sidecar.limits.apply(&mut config, &path).unwrap();
        assert_eq!(
            config.limits.call_timeout,
            std::time::Duration::from_millis(250)
        );
        assert_eq!(config.limits.max_memory_bytes, 1 << 20);
        assert_eq!(config.limits.max_key_bytes, global.limits.max_key_bytes);
        assert_eq!(config.batch_max_events, 7);
        assert_eq!(sidecar.error_policy, Some(ErrorPolicy::DeadLetter));

        let zero: Sidecar = toml::from_str("[limits]\nbatch_max_events = 0\n").unwrap();
        let err = zero.limits.apply(&mut config, &path).unwrap_err();
        assert!(
            err.contains("m.toml") && err.contains("batch_max_events"),
            "{err}"
        );
        assert!(toml::from_str::<Sidecar>("[limits]\nmax_module_bytes = 1\n").is_err());
    }

    #[test]
    fn sidecar_standby_replicas_override_the_global_ones() {
        let path = PathBuf::from("m.toml");
        let mut config = WorkerConfig {
            standby_replicas: 2,
            ..WorkerConfig::default()
        };
        let none: Sidecar = toml::from_str("").unwrap();
        none.apply_standbys(&mut config, &path).unwrap();
        assert_eq!(config.standby_replicas, 2);
        let one: Sidecar = toml::from_str("standby_replicas = 0").unwrap();
        one.apply_standbys(&mut config, &path).unwrap();
        assert_eq!(config.standby_replicas, 0);
        let many: Sidecar = toml::from_str("standby_replicas = 17").unwrap();
        let err = many.apply_standbys(&mut config, &path).unwrap_err();
        assert!(err.contains("m.toml") && err.contains("0 to 16"), "{err}");
        let old = config.clone();
        config.standby_replicas = 1;
        assert_eq!(changes(&old, &config), vec!["standby_replicas: 0 -> 1"]);
    }
}
