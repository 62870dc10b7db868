//! A record of the embedded log as its file stores it (`data/log.redb`,
//! table `records`): MessagePack of key, payload, timestamp and headers.
//! The bytes come from a file that may be damaged, so decoding fails
//! cleanly on anything that is not a record.

use serde::{Deserialize, Serialize};

use crate::event::{Event, NewRecord};

#[derive(Serialize, Deserialize)]
struct StoredRecord {
    #[serde(with = "serde_bytes")]
    key: Option<Vec<u8>>,
    #[serde(with = "serde_bytes")]
    payload: Option<Vec<u8>>,
    timestamp_ms: i64,
    headers: Vec<(String, serde_bytes::ByteBuf)>,
}

/// Stored bytes that are not a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt record in the embedded log at {topic}/{partition}@{offset}: {reason}")]
pub struct CorruptRecord {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    pub reason: String,
}

/// Encodes `record`, stamped with `timestamp_ms`, as the log stores it
/// (MessagePack), appending to `out`.
pub fn encode_record(
    record: &NewRecord,
    timestamp_ms: i64,
    out: &mut Vec<u8>,
) -> Result<(), rmp_serde::encode::Error> {
    rmp_serde::encode::write(
        out,
        &StoredRecord {
            key: record.key.clone(),
            payload: record.payload.clone(),
            timestamp_ms,
            headers: record
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), serde_bytes::ByteBuf::from(v.clone())))
                .collect(),
        },
    )
}

/// Decodes the stored bytes of the record at `topic`/`partition`@`offset`.
pub fn decode_record(
    topic: &str,
    partition: u32,
    offset: u64,
    bytes: &[u8],
) -> Result<Event, CorruptRecord> {
    let stored: StoredRecord = rmp_serde::from_slice(bytes).map_err(|e| CorruptRecord {
        topic: topic.to_owned(),
        partition,
        offset,
        reason: e.to_string(),
    })?;
    Ok(Event {
        source: topic.to_owned(),
        partition,
        offset,
        key: stored.key,
        payload: stored.payload,
        timestamp_ms: stored.timestamp_ms,
        headers: stored
            .headers
            .into_iter()
            .map(|(k, v)| (k, v.into_vec()))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_garbage_is_a_corrupt_record() {
        let record = NewRecord {
            key: Some(vec![0xff, 0]),
            payload: None,
            headers: vec![("h".into(), vec![1, 2])],
        };
        let mut bytes = Vec::new();
        encode_record(&record, -3, &mut bytes).unwrap();
        let event = decode_record("orders", 1, 7, &bytes).unwrap();
        assert_eq!(
            (event.key, event.payload, event.headers, event.timestamp_ms),
            (record.key, record.payload, record.headers, -3)
        );
        let err = decode_record("orders", 1, 7, &[0xc1]).unwrap_err();
        assert_eq!(
            (err.topic.as_str(), err.partition, err.offset),
            ("orders", 1, 7)
        );
        assert!(!err.reason.is_empty());
    }
}
