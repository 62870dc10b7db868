//! Kafka (or any Kafka-protocol broker) through librdkafka.
//!
//! Each projection version gets its own consumer with *manual* partition
//! assignment at the offsets in its own state file: the state file is the
//! source of truth, nothing is auto-committed, and no consumer-group
//! membership is involved (which also rules out librdkafka's hang when a
//! subscribed consumer with unread messages is dropped). A periodic refresh
//! probes the broker with one metadata request, picks up topics and
//! partitions that appear later, and reads the watermarks librdkafka cached
//! from fetch responses for lag and retention warnings.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::CString;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, DefaultConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde::Deserialize;

use super::{
    Partitions, Source, SourceError, SourceHealth, SourceStatus, Subscription, TopicBinding,
};
use crate::event::{Event, Offsets};
use crate::projection::unix_now;

/// Connection settings shared by every Kafka subscription.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `bootstrap.servers`.
    pub bootstrap: String,
    /// Any librdkafka property (`security.protocol`, `sasl.*`, `ssl.*`,
    /// `client.id` ...), passed through unchanged; they win over our defaults.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// Also commit positions to the consumer group `projector.<projection>`
    /// so standard lag tools see them. Never read back.
    #[serde(default)]
    pub commit_group_offsets: bool,
    /// How often metadata and watermarks are refreshed (new topics and
    /// partitions, lag, broker liveness), in milliseconds.
    #[serde(default = "default_refresh_ms")]
    pub refresh_interval_ms: u64,
    /// Timeout of one metadata or watermark request, in milliseconds.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
}

fn default_refresh_ms() -> u64 {
    1000
}

fn default_request_timeout_ms() -> u64 {
    2000
}

impl KafkaConfig {
    pub fn new(bootstrap: impl Into<String>) -> Self {
        Self {
            bootstrap: bootstrap.into(),
            properties: BTreeMap::new(),
            commit_group_offsets: false,
            refresh_interval_ms: default_refresh_ms(),
            request_timeout_ms: default_request_timeout_ms(),
        }
    }

    /// A producer's (or admin client's) configuration: the bootstrap and
    /// the user's properties, none of the consumer's.
    pub(crate) fn producer_config(&self, client: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap)
            .set("client.id", format!("projector.{client}"))
            .set("reconnect.backoff.max.ms", "2000");
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }

    pub(crate) fn client_config(&self, projection: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", format!("projector.{projection}"))
            .set("client.id", format!("projector.{projection}"))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            // Positions below the log start (deleted by retention) restart
            // at the earliest retained offset; status warns about the gap.
            .set("auto.offset.reset", "earliest")
            .set("reconnect.backoff.max.ms", "2000")
            // When the prefetch queue is full (queued.min.messages or
            // queued.max.messages.kbytes), librdkafka stops fetching for this
            // long (default 1000 ms). A reader faster than about 300k events/s
            // drains the queue well within that and then waits with nothing
            // to read: reading 1M events from 8 partitions spent 2/3 of its
            // time in such stalls. 100 ms ends them; shorter only adds small
            // fetches (broker CPU) without making a fold faster.
            .set("fetch.queue.backoff.ms", "100");
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }
}

/// Real topic -> next offset to be written per partition, as last seen.
type HeadsCache = Arc<RwLock<HashMap<String, Vec<u64>>>>;

#[derive(Debug, Clone)]
pub struct KafkaSource {
    config: Arc<KafkaConfig>,
    heads: HeadsCache,
}

impl KafkaSource {
    /// Checks the configuration (librdkafka rejects unknown properties); does
    /// not contact the broker, which may come up later.
    pub fn new(config: KafkaConfig) -> Result<Self, SourceError> {
        let probe: Result<BaseConsumer, KafkaError> = config.client_config("probe").create();
        probe.map_err(|e| SourceError::Kafka(format!("invalid Kafka configuration: {e}")))?;
        Ok(Self {
            config: Arc::new(config),
            heads: HeadsCache::default(),
        })
    }
}

