//! Property tests: format round trips, search equal to a plaintext index under arbitrary
//! operation sequences, and streaming independent of how writes and reads are split.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};

use medvault::keyfile::{self, PasswordKdf};
use medvault::{
    Cloud, Combine, IndexBatch, Manifest, MasterKey, Opener, PatientId, ProviderId, ProviderState,
    Query, RecordId, Requester, Sealer, SearchResponse, open, seal_with_chunk_size,
};
use proptest::prelude::*;

fn record_key() -> medvault::RecordKey {
    common::patient_key(1, "lab", "p", 0).record_key(RecordId::from_bytes([3; 16]))
}

proptest! {
    #[test]
    fn sealed_records_round_trip(data in proptest::collection::vec(any::<u8>(), 0..3000), chunk in 16u32..300) {
        let key = record_key();
        let sealed = seal_with_chunk_size(&key, &data, chunk).unwrap();
        prop_assert_eq!(open(&key, &sealed).unwrap(), data.clone());
        let mut opened = Vec::new();
        Opener::new(&sealed[..], &key).unwrap().read_to_end(&mut opened).unwrap();
        prop_assert_eq!(opened, data);
    }

    /// The sealed layout and the opened bytes do not depend on how writes or reads are cut.
    #[test]
    fn streaming_is_independent_of_splits(
        data in proptest::collection::vec(any::<u8>(), 0..2000),
        writes in proptest::collection::vec(1usize..200, 1..20),
        read_size in 1usize..300,
        chunk in 16u32..128,
    ) {
        let key = record_key();
        let mut sealer = Sealer::with_chunk_size(Vec::new(), &key, chunk).unwrap();
        let mut rest = &data[..];
        for w in writes.iter().cycle() {
            if rest.is_empty() { break; }
            let n = (*w).min(rest.len());
            sealer.write_all(&rest[..n]).unwrap();
            rest = &rest[n..];
        }
        let sealed = sealer.finish().unwrap();
        prop_assert_eq!(sealed.len(), seal_with_chunk_size(&key, &data, chunk).unwrap().len());
        let mut opener = Opener::new(&sealed[..], &key).unwrap();
        let mut out = Vec::new();
        let mut buf = vec![0u8; read_size];
        loop {
            let n = opener.read(&mut buf).unwrap();
            if n == 0 { break; }
            out.extend_from_slice(&buf[..n]);
        }
        prop_assert_eq!(out, data);
    }

    #[test]
    fn index_formats_round_trip(
        lists in proptest::collection::vec((0usize..4, "[a-z]{2,8}", 1usize..9), 0..12),
        combine_and in any::<bool>(),
        pad in any::<bool>(),
    ) {
        let cloud = Cloud::new();
        common::register(&cloud, "lab");
        let mut lab = common::new_provider("lab", MasterKey::from_bytes([5; 32]))
            .with_options(medvault::IndexOptions { pad_to_power_of_two: pad, min_batch_entries: if pad { 40 } else { 0 } });
        let mut n = 0u8;
        for (patient, word, count) in &lists {
            for _ in 0..*count {
                n = n.wrapping_add(1);
                lab.index(&common::corpus::patient_id(*patient), RecordId::from_bytes([n; 16]), &[word]).unwrap();
            }
        }
        let batch = lab.finish().unwrap();
        prop_assert_eq!(IndexBatch::from_bytes(&batch.to_bytes()).unwrap(), batch.clone());
        cloud.ingest(batch).unwrap();
        let manifest = cloud.manifest();
        prop_assert_eq!(Manifest::from_bytes(&manifest.to_bytes()).unwrap(), manifest.clone());
        let state = lab.state();
        prop_assert_eq!(ProviderState::from_bytes(&state.to_bytes()).unwrap(), state);
        let mut requester = Requester::new();
        common::trust(&mut requester, "lab");
        let patient = common::corpus::patient_id(0);
        requester.add_patient_key(patient.clone(), lab.patient_key(&patient));
        let words: Vec<&str> = lists.iter().map(|l| l.1.as_str()).take(3).chain(["absent"]).collect();
        let combine = if combine_and { Combine::And } else { Combine::Or };
        let q = requester.query(&patient, &words, combine, &manifest).unwrap();
        prop_assert_eq!(Query::from_bytes(&q.query().to_bytes()).unwrap(), q.query().clone());
        let response = cloud.search(q.query()).unwrap();
        prop_assert_eq!(SearchResponse::from_bytes(&response.to_bytes()).unwrap(), response);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]

    #[test]
    fn key_files_round_trip(password in proptest::collection::vec(any::<u8>(), 1..64), seed in any::<[u8; 32]>(), name in "[a-z0-9.-]{1,20}") {
        prop_assume!(name != "." && name != "..");
        let master = MasterKey::from_bytes(seed);
        let provider = ProviderId::new(&name).unwrap();
        let file = keyfile::lock(&master, &provider, &password, PasswordKdf::Pbkdf2Sha256 { iterations: 100_000 }).unwrap();
        let unlocked = keyfile::unlock(&file, &password).unwrap();
        prop_assert_eq!(unlocked.master_key.expose_secret(), &seed);
        prop_assert_eq!(unlocked.provider, provider);
    }
}

