//! Query-string parameters of the read routes (`?version=`, `?prefix=
//! &start_after=&limit=`, `?min_offsets=&wait_ms=&as_of=`), the offsets
//! specs those take, the percent-encoded key of a key lookup, and the body
//! of `POST /v1/read`: what a client puts in a request, decoded before
//! anything else looks at it.

use serde::Deserialize;

use crate::event::Offsets;

/// Query-string parameters of key lookups and custom queries.
#[derive(Debug, Deserialize, Default)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
pub struct ReadParams {
    /// `serving` (default), `building`, or a prefix of a version's hash.
    pub version: Option<String>,
    /// Answer once the projection has reached these offsets: `orders:0=12,1=3` or JSON.
    pub min_offsets: Option<String>,
    /// How long to wait for `min_offsets`, in ms (default 5000, at most 30000).
    pub wait_ms: Option<u64>,
    /// Answer as of these past offsets (same forms as `min_offsets`).
    pub as_of: Option<String>,
    /// In a group: a unit between owners is answered by a standby copy at
    /// once (the answer says `projector-stale: true`, and its offsets how
    /// current it is) rather than waiting for its new owner.
    pub allow_stale: Option<bool>,
}

/// Query-string parameters of a state scan.
#[derive(Debug, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
pub struct ScanParams {
    /// Only keys starting with this (default: every key).
    #[serde(default)]
    pub prefix: String,
    /// Start after this key (`next_start_after` of the previous page).
    pub start_after: Option<String>,
    /// Entries per page, 1 to 10000 (default 100).
    pub limit: Option<usize>,
    /// `serving` (default), `building`, or a prefix of a version's hash.
    pub version: Option<String>,
    /// Answer once the projection has reached these offsets: `orders:0=12,1=3` or JSON.
    pub min_offsets: Option<String>,
    /// How long to wait for `min_offsets`, in ms (default 5000, at most 30000).
    pub wait_ms: Option<u64>,
    /// Answer as of these past offsets (same forms as `min_offsets`).
    pub as_of: Option<String>,
    /// In a group: a unit between owners is answered by a standby copy at
    /// once (the answer says `projector-stale: true`, and its offsets how
    /// current it is) rather than waiting for its new owner.
    pub allow_stale: Option<bool>,
}

/// One read of `POST /v1/read`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReadSpec {
    pub projection: String,
    pub key: Option<String>,
    pub prefix: Option<String>,
    pub start_after: Option<String>,
    pub limit: Option<usize>,
    pub query: Option<String>,
    pub args: Option<serde_json::Value>,
}

// The body of `POST /v1/read` (no doc comment: it would become the
// schema's description in the OpenAPI document, which had none).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReadRequest {
    pub reads: Vec<ReadSpec>,
    /// `"orders:0=12"` or `{"orders": {"0": 12}}`.
    pub min_offsets: Option<serde_json::Value>,
    pub wait_ms: Option<u64>,
    /// Set by one instance of a group asking another for its part of a
    /// read: the offsets it fixed for the whole read (`{"orders":
    /// {"0": 12}}`). Not for clients.
    pub target: Option<serde_json::Value>,
}

