//! `<module>.toml` next to `<module>.wasm`: which source a projection reads
//! and what its topics are called there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::Sources;
use crate::source::{Source, TopicBinding};
use crate::wasm::LoadedModule;
use crate::worker::WorkerConfig;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Sidecar {
    /// `"embedded"` or `"kafka"`; default: Kafka when configured, else the
    /// embedded log.
    source: Option<SourceKind>,
    /// Topic named by the module -> real topic in the source.
    #[serde(default)]
    topics: BTreeMap<String, String>,
    /// This projection's snapshot schedule, over the global `[snapshots]`.
    #[serde(default)]
    snapshots: SnapshotOverrides,
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

/// What a module's sidecar decides.
pub(super) struct Binding {
    pub(super) source: Arc<dyn Source>,
    pub(super) topics: Vec<TopicBinding>,
    pub(super) snapshots: SnapshotOverrides,
}

/// Picks the module's source, real topic names and snapshot schedule from
/// its sidecar.
pub(super) fn bind_source(sources: &Sources, module: &LoadedModule) -> Result<Binding, String> {
    let module_topics = &module.descriptor.sources;
    let (path, sidecar) = Sidecar::read(&module.file)?;
    for topic in sidecar.topics.keys() {
        if !module_topics.contains(topic) {
            return Err(format!(
                "{}: maps topic {topic:?}, which the module does not subscribe to (it reads: {})",
                path.display(),
                module_topics.join(", ")
            ));
        }
    }
    let source = match (sidecar.source, &sources.kafka) {
        (Some(SourceKind::Embedded), _) | (None, None) => sources.embedded.clone(),
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
    Ok(Binding {
        source,
        topics,
        snapshots: sidecar.snapshots,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::SnapshotPolicy;

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
}
