//! Who is in the group, where it answers, and what it holds: the compacted
//! topic `projector.<group>.members`, keyed by member URL. Each instance
//! writes its record on every assignment change and every
//! [`PUBLISH_EVERY`], and a tombstone when it leaves; every instance reads
//! the whole topic. A record not renewed within [`EXPIRY`] (as seen by the
//! reader's own clock, so machines need not agree on time) is a dead
//! member's.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::{ClusterConfig, ClusterError, Ownership};

/// How often an instance renews its record.
pub const PUBLISH_EVERY: Duration = Duration::from_secs(2);
/// A record older than this (not renewed) is a dead member's.
pub const EXPIRY: Duration = Duration::from_secs(10);

/// One member's record, as written to the topic.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct MemberRecord {
    /// Where it answers HTTP (`--advertise`).
    pub url: String,
    /// Slots it holds.
    pub slots: Vec<u32>,
    /// Milliseconds since the Unix epoch, by the writer's clock.
    pub at_ms: u64,
    /// When it started, by the writer's clock.
    pub started_ms: u64,
}

#[derive(Debug, Clone)]
struct Seen {
    record: MemberRecord,
    /// When this reader last saw it renewed.
    at: Instant,
    /// Order of arrival: a later claim of a slot wins an earlier one.
    sequence: u64,
}

/// A member as this instance sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Member {
    pub url: String,
    pub slots: Vec<u32>,
    /// Whether its record was renewed within the expiry.
    pub alive: bool,
    /// Milliseconds since this instance last saw its record.
    pub seen_ms_ago: u64,
    /// This instance.
    pub me: bool,
}

/// The members this instance knows of.
#[derive(Debug)]
pub struct Directory {
    me: String,
    started_ms: u64,
    members: RwLock<BTreeMap<String, Seen>>,
    stop: Arc<AtomicBool>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Directory {
    /// Starts publishing this instance's record and reading everyone's.
    pub fn start(
        config: &ClusterConfig,
        ownership: Arc<Ownership>,
        changed: Arc<AtomicBool>,
    ) -> Result<Arc<Self>, ClusterError> {
        let topic = config.members_topic();
        let producer: BaseProducer = config
            .kafka
            .producer_config(&config.group)
            .create()
            .map_err(|e| ClusterError::Kafka(format!("cannot create the members producer: {e}")))?;
        let mut reader_config = config.kafka.client_config(&config.group);
        reader_config.set("group.id", format!("{}.members", config.group_id()));
        let reader: BaseConsumer = reader_config
            .create()
            .map_err(|e| ClusterError::Kafka(format!("cannot create the members reader: {e}")))?;
        let mut partitions = TopicPartitionList::new();
        partitions
            .add_partition_offset(&topic, 0, Offset::Beginning)
            .map_err(|e| ClusterError::Kafka(e.to_string()))?;
        reader
            .assign(&partitions)
            .map_err(|e| ClusterError::Kafka(format!("cannot read {topic}: {e}")))?;
        let directory = Arc::new(Self {
            me: config.advertise.clone(),
            started_ms: unix_ms(),
            members: RwLock::default(),
            stop: Arc::new(AtomicBool::new(false)),
            thread: std::sync::Mutex::new(None),
        });
        let thread = std::thread::Builder::new()
            .name("cluster-members".into())
            .spawn({
                let directory = directory.clone();
                move || directory.run(&producer, &reader, &topic, &ownership, &changed)
            })
            .map_err(|e| ClusterError::Kafka(format!("cannot start the members thread: {e}")))?;
        *directory
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(thread);
        Ok(directory)
    }

    fn run(
        &self,
        producer: &BaseProducer,
        reader: &BaseConsumer,
        topic: &str,
        ownership: &Ownership,
        changed: &AtomicBool,
    ) {
        let mut next_publish = Instant::now();
        let mut sequence = 0u64;
        while !self.stop.load(Ordering::Acquire) {
            if changed.swap(false, Ordering::AcqRel) || Instant::now() >= next_publish {
                let record = MemberRecord {
                    url: self.me.clone(),
                    slots: ownership.held(),
                    at_ms: unix_ms(),
                    started_ms: self.started_ms,
                };
                let payload = serde_json::to_vec(&record).unwrap_or_default();
                if let Err((e, _)) = producer.send(
                    BaseRecord::to(topic)
                        .key(self.me.as_bytes())
                        .payload(&payload),
                ) {
                    tracing::debug!("cannot publish this member's record: {e}");
                }
                next_publish = Instant::now() + PUBLISH_EVERY;
            }
            producer.poll(Duration::ZERO);
            match reader.poll(Duration::from_millis(100)) {
                Some(Ok(message)) => {
                    let Some(key) = message.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                        continue;
                    };
                    let mut members = self.members.write().unwrap_or_else(PoisonError::into_inner);
                    match message
                        .payload()
                        .and_then(|p| serde_json::from_slice::<MemberRecord>(p).ok())
                    {
                        Some(record) => {
                            sequence += 1;
                            members.insert(
                                key.to_owned(),
                                Seen {
                                    record,
                                    at: Instant::now(),
                                    sequence,
                                },
                            );
                        }
                        None => {
                            members.remove(key);
                        }
                    }
                }
                Some(Err(e)) => tracing::debug!("reading the members topic: {e}"),
                None => {}
            }
        }
        // Leaving: a tombstone, so the others forget this member at once.
        let _ = producer.send(BaseRecord::<[u8], [u8]>::to(topic).key(self.me.as_bytes()));
        let _ = producer.flush(Duration::from_secs(2));
    }

    /// Stops publishing and writes this member's tombstone.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }

    /// This instance's advertised URL.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// Every member seen, alive or not yet forgotten.
    pub fn members(&self) -> Vec<Member> {
        let members = self.members.read().unwrap_or_else(PoisonError::into_inner);
        members
            .values()
            .map(|seen| Member {
                url: seen.record.url.clone(),
                slots: seen.record.slots.clone(),
                alive: seen.at.elapsed() < EXPIRY,
                seen_ms_ago: seen.at.elapsed().as_millis() as u64,
                me: seen.record.url == self.me,
            })
            .collect()
    }

    /// The URL of the live member that last claimed `slot`, if any other
    /// than this instance does.
    pub fn owner_of(&self, slot: u32) -> Option<String> {
        let members = self.members.read().unwrap_or_else(PoisonError::into_inner);
        members
            .values()
            .filter(|seen| seen.at.elapsed() < EXPIRY && seen.record.slots.contains(&slot))
            .max_by_key(|seen| seen.sequence)
            .map(|seen| seen.record.url.clone())
            .filter(|url| *url != self.me)
    }
}