/// A `POST /v1/read` body that is not a [`ReadRequest`].
#[derive(Debug, thiserror::Error)]
#[error(
    "expected {{\"reads\": [{{\"projection\": ..., \"key\"|\"prefix\"|\"query\": ...}}], \"min_offsets\"?: ..., \"wait_ms\"?: ...}}: {0}"
)]
pub struct ReadBodyError(#[from] serde_json::Error);

impl ReadRequest {
    /// Decodes the request body (JSON).
    pub fn parse(body: &[u8]) -> Result<Self, ReadBodyError> {
        Ok(serde_json::from_slice(body)?)
    }

    /// `target`, if given (see the field).
    pub fn target(&self) -> Option<Result<Offsets, OffsetsSyntaxError>> {
        self.target
            .as_ref()
            .map(|spec| parse_offsets(&spec.to_string()))
    }

    /// `min_offsets`, if given: a spec string, or the JSON form.
    pub fn min_offsets(&self) -> Option<Result<Offsets, OffsetsSyntaxError>> {
        self.min_offsets.as_ref().map(|spec| match spec {
            serde_json::Value::String(text) => parse_offsets(text),
            other => parse_offsets(&other.to_string()),
        })
    }
}

/// What one read asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadKind<'a> {
    Key(&'a str),
    Prefix(&'a str),
    Query(&'a str),
}

/// A read whose fields do not make one kind of read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BadRead {
    /// The read's index in `reads`.
    pub index: usize,
    pub message: String,
}

impl ReadSpec {
    /// Exactly one of `key`, `prefix` or `query`; `start_after` and `limit`
    /// only with `prefix`, `args` never with `key`. `index` names the read
    /// in the error.
    pub fn kind(&self, index: usize) -> Result<ReadKind<'_>, BadRead> {
        let bad = |message: String| BadRead { index, message };
        let kind = match (&self.key, &self.prefix, &self.query) {
            (Some(key), None, None) => ReadKind::Key(key),
            (None, Some(prefix), None) => ReadKind::Prefix(prefix),
            (None, None, Some(query)) => ReadKind::Query(query),
            _ => {
                return Err(bad(format!(
                    "read {index} must name exactly one of key, prefix or query"
                )));
            }
        };
        let scan_fields = self.start_after.is_some() || self.limit.is_some();
        match kind {
            ReadKind::Prefix(_) => Ok(kind),
            _ if scan_fields => Err(bad(format!(
                "read {index}: start_after and limit belong to prefix reads"
            ))),
            ReadKind::Key(_) if self.args.is_some() => {
                Err(bad(format!("read {index}: args belong to query reads")))
            }
            _ => Ok(kind),
        }
    }
}

/// A key that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key {raw:?} has an invalid percent-escape at byte {at}: use %XX with two hex digits")]
    BadEscape { raw: String, at: usize },
    #[error("empty key: put the percent-encoded key after /state/")]
    Empty,
}

/// Decodes a percent-encoded key strictly: `%` must be followed by two hex
/// digits. Keys are bytes, so `%FF` is allowed.
pub fn decode_key(raw: &str) -> Result<Vec<u8>, KeyError> {
    let bytes = raw.as_bytes();
    let mut key = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            // Two hex digits exactly: `from_str_radix` alone takes "+0".
            let hex = bytes
                .get(i + 1..i + 3)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(byte) => key.push(byte),
                None => {
                    return Err(KeyError::BadEscape {
                        raw: raw.to_owned(),
                        at: i,
                    });
                }
            }
            i += 3;
        } else {
            key.push(bytes[i]);
            i += 1;
        }
    }
    if key.is_empty() {
        return Err(KeyError::Empty);
    }
    Ok(key)
}

/// A malformed offsets spec.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid offsets {spec:?}: {reason}; write topic:partition=next_offset pairs separated by commas (orders:0=12,orders:1=7) or JSON ({{\"orders\":{{\"0\":12}}}}), as `projector publish` prints them"
)]
pub struct OffsetsSyntaxError {
    pub spec: String,
    pub reason: String,
}

/// Parses `orders:0=12,orders:1=7` or the JSON form `{"orders":{"0":12}}`.
/// A partition named twice keeps the larger offset.
pub fn parse_offsets(spec: &str) -> Result<Offsets, OffsetsSyntaxError> {
    let spec_trimmed = spec.trim();
    let error = |reason: String| OffsetsSyntaxError {
        spec: spec.chars().take(200).collect(),
        reason,
    };
    if spec_trimmed.starts_with('{') {
        return serde_json::from_str(spec_trimmed).map_err(|e| error(e.to_string()));
    }
    let mut offsets = Offsets::default();
    for item in spec_trimmed.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(error("an empty item".to_owned()));
        }
        let (place, next) = item
            .split_once('=')
            .ok_or_else(|| error(format!("{item:?} has no '='")))?;
        let (topic, partition) = place
            .rsplit_once(':')
            .ok_or_else(|| error(format!("{place:?} has no ':partition'")))?;
        if topic.is_empty() {
            return Err(error(format!("{item:?} names no topic")));
        }
        let partition: u32 = partition
            .parse()
            .map_err(|_| error(format!("partition {partition:?} is not a number")))?;
        let next: u64 = next
            .parse()
            .map_err(|_| error(format!("offset {next:?} is not a number")))?;
        if offsets.get(topic, partition) <= next {
            offsets.set(topic, partition, next);
        }
    }
    Ok(offsets)
}

