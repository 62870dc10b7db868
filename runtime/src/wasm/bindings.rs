//! Host-side bindings generated from `wit/`: the only place generated code lives.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "projection",
    imports: { default: trappable },
});

pub use self::exports::projector::projection::handler::{
    Descriptor, Event, HandleError, QueryError,
};
