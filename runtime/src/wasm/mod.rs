//! The Wasm host: one engine, module loading and validation, the on-disk
//! cache of compiled modules, and instances that run batches and queries.

pub mod bindings;
mod cache;
mod core;
pub mod core_abi;
mod host;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, Store, Trap, UpdateDeadline};

use bindings::{Projection, ProjectionPre};
use host::HostState;
pub use host::StateAccess;

use crate::event::Event;
use crate::store::{Overlay, StateReader};

/// The contract version this host implements (see `wit/projection.wit`).
pub const CONTRACT_PACKAGE: &str = "projector:projection";
pub const CONTRACT_VERSION: &str = "0.1.0";
const HANDLER_EXPORT: &str = "projector:projection/handler@0.1.0";

/// Most sources or queries a descriptor may list.
const MAX_SOURCES: usize = 256;

/// How often the epoch ticks; batch time budgets are counted in ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Per-instance resource limits.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_memory_bytes: usize,
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    pub max_scan_entries: usize,
    pub max_module_bytes: u64,
    /// Wall-clock budget for one `handle` or `query` call.
    pub call_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_memory_bytes: 512 << 20,
            max_key_bytes: 4 << 10,
            max_value_bytes: 16 << 20,
            max_scan_entries: 10_000,
            max_module_bytes: 256 << 20,
            call_timeout: Duration::from_secs(30),
        }
    }
}

/// Why a module file was not accepted. Each names the file and the fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    #[error("{file}: cannot read the module file: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{file}: module is {size} bytes, over the limit of {limit} bytes (limits.max_module_bytes)"
    )]
    TooLarge {
        file: PathBuf,
        size: u64,
        limit: u64,
    },
    #[error(
        "{file}: not a WebAssembly file (it does not start with the `\\0asm` magic bytes); build a Wasm component, e.g. `cargo build --release --target wasm32-wasip2`"
    )]
    NotWasm { file: PathBuf },
    #[error(
        "{file}: a core WebAssembly module, not a component, and it does not follow the core-module ABI (no `projector_abi_version` export); build a component for `wasm32-wasip2`, or export the functions of wit/core-abi.md"
    )]
    CoreModule { file: PathBuf },
    #[error("{file}: invalid WebAssembly component: {reason}")]
    Invalid { file: PathBuf, reason: String },
    #[error(
        "{file}: built against {found}, but this host implements {CONTRACT_PACKAGE}@{CONTRACT_VERSION}; rebuild the module against the WIT in this host's `wit/` folder"
    )]
    WrongContractVersion { file: PathBuf, found: String },
    #[error(
        "{file}: missing required export: {reason}; a projection must export `{HANDLER_EXPORT}` with `describe`, `handle` and `query`"
    )]
    MissingExport { file: PathBuf, reason: String },
    #[error(
        "{file}: imports {import}, which this host does not provide (only the projector:projection interfaces and WASI are available)"
    )]
    UnknownImport { file: PathBuf, import: String },
    #[error("{file}: `describe` failed: {reason}")]
    Describe { file: PathBuf, reason: String },
    #[error("{file}: invalid descriptor: {reason}")]
    BadDescriptor { file: PathBuf, reason: String },
}

/// A failure while running a module.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The module returned an error for one event of the batch.
    #[error("event {index} of the batch was rejected: {message}")]
    Rejected { index: u32, message: String },
    /// The module trapped (panic, limit, timeout); the instance is unusable.
    #[error("module trapped: {0}")]
    Trap(String),
    #[error("could not create an instance: {0}")]
    Instantiate(String),
    /// The state file failed while the module read it: a storage fault,
    /// not the module's; the instance is unusable.
    #[error("state storage failed during the call: {0}")]
    Storage(crate::store::StoreError),
    /// The owner asked the call to end (its worker is stopping): not the
    /// module's fault, and not a verdict on the event; the instance is
    /// unusable.
    #[error("the call was interrupted: the projection is stopping")]
    Interrupted,
}

/// What a module says about itself, checked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Descriptor {
    pub name: String,
    pub version: String,
    pub sources: Vec<String>,
    pub state_version: u32,
    pub queries: Vec<String>,
}

