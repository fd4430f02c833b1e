//! Runs a corpus through a real cloud and records exactly what the cloud observes
//! through the public API:
//! - of each ingest (an epoch), when it arrived by the cloud's clock, its entry count
//!   and how many records it committed: the timing of epochs;
//! - of each search, the query's bytes (equal bytes are the same search: the search
//!   pattern), the labels it probed, as the epoch and place of each entry a label found
//!   and where each list's missing label would be (the cloud computes them from the
//!   token; the response's proofs name them), the record ids it answers (the access
//!   pattern), and the size of its answer;
//! - every stored record's sealed size and upload time.
//!
//! The indexing under each defence is what a provider can configure today with the
//! library as it is.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// SHA-256 of the query's bytes: two searches with the same value are the same.
    pub query: [u8; 32],
    /// The records of the answer (by their place in the corpus: the cloud sees their
    /// ids, which name them as well).
    pub results: Vec<usize>,
    /// The labels it probed that found an entry: (epoch, the entry's place among the
    /// epoch's entries sorted by label), in probing order. Whoever keeps the index
    /// tables sees these lookups hit, and each entry's epoch, without the token.
    pub found: Vec<(u32, u32)>,
    /// The labels it probed that found nothing, one per epoch the token covers: (epoch,
    /// how many of the epoch's labels sort below it).
    pub missed: Vec<(u32, u32)>,
    /// Bytes of the answer (proofs and sealed records).
    pub response_bytes: usize,
}

impl Observed {
    /// The epochs where a label of this search found an entry, ascending.
    pub fn epochs_hit(&self) -> BTreeSet<u32> {
        self.found.iter().map(|(epoch, _)| *epoch).collect()
    }

    /// Labels probed: every hit and one miss per epoch covered.
    pub fn labels_probed(&self) -> usize {
        self.found.len() + self.missed.len()
    }
}

/// Noon of the corpus's first day, by the cloud's clock (unix seconds, 2026-01-01).
pub const YEAR_START: u64 = 1_767_268_800;
pub const DAY: u64 = 86_400;

/// One ingest as the cloud saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochSeen {
    pub epoch: u32,
    /// When it arrived, by the cloud's clock.
    pub at: u64,
    pub entries: u64,
    pub records: usize,
}

/// The epoch that holds the records written on `day`, from the timing of epochs: the
/// first to arrive after that day began (a batch is uploaded at the end of its last
/// day, and never splits a day).
pub fn epoch_of_day(epochs: &[EpochSeen], day: u32) -> Option<u32> {
    let began = YEAR_START - DAY / 2 + u64::from(day) * DAY;
    epochs.iter().find(|e| e.at >= began).map(|e| e.epoch)
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
    /// Each of its ingests, as the cloud saw it.
    pub epochs: Vec<EpochSeen>,
}

/// A cloud whose clock the harness sets (unix seconds).
pub fn cloud_with_clock() -> (Cloud, Arc<AtomicU64>) {
    let now = Arc::new(AtomicU64::new(YEAR_START));
    let read = Arc::clone(&now);
    (
        Cloud::new().with_clock(move || read.load(Ordering::Relaxed)),
        now,
    )
}

/// Registers provider `name` in `cloud` and uploads `corpus` through it, indexed
/// under `defence`: a batch (an epoch) at the end of the first day that brings it to
/// `epoch_records` records or more (1: a batch a day), and at the end, with `clock`
/// set to that evening.
pub fn load(
    cloud: &Cloud,
    clock: &AtomicU64,
    name: &str,
    corpus: &Corpus,
    defence: Defence,
    epoch_records: usize,
) -> Loaded {
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
    let mut epochs = Vec::new();
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
        let day_ends = corpus
            .records
            .get(i + 1)
            .is_none_or(|next| next.day != record.day);
        if day_ends && (pending.len() >= epoch_records || i + 1 == corpus.records.len()) {
            let evening = YEAR_START + u64::from(record.day) * DAY + DAY / 4;
            clock.store(evening, Ordering::Relaxed);
            cloud.ingest(provider.finish().unwrap()).unwrap();
            for bytes in pending.drain(..) {
                cloud.put_record(bytes).unwrap();
            }
            let manifest = cloud.manifest();
            let info = manifest
                .provider(provider.id())
                .and_then(|p| p.epochs.last())
                .expect("the epoch just ingested");
            epochs.push(EpochSeen {
                epoch: epochs.len() as u32,
                at: evening,
                entries: u64::from(info.entries),
                records: info.records as usize,
            });
        }
    }
    Loaded {
        provider,
        keys,
        corpus_index,
        epochs,
    }
}

/// What the cloud observed: each search, each ingest, and each stored record's size
/// and upload time (by corpus position).
pub struct Observation {
    pub searches: Vec<Observed>,
    /// The searches of `dummies`, kept apart (they are not counted in the costs), and
    /// the time they took.
    pub dummies: Vec<Observed>,
    pub dummy_search: Duration,
    pub epochs: Vec<EpochSeen>,
    pub sizes: Vec<u64>,
    pub uploaded_at: Vec<u64>,
    pub costs: Costs,
}

/// Records in an epoch, at least, unless said otherwise: a batch ends with the first
/// day that brings it to this many.
pub const EPOCH_RECORDS: usize = 1_000;

/// Every search of `queries` (patient, keyword), then every one of `dummies`, against
/// a cloud holding `corpus` indexed under `defence` in epochs of `epoch_records` or
/// more, with the stored sizes and the costs of `queries`.
pub fn observe(
    corpus: &Corpus,
    defence: Defence,
    epoch_records: usize,
    queries: &[(usize, String)],
    dummies: &[(usize, String)],
) -> Observation {
    let (cloud, clock) = cloud_with_clock();
    let Loaded {
        provider: hospital,
        keys,
        corpus_index,
        epochs,
    } = load(
        &cloud,
        &clock,
        "st-mary-hospital",
        corpus,
        defence,
        epoch_records,
    );
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
    let mut dummy_search = Duration::ZERO;
    for (p, keyword) in queries.iter().chain(dummies) {
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
        let elapsed = started.elapsed();
        let answer = &response.providers[0];
        let results: Vec<usize> = answer
            .records
            .iter()
            .map(|(id, _)| corpus_index[id])
            .collect();
        if observed.len() < queries.len() {
            searching += elapsed;
            opened += results.len();
            wanted += results
                .iter()
                .filter(|&&r| corpus.records[r].keywords.iter().any(|k| k == keyword))
                .count();
        } else {
            dummy_search += elapsed;
        }
        let lists = answer.lists.iter().flatten();
        observed.push(Observed {
            query: Sha256::digest(&bytes).into(),
            found: lists
                .clone()
                .flat_map(|list| list.blocks.iter().map(|(place, _)| (list.epoch, *place)))
                .collect(),
            missed: lists.map(|list| (list.epoch, list.gap)).collect(),
            response_bytes: response.to_bytes().len(),
            results,
        });
    }
    let dummies = observed.split_off(queries.len());
    let n = queries.len().max(1) as f64;
    let mut sizes = vec![0u64; corpus.records.len()];
    let mut uploaded_at = vec![0u64; corpus.records.len()];
    for info in cloud.records() {
        sizes[corpus_index[&info.record]] = info.size;
        uploaded_at[corpus_index[&info.record]] = info.uploaded_at;
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
        dummies,
        dummy_search,
        epochs,
        sizes,
        uploaded_at,
        costs,
    }
}
