//! A large store (directory or any other) for the store benchmark and the 10^8-entry
//! example.
//!
//! One provider uploads `epochs` batches. One patient's keyword `needle` has a sealed
//! record in `results` of those epochs, spread evenly; every batch is padded with random
//! label-value pairs up to `entries / epochs` (`IndexOptions::min_batch_entries`). Random pairs are what the cloud sees of
//! any index entry (labels and values are PRF outputs), so lookups, merges and disk
//! traffic are those of a real index of that size, built in seconds instead of hours of
//! keyword derivation.
#![allow(dead_code)]

use std::path::Path;

use medvault::{
    Cloud, Combine, IndexBatch, IndexOptions, MasterKey, PatientId, PreparedQuery, Provider,
    ProviderId, Requester,
};

// The includer declares `keys` (`common/keys.rs`) at its root.
use crate::keys;

const PAIR_LEN: usize = IndexBatch::PAIR_LEN;
const LABEL_LEN: usize = IndexBatch::LABEL_LEN;

pub const NEEDLE: &str = "needle";

pub struct StoreFixture {
    pub cloud: Cloud,
    pub requester: Requester,
    pub patient: PatientId,
    /// (entries merged, seconds) of each merge during the build.
    pub merges: Vec<(u64, f64)>,
}

impl StoreFixture {
    /// The one-keyword query for `needle` against the current manifest.
    pub fn needle_query(&self) -> PreparedQuery {
        self.requester
            .query(
                &self.patient,
                &[NEEDLE],
                Combine::And,
                &self.cloud.manifest(),
            )
            .unwrap()
    }
}

fn provider() -> Provider {
    Provider::new(
        ProviderId::new("radiology").unwrap(),
        MasterKey::from_bytes([0x5a; 32]),
        keys::signing(),
    )
}

/// A cloud on the store in `dir` that knows the fixture's provider.
pub fn open(dir: &Path) -> Cloud {
    register_providers(Cloud::open(dir).unwrap())
}

/// `cloud`, knowing the fixture's providers.
pub fn register_providers(cloud: Cloud) -> Cloud {
    keys::register(&cloud, "radiology");
    keys::register(&cloud, "bench-lab");
    cloud
}

/// A provider that pads each batch with random entries to `entries`.
pub fn padding_provider(name: &str, seed: u8, entries: usize) -> Provider {
    Provider::new(
        ProviderId::new(name).unwrap(),
        MasterKey::from_bytes([seed; 32]),
        keys::signing(),
    )
    .with_options(IndexOptions {
        min_batch_entries: entries,
        ..IndexOptions::default()
    })
}

fn patient() -> PatientId {
    PatientId::new("+15550199").unwrap()
}

/// Builds the store in `dir`; merges every `merge_every` epochs (0 = never) so the
/// ingest collision check stays cheap, as an operator's compaction schedule would.
/// `progress` is called with the number of epochs done.
pub fn build(
    dir: &Path,
    entries: u64,
    epochs: u32,
    results: u32,
    merge_every: u32,
    progress: impl FnMut(u32),
) -> StoreFixture {
    build_on(open(dir), entries, epochs, results, merge_every, progress)
}

/// [`build`] on `cloud` (any store), which must know the fixture's providers
/// ([`register_providers`]).
pub fn build_on(
    cloud: Cloud,
    entries: u64,
    epochs: u32,
    results: u32,
    merge_every: u32,
    mut progress: impl FnMut(u32),
) -> StoreFixture {
    let per_epoch = entries / u64::from(epochs);
    let mut owner = provider().with_options(IndexOptions {
        min_batch_entries: per_epoch as usize,
        ..IndexOptions::default()
    });
    let who = patient();
    let spacing = epochs / results.max(1);
    let mut placed = 0;
    let mut merges = Vec::new();
    for epoch in 0..epochs {
        if placed < results && epoch % spacing == spacing / 2 {
            let text = format!("Chest radiograph, epoch {epoch}: no acute findings.");
            let sealed = owner.add_record(&who, text.as_bytes(), &[NEEDLE]).unwrap();
            cloud.ingest(owner.finish().unwrap()).unwrap();
            cloud.put_record(sealed.bytes).unwrap();
            placed += 1;
        } else {
            cloud.ingest(owner.finish().unwrap()).unwrap();
        }
        if merge_every > 0 && (epoch + 1) % merge_every == 0 {
            let merged: u64 = cloud.manifest().segments.iter().sum();
            let start = std::time::Instant::now();
            cloud.merge().unwrap();
            merges.push((merged, start.elapsed().as_secs_f64()));
        }
        progress(epoch + 1);
    }
    let mut requester = Requester::new();
    keys::trust(&mut requester, "radiology");
    requester.add_patient_key(who.clone(), owner.patient_key(&who));
    StoreFixture {
        cloud,
        requester,
        patient: who,
        merges,
    }
}

/// Times `runs` needle searches; returns (p50, p99) in microseconds and checks every
/// answer has `results` records.
pub fn search_latency(fixture: &StoreFixture, runs: usize, results: usize) -> (f64, f64) {
    let prepared = fixture.needle_query();
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let start = std::time::Instant::now();
            let response = fixture.cloud.search(prepared.query()).unwrap();
            let took = start.elapsed().as_secs_f64() * 1e6;
            assert_eq!(response.providers[0].records.len(), results);
            took
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (times[runs / 2], times[runs * 99 / 100])
}
