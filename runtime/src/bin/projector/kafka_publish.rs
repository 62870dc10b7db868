//! `projector publish --kafka BOOTSTRAP`: the same JSON-lines input as the
//! HTTP publish, produced straight to a Kafka topic.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use projector::api::ingest::{self, AppendParams};
use rdkafka::ClientConfig;
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};

/// Offsets each partition was given: (first, last, count).
type Delivered = BTreeMap<i32, (i64, i64, u64)>;

#[derive(Default)]
struct Deliveries {
    delivered: Mutex<Delivered>,
    failed: Mutex<Vec<String>>,
}

impl rdkafka::ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(message) => {
                let mut delivered = self.delivered.lock().unwrap_or_else(|e| e.into_inner());
                let entry = delivered.entry(message.partition()).or_insert((
                    message.offset(),
                    message.offset(),
                    0,
                ));
                entry.0 = entry.0.min(message.offset());
                entry.1 = entry.1.max(message.offset());
                entry.2 += 1;
            }
            Err((error, _)) => self
                .failed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(error.to_string()),
        }
    }
}

/// Produces every event of `bytes` (NDJSON) to `topic`; returns the offsets
/// per partition once all are acknowledged.
pub fn publish(
    bootstrap: &str,
    topic: &str,
    bytes: &[u8],
    params: &AppendParams,
) -> Result<Delivered> {
    let records = ingest::parse(bytes, None, params).map_err(|e| anyhow::anyhow!(e.message))?;
    if records.is_empty() {
        bail!("no events to publish: the input has no JSON lines");
    }
    let producer: ThreadedProducer<Deliveries> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .create_with_context(Deliveries::default())
        .context("creating the Kafka producer")?;
    for record in &records {
        let mut message: BaseRecord<'_, [u8], [u8], ()> = BaseRecord::to(topic);
        if let Some(key) = &record.key {
            message = message.key(key.as_slice());
        }
        if let Some(payload) = &record.payload {
            message = message.payload(payload.as_slice());
        }
        loop {
            match producer.send(message) {
                Ok(()) => break,
                Err((_, returned)) => {
                    message = returned;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
    producer
        .flush(Duration::from_secs(60))
        .with_context(|| format!("Kafka at {bootstrap} did not acknowledge every event"))?;
    let context = producer.context();
    let failed = context.failed.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(first) = failed.first() {
        bail!(
            "{} of {} events were not delivered: {first}",
            failed.len(),
            records.len()
        );
    }
    Ok(context
        .delivered
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone())
}
