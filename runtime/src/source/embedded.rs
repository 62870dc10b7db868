//! The embedded log: partitioned topics in one redb file (`data/log.redb`).
//!
//! Appends go through one appender thread that groups concurrent requests
//! into a single durable write transaction (group commit): every request is
//! atomic and durable once acknowledged, and many share one fsync. Readers
//! use redb read transactions (MVCC) and never block the appender.

use std::collections::HashMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{
    Database, Durability, ReadOnlyTable, ReadableDatabase, ReadableTable, TableDefinition,
    WriteTransaction,
};
use serde::{Deserialize, Serialize};

use super::{
    ChangeSignal, Partitions, Source, SourceError, SourceHealth, SourceStatus, Subscription,
    TopicBinding,
};
use crate::event::{Event, NewRecord, Offsets};
use crate::partitioner::partition_for_key;

/// topic -> partition count.
const TOPICS: TableDefinition<&str, u32> = TableDefinition::new("topics");
/// (topic, partition) -> next offset to write.
const HEADS: TableDefinition<(&str, u32), u64> = TableDefinition::new("heads");
/// (topic, partition, offset) -> MessagePack-encoded [`StoredRecord`].
const RECORDS: TableDefinition<(&str, u32, u64), &[u8]> = TableDefinition::new("records");

/// Kafka's limit on topic names, and its legal characters.
const MAX_TOPIC_LEN: usize = 249;
/// Kafka's own ceiling is far higher; more than this many partitions in one
/// process is a configuration mistake.
pub const MAX_PARTITIONS: u32 = 1024;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    #[error(
        "invalid topic name {0:?}: use 1 to 249 characters from a-z, A-Z, 0-9, '.', '_' and '-'"
    )]
    InvalidTopic(String),
    #[error("invalid partition count {0} for topic {1:?}: choose 1 to {MAX_PARTITIONS}")]
    InvalidPartitions(u32, String),
    #[error("topic {topic:?} already exists with {existing} partitions, not {requested}")]
    PartitionMismatch {
        topic: String,
        existing: u32,
        requested: u32,
    },
    #[error("the embedded log at {path} could not be opened: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: redb::Error,
    },
    #[error("embedded log storage error: {0}")]
    Storage(#[from] redb::Error),
    #[error(
        "the embedded log at {path} is damaged: reading it failed ({detail}); restore it from a backup"
    )]
    Damaged { path: PathBuf, detail: String },
    #[error(
        "the embedded log at {path} holds {head} events in {topic}/{partition}, but projection {projection:?} has applied up to offset {position} there: the log was replaced or cut short. Restore the log file, or remove the projection's state files to rebuild it from the log as it is"
    )]
    BehindProjection {
        path: PathBuf,
        projection: String,
        topic: String,
        partition: u32,
        head: u64,
        position: u64,
    },
    #[error("corrupt record in the embedded log at {topic}/{partition}@{offset}: {reason}")]
    CorruptRecord {
        topic: String,
        partition: u32,
        offset: u64,
        reason: String,
    },
    #[error("append failed, nothing was written: {0}")]
    AppendFailed(String),
    #[error("the embedded log is shut down")]
    Closed,
}

fn storage(err: impl Into<redb::Error>) -> LogError {
    LogError::Storage(err.into())
}

pub use projector_formats::record::encode_record;

impl From<projector_formats::record::CorruptRecord> for LogError {
    fn from(e: projector_formats::record::CorruptRecord) -> Self {
        LogError::CorruptRecord {
            topic: e.topic,
            partition: e.partition,
            offset: e.offset,
            reason: e.reason,
        }
    }
}

/// Decodes the stored bytes of the record at `topic`/`partition`@`offset`
/// (`projector_formats::record`, where the fuzz target drives it). The
/// bytes are untrusted (the file may be damaged): anything that is not a
/// record is [`LogError::CorruptRecord`].
pub fn decode_record(
    topic: &str,
    partition: u32,
    offset: u64,
    bytes: &[u8],
) -> Result<Event, LogError> {
    Ok(projector_formats::record::decode_record(
        topic, partition, offset, bytes,
    )?)
}

/// Offsets one append was given in one partition (inclusive range).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PartitionRange {
    pub partition: u32,
    pub first_offset: u64,
    pub last_offset: u64,
    pub count: u64,
}

