//! Segments. The input gets a valid checksum appended so the fuzzer reaches the table
//! parser; the raw input is parsed too. Property: whatever parses round-trips, and
//! every label of a parsed segment is found by lookup.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

fuzz_target!(|data: &[u8]| {
    let _ = medvault::Segment::from_bytes(data);
    let mut framed = data.to_vec();
    framed.extend_from_slice(&Sha256::digest(data));
    if let Ok(segment) = medvault::Segment::from_bytes(&framed) {
        assert_eq!(segment.to_bytes(), framed);
        for label in segment.table().labels() {
            assert!(segment.get(label).is_some());
        }
        let _ = medvault::Segment::merge(&[&segment, &segment]);
    }
});
