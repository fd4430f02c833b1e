//! The cloud-level half of the store conformance suite (the store-level half is
//! `src/store/conformance_tests.rs`): every store answers a generated hospital's
//! queries exactly like the plaintext index and the in-memory reference, after a
//! reopen too, and serves searches unchanged while another provider ingests.
//! Stores: `MemStore`, `DirStore`, and with the `postgres` feature `PgStore` on a real
//! server (`MEDVAULT_TEST_PG`, or a cluster the test starts).

mod common;
#[cfg(feature = "postgres")]
#[path = "common/postgres.rs"]
mod pg;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::corpus::{ABSENT, Corpus, Rng, check_query, patient_id, vocabulary};
use medvault::{Cloud, Combine, MasterKey, PatientId, RecordId, Requester};

const PROVIDERS: &[&str] = &["st-mary-hospital", "city-lab", "corner-pharmacy"];

/// A store under test: opens (or reopens) a cloud on it.
struct Store {
    name: &'static str,
    open: Box<dyn Fn() -> Cloud>,
    /// False for the in-memory store: a reopen would be a new, empty cloud.
    persistent: bool,
}

fn known(cloud: Cloud) -> Cloud {
    for name in PROVIDERS.iter().chain(&["late-clinic"]) {
        common::register(&cloud, name);
    }
    cloud
}

fn every_store() -> Vec<Store> {
    let dir = tempfile::tempdir().unwrap();
    #[allow(unused_mut)]
    let mut stores = vec![
        Store {
            name: "MemStore",
            open: Box::new(|| known(Cloud::new())),
            persistent: false,
        },
        Store {
            name: "DirStore",
            open: Box::new(move || known(Cloud::open(dir.path()).unwrap())),
            persistent: true,
        },
    ];
    #[cfg(feature = "postgres")]
    {
        let database = pg::shared().fresh_database();
        stores.push(Store {
            name: "PgStore",
            open: Box::new(move || known(Cloud::from(medvault::PgStore::open(&database).unwrap()))),
            persistent: true,
        });
    }
    stores
}

/// Queries for every patient: every keyword alone, and random AND / OR pairs.
fn queries(corpus: &Corpus, seed: u64) -> Vec<(usize, Vec<&'static str>, Combine)> {
    let mut rng = Rng::new(seed);
    let mut words: Vec<&'static str> = vocabulary();
    words.extend(ABSENT);
    let mut out = Vec::new();
    for patient in 0..corpus.patients {
        for w in &words {
            out.push((patient, vec![*w], Combine::And));
        }
        for _ in 0..4 {
            let pick = vec![words[rng.below(words.len())], words[rng.below(words.len())]];
            out.push((patient, pick.clone(), Combine::And));
            out.push((patient, pick, Combine::Or));
        }
    }
    out
}

/// The cloud's serialized answer to each query (what goes over the wire).
fn answers(cloud: &Cloud, corpus: &Corpus, requester: &Requester) -> Vec<Vec<u8>> {
    let manifest = cloud.manifest();
    queries(corpus, 5)
        .iter()
        .map(|(patient, words, combine)| {
            let prepared = requester
                .query(&patient_id(*patient), words, *combine, &manifest)
                .unwrap();
            cloud.search(prepared.query()).unwrap().to_bytes()
        })
        .collect()
}

#[test]
fn every_store_answers_like_the_plaintext_index_and_the_reference_after_a_reopen_too() {
    for store in every_store() {
        let name = store.name;
        let reference = Cloud::new();
        let cloud = (store.open)();
        let corpus = Corpus::build_into(&[&reference, &cloud], 21, PROVIDERS, 10, 8, 120);
        let requester = corpus.requester_with_all_keys();
        let expected = answers(&reference, &corpus, &requester);
        assert!(
            answers(&cloud, &corpus, &requester) == expected,
            "{name}: answers differ"
        );
        let mut opened = 0;
        for (patient, words, combine) in queries(&corpus, 5) {
            opened += check_query(&cloud, &corpus, &requester, patient, &words, combine);
        }
        assert!(
            opened > 500,
            "{name}: the oracle comparison found {opened} records"
        );
        cloud.merge().unwrap();
        assert!(
            answers(&cloud, &corpus, &requester) == expected,
            "{name}: after a merge"
        );
        if store.persistent {
            drop(cloud);
            let cloud = (store.open)();
            assert!(
                answers(&cloud, &corpus, &requester) == expected,
                "{name}: after a reopen"
            );
            for (patient, words, combine) in queries(&corpus, 6).into_iter().take(100) {
                check_query(&cloud, &corpus, &requester, patient, &words, combine);
            }
        }
    }
}

#[test]
fn every_store_answers_searches_unchanged_while_another_provider_ingests() {
    for store in every_store() {
        let name = store.name;
        let cloud = (store.open)();
        let corpus = Corpus::build(&cloud, 31, PROVIDERS, 6, 6, 100);
        let requester = corpus.requester_with_all_keys();
        let reference = answers(&cloud, &corpus, &requester);
        let manifest = cloud.manifest();
        let prepared: Vec<_> = queries(&corpus, 5)
            .iter()
            .map(|(patient, words, combine)| {
                requester
                    .query(&patient_id(*patient), words, *combine, &manifest)
                    .unwrap()
            })
            .collect();
        // A provider the queries do not name uploads meanwhile.
        let mut late = common::new_provider("late-clinic", MasterKey::from_bytes([77; 32]));
        let batches: Vec<_> = (0..20u8)
            .map(|e| {
                late.index(
                    &PatientId::new("+15559999").unwrap(),
                    RecordId::from_bytes([e; 16]),
                    &["asthma"],
                )
                .unwrap();
                late.finish().unwrap()
            })
            .collect();
        let ingesting = AtomicBool::new(true);
        let searched = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for t in 0..2 {
                let (cloud, prepared, reference) = (&cloud, &prepared, &reference);
                let (ingesting, searched) = (&ingesting, &searched);
                s.spawn(move || {
                    let mut i = t;
                    while ingesting.load(Ordering::SeqCst) || i < prepared.len() {
                        let k = i % prepared.len();
                        let answer = cloud.search(prepared[k].query()).unwrap().to_bytes();
                        assert!(answer == reference[k], "{name}: query {k} while ingesting");
                        searched.fetch_add(1, Ordering::SeqCst);
                        i += 2;
                    }
                });
            }
            for batch in batches {
                cloud.ingest(batch).unwrap();
            }
            ingesting.store(false, Ordering::SeqCst);
        });
        assert!(searched.load(Ordering::SeqCst) >= prepared.len(), "{name}");
        let late_epochs = cloud
            .manifest()
            .provider(&common::provider("late-clinic"))
            .unwrap()
            .epoch_count();
        assert_eq!(late_epochs, 20, "{name}");
        assert!(answers(&cloud, &corpus, &requester) == reference, "{name}");
    }
}
