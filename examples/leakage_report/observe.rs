//! Runs a corpus through a real cloud and records exactly what the cloud observes of
//! each search through the public API: the query's bytes (equal bytes are the same
//! search: the search pattern), the record ids it answers (the access pattern), the
//! index blocks it found, and the size of its answer. The indexing under each defence
//! is what a provider can configure today with the library as it is.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use medvault::{
    Cloud, Combine, Identity, IndexOptions, MasterKey, PatientId, Provider, ProviderId, RecordId,
    Requester,
};
use sha2::{Digest, Sha256};

use crate::corpus::Corpus;

/// How the provider indexes and how the doctor asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defence {
    /// Each record under each of its keywords.
    None,
    /// The same, with every posting list padded to a power-of-two number of blocks
    /// (`IndexOptions::pad_to_power_of_two`).
    PowerOfTwo,
    /// Keywords hashed into this many buckets: a record is indexed under the buckets of
    /// its keywords, a query asks for its keyword's bucket, and the doctor keeps the
    /// records that have the keyword after opening them.
    Buckets(usize),
    /// Every record under one term: a query returns all of the patient's records and
    /// the doctor filters them after opening.
    PatientWide,
    /// Indexed as without a defence, but every record's plaintext padded (with the
    /// application's own filler) up to a multiple of this many bytes before sealing, so
    /// that records of similar lengths are sealed to the same size.
    PaddedSizes(usize),
}

impl Defence {
    pub fn name(&self) -> String {
        match self {
            Defence::None => "none".into(),
            Defence::PowerOfTwo => "power-of-two padding".into(),
            Defence::Buckets(n) => format!("{n} keyword buckets"),
            Defence::PatientWide => "patient-wide answers".into(),
            Defence::PaddedSizes(n) => format!("sizes padded to {} KiB", n / 1024),
        }
    }

    /// The plaintext length a record of `len` bytes is sealed at.
    pub fn padded(&self, len: usize) -> usize {
        match self {
            Defence::PaddedSizes(n) => len.div_ceil(*n).max(1) * n,
            _ => len,
        }
    }

    /// The terms a record with `keywords` is indexed under.
    pub fn terms(&self, keywords: &[String]) -> Vec<String> {
        match self {
            Defence::None | Defence::PowerOfTwo | Defence::PaddedSizes(_) => keywords.to_vec(),
            Defence::Buckets(n) => keywords
                .iter()
                .map(|k| bucket(k, *n))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            Defence::PatientWide => vec!["all-records".into()],
        }
    }

    /// The term a query for `keyword` asks for.
    pub fn term(&self, keyword: &str) -> String {
        match self {
            Defence::None | Defence::PowerOfTwo | Defence::PaddedSizes(_) => keyword.to_owned(),
            Defence::Buckets(n) => bucket(keyword, *n),
            Defence::PatientWide => "all-records".into(),
        }
    }
}

/// A keyword's bucket: a hash of it, known to providers and doctors alike (the bucket
/// map is not a secret; the keys are).
fn bucket(keyword: &str, buckets: usize) -> String {
    let digest = Sha256::digest(keyword.as_bytes());
    let n = u64::from_be_bytes(digest[..8].try_into().unwrap()) % buckets as u64;
    format!("bucket-{n}")
}

/// One search as the cloud saw it.
#[derive(Debug, Clone)]
pub struct Observed {
    /// SHA-256 of the query's bytes: two searches with the same value are the same.
    pub query: [u8; 32],
    /// The records of the answer (by their place in the corpus: the cloud sees their
    /// ids, which name them as well).
    pub results: Vec<usize>,
    /// Index blocks found, over all epochs (the volume of the list).
    #[allow(dead_code)] // recorded for the volume attacks to come
    pub blocks: usize,
    /// Bytes of the answer (proofs and sealed records).
    pub response_bytes: usize,
}

/// What a defence costs, measured on the run.
#[derive(Debug, Clone, Copy)]
pub struct Costs {
    /// Bytes of sealed records the cloud stores.
    pub stored_bytes: u64,
    pub index_entries: u64,
    pub mean_results: f64,
    pub mean_response_bytes: f64,
    pub mean_search: Duration,
    /// Records the doctor opened for each record it wanted (1 without a defence).
    pub opened_per_wanted: f64,
}

/// The patient id of corpus patient `p`.
pub fn patient(p: usize) -> PatientId {
    PatientId::new(format!("+1555{p:07}")).unwrap()
}

/// A provider whose records are in a cloud.
pub struct Loaded {
    pub provider: Provider,
    pub keys: Identity,
    /// The corpus position of each record id the cloud holds.
    pub corpus_index: HashMap<RecordId, usize>,
}