/// What an acknowledged append was given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AppendReceipt {
    pub topic: String,
    pub count: u64,
    /// Per partition touched, in partition order.
    pub partitions: Vec<PartitionRange>,
    /// The offsets a projection must reach to have seen this append:
    /// `{"topic": {"partition": next_offset}}`.
    pub next_offsets: Offsets,
}

struct AppendRequest {
    topic: String,
    records: Vec<NewRecord>,
    reply: SyncSender<Result<AppendReceipt, LogError>>,
}

enum AppenderMsg {
    Append(AppendRequest),
    Stop,
}

/// redb's page cache of the log unless configured (`log_cache_mb`).
/// redb's own default, 1 GiB, lets the process grow to the size of the
/// whole log as readers go through it; readers of one topic move together,
/// so the pages they share stay cached, and older ones are read back from
/// the operating system's page cache.
pub const DEFAULT_CACHE_BYTES: usize = 32 << 20;

struct Shared {
    /// `None` between closing after a write failure and reopening.
    db: std::sync::RwLock<Option<Database>>,
    signal: ChangeSignal,
    /// The log file, for messages.
    path: PathBuf,
    /// redb's page cache for the log, bytes.
    cache_bytes: usize,
}

impl Shared {
    /// Runs `f` on the database, reopening the file first if a write
    /// failure closed it and the reopen has not succeeded yet.
    fn with_db<T>(&self, f: impl FnOnce(&Database) -> Result<T, LogError>) -> Result<T, LogError> {
        use std::sync::PoisonError;
        {
            let db = self.db.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(db) = db.as_ref() {
                return f(db);
            }
        }
        let mut db = self.db.write().unwrap_or_else(PoisonError::into_inner);
        if db.is_none() {
            *db = Some(
                open_database(&self.path, self.cache_bytes).map_err(|source| LogError::Open {
                    path: self.path.clone(),
                    source,
                })?,
            );
        }
        match db.as_ref() {
            Some(db) => f(db),
            None => Err(LogError::Closed),
        }
    }

    /// After a write failed on the device (disk full, I/O error) redb
    /// refuses every later transaction on that handle: close the file and
    /// open it again. Appends are durable, so nothing acknowledged is lost.
    fn reopen(&self) -> Result<(), LogError> {
        let mut db = self
            .db
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *db = None;
        *db = Some(
            open_database(&self.path, self.cache_bytes).map_err(|source| LogError::Open {
                path: self.path.clone(),
                source,
            })?,
        );
        Ok(())
    }
}

/// Handle to the embedded log; cheap to clone.
#[derive(Clone)]
pub struct EmbeddedLog {
    shared: Arc<Shared>,
    requests: SyncSender<AppenderMsg>,
    appender: Arc<AppenderThread>,
    default_partitions: u32,
}

struct AppenderThread(std::sync::Mutex<Option<JoinHandle<()>>>);

impl std::fmt::Debug for EmbeddedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedLog")
            .field("default_partitions", &self.default_partitions)
            .finish_non_exhaustive()
    }
}

impl EmbeddedLog {
    /// Opens (or creates) the log file. Topics created implicitly by an append
    /// get `default_partitions` partitions. redb caches up to
    /// [`DEFAULT_CACHE_BYTES`] of its pages.
    pub fn open(path: &Path, default_partitions: u32) -> Result<Self, LogError> {
        Self::open_with_cache(path, default_partitions, DEFAULT_CACHE_BYTES)
    }

    /// [`EmbeddedLog::open`] with up to `cache_bytes` of the log's pages
    /// cached by redb (`log_cache_mb`).
    pub fn open_with_cache(
        path: &Path,
        default_partitions: u32,
        cache_bytes: usize,
    ) -> Result<Self, LogError> {
        if default_partitions == 0 || default_partitions > MAX_PARTITIONS {
            return Err(LogError::InvalidPartitions(
                default_partitions,
                "<default>".into(),
            ));
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| LogError::Open {
                path: path.to_owned(),
                source: redb::Error::Io(e),
            })?;
        }
        let db = open_database(path, cache_bytes).map_err(|source| LogError::Open {
            path: path.to_owned(),
            source,
        })?;

