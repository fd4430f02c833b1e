//! Search responses, parsed and opened by the requester that asked. Property: an opened
//! response never yields plaintext that was not sealed under the fixture's keys.
#![no_main]
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use medvault::{Combine, Manifest, PatientId, PreparedQuery, Requester};
mod common;

static ASKED: LazyLock<(Requester, PreparedQuery)> = LazyLock::new(|| {
    let patient = PatientId::new(common::PATIENT).unwrap();
    let mut requester = Requester::new();
    requester
        .trust_provider(
            medvault::ProviderId::new(common::PROVIDER).unwrap(),
            common::PROVIDER_KEYS.public().verifying,
        )
        .unwrap();
    requester.add_patient_key(patient.clone(), common::PATIENT_KEY.clone());
    let manifest = Manifest::from_bytes(common::MANIFEST).unwrap();
    let query = requester.query(&patient, &["diabetes"], Combine::Or, &manifest).unwrap();
    (requester, query)
});

fuzz_target!(|data: &[u8]| {
    let Ok(response) = medvault::SearchResponse::from_bytes(data) else { return };
    assert_eq!(response.to_bytes(), data, "not canonical");
    let (requester, query) = &*ASKED;
    if let Ok(results) = requester.open(query, &response) {
        for provider in &results.providers {
            for record in &provider.records {
                assert!(common::PLAINTEXTS.contains(&&record.plaintext[..]), "unsealed plaintext");
            }
        }
    }
});
