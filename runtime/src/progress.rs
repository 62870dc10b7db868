//! A live progress bar per shadow build, for `projector run` at a terminal.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::registry::Registry;

const REFRESH: Duration = Duration::from_millis(250);

/// Draws bars on stderr until dropped.
pub struct ProgressBars {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ProgressBars {
    pub fn start(registry: Arc<Registry>) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("progress".into())
                .spawn(move || draw(&registry, &stop))?
        };
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for ProgressBars {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn draw(registry: &Registry, stop: &AtomicBool) {
    let bars = MultiProgress::new();
    let style = ProgressStyle::with_template(
        "{prefix} [{bar:30}] {pos}/{len} events ({per_sec}, ETA {eta})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    let mut shown: HashMap<String, ProgressBar> = HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        let mut live = Vec::new();
        for (_, building) in registry.versions() {
            let Some(building) = building else { continue };
            let Some(progress) = building.info().ok().and_then(|info| info.progress) else {
                continue;
            };
            let hash = building.module.hash.clone();
            let bar = shown.entry(hash.clone()).or_insert_with(|| {
                bars.add(ProgressBar::new(progress.events_total))
                    .with_style(style.clone())
                    .with_prefix(format!("building {}", building.label()))
            });
            bar.set_length(progress.events_total.max(progress.events_done));
            bar.set_position(progress.events_done);
            live.push(hash);
        }
        shown.retain(|hash, bar| {
            let keep = live.contains(hash);
            if !keep {
                bar.finish_and_clear();
            }
            keep
        });
        std::thread::sleep(REFRESH);
    }
    for bar in shown.values() {
        bar.finish_and_clear();
    }
}