impl Source for KafkaSource {
    fn kind(&self) -> &'static str {
        "kafka"
    }

    fn subscribe(
        &self,
        projection: &str,
        topics: &[TopicBinding],
        partitions: Partitions,
        from: &Offsets,
    ) -> Result<Box<dyn Subscription>, SourceError> {
        let consumer: BaseConsumer = self
            .config
            .client_config(projection)
            .create_with_context(DefaultConsumerContext)
            .map_err(|e| SourceError::Kafka(format!("cannot create a consumer: {e}")))?;
        let mut subscription = KafkaSubscription {
            consumer,
            config: self.config.clone(),
            heads: self.heads.clone(),
            projection: projection.to_owned(),
            bindings: topics.to_vec(),
            partitions,
            positions: from.clone(),
            assigned: HashMap::new(),
            health: SourceHealth::Ok,
            warnings: Vec::new(),
            warned: HashSet::new(),
            started: HashMap::new(),
            behind: HashSet::new(),
            log_checked: HashMap::new(),
            next_refresh: Instant::now(),
        };
        subscription.refresh();
        Ok(Box::new(subscription))
    }

    fn partition_count(&self, topic: &str) -> Result<Option<u32>, SourceError> {
        // Subscriptions refresh the topic's metadata every second: their
        // count spares a client and a round trip (a layout check asks often).
        if let Some(known) = self
            .heads
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(topic)
            .filter(|heads| !heads.is_empty())
        {
            return Ok(Some(known.len() as u32));
        }
        let consumer: BaseConsumer = self
            .config
            .client_config("partition-count")
            .create_with_context(DefaultConsumerContext)
            .map_err(|e| SourceError::Kafka(format!("cannot create a consumer: {e}")))?;
        let timeout = Duration::from_millis(self.config.request_timeout_ms);
        let metadata = consumer
            .fetch_metadata(Some(topic), timeout)
            .map_err(|e| SourceError::Kafka(format!("metadata request failed: {e}")))?;
        Ok(metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
            .map(|t| t.partitions().len() as u32))
    }

    fn heads(&self, topic: &str) -> Vec<u64> {
        self.heads
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(topic)
            .cloned()
            .unwrap_or_default()
    }

    fn wake_all(&self) {
        // Subscriptions never block longer than the wait they are given.
    }
}

struct KafkaSubscription {
    consumer: BaseConsumer,
    config: Arc<KafkaConfig>,
    heads: HeadsCache,
    projection: String,
    /// Real topic and the name the module knows; a few, so found by a scan.
    bindings: Vec<TopicBinding>,
    partitions: Partitions,
    /// Next offset per logical topic and partition.
    positions: Offsets,
    /// Real topic -> partitions assigned so far (0..n).
    assigned: HashMap<String, u32>,
    health: SourceHealth,
    warnings: Vec<String>,
    warned: HashSet<(String, u32)>,
    /// Partitions (by logical topic) this subscription has read from.
    started: HashMap<String, HashSet<u32>>,
    /// Partitions (real topic) whose log ends before the position this
    /// projection reached: re-created or truncated. Paused, never read
    /// again by this subscription, so nothing is dropped.
    behind: HashSet<(String, u32)>,
    /// Until when a partition's log was seen to reach its position: an
    /// event below the position until then is a redelivery.
    log_checked: HashMap<(String, u32), Instant>,
    next_refresh: Instant,
}

impl KafkaSubscription {
    fn timeout(&self) -> Duration {
        Duration::from_millis(self.config.request_timeout_ms)
    }

    fn set_unavailable(&mut self, error: String) {
        match &self.health {
            SourceHealth::Unavailable { .. } => {}
            _ => {
                tracing::warn!(projection = %self.projection, %error, "Kafka source unavailable; retrying");
                self.health = SourceHealth::Unavailable {
                    since: unix_now(),
                    error,
                };
            }
        }
    }

    fn set_available(&mut self, missing: Vec<String>) {
        let health = if missing.is_empty() {
            SourceHealth::Ok
        } else {
            SourceHealth::WaitingForTopics { topics: missing }
        };
        if health != self.health {
            match &health {
                SourceHealth::Ok => {
                    tracing::info!(projection = %self.projection, "Kafka source available")
                }
                SourceHealth::WaitingForTopics { topics } => {
                    tracing::warn!(projection = %self.projection, ?topics, "waiting for Kafka topics to exist")
                }
                SourceHealth::Unavailable { .. } => {}
            }
            self.health = health;
        }
    }

