//! Seal and open throughput of medvault's record format (STREAM over AES-256-EAX).
//!
//! `cargo bench --bench seal`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use medvault::{MasterKey, PatientId, ProviderId, RecordId, open, seal};
use std::hint::black_box;
use std::time::Duration;

fn sizes() -> [(usize, &'static str); 4] {
    [
        (1 << 10, "1KiB"),
        (64 << 10, "64KiB"),
        (1 << 20, "1MiB"),
        (64 << 20, "64MiB"),
    ]
}

fn bench_seal(c: &mut Criterion) {
    let master = MasterKey::from_bytes([1; 32]);
    let patient = master.patient_key(
        &ProviderId::new("bench-hospital").unwrap(),
        &PatientId::new("+15550100").unwrap(),
        0,
    );
    let record = patient.record_key(RecordId::from_bytes([2; 16]));
    let mut group = c.benchmark_group("seal");
    for (size, name) in sizes() {
        let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        let sealed = seal(&record, &data).unwrap();
        if size >= 64 << 20 {
            group
                .sample_size(10)
                .measurement_time(Duration::from_secs(10));
        }
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("seal", name), &data, |b, data| {
            b.iter(|| seal(&record, black_box(data)).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("open", name), &sealed, |b, sealed| {
            b.iter(|| open(&record, black_box(sealed)).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench_seal);
criterion_main!(benches);
