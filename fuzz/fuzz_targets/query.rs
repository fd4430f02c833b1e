//! Queries, parsed and then answered by a small cloud: hostile tokens must not panic or
//! make the cloud work beyond the epochs that exist.
#![no_main]
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use medvault::{Cloud, MasterKey, PatientId, Provider, ProviderId};
mod common;

static CLOUD: LazyLock<Cloud> = LazyLock::new(|| {
    let cloud = Cloud::new();
    let id = ProviderId::new(common::PROVIDER).unwrap();
    cloud.register_provider(id.clone(), common::PROVIDER_KEYS.public()).unwrap();
    let mut lab = Provider::new(id, MasterKey::from_bytes(common::MASTER), common::PROVIDER_KEYS.signing.clone());
    let patient = PatientId::new(common::PATIENT).unwrap();
    for i in 0..5u8 {
        let rec = lab.add_record(&patient, &[i], &["diabetes", "insulin"]).unwrap();
        cloud.ingest(lab.finish().unwrap()).unwrap();
        cloud.put_record(rec.bytes).unwrap();
    }
    cloud
});

fuzz_target!(|data: &[u8]| {
    if let Ok(query) = medvault::Query::from_bytes(data) {
        assert_eq!(query.to_bytes(), data, "not canonical");
        let _ = CLOUD.search(&query);
    }
});
