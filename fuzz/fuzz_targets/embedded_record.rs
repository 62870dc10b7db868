//! A stored record of the embedded log (`data/log.redb`, table `records`):
//! the bytes come from a file that may be damaged, so decoding must fail
//! cleanly, never panic, and what decodes must survive the writer's round
//! trip unchanged.

#![no_main]

use libfuzzer_sys::fuzz_target;
use projector_formats::event::NewRecord;
use projector_formats::record::{CorruptRecord, decode_record, encode_record};

fuzz_target!(|data: &[u8]| {
    let event = match decode_record("orders", 2, 41, data) {
        Ok(event) => event,
        Err(CorruptRecord {
            topic,
            partition,
            offset,
            reason,
        }) => {
            assert_eq!((topic.as_str(), partition, offset), ("orders", 2, 41));
            assert!(!reason.is_empty());
            return;
        }
    };
    assert_eq!(
        (event.source.as_str(), event.partition, event.offset),
        ("orders", 2, 41)
    );

    // Whatever decodes re-encodes, and decodes back to the same event.
    let record = NewRecord {
        key: event.key.clone(),
        payload: event.payload.clone(),
        headers: event.headers.clone(),
    };
    let mut encoded = Vec::new();
    encode_record(&record, event.timestamp_ms, &mut encoded).expect("a decoded record encodes");
    let again = decode_record("orders", 2, 41, &encoded).expect("an encoded record decodes");
    assert_eq!(again, event);

    // The writer's encoding is canonical: encoding it again gives the same
    // bytes. (The input itself may use other valid MessagePack encodings of
    // the same values, so it need not equal `encoded`.)
    let mut twice = Vec::new();
    encode_record(&record, again.timestamp_ms, &mut twice).expect("encodes");
    assert_eq!(twice, encoded);
});
