//! Which slots this instance holds, and whether it may still act on them.
//!
//! Every unit of work (a unit of a partitioned projection, or a whole
//! global projection) belongs to one slot, a partition of the group's
//! control topic; the Kafka group protocol hands each slot to one member.
//! A worker folds only while its slot is held here *and* the lease is
//! valid. The lease is renewed by proofs of membership: offset commits the
//! group coordinator accepts only from a current member, and the group's
//! rebalance answers. Between proofs (a rebalance can hold commits for
//! seconds) it stays valid while this process runs without a pause: the
//! group thread ticks, and a gap in its ticks (the process frozen, or
//! starved) voids the lease until a proof sent after the gap. So an
//! instance frozen past its session stops acting as owner by itself
//! (fenced), before it even learns that the group moved its slots; one
//! cut off from the broker learns it from librdkafka, which declares the
//! assignment lost a session after its last answered heartbeat.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// What a worker of a slot may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Fold, commit and answer as owner.
    Held,
    /// A cooperative revoke: commit what is applied, snapshot, then stop.
    Release,
    /// Not ours (or no longer provably ours): stop at once, commit nothing.
    Closed,
    /// Not ours, but this instance keeps a warm copy (a standby replica):
    /// fold and commit into its own files, answer only stale reads, never
    /// hand over. Given by [`ProjectionRuntime::gate`](crate::projection::ProjectionRuntime::gate)
    /// to projections with enough `standby_replicas`.
    Standby,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    Owned,
    Releasing,
}

#[derive(Debug)]
struct State {
    slots: BTreeMap<u32, SlotState>,
    /// Workers acting on each slot now (they leave once released).
    active: BTreeMap<u32, usize>,
    /// When the newest proof of membership was sent.
    proof: Option<Instant>,
    /// The group thread's last tick.
    last_tick: Instant,
    /// When a gap in the ticks was seen (or the coordinator refused this
    /// member): only a proof sent after it makes the lease valid again.
    stalled_at: Option<Instant>,
    rebalances: u64,
    /// Per slot this instance does not hold, its place among the other
    /// live members in the slot's standby order (0: the first standby).
    standby_ranks: BTreeMap<u32, u32>,
}

/// Where a unit's new owner started folding from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandoverFrom {
    /// Its own standby copy, warm.
    Standby,
    /// A snapshot newer than its own file (the shared store's, usually).
    Snapshot,
    /// Its own file of the unit, from an earlier time it held it.
    LocalState,
    /// Nothing: it replays the unit's partitions from the start.
    Replay,
}

impl HandoverFrom {
    pub const ALL: [HandoverFrom; 4] = [
        HandoverFrom::Standby,
        HandoverFrom::Snapshot,
        HandoverFrom::LocalState,
        HandoverFrom::Replay,
    ];

    pub fn label(self) -> &'static str {
        match self {
            HandoverFrom::Standby => "standby",
            HandoverFrom::Snapshot => "snapshot",
            HandoverFrom::LocalState => "local_state",
            HandoverFrom::Replay => "replay",
        }
    }
}

/// One instance's view of its slots.
#[derive(Debug)]
pub struct Ownership {
    slots: u32,
    /// From getting a slot to a unit of it reaching the head, by where
    /// the unit started from (indexed as [`HandoverFrom::ALL`]).
    handovers: [crate::metrics::DurationHistogram; 4],
    lease: Duration,
    /// A gap between ticks longer than this voids the lease.
    stall: Duration,
    state: Mutex<State>,
    changed: Condvar,
}

/// A worker acting on a slot; dropping it tells a waiting revoke.
#[derive(Debug)]
pub struct Active<'a> {
    ownership: &'a Ownership,
    slot: u32,
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        let mut state = self.ownership.lock();
        if let Some(count) = state.active.get_mut(&self.slot) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                state.active.remove(&self.slot);
            }
        }
        drop(state);
        self.ownership.changed.notify_all();
    }
}

