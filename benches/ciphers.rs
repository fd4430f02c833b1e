//! The paper's comparison: AES-128/256, DES, 3DES and Blowfish (CBC, PBE), chunked RSA
//! and medvault's sealing, on text and image files of 1, 10 and 100 MB, each beside
//! the same operation through OpenSSL in the same run.
//!
//! `cargo bench --features lab --bench ciphers` (long: 100 MB of 3DES takes seconds per iteration and
//! criterion takes at least ten). Filter with e.g. `-- des-cbc/` or `-- /1MB`. RSA runs
//! at 1 MB here; `examples/cipher_report.rs` measures 10 and 100 MB once.

use std::cell::OnceCell;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use medvault::lab::LabCipher;

#[path = "common/paper.rs"]
mod paper;
use paper::{Algorithm, Kind, MB, Runner, SIZES_MB, cross_check, input};

fn bench_algorithm(c: &mut Criterion, algorithm: Algorithm) {
    let mut group = c.benchmark_group(format!("ciphers/{}", algorithm.id()));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let sizes: &[usize] = match algorithm {
        Algorithm::RsaChunked(_) => &[1],
        _ => &SIZES_MB,
    };
    // Inputs, ciphertexts and keys are made on first use, so a filtered run does not
    // pay for the 100 MB cases it skips.
    let runner = OnceCell::new();
    let runner = || runner.get_or_init(|| Runner::new(algorithm));
    for kind in Kind::ALL {
        for &mb in sizes {
            let data = OnceCell::new();
            let data = || {
                data.get_or_init(|| {
                    let data = input(kind, mb * MB);
                    cross_check(runner(), &data[..4096]);
                    data
                })
            };
            let ours = OnceCell::new();
            let ours = || ours.get_or_init(|| runner().encrypt(data()));
            let theirs = OnceCell::new();
            let theirs = || theirs.get_or_init(|| runner().openssl_encrypt(data()));
            let case = format!("{}/{mb}MB", kind.name());
            group.throughput(Throughput::Bytes((mb * MB) as u64));
            group.bench_function(BenchmarkId::new("medvault-encrypt", &case), |b| {
                let (runner, data) = (runner(), data());
                b.iter(|| black_box(runner.encrypt(black_box(data))))
            });
            group.bench_function(BenchmarkId::new("openssl-encrypt", &case), |b| {
                let (runner, data) = (runner(), data());
                b.iter(|| black_box(runner.openssl_encrypt(black_box(data))))
            });
            group.bench_function(BenchmarkId::new("medvault-decrypt", &case), |b| {
                let (runner, ours) = (runner(), ours());
                b.iter(|| black_box(runner.decrypt(black_box(ours))))
            });
            group.bench_function(BenchmarkId::new("openssl-decrypt", &case), |b| {
                let (runner, theirs) = (runner(), theirs());
                b.iter(|| black_box(runner.openssl_decrypt(black_box(theirs))))
            });
        }
    }
    group.finish();
}

fn bench_ciphers(c: &mut Criterion) {
    for algorithm in Algorithm::all() {
        bench_algorithm(c, algorithm);
    }
}

/// PBE key derivation (PBKDF2-HMAC-SHA256, 10,000 iterations, `openssl enc`'s
/// default), measured apart from the ciphers.
fn bench_pbe_derivation(c: &mut Criterion) {
    let mut group = c.benchmark_group("ciphers/pbe-key-derivation");
    group.sample_size(10);
    for cipher in [LabCipher::Aes256Cbc, LabCipher::TripleDesCbc] {
        group.bench_function(BenchmarkId::new("medvault", cipher.openssl_name()), |b| {
            b.iter(|| black_box(paper::derive_pbe(cipher)))
        });
        group.bench_function(BenchmarkId::new("openssl", cipher.openssl_name()), |b| {
            b.iter(|| black_box(paper::openssl_pbe_key(cipher)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_pbe_derivation, bench_ciphers);
criterion_main!(benches);
