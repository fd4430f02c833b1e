//! Grants. Property: only the fixture opens (signed, sealed, addressed).
#![no_main]
use libfuzzer_sys::fuzz_target;
mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(grant) = medvault::Grant::from_bytes(data) else { return };
    let issuer = common::PROVIDER_KEYS.public().verifying;
    if grant.open(&issuer, &common::DOCTOR, common::NOW).is_ok() {
        assert_eq!(data, common::GRANT, "a modified grant opened");
    }
});
