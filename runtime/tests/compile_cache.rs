//! Compiled modules are cached on disk by content hash: a second host (a
//! restart) loads the cached code instead of compiling, and a damaged cache
//! entry (torn by a crash, altered) is recompiled with a warning and
//! replaced, never run.

use projector::wasm::{Limits, WasmHost};
use projector_test_guests::ORDER_TOTALS;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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

/// The cache folder's one entry.
fn only_entry(cache: &Path) -> PathBuf {
    let entries: Vec<PathBuf> = std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries.into_iter().next().unwrap()
}

/// Warnings logged on this thread while `f` runs.
fn warnings_of<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let value = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    (value, text)
}

/// Damages the one cache entry with `damage`, then checks that the next
/// host compiles the module again with a warning naming the entry, and
/// replaces the entry so that the host after it loads it again.
fn damaged_entry_is_recompiled(damage: impl FnOnce(&mut Vec<u8>), what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let load = || {
        WasmHost::new(&cache, Limits::default())
            .unwrap()
            .load(Path::new(ORDER_TOTALS))
            .unwrap()
    };
    assert!(!load().from_cache);
    let entry = only_entry(&cache);
    let mut bytes = std::fs::read(&entry).unwrap();
    damage(&mut bytes);
    std::fs::write(&entry, &bytes).unwrap();

    let (module, warnings) = warnings_of(load);
    assert!(!module.from_cache, "{what}: the damaged entry was used");
    assert_eq!(module.descriptor.name, "order-totals");
    assert!(
        warnings.contains("compiling the module again")
            && warnings.contains(&*entry.to_string_lossy()),
        "{what}: no warning naming {}: {warnings:?}",
        entry.display()
    );
    assert_ne!(
        std::fs::read(&entry).unwrap(),
        bytes,
        "{what}: not replaced"
    );
    assert_eq!(
        only_entry(&cache),
        entry,
        "{what}: a temporary file is left"
    );
    assert!(load().from_cache, "{what}: the replaced entry is not used");
}

#[test]
fn a_truncated_cache_entry_is_compiled_again_and_replaced() {
    damaged_entry_is_recompiled(|bytes| bytes.truncate(bytes.len() * 2 / 3), "truncated");
}

#[test]
fn a_bit_flipped_cache_entry_is_compiled_again_and_replaced() {
    // One bit in the middle of the entry: inside the compiled code, where
    // nothing but a checksum would notice.
    damaged_entry_is_recompiled(
        |bytes| {
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0x01;
        },
        "bit flipped",
    );
}