/// One step of a provider's life.
#[derive(Debug, Clone)]
enum Step {
    Add {
        patient: usize,
        keywords: Vec<usize>,
    },
    Delete {
        record: usize,
        keyword: usize,
    },
    Finish,
    Merge,
    Rotate,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0usize..3, proptest::collection::vec(0usize..5, 1..4))
            .prop_map(|(patient, keywords)| Step::Add { patient, keywords }),
        2 => (any::<usize>(), 0usize..5).prop_map(|(record, keyword)| Step::Delete { record, keyword }),
        2 => Just(Step::Finish),
        1 => Just(Step::Merge),
        1 => Just(Step::Rotate),
    ]
}

const WORDS: [&str; 5] = ["asthma", "gout", "anemia", "eczema", "insulin"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any sequence of adds, deletes, batch ends, merges and rotations: a requester with
    /// every generation's keys gets exactly what a plaintext index says.
    #[test]
    fn search_equals_a_plaintext_index(steps in proptest::collection::vec(step(), 1..40)) {
        let cloud = Cloud::new();
        common::register(&cloud, "lab");
        let mut lab = common::new_provider("lab", MasterKey::from_bytes([9; 32]));
        // Sealed records wait for the batch that commits them.
        let mut unsent: Vec<Vec<u8>> = Vec::new();
        let patients: Vec<PatientId> = (0..3).map(common::corpus::patient_id).collect();
        // Plaintext model: (patient, keyword) → records; and each record's owner.
        let mut model: BTreeMap<(usize, usize), BTreeSet<RecordId>> = BTreeMap::new();
        let mut records: Vec<(RecordId, usize)> = Vec::new();
        let mut rotate_pending = false;
        for s in &steps {
            match s {
                Step::Add { patient, keywords } => {
                    let words: Vec<&str> = keywords.iter().map(|&k| WORDS[k]).collect();
                    let rec = lab.add_record(&patients[*patient], b"r", &words).unwrap();
                    unsent.push(rec.bytes);
                    for &k in keywords {
                        model.entry((*patient, k)).or_default().insert(rec.id);
                    }
                    records.push((rec.id, *patient));
                }
                Step::Delete { record, keyword } if !records.is_empty() => {
                    let (id, patient) = records[record % records.len()];
                    lab.delete(&patients[patient], id, &[WORDS[*keyword]]).unwrap();
                    if let Some(set) = model.get_mut(&(patient, *keyword)) {
                        set.remove(&id);
                    }
                }
                Step::Delete { .. } => {}
                Step::Finish => {
                    cloud.ingest(lab.finish().unwrap()).unwrap();
                    for sealed in unsent.drain(..) {
                        cloud.put_record(sealed).unwrap();
                    }
                }
                Step::Merge => cloud.merge().unwrap(),
                Step::Rotate => rotate_pending = true,
            }
            // A rotation waits for an empty queue and for a batch since the last one.
            let state = lab.state();
            if rotate_pending
                && lab.pending_postings() == 0
                && unsent.is_empty()
                && state.generation == state.logged_generation
            {
                lab.rotate().unwrap();
                rotate_pending = false;
            }
        }
        cloud.ingest(lab.finish().unwrap()).unwrap();
        for sealed in unsent.drain(..) {
            cloud.put_record(sealed).unwrap();
        }
        let mut requester = Requester::new();
        common::trust(&mut requester, "lab");
        for p in &patients {
            for g in 0..=lab.state().generation {
                requester.add_patient_key(p.clone(), lab.patient_key_of_generation(p, g));
            }
        }
        let manifest = cloud.manifest();
        for (u, p) in patients.iter().enumerate() {
            for k in 0..WORDS.len() {
                for (words, combine) in [(vec![k], Combine::Or), (vec![k, (k + 1) % 5], Combine::And), (vec![k, (k + 2) % 5], Combine::Or)] {
                    let names: Vec<&str> = words.iter().map(|&w| WORDS[w]).collect();
                    let q = requester.query(p, &names, combine, &manifest).unwrap();
                    let got: BTreeSet<RecordId> = requester
                        .open(&q, &cloud.search(q.query()).unwrap())
                        .unwrap()
                        .providers
                        .iter()
                        .flat_map(|r| r.records.iter().map(|x| x.id))
                        .collect();
                    let sets = words.iter().map(|&w| model.get(&(u, w)).cloned().unwrap_or_default());
                    let want: BTreeSet<RecordId> = sets
                        .reduce(|a, b| match combine {
                            Combine::And => a.intersection(&b).copied().collect(),
                            Combine::Or => a.union(&b).copied().collect(),
                        })
                        .unwrap_or_default();
                    prop_assert_eq!(got, want, "patient {} {:?} {:?}", u, names, combine);
                }
            }
        }
    }
}
