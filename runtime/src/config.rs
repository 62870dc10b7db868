//! Configuration: defaults, then a TOML file, then environment variables and
//! flags (clap gives flags precedence over their `PROJECTOR_*` variables).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::api::auth::ApiToken;
use crate::source::KafkaConfig;
use crate::wasm::Limits;
use crate::worker::{ErrorPolicy, SnapshotPolicy, WorkerConfig};

/// Loopback only: the API is reachable from other machines only when the
/// operator opts in, e.g. `--listen 0.0.0.0:7878` (ideally with an API token).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";

/// Everything `projector run` needs.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub modules_dir: PathBuf,
    /// HTTP address; [`DEFAULT_LISTEN`] (loopback) unless configured.
    pub listen: SocketAddr,
    /// Partitions of a topic the embedded log creates on first append.
    pub default_partitions: u32,
    pub worker: WorkerConfig,
    /// Largest HTTP request body accepted (appends, query arguments).
    pub max_request_bytes: usize,
    /// HTTP admin token and connection limits.
    pub http: HttpConfig,
    pub limits: Limits,
    /// Kafka connection; projections read from it unless their sidecar says
    /// `source = "embedded"`.
    pub kafka: Option<KafkaConfig>,
    /// How long a module file must stay unchanged before it is loaded.
    pub watch_settle: Duration,
    /// redb's page cache of the embedded log, bytes (the state files'
    /// is `worker.state_cache_bytes`).
    pub log_cache_bytes: usize,
    /// The group this instance shares the work with (`--group`), if any.
    pub cluster: Option<crate::cluster::ClusterConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            modules_dir: PathBuf::from("./projections"),
            listen: DEFAULT_LISTEN.parse().expect("valid default address"),
            default_partitions: 3,
            worker: WorkerConfig::default(),
            max_request_bytes: 64 << 20,
            http: HttpConfig::default(),
            limits: Limits::default(),
            kafka: None,
            watch_settle: Duration::from_millis(250),
            log_cache_bytes: crate::source::embedded::DEFAULT_CACHE_BYTES,
            cluster: None,
        }
    }
}

/// How the HTTP API protects itself.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// When set, mutating endpoints (appends, topic creation, replay,
    /// snapshot create/restore) need `Authorization: Bearer <token>`.
    pub api_token: Option<ApiToken>,
    /// How long a request may take to arrive in full after its head,
    /// including a wait for an in-flight slot (408 or 503 after that); also
    /// how long a write to a client that does not read may stall.
    pub request_timeout: Duration,
    /// How long a connection may take to send a request's head; also how
    /// long an idle keep-alive connection stays open.
    pub header_read_timeout: Duration,
    /// Open connections at most; more wait in the accept backlog.
    pub max_connections: usize,
    /// Requests being worked on at once at most; more wait for a slot.
    pub max_in_flight_requests: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            api_token: None,
            request_timeout: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
            max_in_flight_requests: 256,
        }
    }
}

/// The TOML file's shape; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub modules_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub default_partitions: Option<u32>,
    pub batch_max_events: Option<usize>,
    pub batch_linger_ms: Option<u64>,
    pub commit_max_events: Option<usize>,
    pub commit_max_delay_ms: Option<u64>,
    pub sync_interval_ms: Option<u64>,
    pub max_request_bytes: Option<usize>,
    /// Admin token for mutating endpoints (or read it from `api_token_file`).
    pub api_token: Option<String>,
    pub api_token_file: Option<PathBuf>,
    pub request_timeout_ms: Option<u64>,
    pub header_read_timeout_ms: Option<u64>,
    pub max_connections: Option<usize>,
    pub max_in_flight_requests: Option<usize>,
    /// A projection with lag that applies nothing for this long is stalled.
    pub stall_after_ms: Option<u64>,
    #[serde(default)]
    pub limits: FileLimits,
    pub kafka: Option<KafkaConfig>,
    pub watch_settle_ms: Option<u64>,
    /// Hours the state files of removed or replaced versions are kept.
    pub state_retention_hours: Option<u64>,
    #[serde(default)]
    pub snapshots: FileSnapshots,
    /// What happens to an event a module fails on (a sidecar may override
    /// it per projection): halt, skip, dead-letter or quarantine-key.
    pub error_policy: Option<ErrorPolicy>,
    /// Skipped-event records kept per projection (a sidecar may override
    /// it); the oldest beyond it are removed as new ones come. Default
    /// 10000.
    pub keep_skipped: Option<usize>,
    /// MiB of redb page cache per state file (each projection version has
    /// one): the process holds up to this much of each file in memory.
    pub state_cache_mb: Option<usize>,
    /// MiB of redb page cache for the embedded log.
    pub log_cache_mb: Option<usize>,
    /// Nice value (0-19) of the threads that fold events.
    pub worker_nice: Option<i32>,
    /// Units of one partitioned projection folding at once. Default: the
    /// machine's cores.
    pub worker_threads: Option<usize>,
    /// Sharing the work with other instances in a Kafka consumer group.
    #[serde(default)]
    pub cluster: FileCluster,
}