/// The compact form [`parse_offsets`] reads: `orders:0=12,orders:1=7`.
pub fn format_offsets(offsets: &Offsets) -> String {
    offsets
        .iter()
        .map(|(topic, partition, next)| format!("{topic}:{partition}={next}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_decode_strictly_and_allow_any_byte() {
        assert_eq!(decode_key("customer%2Falice").unwrap(), b"customer/alice");
        assert_eq!(decode_key("customer/alice").unwrap(), b"customer/alice");
        assert_eq!(decode_key("%ff%00").unwrap(), vec![0xff, 0x00]);
        for bad in ["a%zz", "a%4", "a%+f", "%-1"] {
            assert!(
                matches!(decode_key(bad), Err(KeyError::BadEscape { .. })),
                "{bad}"
            );
        }
        assert_eq!(decode_key(""), Err(KeyError::Empty));
    }

    #[test]
    fn read_bodies_name_one_kind_of_read() {
        let request = ReadRequest::parse(
            br#"{"reads": [{"projection": "a", "key": "k"}, {"projection": "b", "prefix": "p/", "limit": 5}, {"projection": "c", "query": "top", "args": {"n": 3}}], "wait_ms": 10}"#,
        )
        .unwrap();
        let kinds: Vec<_> = request
            .reads
            .iter()
            .enumerate()
            .map(|(i, read)| read.kind(i).unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                ReadKind::Key("k"),
                ReadKind::Prefix("p/"),
                ReadKind::Query("top")
            ]
        );
        for (read, message) in [
            (
                r#"{"projection": "a"}"#,
                "read 2 must name exactly one of key, prefix or query",
            ),
            (
                r#"{"projection": "a", "key": "k", "query": "q"}"#,
                "read 2 must name exactly one of key, prefix or query",
            ),
            (
                r#"{"projection": "a", "key": "k", "limit": 1}"#,
                "read 2: start_after and limit belong to prefix reads",
            ),
            (
                r#"{"projection": "a", "key": "k", "args": 1}"#,
                "read 2: args belong to query reads",
            ),
        ] {
            let body = format!(r#"{{"reads": [{read}]}}"#);
            let request = ReadRequest::parse(body.as_bytes()).unwrap();
            let err = request.reads[0].kind(2).unwrap_err();
            assert_eq!((err.index, err.to_string().as_str()), (2, message));
        }
        let err = ReadRequest::parse(br#"{"reads": [], "extra": 1}"#).unwrap_err();
        assert!(
            err.to_string().starts_with("expected {\"reads\": ["),
            "{err}"
        );
        assert!(err.to_string().contains("unknown field `extra`"), "{err}");
        for min_offsets in [r#""orders:0=12""#, r#"{"orders": {"0": 12}}"#] {
            let body = format!(r#"{{"reads": [], "min_offsets": {min_offsets}}}"#);
            let request = ReadRequest::parse(body.as_bytes()).unwrap();
            let offsets = request.min_offsets().unwrap().unwrap();
            assert_eq!(offsets.get("orders", 0), 12);
        }
        let request = ReadRequest::parse(br#"{"reads": [], "min_offsets": 7}"#).unwrap();
        assert!(request.min_offsets().unwrap().is_err());
    }

    #[test]
    fn offsets_parse_in_both_forms_and_print_compactly() {
        let compact = parse_offsets("orders:0=12, orders:1=7,pay.ments-x:3=0").unwrap();
        assert_eq!(compact.get("orders", 0), 12);
        assert_eq!(compact.get("orders", 1), 7);
        assert_eq!(compact.get("pay.ments-x", 3), 0);
        assert_eq!(
            format_offsets(&compact),
            "orders:0=12,orders:1=7,pay.ments-x:3=0"
        );
        let json = parse_offsets(r#"{"orders":{"0":12,"1":7},"pay.ments-x":{"3":0}}"#).unwrap();
        assert_eq!(json, compact);
        assert_eq!(parse_offsets(&format_offsets(&compact)).unwrap(), compact);
        for bad in [
            "",
            "orders",
            "orders=1",
            "orders:x=1",
            ":0=1",
            "orders:0=-1",
            "a:0=1,",
        ] {
            let err = parse_offsets(bad).unwrap_err();
            assert!(err.to_string().contains("orders:0=12"), "{err}");
        }
    }
}
