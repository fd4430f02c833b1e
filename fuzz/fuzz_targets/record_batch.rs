//! A record batch (`MVRB`, the body of `POST /v1/records/batch`) from hostile bytes.
//! Property: never a panic; whatever parses is its records and nothing else (written
//! again, it is the same bytes).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(records) = medvault::parse_record_batch(data) {
        assert_eq!(
            medvault::record_batch_bytes(&records).unwrap(),
            data,
            "a batch is its records and nothing else"
        );
    }
});
