//! Telling readers that a state file moved: a watch channel bumped after
//! every commit (read-your-writes waits), and barriers that capture a read
//! transaction at the exact commit that reaches given offsets (consistent
//! multi-projection reads). Both are signalled by the committing thread,
//! right after the commit, so nobody polls.

use std::sync::{Mutex, PoisonError};

use tokio::sync::{oneshot, watch};

use super::StateReader;
use crate::event::Offsets;

/// What a [`Barrier`] saw at the first commit that reached its offsets.
#[derive(Debug)]
pub enum BarrierOutcome {
    /// The commit stood exactly on the exact offsets: a read transaction
    /// opened before any later commit.
    Exact(Box<StateReader>),
    /// The commit went past the exact offsets (a batch crossed them); the
    /// offsets it reached.
    Passed(Offsets),
}

/// Wait for the commit that reaches `exact` (every partition equal or
/// beyond) and `at_least` (every partition at or beyond).
#[derive(Debug)]
pub struct Barrier {
    pub exact: Offsets,
    pub at_least: Offsets,
}

impl Barrier {
    /// Whether `offsets` reached the barrier, and if so whether exactly.
    pub fn check(&self, offsets: &Offsets) -> Option<bool> {
        if !offsets.reached(&self.exact) || !offsets.reached(&self.at_least) {
            return None;
        }
        Some(
            self.exact
                .iter()
                .all(|(topic, partition, next)| offsets.get(topic, partition) == next),
        )
    }
}

#[derive(Debug)]
pub(super) struct Progress {
    commits: watch::Sender<u64>,
    barriers: Mutex<Vec<(Barrier, oneshot::Sender<BarrierOutcome>)>>,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            commits: watch::Sender::new(0),
            barriers: Mutex::default(),
        }
    }
}

impl Progress {
    pub(super) fn subscribe(&self) -> watch::Receiver<u64> {
        self.commits.subscribe()
    }

    pub(super) fn add(&self, barrier: Barrier) -> oneshot::Receiver<BarrierOutcome> {
        let (reply, outcome) = oneshot::channel();
        let mut barriers = self.barriers.lock().unwrap_or_else(PoisonError::into_inner);
        barriers.retain(|(_, reply)| !reply.is_closed());
        barriers.push((barrier, reply));
        outcome
    }

    /// After a commit that left the file at `offsets` (`None`: unknown, e.g.
    /// after a reopen rolled back): wakes the watchers and answers the
    /// barriers it reached, opening their readers with `open`.
    pub(super) fn committed(
        &self,
        offsets: Option<&Offsets>,
        open: impl Fn() -> Option<StateReader>,
    ) {
        if let Some(offsets) = offsets {
            let mut barriers = self.barriers.lock().unwrap_or_else(PoisonError::into_inner);
            if !barriers.is_empty() {
                let pending = std::mem::take(&mut *barriers);
                for (barrier, reply) in pending {
                    if reply.is_closed() {
                        continue;
                    }
                    let outcome = match barrier.check(offsets) {
                        None => {
                            barriers.push((barrier, reply));
                            continue;
                        }
                        Some(true) => match open() {
                            Some(reader) => BarrierOutcome::Exact(Box::new(reader)),
                            None => BarrierOutcome::Passed(offsets.clone()),
                        },
                        Some(false) => BarrierOutcome::Passed(offsets.clone()),
                    };
                    let _ = reply.send(outcome);
                }
            }
        }
        self.commits.send_modify(|n| *n = n.wrapping_add(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(items: &[(&str, u32, u64)]) -> Offsets {
        let mut offsets = Offsets::default();
        for (topic, partition, next) in items {
            offsets.set(topic, *partition, *next);
        }
        offsets
    }

    #[test]
    fn barriers_tell_exact_from_passed_and_wait_below() {
        let barrier = Barrier {
            exact: offsets(&[("orders", 0, 5), ("orders", 1, 3)]),
            at_least: offsets(&[("accounts", 0, 2)]),
        };
        // Below on one partition, or the lower bound not reached: wait.
        assert_eq!(
            barrier.check(&offsets(&[
                ("orders", 0, 5),
                ("orders", 1, 2),
                ("accounts", 0, 9)
            ])),
            None
        );
        assert_eq!(
            barrier.check(&offsets(&[
                ("orders", 0, 5),
                ("orders", 1, 3),
                ("accounts", 0, 1)
            ])),
            None
        );
        // Exactly on the exact offsets; anything at or beyond the lower bound.
        assert_eq!(
            barrier.check(&offsets(&[
                ("orders", 0, 5),
                ("orders", 1, 3),
                ("accounts", 0, 9)
            ])),
            Some(true)
        );
        // One partition past: a batch crossed the target.
        assert_eq!(
            barrier.check(&offsets(&[
                ("orders", 0, 6),
                ("orders", 1, 3),
                ("accounts", 0, 2)
            ])),
            Some(false)
        );
    }
}
