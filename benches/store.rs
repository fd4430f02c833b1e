//! The stores side by side: ingest rate, search latency (p50 / p99 printed beside
//! criterion's estimate) and merge throughput at 10^6 and 10^7 entries, searches whose
//! answers carry many stored records, and a 100 MB record up and down. The directory
//! store always; with `--features postgres` the PostgreSQL store too (rows `pg…`), on
//! the server `MEDVAULT_TEST_PG` names or a throwaway cluster the bench starts, and a
//! plain binary `COPY` of the same rows into the same table as the ingest baseline.
//!
//! `cargo bench --bench store [--features postgres]`. The 10^8 run is
//! `examples/store_scale.rs`.

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

#[cfg(feature = "postgres")]
#[path = "../tests/common/postgres.rs"]
mod pg;

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
        #[cfg(feature = "postgres")]
        if entries <= 1_000_000 {
            on_postgres::bench_ingest(&mut group, entries, name, &mut built);
        }
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
            #[cfg(feature = "postgres")]
            if merged {
                on_postgres::bench_search(&mut group, entries, &id);
            }
        }
    }
    group.finish();
}

/// A 100 MB sealed record (a large DICOM study) stored and read back, streamed.
fn bench_record_100mb(c: &mut Criterion) {
    const SIZE: usize = 100_000_000;
    let mut group = c.benchmark_group("store/record-100MB");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(SIZE as u64));
    let dir = tempfile::tempdir().unwrap();
    let cloud = open(dir.path());
    record_rows(&mut group, "dir", &cloud, SIZE);
    #[cfg(feature = "postgres")]
    {
        let database = pg::shared().fresh_database();
        let cloud = on_postgres::cloud(&database);
        record_rows(&mut group, "pg", &cloud, SIZE);
        drop(cloud);
        on_postgres::bench_copy_record(&mut group, &database, SIZE);
        pg::drop_database(pg::shared(), &database);
    }
    group.finish();
}

/// `<store>-up` (a fresh record each iteration, sealed and committed untimed) and
/// `<store>-down` rows for `cloud`.
fn record_rows(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    store: &str,
    cloud: &Cloud,
    size: usize,
) {
    let mut owner = padding_provider("bench-lab", 9, 0);
    let patient = medvault::PatientId::new("+15550142").unwrap();
    let image: Vec<u8> = (0..size).map(|i| (i * 31 + i / 4093) as u8).collect();
    let provider = medvault::ProviderId::new("bench-lab").unwrap();
    let mut last = None;
    group.bench_function(BenchmarkId::new(format!("{store}-up"), "100MB"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let sealed = owner.add_record(&patient, &image, &["ct"]).unwrap();
                cloud.ingest(owner.finish().unwrap()).unwrap();
                let start = Instant::now();
                cloud.put_record_from(sealed.bytes.as_slice()).unwrap();
                total += start.elapsed();
                last = Some(sealed.id);
            }
            total
        });
    });
    group.bench_function(BenchmarkId::new(format!("{store}-down"), "100MB"), |b| {
        // The record the last upload stored; one more if the filter left `-up` out.
        let id = *last.get_or_insert_with(|| {
            let sealed = owner.add_record(&patient, &image, &["ct"]).unwrap();
            cloud.ingest(owner.finish().unwrap()).unwrap();
            cloud.put_record_from(sealed.bytes.as_slice()).unwrap();
            sealed.id
        });
        b.iter(|| {
            let mut reader = cloud.record_reader(&provider, id).unwrap().unwrap();
            let read = std::io::copy(&mut reader, &mut std::io::sink()).unwrap();
            assert!(read > size as u64);
        });
    });
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
    bench_merge,
    bench_record_100mb
);

/// The PostgreSQL store's rows, beside the directory store's.
#[cfg(feature = "postgres")]
mod on_postgres {
    use super::*;
    use ::postgres::types::{ToSql, Type};
    use criterion::BenchmarkGroup;
    use criterion::measurement::WallTime;

    /// A cloud on the PostgreSQL store in `database`, knowing the fixture's providers.
    pub fn cloud(database: &str) -> Cloud {
        store_fixture::register_providers(Cloud::from(medvault::PgStore::open(database).unwrap()))
    }

    /// One index row as the store writes it: label, provider, epoch, value.
    type Row = (uuid::Uuid, String, i32, Vec<u8>);

