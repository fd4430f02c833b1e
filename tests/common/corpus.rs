//! A random multi-provider corpus with a plaintext inverted index beside it: the oracle
//! the encrypted search must agree with.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};

use medvault::{Cloud, Combine, MasterKey, PatientId, Provider, ProviderId, RecordId, Requester};

/// Deterministic xorshift generator, so a failing corpus reproduces.
pub struct Rng(u64);
impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

pub const WORDS: &[&str] = &[
    "diabetes",
    "metformin",
    "insulin",
    "hypertension",
    "lisinopril",
    "amlodipine",
    "asthma",
    "albuterol",
    "fracture",
    "radiograph",
    "anemia",
    "ferritin",
    "creatinine",
    "potassium",
    "sodium",
    "glucose",
    "cholesterol",
    "statin",
    "atorvastatin",
    "warfarin",
    "fibrillation",
    "migraine",
    "sumatriptan",
    "pneumonia",
    "amoxicillin",
    "influenza",
    "vaccine",
    "allergy",
    "penicillin",
    "depression",
    "sertraline",
    "thyroid",
    "levothyroxine",
    "pregnancy",
    "ultrasound",
    "biopsy",
    "melanoma",
    "dermatitis",
    "eczema",
    "arthritis",
    "ibuprofen",
    "gout",
    "allopurinol",
    "kidney",
    "dialysis",
    "hepatitis",
    "cirrhosis",
];
pub const CODES: &[&str] = &[
    "code:snomed/44054006",
    "code:snomed/38341003",
    "code:loinc/4548-4",
    "code:loinc/2160-0",
    "code:rxnorm/861004",
    "code:rxnorm/314076",
    "type:condition",
    "type:observation",
    "type:medication",
    "type:imaging",
];
/// Keywords no record has.
pub const ABSENT: &[&str] = &["leprosy", "code:snomed/00000000", "zzzyzx"];

pub fn vocabulary() -> Vec<&'static str> {
    WORDS.iter().chain(CODES).copied().collect()
}

pub fn patient_id(i: usize) -> PatientId {
    PatientId::new(format!("+1555010{i:04}")).unwrap()
}

/// (provider, patient index, keyword) → records that have it now.
pub type Oracle = HashMap<(ProviderId, usize, String), BTreeSet<RecordId>>;

pub struct Corpus {
    pub providers: Vec<Provider>,
    pub masters: Vec<MasterKey>,
    pub oracle: Oracle,
    pub plaintexts: HashMap<RecordId, Vec<u8>>,
    /// (provider, record) → (patient index, keywords it has now).
    pub records: BTreeMap<(ProviderId, RecordId), (usize, BTreeSet<String>)>,
    pub patients: usize,
    pub pairs: usize,
}

impl Corpus {
    /// Uploads `epochs` batches per provider into `cloud`, with about
    /// `pairs_per_batch` record-keyword pairs each, and deletions.
    pub fn build(
        cloud: &Cloud,
        seed: u64,
        providers: &[&str],
        patients: usize,
        epochs: u32,
        pairs_per_batch: usize,
    ) -> Corpus {
        Corpus::build_into(&[cloud], seed, providers, patients, epochs, pairs_per_batch)
    }