impl Ownership {
    /// `slots`: partitions of the control topic. `lease`: how long a
    /// renewal lets this instance act without another.
    pub fn new(slots: u32, lease: Duration) -> Self {
        Self {
            slots: slots.max(1),
            handovers: Default::default(),
            lease,
            stall: (lease / 4).max(Duration::from_millis(250)),
            state: Mutex::new(State {
                slots: BTreeMap::new(),
                active: BTreeMap::new(),
                proof: None,
                last_tick: Instant::now(),
                stalled_at: None,
                rebalances: 0,
                standby_ranks: BTreeMap::new(),
            }),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the lease lets this instance act now.
    fn leased(&self, state: &State, now: Instant) -> bool {
        let Some(proof) = state.proof else {
            return false;
        };
        now < proof + self.lease
            || (state.stalled_at.is_none()
                && now.saturating_duration_since(state.last_tick) < self.stall)
    }

    fn held_now(&self, state: &State, slot: u32) -> bool {
        state.slots.get(&slot) == Some(&SlotState::Owned) && self.leased(state, Instant::now())
    }

    /// The group thread runs: called at least every `stall / 2`.
    pub fn tick(&self) {
        let mut state = self.lock();
        let now = Instant::now();
        let gap = now.saturating_duration_since(state.last_tick);
        state.last_tick = now;
        if gap >= self.stall && state.stalled_at.is_none() && !state.slots.is_empty() {
            state.stalled_at = Some(now);
            drop(state);
            tracing::warn!(
                gap_ms = gap.as_millis() as u64,
                "this instance stood still: it does not act on its slots until the group confirms it is still a member"
            );
            self.bump();
        }
    }

    fn bump(&self) {
        self.changed.notify_all();
    }

    /// How long one renewal lets this instance act.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    pub fn slot_count(&self) -> u32 {
        self.slots
    }

    /// The slot of unit `unit` of a partitioned projection: unit p of every
    /// partitioned projection shares slot p, so co-partitioned units of
    /// different projections move together.
    pub fn slot_of_unit(&self, unit: u32) -> u32 {
        unit % self.slots
    }

    /// The slot of a global projection: its name's hash.
    pub fn slot_of_name(&self, name: &str) -> u32 {
        slot_of_name(name, self.slots)
    }

    pub fn gate(&self, slot: u32) -> Gate {
        let state = self.lock();
        match state.slots.get(&slot) {
            Some(SlotState::Owned) if self.leased(&state, Instant::now()) => Gate::Held,
            Some(SlotState::Releasing) => Gate::Release,
            _ => Gate::Closed,
        }
    }

    /// Slots held now (lease valid), in order.
    pub fn held(&self) -> Vec<u32> {
        let state = self.lock();
        let valid = self.leased(&state, Instant::now());
        state
            .slots
            .iter()
            .filter(|(_, s)| valid && **s == SlotState::Owned)
            .map(|(slot, _)| *slot)
            .collect()
    }

    /// Slots assigned here (whatever the lease), for renewals.
    pub fn assigned(&self) -> Vec<u32> {
        self.lock().slots.keys().copied().collect()
    }

    pub fn rebalances(&self) -> u64 {
        self.lock().rebalances
    }

    /// The group gave us `slots` (an assignment is proof of membership).
    pub fn assign(&self, slots: &[u32]) {
        let mut state = self.lock();
        for slot in slots {
            state.slots.insert(*slot, SlotState::Owned);
        }
        let now = Instant::now();
        state.proof = Some(now);
        state.stalled_at = None;
        state.last_tick = now;
        state.rebalances += 1;
        drop(state);
        self.bump();
    }

    /// A proof of membership sent at `sent` was answered: act until
    /// `sent + lease` at least.
    pub fn renew(&self, sent: Instant) {
        let mut state = self.lock();
        if state.proof.is_none_or(|p| p < sent) {
            state.proof = Some(sent);
        }
        if state.stalled_at.is_some_and(|at| at <= sent) {
            state.stalled_at = None;
        }
        drop(state);
        self.bump();
    }

    /// The coordinator refused a renewal: we are not a current member.
    pub fn expire(&self) {
        let mut state = self.lock();
        state.proof = None;
        state.stalled_at = Some(Instant::now());
        drop(state);
        self.bump();
    }

    /// Cooperative revoke: workers of `slots` commit, snapshot and leave;
    /// waits for them (at most `wait`), then the slots are gone. Answers
    /// the slots whose workers had not left in time.
    pub fn release(&self, slots: &[u32], wait: Duration) -> Vec<u32> {
        let mut state = self.lock();
        for slot in slots {
            if state.slots.contains_key(slot) {
                state.slots.insert(*slot, SlotState::Releasing);
            }
        }
        state.rebalances += 1;
        drop(state);
        self.bump();
        let deadline = Instant::now() + wait;
        let mut state = self.lock();
        while slots.iter().any(|s| state.active.contains_key(s)) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self
                .changed
                .wait_timeout(state, left.min(self.stall / 4))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            // The group thread waits here: it still runs.
            state.last_tick = Instant::now();
        }
        let late = slots
            .iter()
            .copied()
            .filter(|s| state.active.contains_key(s))
            .collect();
        for slot in slots {
            state.slots.remove(slot);
        }
        drop(state);
        self.bump();
        late
    }