/// The one engine and linker every module shares.
#[derive(Clone)]
pub struct WasmHost {
    engine: Engine,
    linker: Arc<Linker<HostState>>,
    /// WASI preview 1 and the `projector` imports of `wit/core-abi.md`.
    core_linker: Arc<wasmtime::Linker<HostState>>,
    cache: cache::CompileCache,
    limits: Limits,
    _ticker: Arc<EpochTicker>,
}

impl std::fmt::Debug for WasmHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmHost")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[derive(Debug, thiserror::Error)]
#[error("could not set up the WebAssembly engine: {0}")]
pub struct EngineError(String);

impl WasmHost {
    /// Prunes the compiled-code cache (see [`cache::CompileCache::prune`]).
    pub fn prune_cache(
        &self,
        in_use: &dyn Fn(&str) -> bool,
        unused_for: std::time::Duration,
    ) -> usize {
        self.cache.prune(in_use, unused_for)
    }

    /// `cache_dir` holds compiled modules keyed by content hash.
    pub fn new(cache_dir: &Path, limits: Limits) -> Result<Self, EngineError> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        let engine = Engine::new(&config).map_err(|e| EngineError(format!("{e:#}")))?;
        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| EngineError(format!("{e:#}")))?;
        Projection::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .map_err(|e| EngineError(format!("{e:#}")))?;

        let stop = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("wasm-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| EngineError(e.to_string()))?;
        }
        let cache = cache::CompileCache::new(cache_dir, &engine);
        let core_linker = core::linker(&engine).map_err(|e| EngineError(format!("{e:#}")))?;
        Ok(Self {
            engine,
            linker: Arc::new(linker),
            core_linker: Arc::new(core_linker),
            cache,
            limits,
            _ticker: Arc::new(EpochTicker { stop }),
        })
    }

    /// Reads, compiles (or loads from cache), links and validates a module
    /// file, calling `describe` once.
    pub fn load(&self, file: &Path) -> Result<LoadedModule, LoadError> {
        let bytes = self.read_module(file)?;
        self.load_bytes(file, &bytes)
    }

    /// Reads a module file, refusing one over `limits.max_module_bytes`
    /// without reading more than the limit (the file may still be growing).
    pub fn read_module(&self, file: &Path) -> Result<Vec<u8>, LoadError> {
        use std::io::Read;
        let read_err = |source| LoadError::Read {
            file: file.to_owned(),
            source,
        };
        let limit = self.limits.max_module_bytes;
        let too_large = |size| LoadError::TooLarge {
            file: file.to_owned(),
            size,
            limit,
        };
        let opened = std::fs::File::open(file).map_err(read_err)?;
        let size = opened.metadata().map_err(read_err)?.len();
        if size > limit {
            return Err(too_large(size));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        opened
            .take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
        if bytes.len() as u64 > limit {
            return Err(too_large(bytes.len() as u64));
        }
        Ok(bytes)
    }

    pub fn load_bytes(&self, file: &Path, bytes: &[u8]) -> Result<LoadedModule, LoadError> {
        if bytes.len() as u64 > self.limits.max_module_bytes {
            return Err(LoadError::TooLarge {
                file: file.to_owned(),
                size: bytes.len() as u64,
                limit: self.limits.max_module_bytes,
            });
        }
        let kind = classify(file, bytes)?;
        let hash = blake3::hash(bytes).to_hex().to_string();
        if kind == Kind::Core {
            let (pre, from_cache) = self.load_core(file, &hash, bytes)?;
            return self.described(file, hash, from_cache, pre);
        }
        let (component, from_cache) =
            self.cache
                .load_or_compile(&hash, bytes)
                .map_err(|reason| LoadError::Invalid {
                    file: file.to_owned(),
                    reason,
                })?;
        check_contract(file, &self.engine, &component)?;
        let instance_pre = self.linker.instantiate_pre(&component).map_err(|e| {
            let reason = error_chain(&e);
            match reason.find("import `") {
                Some(_) => LoadError::UnknownImport {
                    file: file.to_owned(),
                    import: reason,
                },
                None => LoadError::Invalid {
                    file: file.to_owned(),
                    reason,
                },
            }
        })?;
        let pre = ProjectionPre::new(instance_pre).map_err(|e| LoadError::MissingExport {
            file: file.to_owned(),
            reason: error_chain(&e),
        })?;
        self.described(file, hash, from_cache, ModulePre::Component(pre))
    }

    /// Compiles (or loads from cache) and links a core module under the
    /// core-module ABI.
    fn load_core(
        &self,
        file: &Path,
        hash: &str,
        bytes: &[u8],
    ) -> Result<(ModulePre, bool), LoadError> {
        let (module, from_cache) =
            self.cache
                .load_or_compile_core(hash, bytes)
                .map_err(|reason| LoadError::Invalid {
                    file: file.to_owned(),
                    reason,
                })?;
        if !core::is_projection(&module) {
            return Err(LoadError::CoreModule {
                file: file.to_owned(),
            });
        }
        core::check_shape(&module).map_err(|reason| LoadError::MissingExport {
            file: file.to_owned(),
            reason,
        })?;
        let pre =
            self.core_linker
                .instantiate_pre(&module)
                .map_err(|e| LoadError::UnknownImport {
                    file: file.to_owned(),
                    import: error_chain(&e),
                })?;
        Ok((ModulePre::Core(pre), from_cache))
    }

    /// A linked module, validated by calling `describe` once.
    fn described(
        &self,
        file: &Path,
        hash: String,
        from_cache: bool,
        pre: ModulePre,
    ) -> Result<LoadedModule, LoadError> {
        let mut module = LoadedModule {
            file: file.to_owned(),
            hash,
            from_cache,
            descriptor: Descriptor {
                name: String::new(),
                version: String::new(),
                sources: Vec::new(),
                state_version: 0,
                queries: Vec::new(),
            },
            pre,
            host: self.clone(),
        };
        let mut instance = module
            .instantiate("<loading>")
            .map_err(|e| LoadError::Describe {
                file: file.to_owned(),
                reason: e.to_string(),
            })?;
        let raw = instance.describe().map_err(|e| LoadError::Describe {
            file: file.to_owned(),
            reason: e.to_string(),
        })?;
        module.descriptor =
            validate_descriptor(raw).map_err(|reason| LoadError::BadDescriptor {
                file: file.to_owned(),
                reason,
            })?;
        Ok(module)
    }
}

