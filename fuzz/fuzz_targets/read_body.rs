//! The body of `POST /v1/read` (several projections read at one set of
//! offsets): JSON decoded into the request, each read's kind checked, and
//! its `min_offsets` (a compact spec string or the JSON form). Decoding
//! must fail cleanly, with the messages the route answers 400 with.

#![no_main]

use libfuzzer_sys::fuzz_target;
use projector_formats::query::{ReadKind, ReadRequest, parse_offsets};

fuzz_target!(|data: &[u8]| {
    let request = match ReadRequest::parse(data) {
        Ok(request) => request,
        Err(err) => {
            assert!(
                err.to_string().starts_with("expected {\"reads\": ["),
                "{err}"
            );
            return;
        }
    };
    for (index, read) in request.reads.iter().enumerate() {
        let named = [&read.key, &read.prefix, &read.query]
            .iter()
            .filter(|field| field.is_some())
            .count();
        match read.kind(index) {
            Ok(kind) => {
                assert_eq!(named, 1);
                match kind {
                    ReadKind::Key(key) => {
                        assert_eq!(read.key.as_deref(), Some(key));
                        assert!(read.args.is_none());
                        assert!(read.start_after.is_none() && read.limit.is_none());
                    }
                    ReadKind::Prefix(prefix) => assert_eq!(read.prefix.as_deref(), Some(prefix)),
                    ReadKind::Query(query) => {
                        assert_eq!(read.query.as_deref(), Some(query));
                        assert!(read.start_after.is_none() && read.limit.is_none());
                    }
                }
            }
            Err(err) => {
                assert_eq!(err.index, index);
                assert!(
                    err.message.starts_with(&format!("read {index}")),
                    "{}",
                    err.message
                );
            }
        }
    }
    // `min_offsets` as the route reads it: a spec string or the JSON
    // form; what parses survives the JSON form unchanged.
    match request.min_offsets() {
        Some(Ok(offsets)) => {
            let json = serde_json::to_string(&offsets).expect("offsets serialize");
            assert_eq!(parse_offsets(&json).expect("the JSON form parses"), offsets);
        }
        Some(Err(err)) => assert!(err.to_string().contains("orders:0=12"), "{err}"),
        None => assert!(request.min_offsets.is_none()),
    }
});
