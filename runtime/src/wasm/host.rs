//! What a module can reach: its own state (through the batch overlay or a
//! read-only view), a log attributed to it, and a locked-down WASI with no
//! files, network, environment, real clocks or real randomness, so that a
//! replay computes exactly what the live run did.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::AsyncWrite;
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::random::Deterministic;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView};

use super::Limits;
use super::bindings::projector::projection::{log, state, types};
use crate::store::{Overlay, StateReader, StoreError};

/// Which state a running call may touch.
#[derive(Debug, Default)]
pub enum StateAccess {
    /// `describe`: no state at all.
    #[default]
    None,
    /// `handle`: reads through the overlay, writes into it.
    Batch { base: StateReader, overlay: Overlay },
    /// `query`: reads only.
    Query { base: StateReader },
}

/// The guest's last stderr lines: a Rust panic message lands there just
/// before the trap, and is the best explanation of it.
pub type RecentStderr = Arc<std::sync::Mutex<Vec<String>>>;
const RECENT_STDERR_LINES: usize = 4;

/// Per-instance host data in the wasmtime store.
pub struct HostState {
    pub(super) recent_stderr: RecentStderr,
    pub(super) access: StateAccess,
    pub(super) limits: MemoryCap,
    /// A state read that failed in storage (not the module's doing); the
    /// call is aborted and the caller sees this error, not a trap.
    pub(super) storage_error: Option<StoreError>,
    /// `name@short-hash`, attached to every log line of the module.
    label: Arc<str>,
    max_key_bytes: usize,
    max_value_bytes: usize,
    max_scan: usize,
    wasi: WasiCtx,
    /// WASI preview 1, for core modules (`wit/core-abi.md`).
    pub(super) wasi_p1: WasiP1Ctx,
    /// A core module's `state_get`/`state_scan` answer that did not fit its
    /// buffer: (request, answer), handed over on the call that asks again.
    pub(super) core_pending: Option<(Vec<u8>, Vec<u8>)>,
    table: ResourceTable,
}

impl HostState {
    pub fn new(label: Arc<str>, limits: &Limits) -> Self {
        let recent_stderr = RecentStderr::default();
        // The same lockdown for components (WASI p2) and core modules (p1).
        let locked_down = || {
            let mut wasi = WasiCtxBuilder::new();
            wasi.stdout(GuestOutput {
                label: label.clone(),
                stream: "stdout",
                recent: None,
            })
            .stderr(GuestOutput {
                label: label.clone(),
                stream: "stderr",
                recent: Some(recent_stderr.clone()),
            })
            .wall_clock(FrozenClock)
            .monotonic_clock(FrozenClock)
            .secure_random(Deterministic::new(DETERMINISTIC_SEED.to_vec()))
            .insecure_random(Deterministic::new(DETERMINISTIC_SEED.to_vec()))
            .insecure_random_seed(0)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
            wasi
        };
        let wasi = locked_down().build();
        let wasi_p1 = locked_down().build_p1();
        Self {
            recent_stderr,
            access: StateAccess::None,
            storage_error: None,
            limits: MemoryCap {
                max_memory_bytes: limits.max_memory_bytes,
                denied: None,
                inner: StoreLimitsBuilder::new()
                    .memory_size(limits.max_memory_bytes)
                    .instances(MAX_CORE_INSTANCES)
                    .build(),
            },
            label,
            max_key_bytes: limits.max_key_bytes,
            max_value_bytes: limits.max_value_bytes,
            max_scan: limits.max_scan_entries,
            wasi,
            wasi_p1,
            core_pending: None,
            table: ResourceTable::new(),
        }
    }

    fn base(&self) -> wasmtime::Result<&StateReader> {
        match &self.access {
            StateAccess::Batch { base, .. } | StateAccess::Query { base } => Ok(base),
            StateAccess::None => Err(wasmtime::Error::msg("state is not available in `describe`")),
        }
    }

    fn overlay_for_write(&mut self, op: &str) -> wasmtime::Result<&mut Overlay> {
        match &mut self.access {
            StateAccess::Batch { overlay, .. } => Ok(overlay),
            StateAccess::Query { .. } => Err(wasmtime::Error::msg(format!(
                "state `{op}` during a query: state is read-only while a query runs"
            ))),
            StateAccess::None => Err(wasmtime::Error::msg(format!(
                "state `{op}` in `describe`: state is not available there"
            ))),
        }
    }

    fn storage_failed(&mut self, error: StoreError) -> wasmtime::Error {
        let message = error.to_string();
        self.storage_error = Some(error);
        wasmtime::Error::msg(message)
    }

    fn check_key(&self, key: &[u8]) -> wasmtime::Result<()> {
        if key.len() > self.max_key_bytes {
            return Err(wasmtime::Error::msg(format!(
                "state key of {} bytes exceeds the limit of {} bytes (limits.max_key_bytes)",
                key.len(),
                self.max_key_bytes
            )));
        }
        Ok(())
    }
}

