//! Projector: runs event-sourcing projections written as WebAssembly
//! components.
//!
//! Data flows one way: [`source`] -> [`worker`] -> [`wasm`] -> [`store`]
//! (overlay, then one redb commit with the offsets) -> [`api`] queries.

pub mod api;
pub mod cluster;
pub mod config;
pub mod event;
pub mod metrics;
mod panic_guard;
pub mod partitioner;
pub mod progress;
pub mod projection;
pub mod reads;
pub mod registry;
pub mod server;
pub mod snapshot;
pub mod source;
pub mod stall;
pub mod store;
pub mod wasm;
pub mod watcher;
pub mod worker;