    /// Probes the broker, assigns partitions that appeared, updates heads and
    /// retention warnings.
    fn refresh(&mut self) {
        self.next_refresh = Instant::now() + Duration::from_millis(self.config.refresh_interval_ms);
        let metadata = match self.consumer.fetch_metadata(None, self.timeout()) {
            Ok(metadata) => metadata,
            Err(e) => return self.set_unavailable(format!("metadata request failed: {e}")),
        };
        let mut partitions_of: HashMap<&str, u32> = HashMap::new();
        for topic in metadata.topics() {
            if topic.error().is_none() && !topic.partitions().is_empty() {
                partitions_of.insert(topic.name(), topic.partitions().len() as u32);
            }
        }
        let mut missing = Vec::new();
        let mut new_assignment = TopicPartitionList::new();
        let mut counts = Vec::new();
        for binding in &self.bindings {
            let Some(&count) = partitions_of.get(binding.physical.as_str()) else {
                missing.push(binding.physical.clone());
                continue;
            };
            let already = self.assigned.get(&binding.physical).copied().unwrap_or(0);
            for partition in (already..count).filter(|&p| self.partitions.includes(p)) {
                let next = self.positions.get(&binding.logical, partition);
                let offset = if next == 0 {
                    Offset::Beginning
                } else {
                    Offset::Offset(next as i64)
                };
                if let Err(e) =
                    new_assignment.add_partition_offset(&binding.physical, partition as i32, offset)
                {
                    return self.set_unavailable(format!("bad assignment: {e}"));
                }
            }
            counts.push((binding.clone(), count));
        }
        if new_assignment.count() > 0 {
            if let Err(e) = self.consumer.incremental_assign(&new_assignment) {
                return self.set_unavailable(format!("partition assignment failed: {e}"));
            }
            for (binding, count) in &counts {
                let already = self
                    .assigned
                    .insert(binding.physical.clone(), *count)
                    .unwrap_or(0);
                let added: Vec<u32> = (already..*count)
                    .filter(|&p| self.partitions.includes(p))
                    .collect();
                if !added.is_empty() {
                    tracing::info!(
                        projection = %self.projection,
                        topic = %binding.physical,
                        partitions = ?added,
                        "assigned Kafka partitions"
                    );
                }
            }
        }
        for (binding, count) in counts {
            let mut mine = Vec::new();
            let partitions = self.partitions;
            for partition in (0..count).filter(|&p| partitions.includes(p)) {
                let cached = self.cached_watermarks(&binding.physical, partition);
                let (low, high) = cached.unwrap_or((None, 0));
                mine.push((partition as usize, high));
                if let Some(low) = low {
                    self.check_retention(&binding, partition, low);
                }
                // A log that ends before the position (an emptied topic
                // sends no event to notice it by).
                let next = self.positions.get(&binding.logical, partition);
                if cached.is_some() && high < next {
                    self.check_log_reaches(&binding.physical, partition, next);
                }
            }
            // Only this subscription's partitions, under the lock: the
            // others are other units' to set, and they refresh at the same
            // moments.
            let mut heads = self.heads.write().unwrap_or_else(PoisonError::into_inner);
            let heads = heads.entry(binding.physical.clone()).or_default();
            heads.resize(count as usize, 0);
            for (partition, high) in mine {
                heads[partition] = high;
            }
        }
        self.set_available(missing);
    }

    /// The watermarks librdkafka last saw in fetch responses, without a
    /// request (a ListOffsets round trip per partition is slow on some
    /// brokers). The low watermark is `None` until the broker reported it.
    fn cached_watermarks(&self, topic: &str, partition: u32) -> Option<(Option<u64>, u64)> {
        let topic = CString::new(topic).ok()?;
        let (mut low, mut high) = (-1i64, -1i64);
        // SAFETY: the client pointer is valid while `self.consumer` lives,
        // `topic` is NUL-terminated and outlives the call, and `low`/`high`
        // are valid for writes; librdkafka only reads its cached state.
        #[allow(unsafe_code)]
        let error = unsafe {
            rdkafka::bindings::rd_kafka_get_watermark_offsets(
                self.consumer.client().native_ptr(),
                topic.as_ptr(),
                partition as i32,
                &mut low,
                &mut high,
            )
        };
        let ok = error == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR;
        (ok && high >= 0).then(|| ((low >= 0).then_some(low as u64), high as u64))
    }

    /// Warns once per partition when events the projection has not applied
    /// were already deleted by the broker's retention.
    fn check_retention(&mut self, binding: &TopicBinding, partition: u32, low: u64) {
        let next = self.positions.get(&binding.logical, partition);
        if low > next {
            let logical = binding.logical.clone();
            self.report_gap(&logical, partition, next, low);
        }
    }