    /// The slots were lost (session expired): gone at once, nothing of
    /// them is committed or answered any more.
    pub fn lose(&self, slots: &[u32]) {
        let mut state = self.lock();
        for slot in slots {
            state.slots.remove(slot);
        }
        state.rebalances += 1;
        drop(state);
        self.bump();
    }

    /// A unit that came to this instance reached the head `took` after
    /// its slot came.
    pub fn handover_done(&self, from: HandoverFrom, took: Duration) {
        self.handovers[from as usize].observe(took);
    }

    /// The durations of the handovers whose units started `from` there.
    pub fn handovers(&self, from: HandoverFrom) -> &crate::metrics::DurationHistogram {
        &self.handovers[from as usize]
    }

    /// This instance's place in `slot`'s standby order, when it does not
    /// hold the slot: a projection with `standby_replicas = n` keeps a
    /// warm copy of the slot's units here when the place is below `n`.
    pub fn standby_rank(&self, slot: u32) -> Option<u32> {
        self.lock().standby_ranks.get(&slot).copied()
    }

    /// The directory's new standby order; wakes the workers when it changed.
    pub fn set_standby_ranks(&self, ranks: BTreeMap<u32, u32>) {
        let mut state = self.lock();
        if state.standby_ranks == ranks {
            return;
        }
        state.standby_ranks = ranks;
        drop(state);
        self.bump();
    }

    /// Registers a worker acting on `slot`, if the slot is held now.
    pub fn enter(&self, slot: u32) -> Option<Active<'_>> {
        let mut state = self.lock();
        if !self.held_now(&state, slot) {
            return None;
        }
        *state.active.entry(slot).or_default() += 1;
        Some(Active {
            ownership: self,
            slot,
        })
    }

    /// Waits until `slot`'s gate may have changed, at most `wait`.
    pub fn wait_change(&self, wait: Duration) {
        let state = self.lock();
        let _ = self
            .changed
            .wait_timeout(state, wait)
            .unwrap_or_else(PoisonError::into_inner);
    }
}

