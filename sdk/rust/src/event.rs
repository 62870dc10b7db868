use core::any::type_name;

use serde::de::DeserializeOwned;

use crate::Error;

/// One record of a stream, the same for every source (embedded log or Kafka).
///
/// Fields: `source` (topic), `partition`, `offset`, `key`, `payload` (`None`
/// is a tombstone, a Kafka null value), `timestamp_ms` and `headers`. Order is
/// guaranteed within a partition only.
pub use crate::__bindings::projector::projection::types::Event;

impl Event {
    /// The payload parsed as JSON into `T`.
    ///
    /// Fails, naming the event and `T`, when the event is a tombstone or the
    /// payload is not valid JSON for `T`.
    pub fn payload_json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let payload = self.payload.as_deref().ok_or_else(|| {
            Error::new(format!(
                "event {} has no payload (tombstone), expected JSON for {}",
                self.position(),
                type_name::<T>()
            ))
        })?;
        serde_json::from_slice(payload).map_err(|error| {
            Error::new(format!(
                "event {} payload is not valid JSON for {}: {error}",
                self.position(),
                type_name::<T>()
            ))
        })
    }

    /// The key as UTF-8 text; `None` when the event has no key or the key is
    /// not valid UTF-8 (the raw bytes are in `key`).
    pub fn key_str(&self) -> Option<&str> {
        self.key
            .as_deref()
            .and_then(|key| core::str::from_utf8(key).ok())
    }

    /// The value of the first header called `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(header, _)| header == name)
            .map(|(_, value)| value.as_slice())
    }

    /// `source/partition@offset`, to name the event in messages.
    pub fn position(&self) -> String {
        format!("{}/{}@{}", self.source, self.partition, self.offset)
    }
}
