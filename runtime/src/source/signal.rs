use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A counter that writers bump and readers wait on, so that workers are woken
/// by appends instead of polling.
#[derive(Debug, Default)]
pub struct ChangeSignal {
    seq: Mutex<u64>,
    changed: Condvar,
}

impl ChangeSignal {
    pub fn bump(&self) {
        let mut seq = self.seq.lock().unwrap_or_else(PoisonError::into_inner);
        *seq += 1;
        self.changed.notify_all();
    }

    pub fn current(&self) -> u64 {
        *self.seq.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn wait_past(&self, seen: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        let mut seq = self.seq.lock().unwrap_or_else(PoisonError::into_inner);
        while *seq == seen {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            seq = self
                .changed
                .wait_timeout(seq, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        *seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_bump_wakes_a_waiter() {
        let signal = Arc::new(ChangeSignal::default());
        let seen = signal.current();
        let waiter = {
            let signal = signal.clone();
            std::thread::spawn(move || signal.wait_past(seen, Duration::from_secs(600)))
        };
        signal.bump();
        assert_eq!(waiter.join().unwrap(), seen + 1);
    }

    #[test]
    fn wait_returns_at_once_when_already_past() {
        let signal = ChangeSignal::default();
        signal.bump();
        assert_eq!(signal.wait_past(0, Duration::from_secs(600)), 1);
    }
}
