//! One-shot opening of a sealed record. Property: only the fixture's exact bytes open.
#![no_main]
use libfuzzer_sys::fuzz_target;
mod common;

fuzz_target!(|data: &[u8]| {
    let _ = medvault::RecordHeader::parse(data);
    if let Ok(plaintext) = medvault::open(&*common::PATIENT_KEY, data) {
        assert_eq!(data, common::SEALED_RECORD, "a modified record opened");
        assert_eq!(plaintext, common::PLAINTEXTS[0]);
    }
});
