//! The ASCII armor of requests and grants, on arbitrary text. Property: armor adds no
//! way around the signatures — what opens is the fixture.
#![no_main]
use libfuzzer_sys::fuzz_target;
mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(request) = medvault::AccessRequest::from_armor(text) {
        assert_eq!(request.to_bytes(), common::REQUEST, "a modified request verified");
    }
    if let Ok(grant) = medvault::Grant::from_armor(text)
        && grant.open(&common::PROVIDER_KEYS.public().verifying, &common::DOCTOR, common::NOW).is_ok()
    {
        assert_eq!(grant.to_bytes(), common::GRANT, "a modified grant opened");
    }
});
