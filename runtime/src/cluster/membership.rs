//! Joining the group: one rdkafka consumer in the Kafka consumer group
//! `projector.<group>`, subscribed to the control topic
//! `projector.<group>.units` whose partitions are the slots. The broker's
//! group coordinator and the cooperative-sticky assignor decide who holds
//! what; a revoke waits until the slot's workers committed and handed
//! over, so slots that stay never pause.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::{ClusterConfig, ClusterError, Ownership};

/// How long a revoke waits for its slots' workers to commit and snapshot.
const RELEASE_WAIT: Duration = Duration::from_secs(60);
/// The group thread's poll: how often it ticks the lease.
const POLL: Duration = Duration::from_millis(100);

struct GroupContext {
    ownership: Arc<Ownership>,
    topic: String,
    /// Set on every assignment change: the directory publishes it.
    changed: Arc<AtomicBool>,
}

impl ClientContext for GroupContext {}

impl GroupContext {
    fn slots(&self, list: &TopicPartitionList) -> Vec<u32> {
        list.elements()
            .iter()
            .filter(|e| e.topic() == self.topic)
            .filter_map(|e| u32::try_from(e.partition()).ok())
            .collect()
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(list) = rebalance else {
            return;
        };
        let lost = consumer.assignment_lost();
        if !lost {
            // A revoke comes from the coordinator's answer to this member.
            self.ownership.renew(Instant::now());
        }
        let slots = self.slots(list);
        if slots.is_empty() {
            return;
        }
        if lost {
            tracing::warn!(
                ?slots,
                "the group took these slots away (session lost): stopped without committing"
            );
            self.ownership.lose(&slots);
        } else {
            let started = Instant::now();
            tracing::info!(?slots, "slots revoked: committing and handing over");
            let late = self.ownership.release(&slots, RELEASE_WAIT);
            if late.is_empty() {
                tracing::info!(
                    ?slots,
                    took_ms = started.elapsed().as_millis() as u64,
                    "slots handed over"
                );
            } else {
                tracing::warn!(
                    ?late,
                    "slots given up before their workers finished handing over"
                );
            }
        }
        self.changed.store(true, Ordering::Release);
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                // An assignment, even of nothing new, proves membership.
                self.ownership.renew(Instant::now());
                let slots = self.slots(list);
                if !slots.is_empty() {
                    tracing::info!(?slots, "slots assigned");
                    self.ownership.assign(&slots);
                    self.changed.store(true, Ordering::Release);
                }
            }
            Rebalance::Error(e) => tracing::warn!("group rebalance failed: {e}"),
            Rebalance::Revoke(_) => {}
        }
    }
}

/// The group membership thread; leaves the group when stopped.
pub struct Membership {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership").finish_non_exhaustive()
    }
}

/// What a refused renewal says of this instance's membership.
enum Refusal {
    /// The coordinator no longer knows this member: it was removed from
    /// the group (its session expired), and its slots may be elsewhere.
    Fenced,
    /// A member of the current generation, while a rebalance is under way
    /// (the coordinator checks member and generation first): cooperative
    /// rebalancing moves a slot only after its holder revoked it, so the
    /// slots held stay ours meanwhile. (`ILLEGAL_GENERATION` proves
    /// nothing: some coordinators check the generation before the member.)
    Rebalancing,
    /// Nothing learned (a coordinator moving, a network error).
    Unknown,
}

fn refusal(error: &KafkaError) -> Refusal {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::UnknownMemberId | RDKafkaErrorCode::FencedInstanceId) => {
            Refusal::Fenced
        }
        Some(RDKafkaErrorCode::RebalanceInProgress) => Refusal::Rebalancing,
        _ => Refusal::Unknown,
    }
}

