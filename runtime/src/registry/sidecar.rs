//! `<module>.toml` next to `<module>.wasm`: which source a projection reads
//! and what its topics are called there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::Sources;
use crate::source::{Source, TopicBinding};
use crate::wasm::LoadedModule;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Sidecar {
    /// `"embedded"` or `"kafka"`; default: Kafka when configured, else the
    /// embedded log.
    source: Option<SourceKind>,
    /// Topic named by the module -> real topic in the source.
    #[serde(default)]
    topics: BTreeMap<String, String>,
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

/// Picks the module's source and real topic names from its sidecar.
pub(super) fn bind_source(
    sources: &Sources,
    module: &LoadedModule,
) -> Result<(Arc<dyn Source>, Vec<TopicBinding>), String> {
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
    Ok((source, topics))
}