    /// The log no longer holds offsets `next..first` the projection needs
    /// (deleted by retention, or compacted away).
    fn report_gap(&mut self, logical: &str, partition: u32, next: u64, first: u64) {
        let physical = self
            .bindings
            .iter()
            .find(|b| b.logical == logical)
            .map_or(logical, |b| b.physical.as_str())
            .to_owned();
        if !self.warned.insert((physical.clone(), partition)) {
            return;
        }
        let warning = format!(
            "history incomplete: {physical}/{partition} starts at offset {first} but the projection needs offset {next}; events {next}..{first} are gone from the log (retention or compaction) and are not in the state"
        );
        tracing::warn!(projection = %self.projection, "{warning}");
        self.warnings.push(warning);
    }

    /// An event below this partition's position, or a log head below it,
    /// was seen: asks the broker where the partition's log ends. Below the
    /// position, the log is not the one the projection read (the topic was
    /// deleted and re-created, or truncated): the partition is held.
    /// Otherwise an event below the position is a redelivery, and is
    /// skipped. Returns whether the partition is held.
    fn check_log_reaches(&mut self, physical: &str, partition: u32, next: u64) -> bool {
        let key = (physical.to_owned(), partition);
        if self.behind.contains(&key) {
            return true;
        }
        if self
            .log_checked
            .get(&key)
            .is_some_and(|until| Instant::now() < *until)
        {
            return false;
        }
        match self
            .consumer
            .fetch_watermarks(physical, partition as i32, self.timeout())
        {
            Ok((_, high)) if (high.max(0) as u64) < next => {
                self.hold(physical, partition, next, high.max(0) as u64);
                true
            }
            Ok(_) => {
                let until = Instant::now() + Duration::from_millis(self.config.refresh_interval_ms);
                self.log_checked.insert(key, until);
                false
            }
            Err(e) => {
                // Unknown: read the partition again from the position, so
                // the events below it come back to be checked again.
                tracing::warn!(projection = %self.projection, topic = physical, partition, error = %e, "cannot check where the partition's log ends; reading it again from the projection's position");
                let _ = self.consumer.seek(
                    physical,
                    partition as i32,
                    Offset::Offset(next as i64),
                    self.timeout(),
                );
                true
            }
        }
    }

    /// Stops reading a partition whose log ends at `head`, before `next`,
    /// the offset the projection needs next, and says so in status.
    fn hold(&mut self, physical: &str, partition: u32, next: u64, head: u64) {
        self.behind.insert((physical.to_owned(), partition));
        let mut list = TopicPartitionList::new();
        let _ = list.add_partition(physical, partition as i32);
        if let Err(e) = self.consumer.pause(&list) {
            tracing::debug!(projection = %self.projection, error = %e, "pausing the partition failed; its events are skipped unread");
        }
        let projection = &self.projection;
        let warning = format!(
            "log behind the projection: {physical}/{partition} ends at offset {head} but {projection} already applied its events before offset {next}; the topic was deleted and re-created (or truncated), so its offsets restarted. Reading {physical}/{partition} is held: nothing from it is applied or dropped. Choices: rebuild {projection} from what the topic holds now (`projector replay {projection}`, or POST /v1/projections/{projection}/replay), or restore the topic's events and restart"
        );
        tracing::error!(projection = %self.projection, "{warning}");
        self.warnings.push(warning);
    }
}

/// The event of a message at or after its partition's position in
/// `positions`, which moves past it, and the position expected when this
/// is the first message read from its partition and lies beyond it (a gap
/// to report). `None` for a message of a topic not bound, or a redelivery
/// (after a reconnect) of one already returned. Runs once per message: it
/// allocates nothing but the event itself.
fn accept(
    bindings: &[TopicBinding],
    positions: &mut Offsets,
    started: &mut HashMap<String, HashSet<u32>>,
    message: &rdkafka::message::BorrowedMessage<'_>,
) -> Option<(Event, Option<u64>)> {
    let topic = message.topic();
    let logical = &bindings.iter().find(|b| b.physical == topic)?.logical;
    let partition = message.partition() as u32;
    let offset = message.offset() as u64;
    let expected = positions.get(logical, partition);
    if offset < expected {
        return None;
    }
    let first_read = match started.get_mut(logical) {
        Some(partitions) => partitions.insert(partition),
        None => {
            started.insert(logical.clone(), HashSet::from([partition]));
            true
        }
    };
    positions.set(logical, partition, offset + 1);
    let event = Event {
        source: logical.clone(),
        partition,
        offset,
        key: message.key().map(<[u8]>::to_vec),
        payload: message.payload().map(<[u8]>::to_vec),
        timestamp_ms: message.timestamp().to_millis().unwrap_or(0),
        headers: message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
    };
    Some((event, (first_read && offset > expected).then_some(expected)))
}