/// `[cluster]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCluster {
    /// Group name: instances with the same one share the projections.
    pub group: Option<String>,
    /// This instance's HTTP API as the others reach it.
    pub advertise: Option<String>,
    /// Partitions of the control topic when this instance creates it
    /// (default 12).
    pub slots: Option<u32>,
    /// Kafka session timeout: how long a dead instance keeps its slots
    /// (default 6000).
    pub session_timeout_ms: Option<u64>,
    /// Other instances keeping a warm copy of each unit (default 0); a
    /// sidecar's `standby_replicas` wins.
    pub standby_replicas: Option<u32>,
}

/// `[snapshots]`: periodic snapshots of every projection version.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileSnapshots {
    pub enabled: bool,
    pub every_events: u64,
    pub every_seconds: u64,
    pub keep: usize,
    /// Shared snapshot store every snapshot is uploaded to (and a missing
    /// one downloaded from): a folder, `file://`, `s3://`, `gs://` or
    /// `az://` URL.
    pub store: Option<String>,
}

impl Default for FileSnapshots {
    fn default() -> Self {
        Self {
            enabled: true,
            every_events: 100_000,
            every_seconds: 300,
            keep: crate::snapshot::DEFAULT_KEEP,
            store: None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLimits {
    pub max_memory_bytes: Option<usize>,
    pub max_key_bytes: Option<usize>,
    pub max_value_bytes: Option<usize>,
    pub max_scan_entries: Option<usize>,
    pub max_module_bytes: Option<u64>,
    pub call_timeout_ms: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path} cannot be read: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("API token file {path} cannot be read: {source}")]
    TokenFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid setting {name} = {value}: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error(
        "invalid setting snapshot store (--snapshot-store, [snapshots] store, PROJECTOR_SNAPSHOT_STORE): {0}"
    )]
    SnapshotStore(#[from] crate::snapshot::SnapshotStoreError),
}

impl FileConfig {
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }
}

/// Values given on the command line or in the environment; they win over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub modules_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub default_partitions: Option<u32>,
    pub batch_max_events: Option<usize>,
    pub batch_linger_ms: Option<u64>,
    pub sync_interval_ms: Option<u64>,
    /// `bootstrap.servers`; replaces the file's `[kafka] bootstrap`.
    pub kafka_bootstrap: Option<String>,
    /// librdkafka properties, added to (and winning over) the file's.
    pub kafka_properties: Vec<(String, String)>,
    pub api_token: Option<String>,
    pub api_token_file: Option<PathBuf>,
    pub request_timeout_ms: Option<u64>,
    pub header_read_timeout_ms: Option<u64>,
    pub max_connections: Option<usize>,
    pub max_in_flight_requests: Option<usize>,
    pub stall_after_ms: Option<u64>,
    /// Replaces the file's `[snapshots] store`.
    pub snapshot_store: Option<String>,
    pub worker_threads: Option<usize>,
    /// Replaces the file's `[cluster] group`.
    pub group: Option<String>,
    /// Replaces the file's `[cluster] advertise`.
    pub advertise: Option<String>,
}

