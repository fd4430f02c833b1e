//! Access requests. Property: requests are signed, so only the fixture parses.
#![no_main]
use libfuzzer_sys::fuzz_target;
mod common;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = medvault::AccessRequest::from_bytes(data) {
        assert_eq!(data, common::REQUEST, "a modified request verified");
        let opened = request.open(&common::PROVIDER_KEYS.decryption).unwrap();
        assert_eq!(opened.scope.patient().as_bytes(), common::PATIENT.as_bytes());
    }
});