impl Subscription for KafkaSubscription {
    fn poll_batch(
        &mut self,
        max: usize,
        wait: Duration,
        out: &mut Vec<Event>,
    ) -> Result<(), SourceError> {
        if Instant::now() >= self.next_refresh {
            self.refresh();
        }
        let deadline = Instant::now() + wait;
        let before = out.len();
        while out.len() - before < max {
            // Block for the first message only; then drain what is buffered.
            let timeout = if out.len() > before {
                Duration::ZERO
            } else {
                deadline.saturating_duration_since(Instant::now())
            };
            match self.consumer.poll(timeout) {
                None => {
                    if out.len() > before || Instant::now() >= deadline {
                        break;
                    }
                }
                Some(Ok(message)) => {
                    let partition = message.partition() as u32;
                    let offset = message.offset().max(0) as u64;
                    let below = self
                        .bindings
                        .iter()
                        .find(|b| b.physical == message.topic())
                        .and_then(|b| {
                            let next = self.positions.get(&b.logical, partition);
                            (offset < next).then(|| (b.physical.clone(), next))
                        });
                    let held = !self.behind.is_empty()
                        && self
                            .behind
                            .iter()
                            .any(|(t, p)| *p == partition && t == message.topic());
                    if held {
                        continue;
                    }
                    if let Some((physical, next)) = below {
                        // Skipped either way: a redelivery, or an event of
                        // a log behind the position, which is held.
                        drop(message);
                        self.check_log_reaches(&physical, partition, next);
                        continue;
                    }
                    let Some((event, gap)) = accept(
                        &self.bindings,
                        &mut self.positions,
                        &mut self.started,
                        &message,
                    ) else {
                        continue;
                    };
                    if let Some(expected) = gap {
                        self.report_gap(&event.source, event.partition, expected, event.offset);
                    }
                    if matches!(self.health, SourceHealth::Unavailable { .. }) {
                        self.set_available(Vec::new());
                    }
                    out.push(event);
                }
                Some(Err(e)) => {
                    self.set_unavailable(e.to_string());
                    break;
                }
            }
        }
        Ok(())
    }

    fn at_head(&self) -> bool {
        if matches!(self.health, SourceHealth::Unavailable { .. }) {
            return false;
        }
        // Every assigned partition read up to the high watermark librdkafka
        // last saw; unknown until its first fetch answered.
        self.bindings.iter().all(|binding| {
            let assigned = self.assigned.get(&binding.physical).copied().unwrap_or(0);
            (0..assigned)
                .filter(|&p| self.partitions.includes(p))
                .all(|partition| {
                    self.cached_watermarks(&binding.physical, partition)
                        .is_some_and(|(_, high)| {
                            self.positions.get(&binding.logical, partition) >= high
                        })
                })
        })
    }

    fn status(&self) -> SourceStatus {
        SourceStatus {
            kind: "kafka",
            health: self.health.clone(),
            warnings: self.warnings.clone(),
            held_behind: self.behind.iter().cloned().collect(),
        }
    }

    fn committed(&mut self, positions: &Offsets) {
        if !self.config.commit_group_offsets {
            return;
        }
        let mut list = TopicPartitionList::new();
        for binding in &self.bindings {
            for (topic, partition, next) in positions.iter() {
                if topic == binding.logical {
                    let _ = list.add_partition_offset(
                        &binding.physical,
                        partition as i32,
                        Offset::Offset(next as i64),
                    );
                }
            }
        }
        if list.count() > 0
            && let Err(e) = self.consumer.commit(&list, CommitMode::Async)
        {
            tracing::debug!(projection = %self.projection, error = %e, "group offset commit failed");
        }
    }
}

impl Drop for KafkaSubscription {
    fn drop(&mut self) {
        // Manual assignment only, so closing cannot wait on a group
        // rebalance; unassigning first also drops prefetched messages.
        let _ = self.consumer.unassign();
    }
}