/// The admin token from a value or a file; the more specific level
/// (flags/environment over the TOML file) decides, and one level may not
/// give both.
fn resolve_token(
    overrides: (Option<String>, Option<PathBuf>),
    file: (Option<String>, Option<PathBuf>),
) -> Result<Option<ApiToken>, ConfigError> {
    let (value, path) = match overrides {
        (None, None) => file,
        given => given,
    };
    let text = match (value, path) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err(ConfigError::Invalid {
                name: "api_token",
                value: "<redacted>".into(),
                reason: "give the token or a token file (api_token / api_token_file, --api-token / --api-token-file, PROJECTOR_API_TOKEN / PROJECTOR_API_TOKEN_FILE), not both",
            });
        }
        (Some(value), None) => value,
        (None, Some(path)) => std::fs::read_to_string(&path)
            .map_err(|source| ConfigError::TokenFile { path, source })?,
    };
    ApiToken::new(&text)
        .map(Some)
        .map_err(|e| ConfigError::Invalid {
            name: "api_token",
            value: "<redacted>".into(),
            reason: match e {
                crate::api::auth::InvalidToken::Empty => "the token is empty",
                crate::api::auth::InvalidToken::BadCharacter => {
                    "use printable ASCII without spaces, e.g. the output of `openssl rand -hex 32`"
                }
            },
        })
}

/// Most standbys per unit, globally or in a sidecar.
pub const MAX_STANDBY_REPLICAS: u32 = 16;

/// `[cluster]` with `--group` and `--advertise` resolved.
fn cluster_config(
    group: String,
    advertise: Option<String>,
    file: &FileCluster,
    kafka: Option<&KafkaConfig>,
) -> Result<crate::cluster::ClusterConfig, ConfigError> {
    let invalid = |name, value: String, reason| ConfigError::Invalid {
        name,
        value,
        reason,
    };
    let valid_name = !group.is_empty()
        && group
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid_name {
        return Err(invalid(
            "group",
            group,
            "use letters, digits, '-', '_' and '.' (it names Kafka topics)",
        ));
    }
    let Some(kafka) = kafka else {
        return Err(invalid(
            "group",
            group,
            "a group is a Kafka consumer group: add --kafka BOOTSTRAP",
        ));
    };
    let Some(advertise) = advertise else {
        return Err(invalid(
            "advertise",
            String::new(),
            "--group needs --advertise URL (PROJECTOR_ADVERTISE, [cluster] advertise): where the other instances reach this one's HTTP API, e.g. http://10.0.0.5:7878",
        ));
    };
    let advertise = advertise.trim_end_matches('/').to_owned();
    if url::Url::parse(&advertise)
        .ok()
        .is_none_or(|url| !matches!(url.scheme(), "http" | "https") || url.host().is_none())
    {
        return Err(invalid(
            "advertise",
            advertise,
            "give an http:// or https:// URL with a host, e.g. http://10.0.0.5:7878",
        ));
    }
    let slots = file.slots.unwrap_or(crate::cluster::DEFAULT_SLOTS);
    if slots == 0 || slots > 10_000 {
        return Err(invalid(
            "cluster slots",
            slots.to_string(),
            "choose 1 to 10000",
        ));
    }
    let session_timeout = file.session_timeout_ms.map_or(
        crate::cluster::DEFAULT_SESSION_TIMEOUT,
        Duration::from_millis,
    );
    if session_timeout < Duration::from_millis(600) {
        return Err(invalid(
            "cluster session_timeout_ms",
            session_timeout.as_millis().to_string(),
            "use at least 600 ms (brokers usually require 6000 or more)",
        ));
    }
    Ok(crate::cluster::ClusterConfig {
        group,
        advertise,
        kafka: kafka.clone(),
        slots,
        session_timeout,
    })
}