        let shared = Arc::new(Shared {
            db: std::sync::RwLock::new(Some(db)),
            signal: ChangeSignal::default(),
            path: path.to_owned(),
            cache_bytes,
        });
        let (requests, inbox) = mpsc::sync_channel::<AppenderMsg>(1024);
        let appender = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("log-appender".into())
                .spawn(move || run_appender(&shared, &inbox, default_partitions))
                .map_err(|e| LogError::Open {
                    path: path.to_owned(),
                    source: redb::Error::Io(e),
                })?
        };
        Ok(Self {
            shared,
            requests,
            appender: Arc::new(AppenderThread(std::sync::Mutex::new(Some(appender)))),
            default_partitions,
        })
    }

    /// Appends `records` to `topic` atomically and durably: when this returns
    /// `Ok`, every record is on disk; on `Err`, none is. Creates the topic
    /// with the default partition count if it does not exist.
    pub fn append(&self, topic: &str, records: Vec<NewRecord>) -> Result<AppendReceipt, LogError> {
        validate_topic(topic)?;
        let (reply, answer) = mpsc::sync_channel(1);
        self.requests
            .send(AppenderMsg::Append(AppendRequest {
                topic: topic.to_owned(),
                records,
                reply,
            }))
            .map_err(|_| LogError::Closed)?;
        answer.recv().map_err(|_| LogError::Closed)?
    }

    /// Creates `topic` with `partitions` partitions; succeeds if it already
    /// exists with that many.
    pub fn create_topic(&self, topic: &str, partitions: u32) -> Result<(), LogError> {
        validate_topic(topic)?;
        if partitions == 0 || partitions > MAX_PARTITIONS {
            return Err(LogError::InvalidPartitions(partitions, topic.to_owned()));
        }
        let txn = self
            .shared
            .with_db(|db| db.begin_write().map_err(storage))?;
        let existing = ensure_topic(&txn, topic, partitions)?;
        if existing != partitions {
            return Err(LogError::PartitionMismatch {
                topic: topic.to_owned(),
                existing,
                requested: partitions,
            });
        }
        txn.commit().map_err(storage)?;
        self.shared.signal.bump();
        Ok(())
    }

    /// Every topic with its partition count, by name.
    pub fn topics(&self) -> Result<Vec<(String, u32)>, LogError> {
        self.guarded(|| {
            let reader = self.reader()?;
            let mut topics = Vec::new();
            for entry in reader.topics.iter().map_err(storage)? {
                let (name, partitions) = entry.map_err(storage)?;
                topics.push((name.value().to_owned(), partitions.value()));
            }
            Ok(topics)
        })
    }

    /// Runs a read of the file; a panic in redb (which it raises on a
    /// damaged page, where an error belongs) becomes [`LogError::Damaged`].
    /// Only reads: a write transaction unwound mid-way is not trusted.
    fn guarded<T>(&self, read: impl FnOnce() -> Result<T, LogError>) -> Result<T, LogError> {
        crate::panic_guard::catch(read).unwrap_or_else(|detail| {
            Err(LogError::Damaged {
                path: self.shared.path.clone(),
                detail,
            })
        })
    }

    fn reader(&self) -> Result<LogReader, LogError> {
        let txn = self.shared.with_db(|db| db.begin_read().map_err(storage))?;
        Ok(LogReader {
            topics: txn.open_table(TOPICS).map_err(storage)?,
            heads: txn.open_table(HEADS).map_err(storage)?,
            records: txn.open_table(RECORDS).map_err(storage)?,
        })
    }

    /// Stops the appender after it has answered every queued request.
    pub fn shutdown(&self) {
        let handle = self
            .appender
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            // Other clones keep the channel open, so ask the appender to stop
            // explicitly; it answers everything queued before the request.
            let _ = self.requests.send(AppenderMsg::Stop);
            let _ = handle.join();
        }
        self.shared.signal.bump();
    }
}

/// Opens the log file, creating it if it does not exist. A new file is
/// built under a temp name and renamed into place, so a crash while creating
/// it never leaves an empty `log.redb` behind; an empty one is therefore
/// damage and refused (redb would silently start it over, losing every
/// event). Opening reads the header and system pages; redb panics on a
/// damaged page instead of returning an error, so that becomes an error.
fn open_database(path: &Path, cache_bytes: usize) -> Result<Database, redb::Error> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() == 0 => {
            return Err(redb::Error::Corrupted(
                "the file is empty (0 bytes): it was cut short; restore it from a backup (if this data folder never held events, delete the file)".into(),
            ));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_database(path)?,
        Err(e) => return Err(redb::Error::Io(e)),
    }
    crate::panic_guard::catch(|| {
        let db = redb::Builder::new()
            .set_cache_size(cache_bytes)
            .open(path)?;
        create_tables(&db)?;
        Ok(db)
    })
    .unwrap_or_else(|panic| {
        Err(redb::Error::Corrupted(format!(
            "the file is damaged: reading it failed ({panic})"
        )))
    })
}

