//! The searchable index: batch build rate, search latency, merge throughput.
//!
//! `cargo bench --bench index`

use std::cell::OnceCell;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use medvault::{
    Cloud, Combine, IndexBatch, MasterKey, PatientId, Provider, ProviderId, RecordId, Requester,
};

#[path = "common/answer_fixture.rs"]
mod answer_fixture;
#[path = "common/keys.rs"]
mod keys;
use answer_fixture::{ANSWERS, records_answer};

fn provider() -> Provider {
    Provider::new(
        ProviderId::new("bench-lab").unwrap(),
        MasterKey::from_bytes([7; 32]),
        keys::signing(),
    )
}

/// An in-memory cloud that knows the bench provider.
fn cloud() -> Cloud {
    let cloud = Cloud::new();
    keys::register(&cloud, "bench-lab");
    cloud
}

fn patient(i: usize) -> PatientId {
    PatientId::new(format!("+1555{i:07}")).unwrap()
}

fn record(i: usize) -> RecordId {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&(i as u64).to_be_bytes());
    RecordId::from_bytes(id)
}

const WORDS: usize = 50;

/// Queues `pairs` record-keyword pairs: `records_per_list` postings per (patient, keyword).
fn queue(p: &mut Provider, pairs: usize, records_per_list: usize, salt: usize) {
    let keywords: Vec<String> = (0..WORDS).map(|w| format!("word{w}")).collect();
    let lists = pairs / records_per_list;
    for list in 0..lists {
        let who = patient(salt * 1_000_000 + list / WORDS);
        let kw = &keywords[list % WORDS];
        for r in 0..records_per_list {
            p.index(&who, record(list * records_per_list + r), &[kw])
                .unwrap();
        }
    }
}

fn bench_build(c: &mut Criterion) {
    let mut group = c.benchmark_group("index/build");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    let pairs = 100_000;
    group.throughput(Throughput::Elements(pairs as u64));
    for per_list in [1usize, 4, 16] {
        group.bench_function(
            BenchmarkId::new("pairs", format!("{per_list}-per-list")),
            |b| {
                b.iter_batched(
                    || {
                        let mut p = provider();
                        queue(&mut p, pairs, per_list, 0);
                        p
                    },
                    |mut p| black_box(p.finish().unwrap()),
                    BatchSize::LargeInput,
                )
            },
        );
    }
    group.finish();
}

/// `Provider::index`, one call per record with one keyword, ids and keywords made
/// beforehand: what queueing a batch costs before `finish`.
fn bench_queue(c: &mut Criterion) {
    let mut group = c.benchmark_group("index/queue");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    let pairs = 100_000;
    group.throughput(Throughput::Elements(pairs as u64));
    let keywords: Vec<String> = (0..WORDS).map(|w| format!("word{w}")).collect();
    for per_list in [1usize, 4, 16] {
        let lists = pairs / per_list;
        let patients: Vec<PatientId> = (0..lists.div_ceil(WORDS)).map(patient).collect();
        group.bench_function(
            BenchmarkId::new("pairs", format!("{per_list}-per-list")),
            |b| {
                b.iter_batched(
                    provider,
                    |mut p| {
                        for list in 0..lists {
                            for r in 0..per_list {
                                p.index(
                                    &patients[list / WORDS],
                                    record(list * per_list + r),
                                    &[&keywords[list % WORDS]],
                                )
                                .unwrap();
                            }
                        }
                        p
                    },
                    BatchSize::LargeInput,
                )
            },
        );
    }
    group.finish();
}

/// A merged cloud with about `background` pairs over `epochs` epochs, plus a target
/// patient with `n` records for keyword `r{n}`, for each n in `RESULTS`, spread over the
/// epochs.
const RESULTS: [usize; 5] = [1, 10, 100, 1000, 100_000];

fn search_cloud(epochs: u32, background: usize) -> (Cloud, Requester, PatientId) {
    let cloud = cloud();
    let mut p = provider();
    let target = patient(9_999_999);
    let per_epoch = background / epochs as usize;
    let mut next = 10_000_000usize;
    for e in 0..epochs as usize {
        queue(&mut p, per_epoch, 16, e + 1);
        for &n in &RESULTS {
            // Records of keyword r{n} go to epochs spread evenly.
            let share = (0..n).filter(|i| i * epochs as usize / n == e).count();
            for _ in 0..share {
                p.index(&target, record(next), &[format!("r{n}")]).unwrap();
                next += 1;
            }
        }
        cloud.ingest(p.finish().unwrap()).unwrap();
    }
    cloud.merge().unwrap();
    let mut requester = Requester::new();
    keys::trust(&mut requester, "bench-lab");
    requester.add_patient_key(target.clone(), p.patient_key(&target));
    (cloud, requester, target)
}