impl Config {
    pub fn resolve(file: FileConfig, overrides: Overrides) -> Result<Self, ConfigError> {
        let defaults = Config::default();
        let limits = Limits {
            max_memory_bytes: file
                .limits
                .max_memory_bytes
                .unwrap_or(defaults.limits.max_memory_bytes),
            max_key_bytes: file
                .limits
                .max_key_bytes
                .unwrap_or(defaults.limits.max_key_bytes),
            max_value_bytes: file
                .limits
                .max_value_bytes
                .unwrap_or(defaults.limits.max_value_bytes),
            max_scan_entries: file
                .limits
                .max_scan_entries
                .unwrap_or(defaults.limits.max_scan_entries),
            max_module_bytes: file
                .limits
                .max_module_bytes
                .unwrap_or(defaults.limits.max_module_bytes),
            call_timeout: file
                .limits
                .call_timeout_ms
                .map_or(defaults.limits.call_timeout, Duration::from_millis),
        };
        let mut kafka = match (file.kafka, overrides.kafka_bootstrap) {
            (Some(mut kafka), Some(bootstrap)) => {
                kafka.bootstrap = bootstrap;
                Some(kafka)
            }
            (Some(kafka), None) => Some(kafka),
            (None, Some(bootstrap)) => Some(KafkaConfig::new(bootstrap)),
            (None, None) => None,
        };
        if !overrides.kafka_properties.is_empty() {
            let Some(kafka) = kafka.as_mut() else {
                return Err(ConfigError::Invalid {
                    name: "kafka property",
                    value: overrides.kafka_properties[0].0.clone(),
                    reason: "Kafka properties need a broker: add --kafka BOOTSTRAP",
                });
            };
            kafka.properties.extend(overrides.kafka_properties);
        }
        let http = HttpConfig {
            api_token: resolve_token(
                (overrides.api_token, overrides.api_token_file),
                (file.api_token, file.api_token_file),
            )?,
            request_timeout: overrides
                .request_timeout_ms
                .or(file.request_timeout_ms)
                .map_or(defaults.http.request_timeout, Duration::from_millis),
            header_read_timeout: overrides
                .header_read_timeout_ms
                .or(file.header_read_timeout_ms)
                .map_or(defaults.http.header_read_timeout, Duration::from_millis),
            max_connections: overrides
                .max_connections
                .or(file.max_connections)
                .unwrap_or(defaults.http.max_connections),
            max_in_flight_requests: overrides
                .max_in_flight_requests
                .or(file.max_in_flight_requests)
                .unwrap_or(defaults.http.max_in_flight_requests),
        };
        let config = Config {
            http,
            kafka,
            watch_settle: file
                .watch_settle_ms
                .map_or(defaults.watch_settle, Duration::from_millis),
            data_dir: overrides
                .data_dir
                .or(file.data_dir)
                .unwrap_or(defaults.data_dir),
            modules_dir: overrides
                .modules_dir
                .or(file.modules_dir)
                .unwrap_or(defaults.modules_dir),
            listen: overrides.listen.or(file.listen).unwrap_or(defaults.listen),
            default_partitions: overrides
                .default_partitions
                .or(file.default_partitions)
                .unwrap_or(defaults.default_partitions),
            worker: WorkerConfig {
                batch_max_events: overrides
                    .batch_max_events
                    .or(file.batch_max_events)
                    .unwrap_or(defaults.worker.batch_max_events),
                batch_linger: overrides
                    .batch_linger_ms
                    .or(file.batch_linger_ms)
                    .map_or(defaults.worker.batch_linger, Duration::from_millis),
                commit_max_events: file
                    .commit_max_events
                    .unwrap_or(defaults.worker.commit_max_events),
                commit_max_delay: file
                    .commit_max_delay_ms
                    .map_or(defaults.worker.commit_max_delay, Duration::from_millis),
                sync_interval: overrides
                    .sync_interval_ms
                    .or(file.sync_interval_ms)
                    .map_or(defaults.worker.sync_interval, Duration::from_millis),
                snapshots: None,
                snapshot_store: None,
                state_retention: file
                    .state_retention_hours
                    .map_or(defaults.worker.state_retention, |h| {
                        Duration::from_secs(h * 3600)
                    }),
                error_policy: file.error_policy.unwrap_or_default(),
                keep_skipped: file.keep_skipped.unwrap_or(defaults.worker.keep_skipped),
                limits: limits.clone(),
                stall_after: overrides
                    .stall_after_ms
                    .or(file.stall_after_ms)
                    .map_or(defaults.worker.stall_after, Duration::from_millis),
                state_cache_bytes: file
                    .state_cache_mb
                    .map_or(defaults.worker.state_cache_bytes, |mb| {
                        mb.saturating_mul(1 << 20)
                    }),
                worker_nice: file.worker_nice.unwrap_or(defaults.worker.worker_nice),
                worker_threads: overrides
                    .worker_threads
                    .or(file.worker_threads)
                    .unwrap_or(defaults.worker.worker_threads),
                key_templates: defaults.worker.key_templates.clone(),
                cluster: None,
                standby_replicas: file
                    .cluster
                    .standby_replicas
                    .unwrap_or(defaults.worker.standby_replicas),
            },
            log_cache_bytes: file
                .log_cache_mb
                .map_or(defaults.log_cache_bytes, |mb| mb.saturating_mul(1 << 20)),
            max_request_bytes: file.max_request_bytes.unwrap_or(defaults.max_request_bytes),
            limits,
            cluster: None,
        };
        let mut config = config;
        if file.snapshots.enabled {
            if file.snapshots.keep == 0 || file.snapshots.every_events == 0 {
                return Err(ConfigError::Invalid {
                    name: "snapshots",
                    value: format!(
                        "keep = {}, every_events = {}",
                        file.snapshots.keep, file.snapshots.every_events
                    ),
                    reason: "keep at least one snapshot and take one every 1 or more events (or set enabled = false)",
                });
            }
            config.worker.snapshots = Some(SnapshotPolicy {
                dir: config.data_dir.join("snapshots"),
                every_events: file.snapshots.every_events,
                every: Duration::from_secs(file.snapshots.every_seconds),
                keep: file.snapshots.keep,
            });
        }
        if let Some(url) = overrides.snapshot_store.or(file.snapshots.store) {
            let store = crate::snapshot::SnapshotStore::open(&url)?;
            config.worker.snapshot_store = Some(std::sync::Arc::new(store));
        }
        if let Some(group) = overrides.group.or(file.cluster.group.clone()) {
            config.cluster = Some(cluster_config(
                group,
                overrides.advertise.or(file.cluster.advertise.clone()),
                &file.cluster,
                config.kafka.as_ref(),
            )?);
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |name, value: String, reason| ConfigError::Invalid {
            name,
            value,
            reason,
        };
        if self.default_partitions == 0
            || self.default_partitions > crate::source::embedded::MAX_PARTITIONS
        {
            return Err(invalid(
                "default_partitions",
                self.default_partitions.to_string(),
                "choose 1 to 1024",
            ));
        }
        if self.max_request_bytes < 1024 {
            return Err(invalid(
                "max_request_bytes",
                self.max_request_bytes.to_string(),
                "allow at least 1024 bytes",
            ));
        }
        if !(0..=19).contains(&self.worker.worker_nice) {
            return Err(invalid(
                "worker_nice",
                self.worker.worker_nice.to_string(),
                "use 0 (same priority as queries) to 19 (lowest)",
            ));
        }
        if self.worker.standby_replicas > MAX_STANDBY_REPLICAS {
            return Err(invalid(
                "cluster standby_replicas",
                self.worker.standby_replicas.to_string(),
                "choose 0 to 16: each standby folds every event of its units once more",
            ));
        }
        // Settings where zero can only be a mistake.
        let zeros = [
            (
                self.worker.worker_threads == 0,
                "worker_threads",
                "at least one thread folds",
            ),
            (
                self.worker.batch_max_events == 0,
                "batch_max_events",
                "a batch holds at least one event",
            ),
            (
                self.worker.commit_max_events == 0,
                "commit_max_events",
                "a commit holds at least one event; use 1 to commit every batch",
            ),
            (
                self.http.request_timeout.is_zero(),
                "request_timeout_ms",
                "a request needs some time to arrive; use at least 100 ms",
            ),
            (
                self.http.header_read_timeout.is_zero(),
                "header_read_timeout_ms",
                "a request head needs some time to arrive; use at least 100 ms",
            ),
            (
                self.http.max_connections == 0,
                "max_connections",
                "allow at least one connection",
            ),
            (
                self.http.max_in_flight_requests == 0,
                "max_in_flight_requests",
                "allow at least one request at a time",
            ),
            (
                self.worker.stall_after.is_zero(),
                "stall_after_ms",
                "a projection needs some time to apply a batch; use at least 10 ms",
            ),
            (
                self.limits.call_timeout.is_zero(),
                "limits.call_timeout_ms",
                "a call needs some time; use at least 10 ms",
            ),
        ];
        if let Some((_, name, reason)) = zeros.into_iter().find(|(zero, _, _)| *zero) {
            return Err(invalid(name, "0".into(), reason));
        }
        if let Some(kafka) = &self.kafka
            && kafka.bootstrap.trim().is_empty()
        {
            return Err(invalid(
                "kafka.bootstrap",
                "\"\"".into(),
                "name at least one broker, e.g. 127.0.0.1:9092",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_and_file_over_defaults() {
        let file: FileConfig = toml::from_str(
            r#"
            data_dir = "/var/lib/projector"
            listen = "127.0.0.1:9000"
            batch_max_events = 50
            [limits]
            call_timeout_ms = 2000
            "#,
        )
        .unwrap();
        let config = Config::resolve(
            file,
            Overrides {
                listen: Some("127.0.0.1:9100".parse().unwrap()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/projector"));
        assert_eq!(config.listen.port(), 9100);
        assert_eq!(config.worker.batch_max_events, 50);
        assert_eq!(config.limits.call_timeout, Duration::from_secs(2));
        assert_eq!(config.modules_dir, PathBuf::from("./projections"));
    }

    #[test]
    fn page_caches_default_small_and_come_from_the_file() {
        let defaults = Config::resolve(FileConfig::default(), Overrides::default()).unwrap();
        assert_eq!(
            defaults.worker.state_cache_bytes,
            crate::store::DEFAULT_CACHE_BYTES
        );
        assert_eq!(
            defaults.log_cache_bytes,
            crate::source::embedded::DEFAULT_CACHE_BYTES
        );
        let file: FileConfig = toml::from_str("state_cache_mb = 4\nlog_cache_mb = 100").unwrap();
        let config = Config::resolve(file, Overrides::default()).unwrap();
        assert_eq!(config.worker.state_cache_bytes, 4 << 20);
        assert_eq!(config.log_cache_bytes, 100 << 20);
    }

    #[test]
    fn kafka_comes_from_file_flags_and_properties() {
        let file: FileConfig = toml::from_str(
            r#"
            [kafka]
            bootstrap = "file:9092"
            commit_group_offsets = true
            [kafka.properties]
            "security.protocol" = "plaintext"
            "#,
        )
        .unwrap();
        let config = Config::resolve(
            file,
            Overrides {
                kafka_bootstrap: Some("flag:9092".into()),
                kafka_properties: vec![("client.rack".into(), "r1".into())],
                ..Overrides::default()
            },
        )
        .unwrap();
        let kafka = config.kafka.unwrap();
        assert_eq!(kafka.bootstrap, "flag:9092");
        assert!(kafka.commit_group_offsets);
        assert_eq!(kafka.properties["security.protocol"], "plaintext");
        assert_eq!(kafka.properties["client.rack"], "r1");

        let err = Config::resolve(
            FileConfig::default(),
            Overrides {
                kafka_properties: vec![("a".into(), "b".into())],
                ..Overrides::default()
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("--kafka"), "{err}");
    }

    #[test]
    fn cluster_settings_are_checked_and_name_the_fix() {
        let resolve = |toml_text: &str| {
            Config::resolve(toml::from_str(toml_text).unwrap(), Overrides::default())
        };
        let with_kafka =
            |cluster: &str| format!("[kafka]\nbootstrap = \"k:9092\"\n[cluster]\n{cluster}\n");
        let config = resolve(&with_kafka(
            "group = \"orders\"\nadvertise = \"http://10.0.0.5:7878/\"\nstandby_replicas = 2",
        ))
        .unwrap();
        let cluster = config.cluster.unwrap();
        assert_eq!(cluster.advertise, "http://10.0.0.5:7878");
        assert_eq!(cluster.slots, crate::cluster::DEFAULT_SLOTS);
        assert_eq!(cluster.units_topic(), "projector.orders.units");
        assert_eq!(config.worker.standby_replicas, 2);
        assert_eq!(Config::default().worker.standby_replicas, 0);

        for (cluster, kafka, named, fix) in [
            (
                "group = \"o\"\nadvertise = \"http://h:1\"",
                false,
                "group",
                "--kafka",
            ),
            ("group = \"o\"", true, "advertise", "--advertise URL"),
            (
                "group = \"o\"\nadvertise = \"h:1\"",
                true,
                "advertise",
                "http://",
            ),
            (
                "group = \"o p\"\nadvertise = \"http://h:1\"",
                true,
                "group",
                "letters",
            ),
            (
                "group = \"o\"\nadvertise = \"http://h:1\"\nslots = 0",
                true,
                "cluster slots",
                "1 to 10000",
            ),
            (
                "group = \"o\"\nadvertise = \"http://h:1\"\nsession_timeout_ms = 100",
                true,
                "session_timeout_ms",
                "at least 600",
            ),
            ("standby_replicas = 17", true, "standby_replicas", "0 to 16"),
        ] {
            let text = if kafka {
                with_kafka(cluster)
            } else {
                format!("[cluster]\n{cluster}\n")
            };
            let err = resolve(&text).unwrap_err().to_string();
            assert!(err.contains(named) && err.contains(fix), "{cluster}: {err}");
        }
        let err = toml::from_str::<FileConfig>("[cluster]\nstandbys = 1").unwrap_err();
        assert!(err.to_string().contains("standbys"), "{err}");
    }

    #[test]
    fn default_listen_is_loopback() {
        assert!(Config::default().listen.ip().is_loopback());
    }

    #[test]
    fn http_settings_and_token_follow_the_precedence() {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "from-file\n").unwrap();
        let file: FileConfig = toml::from_str(
            r#"
            api_token = "from-toml"
            request_timeout_ms = 5000
            header_read_timeout_ms = 2000
            max_connections = 10
            "#,
        )
        .unwrap();
        let config = Config::resolve(
            file,
            Overrides {
                api_token_file: Some(token_file.clone()),
                max_connections: Some(20),
                ..Overrides::default()
            },
        )
        .unwrap();
        let token = config.http.api_token.unwrap();
        assert!(token.matches(b"from-file"));
        assert!(!format!("{:?}", Config::default()).contains("from-file"));
        assert_eq!(config.http.request_timeout, Duration::from_secs(5));
        assert_eq!(config.http.header_read_timeout, Duration::from_secs(2));
        assert_eq!(config.http.max_connections, 20);
        assert_eq!(
            config.http.max_in_flight_requests,
            HttpConfig::default().max_in_flight_requests
        );

        let config = Config::resolve(
            toml::from_str("api_token = \"from-toml\"").unwrap(),
            Overrides::default(),
        )
        .unwrap();
        assert!(config.http.api_token.unwrap().matches(b"from-toml"));
        assert!(
            Config::resolve(FileConfig::default(), Overrides::default())
                .unwrap()
                .http
                .api_token
                .is_none()
        );

        let both = Config::resolve(
            FileConfig::default(),
            Overrides {
                api_token: Some("a".into()),
                api_token_file: Some(token_file),
                ..Overrides::default()
            },
        )
        .unwrap_err();
        assert!(both.to_string().contains("not both"), "{both}");
        let empty = Config::resolve(
            FileConfig::default(),
            Overrides {
                api_token: Some(" ".into()),
                ..Overrides::default()
            },
        )
        .unwrap_err();
        assert!(empty.to_string().contains("empty"), "{empty}");
        let zero = Config::resolve(
            FileConfig {
                max_connections: Some(0),
                ..FileConfig::default()
            },
            Overrides::default(),
        )
        .unwrap_err();
        assert!(zero.to_string().contains("max_connections"), "{zero}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let err = toml::from_str::<FileConfig>("data_dri = \"x\"").unwrap_err();
        assert!(err.to_string().contains("data_dri"), "{err}");
        let err = Config::resolve(
            FileConfig {
                default_partitions: Some(0),
                ..FileConfig::default()
            },
            Overrides::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("default_partitions"), "{err}");
    }

    #[test]
    fn stall_after_follows_the_precedence_and_refuses_zero() {
        let file: FileConfig = toml::from_str("stall_after_ms = 5000").unwrap();
        let config = Config::resolve(file, Overrides::default()).unwrap();
        assert_eq!(config.worker.stall_after, Duration::from_secs(5));
        let config = Config::resolve(
            toml::from_str("stall_after_ms = 5000").unwrap(),
            Overrides {
                stall_after_ms: Some(200),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(config.worker.stall_after, Duration::from_millis(200));
        assert_eq!(
            Config::default().worker.stall_after,
            Duration::from_secs(30)
        );
        let zero = Config::resolve(
            FileConfig {
                stall_after_ms: Some(0),
                ..FileConfig::default()
            },
            Overrides::default(),
        )
        .unwrap_err();
        assert!(zero.to_string().contains("stall_after_ms"), "{zero}");
    }
}