/// Creates an empty log at `path`: built as `<path>.creating`, then renamed.
fn create_database(path: &Path) -> Result<(), redb::Error> {
    let building = path.with_extension("redb.creating");
    match std::fs::remove_file(&building) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    create_tables(&Database::create(&building)?)?;
    std::fs::rename(&building, path)?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// Creates the tables up front so readers never race their creation.
fn create_tables(db: &Database) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    txn.open_table(TOPICS)?;
    txn.open_table(HEADS)?;
    txn.open_table(RECORDS)?;
    txn.commit()?;
    Ok(())
}

fn validate_topic(topic: &str) -> Result<(), LogError> {
    let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if topic.is_empty()
        || topic.len() > MAX_TOPIC_LEN
        || topic == "."
        || topic == ".."
        || !topic.chars().all(legal)
    {
        return Err(LogError::InvalidTopic(topic.to_owned()));
    }
    Ok(())
}

/// Returns the partition count of `topic`, creating it with `partitions`
/// partitions inside `txn` if it is new.
fn ensure_topic(txn: &WriteTransaction, topic: &str, partitions: u32) -> Result<u32, LogError> {
    let mut topics = txn.open_table(TOPICS).map_err(storage)?;
    if let Some(existing) = topics.get(topic).map_err(storage)? {
        return Ok(existing.value());
    }
    topics.insert(topic, partitions).map_err(storage)?;
    let mut heads = txn.open_table(HEADS).map_err(storage)?;
    for partition in 0..partitions {
        heads.insert((topic, partition), 0).map_err(storage)?;
    }
    Ok(partitions)
}

fn run_appender(shared: &Shared, inbox: &Receiver<AppenderMsg>, default_partitions: u32) {
    // Keyless records are spread round-robin, per topic.
    let mut round_robin: HashMap<String, u32> = HashMap::new();
    while let Ok(AppenderMsg::Append(first)) = inbox.recv() {
        let mut group = vec![first];
        let mut stop = false;
        while let Ok(next) = inbox.try_recv() {
            match next {
                AppenderMsg::Append(request) => group.push(request),
                AppenderMsg::Stop => {
                    stop = true;
                    break;
                }
            }
        }
        let before = round_robin.clone();
        match append_group(shared, &group, default_partitions, &mut round_robin) {
            Ok(receipts) => {
                shared.signal.bump();
                for (request, receipt) in group.into_iter().zip(receipts) {
                    let _ = request.reply.send(Ok(receipt));
                }
            }
            Err(err) => {
                round_robin = before;
                let mut message = err.to_string();
                if let LogError::Storage(redb::Error::Io(e)) = &err
                    && matches!(
                        e.kind(),
                        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
                    )
                {
                    message.push_str(&format!(
                        " (disk full: free space on the disk holding {}; appends work again once there is room)",
                        shared.path.display()
                    ));
                }
                tracing::error!(error = %message, "append to the embedded log failed");
                if matches!(
                    &err,
                    LogError::Storage(redb::Error::Io(_) | redb::Error::PreviousIo)
                ) && let Err(e) = shared.reopen()
                {
                    tracing::warn!(error = %e, "embedded log not reopened yet; the next access tries again");
                }
                for request in group {
                    let _ = request
                        .reply
                        .send(Err(LogError::AppendFailed(message.clone())));
                }
            }
        }
        if stop {
            return;
        }
    }
}

