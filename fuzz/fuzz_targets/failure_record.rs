//! A failure record (an event the error policy skipped, dead-lettered or
//! parked, or an operator skipped) as a projection's state file stores it
//! (MessagePack, named fields). The file may be damaged, so decoding must
//! fail cleanly, never panic, and what decodes must survive the writer's
//! round trip unchanged.

#![no_main]

use libfuzzer_sys::fuzz_target;
use projector_formats::failure::FailedEvent;

fuzz_target!(|data: &[u8]| {
    let record = match FailedEvent::decode(data) {
        Ok(record) => record,
        Err(reason) => {
            assert!(
                reason.starts_with("undecodable failed-event record: "),
                "{reason}"
            );
            return;
        }
    };
    // Whatever decodes re-encodes, decodes back the same, and encodes to
    // the same bytes again (the writer's encoding is canonical; the input
    // may use other valid encodings of the same values).
    let encoded = record.encode();
    let again = FailedEvent::decode(&encoded).expect("an encoded record decodes");
    assert_eq!(again, record);
    assert_eq!(again.encode(), encoded);
    // The event a retry runs again is the record's.
    let event = record.event();
    assert_eq!(
        (event.source.as_str(), event.partition, event.offset),
        (record.source.as_str(), record.partition, record.offset)
    );
    assert_eq!(event.headers.len(), record.headers.len());
});