fn bench_search(c: &mut Criterion) {
    let mut group = c.benchmark_group("index/search");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(3));
    for epochs in [1u32, 64, 1024] {
        // Built on first use: criterion calls a routine only if the filter selects it,
        // so `--bench index -- build` neither waits for nor profiles these clouds.
        let world = OnceCell::new();
        let world = || {
            world.get_or_init(|| {
                let (cloud, requester, target) = search_cloud(epochs, 1_000_000);
                let manifest = cloud.manifest();
                (cloud, requester, target, manifest)
            })
        };
        for n in RESULTS {
            group.throughput(Throughput::Elements(n as u64));
            group.bench_function(
                BenchmarkId::new(format!("{epochs}-epochs"), format!("{n}-results")),
                |b| {
                    let (cloud, requester, target, manifest) = world();
                    let q = requester
                        .query(target, &[format!("r{n}")], Combine::Or, manifest)
                        .unwrap();
                    // No record is stored: every result is listed missing.
                    let answer = cloud.search(q.query()).unwrap();
                    assert_eq!(answer.providers[0].missing.len(), n);
                    b.iter(|| black_box(cloud.search(black_box(q.query())).unwrap()))
                },
            );
        }
        group.throughput(Throughput::Elements(1));
        group.bench_function(
            BenchmarkId::new(format!("{epochs}-epochs"), "build-token"),
            |b| {
                let (_, requester, target, manifest) = world();
                b.iter(|| {
                    black_box(
                        requester
                            .query(target, &["r1"], Combine::Or, manifest)
                            .unwrap(),
                    )
                })
            },
        );
    }
    group.finish();
}

/// `Requester::open` of a search's answer: checking it against the postings and
/// opening every sealed record.
fn bench_open_results(c: &mut Criterion) {
    let mut group = c.benchmark_group("index/open-results");
    group.sample_size(20);
    for (count, size, name) in ANSWERS {
        group.throughput(Throughput::Bytes((count * size) as u64));
        let world = OnceCell::new();
        group.bench_function(BenchmarkId::new("records", name), |b| {
            let (doctor, query, answer) = world.get_or_init(|| {
                let cloud = cloud();
                let (doctor, query) = records_answer(&cloud, count, size);
                let answer = cloud.search(query.query()).unwrap();
                (doctor, query, answer)
            });
            assert_eq!(doctor.open(query, answer).unwrap().record_count(), count);
            b.iter(|| black_box(doctor.open(query, black_box(answer)).unwrap()))
        });
    }
    group.finish();
}

fn bench_merge(c: &mut Criterion) {
    let mut group = c.benchmark_group("index/merge");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    let entries = 64 * 16_000;
    group.throughput(Throughput::Bytes((entries * IndexBatch::PAIR_LEN) as u64));
    // The batches are built on first use (criterion calls the routine once per
    // sample); each timed merge runs on a fresh in-memory cloud that ingested them.
    let batches = OnceCell::new();
    group.bench_function(
        BenchmarkId::new("64-segments", format!("{entries}-entries")),
        |b| {
            let batches = batches.get_or_init(|| {
                let mut p = provider();
                let batches: Vec<IndexBatch> = (0..64)
                    .map(|e| {
                        queue(&mut p, 16_000, 1, e + 1);
                        p.finish().unwrap()
                    })
                    .collect();
                assert_eq!(batches.iter().map(IndexBatch::len).sum::<usize>(), entries);
                batches
            });
            b.iter_batched(
                || {
                    let cloud = cloud();
                    for batch in batches {
                        cloud.ingest(batch.clone()).unwrap();
                    }
                    cloud
                },
                |cloud| {
                    cloud.merge().unwrap();
                    black_box(cloud)
                },
                BatchSize::PerIteration,
            )
        },
    );
    group.finish();
}

/// What a doctor waits for, verification included: the query (tokens from the
/// provider's signed log, its head already verified and cached), the cloud's search,
/// and the requester's checks and decryption of the answer. One provider, 64 epochs of
/// 1,000 background postings each; the target patient's records are stored and sealed
/// (2 KiB notes), one in epoch 31 for `1-result`, 1,000 spread over the epochs for
/// `1000-results`.
fn bench_verified_search(c: &mut Criterion) {
    let mut group = c.benchmark_group("index/verified-search");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4));
    for results in [1usize, 1000] {
        let world = OnceCell::new();
        group.throughput(Throughput::Elements(results as u64));
        group.bench_function(
            BenchmarkId::new("64-epochs", format!("{results}-results")),
            |b| {
                let (cloud, doctor, target) = world.get_or_init(|| {
                    let cloud = cloud();
                    let mut p = provider();
                    let target = patient(9_999_999);
                    let note = vec![b'n'; 2048];
                    for e in 0..64usize {
                        queue(&mut p, 1_000, 4, e + 1);
                        let mine = if results == 1 {
                            usize::from(e == 31)
                        } else {
                            (0..results).filter(|i| i * 64 / results == e).count()
                        };
                        let sealed: Vec<Vec<u8>> = (0..mine)
                            .map(|_| p.add_record(&target, &note, &["needle"]).unwrap().bytes)
                            .collect();
                        cloud.ingest(p.finish().unwrap()).unwrap();
                        for bytes in sealed {
                            cloud.put_record(bytes).unwrap();
                        }
                    }
                    cloud.merge().unwrap();
                    let mut doctor = Requester::new();
                    keys::trust(&mut doctor, "bench-lab");
                    doctor.add_patient_key(target.clone(), p.patient_key(&target));
                    (cloud, doctor, target)
                });
                let run = || {
                    let q = doctor
                        .query(target, &["needle"], Combine::Or, &cloud.manifest())
                        .unwrap();
                    doctor.open(&q, &cloud.search(q.query()).unwrap()).unwrap()
                };
                // The first run verifies the head's signature; the timed ones use the cache.
                assert_eq!(run().record_count(), results);
                b.iter(|| black_box(run()))
            },
        );
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_build,
    bench_queue,
    bench_search,
    bench_open_results,
    bench_verified_search,
    bench_merge
);
criterion_main!(benches);