    /// `pg/<n>`: the same batches as the directory store's row, into a fresh
    /// database each iteration; `pg-copy/<n>`: the same rows, one binary `COPY` per
    /// batch, each in its own transaction, into the same table (the store's DDL) in a
    /// fresh database: the ingest's floor.
    pub fn bench_ingest(
        group: &mut BenchmarkGroup<'_, WallTime>,
        entries: u64,
        name: &str,
        built: &mut Option<Vec<Vec<u8>>>,
    ) {
        let server = pg::shared();
        let mut rows: Vec<Vec<Row>> = Vec::new();
        group.bench_function(BenchmarkId::new("pg", name), |b| {
            let batches = built.get_or_insert_with(|| random_batches(entries, 16));
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let database = server.fresh_database();
                    let cloud = cloud(&database);
                    let start = Instant::now();
                    for batch in batches.iter() {
                        cloud.ingest_bytes(batch).unwrap();
                    }
                    total += start.elapsed();
                    drop(cloud);
                    if rows.is_empty() {
                        rows = stored_rows(&database);
                    }
                    pg::drop_database(server, &database);
                }
                total
            });
        });
        if rows.is_empty() {
            return; // the filter left the `pg` row out
        }
        group.bench_function(BenchmarkId::new("pg-copy", name), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let database = server.fresh_database();
                    let mut client =
                        ::postgres::Client::connect(&database, ::postgres::NoTls).unwrap();
                    client
                        .batch_execute(
                            "CREATE TABLE medvault_entries (
                                 label uuid NOT NULL, provider text NOT NULL,
                                 epoch integer NOT NULL, value bytea NOT NULL,
                                 PRIMARY KEY (label, provider))",
                        )
                        .unwrap();
                    let start = Instant::now();
                    for batch in &rows {
                        let mut tx = client.transaction().unwrap();
                        let sink = tx
                            .copy_in(
                                "COPY medvault_entries (label, provider, epoch, value)
                                 FROM STDIN (FORMAT binary)",
                            )
                            .unwrap();
                        let mut writer = ::postgres::binary_copy::BinaryCopyInWriter::new(
                            sink,
                            &[Type::UUID, Type::TEXT, Type::INT4, Type::BYTEA],
                        );
                        for (label, provider, epoch, value) in batch {
                            let row: [&(dyn ToSql + Sync); 4] = [label, provider, epoch, value];
                            writer.write(&row).unwrap();
                        }
                        writer.finish().unwrap();
                        tx.commit().unwrap();
                    }
                    total += start.elapsed();
                    drop(client);
                    pg::drop_database(server, &database);
                }
                total
            });
        });
    }

    /// `pg-copy-up`: the floor of a record upload on this server: the same bytes in
    /// 1 MiB rows, one binary `COPY` in one transaction, into a table shaped like the
    /// store's, without hashing or checking anything.
    pub fn bench_copy_record(
        group: &mut BenchmarkGroup<'_, WallTime>,
        database: &str,
        size: usize,
    ) {
        let mut client = ::postgres::Client::connect(database, ::postgres::NoTls).unwrap();
        client
            .batch_execute(
                "CREATE TABLE copy_chunks (
                     provider text NOT NULL, record bytea NOT NULL, chunk integer NOT NULL,
                     crc bigint NOT NULL, bytes bytea NOT NULL,
                     PRIMARY KEY (provider, record, chunk));
                 ALTER TABLE copy_chunks ALTER COLUMN bytes SET STORAGE EXTERNAL;",
            )
            .unwrap();
        let bytes: Vec<u8> = (0..size).map(|i| (i * 31 + i / 4093) as u8).collect();
        let mut n = 0u32;
        group.bench_function(BenchmarkId::new("pg-copy-up", "100MB"), |b| {
            b.iter(|| {
                n += 1;
                let record = n.to_be_bytes().to_vec();
                let mut tx = client.transaction().unwrap();
                let sink = tx
                    .copy_in(
                        "COPY copy_chunks (provider, record, chunk, crc, bytes)
                         FROM STDIN (FORMAT binary)",
                    )
                    .unwrap();
                let mut writer = ::postgres::binary_copy::BinaryCopyInWriter::new(
                    sink,
                    &[Type::TEXT, Type::BYTEA, Type::INT4, Type::INT8, Type::BYTEA],
                );
                for (chunk, piece) in bytes.chunks(1 << 20).enumerate() {
                    let row: [&(dyn ToSql + Sync); 5] =
                        [&"bench-lab", &record, &(chunk as i32), &0i64, &piece];
                    writer.write(&row).unwrap();
                }
                writer.finish().unwrap();
                tx.commit().unwrap();
            });
        });
    }

    /// The entries the store wrote, by epoch (one batch each).
    fn stored_rows(database: &str) -> Vec<Vec<Row>> {
        let mut client = ::postgres::Client::connect(database, ::postgres::NoTls).unwrap();
        let mut by_epoch: Vec<Vec<Row>> = Vec::new();
        for row in client
            .query(
                "SELECT label, provider, epoch, value FROM medvault_entries",
                &[],
            )
            .unwrap()
        {
            let epoch: i32 = row.get(2);
            if by_epoch.len() <= epoch as usize {
                by_epoch.resize(epoch as usize + 1, Vec::new());
            }
            by_epoch[epoch as usize].push((row.get(0), row.get(1), epoch, row.get(3)));
        }
        by_epoch
    }

    /// `pg-<n>-merged`: the same fixture as the directory store's row (256 epochs, 10
    /// results), on PostgreSQL, `ANALYZE`d every 64 epochs.
    pub fn bench_search(group: &mut BenchmarkGroup<'_, WallTime>, entries: u64, id: &str) {
        let id = format!("pg-{id}");
        let mut built: Option<(String, StoreFixture)> = None;
        group.bench_function(BenchmarkId::new("entries", &id), |b| {
            let (_, fixture) = built.get_or_insert_with(|| {
                let database = pg::shared().fresh_database();
                let fixture =
                    store_fixture::build_on(cloud(&database), entries, 256, 10, 64, |_| {});
                let (p50, p99) = search_latency(&fixture, 2_000, 10);
                println!("\n{id}: p50 {p50:.0} µs, p99 {p99:.0} µs (2,000 searches)");
                (database, fixture)
            });
            let prepared = fixture.needle_query();
            b.iter(|| black_box(fixture.cloud.search(black_box(prepared.query())).unwrap()));
        });
        if let Some((database, fixture)) = built {
            drop(fixture);
            pg::drop_database(pg::shared(), &database);
        }
    }
}
criterion_main!(benches);
