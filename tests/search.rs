//! Searchable encryption end to end: the encrypted search agrees with a plaintext index,
//! is forward-private, isolates patients and providers, and shows the cloud nothing in
//! the clear.

mod common;

use common::corpus::{ABSENT, Corpus, Rng, check_query, patient_id, vocabulary};
use medvault::{
    Cloud, Combine, Error, IndexBatch, IndexOptions, Manifest, MasterKey, PatientId, Provider,
    ProviderId, ProviderState, Query, Requester, SearchResponse,
};

const PROVIDERS: &[&str] = &["st-mary-hospital", "city-lab", "corner-pharmacy"];

#[test]
fn encrypted_search_equals_a_plaintext_index_before_and_after_merging() {
    let cloud = Cloud::new();
    // 3 providers × 30 epochs × ≥ 225 pairs ≥ 20,000 record-keyword pairs, 50 patients.
    let corpus = Corpus::build(&cloud, 7, PROVIDERS, 50, 30, 225);
    assert!(corpus.pairs >= 20_000, "{} pairs", corpus.pairs);
    assert_eq!(cloud.manifest().segments.len(), 90);
    let requester = corpus.requester_with_all_keys();
    let mut keywords: Vec<&str> = vocabulary();
    keywords.extend(ABSENT);
    let mut found = [0usize; 2];
    for merged in [false, true] {
        let mut rng = Rng::new(99);
        if merged {
            cloud.merge().unwrap();
            // One segment per provider: each provider's entries merged by label.
            assert_eq!(cloud.manifest().segments.len(), PROVIDERS.len());
        }
        let (mut single, mut and, mut or) = (0, 0, 0);
        for patient in 0..corpus.patients {
            for k in &keywords {
                single += check_query(&cloud, &corpus, &requester, patient, &[k], Combine::And);
            }
            for _ in 0..6 {
                let n = 2 + rng.below(2);
                let pick: Vec<&str> = (0..n)
                    .map(|_| keywords[rng.below(keywords.len())])
                    .collect();
                and += check_query(&cloud, &corpus, &requester, patient, &pick, Combine::And);
                or += check_query(&cloud, &corpus, &requester, patient, &pick, Combine::Or);
            }
        }
        // The comparisons above are not vacuous: the searches found plenty.
        assert!(
            single > 10_000 && and > 0 && or > and,
            "{single} {and} {or}"
        );
        found[merged as usize] = single + and + or;
    }
    assert_eq!(found[0], found[1], "merging changes no answer");
}

#[test]
fn searches_over_hundreds_of_epochs_equal_a_plaintext_index() {
    // From 16 epochs on a token's leaves are split between cores, and hundreds of
    // epochs split many times over: the answers, their epoch order and the deletions
    // applied in it must not change.
    let cloud = Cloud::new();
    let corpus = Corpus::build(&cloud, 11, &PROVIDERS[..2], 6, 600, 12);
    let requester = corpus.requester_with_all_keys();
    let mut found = 0;
    for merged in [false, true] {
        if merged {
            cloud.merge().unwrap();
        }
        for patient in 0..corpus.patients {
            for k in vocabulary() {
                found += check_query(&cloud, &corpus, &requester, patient, &[k], Combine::And);
            }
        }
    }
    assert!(found > 1_000, "{found} hits: the comparison is not vacuous");
}

#[test]
fn keywords_are_normalized_on_both_sides() {
    let cloud = Cloud::new();
    let mut lab = common::new_provider("lab", MasterKey::from_bytes([1; 32]));
    common::register(&cloud, "lab");
    let alice = PatientId::new("alice").unwrap();
    let rec = lab
        .add_record(&alice, b"note", &["  Type 2   DIABETES "])
        .unwrap();
    cloud.ingest(lab.finish().unwrap()).unwrap();
    cloud.put_record(rec.bytes).unwrap();
    let mut doctor = Requester::new();
    common::trust(&mut doctor, lab.id().as_str());
    doctor.add_patient_key(alice.clone(), lab.patient_key(&alice));
    let q = doctor
        .query(&alice, &["type 2 diabetes"], Combine::Or, &cloud.manifest())
        .unwrap();
    let results = doctor.open(&q, &cloud.search(q.query()).unwrap()).unwrap();
    assert_eq!(results.record_count(), 1);
}

/// One provider, one patient, records with "diabetes" in epochs [0, 5) and [5, 8).
fn forward_privacy_setup() -> (Cloud, Provider, PatientId, Vec<medvault::RecordId>) {
    let cloud = Cloud::new();
    let mut lab = common::new_provider("lab", MasterKey::from_bytes([4; 32]));
    common::register(&cloud, "lab");
    let alice = PatientId::new("alice").unwrap();
    let mut ids = Vec::new();
    for epoch in 0..5 {
        let rec = lab
            .add_record(&alice, format!("early {epoch}").as_bytes(), &["diabetes"])
            .unwrap();
        ids.push(rec.id);
        cloud.ingest(lab.finish().unwrap()).unwrap();
        cloud.put_record(rec.bytes).unwrap();
    }
    (cloud, lab, alice, ids)
}

#[test]
fn tokens_do_not_find_entries_uploaded_after_them() {
    let (cloud, mut lab, alice, early) = forward_privacy_setup();
    let mut doctor = Requester::new();
    common::trust(&mut doctor, lab.id().as_str());
    doctor.add_patient_key(alice.clone(), lab.patient_key(&alice));
    let old = doctor
        .query(&alice, &["diabetes"], Combine::Or, &cloud.manifest())
        .unwrap();
    // No node of the token reaches epoch 5 or later.
    let bytes = old.query().to_bytes();
    assert_eq!(Query::from_bytes(&bytes).unwrap(), *old.query());
    for epoch in 5..8 {
        let rec = lab
            .add_record(&alice, format!("late {epoch}").as_bytes(), &["diabetes"])
            .unwrap();
        cloud.ingest(lab.finish().unwrap()).unwrap();
        cloud.put_record(rec.bytes).unwrap();
    }
    for merged in [false, true] {
        if merged {
            cloud.merge().unwrap();
        }
        let response = cloud.search(old.query()).unwrap();
        let results = doctor.open(&old, &response).unwrap();
        let found: Vec<_> = results.providers[0].postings[0]
            .iter()
            .map(|h| (h.epoch, h.record))
            .collect();
        assert_eq!(
            found.len(),
            5,
            "the old token finds only the 5 early records"
        );
        assert!(
            found
                .iter()
                .all(|&(epoch, id)| epoch < 5 && early.contains(&id))
        );
        assert_eq!(results.record_count(), 5);
        // A fresh token, built from the new manifest, finds all 8.
        let new = doctor
            .query(&alice, &["diabetes"], Combine::Or, &cloud.manifest())
            .unwrap();
        assert_eq!(
            doctor
                .open(&new, &cloud.search(new.query()).unwrap())
                .unwrap()
                .record_count(),
            8
        );
    }
}

