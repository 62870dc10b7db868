//! Instances of one group share the work (`projector run --group NAME`).
//!
//! The unit of work is a *slot*: a partition of the control topic
//! `projector.<group>.units`. Unit `p` of every partitioned projection
//! belongs to slot `p` (modulo the slot count), a global projection to the
//! slot its name hashes to. Kafka's consumer group protocol (cooperative
//! sticky) hands the slots out ([`membership`]); an instance folds only
//! what it holds ([`Ownership`]), and learns from the members topic
//! ([`directory`]) where every other slot is, to answer any read.

pub mod directory;
pub mod membership;
mod ownership;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

pub use directory::{Directory, Member};
pub use ownership::{Gate, HandoverFrom, Ownership, slot_of_name};

use crate::source::KafkaConfig;

/// Slots of a new group's control topic: more than any partition count
/// usual for one topic, and divisible by 1, 2, 3, 4 and 6 instances.
pub const DEFAULT_SLOTS: u32 = 12;
/// Default Kafka session timeout of the group: how long a dead instance
/// keeps its slots.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(6);

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("--group needs --kafka BOOTSTRAP: the group is a Kafka consumer group")]
    NoKafka,
    #[error(
        "--group needs --advertise URL (or PROJECTOR_ADVERTISE, [cluster] advertise): the URL the other instances reach this one's HTTP API at, e.g. http://10.0.0.5:7878"
    )]
    NoAdvertise,
    #[error("group {group}: {message}")]
    Topic { group: String, message: String },
    #[error("Kafka: {0}")]
    Kafka(String),
}

/// `[cluster]`.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub group: String,
    /// This instance's HTTP API as the others reach it.
    pub advertise: String,
    pub kafka: KafkaConfig,
    /// Partitions of the control topic when this instance creates it.
    pub slots: u32,
    pub session_timeout: Duration,
}

impl ClusterConfig {
    /// The Kafka consumer group.
    pub fn group_id(&self) -> String {
        format!("projector.{}", self.group)
    }

    pub fn units_topic(&self) -> String {
        format!("projector.{}.units", self.group)
    }

    pub fn members_topic(&self) -> String {
        format!("projector.{}.members", self.group)
    }
}

/// This instance's part in its group.
#[derive(Debug)]
pub struct Cluster {
    pub config: ClusterConfig,
    pub ownership: Arc<Ownership>,
    pub directory: Arc<Directory>,
    /// Set by the membership on every change of the slots; the directory
    /// then publishes this member's record at once.
    changed: Arc<AtomicBool>,
    membership: std::sync::Mutex<Option<membership::Membership>>,
}

impl Cluster {
    /// Creates the group's topics when missing, reads the slot count, and
    /// starts the member record; the group is joined by [`Cluster::join`]
    /// once the projections are loaded.
    pub fn start(config: ClusterConfig) -> Result<Self, ClusterError> {
        let slots = ensure_topics(&config)?;
        // A renewal sent at t was answered by a member whose last heartbeat
        // was at most a heartbeat interval (session/6) earlier, and the group
        // removes a member a whole session after its last heartbeat: acting
        // until t + 2/3 session stops a fenced instance before its slots can
        // be given away, with room for the rebalances (whose answers renew
        // too) during which commits are not answered.
        let ownership = Arc::new(Ownership::new(slots, config.session_timeout * 2 / 3));
        let changed = Arc::new(AtomicBool::new(true));
        let directory = Directory::start(&config, ownership.clone(), changed.clone())?;
        Ok(Self {
            config,
            ownership,
            directory,
            changed,
            membership: std::sync::Mutex::new(None),
        })
    }

    /// Joins the consumer group: slots start coming.
    pub fn join(&self) -> Result<(), ClusterError> {
        let membership = membership::Membership::join(
            &self.config,
            self.ownership.clone(),
            self.changed.clone(),
        )?;
        *self
            .membership
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(membership);
        Ok(())
    }

    /// Leaves the group (its slots are committed and handed over first),
    /// then withdraws the member record.
    pub fn leave(&self) {
        let membership = self
            .membership
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(membership) = membership {
            membership.leave();
        }
        self.directory.stop();
    }
}

/// Creates the control and members topics when they do not exist, and
/// answers the control topic's partition count (the slot count).
fn ensure_topics(config: &ClusterConfig) -> Result<u32, ClusterError> {
    let group = config.group.clone();
    let topic_error = |message: String| ClusterError::Topic {
        group: group.clone(),
        message,
    };
    let client_config = config.kafka.client_config(&config.group);
    let probe: rdkafka::consumer::BaseConsumer = client_config
        .create()
        .map_err(|e| ClusterError::Kafka(e.to_string()))?;
    let timeout = Duration::from_millis(config.kafka.request_timeout_ms.max(5_000));
    let count = |topic: &str| -> Result<Option<u32>, ClusterError> {
        let metadata = rdkafka::consumer::Consumer::fetch_metadata(&probe, Some(topic), timeout)
            .map_err(|e| {
                ClusterError::Kafka(format!("cannot read the metadata of {topic}: {e}"))
            })?;
        Ok(metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
            .map(|t| t.partitions().len() as u32))
    };
    let units = config.units_topic();
    let members = config.members_topic();
    let missing: Vec<(String, u32, bool)> = [
        (units.clone(), config.slots, false),
        (members.clone(), 1, true),
    ]
    .into_iter()
    .filter(|(topic, _, _)| !matches!(count(topic), Ok(Some(_))))
    .collect();
    if !missing.is_empty() {
        let admin: AdminClient<DefaultClientContext> = config
            .kafka
            .producer_config(&config.group)
            .create()
            .map_err(|e| ClusterError::Kafka(e.to_string()))?;
        let topics: Vec<NewTopic<'_>> = missing
            .iter()
            .map(|(name, partitions, compacted)| {
                let topic = NewTopic::new(name, *partitions as i32, TopicReplication::Fixed(-1));
                if *compacted {
                    topic.set("cleanup.policy", "compact")
                } else {
                    topic
                }
            })
            .collect();
        // On a thread of its own: start-up may run inside an async runtime.
        let options = AdminOptions::new().operation_timeout(Some(timeout));
        let results = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| e.to_string())
                        .and_then(|runtime| {
                            runtime
                                .block_on(admin.create_topics(&topics, &options))
                                .map_err(|e| e.to_string())
                        })
                })
                .join()
                .unwrap_or_else(|_| Err("the topic creation thread crashed".to_owned()))
        })
        .map_err(|e| topic_error(format!("cannot create its topics: {e}")))?;
        for result in results {
            match result {
                Ok(name) => tracing::info!(topic = %name, "created a topic of the group"),
                Err((name, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {
                    tracing::debug!(topic = %name, "another instance created it first")
                }
                Err((name, code)) => {
                    return Err(topic_error(format!(
                        "cannot create topic {name}: {code}; create it (the control topic with as many partitions as slots, the members topic compacted with one partition)"
                    )));
                }
            }
        }
    }
    // Metadata of a topic just created can lag a moment.
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(slots) = count(&units)? {
            if count(&members)?.is_none() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            return Ok(slots);
        }
        if std::time::Instant::now() >= deadline {
            return Err(topic_error(format!(
                "topic {units} does not show in the metadata"
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
