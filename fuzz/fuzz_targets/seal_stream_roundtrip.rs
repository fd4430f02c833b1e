//! Sealing through `Sealer` with writes split at input-chosen points, then opening both
//! ways. Property: the result never depends on how writes were split.
#![no_main]
use std::io::{Read, Write};

use libfuzzer_sys::fuzz_target;
mod common;

fuzz_target!(|data: &[u8]| {
    let [chunk_seed, split_seed, plaintext @ ..] = data else { return };
    let chunk = 16 + u32::from(*chunk_seed % 64);
    let key = common::PATIENT_KEY.record_key(medvault::RecordId::from_bytes([1; 16]));
    let mut sealer = medvault::Sealer::with_chunk_size(Vec::new(), &key, chunk).unwrap();
    let mut rest = plaintext;
    let mut step = usize::from(*split_seed).max(1);
    while !rest.is_empty() {
        let n = step.min(rest.len());
        sealer.write_all(&rest[..n]).unwrap();
        rest = &rest[n..];
        step = (step * 7 + 3) % 97 + 1;
    }
    let sealed = sealer.finish().unwrap();
    assert_eq!(medvault::open(&key, &sealed).unwrap(), plaintext);
    let mut opened = Vec::new();
    medvault::Opener::new(&sealed[..], &key).unwrap().read_to_end(&mut opened).unwrap();
    assert_eq!(opened, plaintext);
});
