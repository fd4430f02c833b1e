//! Streaming opening with reads of a size taken from the first input byte. Property:
//! only the fixture opens, and no byte of an unauthenticated chunk is ever returned.
#![no_main]
use std::io::Read;

use libfuzzer_sys::fuzz_target;
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&size, sealed)) = data.split_first() else { return };
    let mut buf = vec![0u8; usize::from(size).max(1)];
    let Ok(mut opener) = medvault::Opener::new(sealed, &*common::PATIENT_KEY) else { return };
    let mut out = Vec::new();
    loop {
        match opener.read(&mut buf) {
            Ok(0) => {
                assert_eq!(sealed, common::SEALED_RECORD, "a modified record opened");
                assert_eq!(out, common::PLAINTEXTS[0]);
                return;
            }
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    // What came out before the failure is a prefix of the real plaintext.
    assert!(common::PLAINTEXTS[0].starts_with(&out), "unauthenticated plaintext escaped");
});
