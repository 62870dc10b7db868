//! How many units of one partitioned projection fold at once: each unit has
//! its own thread, and takes a permit for each batch it applies, so at most
//! `worker_threads` cores fold one projection and the rest stay for others.

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

#[derive(Debug)]
pub struct FoldPermits {
    free: Mutex<usize>,
    freed: Condvar,
}

/// A permit, given back when dropped.
pub struct Permit<'a>(&'a FoldPermits);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.0.freed.notify_one();
    }
}

impl FoldPermits {
    pub fn new(count: usize) -> Self {
        Self {
            free: Mutex::new(count.max(1)),
            freed: Condvar::new(),
        }
    }

    /// Waits for a permit; `None` once `stop` says to give up (checked
    /// every `recheck`).
    pub fn acquire(&self, recheck: Duration, stop: impl Fn() -> bool) -> Option<Permit<'_>> {
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if *free > 0 {
                *free -= 1;
                return Some(Permit(self));
            }
            if stop() {
                return None;
            }
            free = self
                .freed
                .wait_timeout(free, recheck)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn no_more_than_the_permits_hold_one_at_once() {
        let permits = Arc::new(FoldPermits::new(2));
        let holding = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let (permits, holding, most) = (permits.clone(), holding.clone(), most.clone());
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let _permit = permits.acquire(Duration::from_millis(5), || false).unwrap();
                        let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::yield_now();
                        holding.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert!(most.load(Ordering::SeqCst) <= 2);
        // Every permit came back.
        let a = permits.acquire(Duration::from_millis(5), || true);
        let b = permits.acquire(Duration::from_millis(5), || true);
        assert!(a.is_some() && b.is_some());
        assert!(permits.acquire(Duration::from_millis(5), || true).is_none());
    }
}