/// Registers provider `name` in `cloud` and uploads `corpus` through it, indexed
/// under `defence`, a batch (an epoch) per 1,000 records.
pub fn load(cloud: &Cloud, name: &str, corpus: &Corpus, defence: Defence) -> Loaded {
    let id = ProviderId::new(name).unwrap();
    // 2048-bit keys: what is measured here is leakage, not RSA.
    let keys = Identity::generate_with_bits(2048).unwrap();
    cloud.register_provider(id.clone(), keys.public()).unwrap();
    let mut provider = Provider::new(
        id,
        MasterKey::from_bytes(Sha256::digest(name.as_bytes()).into()),
        keys.signing.clone(),
    )
    .with_options(IndexOptions {
        pad_to_power_of_two: defence == Defence::PowerOfTwo,
        ..IndexOptions::default()
    });
    let mut corpus_index: HashMap<RecordId, usize> = HashMap::new();
    let mut pending = Vec::new();
    let mut filler = Vec::new();
    for (i, record) in corpus.records.iter().enumerate() {
        filler.clear();
        filler.resize(defence.padded(record.size), (i % 251) as u8);
        let terms = defence.terms(&record.keywords);
        let terms: Vec<&str> = terms.iter().map(String::as_str).collect();
        let sealed = provider
            .add_record(&patient(record.patient), &filler, &terms)
            .unwrap();
        corpus_index.insert(sealed.id, i);
        pending.push(sealed.bytes);
        if (i + 1) % 1_000 == 0 || i + 1 == corpus.records.len() {
            cloud.ingest(provider.finish().unwrap()).unwrap();
            for bytes in pending.drain(..) {
                cloud.put_record(bytes).unwrap();
            }
        }
    }
    Loaded {
        provider,
        keys,
        corpus_index,
    }
}

/// What the cloud observed: each search, and each stored record's size (by corpus
/// position).
pub struct Observation {
    pub searches: Vec<Observed>,
    pub sizes: Vec<u64>,
    pub costs: Costs,
}

/// Every search of `queries` (patient, keyword) against a cloud holding `corpus`
/// indexed under `defence`, with the stored sizes and the costs.
pub fn observe(corpus: &Corpus, defence: Defence, queries: &[(usize, String)]) -> Observation {
    let cloud = Cloud::new();
    let Loaded {
        provider: hospital,
        keys,
        corpus_index,
    } = load(&cloud, "st-mary-hospital", corpus, defence);
    let id = hospital.id().clone();

    let mut doctor = Requester::new();
    doctor
        .trust_provider(id.clone(), keys.public().verifying)
        .unwrap();
    for p in 0..corpus.patients {
        doctor.add_patient_key(patient(p), hospital.patient_key(&patient(p)));
    }
    let manifest = cloud.manifest();
    let index_entries: u64 = manifest.segments.iter().sum();
    let (mut observed, mut searching) = (Vec::with_capacity(queries.len()), Duration::ZERO);
    let (mut opened, mut wanted) = (0usize, 0usize);
    for (p, keyword) in queries {
        let prepared = doctor
            .query(
                &patient(*p),
                &[defence.term(keyword).as_str()],
                Combine::Or,
                &manifest,
            )
            .unwrap();
        let bytes = prepared.query().to_bytes();
        let started = Instant::now();
        let response = cloud.search(prepared.query()).unwrap();
        searching += started.elapsed();
        let answer = &response.providers[0];
        let results: Vec<usize> = answer
            .records
            .iter()
            .map(|(id, _)| corpus_index[id])
            .collect();
        opened += results.len();
        wanted += results
            .iter()
            .filter(|&&r| corpus.records[r].keywords.iter().any(|k| k == keyword))
            .count();
        observed.push(Observed {
            query: Sha256::digest(&bytes).into(),
            blocks: answer.lists.iter().flatten().map(|e| e.blocks.len()).sum(),
            response_bytes: response.to_bytes().len(),
            results,
        });
    }
    let n = queries.len().max(1) as f64;
    let mut sizes = vec![0u64; corpus.records.len()];
    for info in cloud.records() {
        sizes[corpus_index[&info.record]] = info.size;
    }
    let costs = Costs {
        stored_bytes: sizes.iter().sum(),
        index_entries,
        mean_results: opened as f64 / n,
        mean_response_bytes: observed.iter().map(|o| o.response_bytes).sum::<usize>() as f64 / n,
        mean_search: searching / queries.len().max(1) as u32,
        opened_per_wanted: opened as f64 / wanted.max(1) as f64,
    };
    Observation {
        searches: observed,
        sizes,
        costs,
    }
}
