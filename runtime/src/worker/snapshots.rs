//! Snapshot threads: each snapshot is written on its own thread while the
//! worker goes on. They are tracked process-wide so that shutdown waits for
//! the ones still writing (bounded) and abandons the rest cleanly: a
//! snapshot is complete under its name or not there, never left half
//! written when the process ends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::priority;
use crate::store::StateReader;

/// How long shutdown waits for snapshots being written before it abandons
/// them.
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

struct Running {
    handle: JoinHandle<()>,
    abandon: Arc<AtomicBool>,
}

/// Every snapshot thread started and not yet joined.
static RUNNING: Mutex<Vec<Running>> = Mutex::new(Vec::new());

/// What one snapshot thread writes.
pub(super) struct Job {
    pub dir: std::path::PathBuf,
    pub keep: usize,
    pub name: String,
    pub hash: String,
    pub state_version: u32,
    pub nice: i32,
    /// The shared store the snapshot is uploaded to once written.
    pub store: Option<Arc<crate::snapshot::SnapshotStore>>,
}

/// Writes what `reader` sees as a snapshot on a new thread; `running` is
/// cleared when it ends, however it ends.
pub(super) fn spawn(
    job: Job,
    reader: StateReader,
    running: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let abandon = Arc::new(AtomicBool::new(false));
    let span = tracing::Span::current();
    let mut threads = RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
    // Joined here once done, so the list stays short.
    let (done, left): (Vec<_>, Vec<_>) = threads.drain(..).partition(|t| t.handle.is_finished());
    *threads = left;
    for thread in done {
        let _ = thread.handle.join();
    }
    let handle = std::thread::Builder::new()
        .name(format!("snapshot-{}", job.name))
        .spawn({
            let abandon = abandon.clone();
            move || {
                let _entered = span.enter();
                priority::lower_this_thread(job.nice);
                tracing::info!("writing a snapshot");
                let version = crate::snapshot::ProjectionVersion {
                    name: &job.name,
                    hash: &job.hash,
                    state_version: job.state_version,
                };
                let abandoned = || abandon.load(Ordering::Relaxed);
                match crate::snapshot::write_abandonable(
                    &job.dir, version, &reader, job.keep, &abandoned,
                ) {
                    Ok(info) => {
                        tracing::info!(
                            file = %info.path.display(),
                            bytes = info.size_bytes,
                            events = info.meta.events_applied,
                            "snapshot written"
                        );
                        if let Some(store) = &job.store
                            && !abandoned()
                        {
                            store.publish(&info, job.keep);
                        }
                    }
                    Err(e @ crate::snapshot::SnapshotError::Abandoned { .. }) => {
                        tracing::warn!("{e}")
                    }
                    Err(e) => tracing::warn!("snapshot failed: {e}"),
                }
                drop(reader);
                running.store(false, Ordering::Release);
            }
        })?;
    threads.push(Running { handle, abandon });
    Ok(())
}

/// Waits up to `wait` for every snapshot being written to finish, then
/// abandons the others (each deletes its temp file) and joins them all.
/// Returns how many were abandoned.
pub fn finish_all(wait: Duration) -> usize {
    let threads: Vec<Running> =
        std::mem::take(&mut *RUNNING.lock().unwrap_or_else(PoisonError::into_inner));
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline && threads.iter().any(|t| !t.handle.is_finished()) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut abandoned = 0;
    for thread in &threads {
        if !thread.handle.is_finished() {
            thread.abandon.store(true, Ordering::Relaxed);
            abandoned += 1;
        }
    }
    for thread in threads {
        let _ = thread.handle.join();
    }
    abandoned
}
