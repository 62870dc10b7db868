//! A duration histogram of atomic buckets: the worker observes one per
//! batch without a lock, and a scrape reads it while batches go on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds in seconds, from 100 µs (a small batch of a Rust module) to
/// 30 s (the default call time budget).
pub const DURATION_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 30.0,
];

#[derive(Debug, Default)]
pub struct DurationHistogram {
    /// Per bucket of [`DURATION_BUCKETS`], not cumulative; the last counts
    /// what is above every bound.
    buckets: [AtomicU64; DURATION_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl DurationHistogram {
    pub fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let index = DURATION_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(DURATION_BUCKETS.len());
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(
            u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `other`'s observations to this histogram.
    pub fn add(&self, other: &DurationHistogram) {
        for (mine, theirs) in self.buckets.iter().zip(&other.buckets) {
            mine.fetch_add(theirs.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        self.sum_nanos
            .fetch_add(other.sum_nanos.load(Ordering::Relaxed), Ordering::Relaxed);
        self.count
            .fetch_add(other.count.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// Sum in seconds, count, and `(upper bound, count)` per bucket (not
    /// cumulative, `+Inf` last), as the text encoder takes them.
    pub fn read(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let buckets = DURATION_BUCKETS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(&self.buckets)
            .map(|(bound, count)| (bound, count.load(Ordering::Relaxed)))
            .collect::<Vec<_>>();
        // The count is the buckets' total, so the two never disagree in
        // one scrape even while batches are observed.
        let count = buckets.iter().map(|(_, c)| c).sum();
        let sum = Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed)).as_secs_f64();
        (sum, count, buckets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_their_bucket() {
        let histogram = DurationHistogram::default();
        histogram.observe(Duration::from_micros(50));
        histogram.observe(Duration::from_millis(3));
        histogram.observe(Duration::from_secs(60));
        let (sum, count, buckets) = histogram.read();
        assert_eq!(count, 3);
        assert!((sum - 60.00305).abs() < 1e-9, "{sum}");
        assert_eq!(buckets[0], (0.0001, 1));
        assert_eq!(buckets[5], (0.005, 1));
        assert_eq!(buckets.last(), Some(&(f64::INFINITY, 1)));
    }
}