/// What a file holds: a component, or a core module (which must follow
/// the core-module ABI, checked once compiled).
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Component,
    Core,
}

fn classify(file: &Path, bytes: &[u8]) -> Result<Kind, LoadError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(LoadError::NotWasm {
            file: file.to_owned(),
        });
    }
    match bytes[4..8] {
        [0x01, 0x00, 0x00, 0x00] => Ok(Kind::Core),
        [_, _, 0x01, 0x00] => Ok(Kind::Component),
        _ => Err(LoadError::Invalid {
            file: file.to_owned(),
            reason: format!("unknown WebAssembly version/layer {:02x?}", &bytes[4..8]),
        }),
    }
}

/// Rejects a module built against another version of our WIT package with a
/// message naming both versions, before the linker reports it less clearly.
fn check_contract(file: &Path, engine: &Engine, component: &Component) -> Result<(), LoadError> {
    let ty = component.component_type();
    let names: Vec<String> = ty
        .imports(engine)
        .map(|(name, _)| name.to_owned())
        .chain(ty.exports(engine).map(|(name, _)| name.to_owned()))
        .collect();
    for name in &names {
        if let Some(rest) = name.strip_prefix(CONTRACT_PACKAGE) {
            let version = rest.rsplit_once('@').map_or("", |(_, v)| v);
            if version != CONTRACT_VERSION {
                return Err(LoadError::WrongContractVersion {
                    file: file.to_owned(),
                    found: if version.is_empty() {
                        format!("an unversioned {CONTRACT_PACKAGE}")
                    } else {
                        format!("{CONTRACT_PACKAGE}@{version}")
                    },
                });
            }
        }
    }
    if !names.iter().any(|n| n == HANDLER_EXPORT) {
        return Err(LoadError::MissingExport {
            file: file.to_owned(),
            reason: format!(
                "no export named `{HANDLER_EXPORT}` (exports: {})",
                ty.exports(engine)
                    .map(|(n, _)| n.to_owned())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    Ok(())
}

/// A projection name is used in URLs, file names and metrics labels.
pub(crate) fn is_valid_projection_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn validate_descriptor(raw: bindings::Descriptor) -> Result<Descriptor, String> {
    if !is_valid_projection_name(&raw.name) {
        return Err(format!(
            "name {:?} must be 1 to 64 characters of a-z, 0-9 and '-', not starting with '-'",
            raw.name
        ));
    }
    if raw.sources.is_empty() {
        return Err(format!(
            "projection {:?} subscribes to no sources; list at least one topic",
            raw.name
        ));
    }
    for source in &raw.sources {
        let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if source.is_empty() || source.len() > 249 || !source.chars().all(legal) {
            return Err(format!("source {source:?} is not a valid topic name"));
        }
    }
    if raw.sources.len() > MAX_SOURCES {
        return Err(format!(
            "projection {:?} lists {} sources; at most {MAX_SOURCES} are allowed",
            raw.name,
            raw.sources.len()
        ));
    }
    if raw.version.len() > 128 {
        return Err("version label is longer than 128 bytes".to_owned());
    }
    if raw.queries.len() > MAX_SOURCES {
        return Err(format!(
            "projection {:?} lists {} queries; at most {MAX_SOURCES} are allowed",
            raw.name,
            raw.queries.len()
        ));
    }
    for query in &raw.queries {
        let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if query.is_empty() || query.len() > 64 || !query.chars().all(legal) {
            return Err(format!(
                "query name {query:?} must be 1 to 64 characters of a-z, A-Z, 0-9, '.', '_' and '-'"
            ));
        }
    }
    let mut sources = raw.sources;
    sources.sort();
    sources.dedup();
    Ok(Descriptor {
        name: raw.name,
        version: raw.version,
        sources,
        state_version: raw.state_version,
        queries: raw.queries,
    })
}

/// Renders an error and its causes on one line.
pub(crate) fn error_chain(err: &wasmtime::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// A linked module of either kind.
#[derive(Clone)]
enum ModulePre {
    Component(ProjectionPre<HostState>),
    Core(wasmtime::InstancePre<HostState>),
}

/// The exports of a live instance of either kind.
enum Calls {
    Component(Projection),
    Core(Box<core::CoreCalls>),
}

/// A compiled, linked and validated module, ready to instantiate.
#[derive(Clone)]
pub struct LoadedModule {
    pub file: PathBuf,
    /// blake3 of the file: the version id.
    pub hash: String,
    /// Whether the compiled code came from the on-disk cache.
    pub from_cache: bool,
    pub descriptor: Descriptor,
    pre: ModulePre,
    host: WasmHost,
}

impl std::fmt::Debug for LoadedModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModule")
            .field("file", &self.file)
            .field("hash", &self.hash)
            .field("descriptor", &self.descriptor)
            .finish_non_exhaustive()
    }
}

impl LoadedModule {
    pub fn short_hash(&self) -> &str {
        &self.hash[..12]
    }

    /// An instance under the host's default limits.
    pub fn instantiate(&self, label: &str) -> Result<Instance, RunError> {
        self.instantiate_with(label, &self.host.limits)
    }

    /// An instance under `limits` (a projection's own, from its sidecar).
    pub fn instantiate_with(&self, label: &str, limits: &Limits) -> Result<Instance, RunError> {
        let host = &self.host;
        let mut store = Store::new(&host.engine, HostState::new(Arc::from(label), limits));
        store.limiter(|state| &mut state.limits);
        store.set_epoch_deadline(timeout_ticks(limits.call_timeout));
        let instantiated = match &self.pre {
            ModulePre::Component(pre) => pre.instantiate(&mut store).map(Calls::Component),
            ModulePre::Core(pre) => pre
                .instantiate(&mut store)
                .and_then(|instance| core::CoreCalls::new(&mut store, &instance))
                .map(|calls| Calls::Core(Box::new(calls))),
        };
        let calls = instantiated.map_err(|e| {
            let reason = error_chain(&e);
            match store.data_mut().limits.denied.take() {
                Some(asked) => RunError::Instantiate(format!(
                    "{reason}: the module needs {asked} bytes of memory at start, over limits.max_memory_bytes = {}",
                    limits.max_memory_bytes
                )),
                None => RunError::Instantiate(reason),
            }
        })?;
        Ok(Instance {
            store,
            calls,
            timeout_ticks: timeout_ticks(limits.call_timeout),
            call_timeout: limits.call_timeout,
            poisoned: false,
            interrupt: None,
        })
    }
}

fn timeout_ticks(timeout: Duration) -> u64 {
    (timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64
}

/// One live instance of a module. Not shared between threads at once.
pub struct Instance {
    store: Store<HostState>,
    calls: Calls,
    timeout_ticks: u64,
    call_timeout: Duration,
    poisoned: bool,
    interrupt: Option<Interrupt>,
}

/// What [`Instance::interrupt_on`] checks on every epoch tick of a call.
struct Interrupt {
    /// Ticks of the time budget left in the current call.
    ticks_left: Arc<AtomicU64>,
    /// Whether the flag, not the budget, ended the last call.
    fired: Arc<AtomicBool>,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl Instance {
    /// After a trap an instance must not be used again.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Ends any call of this instance within a tick (10 ms) of `flag`
    /// being set, with [`RunError::Interrupted`], instead of letting it run
    /// out its time budget: a stopping worker (a swap, a shutdown) must not
    /// wait for a long call.
    pub fn interrupt_on(&mut self, flag: Arc<AtomicBool>) {
        let ticks_left = Arc::new(AtomicU64::new(self.timeout_ticks));
        let fired = Arc::new(AtomicBool::new(false));
        let (left, stopped) = (ticks_left.clone(), fired.clone());
        self.store.epoch_deadline_callback(move |_| {
            if flag.load(Ordering::Relaxed) {
                stopped.store(true, Ordering::Relaxed);
                return Ok(UpdateDeadline::Interrupt);
            }
            // One tick of the budget went by.
            let before = left.fetch_sub(1, Ordering::Relaxed);
            if before <= 1 {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Continue(1))
            }
        });
        self.interrupt = Some(Interrupt { ticks_left, fired });
    }

    fn trap(&mut self, err: &wasmtime::Error) -> RunError {
        self.poisoned = true;
        if self
            .interrupt
            .as_ref()
            .is_some_and(|i| i.fired.load(Ordering::Relaxed))
        {
            return RunError::Interrupted;
        }
        if let Some(storage) = self.store.data_mut().storage_error.take() {
            return RunError::Storage(storage);
        }
        let stderr: Vec<String> = std::mem::take(
            &mut *self
                .store
                .data()
                .recent_stderr
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let denied_memory = self.store.data_mut().limits.denied.take();
        let max_memory = self.store.data().limits.max_memory_bytes;
        let reason = match (err.downcast_ref::<Trap>(), denied_memory) {
            (Some(Trap::Interrupt), _) => format!(
                "time budget exceeded: the call ran longer than {} ms (limits.call_timeout_ms)",
                self.call_timeout.as_millis()
            ),
            (Some(Trap::StackOverflow), _) => {
                "call stack exhausted (unbounded or too deep recursion in the module)".to_owned()
            }
            // A refused memory growth ends in the guest allocator aborting.
            (Some(_), Some(asked)) => format!(
                "memory limit exceeded: the module asked for {asked} bytes of linear memory, over limits.max_memory_bytes = {max_memory}"
            ),
            // The trap's own text carries a wasm backtrace; what the guest
            // printed last (a panic message) says more.
            (Some(trap), None) if !stderr.is_empty() => {
                format!("{trap}: {}", stderr.join(" | "))
            }
            (Some(trap), None) => trap.to_string(),
            (None, _) => error_chain(err),
        };
        RunError::Trap(reason)
    }

    /// Forgets what an earlier call left behind (a refused memory growth
    /// the guest survived), so a trap is explained by this call alone.
    fn begin_call(&mut self, access: StateAccess) {
        let data = self.store.data_mut();
        data.access = access;
        data.limits.denied = None;
        data.storage_error = None;
        match &self.interrupt {
            // Counted down tick by tick, checking the flag on each.
            Some(interrupt) => {
                interrupt
                    .ticks_left
                    .store(self.timeout_ticks, Ordering::Relaxed);
                interrupt.fired.store(false, Ordering::Relaxed);
                self.store.set_epoch_deadline(1);
            }
            None => self.store.set_epoch_deadline(self.timeout_ticks),
        }
    }

    pub fn describe(&mut self) -> Result<bindings::Descriptor, RunError> {
        self.begin_call(StateAccess::None);
        let outcome = match &self.calls {
            Calls::Component(bindings) => bindings
                .projector_projection_handler()
                .call_describe(&mut self.store),
            Calls::Core(calls) => calls.describe(&mut self.store),
        };
        outcome.map_err(|e| self.trap(&e))
    }

    /// Runs one batch against `overlay` (read-through to `base`). Returns the
    /// overlay with the batch's writes; on error its contents are garbage.
    pub fn handle(
        &mut self,
        events: &[bindings::Event],
        base: StateReader,
        overlay: Overlay,
    ) -> (Result<(), RunError>, Overlay) {
        self.begin_call(StateAccess::Batch { base, overlay });
        let outcome = match &self.calls {
            Calls::Component(bindings) => bindings
                .projector_projection_handler()
                .call_handle(&mut self.store, events),
            Calls::Core(calls) => calls.handle(&mut self.store, events),
        };
        let overlay = match std::mem::take(&mut self.store.data_mut().access) {
            StateAccess::Batch { overlay, .. } => overlay,
            _ => Overlay::default(),
        };
        let result = match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(RunError::Rejected {
                index: e.index,
                message: e.message,
            }),
            Err(e) => Err(self.trap(&e)),
        };
        (result, overlay)
    }

    /// Runs a custom query with read-only state.
    pub fn query(
        &mut self,
        base: StateReader,
        name: &str,
        args: &[u8],
    ) -> Result<Result<Vec<u8>, bindings::QueryError>, RunError> {
        self.begin_call(StateAccess::Query { base });
        let outcome = match &self.calls {
            Calls::Component(bindings) => {
                bindings
                    .projector_projection_handler()
                    .call_query(&mut self.store, name, args)
            }
            Calls::Core(calls) => calls.query(&mut self.store, name, args),
        };
        self.store.data_mut().access = StateAccess::None;
        outcome.map_err(|e| self.trap(&e))
    }
}

/// Moves a host event into the WIT record without copying its bytes.
pub fn to_wit_event(event: Event) -> bindings::Event {
    bindings::Event {
        source: event.source,
        partition: event.partition,
        offset: event.offset,
        key: event.key,
        payload: event.payload,
        timestamp_ms: event.timestamp_ms,
        headers: event.headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_names_the_kind_of_file() {
        let file = Path::new("m.wasm");
        assert!(matches!(
            classify(file, b"hello world"),
            Err(LoadError::NotWasm { .. })
        ));
        // A core module is checked against the core-module ABI once compiled.
        assert_eq!(classify(file, b"\0asm\x01\0\0\0").unwrap(), Kind::Core);
        assert_eq!(
            classify(file, b"\0asm\x0d\0\x01\0").unwrap(),
            Kind::Component
        );
    }

    #[test]
    fn descriptor_names_and_sources_are_checked() {
        let raw = |name: &str, sources: &[&str]| bindings::Descriptor {
            name: name.into(),
            version: "1".into(),
            sources: sources.iter().map(|s| s.to_string()).collect(),
            state_version: 1,
            queries: vec![],
        };
        assert!(validate_descriptor(raw("order-totals", &["orders"])).is_ok());
        assert!(validate_descriptor(raw("Orders", &["orders"])).is_err());
        assert!(validate_descriptor(raw("", &["orders"])).is_err());
        assert!(validate_descriptor(raw("x", &[])).is_err());
        assert!(validate_descriptor(raw("x", &["a/b"])).is_err());
        let d = validate_descriptor(raw("x", &["b", "a", "b"])).unwrap();
        assert_eq!(d.sources, ["a", "b"]);
    }
}