/// The slot of a global projection named `name` among `slots`.
pub fn slot_of_name(name: &str, slots: u32) -> u32 {
    let hash = blake3::hash(name.as_bytes());
    let bytes: [u8; 4] = hash.as_bytes()[..4].try_into().expect("4 bytes");
    u32::from_be_bytes(bytes) % slots.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_slot_is_held_only_while_assigned_and_leased() {
        let ownership = Ownership::new(4, Duration::from_secs(60));
        assert_eq!(ownership.gate(1), Gate::Closed);
        ownership.assign(&[1, 2]);
        assert_eq!(ownership.gate(1), Gate::Held);
        assert_eq!(ownership.gate(3), Gate::Closed);
        assert_eq!(ownership.held(), vec![1, 2]);
        ownership.expire();
        assert_eq!(
            ownership.gate(1),
            Gate::Closed,
            "fenced once the lease is gone"
        );
        assert!(ownership.enter(1).is_none());
        ownership.renew(Instant::now());
        assert_eq!(ownership.gate(1), Gate::Held);
        ownership.lose(&[1]);
        assert_eq!(ownership.gate(1), Gate::Closed);
        assert_eq!(ownership.gate(2), Gate::Held);
    }

    /// The lease outlives its proof while the group thread ticks (a
    /// rebalance holds commits), and not across a pause of the process.
    #[test]
    fn a_pause_voids_the_lease_until_a_newer_proof() {
        let ownership = Ownership::new(4, Duration::from_secs(2));
        ownership.assign(&[0]);
        let proof = Instant::now();
        // Ticking past the proof's own lease: still held.
        while proof.elapsed() < ownership.lease + ownership.stall {
            ownership.tick();
            std::thread::sleep(Duration::from_millis(10));
        }
        ownership.tick();
        assert_eq!(ownership.gate(0), Gate::Held);
        // No tick for longer than the stall bound: the process stood still.
        std::thread::sleep(ownership.stall * 2);
        assert_eq!(ownership.gate(0), Gate::Closed, "a gap voids the lease");
        ownership.tick();
        assert_eq!(ownership.gate(0), Gate::Closed, "ticking again is no proof");
        ownership.renew(proof);
        assert_eq!(
            ownership.gate(0),
            Gate::Closed,
            "a proof sent before the gap is none"
        );
        ownership.renew(Instant::now());
        assert_eq!(ownership.gate(0), Gate::Held);
    }

    #[test]
    fn a_revoke_waits_for_the_slots_workers_to_leave() {
        let ownership = Arc::new(Ownership::new(4, Duration::from_secs(60)));
        ownership.assign(&[0, 1]);
        let (entered, inside) = std::sync::mpsc::channel();
        let (leave, told) = std::sync::mpsc::channel::<()>();
        let worker = {
            let ownership = ownership.clone();
            std::thread::spawn(move || {
                let active = ownership.enter(0).expect("held");
                entered.send(()).unwrap();
                // The worker sees the revoke, then commits and leaves.
                while ownership.gate(0) != Gate::Release {
                    ownership.wait_change(Duration::from_millis(50));
                }
                told.recv().unwrap();
                drop(active);
            })
        };
        inside.recv().unwrap();
        let releasing = {
            let ownership = ownership.clone();
            std::thread::spawn(move || ownership.release(&[0], Duration::from_secs(30)))
        };
        while ownership.gate(0) != Gate::Release {
            std::thread::yield_now();
        }
        assert!(!releasing.is_finished(), "the revoke waits for the worker");
        leave.send(()).unwrap();
        assert_eq!(releasing.join().unwrap(), Vec::<u32>::new());
        worker.join().unwrap();
        assert_eq!(ownership.gate(0), Gate::Closed);
        assert_eq!(ownership.gate(1), Gate::Held, "other slots never pause");
    }

    #[test]
    fn names_spread_over_the_slots_the_same_way_everywhere() {
        assert_eq!(
            slot_of_name("order-totals", 12),
            slot_of_name("order-totals", 12)
        );
        let slots: std::collections::BTreeSet<u32> = (0..100)
            .map(|i| slot_of_name(&format!("projection-{i}"), 12))
            .collect();
        assert!(slots.len() > 8, "{slots:?}");
    }
}
