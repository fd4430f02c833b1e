//! Parsing; property: whatever parses serializes back to the same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = medvault::Manifest::from_bytes(data) {
        assert_eq!(parsed.to_bytes(), data, "not canonical");
    }
});
