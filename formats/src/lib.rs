//! Projector's decoders of untrusted bytes, apart from the runtime so that
//! they build in seconds: the fuzz targets (`fuzz/`) link this crate alone,
//! without wasmtime, librdkafka, tokio or redb.
//!
//! - [`record`]: records of the embedded log, as its file stores them;
//! - [`snapshot`]: snapshot files (`*.snap`), which restore takes from anyone;
//! - [`ingest`]: append bodies (one JSON event, a JSON array, NDJSON, envelopes);
//! - [`query`]: query-string parameters, offsets specs, percent-encoded keys
//!   and the body of `POST /v1/read`;
//! - [`failure`]: the failure records a projection's state file keeps;
//! - [`event`]: the types those decode into.
//!
//! The runtime re-exports each from its old place (`projector::event`,
//! `projector::snapshot`, `projector::api::ingest`, ...).

pub mod event;
pub mod failure;
pub mod ingest;
pub mod query;
pub mod record;
pub mod snapshot;
