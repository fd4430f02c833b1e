//! Unit tests of `cloud`: attacks that need the crate's internals to mount.

use super::*;
use crate::crypto::ggm;
use crate::index::log::CHAIN_START;
use crate::index::{EpochKey, Op, Table};
use crate::keys::test_keys::{provider_a, provider_b};
use crate::keys::{MasterKey, PatientId};
use crate::{Combine, Provider, Requester};

/// A cloud where a lab (keys `provider_a`) and a clinic (`provider_b`) are registered,
/// and the two providers.
fn lab_and_clinic() -> (Cloud, Provider, Provider) {
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
    let lab = Provider::new(
        lab_id,
        MasterKey::from_bytes([1; 32]),
        provider_a().signing.clone(),
    );
    let clinic = Provider::new(
        clinic_id,
        MasterKey::from_bytes([2; 32]),
        provider_b().signing.clone(),
    );
    (cloud, lab, clinic)
}

/// The attack of issue 27 on merges: another provider holding a grant at the lab
/// computes the lab's labels and uploads, in its own signed batch, the next block of
/// the lab's allergy list (a delete of the patient's allergy record) and the first
/// label of the lab's next epoch (to block the lab's upload). Neither works, before or
/// after a merge: entries are only read for the provider whose batches put them there.
#[test]
fn another_provider_can_neither_extend_nor_block_a_providers_lists() {
    let (cloud, mut lab, clinic) = lab_and_clinic();
    let (lab_id, clinic_id) = (lab.id().clone(), clinic.id().clone());
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

/// `put_records` takes one provider's committed records whole or not at all: one that
/// no signed batch committed (or committed with other bytes), another provider's, an
/// oversized one, garbage, or too many refuse the batch and store nothing; the
/// records of a refused batch can be uploaded afterwards.
#[test]
fn a_record_batch_is_checked_whole_before_anything_is_stored() {
    let (cloud, mut lab, mut clinic) = lab_and_clinic();
    let alice = PatientId::new("alice").unwrap();
    let notes: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            lab.add_record(&alice, format!("note {i}").as_bytes(), &["x"])
                .unwrap()
                .bytes
        })
        .collect();
    let large = lab
        .add_record(&alice, &vec![7u8; MAX_BATCHED_RECORD], &["scan"])
        .unwrap()
        .bytes;
    let theirs = clinic
        .add_record(&alice, b"walk-in", &["visit"])
        .unwrap()
        .bytes;
    cloud.ingest(lab.finish().unwrap()).unwrap();
    cloud.ingest(clinic.finish().unwrap()).unwrap();
    // Not committed by any signed batch.
    let uncommitted = lab.add_record(&alice, b"later", &["x"]).unwrap().bytes;
    let mut altered = notes[1].clone();
    let last = altered.len() - 1;
    altered[last] ^= 1;
    /// A batch, and whether its refusal is the right one.
    type Refusal = (Vec<Vec<u8>>, fn(&Error) -> bool);
    let refusals: Vec<Refusal> = vec![
        (vec![], |e| matches!(e, Error::InvalidArgument(_))),
        (vec![notes[0].clone(), uncommitted], |e| {
            matches!(e, Error::NotAuthentic { .. })
        }),
        (vec![notes[0].clone(), altered], |e| {
            matches!(e, Error::NotAuthentic { .. })
        }),
        (vec![notes[0].clone(), theirs.clone()], |e| {
            matches!(e, Error::InvalidArgument(_))
        }),
        (vec![notes[0].clone(), large.clone()], |e| {
            matches!(e, Error::InvalidArgument(_))
        }),
        (vec![notes[0].clone(), b"garbage".to_vec()], |e| {
            matches!(e, Error::Malformed { .. } | Error::Truncated { .. })
        }),
        (vec![notes[0].clone(); MAX_BATCH_RECORDS + 1], |e| {
            matches!(e, Error::InvalidArgument(_))
        }),
        (vec![notes[0].clone(), notes[0].clone()], |e| {
            matches!(e, Error::InvalidArgument(_))
        }),
    ];
    for (i, (batch, expected)) in refusals.iter().enumerate() {
        let err = cloud.put_records(batch).unwrap_err();
        assert!(expected(&err), "refusal {i}: {err:?}");
        assert!(cloud.records().is_empty(), "refusal {i} stored something");
    }
    let stored = cloud.put_records(&notes).unwrap();
    assert_eq!(stored.len(), 3);
    for ((provider, id), note) in stored.iter().zip(&notes) {
        assert_eq!(cloud.record(provider, *id).unwrap().as_ref(), Some(note));
    }
    // Large records go alone; the clinic's in its own batch.
    cloud.put_record(large).unwrap();
    cloud.put_records(&[theirs]).unwrap();
    assert_eq!(cloud.records().len(), 5);
    assert!(matches!(
        cloud.put_records(&notes[..1]),
        Err(Error::InvalidArgument(_))
    ));
}
