//! A declared length never makes the library allocate more than the input justifies:
//! short inputs claiming gigabytes are errors, not allocations. Measured with a counting
//! global allocator (one test in this binary: the counter is global).

use std::io::Read;

use medvault::{
    IndexBatch, Manifest, MasterKey, PatientId, ProviderId, Query, RecordId, SearchResponse,
};

mod common;

#[global_allocator]
static ALLOCATOR: common::counting_alloc::Counting = common::counting_alloc::Counting;

const LIMIT: usize = 64 * 1024;

/// Returns true if the parser refused the input.
type Refuses = fn(&[u8]) -> bool;

#[test]
fn huge_declared_lengths_are_refused_without_allocating_them() {
    let mut cases: Vec<(&str, Vec<u8>, Refuses)> = Vec::new();

    // A sealed record whose header declares 16 MiB chunks, followed by 20 bytes.
    let patient = MasterKey::from_bytes([1; 32]).patient_key(
        &ProviderId::new("lab").unwrap(),
        &PatientId::new("p").unwrap(),
        0,
    );
    let record = patient.record_key(RecordId::from_bytes([2; 16]));
    let sealed = medvault::seal_with_chunk_size(&record, &[0u8; 100], 16 * 1024 * 1024).unwrap();
    let header_len = medvault::RecordHeader::parse(&sealed).unwrap().1;
    let short_record = sealed[..header_len + 20].to_vec();
    cases.push(("sealed record (one-shot)", short_record.clone(), |b| {
        let key = MasterKey::from_bytes([1; 32]).patient_key(
            &ProviderId::new("lab").unwrap(),
            &PatientId::new("p").unwrap(),
            0,
        );
        medvault::open(&key, b).is_err()
    }));
    cases.push(("sealed record (stream)", short_record, |b| {
        let key = MasterKey::from_bytes([1; 32]).patient_key(
            &ProviderId::new("lab").unwrap(),
            &PatientId::new("p").unwrap(),
            0,
        );
        let mut out = Vec::new();
        medvault::Opener::new(b, &key)
            .and_then(|mut o| o.read_to_end(&mut out).map_err(Into::into))
            .is_err()
    }));

    // An index batch claiming 4 billion entries.
    let mut batch = b"MVIB\x01\x01\x03lab".to_vec();
    batch.extend_from_slice(&0u32.to_be_bytes());
    batch.extend_from_slice(&0u32.to_be_bytes());
    batch.extend_from_slice(&u32::MAX.to_be_bytes());
    batch.extend_from_slice(&[0; 20]);
    cases.push(("index batch", batch, |b| IndexBatch::from_bytes(b).is_err()));

    // A manifest claiming 4 billion providers, and one claiming 4 billion epochs.
    let mut manifest = b"MVMF\x01\x01".to_vec();
    manifest.extend_from_slice(&u32::MAX.to_be_bytes());
    manifest.extend_from_slice(&[0; 20]);
    cases.push(("manifest providers", manifest, |b| {
        Manifest::from_bytes(b).is_err()
    }));
    let mut manifest = b"MVMF\x01\x01".to_vec();
    manifest.extend_from_slice(&1u32.to_be_bytes());
    manifest.extend_from_slice(b"\x03lab");
    manifest.extend_from_slice(&0u64.to_be_bytes());
    manifest.extend_from_slice(&u32::MAX.to_be_bytes());
    manifest.extend_from_slice(&[0; 8]);
    cases.push(("manifest epochs", manifest, |b| {
        Manifest::from_bytes(b).is_err()
    }));

    // A search response claiming 4 billion hits, and one claiming a 2^64-byte record.
    let mut response = b"MVSR\x01\x01\x01\x03lab\x01".to_vec();
    response.extend_from_slice(&u32::MAX.to_be_bytes());
    response.extend_from_slice(&[0; 20]);
    cases.push(("response hits", response, |b| {
        SearchResponse::from_bytes(b).is_err()
    }));
    let mut response = b"MVSR\x01\x01\x01\x03lab\x01".to_vec();
    response.extend_from_slice(&0u32.to_be_bytes());
    response.extend_from_slice(&1u32.to_be_bytes());
    response.extend_from_slice(&[9; 16]);
    response.extend_from_slice(&u64::MAX.to_be_bytes());
    response.extend_from_slice(&[0; 20]);
    cases.push(("response record length", response, |b| {
        SearchResponse::from_bytes(b).is_err()
    }));

    // A query whose every count is at its maximum, with nothing behind them.
    let query = b"MVQY\x01\x01\x01\x10\xff\x03lab\xff".to_vec();
    cases.push(("query", query, |b| Query::from_bytes(b).is_err()));

    for (name, input, refuse) in cases {
        assert!(input.len() < 200, "{name}: a short input");
        let (refused, bytes) = common::counting_alloc::peak_during(|| refuse(&input));
        assert!(refused, "{name}: accepted");
        assert!(
            bytes < LIMIT,
            "{name}: allocated {bytes} bytes for a {}-byte input",
            input.len()
        );
    }
}