fn append_group(
    shared: &Shared,
    group: &[AppendRequest],
    default_partitions: u32,
    round_robin: &mut HashMap<String, u32>,
) -> Result<Vec<AppendReceipt>, LogError> {
    let mut txn = shared.with_db(|db| db.begin_write().map_err(storage))?;
    txn.set_durability(Durability::Immediate).map_err(storage)?;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut receipts = Vec::with_capacity(group.len());
    for request in group {
        let topic = request.topic.as_str();
        let partitions = ensure_topic(&txn, topic, default_partitions)?;
        let mut heads_table = txn.open_table(HEADS).map_err(storage)?;
        let mut heads = Vec::with_capacity(partitions as usize);
        for partition in 0..partitions {
            let head = heads_table.get((topic, partition)).map_err(storage)?;
            heads.push(head.map_or(0, |h| h.value()));
        }
        let mut ranges: Vec<Option<PartitionRange>> = vec![None; partitions as usize];
        let mut records_table = txn.open_table(RECORDS).map_err(storage)?;
        let mut encoded = Vec::new();
        for record in &request.records {
            let partition = match &record.key {
                Some(key) => partition_for_key(key, partitions),
                None => {
                    let next = round_robin.entry(topic.to_owned()).or_insert(0);
                    let partition = *next % partitions;
                    *next = next.wrapping_add(1);
                    partition
                }
            };
            let offset = heads[partition as usize];
            heads[partition as usize] += 1;
            encoded.clear();
            encode_record(record, now_ms, &mut encoded)
                .map_err(|e| LogError::AppendFailed(format!("encoding a record: {e}")))?;
            records_table
                .insert((topic, partition, offset), encoded.as_slice())
                .map_err(storage)?;
            let range = ranges[partition as usize].get_or_insert(PartitionRange {
                partition,
                first_offset: offset,
                last_offset: offset,
                count: 0,
            });
            range.last_offset = offset;
            range.count += 1;
        }
        let mut next_offsets = Offsets::default();
        for range in ranges.iter().flatten() {
            heads_table
                .insert((topic, range.partition), range.last_offset + 1)
                .map_err(storage)?;
            next_offsets.set(topic, range.partition, range.last_offset + 1);
        }
        receipts.push(AppendReceipt {
            topic: topic.to_owned(),
            count: request.records.len() as u64,
            partitions: ranges.into_iter().flatten().collect(),
            next_offsets,
        });
    }
    txn.commit().map_err(storage)?;
    Ok(receipts)
}

