//! Stall detection: a projection version that has lag but has applied
//! nothing for `stall_after_ms` is stalled (a module that loops within its
//! time budget, a source that stopped answering). Status and `/metrics`
//! compute the flag when asked; this monitor logs when it turns on and off,
//! so a stall is never silent even when nobody looks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::projection::SharedProjection;
use crate::registry::Registry;

/// Checks at most this often, so a long `stall_after` costs no busy loop...
const MAX_TICK: Duration = Duration::from_secs(1);
/// ...and at least this often, so a short one is still seen promptly.
const MIN_TICK: Duration = Duration::from_millis(5);

/// The running monitor; stopped when dropped.
#[derive(Debug)]
pub struct StallMonitor {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StallMonitor {
    /// Watches every version in `registry`, checking four times per
    /// `stall_after` (within 5 ms to 1 s).
    pub fn start(registry: Arc<Registry>, stall_after: Duration) -> std::io::Result<Self> {
        let tick = (stall_after / 4).clamp(MIN_TICK, MAX_TICK);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("stall-monitor".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        for (serving, building) in registry.versions() {
                            check(&serving);
                            if let Some(building) = building {
                                check(&building);
                            }
                        }
                        std::thread::sleep(tick);
                    }
                })?
        };
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for StallMonitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Logs a version's change into or out of a stall.
fn check(projection: &SharedProjection) {
    // An unreadable state file shows in status; it is no stall of ours.
    let Ok(lag) = projection.lag() else { return };
    let stalled = projection.stalled_for(lag);
    let was = projection.metrics.swap_stalled(stalled.is_some());
    let (name, version) = (projection.name(), projection.module.short_hash());
    match (was, stalled) {
        (false, Some(idle)) => tracing::warn!(
            projection = %name,
            version = %version,
            lag,
            idle_ms = idle.as_millis() as u64,
            stall_after_ms = projection.config.stall_after.as_millis() as u64,
            "projection stalled: it has lag but has applied nothing for {} ms",
            idle.as_millis()
        ),
        (true, None) => tracing::info!(
            projection = %name,
            version = %version,
            lag,
            "projection no longer stalled"
        ),
        _ => {}
    }
}
