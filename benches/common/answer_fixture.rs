//! Searches whose answers carry many sealed records: one patient's `count` records of
//! `size` bytes under one keyword, in a cloud the caller chooses (in memory or on disk).

use medvault::{
    Cloud, Combine, MasterKey, PatientId, PreparedQuery, Provider, ProviderId, Requester,
};

// The includer declares `keys` (`common/keys.rs`) at its root.
use crate::keys;

/// The answer sizes measured: 1,000 notes of 2 KiB and 200 images of 200 KB.
pub const ANSWERS: [(usize, usize, &str); 2] =
    [(1_000, 2_048, "1000x2KiB"), (200, 200_000, "200x200KB")];

/// Fills `cloud` with the records and their batch; returns a doctor holding the
/// patient's key and the query that selects every record.
pub fn records_answer(cloud: &Cloud, count: usize, size: usize) -> (Requester, PreparedQuery) {
    let mut lab = Provider::new(
        ProviderId::new("bench-lab").unwrap(),
        MasterKey::from_bytes([5; 32]),
        keys::signing(),
    );
    keys::register(cloud, "bench-lab");
    let patient = PatientId::new("+15550100").unwrap();
    let body = vec![b'x'; size];
    let records: Vec<Vec<u8>> = (0..count)
        .map(|_| lab.add_record(&patient, &body, &["asthma"]).unwrap().bytes)
        .collect();
    cloud.ingest(lab.finish().unwrap()).unwrap();
    for record in records {
        cloud.put_record(record).unwrap();
    }
    let mut doctor = Requester::new();
    keys::trust(&mut doctor, "bench-lab");
    doctor.add_patient_key(patient.clone(), lab.patient_key(&patient));
    let query = doctor
        .query(&patient, &["asthma"], Combine::Or, &cloud.manifest())
        .unwrap();
    assert_eq!(
        cloud.search(query.query()).unwrap().providers[0]
            .records
            .len(),
        count
    );
    (doctor, query)
}