/// The store's limiter: `StoreLimits`, remembering a refused memory growth
/// so the trap that follows (an allocator abort) can name the limit.
pub struct MemoryCap {
    pub(super) max_memory_bytes: usize,
    /// Bytes the module last asked for and was refused.
    pub(super) denied: Option<usize>,
    inner: StoreLimits,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.inner.memory_growing(current, desired, maximum)?;
        if !allowed {
            self.denied = Some(desired);
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// Core module instances one component may create. A component is made of
/// several: a Rust guest 3, componentize-js 4, componentize-py 14
/// (libc, libpython, the bindings, the WASI adapter, ...) and one more per
/// Python extension module it bundles. The cap only stops a module that
/// instantiates without end; each linear memory is capped on its own by
/// `limits.max_memory_bytes`.
const MAX_CORE_INSTANCES: usize = 64;

/// Bytes the deterministic WASI random sources cycle through.
const DETERMINISTIC_SEED: [u8; 16] = *b"projector-replay";

impl state::Host for HostState {
    fn get(&mut self, key: Vec<u8>) -> wasmtime::Result<Option<Vec<u8>>> {
        let value = match &self.access {
            StateAccess::Batch { base, overlay } => overlay.get(base, &key),
            _ => self.base()?.get(&key),
        };
        value.map_err(|e| self.storage_failed(e))
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> wasmtime::Result<()> {
        self.check_key(&key)?;
        if value.len() > self.max_value_bytes {
            return Err(wasmtime::Error::msg(format!(
                "state value of {} bytes under key {:?} exceeds the limit of {} bytes (limits.max_value_bytes)",
                value.len(),
                String::from_utf8_lossy(&key),
                self.max_value_bytes
            )));
        }
        self.overlay_for_write("put")?.put(key, value);
        Ok(())
    }

    fn delete(&mut self, key: Vec<u8>) -> wasmtime::Result<()> {
        self.check_key(&key)?;
        self.overlay_for_write("delete")?.delete(key);
        Ok(())
    }

    fn scan(
        &mut self,
        prefix: Vec<u8>,
        start_after: Option<Vec<u8>>,
        limit: u32,
    ) -> wasmtime::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let limit = (limit as usize).min(self.max_scan);
        let entries = match &self.access {
            StateAccess::Batch { base, overlay } => {
                overlay.scan(base, &prefix, start_after.as_deref(), limit)
            }
            _ => self.base()?.scan(&prefix, start_after.as_deref(), limit),
        };
        entries.map_err(|e| self.storage_failed(e))
    }
}

impl types::Host for HostState {}

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            log::Level::Trace => tracing::Level::TRACE,
            log::Level::Debug => tracing::Level::DEBUG,
            log::Level::Info => tracing::Level::INFO,
            log::Level::Warn => tracing::Level::WARN,
            log::Level::Error => tracing::Level::ERROR,
        };
        guest_line(level, &self.label, "log", &message);
        Ok(())
    }
}

/// One line a module logged or printed. Inside a projection's span (its
/// worker thread) the span names the projection and version; elsewhere the
/// line names them itself, from the `name@short-hash` label.
fn guest_line(level: tracing::Level, label: &str, stream: &str, text: &str) {
    let in_span = !tracing::Span::current().is_none();
    let (projection, version) = label.rsplit_once('@').unwrap_or((label, ""));
    macro_rules! emit {
        ($level:expr) => {
            if in_span {
                tracing::event!($level, stream, "{text}")
            } else {
                tracing::event!($level, projection, version, stream, "{text}")
            }
        };
    }
    match level {
        tracing::Level::TRACE => emit!(tracing::Level::TRACE),
        tracing::Level::DEBUG => emit!(tracing::Level::DEBUG),
        tracing::Level::INFO => emit!(tracing::Level::INFO),
        tracing::Level::WARN => emit!(tracing::Level::WARN),
        _ => emit!(tracing::Level::ERROR),
    }
}

impl wasmtime_wasi::WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The same instant on every call, live or in replay. The monotonic clock
/// stands at 1 ns, not 0: Go's runtime refuses to start on a monotonic clock
/// that reads 0 ("nanotime returning zero").
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        1
    }
}

/// Guest stdout/stderr, turned into log lines attributed to the projection.
#[derive(Clone)]
struct GuestOutput {
    label: Arc<str>,
    stream: &'static str,
    recent: Option<RecentStderr>,
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineLogger {
            output: self.clone(),
            pending: Vec::new(),
        })
    }
}

struct LineLogger {
    output: GuestOutput,
    pending: Vec<u8>,
}

/// A guest that never writes a newline still gets its output logged.
const MAX_PENDING_LINE: usize = 16 * 1024;

impl LineLogger {
    fn emit(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end();
        guest_line(
            tracing::Level::INFO,
            &self.output.label,
            self.output.stream,
            text,
        );
        if let Some(recent) = &self.output.recent {
            let mut recent = recent
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if recent.len() == RECENT_STDERR_LINES {
                recent.remove(0);
            }
            recent.push(text.to_owned());
        }
    }

    fn flush_lines(&mut self) {
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            self.emit(&line);
        }
        if self.pending.len() > MAX_PENDING_LINE {
            let line = std::mem::take(&mut self.pending);
            self.emit(&line);
        }
    }
}

impl AsyncWrite for LineLogger {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.pending.extend_from_slice(buf);
        self.flush_lines();
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.emit(&line);
        }
        Poll::Ready(Ok(()))
    }
}
