//! Unit tests of `cloud`: attacks that need the crate's internals to mount.

use super::*;
use crate::crypto::ggm;
use crate::index::log::CHAIN_START;
use crate::index::{EpochKey, Op, Table};
use crate::keys::test_keys::{provider_a, provider_b};
use crate::keys::{MasterKey, PatientId};
use crate::{Combine, Provider, Requester};

/// The attack of issue 27 on merges: another provider holding a grant at the lab
/// computes the lab's labels and uploads, in its own signed batch, the next block of
/// the lab's allergy list (a delete of the patient's allergy record) and the first
/// label of the lab's next epoch (to block the lab's upload). Neither works, before or
/// after a merge: entries are only read for the provider whose batches put them there.
#[test]
fn another_provider_can_neither_extend_nor_block_a_providers_lists() {
    let cloud = Cloud::new();
    let (lab_id, clinic_id) = (
        ProviderId::new("lab").unwrap(),
        ProviderId::new("clinic").unwrap(),
    );
    cloud
        .register_provider(lab_id.clone(), provider_a().public())
        .unwrap();
    cloud
        .register_provider(clinic_id.clone(), provider_b().public())
        .unwrap();
    let mut lab = Provider::new(
        lab_id.clone(),
        MasterKey::from_bytes([1; 32]),
        provider_a().signing.clone(),
    );
    let alice = PatientId::new("alice").unwrap();
    let allergy = lab
        .add_record(&alice, b"ALLERGY: penicillin", &["allergy"])
        .unwrap();
    cloud.ingest(lab.finish().unwrap()).unwrap();
    cloud.put_record(allergy.bytes.clone()).unwrap();

    // The clinic's grant: Alice's patient key at the lab.
    let granted = lab.patient_key(&alice);
    let root = granted.search_key().keyword_root("allergy");
    let (epoch0, epoch1) = (
        EpochKey::new(&ggm::leaf(&root, 0)),
        EpochKey::new(&ggm::leaf(&root, 1)),
    );
    let planted = Table::from_unsorted(vec![
        (
            epoch0.label(1),
            epoch0.seal_block(1, &[(allergy.id, Op::Delete)]),
        ),
        (
            epoch1.label(0),
            epoch1.seal_block(0, &[(RecordId::from_bytes([0xfa; 16]), Op::Add)]),
        ),
    ])
    .unwrap();
    let clinic_batch = IndexBatch::signed_for_test(
        clinic_id.clone(),
        0,
        0,
        planted,
        &CHAIN_START,
        &provider_b().signing,
    );
    // Its own signed batch: accepted, under its own name.
    cloud.ingest(clinic_batch).unwrap();

    // The lab's next epoch carries the label the clinic uploaded first: not blocked.
    let latex = lab
        .add_record(&alice, b"ALLERGY: latex", &["allergy"])
        .unwrap();
    cloud.ingest(lab.finish().unwrap()).unwrap();
    cloud.put_record(latex.bytes.clone()).unwrap();

    let mut doctor = Requester::new();
    doctor
        .trust_provider(lab_id.clone(), provider_a().public().verifying)
        .unwrap();
    doctor.add_patient_key(alice.clone(), granted);
    for merged in [false, true] {
        if merged {
            cloud.merge().unwrap();
            // One segment per provider.
            assert_eq!(cloud.manifest().segments.len(), 2);
        }
        let q = doctor
            .query(&alice, &["allergy"], Combine::Or, &cloud.manifest())
            .unwrap();
        let answer = cloud.search(q.query()).unwrap();
        let opened = doctor.open(&q, &answer).unwrap();
        let hits = &opened.providers[0].postings[0];
        assert_eq!(hits.len(), 2, "merged: {merged}: {hits:?}");
        assert!(hits.iter().all(|h| h.op == Op::Add));
        let found: Vec<RecordId> = opened.providers[0].records.iter().map(|r| r.id).collect();
        assert_eq!(found.len(), 2);
        assert!(found.contains(&allergy.id) && found.contains(&latex.id));
    }
}
