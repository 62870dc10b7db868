//! `projector run`: open the log, load the modules, start the workers, serve
//! HTTP, and shut everything down in order on SIGINT/SIGTERM.

use std::sync::Arc;

use crate::api::{self, AppState};
use crate::cluster::Cluster;
use crate::config::Config;
use crate::registry::Command;
use crate::registry::{Registry, RegistryError, Sources};
use crate::source::{EmbeddedLog, KafkaSource, LogError, Source, SourceError};
use crate::stall::StallMonitor;
use crate::wasm::{EngineError, WasmHost};
use crate::watcher::{ModuleEvent, ModuleWatcher, WatchError};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Watch(#[from] WatchError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(
        "cannot listen on {addr}: {source} (is another projector running? pass --listen HOST:PORT)"
    )]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error("start-up task failed: {0}")]
    Task(String),
    #[error("cannot start the stall monitor thread: {0}")]
    StallMonitor(#[source] std::io::Error),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
}

/// A started projector: the pieces `run` serves, usable on their own in tests
/// and benchmarks.
pub struct Running {
    pub registry: Arc<Registry>,
    pub log: EmbeddedLog,
    /// This instance's group, when it is in one.
    pub cluster: Option<Arc<Cluster>>,
    watcher: std::sync::Mutex<Option<ModuleWatcher>>,
    stall_monitor: std::sync::Mutex<Option<StallMonitor>>,
}

impl Running {
    /// Opens the embedded log and loads every module (blocking: compiles).
    pub fn start(config: &Config) -> Result<Self, ServerError> {
        let log = EmbeddedLog::open_with_cache(
            &config.data_dir.join("log.redb"),
            config.default_partitions,
            config.log_cache_bytes,
        )?;
        let host = WasmHost::new(&config.data_dir.join("cache"), config.limits.clone())?;
        let kafka = match &config.kafka {
            Some(kafka) => Some(Arc::new(KafkaSource::new(kafka.clone())?) as Arc<dyn Source>),
            None => None,
        };
        let sources = Sources {
            embedded: Arc::new(log.clone()),
            kafka,
        };
        std::fs::create_dir_all(&config.modules_dir).map_err(|source| {
            RegistryError::ModulesDir {
                path: config.modules_dir.clone(),
                source,
            }
        })?;
        // Watch before the registry lists the folder, so no change is lost;
        // changes seen twice are recognised by their content hash.
        let (changes, inbox) = std::sync::mpsc::channel();
        let watcher =
            ModuleWatcher::start(&config.modules_dir, config.watch_settle, move |event| {
                let _ = changes.send(event);
            })?;
        // In a group, the workers fold only the slots this instance holds;
        // it joins once every module is loaded.
        let cluster = match &config.cluster {
            Some(cluster) => Some(Arc::new(Cluster::start(cluster.clone())?)),
            None => None,
        };
        let mut worker = config.worker.clone();
        worker.cluster = cluster.as_ref().map(|c| c.ownership.clone());
        let registry = Registry::start(
            &host,
            sources,
            &config.modules_dir,
            &config.data_dir,
            &worker,
        )?;
        let commands = registry.commands();
        std::thread::Builder::new()
            .name("module-changes".into())
            .spawn(move || {
                for event in inbox {
                    let command = match event {
                        ModuleEvent::Changed(path) => Command::Changed(path),
                        ModuleEvent::Removed(path) => Command::Removed(path),
                        ModuleEvent::SidecarChanged(path) => Command::SidecarChanged(path),
                    };
                    if commands.send(command).is_err() {
                        return;
                    }
                }
            })
            .map_err(|source| RegistryError::ModulesDir {
                path: config.modules_dir.clone(),
                source,
            })?;
        let registry = Arc::new(registry);
        if let Some(cluster) = &cluster {
            cluster.join()?;
            tracing::info!(
                group = %cluster.config.group,
                advertise = %cluster.config.advertise,
                slots = cluster.ownership.slot_count(),
                "joined the group"
            );
        }
        let stall_monitor = StallMonitor::start(registry.clone(), config.worker.stall_after)
            .map_err(ServerError::StallMonitor)?;
        Ok(Self {
            registry,
            log,
            cluster,
            watcher: std::sync::Mutex::new(Some(watcher)),
            stall_monitor: std::sync::Mutex::new(Some(stall_monitor)),
        })
    }

    /// Stops the workers (each makes its state durable) and the log.
    pub fn shutdown(&self) {
        // First out of the group: its slots are committed and handed over
        // while the workers still run.
        if let Some(cluster) = &self.cluster {
            cluster.leave();
        }
        let watcher = self
            .watcher
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(watcher) = watcher {
            watcher.stop();
        }
        drop(
            self.stall_monitor
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
        );
        self.registry.shutdown();
        // Workers are stopped: no new snapshot starts. Those still being
        // written finish, or are abandoned without leaving a partial file.
        let abandoned = crate::worker::finish_snapshots(crate::worker::SNAPSHOT_SHUTDOWN_WAIT);
        if abandoned > 0 {
            tracing::warn!(
                abandoned,
                "snapshots still being written at shutdown were abandoned"
            );
        }
        self.log.shutdown();
    }
}

/// Open files kept free for state files, logs and modules besides sockets.
const FILES_BESIDES_CONNECTIONS: u64 = 1024;

pub async fn run(config: Config) -> Result<(), ServerError> {
    let wanted_files = config.http.max_connections as u64 + FILES_BESIDES_CONNECTIONS;
    if let Some(files) = api::serve::raise_open_files_limit(wanted_files)
        && files < wanted_files
    {
        tracing::warn!(
            "the open-files limit ({files}) is below max_connections + {FILES_BESIDES_CONNECTIONS}; \
             raise `ulimit -n` or lower max_connections ({})",
            config.http.max_connections
        );
    }
    let listener = api::serve::bind(config.listen).map_err(|source| ServerError::Listen {
        addr: config.listen,
        source,
    })?;
    let local = listener.local_addr().map_err(ServerError::Serve)?;
    let started = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || Running::start(&config))
            .await
            .map_err(|e| ServerError::Task(e.to_string()))??
    };
    let projections = started.registry.all();
    let rejected = started.registry.rejected();
    tracing::info!(
        listen = %local,
        data = %config.data_dir.display(),
        modules = %config.modules_dir.display(),
        projections = projections.len(),
        rejected = rejected.len(),
        "projector serving on http://{local}"
    );
    if !local.ip().is_loopback() && config.http.api_token.is_none() {
        tracing::warn!(
            "listening on {local}, beyond this machine, without an API token: anyone who can \
             reach it can append events, replay and restore; set --api-token-file or \
             PROJECTOR_API_TOKEN"
        );
    }
    let app = api::router(
        AppState {
            registry: started.registry.clone(),
            log: started.log.clone(),
            cluster: started.cluster.clone(),
        },
        config.max_request_bytes,
        &config.http,
    );
    let bars = std::io::IsTerminal::is_terminal(&std::io::stderr())
        .then(|| crate::progress::ProgressBars::start(started.registry.clone()).ok())
        .flatten();
    let settings = api::serve::ServeSettings {
        max_connections: config.http.max_connections,
        header_read_timeout: config.http.header_read_timeout,
        write_stall_timeout: config.http.request_timeout,
    };
    api::serve::serve(listener, app, settings, shutdown_signal()).await;
    drop(bars);
    tracing::info!("shutting down: finishing current batches");
    let running = Arc::new(started);
    tokio::task::spawn_blocking(move || running.shutdown())
        .await
        .map_err(|e| ServerError::Task(e.to_string()))?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