    /// [`Corpus::build`] uploading the same records and batches into every cloud.
    pub fn build_into(
        clouds: &[&Cloud],
        seed: u64,
        providers: &[&str],
        patients: usize,
        epochs: u32,
        pairs_per_batch: usize,
    ) -> Corpus {
        let mut rng = Rng::new(seed);
        let vocab = vocabulary();
        let masters: Vec<MasterKey> = (0..providers.len())
            .map(|i| MasterKey::from_bytes([i as u8 + 1; 32]))
            .collect();
        let mut corpus = Corpus {
            providers: providers
                .iter()
                .zip(&masters)
                .map(|(name, mk)| super::new_provider(name, mk.clone()))
                .collect(),
            masters,
            oracle: HashMap::new(),
            plaintexts: HashMap::new(),
            records: BTreeMap::new(),
            patients,
            pairs: 0,
        };
        for cloud in clouds {
            for name in providers {
                super::register(cloud, name);
            }
        }
        for _ in 0..epochs {
            for p in 0..corpus.providers.len() {
                let pid = corpus.providers[p].id().clone();
                let mut pairs = 0;
                let mut sealed_records = Vec::new();
                while pairs < pairs_per_batch {
                    let existing: Vec<(RecordId, usize)> = corpus
                        .records
                        .range(
                            (pid.clone(), RecordId::from_bytes([0; 16]))
                                ..=(pid.clone(), RecordId::from_bytes([0xff; 16])),
                        )
                        .map(|((_, id), (u, _))| (*id, *u))
                        .collect();
                    if !existing.is_empty() && rng.chance(15) {
                        // Delete one or two keywords of an existing record, or re-add one.
                        let (id, u) = existing[rng.below(existing.len())];
                        let have: Vec<String> = corpus.records[&(pid.clone(), id)]
                            .1
                            .iter()
                            .cloned()
                            .collect();
                        if !have.is_empty() && rng.chance(80) {
                            let k = have[rng.below(have.len())].clone();
                            corpus.providers[p]
                                .delete(&patient_id(u), id, &[&k])
                                .unwrap();
                            corpus
                                .records
                                .get_mut(&(pid.clone(), id))
                                .unwrap()
                                .1
                                .remove(&k);
                            corpus
                                .oracle
                                .get_mut(&(pid.clone(), u, k))
                                .unwrap()
                                .remove(&id);
                        } else {
                            let k = vocab[rng.below(vocab.len())].to_string();
                            corpus.providers[p]
                                .index(&patient_id(u), id, &[&k])
                                .unwrap();
                            corpus
                                .records
                                .get_mut(&(pid.clone(), id))
                                .unwrap()
                                .1
                                .insert(k.clone());
                            corpus
                                .oracle
                                .entry((pid.clone(), u, k))
                                .or_default()
                                .insert(id);
                        }
                        pairs += 1;
                        continue;
                    }
                    let u = rng.below(patients);
                    let n = 2 + rng.below(8);
                    let keywords: BTreeSet<String> = (0..n)
                        .map(|_| vocab[rng.below(vocab.len())].to_string())
                        .collect();
                    let text = format!(
                        "Record {} of patient {u} at {pid}: {}",
                        rng.next(),
                        keywords.iter().cloned().collect::<Vec<_>>().join(", ")
                    );
                    let list: Vec<&String> = keywords.iter().collect();
                    let sealed = corpus.providers[p]
                        .add_record(&patient_id(u), text.as_bytes(), &list)
                        .unwrap();
                    sealed_records.push(sealed.bytes.clone());
                    for k in &keywords {
                        corpus
                            .oracle
                            .entry((pid.clone(), u, k.clone()))
                            .or_default()
                            .insert(sealed.id);
                    }
                    corpus.plaintexts.insert(sealed.id, text.into_bytes());
                    corpus
                        .records
                        .insert((pid.clone(), sealed.id), (u, keywords.clone()));
                    pairs += keywords.len();
                }
                corpus.pairs += pairs;
                let batch = corpus.providers[p].finish().unwrap();
                // The batch commits the records: it goes first.
                for cloud in clouds {
                    cloud.ingest(batch.clone()).unwrap();
                    for sealed in &sealed_records {
                        cloud.put_record(sealed.clone()).unwrap();
                    }
                }
            }
        }
        corpus
    }

    /// A requester holding every patient's keys at every provider.
    pub fn requester_with_all_keys(&self) -> Requester {
        let mut r = Requester::new();
        for provider in &self.providers {
            super::trust(&mut r, provider.id().as_str());
            for u in 0..self.patients {
                r.add_patient_key(patient_id(u), provider.patient_key(&patient_id(u)));
            }
        }
        r
    }

    /// What a plaintext index says `patient` has for `keywords` at each provider.
    pub fn expected(
        &self,
        patient: usize,
        keywords: &[&str],
        combine: Combine,
    ) -> BTreeMap<ProviderId, BTreeSet<RecordId>> {
        let mut out = BTreeMap::new();
        for provider in &self.providers {
            let sets = keywords.iter().map(|k| {
                self.oracle
                    .get(&(
                        provider.id().clone(),
                        patient,
                        medvault::keyword::normalize(k),
                    ))
                    .cloned()
                    .unwrap_or_default()
            });
            let mut acc: Option<BTreeSet<RecordId>> = None;
            for set in sets {
                acc = Some(match (acc, combine) {
                    (None, _) => set,
                    (Some(a), Combine::And) => a.intersection(&set).copied().collect(),
                    (Some(a), Combine::Or) => a.union(&set).copied().collect(),
                });
            }
            out.insert(provider.id().clone(), acc.unwrap_or_default());
        }
        out
    }
}

/// Runs one query end to end and checks records and plaintexts against the oracle;
/// returns how many records it opened.
pub fn check_query(
    cloud: &Cloud,
    corpus: &Corpus,
    requester: &Requester,
    patient: usize,
    keywords: &[&str],
    combine: Combine,
) -> usize {
    let manifest = cloud.manifest();
    let prepared = requester
        .query(&patient_id(patient), keywords, combine, &manifest)
        .unwrap();
    // The query travels as bytes, and so does the answer.
    let response = cloud.search_bytes(&prepared.query().to_bytes()).unwrap();
    let response = medvault::SearchResponse::from_bytes(&response.to_bytes()).unwrap();
    let results = requester.open(&prepared, &response).unwrap();
    let expected = corpus.expected(patient, keywords, combine);
    for got in &results.providers {
        let want = &expected[&got.provider];
        let ids: BTreeSet<RecordId> = got.records.iter().map(|r| r.id).collect();
        assert!(got.missing.is_empty());
        assert_eq!(
            &ids, want,
            "patient {patient}, {keywords:?} {combine:?} at {}",
            got.provider
        );
        for r in &got.records {
            assert_eq!(&r.plaintext[..], &corpus.plaintexts[&r.id][..]);
        }
    }
    assert_eq!(results.providers.len(), corpus.providers.len());
    results.record_count()
}
