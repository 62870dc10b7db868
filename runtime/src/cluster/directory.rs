//! Who is in the group, where it answers, and what it holds: the compacted
//! topic `projector.<group>.members`, keyed by member URL. Each instance
//! writes its record on every assignment change and every
//! [`PUBLISH_EVERY`], and a tombstone when it leaves; every instance reads
//! the whole topic. A record not renewed within [`EXPIRY`] (as seen by the
//! reader's own clock, so machines need not agree on time) is a dead
//! member's.

use std::collections::{BTreeMap, BTreeSet};
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
            ownership.set_standby_ranks(self.my_standby_ranks(ownership));
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

    /// The URLs of the live members (this one always among them).
    fn live(&self) -> BTreeSet<String> {
        let members = self.members.read().unwrap_or_else(PoisonError::into_inner);
        let mut live: BTreeSet<String> = members
            .values()
            .filter(|seen| seen.at.elapsed() < EXPIRY)
            .map(|seen| seen.record.url.clone())
            .collect();
        live.insert(self.me.clone());
        live
    }

    /// The live member that last claimed `slot`, this one included.
    fn claimant(&self, slot: u32) -> Option<String> {
        let members = self.members.read().unwrap_or_else(PoisonError::into_inner);
        members
            .values()
            .filter(|seen| seen.at.elapsed() < EXPIRY && seen.record.slots.contains(&slot))
            .max_by_key(|seen| seen.sequence)
            .map(|seen| seen.record.url.clone())
    }

    /// This instance's place in the standby order of every slot it does
    /// not hold.
    fn my_standby_ranks(&self, ownership: &Ownership) -> BTreeMap<u32, u32> {
        let live = self.live();
        let held: BTreeSet<u32> = ownership.held().into_iter().collect();
        (0..ownership.slot_count())
            .filter(|slot| !held.contains(slot))
            .filter_map(|slot| {
                let owner = self.claimant(slot);
                let order = standby_order(slot, owner.as_deref(), &live);
                let rank = order.iter().position(|url| *url == self.me)?;
                Some((slot, rank as u32))
            })
            .collect()
    }

    /// The first `count` standbys of `slot` as this instance sees the
    /// group: the members that keep warm copies of its units.
    pub fn standbys(&self, slot: u32, count: u32) -> Vec<String> {
        let owner = self.claimant(slot);
        let mut order = standby_order(slot, owner.as_deref(), &self.live());
        order.truncate(count as usize);
        order
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
        self.claimant(slot).filter(|url| *url != self.me)
    }
}

/// The members that keep standbys of `slot`, best first: the live members
/// other than its owner, ranked by a hash of the slot and the member's URL
/// (rendezvous hashing). Every instance computes the same order from the
/// same members, with no coordination; a member joining or leaving moves
/// only the standbys it takes or gave, and the standbys of a slot spread
/// over the group.
pub fn standby_order(slot: u32, owner: Option<&str>, live: &BTreeSet<String>) -> Vec<String> {
    let mut ranked: Vec<(blake3::Hash, &String)> = live
        .iter()
        .filter(|url| Some(url.as_str()) != owner)
        .map(|url| {
            let mut hasher = blake3::Hasher::new();
            hasher.update(&slot.to_be_bytes());
            hasher.update(url.as_bytes());
            (hasher.finalize(), url)
        })
        .collect();
    ranked.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()).then(a.1.cmp(b.1)));
    ranked.into_iter().map(|(_, url)| url.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(urls: &[&str]) -> BTreeSet<String> {
        urls.iter().map(|u| (*u).to_owned()).collect()
    }

    #[test]
    fn the_owner_is_never_its_own_standby() {
        let live = members(&["http://a", "http://b", "http://c"]);
        for slot in 0..12 {
            let order = standby_order(slot, Some("http://b"), &live);
            assert_eq!(order.len(), 2);
            assert!(!order.contains(&"http://b".to_owned()));
        }
        assert_eq!(standby_order(3, None, &live).len(), 3);
    }

    #[test]
    fn a_member_leaving_moves_only_its_own_standbys() {
        let before = members(&["http://a", "http://b", "http://c", "http://d"]);
        let after = members(&["http://a", "http://b", "http://c"]);
        for slot in 0..48 {
            let old = standby_order(slot, Some("http://a"), &before);
            let new = standby_order(slot, Some("http://a"), &after);
            let kept: Vec<&String> = old.iter().filter(|u| *u != "http://d").collect();
            assert_eq!(kept, new.iter().collect::<Vec<_>>(), "slot {slot}");
        }
    }

    #[test]
    fn first_standbys_spread_over_the_members() {
        let live = members(&["http://a", "http://b", "http://c"]);
        let firsts: BTreeSet<String> = (0..12)
            .map(|slot| standby_order(slot, None, &live)[0].clone())
            .collect();
        assert_eq!(firsts.len(), 3, "{firsts:?}");
    }
}