/// A consistent view of the log at one instant.
struct LogReader {
    topics: ReadOnlyTable<&'static str, u32>,
    heads: ReadOnlyTable<(&'static str, u32), u64>,
    records: ReadOnlyTable<(&'static str, u32, u64), &'static [u8]>,
}

impl LogReader {
    fn partitions(&self, topic: &str) -> Result<u32, LogError> {
        Ok(self
            .topics
            .get(topic)
            .map_err(storage)?
            .map_or(0, |p| p.value()))
    }

    fn heads(&self, topic: &str) -> Result<Vec<u64>, LogError> {
        let partitions = self.partitions(topic)?;
        (0..partitions)
            .map(|p| {
                Ok(self
                    .heads
                    .get((topic, p))
                    .map_err(storage)?
                    .map_or(0, |h| h.value()))
            })
            .collect()
    }

    fn read(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        max: usize,
        out: &mut Vec<Event>,
    ) -> Result<(), LogError> {
        let range = self
            .records
            .range::<(&str, u32, u64)>((
                Bound::Included((topic, partition, from)),
                Bound::Included((topic, partition, u64::MAX)),
            ))
            .map_err(storage)?;
        for entry in range.take(max) {
            let (key, value) = entry.map_err(storage)?;
            let (_, _, offset) = key.value();
            out.push(decode_record(topic, partition, offset, value.value())?);
        }
        Ok(())
    }
}

impl Source for EmbeddedLog {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    /// Refuses positions past the end of a partition: the log never loses
    /// events, so the projection's state came from a log that held more
    /// (the file was replaced or cut short), and new appends there would be
    /// skipped silently.
    fn subscribe(
        &self,
        projection: &str,
        topics: &[TopicBinding],
        partitions: Partitions,
        from: &Offsets,
    ) -> Result<Box<dyn Subscription>, SourceError> {
        self.guarded(|| {
            let reader = self.reader()?;
            for binding in topics {
                let heads = reader.heads(&binding.physical)?;
                for (topic, partition, position) in from.iter() {
                    let head = heads.get(partition as usize).copied().unwrap_or(0);
                    if topic == binding.logical && position > head {
                        return Err(LogError::BehindProjection {
                            path: self.shared.path.clone(),
                            projection: projection.to_owned(),
                            topic: binding.physical.clone(),
                            partition,
                            head,
                            position,
                        });
                    }
                }
            }
            Ok(())
        })?;
        Ok(Box::new(EmbeddedSubscription {
            log: self.clone(),
            topics: topics.to_vec(),
            partitions,
            positions: from.clone(),
            rotate: 0,
            missing: Vec::new(),
            failing: None,
        }))
    }

    fn partition_count(&self, topic: &str) -> Result<Option<u32>, SourceError> {
        let existing = self.guarded(|| self.reader()?.partitions(topic))?;
        Ok(Some(if existing == 0 {
            self.default_partitions
        } else {
            existing
        }))
    }

    fn heads(&self, topic: &str) -> Vec<u64> {
        self.guarded(|| self.reader()?.heads(topic))
            .unwrap_or_default()
    }

    fn wake_all(&self) {
        self.shared.signal.bump();
    }
}

/// A projection's cursor over the embedded log; woken by appends.
struct EmbeddedSubscription {
    log: EmbeddedLog,
    topics: Vec<TopicBinding>,
    partitions: Partitions,
    /// Next offset per logical topic and partition.
    positions: Offsets,
    /// Starting partition of the next read, so no partition starves others.
    rotate: usize,
    /// Subscribed topics that do not exist yet.
    missing: Vec<String>,
    /// Since when (Unix seconds) and why reading fails, until a read works.
    failing: Option<(u64, String)>,
}

impl EmbeddedSubscription {
    /// [`Self::read`], with redb's panics on a damaged page turned into an
    /// error (and nothing handed out), and the outcome kept for status.
    fn guarded_read(&mut self, max: usize, out: &mut Vec<Event>) -> Result<(), LogError> {
        let before = out.len();
        let log = self.log.clone();
        let result = log.guarded(|| self.read(max, out));
        match &result {
            Ok(()) => self.failing = None,
            Err(e) => {
                out.truncate(before);
                let since = self
                    .failing
                    .take()
                    .map_or_else(crate::projection::unix_now, |(since, _)| since);
                self.failing = Some((since, e.to_string()));
            }
        }
        result
    }

    fn read(&mut self, max: usize, out: &mut Vec<Event>) -> Result<(), LogError> {
        let reader = self.log.reader()?;
        let mut streams = Vec::new();
        self.missing.clear();
        for binding in &self.topics {
            let partitions = reader.partitions(&binding.physical)?;
            if partitions == 0 {
                self.missing.push(binding.physical.clone());
            }
            for partition in (0..partitions).filter(|&p| self.partitions.includes(p)) {
                streams.push((binding, partition));
            }
        }
        if streams.is_empty() {
            return Ok(());
        }
        self.rotate = self.rotate.wrapping_add(1);
        let start = self.rotate % streams.len();
        // All or nothing: on an error nothing is returned and the position
        // does not move, so the same events are never handed out twice.
        let first_new = out.len();
        let mut positions = self.positions.clone();
        for i in 0..streams.len() {
            let remaining = max.saturating_sub(out.len() - first_new);
            if remaining == 0 {
                break;
            }
            let (binding, partition) = streams[(start + i) % streams.len()];
            let from = positions.get(&binding.logical, partition);
            let before = out.len();
            if let Err(e) = reader.read(&binding.physical, partition, from, remaining, out) {
                out.truncate(first_new);
                return Err(e);
            }
            for event in &mut out[before..] {
                event.source.clone_from(&binding.logical);
            }
            if let Some(last) = out[before..].last() {
                positions.set(&binding.logical, partition, last.offset + 1);
            }
        }
        self.positions = positions;
        Ok(())
    }
}

impl Subscription for EmbeddedSubscription {
    fn poll_batch(
        &mut self,
        max: usize,
        wait: Duration,
        out: &mut Vec<Event>,
    ) -> Result<(), SourceError> {
        let seen = self.log.shared.signal.current();
        let before = out.len();
        self.guarded_read(max, out)?;
        if out.len() == before && !wait.is_zero() {
            self.log.shared.signal.wait_past(seen, wait);
            self.guarded_read(max, out)?;
        }
        Ok(())
    }

    fn at_head(&self) -> bool {
        let reached = self.log.guarded(|| {
            let reader = self.log.reader()?;
            Ok(self.topics.iter().all(|binding| {
                reader.heads(&binding.physical).is_ok_and(|heads| {
                    heads.iter().enumerate().all(|(partition, head)| {
                        let partition = partition as u32;
                        !self.partitions.includes(partition)
                            || self.positions.get(&binding.logical, partition) >= *head
                    })
                })
            }))
        });
        reached.unwrap_or(false)
    }

    fn status(&self) -> SourceStatus {
        let health = match &self.failing {
            Some((since, error)) => SourceHealth::Unavailable {
                since: *since,
                error: error.clone(),
            },
            None if self.missing.is_empty() => SourceHealth::Ok,
            None => SourceHealth::WaitingForTopics {
                topics: self.missing.clone(),
            },
        };
        SourceStatus {
            kind: "embedded",
            health,
            ..SourceStatus::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(log: &EmbeddedLog, topic: &str, from: &Offsets, max: usize, out: &mut Vec<Event>) {
        let binding = TopicBinding {
            logical: topic.to_owned(),
            physical: topic.to_owned(),
        };
        let mut subscription = log
            .subscribe("test", &[binding], crate::source::Partitions::All, from)
            .unwrap();
        subscription.poll_batch(max, Duration::ZERO, out).unwrap();
    }

    fn record(key: Option<&str>, payload: &str) -> NewRecord {
        NewRecord {
            key: key.map(|k| k.as_bytes().to_vec()),
            payload: Some(payload.as_bytes().to_vec()),
            headers: vec![("h".into(), vec![0xff])],
        }
    }

    #[test]
    fn keyed_appends_follow_kafka_partitioning_and_keep_order() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(&dir.path().join("log.redb"), 3).unwrap();
        let receipt = log
            .append(
                "orders",
                (0..10)
                    .map(|i| record(Some("foobar"), &i.to_string()))
                    .collect(),
            )
            .unwrap();
        // murmur2("foobar") -> partition 1357151166 % 3 = 0.
        assert_eq!(receipt.partitions.len(), 1);
        assert_eq!(receipt.partitions[0].partition, 1357151166 % 3);
        assert_eq!(receipt.partitions[0].first_offset, 0);
        assert_eq!(receipt.partitions[0].last_offset, 9);

        let mut out = Vec::new();
        read_all(&log, "orders", &Offsets::default(), 100, &mut out);
        let payloads: Vec<_> = out.iter().map(|e| e.payload.clone().unwrap()).collect();
        let expected: Vec<_> = (0..10).map(|i| i.to_string().into_bytes()).collect();
        assert_eq!(payloads, expected);
        assert_eq!(out[3].headers, vec![("h".to_string(), vec![0xff])]);
        assert_eq!(log.heads("orders").iter().sum::<u64>(), 10);
        log.shutdown();
    }

    #[test]
    fn a_unit_subscription_reads_and_waits_for_its_partition_only() {
        use crate::source::Partitions;
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(&dir.path().join("log.redb"), 3).unwrap();
        let keys = ["a", "b", "c", "d", "e", "f", "g", "h"];
        log.append("t", keys.iter().map(|k| record(Some(k), k)).collect())
            .unwrap();
        let binding = TopicBinding {
            logical: "t".into(),
            physical: "t".into(),
        };
        let mut seen = Vec::new();
        for unit in 0..3 {
            let mut subscription = log
                .subscribe(
                    "unit",
                    std::slice::from_ref(&binding),
                    Partitions::Only(unit),
                    &Offsets::default(),
                )
                .unwrap();
            let mut out = Vec::new();
            subscription
                .poll_batch(100, Duration::ZERO, &mut out)
                .unwrap();
            assert!(out.iter().all(|e| e.partition == unit), "{out:?}");
            assert!(subscription.at_head(), "unit {unit} read its partition");
            seen.extend(out.into_iter().map(|e| e.key.unwrap()));
        }
        seen.sort();
        let all: Vec<Vec<u8>> = keys.iter().map(|k| k.as_bytes().to_vec()).collect();
        assert_eq!(seen, all, "the units together read every event once");
        log.shutdown();
    }

    #[test]
    fn reads_resume_from_positions_and_respect_max() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(&dir.path().join("log.redb"), 2).unwrap();
        log.append("t", (0..20).map(|i| record(None, &i.to_string())).collect())
            .unwrap();
        let mut positions = Offsets::default();
        positions.set("t", 0, 8);
        positions.set("t", 1, 10);
        let mut out = Vec::new();
        read_all(&log, "t", &positions, 5, &mut out);
        assert_eq!(out.len(), 2, "partition 0 has 10 events, 8 already read");
        assert!(out.iter().all(|e| e.partition == 0 && e.offset >= 8));
        log.shutdown();
    }

    #[test]
    fn tombstones_and_empty_payloads_stay_distinct() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(&dir.path().join("log.redb"), 1).unwrap();
        log.append(
            "t",
            vec![
                NewRecord {
                    key: Some(vec![0xfe, 0x00]),
                    payload: None,
                    headers: vec![],
                },
                NewRecord {
                    key: None,
                    payload: Some(vec![]),
                    headers: vec![],
                },
            ],
        )
        .unwrap();
        let mut out = Vec::new();
        read_all(&log, "t", &Offsets::default(), 10, &mut out);
        assert_eq!(out[0].payload, None);
        assert_eq!(out[0].key, Some(vec![0xfe, 0x00]));
        assert_eq!(out[1].payload, Some(vec![]));
        log.shutdown();
    }

    #[test]
    fn a_new_log_appears_whole_and_an_empty_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.redb");
        EmbeddedLog::open(&path, 1).unwrap().shutdown();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|f| f.unwrap().file_name())
            .collect();
        assert_eq!(names, ["log.redb"], "no temp file left behind");

