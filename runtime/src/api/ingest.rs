//! Turning an append request body into records (the decoder lives in
//! `projector-formats`, where the fuzz targets drive it).

pub use projector_formats::ingest::{AppendParams, BodyFormat, IngestError, parse};
