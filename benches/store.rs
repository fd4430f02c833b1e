//! The directory store on disk: ingest rate, search latency (p50 / p99 printed beside
//! criterion's estimate) and merge throughput at 10^6 and 10^7 entries, and searches
//! whose answers carry many stored records.
//!
//! `cargo bench --bench store`. The 10^8 run is `examples/store_scale.rs`.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use medvault::{Cloud, PreparedQuery};

#[path = "common/answer_fixture.rs"]
mod answer_fixture;
#[path = "common/keys.rs"]
mod keys;
#[path = "common/store_fixture.rs"]
mod store_fixture;
use answer_fixture::{ANSWERS, records_answer};
use store_fixture::{StoreFixture, build, open, padding_provider, search_latency};

/// `count` signed batches of random entries summing to `entries`, as MVIB bytes.
fn random_batches(entries: u64, count: u32) -> Vec<Vec<u8>> {
    let mut owner = padding_provider("bench-lab", 3, (entries / u64::from(count)) as usize);
    (0..count)
        .map(|_| owner.finish().unwrap().to_bytes())
        .collect()
}

/// Hard-links a store's files into a fresh directory (segments are immutable), so
/// each merge iteration starts from the same unmerged store without copying it.
fn link_copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            link_copy(&entry.path(), &target);
        } else if entry.file_name() == "CATALOG" {
            std::fs::copy(entry.path(), target).unwrap();
        } else if entry.file_name() != "LOCK" {
            std::fs::hard_link(entry.path(), target).unwrap();
        }
    }
}

const SIZES: [(u64, &str); 2] = [(1_000_000, "1e6"), (10_000_000, "1e7")];

fn bench_ingest(c: &mut Criterion) {
    let mut group = c.benchmark_group("store/ingest");
    group.sample_size(10);
    for (entries, name) in SIZES {
        group.throughput(Throughput::Elements(entries));
        let mut built: Option<Vec<Vec<u8>>> = None;
        group.bench_function(BenchmarkId::new("entries", name), |b| {
            let batches = built.get_or_insert_with(|| random_batches(entries, 16));
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let dir = tempfile::tempdir().unwrap();
                    let cloud = open(dir.path());
                    let start = Instant::now();
                    for batch in batches.iter() {
                        cloud.ingest_bytes(batch).unwrap();
                    }
                    total += start.elapsed();
                }
                total
            });
        });
    }
    group.finish();
}

fn bench_search(c: &mut Criterion) {
    let mut group = c.benchmark_group("store/search-10-results-256-epochs");
    group.sample_size(50);
    for (entries, name) in SIZES {
        for merged in [true, false] {
            if entries > 1_000_000 && !merged {
                continue; // 256 unmerged segments of 10^7 take minutes to ingest-check
            }
            let id = format!("{name}-{}", if merged { "merged" } else { "256-segments" });
            // criterion calls the closure more than once: build on the first call only
            // (and only if the filter selects this benchmark).
            let mut built: Option<(tempfile::TempDir, StoreFixture)> = None;
            group.bench_function(BenchmarkId::new("entries", &id), |b| {
                let (_, fixture) = built.get_or_insert_with(|| {
                    let dir = tempfile::tempdir().unwrap();
                    let merge_every = if merged { 64 } else { 0 };
                    let fixture = build(dir.path(), entries, 256, 10, merge_every, |_| {});
                    let (p50, p99) = search_latency(&fixture, 2_000, 10);
                    println!("\n{id}: p50 {p50:.0} µs, p99 {p99:.0} µs (2,000 searches)");
                    (dir, fixture)
                });
                let prepared = fixture.needle_query();
                b.iter(|| black_box(fixture.cloud.search(black_box(prepared.query())).unwrap()));
            });
        }
    }
    group.finish();
}

/// A search whose answer carries many sealed records, read back from their files
/// (warm page cache).
fn bench_search_records(c: &mut Criterion) {
    let mut group = c.benchmark_group("store/search-records");
    group.sample_size(20);
    for (count, size, name) in ANSWERS {
        group.throughput(Throughput::Bytes((count * size) as u64));
        let mut built: Option<(tempfile::TempDir, Cloud, PreparedQuery)> = None;
        group.bench_function(BenchmarkId::new("records", name), |b| {
            let (_, cloud, query) = built.get_or_insert_with(|| {
                let dir = tempfile::tempdir().unwrap();
                let cloud = open(dir.path());
                let (_, query) = records_answer(&cloud, count, size);
                (dir, cloud, query)
            });
            b.iter(|| black_box(cloud.search(black_box(query.query())).unwrap()));
        });
    }
    group.finish();
}

fn bench_merge(c: &mut Criterion) {
    let mut group = c.benchmark_group("store/merge");
    group.sample_size(10);
    for (entries, name) in SIZES {
        group.throughput(Throughput::Bytes(
            entries * medvault::IndexBatch::PAIR_LEN as u64,
        ));
        let mut built: Option<tempfile::TempDir> = None;
        group.bench_function(BenchmarkId::new("16-segments", name), |b| {
            let base = built.get_or_insert_with(|| {
                let base = tempfile::tempdir().unwrap();
                let cloud = open(base.path());
                for batch in random_batches(entries, 16) {
                    cloud.ingest_bytes(&batch).unwrap();
                }
                base
            });
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let scratch = tempfile::tempdir().unwrap();
                    link_copy(base.path(), scratch.path());
                    let cloud = open(scratch.path());
                    let start = Instant::now();
                    cloud.merge().unwrap();
                    total += start.elapsed();
                    assert_eq!(cloud.manifest().segments.len(), 1);
                }
                total
            });
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_ingest,
    bench_search,
    bench_search_records,
    bench_merge
);
criterion_main!(benches);