#[test]
fn keys_of_one_patient_or_provider_find_nothing_of_another() {
    let cloud = Cloud::new();
    let corpus = Corpus::build(&cloud, 11, PROVIDERS, 6, 4, 120);
    let target = 2usize;
    let home = &corpus.providers[1];
    let mut doctor = Requester::new();
    for p in &corpus.providers {
        common::trust(&mut doctor, p.id().as_str());
    }
    doctor.add_patient_key(patient_id(target), home.patient_key(&patient_id(target)));
    // Wrongly filed: the key of patient 2 presented as patient 3's finds patient 2's
    // records only (the key decides, not the label).
    let mut confused = Requester::new();
    for p in &corpus.providers {
        common::trust(&mut confused, p.id().as_str());
    }
    confused.add_patient_key(patient_id(3), home.patient_key(&patient_id(target)));
    let manifest = cloud.manifest();
    for k in vocabulary() {
        let q = doctor
            .query(&patient_id(target), &[k], Combine::Or, &manifest)
            .unwrap();
        let response = cloud.search(q.query()).unwrap();
        assert_eq!(
            response.providers.len(),
            1,
            "only the provider it holds keys for"
        );
        assert_eq!(&response.providers[0].provider, home.id());
        let answer = &response.providers[0];
        let selected = answer
            .records
            .iter()
            .map(|(id, _)| id)
            .chain(&answer.missing);
        for record in selected {
            let (owner, _) = &corpus.records[&(home.id().clone(), *record)];
            assert_eq!(*owner, target, "{k}: a record of patient {owner} was found");
        }
        let results = doctor.open(&q, &response).unwrap();
        let expected = &corpus.expected(target, &[k], Combine::Or)[home.id()];
        assert_eq!(
            results.providers[0]
                .records
                .iter()
                .map(|r| r.id)
                .collect::<std::collections::BTreeSet<_>>(),
            *expected
        );
        let q = confused
            .query(&patient_id(3), &[k], Combine::Or, &manifest)
            .unwrap();
        let response = cloud.search(q.query()).unwrap();
        let answer = &response.providers[0];
        for record in answer
            .records
            .iter()
            .map(|(id, _)| id)
            .chain(&answer.missing)
        {
            assert_eq!(corpus.records[&(home.id().clone(), *record)].0, target);
        }
    }
    // No key at all for patient 4: no query can be built.
    assert!(matches!(
        doctor.query(&patient_id(4), &["diabetes"], Combine::Or, &manifest),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn the_cloud_sees_no_keyword_patient_id_or_plaintext() {
    let cloud = Cloud::new();
    let corpus = Corpus::build(&cloud, 13, PROVIDERS, 10, 6, 150);
    let requester = corpus.requester_with_all_keys();
    let mut seen: Vec<Vec<u8>> = Vec::new();
    for patient in 0..corpus.patients {
        for k in ["diabetes", "metformin", "code:loinc/4548-4"] {
            let q = requester
                .query(
                    &patient_id(patient),
                    &[k, "insulin"],
                    Combine::Or,
                    &cloud.manifest(),
                )
                .unwrap();
            seen.push(q.query().to_bytes());
            seen.push(cloud.search(q.query()).unwrap().to_bytes());
        }
    }
    cloud.merge().unwrap();
    seen.push(cloud.manifest().to_bytes());
    seen.extend(
        cloud
            .index_labels(usize::MAX)
            .unwrap()
            .iter()
            .map(|l| l.to_vec()),
    );
    for info in cloud.records() {
        seen.push(cloud.record(&info.provider, info.record).unwrap().unwrap());
    }
    let haystack: Vec<u8> = seen.concat();
    assert!(haystack.len() > 100_000);
    let contains = |needle: &[u8]| haystack.windows(needle.len()).any(|w| w == needle);
    // Needles of 5+ bytes: shorter ones occur by chance in this much random-looking data.
    for k in vocabulary().iter().filter(|k| k.len() >= 5) {
        assert!(!contains(k.as_bytes()), "keyword {k} visible to the cloud");
    }
    for u in 0..corpus.patients {
        assert!(
            !contains(patient_id(u).as_bytes()),
            "patient id visible to the cloud"
        );
        assert!(
            !contains(&patient_id(u).as_bytes()[1..]),
            "patient number visible to the cloud"
        );
    }
    for text in corpus.plaintexts.values() {
        assert!(
            !contains(&text[..24]),
            "record plaintext visible to the cloud"
        );
    }
    assert!(!contains(b"Record "));
}

#[test]
fn ingest_rejects_bad_batches_and_leaves_state_unchanged() {
    let cloud = Cloud::new();
    let mut lab = common::new_provider("lab", MasterKey::from_bytes([5; 32]));
    common::register(&cloud, "lab");
    let alice = PatientId::new("alice").unwrap();
    lab.index(&alice, medvault::RecordId::from_bytes([1; 16]), &["asthma"])
        .unwrap();
    let b0 = lab.finish().unwrap();
    lab.index(&alice, medvault::RecordId::from_bytes([2; 16]), &["asthma"])
        .unwrap();
    let b1 = lab.finish().unwrap();
    lab.index(&alice, medvault::RecordId::from_bytes([3; 16]), &["asthma"])
        .unwrap();
    let b2 = lab.finish().unwrap();

    let before = cloud.manifest();
    assert!(matches!(
        cloud.ingest(b1.clone()),
        Err(Error::EpochOutOfOrder {
            expected: 0,
            found: 1
        })
    ));
    assert_eq!(cloud.manifest(), before);
    cloud.ingest(b0.clone()).unwrap();
    let before = cloud.manifest();
    assert!(matches!(
        cloud.ingest(b0.clone()),
        Err(Error::EpochOutOfOrder {
            expected: 1,
            found: 0
        })
    ));
    assert!(matches!(
        cloud.ingest(b2.clone()),
        Err(Error::EpochOutOfOrder {
            expected: 1,
            found: 2
        })
    ));
    for garbage in [&b""[..], b"MVIB", b"hello world", &[0xff; 300]] {
        assert!(cloud.ingest_bytes(garbage).is_err());
    }
    let mut v9 = b1.to_bytes();
    v9[4] = 9;
    assert!(matches!(
        cloud.ingest_bytes(&v9),
        Err(Error::UnsupportedVersion { version: 9, .. })
    ));
    let mut cut = b1.to_bytes();
    cut.pop();
    assert!(matches!(
        cloud.ingest_bytes(&cut),
        Err(Error::Malformed { .. })
    ));
    // Every field is under the provider's signature: a batch replayed under another
    // epoch number, or given another generation, is refused and changes nothing.
    let epoch_at = 6 + 1 + 3;
    let mut replay = b0.to_bytes();
    replay[epoch_at..epoch_at + 4].copy_from_slice(&1u32.to_be_bytes());
    assert!(matches!(
        cloud.ingest_bytes(&replay),
        Err(Error::NotAuthentic { .. })
    ));
    let mut regenerated = b1.to_bytes();
    regenerated[epoch_at + 4..epoch_at + 8].copy_from_slice(&1u32.to_be_bytes());
    assert!(matches!(
        cloud.ingest_bytes(&regenerated),
        Err(Error::NotAuthentic { .. })
    ));
    assert_eq!(cloud.manifest(), before);
    assert_eq!(cloud.manifest().segments.len(), 1);
    cloud.ingest(b1).unwrap();
    cloud.ingest(b2).unwrap();
}

#[test]
fn nobody_but_the_provider_can_freeze_or_extend_its_log() {
    // The attack of issue 27: one batch with no key at all, the provider's next epoch
    // and generation u32::MAX, used to make the provider's own uploads fail and, after
    // `reconcile`, leave it no generation to rotate to.
    let cloud = Cloud::new();
    common::register(&cloud, "lab");
    let mut lab = common::new_provider("lab", MasterKey::from_bytes([5; 32]));
    let alice = PatientId::new("alice").unwrap();
    lab.index(&alice, medvault::RecordId::from_bytes([1; 16]), &["asthma"])
        .unwrap();
    let b0 = lab.finish().unwrap();
    cloud.ingest(b0.clone()).unwrap();
    let before = cloud.manifest();
    // The same batch re-signed by someone else (another provider, a grantee with an
    // RSA key of its own), as epoch 1 with generation u32::MAX.
    let mut frozen = b0.to_bytes();
    let epoch_at = 6 + 1 + 3;
    frozen[epoch_at..epoch_at + 4].copy_from_slice(&1u32.to_be_bytes());
    frozen[epoch_at + 4..epoch_at + 8].copy_from_slice(&u32::MAX.to_be_bytes());
    let records = u32::from_be_bytes(frozen[epoch_at + 8..epoch_at + 12].try_into().unwrap());
    let sig_at = epoch_at + 12 + 48 * records as usize;
    let sig_len = u16::from_be_bytes([frozen[sig_at], frozen[sig_at + 1]]) as usize;
    let forged_signature = common::other_identity().signing.sign(b"epoch 1").unwrap();
    assert_eq!(forged_signature.len(), sig_len);
    frozen[sig_at + 2..sig_at + 2 + sig_len].copy_from_slice(&forged_signature);
    assert!(matches!(
        cloud.ingest_bytes(&frozen),
        Err(Error::NotAuthentic { ref provider, .. }) if provider == "lab"
    ));
    // Without any signature the batch does not even parse.
    let mut unsigned = frozen.clone();
    unsigned[sig_at..sig_at + 2].copy_from_slice(&[0, 0]);
    unsigned.drain(sig_at + 2..sig_at + 2 + sig_len);
    assert!(cloud.ingest_bytes(&unsigned).is_err());
    assert_eq!(cloud.manifest(), before, "nothing changed");
    // The provider carries on: its next batch, its rotation, its state.
    lab.rotate().unwrap();
    lab.index(&alice, medvault::RecordId::from_bytes([2; 16]), &["asthma"])
        .unwrap();
    cloud.ingest(lab.finish().unwrap()).unwrap();
    let state = medvault::ProviderState::default()
        .reconcile(
            &cloud.manifest(),
            lab.id(),
            &common::identity().public().verifying,
        )
        .unwrap();
    assert_eq!((state.next_epoch, state.generation), (2, 1));
    // A provider the directory does not know uploads nothing.
    let mut stranger = common::new_provider("stranger", MasterKey::from_bytes([6; 32]));
    assert!(matches!(
        cloud.ingest(stranger.finish().unwrap()),
        Err(Error::NotFound(_))
    ));
    // Registered under another key (first-come), a batch signed with ours is refused.
    cloud
        .register_provider(
            ProviderId::new("stranger").unwrap(),
            common::other_identity().public(),
        )
        .unwrap();
    let mut stranger = common::new_provider("stranger", MasterKey::from_bytes([6; 32]));
    assert!(matches!(
        cloud.ingest(stranger.finish().unwrap()),
        Err(Error::NotAuthentic { .. })
    ));
}

#[test]
fn a_grantee_cannot_write_as_the_provider() {
    // The attacks of issue 27: a doctor holding Alice's patient key at the lab seals a
    // record ("ALLERGY: none known") and a delete posting that would hide her real
    // allergy record from every other doctor.
    let cloud = Cloud::new();
    common::register(&cloud, "lab");
    let mut lab = common::new_provider("lab", MasterKey::from_bytes([7; 32]));
    let alice = PatientId::new("alice").unwrap();
    let allergy = lab
        .add_record(&alice, b"ALLERGY: penicillin (anaphylaxis)", &["allergy"])
        .unwrap();
    cloud.ingest(lab.finish().unwrap()).unwrap();
    cloud.put_record(allergy.bytes.clone()).unwrap();
    let granted = lab.patient_key(&alice);

    // The grantee's own "provider", with the granted key's master unknown but the
    // patient key in hand: it can seal a record under the lab's name...
    let fake_id = medvault::RecordId::from_bytes([0xfa; 16]);
    let fake = medvault::seal(&granted.record_key(fake_id), b"ALLERGY: none known").unwrap();
    assert!(matches!(
        cloud.put_record(fake.clone()),
        Err(Error::NotAuthentic { ref provider, .. }) if provider == "lab"
    ));
    // ...nor re-seal an existing id before the lab uploads it: its digest is not the
    // one the lab signed.
    let pending = lab
        .add_record(&alice, b"ALLERGY: latex", &["allergy"])
        .unwrap();
    cloud.ingest(lab.finish().unwrap()).unwrap();
    let swapped = medvault::seal(&granted.record_key(pending.id), b"ALLERGY: none known").unwrap();
    assert!(matches!(
        cloud.put_record(swapped),
        Err(Error::NotAuthentic { ref provider, .. }) if provider == "lab"
    ));
    cloud.put_record(pending.bytes).unwrap();
    // A batch deleting the allergy record, built by an attacker holding even the lab's
    // master key (more than a grant gives) but not its signing key: refused, and the
    // allergy is still found by every doctor.
    let mut impostor = Provider::resume(
        ProviderId::new("lab").unwrap(),
        MasterKey::from_bytes([7; 32]),
        common::other_identity().signing.clone(),
        lab.state(),
    );
    impostor.delete(&alice, allergy.id, &["allergy"]).unwrap();
    let before = cloud.manifest();
    assert!(matches!(
        cloud.ingest(impostor.finish().unwrap()),
        Err(Error::NotAuthentic { ref provider, .. }) if provider == "lab"
    ));
    assert_eq!(cloud.manifest(), before);
    let mut doctor = Requester::new();
    common::trust(&mut doctor, "lab");
    doctor.add_patient_key(alice.clone(), granted);
    let q = doctor
        .query(&alice, &["allergy"], Combine::Or, &cloud.manifest())
        .unwrap();
    let results = doctor.open(&q, &cloud.search(q.query()).unwrap()).unwrap();
    let found: Vec<_> = results.providers[0].records.iter().map(|r| r.id).collect();
    assert!(found.contains(&allergy.id) && found.contains(&pending.id));
    assert!(!found.contains(&fake_id));
}

#[test]
fn provider_state_survives_a_restart() {
    let cloud = Cloud::new();
    let id = ProviderId::new("lab").unwrap();
    let master = MasterKey::from_bytes([8; 32]);
    let signing = || common::identity().signing.clone();
    let own_key = common::identity().public().verifying;
    common::register(&cloud, "lab");
    let alice = PatientId::new("alice").unwrap();
    let mut lab = Provider::new(id.clone(), master.clone(), signing());
    let mut ids = Vec::new();
    for _ in 0..3 {
        let rec = lab.add_record(&alice, b"x", &["gout"]).unwrap();
        ids.push(rec.id);
        cloud.ingest(lab.finish().unwrap()).unwrap();
        cloud.put_record(rec.bytes).unwrap();
    }
    lab.rotate().unwrap();
    // Generations rise by at most one per batch: a second rotation waits for one.
    assert!(matches!(lab.rotate(), Err(Error::InvalidArgument(_))));
    let saved = lab.state().to_bytes();
    let chain_after_3 = lab.state().chain;
    drop(lab);

    // Restart from the saved state: epoch 3, generation 1 (not yet in any batch).
    let state = ProviderState::from_bytes(&saved).unwrap();
    assert_eq!(
        (state.next_epoch, state.generation, state.logged_generation),
        (3, 1, 0)
    );
    let reconciled = state.reconcile(&cloud.manifest(), &id, &own_key).unwrap();
    assert_eq!(
        reconciled, state,
        "the cloud's signed log is exactly the state's"
    );
    let mut lab = Provider::resume(id.clone(), master.clone(), signing(), reconciled);
    let rec = lab.add_record(&alice, b"y", &["gout"]).unwrap();
    ids.push(rec.id);
    cloud.ingest(lab.finish().unwrap()).unwrap();
    cloud.put_record(rec.bytes).unwrap();

    // Restart from nothing: the position comes back from the provider's own signed
    // log in the manifest, chain included.
    let from_cloud = ProviderState::default()
        .reconcile(&cloud.manifest(), &id, &own_key)
        .unwrap();
    assert_eq!(from_cloud, lab.state());
    assert_eq!((from_cloud.next_epoch, from_cloud.generation), (4, 1));
    // A manifest whose log the provider did not sign is never adopted: inflated,
    // re-signed by another key, or with an epoch's commitment changed.
    let mut inflated = cloud.manifest();
    let last = inflated.providers[0].epochs[3];
    inflated.providers[0].epochs.push(last);
    let mut resigned = cloud.manifest();
    resigned.providers[0].signature = common::other_identity().signing.sign(b"anything").unwrap();
    let mut changed = cloud.manifest();
    changed.providers[0].epochs[1].entries += 1;
    for bad in [inflated, resigned, changed] {
        assert!(matches!(
            ProviderState::default().reconcile(&bad, &id, &own_key),
            Err(Error::NotAuthentic { .. })
        ));
    }
    // The saved state of epoch 3 is behind the cloud: the signed log wins.
    let stale = ProviderState::from_bytes(&saved).unwrap();
    assert_ne!(stale.chain, from_cloud.chain);
    assert_eq!(stale.chain, chain_after_3);
    assert_eq!(
        stale.reconcile(&cloud.manifest(), &id, &own_key).unwrap(),
        from_cloud
    );
    let mut lab = Provider::resume(id.clone(), master.clone(), signing(), from_cloud);
    lab.index(&alice, ids[0], &["arthritis"]).unwrap();
    cloud.ingest(lab.finish().unwrap()).unwrap();

    // A doctor with both generations' keys finds all four records.
    let mut doctor = Requester::new();
    common::trust(&mut doctor, lab.id().as_str());
    doctor.add_patient_key(alice.clone(), lab.patient_key_of_generation(&alice, 0));
    doctor.add_patient_key(alice.clone(), lab.patient_key_of_generation(&alice, 1));
    let q = doctor
        .query(&alice, &["gout"], Combine::Or, &cloud.manifest())
        .unwrap();
    let results = doctor.open(&q, &cloud.search(q.query()).unwrap()).unwrap();
    assert_eq!(results.record_count(), 4);
    // The generation-0 key alone sees only the three records before the rotation.
    let mut old = Requester::new();
    common::trust(&mut old, lab.id().as_str());
    old.add_patient_key(alice.clone(), lab.patient_key_of_generation(&alice, 0));
    let q = old
        .query(&alice, &["gout"], Combine::Or, &cloud.manifest())
        .unwrap();
    let results = old.open(&q, &cloud.search(q.query()).unwrap()).unwrap();
    assert_eq!(results.record_count(), 3);
    assert!(
        results.providers[0]
            .records
            .iter()
            .all(|r| r.generation == 0)
    );

    let good = lab.state().to_bytes();
    assert_eq!(ProviderState::from_bytes(&good).unwrap(), lab.state());
    let mut v1 = good.clone();
    v1[4] = 1;
    assert!(matches!(
        ProviderState::from_bytes(&v1),
        Err(Error::UnsupportedVersion { version: 1, .. })
    ));
    let mut behind = good.clone();
    behind[14..18].copy_from_slice(&9u32.to_be_bytes()); // logged above current
    for bad in [
        &b""[..],
        b"MVPS\x01\x00\x00\x00",
        b"MVPS\x02\x00\x00\x00\x00\x01\x00\x00\x00\x00",
        &good[..good.len() - 1],
        &behind,
    ] {
        assert!(ProviderState::from_bytes(bad).is_err());
    }
}

#[test]
fn padding_lists_to_powers_of_two_keeps_results_exact() {
    let cloud = Cloud::new();
    let mut lab =
        common::new_provider("lab", MasterKey::from_bytes([9; 32])).with_options(IndexOptions {
            pad_to_power_of_two: true,
            ..IndexOptions::default()
        });
    common::register(&cloud, "lab");
    let alice = PatientId::new("alice").unwrap();
    let mut ids = Vec::new();
    let mut sealed = Vec::new();
    for i in 0..13 {
        let rec = lab
            .add_record(&alice, format!("{i}").as_bytes(), &["anemia"])
            .unwrap();
        ids.push(rec.id);
        sealed.push(rec.bytes);
    }
    let batch = lab.finish().unwrap();
    assert_eq!(
        batch.len(),
        4,
        "13 postings = 4 blocks of 4 (already a power of two)"
    );
    cloud.ingest(batch).unwrap();
    for bytes in sealed {
        cloud.put_record(bytes).unwrap();
    }
    let rec = lab.add_record(&alice, b"x", &["anemia"]).unwrap();
    lab.delete(&alice, ids[0], &["anemia"]).unwrap();
    lab.delete(&alice, ids[1], &["anemia"]).unwrap();
    lab.delete(&alice, ids[2], &["anemia"]).unwrap();
    lab.delete(&alice, ids[3], &["anemia"]).unwrap();
    let batch = lab.finish().unwrap();
    assert_eq!(batch.len(), 2, "5 postings = 2 blocks");
    cloud.ingest(batch).unwrap();
    cloud.put_record(rec.bytes).unwrap();
    // Batches padded with random entries to a floor: the size says nothing, the
    // answers do not change.
    let mut lab = lab.with_options(IndexOptions {
        pad_to_power_of_two: true,
        min_batch_entries: 64,
    });
    lab.delete(&alice, ids[4], &["anemia"]).unwrap();
    let rec = lab.add_record(&alice, b"y", &["anemia"]).unwrap();
    let batch = lab.finish().unwrap();
    assert_eq!(batch.len(), 64, "2 real blocks and 62 random entries");
    cloud.ingest(batch).unwrap();
    cloud.put_record(rec.bytes).unwrap();
    let mut doctor = Requester::new();
    common::trust(&mut doctor, lab.id().as_str());
    doctor.add_patient_key(alice.clone(), lab.patient_key(&alice));
    assert_eq!(common::records_found(&doctor, &cloud, &alice, "anemia"), 10);
}

#[test]
fn a_tampered_response_is_caught() {
    let (cloud, lab, alice, ids) = forward_privacy_setup();
    let mut doctor = Requester::new();
    common::trust(&mut doctor, lab.id().as_str());
    doctor.add_patient_key(alice.clone(), lab.patient_key(&alice));
    let q = doctor
        .query(&alice, &["diabetes"], Combine::Or, &cloud.manifest())
        .unwrap();
    let good = cloud.search(q.query()).unwrap();
    // A record withheld without saying so.
    let mut withheld = good.clone();
    withheld.providers[0].records.pop();
    withheld.providers[0].proofs.pop();
    assert!(matches!(
        doctor.open(&q, &withheld),
        Err(Error::InconsistentResponse(_))
    ));
    // A record swapped for another one of the same patient (proof and all): the
    // provider committed other bytes under that id.
    let mut swapped = good.clone();
    let other = swapped.providers[0].records[1].1.clone();
    swapped.providers[0].records[0].1 = other;
    assert!(matches!(
        doctor.open(&q, &swapped),
        Err(Error::NotAuthentic { ref provider, .. }) if provider == "lab"
    ));
    // Another record's bytes under this id, with that record's proof.
    let mut swapped_with_proof = good.clone();
    let (first, second) = (
        swapped_with_proof.providers[0].records[0].1.clone(),
        swapped_with_proof.providers[0].records[1].1.clone(),
    );
    swapped_with_proof.providers[0].records[0].1 = second;
    swapped_with_proof.providers[0].records[1].1 = first;
    swapped_with_proof.providers[0].proofs.swap(0, 1);
    assert!(matches!(
        doctor.open(&q, &swapped_with_proof),
        Err(Error::NotAuthentic { .. })
    ));
    // A modified sealed record, and a record forged by whoever holds the patient key
    // (the cloud after a grantee's leak, or a grantee): not what the lab signed.
    let mut modified = good.clone();
    let last = modified.providers[0].records[0].1.len() - 1;
    modified.providers[0].records[0].1[last] ^= 1;
    assert!(matches!(
        doctor.open(&q, &modified),
        Err(Error::NotAuthentic { .. })
    ));
    let mut forged = good.clone();
    let id = forged.providers[0].records[0].0;
    forged.providers[0].records[0].1 = medvault::seal(
        &lab.patient_key(&alice).record_key(id),
        b"ALLERGY: none known",
    )
    .unwrap();
    assert!(matches!(
        doctor.open(&q, &forged),
        Err(Error::NotAuthentic { .. })
    ));
    // Proofs missing, or a proof's path cut short.
    let mut unproven = good.clone();
    unproven.providers[0].proofs.pop();
    assert!(matches!(
        doctor.open(&q, &unproven),
        Err(Error::InconsistentResponse(_))
    ));
    let mut longer = good.clone();
    longer.providers[0].proofs[0].path.push([0; 32]);
    assert!(matches!(
        doctor.open(&q, &longer),
        Err(Error::NotAuthentic { .. })
    ));
    assert_eq!(doctor.open(&q, &good).unwrap().record_count(), ids.len());
}

/// Four epochs of a lab with 40 other entries each (trees with depth). Alice has a
/// "diabetes" record in every epoch (five in epoch 3: two blocks) and an HIV record in
/// epoch 2. Returns the cloud, the doctor and the HIV record's answer.
fn postings_setup() -> (Cloud, Requester, Provider, PatientId, SearchResponse) {
    let cloud = Cloud::new();
    let mut lab = common::new_provider("lab", MasterKey::from_bytes([5; 32]));
    common::register(&cloud, "lab");
    let alice = PatientId::new("alice").unwrap();
    let bob = PatientId::new("bob").unwrap();
    for epoch in 0..4u8 {
        let mut sealed = Vec::new();
        for n in 0..if epoch == 3 { 5 } else { 1 } {
            let text = format!("HbA1c {epoch}.{n}");
            sealed.push(
                lab.add_record(&alice, text.as_bytes(), &["diabetes"])
                    .unwrap(),
            );
        }
        if epoch == 2 {
            sealed.push(
                lab.add_record(&alice, b"HIV-1 RNA detected", &["hiv"])
                    .unwrap(),
            );
        }
        for n in 0..40u8 {
            let filler = medvault::RecordId::from_bytes([
                epoch, n, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9,
            ]);
            lab.index(&bob, filler, &[format!("filler{n}")]).unwrap();
        }
        cloud.ingest(lab.finish().unwrap()).unwrap();
        for record in sealed {
            cloud.put_record(record.bytes).unwrap();
        }
    }
    let mut doctor = Requester::new();
    common::trust(&mut doctor, "lab");
    doctor.add_patient_key(alice.clone(), lab.patient_key(&alice));
    let hiv = doctor
        .query(&alice, &["hiv"], Combine::Or, &cloud.manifest())
        .unwrap();
    let hiv = cloud.search(hiv.query()).unwrap();
    assert_eq!(hiv.providers[0].records.len(), 1);
    (cloud, doctor, lab, alice, hiv)
}

/// True if `result` is the typed error naming the lab as not authentic.
fn not_the_labs(result: medvault::Result<medvault::SearchResults>) -> bool {
    matches!(result, Err(Error::NotAuthentic { ref provider, .. }) if provider == "lab")
}

#[test]
fn the_cloud_cannot_forge_swap_drop_or_hide_a_posting() {
    let (cloud, doctor, _lab, alice, hiv) = postings_setup();
    let q = doctor
        .query(&alice, &["diabetes"], Combine::Or, &cloud.manifest())
        .unwrap();
    let good = cloud.search(q.query()).unwrap();
    let opened = doctor.open(&q, &good).unwrap();
    assert_eq!(opened.record_count(), 8);
    let lists = &good.providers[0].lists[0];
    assert_eq!(lists.len(), 4, "every epoch is proven");
    assert_eq!(
        lists.iter().map(|e| e.blocks.len()).collect::<Vec<_>>(),
        [1, 1, 1, 2]
    );
    let postings = &opened.providers[0].postings[0];

    // The cloud holds the leaf keys after the search, and values are a stream
    // cipher's: it turns epoch 0's posting into one for the HIV record and returns
    // that record, with the HIV record's own valid record proof.
    let (old, new) = (postings[0].record, hiv.providers[0].records[0].0);
    assert_eq!(postings[0].epoch, 0);
    let mut swapped = good.clone();
    let answer = &mut swapped.providers[0];
    for (byte, (a, b)) in answer.lists[0][0].blocks[0].1[1..17]
        .iter_mut()
        .zip(old.as_bytes().iter().zip(new.as_bytes()))
    {
        *byte ^= a ^ b;
    }
    let at = answer
        .records
        .iter()
        .position(|(id, _)| *id == old)
        .unwrap();
    answer.records[at] = hiv.providers[0].records[0].clone();
    answer.proofs[at] = hiv.providers[0].proofs[0].clone();
    let mut order: Vec<usize> = (0..answer.records.len()).collect();
    order.sort_by_key(|&i| answer.records[i].0);
    answer.records = order.iter().map(|&i| answer.records[i].clone()).collect();
    answer.proofs = order.iter().map(|&i| answer.proofs[i].clone()).collect();
    assert!(
        not_the_labs(doctor.open(&q, &swapped)),
        "HIV record swapped in"
    );

    // One block of epoch 3 dropped, with the records it selects.
    let mut dropped = good.clone();
    let answer = &mut dropped.providers[0];
    answer.lists[0][3].blocks.pop();
    let kept: std::collections::BTreeSet<_> = postings[..postings.len() - 1]
        .iter()
        .map(|h| h.record)
        .collect();
    let keep: Vec<bool> = answer
        .records
        .iter()
        .map(|(id, _)| kept.contains(id))
        .collect();
    let mut flags = keep.iter();
    answer.records.retain(|_| *flags.next().unwrap());
    let mut flags = keep.iter();
    answer.proofs.retain(|_| *flags.next().unwrap());
    assert!(not_the_labs(doctor.open(&q, &dropped)), "a block dropped");

    // A whole epoch left out; a list claimed empty in an epoch where it is not; epochs
    // out of order; a block replayed in another epoch; a neighbour replaced.
    let mut left_out = good.clone();
    left_out.providers[0].lists[0].remove(1);
    assert!(
        not_the_labs(doctor.open(&q, &left_out)),
        "an epoch left out"
    );
    let mut emptied = good.clone();
    emptied.providers[0].lists[0][1].blocks.clear();
    assert!(not_the_labs(doctor.open(&q, &emptied)), "a list emptied");
    let mut reordered = good.clone();
    reordered.providers[0].lists[0].swap(0, 1);
    assert!(
        not_the_labs(doctor.open(&q, &reordered)),
        "epochs reordered"
    );
    let mut replayed = good.clone();
    let block = replayed.providers[0].lists[0][0].blocks[0];
    replayed.providers[0].lists[0][1].blocks[0] = block;
    assert!(not_the_labs(doctor.open(&q, &replayed)), "a block replayed");
    let mut neighbour = good.clone();
    let list = &mut neighbour.providers[0].lists[0][2];
    let other = list.below.or(list.above).unwrap();
    if list.above.is_some() {
        list.above = Some((other.0, [0x55; 68]));
    } else {
        list.below = Some((other.0, [0x55; 68]));
    }
    assert!(
        not_the_labs(doctor.open(&q, &neighbour)),
        "a neighbour replaced"
    );
    // The gap moved by one, neighbours and all.
    let mut moved = good.clone();
    let list = &mut moved.providers[0].lists[0][0];
    list.gap += 1;
    list.below = list.above.take();
    assert!(not_the_labs(doctor.open(&q, &moved)), "the gap moved");

    assert_eq!(doctor.open(&q, &good).unwrap().record_count(), 8);
}

#[test]
fn a_list_absent_from_every_epoch_is_proven_absent_from_each() {
    let (cloud, doctor, _lab, alice, _) = postings_setup();
    let q = doctor
        .query(&alice, &["asthma"], Combine::Or, &cloud.manifest())
        .unwrap();
    let good = cloud.search(q.query()).unwrap();
    let lists = &good.providers[0].lists[0];
    assert_eq!(lists.len(), 4);
    assert!(
        lists
            .iter()
            .all(|e| e.blocks.is_empty() && !e.siblings.is_empty())
    );
    assert_eq!(doctor.open(&q, &good).unwrap().record_count(), 0);
    // Every epoch's absence is checked: a proof from another epoch does not do.
    let mut borrowed = good.clone();
    let mut other = borrowed.providers[0].lists[0][0].clone();
    other.epoch = 1;
    borrowed.providers[0].lists[0][1] = other;
    assert!(not_the_labs(doctor.open(&q, &borrowed)));
}

/// Whether a parser accepts the bytes.
type ParsesOk = fn(&[u8]) -> bool;

/// Every parser: each truncation and random garbage give an error; unknown versions
/// give `UnsupportedVersion`; flipped bytes never panic.
#[test]
fn parsers_reject_garbage_truncation_and_unknown_versions() {
    let cloud = Cloud::new();
    let corpus = Corpus::build(&cloud, 17, &["lab", "clinic"], 3, 2, 30);
    let requester = corpus.requester_with_all_keys();
    let q = requester
        .query(
            &patient_id(0),
            &["diabetes", "insulin"],
            Combine::Or,
            &cloud.manifest(),
        )
        .unwrap();
    let mut lab = common::new_provider("lab2", MasterKey::from_bytes([3; 32]));
    common::register(&cloud, "lab2");
    lab.index(
        &patient_id(0),
        medvault::RecordId::from_bytes([1; 16]),
        &["x1"],
    )
    .unwrap();
    let samples: Vec<(&str, Vec<u8>, ParsesOk)> = vec![
        ("batch", lab.finish().unwrap().to_bytes(), |b| {
            IndexBatch::from_bytes(b).is_ok()
        }),
        ("manifest", cloud.manifest().to_bytes(), |b| {
            Manifest::from_bytes(b).is_ok()
        }),
        ("query", q.query().to_bytes(), |b| {
            Query::from_bytes(b).is_ok()
        }),
        (
            "response",
            cloud.search(q.query()).unwrap().to_bytes(),
            |b| SearchResponse::from_bytes(b).is_ok(),
        ),
        (
            "state",
            ProviderState {
                next_epoch: 5,
                generation: 2,
                logged_generation: 2,
                chain: [7; 32],
            }
            .to_bytes(),
            |b| ProviderState::from_bytes(b).is_ok(),
        ),
    ];
    let mut rng = Rng::new(5);
    for (name, bytes, parses) in &samples {
        assert!(parses(bytes), "{name} round trip");
        for len in 0..bytes.len() {
            assert!(!parses(&bytes[..len]), "{name} cut at {len}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(!parses(&long), "{name} with a trailing byte");
        let mut future = bytes.clone();
        future[4] = 9;
        assert!(!parses(&future), "{name} version 9");
        for _ in 0..2000 {
            let mut bad = bytes.clone();
            let at = rng.below(bad.len());
            bad[at] ^= 1 << rng.below(8);
            let _ = parses(&bad); // must not panic
        }
        for len in [0, 1, 5, 6, 7, 50, 1000] {
            let garbage: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            assert!(!parses(&garbage), "{name} garbage");
            let mut framed = bytes[..6.min(bytes.len())].to_vec();
            framed.extend(&garbage);
            let _ = parses(&framed); // valid preamble, garbage body: must not panic
        }
    }
    assert!(matches!(
        Manifest::from_bytes(&{
            let mut m = cloud.manifest().to_bytes();
            m[4] = 7;
            m
        }),
        Err(Error::UnsupportedVersion { version: 7, .. })
    ));
    // A 20-byte input claiming 4 billion entries is refused, not allocated.
    let mut huge = b"MVMF\x02\x01".to_vec();
    huge.extend_from_slice(&u32::MAX.to_be_bytes());
    huge.extend_from_slice(&[0; 10]);
    assert!(matches!(
        Manifest::from_bytes(&huge),
        Err(Error::Truncated { .. })
    ));
}

#[test]
fn queries_are_checked() {
    let (cloud, lab, alice, _) = forward_privacy_setup();
    let mut doctor = Requester::new();
    common::trust(&mut doctor, lab.id().as_str());
    doctor.add_patient_key(alice.clone(), lab.patient_key(&alice));
    let m = cloud.manifest();
    let none: [&str; 0] = [];
    assert!(matches!(
        doctor.query(&alice, &none, Combine::Or, &m),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        doctor.query(&alice, &["  "], Combine::Or, &m),
        Err(Error::InvalidArgument(_))
    ));
    let seventeen = ["a1"; 17];
    assert!(matches!(
        doctor.query(&alice, &seventeen, Combine::Or, &m),
        Err(Error::InvalidArgument(_))
    ));
    // A query naming a provider the cloud does not know (built against another cloud
    // where it exists).
    let elsewhere = Cloud::new();
    common::register(&elsewhere, "ghost");
    let mut ghost = common::new_provider("ghost", MasterKey::from_bytes([1; 32]));
    elsewhere.ingest(ghost.finish().unwrap()).unwrap();
    let mut other = Requester::new();
    common::trust(&mut other, "ghost");
    other.add_patient_key(alice.clone(), ghost.patient_key(&alice));
    let q = other
        .query(&alice, &["diabetes"], Combine::Or, &elsewhere.manifest())
        .unwrap();
    assert!(matches!(cloud.search(q.query()), Err(Error::NotFound(_))));
    // The ghost's log presented under the lab's name does not verify: the head
    // signature covers the provider id.
    let mut renamed = elsewhere.manifest();
    renamed.providers[0].provider = lab.id().clone();
    assert!(matches!(
        doctor.query(&alice, &["diabetes"], Combine::Or, &renamed),
        Err(Error::NotAuthentic { .. } | Error::LogRollback { .. })
    ));
    // A hand-made token with a depth-0 (whole-tree) node is refused.
    let q = doctor
        .query(&alice, &["diabetes"], Combine::Or, &m)
        .unwrap();
    let mut bytes = q.query().to_bytes();
    let node_at = 6 + 3 + 1 + 3 + 1;
    bytes[node_at] = 0;
    assert!(matches!(
        Query::from_bytes(&bytes),
        Err(Error::Malformed { .. })
    ));
}

/// `Requester::query_at` sends tokens to the providers it names and to no other, so a
/// provider that colludes with the cloud (file injection: it planted records under
/// every keyword for the patient) gets nothing to answer when it is left out; what the
/// named providers answer is exactly what `query` gets from them. Bad lists are
/// refused before anything is built.
#[test]
fn a_query_at_named_providers_reaches_no_other() {
    let cloud = Cloud::new();
    let corpus = Corpus::build(&cloud, 29, PROVIDERS, 5, 4, 90);
    let target = 1usize;
    let mut doctor = Requester::new();
    for p in &corpus.providers {
        common::trust(&mut doctor, p.id().as_str());
        doctor.add_patient_key(patient_id(target), p.patient_key(&patient_id(target)));
    }
    let manifest = cloud.manifest();
    let (hospital, lab) = (corpus.providers[0].id(), corpus.providers[1].id());
    for k in vocabulary() {
        let everywhere = doctor
            .query(&patient_id(target), &[k], Combine::Or, &manifest)
            .unwrap();
        assert_eq!(everywhere.query().providers().count(), PROVIDERS.len());
        let at = doctor
            .query_at(
                &patient_id(target),
                &[k],
                Combine::Or,
                &manifest,
                &[lab.clone(), hospital.clone()],
            )
            .unwrap();
        // Sorted, the two named and nobody else; the third gets no token at all.
        let asked: Vec<&ProviderId> = at.query().providers().collect();
        assert_eq!(asked, [lab, hospital]);
        let response = cloud.search(at.query()).unwrap();
        let results = doctor.open(&at, &response).unwrap();
        let expected = corpus.expected(target, &[k], Combine::Or);
        for provider in &results.providers {
            let found: std::collections::BTreeSet<_> =
                provider.records.iter().map(|r| r.id).collect();
            assert_eq!(found, expected[&provider.provider], "{k}");
        }
        // The answer to a query at two providers does not open as the answer to one at
        // three, nor the other way round.
        assert!(doctor.open(&everywhere, &response).is_err());
    }
    let p = patient_id(target);
    let none: [ProviderId; 0] = [];
    assert!(matches!(
        doctor.query_at(&p, &["visit"], Combine::Or, &manifest, &none),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        doctor.query_at(
            &p,
            &["visit"],
            Combine::Or,
            &manifest,
            &[lab.clone(), lab.clone()]
        ),
        Err(Error::InvalidArgument(_))
    ));
    let stranger = ProviderId::new("no-such-clinic").unwrap();
    assert!(matches!(
        doctor.query_at(&p, &["visit"], Combine::Or, &manifest, &[stranger]),
        Err(Error::NotFound(_))
    ));
    // Keys at the lab for this patient only: the lab for another patient is refused.
    assert!(matches!(
        doctor.query_at(
            &patient_id(2),
            &["visit"],
            Combine::Or,
            &manifest,
            std::slice::from_ref(lab)
        ),
        Err(Error::NotFound(_))
    ));
    let none: [&str; 0] = [];
    assert!(matches!(
        doctor.query_at(&p, &none, Combine::Or, &manifest, std::slice::from_ref(lab)),
        Err(Error::InvalidArgument(_))
    ));
    // A provider the doctor holds keys for but the manifest does not list yet.
    let mut partial = manifest.clone();
    partial.providers.retain(|entry| &entry.provider != lab);
    assert!(matches!(
        doctor.query_at(
            &p,
            &["visit"],
            Combine::Or,
            &partial,
            std::slice::from_ref(lab)
        ),
        Err(Error::NotFound(_))
    ));
}

/// Long posting lists (4 postings a block, up to 150 blocks) are probed to their end and
/// no further: lists of lengths around block boundaries, in two epochs of different
/// lengths, give exactly their records, before and after merging.
#[test]
fn long_posting_lists_are_found_whole() {
    use std::collections::BTreeSet;
    let cloud = Cloud::new();
    let mut lab = common::new_provider("lab", MasterKey::from_bytes([4; 32]));
    common::register(&cloud, "lab");
    let lengths = [63usize, 64, 65, 300, 320, 321, 600];
    let patients: Vec<PatientId> = (0..lengths.len())
        .map(|i| PatientId::new(format!("patient-{i}")).unwrap())
        .collect();
    let mut expected: Vec<BTreeSet<medvault::RecordId>> = vec![BTreeSet::new(); lengths.len()];
    let mut sealed = Vec::new();
    for epoch in 0..2 {
        for ((patient, &n), ids) in patients.iter().zip(&lengths).zip(&mut expected) {
            // The second epoch holds a shorter list, so each epoch ends somewhere else.
            for r in 0..n / (epoch + 1) {
                let rec = lab
                    .add_record(
                        patient,
                        format!("{epoch}/{r}").as_bytes(),
                        &["hypertension"],
                    )
                    .unwrap();
                ids.insert(rec.id);
                sealed.push(rec.bytes);
            }
        }
        cloud.ingest(lab.finish().unwrap()).unwrap();
        for bytes in sealed.drain(..) {
            cloud.put_record(bytes).unwrap();
        }
    }
    let mut doctor = Requester::new();
    common::trust(&mut doctor, lab.id().as_str());
    for patient in &patients {
        doctor.add_patient_key(patient.clone(), lab.patient_key(patient));
    }
    for merged in [false, true] {
        if merged {
            cloud.merge().unwrap();
        }
        for (patient, ids) in patients.iter().zip(&expected) {
            let q = doctor
                .query(patient, &["hypertension"], Combine::Or, &cloud.manifest())
                .unwrap();
            let opened = doctor.open(&q, &cloud.search(q.query()).unwrap()).unwrap();
            let got: BTreeSet<_> = opened.providers[0].records.iter().map(|r| r.id).collect();
            assert_eq!(&got, ids, "{} records, merged: {merged}", ids.len());
        }
    }
}

/// An answer of many records is opened on all cores: every plaintext comes back in the
/// answer's order, and of two bad records the first in that order decides the error.
#[test]
fn many_records_open_in_order_and_the_first_bad_one_is_reported() {
    let cloud = Cloud::new();
    let mut lab = common::new_provider("lab", MasterKey::from_bytes([6; 32]));
    common::register(&cloud, "lab");
    let patient = PatientId::new("patient-many").unwrap();
    let mut notes = std::collections::BTreeMap::new();
    let mut sealed = Vec::new();
    for i in 0..50 {
        let note = format!("note {i}: ").repeat(i + 1).into_bytes();
        let record = lab.add_record(&patient, &note, &["asthma"]).unwrap();
        notes.insert(record.id, note);
        sealed.push(record.bytes);
    }
    cloud.ingest(lab.finish().unwrap()).unwrap();
    for bytes in sealed {
        cloud.put_record(bytes).unwrap();
    }
    let mut doctor = Requester::new();
    common::trust(&mut doctor, lab.id().as_str());
    doctor.add_patient_key(patient.clone(), lab.patient_key(&patient));
    let q = doctor
        .query(&patient, &["asthma"], Combine::Or, &cloud.manifest())
        .unwrap();
    let good = cloud.search(q.query()).unwrap();
    let opened = doctor.open(&q, &good).unwrap();
    let got: Vec<_> = opened.providers[0]
        .records
        .iter()
        .map(|r| (r.id, r.plaintext.to_vec()))
        .collect();
    let want: Vec<_> = notes.into_iter().collect();
    assert_eq!(got, want);

    // Record 10 modified, record 30 proven in an epoch the log does not have: the
    // first in the answer's order decides the error, whichever way round.
    let modify = |response: &mut medvault::SearchResponse, at: usize| {
        let last = response.providers[0].records[at].1.len() - 1;
        response.providers[0].records[at].1[last] ^= 1;
    };
    let misplace = |response: &mut medvault::SearchResponse, at: usize| {
        response.providers[0].proofs[at].epoch = 7;
    };
    let what = |response: &medvault::SearchResponse| match doctor.open(&q, response) {
        Err(Error::NotAuthentic { what, .. }) => what,
        other => panic!("{other:?}"),
    };
    let mut bad = good.clone();
    modify(&mut bad, 10);
    misplace(&mut bad, 30);
    assert_eq!(what(&bad), "record (not the one the provider signed)");
    let mut bad = good.clone();
    misplace(&mut bad, 10);
    modify(&mut bad, 30);
    assert_eq!(what(&bad), "record (its epoch is not in the signed log)");
}

#[test]
fn the_requester_builds_tokens_only_from_a_signed_log_and_never_goes_back() {
    // The attacks of issue 27 on forward privacy and completeness: a cloud that
    // inflates a provider's epoch count (to get tokens for epochs not yet uploaded),
    // drops an epoch, rewrites one, or shows an older log after a newer one.
    let (cloud, mut lab, alice, _) = forward_privacy_setup();
    let mut doctor = Requester::new();
    common::trust(&mut doctor, lab.id().as_str());
    doctor.add_patient_key(alice.clone(), lab.patient_key(&alice));
    let old = cloud.manifest();
    let first = doctor
        .query(&alice, &["diabetes"], Combine::Or, &old)
        .unwrap();
    assert_eq!(
        doctor
            .open(&first, &cloud.search(first.query()).unwrap())
            .unwrap()
            .record_count(),
        5
    );
    let not_authentic = |m: &Manifest| {
        matches!(
            doctor.query(&alice, &["diabetes"], Combine::Or, m),
            Err(Error::NotAuthentic { ref provider, .. }) if provider == "lab"
        )
    };
    let mut inflated = old.clone();
    let last = *inflated.providers[0].epochs.last().unwrap();
    inflated.providers[0].epochs.push(last);
    assert!(not_authentic(&inflated), "inflated epoch count");
    // An epoch dropped: shorter than what the doctor saw, and unsigned for anyone.
    let mut dropped = old.clone();
    dropped.providers[0].epochs.remove(2);
    assert!(matches!(
        doctor.query(&alice, &["diabetes"], Combine::Or, &dropped),
        Err(Error::LogRollback {
            seen: 5,
            found: 4,
            ..
        })
    ));
    let mut newcomer = Requester::new();
    common::trust(&mut newcomer, lab.id().as_str());
    newcomer.add_patient_key(alice.clone(), lab.patient_key(&alice));
    assert!(matches!(
        newcomer.query(&alice, &["diabetes"], Combine::Or, &dropped),
        Err(Error::NotAuthentic { .. })
    ));
    let mut rewritten = old.clone();
    rewritten.providers[0].epochs[1].entries += 1;
    assert!(not_authentic(&rewritten), "an epoch rewritten");
    // A forged head signature over the very epochs the doctor verified changes
    // nothing for it (the head is cached: no signature check), and convinces nobody
    // who has not verified them.
    let mut unsigned = old.clone();
    unsigned.providers[0].signature = vec![0; 256];
    doctor
        .query(&alice, &["diabetes"], Combine::Or, &unsigned)
        .unwrap();
    assert!(matches!(
        newcomer.query(&alice, &["diabetes"], Combine::Or, &unsigned),
        Err(Error::NotAuthentic { .. })
    ));

    // Two more epochs; the doctor sees them; then the cloud shows the old manifest.
    for epoch in 5..7 {
        let rec = lab
            .add_record(&alice, format!("late {epoch}").as_bytes(), &["diabetes"])
            .unwrap();
        cloud.ingest(lab.finish().unwrap()).unwrap();
        cloud.put_record(rec.bytes).unwrap();
    }
    assert_eq!(
        common::records_found(&doctor, &cloud, &alice, "diabetes"),
        7
    );
    assert!(matches!(
        doctor.query(&alice, &["diabetes"], Combine::Or, &old),
        Err(Error::LogRollback {
            seen: 7,
            found: 5,
            ..
        })
    ));
    // A posting list the cloud claims from an epoch beyond the signed log is refused.
    let mut beyond = cloud.search(first.query()).unwrap();
    let mut extra = beyond.providers[0].lists[0][0].clone();
    extra.epoch = 6;
    beyond.providers[0].lists[0].push(extra);
    assert!(matches!(
        doctor.open(&first, &beyond),
        Err(Error::NotAuthentic { .. })
    ));
    // Another requester that never saw the newer log is not fooled into a rollback it
    // cannot see, but it is bound by the signature all the same.
    let mut fresh = Requester::new();
    common::trust(&mut fresh, lab.id().as_str());
    fresh.add_patient_key(alice.clone(), lab.patient_key(&alice));
    fresh
        .query(&alice, &["diabetes"], Combine::Or, &old)
        .unwrap();
}

#[test]
fn a_provider_rekeys_with_a_statement_signed_by_its_old_key() {
    use medvault::Rekey;
    let (old, new) = (common::identity(), common::other_identity());
    let (cloud, lab, alice, _) = forward_privacy_setup();
    let id = lab.id().clone();
    let mut doctor = Requester::new();
    common::trust(&mut doctor, id.as_str());
    doctor.add_patient_key(alice.clone(), lab.patient_key(&alice));
    doctor
        .query(&alice, &["diabetes"], Combine::Or, &cloud.manifest())
        .unwrap();

    // Someone else's statement, or one for an unregistered provider: refused.
    let by_new = Rekey::issue(&id, &new.signing, &new.public());
    assert!(matches!(by_new, Err(Error::InvalidArgument(_))));
    let forged = Rekey::issue(&id, &new.signing, &old.public()).unwrap();
    assert!(matches!(
        cloud.rekey_provider(&forged.to_bytes()),
        Err(Error::SignatureInvalid)
    ));
    let ghost = Rekey::issue(
        &ProviderId::new("ghost").unwrap(),
        &old.signing,
        &new.public(),
    )
    .unwrap();
    assert!(matches!(
        cloud.rekey_provider(&ghost.to_bytes()),
        Err(Error::NotFound(_))
    ));
    assert_eq!(cloud.provider_keys(&id).unwrap(), old.public());

    // The real statement: the directory follows, and the provider signs with the new key.
    let rekey = Rekey::issue(&id, &old.signing, &new.public()).unwrap();
    cloud.rekey_provider(&rekey.to_bytes()).unwrap();
    assert_eq!(cloud.provider_keys(&id).unwrap(), new.public());
    let state = lab.state();
    let mut stale = Provider::resume(
        id.clone(),
        MasterKey::from_bytes([4; 32]),
        old.signing.clone(),
        state,
    );
    let mut lab = Provider::resume(
        id.clone(),
        MasterKey::from_bytes([4; 32]),
        new.signing.clone(),
        state,
    );
    let rec = lab
        .add_record(&alice, b"after re-keying", &["diabetes"])
        .unwrap();
    assert!(matches!(
        cloud.ingest(stale.finish().unwrap()),
        Err(Error::NotAuthentic { .. })
    ));
    cloud.ingest(lab.finish().unwrap()).unwrap();
    cloud.put_record(rec.bytes).unwrap();

    // The doctor pinned the old key: the new head does not verify until it follows the
    // statement, which must be signed by the key it pinned.
    assert!(matches!(
        doctor.query(&alice, &["diabetes"], Combine::Or, &cloud.manifest()),
        Err(Error::NotAuthentic { .. })
    ));
    assert!(matches!(
        doctor.follow_rekey(&forged),
        Err(Error::SignatureInvalid)
    ));
    doctor
        .follow_rekey(&Rekey::from_bytes(&rekey.to_bytes()).unwrap())
        .unwrap();
    assert_eq!(
        common::records_found(&doctor, &cloud, &alice, "diabetes"),
        6
    );
    // The old statement again changes nothing: the registered key is the new one now.
    assert!(matches!(
        cloud.rekey_provider(&rekey.to_bytes()),
        Err(Error::SignatureInvalid)
    ));
}

#[test]
fn every_flipped_byte_of_a_signed_structure_is_refused() {
    // Batches (by the cloud), the manifest's logs (by a requester) and a whole search
    // response (by the requester that asked): every single-bit change is refused with
    // a typed error and changes nothing.
    let (cloud, mut lab, alice, _) = forward_privacy_setup();
    let rec = lab.add_record(&alice, b"one more", &["diabetes"]).unwrap();
    let batch = lab.finish().unwrap().to_bytes();
    let before = cloud.manifest();
    for at in 0..batch.len() {
        for bit in [0x01u8, 0x80] {
            let mut bad = batch.clone();
            bad[at] ^= bit;
            assert!(cloud.ingest_bytes(&bad).is_err(), "batch byte {at}");
        }
    }
    assert_eq!(cloud.manifest(), before, "nothing changed");
    cloud.ingest_bytes(&batch).unwrap();
    cloud.put_record(rec.bytes).unwrap();

    let manifest = cloud.manifest().to_bytes();
    let fresh = || {
        let mut doctor = Requester::new();
        common::trust(&mut doctor, lab.id().as_str());
        doctor.add_patient_key(alice.clone(), lab.patient_key(&alice));
        doctor
    };
    // The provider's entry: everything but the cloud's own statistics (its record
    // count, 8 bytes after the id, and the segment list at the end) is signed.
    let id_len = lab.id().as_str().len();
    let records_at = 6 + 4 + 1 + id_len;
    let segments_at = manifest.len() - 4 - 8 * cloud.manifest().segments.len();
    for at in (6..segments_at).filter(|at| !(records_at..records_at + 8).contains(at)) {
        let mut bad = manifest.clone();
        bad[at] ^= 0x01;
        let refused = match Manifest::from_bytes(&bad) {
            Err(_) => true,
            Ok(m) => fresh()
                .query(&alice, &["diabetes"], Combine::Or, &m)
                .is_err(),
        };
        assert!(refused, "manifest byte {at}");
    }

    let doctor = fresh();
    let q = doctor
        .query(&alice, &["diabetes"], Combine::Or, &cloud.manifest())
        .unwrap();
    let response = cloud.search(q.query()).unwrap().to_bytes();
    assert_eq!(
        doctor
            .open(&q, &SearchResponse::from_bytes(&response).unwrap())
            .unwrap()
            .record_count(),
        6
    );
    // Every byte: the posting lists and their proofs, the records and theirs, the
    // counts and the provider.
    for at in 0..response.len() {
        let mut bad = response.clone();
        bad[at] ^= 0x01;
        let refused = match SearchResponse::from_bytes(&bad) {
            Err(_) => true,
            Ok(r) => doctor.open(&q, &r).is_err(),
        };
        assert!(refused, "response byte {at}");
    }
}
