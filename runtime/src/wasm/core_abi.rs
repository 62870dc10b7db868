//! The byte layouts of the core-module ABI (`wit/core-abi.md`): what the
//! host writes into a core module's memory and how it reads the module's
//! answers. Pure functions over byte slices, so every layout is tested
//! without an engine; the linking and calls build on them.

use super::bindings;

/// The ABI version this host implements (`projector_abi_version()`).
pub const CORE_ABI_VERSION: i32 = 1;

/// Splits a packed `(ptr << 32) | len` result.
pub fn unpack(packed: i64) -> (u32, u32) {
    let bits = packed as u64;
    ((bits >> 32) as u32, bits as u32)
}

/// The byte range a packed result names, checked against the memory size.
pub fn checked_range(
    export: &str,
    ptr: u32,
    len: u32,
    memory_len: usize,
) -> Result<std::ops::Range<usize>, String> {
    let start = ptr as usize;
    let end = start.checked_add(len as usize);
    match end {
        Some(end) if end <= memory_len => Ok(start..end),
        _ => Err(format!(
            "`{export}` returned bytes {start}..{} outside the module's memory of {memory_len} bytes",
            start as u64 + u64::from(len)
        )),
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn put_optional(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => {
            out.push(1);
            put_bytes(out, bytes);
        }
        None => out.push(0),
    }
}

/// The *Batch* layout of `events`.
pub fn encode_batch(events: &[bindings::Event]) -> Vec<u8> {
    let size: usize = events
        .iter()
        .map(|e| {
            64 + e.source.len()
                + e.key.as_ref().map_or(0, Vec::len)
                + e.payload.as_ref().map_or(0, Vec::len)
                + e.headers
                    .iter()
                    .map(|(k, v)| 8 + k.len() + v.len())
                    .sum::<usize>()
        })
        .sum();
    let mut out = Vec::with_capacity(4 + size);
    out.extend_from_slice(&(events.len() as u32).to_le_bytes());
    for event in events {
        put_bytes(&mut out, event.source.as_bytes());
        out.extend_from_slice(&event.partition.to_le_bytes());
        out.extend_from_slice(&event.offset.to_le_bytes());
        put_optional(&mut out, event.key.as_deref());
        put_optional(&mut out, event.payload.as_deref());
        out.extend_from_slice(&event.timestamp_ms.to_le_bytes());
        out.extend_from_slice(&(event.headers.len() as u32).to_le_bytes());
        for (name, value) in &event.headers {
            put_bytes(&mut out, name.as_bytes());
            put_bytes(&mut out, value);
        }
    }
    out
}

/// The encoded entries `state_scan` returns.
pub fn encode_entries(entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let size: usize = entries.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
    let mut out = Vec::with_capacity(4 + size);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (key, value) in entries {
        put_bytes(&mut out, key);
        put_bytes(&mut out, value);
    }
    out
}

/// A `projector_handle` error: `u32 index`, then the UTF-8 message.
pub fn decode_handle_error(bytes: &[u8]) -> Result<bindings::HandleError, String> {
    let Some((index, message)) = bytes.split_first_chunk::<4>() else {
        return Err(format!(
            "`projector_handle` returned a {}-byte error; it needs at least the 4-byte event index",
            bytes.len()
        ));
    };
    Ok(bindings::HandleError {
        index: u32::from_le_bytes(*index),
        message: String::from_utf8_lossy(message).into_owned(),
    })
}

/// A *Query result*: tag byte, then the answer or the message.
pub fn decode_query_result(bytes: &[u8]) -> Result<Result<Vec<u8>, bindings::QueryError>, String> {
    let Some((tag, rest)) = bytes.split_first() else {
        return Err("`projector_query` returned no bytes; it needs at least the tag byte".into());
    };
    let text = || String::from_utf8_lossy(rest).into_owned();
    match tag {
        0 => Ok(Ok(rest.to_vec())),
        1 => Ok(Err(bindings::QueryError::UnknownQuery)),
        2 => Ok(Err(bindings::QueryError::BadArgs(text()))),
        3 => Ok(Err(bindings::QueryError::Failed(text()))),
        other => Err(format!(
            "`projector_query` returned tag {other}; the ABI knows 0 (ok), 1 (unknown query), 2 (bad args) and 3 (failed)"
        )),
    }
}

/// The descriptor JSON `projector_describe` returns.
pub fn decode_descriptor(bytes: &[u8]) -> Result<bindings::Descriptor, String> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Raw {
        name: String,
        version: String,
        sources: Vec<String>,
        state_version: u32,
        #[serde(default)]
        queries: Vec<String>,
    }
    let raw: Raw = serde_json::from_slice(bytes).map_err(|e| {
        format!(
            "`projector_describe` returned no valid descriptor JSON ({e}); expected {{\"name\", \"version\", \"sources\", \"state_version\", \"queries\"}}"
        )
    })?;
    Ok(bindings::Descriptor {
        name: raw.name,
        version: raw.version,
        sources: raw.sources,
        state_version: raw.state_version,
        queries: raw.queries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> bindings::Event {
        bindings::Event {
            source: "orders".into(),
            partition: 2,
            offset: 7,
            key: Some(b"alice".to_vec()),
            payload: None,
            timestamp_ms: -1,
            headers: vec![("h".into(), vec![1, 2])],
        }
    }

    #[test]
    fn batches_have_the_documented_layout() {
        let bytes = encode_batch(&[event()]);
        let mut expected = vec![1, 0, 0, 0];
        expected.extend_from_slice(&[6, 0, 0, 0]);
        expected.extend_from_slice(b"orders");
        expected.extend_from_slice(&[2, 0, 0, 0]);
        expected.extend_from_slice(&[7, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&[1, 5, 0, 0, 0]);
        expected.extend_from_slice(b"alice");
        expected.push(0); // tombstone
        expected.extend_from_slice(&(-1i64).to_le_bytes());
        expected.extend_from_slice(&[1, 0, 0, 0, 1, 0, 0, 0, b'h', 2, 0, 0, 0, 1, 2]);
        assert_eq!(bytes, expected);
        assert_eq!(encode_batch(&[]), [0, 0, 0, 0]);
    }

    #[test]
    fn packed_results_are_checked_against_memory() {
        let packed = ((16u64 << 32) | 4) as i64;
        assert_eq!(unpack(packed), (16, 4));
        assert_eq!(checked_range("projector_query", 16, 4, 20), Ok(16..20));
        let err = checked_range("projector_query", 16, 5, 20).unwrap_err();
        assert!(
            err.contains("16..21 outside the module's memory of 20 bytes"),
            "{err}"
        );
        assert!(checked_range("x", u32::MAX, u32::MAX, 1 << 20).is_err());
    }

    #[test]
    fn answers_decode_or_say_what_is_wrong() {
        let error = decode_handle_error(&[3, 0, 0, 0, b'n', b'o']).unwrap();
        assert_eq!((error.index, error.message.as_str()), (3, "no"));
        assert!(decode_handle_error(&[1, 2]).is_err());

        assert_eq!(
            decode_query_result(&[0, b'4', b'2']).unwrap().unwrap(),
            b"42"
        );
        assert!(matches!(
            decode_query_result(&[1]).unwrap(),
            Err(bindings::QueryError::UnknownQuery)
        ));
        assert!(matches!(
            decode_query_result(&[2, b'x']).unwrap(),
            Err(bindings::QueryError::BadArgs(m)) if m == "x"
        ));
        assert!(decode_query_result(&[9]).unwrap_err().contains("tag 9"));
        assert!(decode_query_result(&[]).is_err());

        let descriptor = decode_descriptor(
            br#"{"name":"g","version":"1","sources":["orders"],"state_version":2}"#,
        )
        .unwrap();
        assert_eq!(descriptor.state_version, 2);
        assert!(descriptor.queries.is_empty());
        assert!(
            decode_descriptor(b"{}")
                .unwrap_err()
                .contains("projector_describe")
        );

        let entries = encode_entries(&[(b"k".to_vec(), b"v".to_vec())]);
        assert_eq!(entries, [1, 0, 0, 0, 1, 0, 0, 0, b'k', 1, 0, 0, 0, b'v']);
    }
}
