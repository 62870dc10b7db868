//! Compiled modules are cached on disk by content hash: a second host (a
//! restart) loads the cached code instead of compiling, and a damaged cache
//! entry is recompiled rather than fatal.

use projector::wasm::{Limits, WasmHost};
use projector_test_guests::ORDER_TOTALS;
use std::path::Path;

#[test]
fn a_restart_loads_compiled_code_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");

    let first = WasmHost::new(&cache, Limits::default())
        .unwrap()
        .load(Path::new(ORDER_TOTALS))
        .unwrap();
    assert!(!first.from_cache, "an empty cache compiles");
    let entries: Vec<_> = std::fs::read_dir(&cache).unwrap().collect();
    assert_eq!(entries.len(), 1);

    let second = WasmHost::new(&cache, Limits::default())
        .unwrap()
        .load(Path::new(ORDER_TOTALS))
        .unwrap();
    assert!(second.from_cache, "a new host reuses the compiled module");
    assert_eq!(first.hash, second.hash);
    assert_eq!(second.descriptor.name, "order-totals");

    // A damaged entry is ignored and replaced.
    let entry = entries[0].as_ref().unwrap().path();
    std::fs::write(&entry, b"garbage").unwrap();
    let third = WasmHost::new(&cache, Limits::default())
        .unwrap()
        .load(Path::new(ORDER_TOTALS))
        .unwrap();
    assert!(!third.from_cache);
    let fourth = WasmHost::new(&cache, Limits::default())
        .unwrap()
        .load(Path::new(ORDER_TOTALS))
        .unwrap();
    assert!(fourth.from_cache, "the damaged entry was rewritten");
}