        // redb would start an empty file over as a new log, losing every
        // event silently.
        std::fs::File::create(&path).unwrap();
        let err = EmbeddedLog::open(&path, 1).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("the file is empty (0 bytes)"), "{err}");
    }

    #[test]
    fn positions_past_the_end_of_a_partition_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(&dir.path().join("log.redb"), 2).unwrap();
        log.append("t", vec![record(None, "{}")]).unwrap();
        let binding = TopicBinding {
            logical: "logical".into(),
            physical: "t".into(),
        };
        let mut at_head = Offsets::default();
        at_head.set("logical", 0, 1);
        assert!(
            log.subscribe(
                "p",
                std::slice::from_ref(&binding),
                crate::source::Partitions::All,
                &at_head
            )
            .is_ok()
        );
        let mut ahead = Offsets::default();
        ahead.set("logical", 1, 5);
        let err = log
            .subscribe("p", &[binding], crate::source::Partitions::All, &ahead)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("holds 0 events in t/1, but projection \"p\" has applied up to offset 5"),
            "{err}"
        );
        log.shutdown();
    }

    #[test]
    fn appends_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.redb");
        {
            let log = EmbeddedLog::open(&path, 4).unwrap();
            log.append("t", vec![record(Some("k"), "1")]).unwrap();
            log.shutdown();
        }
        let log = EmbeddedLog::open(&path, 4).unwrap();
        assert_eq!(log.topics().unwrap(), vec![("t".to_string(), 4)]);
        assert_eq!(log.heads("t").iter().sum::<u64>(), 1);
        log.shutdown();
    }

    #[test]
    fn invalid_topic_names_are_rejected_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(&dir.path().join("log.redb"), 1).unwrap();
        for bad in ["", "a/b", "..", "with space", &"x".repeat(250)] {
            let err = log.append(bad, vec![record(None, "{}")]).unwrap_err();
            assert!(matches!(err, LogError::InvalidTopic(_)), "{bad:?}: {err}");
        }
        assert!(log.topics().unwrap().is_empty());
        assert!(matches!(
            log.create_topic("t", 0),
            Err(LogError::InvalidPartitions(0, _))
        ));
        log.create_topic("t", 2).unwrap();
        assert!(matches!(
            log.create_topic("t", 3),
            Err(LogError::PartitionMismatch { existing: 2, .. })
        ));
        log.shutdown();
    }

    #[test]
    fn a_corrupt_record_fails_the_poll_without_handing_out_anything() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(&dir.path().join("log.redb"), 1).unwrap();
        log.append("t", (0..5).map(|i| record(None, &i.to_string())).collect())
            .unwrap();
        let txn = log
            .shared
            .with_db(|db| db.begin_write().map_err(storage))
            .unwrap();
        txn.open_table(RECORDS)
            .unwrap()
            .insert(("t", 0, 3), &b"\xc1 not msgpack"[..])
            .unwrap();
        txn.commit().unwrap();

        let binding = TopicBinding {
            logical: "t".into(),
            physical: "t".into(),
        };
        let mut subscription = log
            .subscribe(
                "test",
                &[binding],
                crate::source::Partitions::All,
                &Offsets::default(),
            )
            .unwrap();
        for _ in 0..2 {
            let mut out = Vec::new();
            let err = subscription
                .poll_batch(10, Duration::ZERO, &mut out)
                .unwrap_err();
            assert!(err.to_string().contains("t/0@3"), "{err}");
            assert!(
                out.is_empty(),
                "events before the bad record are not returned"
            );
        }
        log.shutdown();
    }

    #[test]
    fn concurrent_appends_all_land_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = EmbeddedLog::open(&dir.path().join("log.redb"), 3).unwrap();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..25 {
                        log.append("t", vec![record(Some(&format!("{t}-{i}")), "{}")])
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut out = Vec::new();
        read_all(&log, "t", &Offsets::default(), 1000, &mut out);
        assert_eq!(out.len(), 200);
        log.shutdown();
    }
}