impl Membership {
    pub fn join(
        config: &ClusterConfig,
        ownership: Arc<Ownership>,
        changed: Arc<AtomicBool>,
    ) -> Result<Self, ClusterError> {
        let topic = config.units_topic();
        let mut client = config.kafka.client_config(&config.group);
        client.set("group.id", config.group_id());
        client
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set(
                "session.timeout.ms",
                config.session_timeout.as_millis().to_string(),
            )
            .set(
                "heartbeat.interval.ms",
                (config.session_timeout.as_millis() / 6)
                    .max(100)
                    .to_string(),
            )
            .set("client.id", format!("projector.{}", config.advertise));
        let context = GroupContext {
            ownership: ownership.clone(),
            topic: topic.clone(),
            changed,
        };
        let consumer: Arc<BaseConsumer<GroupContext>> =
            Arc::new(client.create_with_context(context).map_err(|e| {
                ClusterError::Kafka(format!("cannot create the group consumer: {e}"))
            })?);
        consumer
            .subscribe(&[&topic])
            .map_err(|e| ClusterError::Kafka(format!("cannot subscribe to {topic}: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let renew_every = config.session_timeout / 6;
        let spawn_error =
            |e: std::io::Error| ClusterError::Kafka(format!("cannot start the group threads: {e}"));
        // Renewals wait for their answers (a rebalance can hold one for
        // seconds) on a thread of their own, so that polls go on serving
        // the rebalance and ticking meanwhile.
        let renewals = std::thread::Builder::new()
            .name("cluster-lease".into())
            .spawn({
                let (consumer, ownership, stop, topic) = (
                    consumer.clone(),
                    ownership.clone(),
                    stop.clone(),
                    topic.clone(),
                );
                move || renew(&consumer, &ownership, &topic, &stop, renew_every)
            })
            .map_err(spawn_error)?;
        let thread = std::thread::Builder::new()
            .name("cluster-group".into())
            .spawn({
                let stop = stop.clone();
                move || {
                    run(&consumer, &ownership, &stop);
                    let _ = renewals.join();
                }
            })
            .map_err(spawn_error)?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Leaves the group: the slots are revoked (committed and handed
    /// over), then the consumer closes.
    pub fn leave(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves the group (rebalances) and ticks the lease.
fn run(consumer: &BaseConsumer<GroupContext>, ownership: &Ownership, stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        // The control topic carries no records: a poll serves rebalances.
        if let Some(Err(e)) = consumer.poll(POLL) {
            tracing::debug!("group consumer: {e}");
        }
        ownership.tick();
    }
    // Leaving: a cooperative revoke of everything, served by polls.
    consumer.unsubscribe();
    let deadline = Instant::now() + RELEASE_WAIT;
    while Instant::now() < deadline && !ownership.assigned().is_empty() {
        let _ = consumer.poll(POLL);
        ownership.tick();
    }
}

/// Renews the lease every `every`: an offset commit of the held slots that
/// the coordinator accepts only from a member of the current generation.
fn renew(
    consumer: &BaseConsumer<GroupContext>,
    ownership: &Ownership,
    topic: &str,
    stop: &AtomicBool,
    every: Duration,
) {
    while !stop.load(Ordering::Acquire) {
        let slots = ownership.assigned();
        if !slots.is_empty() {
            let mut list = TopicPartitionList::new();
            for slot in &slots {
                let _ = list.add_partition_offset(topic, *slot as i32, Offset::Offset(0));
            }
            let sent = Instant::now();
            match consumer.commit(&list, CommitMode::Sync) {
                Ok(()) => ownership.renew(sent),
                Err(e) => match refusal(&e) {
                    Refusal::Rebalancing => ownership.renew(sent),
                    Refusal::Fenced => {
                        tracing::warn!(
                            "the group no longer knows this instance ({e}): fenced until it rejoins"
                        );
                        ownership.expire();
                    }
                    Refusal::Unknown => tracing::debug!("lease renewal failed: {e}"),
                },
            }
        }
        let next = Instant::now() + every;
        while !stop.load(Ordering::Acquire) && Instant::now() < next {
            std::thread::sleep(POLL.min(next.saturating_duration_since(Instant::now())));
        }
    }
}
