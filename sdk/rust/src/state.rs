//! This projection's own key/value state, kept by the host.
//!
//! Keys are ordered bytewise. Writes become durable when the batch commits; a
//! failed batch leaves no trace. Reads see the writes of earlier events in the
//! same batch. During [`crate::Projection::query`] state is read-only.
//!
//! The `*_json` helpers store values as JSON so that state is readable over
//! HTTP whatever language wrote it; [`get`], [`put`], [`delete`] and [`scan`]
//! work on raw bytes.

use core::any::type_name;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;

/// Entries fetched per host call by [`iter`] and [`iter_json`].
const PAGE: u32 = 256;

/// The value stored under `key`, if any.
pub fn get(key: impl AsRef<[u8]>) -> Option<Vec<u8>> {
    backend::get(key.as_ref())
}

/// Store `value` under `key`.
///
/// Traps during a query, and when the key or value exceeds the host's size
/// limits.
pub fn put(key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
    backend::put(key.as_ref(), value.as_ref());
}

/// Remove `key` if present. Traps during a query.
pub fn delete(key: impl AsRef<[u8]>) {
    backend::delete(key.as_ref());
}

/// Up to `limit` entries whose key starts with `prefix`, in ascending key
/// order, strictly after `start_after` when given.
///
/// The host may return fewer than `limit` entries even when more exist: page
/// by passing the last key returned as the next `start_after` until a page
/// comes back empty, or use [`iter`].
pub fn scan(
    prefix: impl AsRef<[u8]>,
    start_after: Option<&[u8]>,
    limit: u32,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    backend::scan(prefix.as_ref(), start_after, limit)
}

/// Every entry whose key starts with `prefix`, in ascending key order,
/// fetched from the host a page at a time.
pub fn iter(prefix: impl AsRef<[u8]>) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> {
    let prefix = prefix.as_ref().to_vec();
    let mut page = Vec::new().into_iter();
    let mut last: Option<Vec<u8>> = None;
    let mut done = false;
    core::iter::from_fn(move || {
        if let Some(entry) = page.next() {
            return Some(entry);
        }
        if done {
            return None;
        }
        let entries = backend::scan(&prefix, last.as_deref(), PAGE);
        match entries.last() {
            Some((key, _)) => last = Some(key.clone()),
            None => done = true,
        }
        page = entries.into_iter();
        page.next()
    })
}

/// The JSON value stored under `key`, decoded into `T`.
///
/// `Ok(None)` when the key is absent; an error when the stored bytes are not
/// valid JSON for `T`.
pub fn get_json<T: DeserializeOwned>(key: &str) -> Result<Option<T>, Error> {
    backend::get(key.as_bytes())
        .map(|value| decode(key, &value))
        .transpose()
}

/// Store `value` as JSON under `key`.
///
/// Fails when `value` cannot be encoded as JSON (for example a map whose keys
/// are not strings). Traps as [`put`] does.
pub fn put_json<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<(), Error> {
    let value = serde_json::to_vec(value).map_err(|error| {
        Error::new(format!(
            "cannot encode {} as JSON for state key `{key}`: {error}",
            type_name::<T>()
        ))
    })?;
    backend::put(key.as_bytes(), &value);
    Ok(())
}

/// Like [`scan`], with UTF-8 keys and values decoded from JSON into `T`.
pub fn scan_json<T: DeserializeOwned>(
    prefix: &str,
    start_after: Option<&str>,
    limit: u32,
) -> Result<Vec<(String, T)>, Error> {
    backend::scan(prefix.as_bytes(), start_after.map(str::as_bytes), limit)
        .into_iter()
        .map(|(key, value)| decode_entry(key, &value))
        .collect()
}

/// Like [`iter`], with UTF-8 keys and values decoded from JSON into `T`.
pub fn iter_json<T: DeserializeOwned>(
    prefix: &str,
) -> impl Iterator<Item = Result<(String, T), Error>> {
    iter(prefix).map(|(key, value)| decode_entry(key, &value))
}

fn decode_entry<T: DeserializeOwned>(key: Vec<u8>, value: &[u8]) -> Result<(String, T), Error> {
    let key = String::from_utf8(key).map_err(|error| {
        Error::new(format!(
            "state key {:?} is not UTF-8",
            String::from_utf8_lossy(error.as_bytes())
        ))
    })?;
    let value = decode(&key, value)?;
    Ok((key, value))
}

fn decode<T: DeserializeOwned>(key: &str, value: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(value).map_err(|error| {
        Error::new(format!(
            "state key `{key}` does not hold valid JSON for {}: {error}",
            type_name::<T>()
        ))
    })
}

/// The host's state interface.
#[cfg(target_arch = "wasm32")]
mod backend {
    use crate::__bindings::projector::projection::state as host;

    pub fn get(key: &[u8]) -> Option<Vec<u8>> {
        host::get(key)
    }

    pub fn put(key: &[u8], value: &[u8]) {
        host::put(key, value);
    }

    pub fn delete(key: &[u8]) {
        host::delete(key);
    }

    pub fn scan(prefix: &[u8], start_after: Option<&[u8]>, limit: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
        host::scan(prefix, start_after, limit)
    }
}

/// Off wasm there is no host: an in-memory map per thread stands in for it so
/// that projections can be unit-tested natively (see `crate::testing`).
#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod backend {
    use std::cell::{Cell, RefCell};
    use std::collections::BTreeMap;
    use std::ops::Bound;

    thread_local! {
        pub(crate) static STATE: RefCell<BTreeMap<Vec<u8>, Vec<u8>>> =
            const { RefCell::new(BTreeMap::new()) };
        pub(crate) static READ_ONLY: Cell<bool> = const { Cell::new(false) };
    }

    pub fn get(key: &[u8]) -> Option<Vec<u8>> {
        STATE.with_borrow(|state| state.get(key).cloned())
    }

    pub fn put(key: &[u8], value: &[u8]) {
        assert_writable();
        STATE.with_borrow_mut(|state| state.insert(key.to_vec(), value.to_vec()));
    }

    pub fn delete(key: &[u8]) {
        assert_writable();
        STATE.with_borrow_mut(|state| state.remove(key));
    }

    pub fn scan(prefix: &[u8], start_after: Option<&[u8]>, limit: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
        let lower = match start_after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        STATE.with_borrow(|state| {
            state
                .range::<[u8], _>((lower, Bound::Unbounded))
                .take_while(|(key, _)| key.starts_with(prefix))
                .take(usize::try_from(limit).unwrap_or(usize::MAX))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect()
        })
    }

    // The host traps on a write during a query; so does the stand-in.
    fn assert_writable() {
        assert!(!READ_ONLY.get(), "state is read-only while a query runs");
    }
}
