//! Seal and open throughput of medvault's record format (STREAM over AES-256-EAX), with
//! OpenSSL's AES-256-GCM measured in the same run as the yardstick.
//!
//! `cargo bench --bench seal`

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::io::{Read, Write};

use aes::Aes256;
use cipher::consts::U16;
use cipher::{
    Array, BlockCipherEncrypt, InnerIvInit, KeyInit, StreamCipher, StreamCipherCoreWrapper,
};
use ctr::{CtrCore, flavors::Ctr128BE};

use medvault::{
    MasterKey, Opener, PatientId, ProviderId, RecordId, Sealer, open, open_into, seal, seal_into,
    sealed_len,
};
use openssl::symm::{Cipher, Crypter, Mode, decrypt_aead, encrypt_aead};

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
    // The "1-thread" rows run criterion's whole timing loop on this pool's one worker,
    // so what they measure is the one-thread path, not a hand-off to the pool per call
    // (which cost about 15 % at 1 MiB).
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let gcm = Cipher::aes_256_gcm();
    let (key, iv) = ([7u8; 32], [9u8; 12]);
    let mut group = c.benchmark_group("seal");
    for (size, name) in sizes() {
        let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        let sealed = seal(&record, &data).unwrap();
        let mut tag = [0u8; 16];
        let gcm_sealed = encrypt_aead(gcm, &key, Some(&iv), b"", &data, &mut tag).unwrap();
        if size >= 64 << 20 {
            group
                .sample_size(10)
                .measurement_time(Duration::from_secs(10));
        }
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("seal", name), &data, |b, data| {
            b.iter(|| seal(&record, black_box(data)).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("seal-1-thread", name), &data, |b, data| {
            one_thread.install(|| b.iter(|| seal(&record, black_box(data)).unwrap()))
        });
        group.bench_with_input(
            BenchmarkId::new("openssl-aes256gcm-seal", name),
            &data,
            |b, data| {
                b.iter(|| {
                    let mut tag = [0u8; 16];
                    encrypt_aead(gcm, &key, Some(&iv), b"", black_box(data), &mut tag).unwrap()
                })
            },
        );
        // Into a buffer the caller keeps (no fresh pages to fault in), on both sides.
        let mut buffer = vec![0u8; sealed_len(&record, size).unwrap() + 16];
        group.bench_with_input(BenchmarkId::new("seal-into", name), &data, |b, data| {
            b.iter(|| seal_into(&record, black_box(data), &mut buffer).unwrap())
        });
        group.bench_with_input(
            BenchmarkId::new("seal-into-1-thread", name),
            &data,
            |b, data| {
                one_thread.install(|| {
                    b.iter(|| seal_into(&record, black_box(data), &mut buffer).unwrap())
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("openssl-aes256gcm-seal-into", name),
            &data,
            |b, data| {
                b.iter(|| {
                    let mut crypter = Crypter::new(gcm, Mode::Encrypt, &key, Some(&iv)).unwrap();
                    let n = crypter.update(black_box(data), &mut buffer).unwrap();
                    let n = n + crypter.finalize(&mut buffer[n..]).unwrap();
                    let mut tag = [0u8; 16];
                    crypter.get_tag(&mut tag).unwrap();
                    (n, tag)
                })
            },
        );
        // The ceiling for the rows above: AES-256 alone over the same bytes, in place, on
        // one thread, through the `aes` crate medvault builds on. EAX runs AES twice per
        // block (CTR and the MAC), so one-thread sealing cannot beat half this rate.
        group.bench_with_input(
            BenchmarkId::new("aes256-blocks-1-thread", name),
            &data,
            |b, data| {
                let aes = Aes256::new(&[3u8; 32].into());
                let mut blocks_buffer = data.clone();
                b.iter(|| {
                    let (blocks, _) =
                        Array::<u8, U16>::slice_as_chunks_mut(black_box(&mut blocks_buffer));
                    aes.encrypt_blocks(blocks);
                })
            },
        );
        // The first of EAX's two passes alone: CTR through the `ctr` crate, as medvault
        // runs it, from the plaintext into the caller's buffer. What it costs above the
        // AES-alone row is counter blocks and the XOR, which `aes`'s API does not fuse.
        group.bench_with_input(BenchmarkId::new("ctr-1-thread", name), &data, |b, data| {
            let aes = Aes256::new(&[3u8; 32].into());
            let out = &mut buffer[..data.len()];
            b.iter(|| {
                let core =
                    CtrCore::<Aes256, Ctr128BE>::inner_iv_init(aes.clone(), &[5u8; 16].into());
                StreamCipherCoreWrapper::from_core(core).apply_keystream_b2b(black_box(data), out)
            })
        });
        group.bench_with_input(BenchmarkId::new("open-into", name), &sealed, |b, sealed| {
            b.iter(|| open_into(&record, black_box(sealed), &mut buffer).unwrap())
        });
        group.bench_with_input(
            BenchmarkId::new("open-into-1-thread", name),
            &sealed,
            |b, sealed| {
                one_thread.install(|| {
                    b.iter(|| open_into(&record, black_box(sealed), &mut buffer).unwrap())
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("openssl-aes256gcm-open-into", name),
            &gcm_sealed,
            |b, ct| {
                b.iter(|| {
                    let mut crypter = Crypter::new(gcm, Mode::Decrypt, &key, Some(&iv)).unwrap();
                    crypter.set_tag(&tag).unwrap();
                    let n = crypter.update(black_box(ct), &mut buffer).unwrap();
                    n + crypter.finalize(&mut buffer[n..]).unwrap()
                })
            },
        );
        group.bench_with_input(BenchmarkId::new("open", name), &sealed, |b, sealed| {
            b.iter(|| open(&record, black_box(sealed)).unwrap())
        });
        group.bench_with_input(
            BenchmarkId::new("open-1-thread", name),
            &sealed,
            |b, sealed| one_thread.install(|| b.iter(|| open(&record, black_box(sealed)).unwrap())),
        );
        // The streaming API, one chunk at a time in constant memory (no output buffer:
        // the sealed bytes go to a sink, the opened ones through a 64 KiB buffer).
        group.bench_with_input(BenchmarkId::new("stream-seal", name), &data, |b, data| {
            b.iter(|| {
                let mut sealer = Sealer::new(std::io::sink(), &record).unwrap();
                sealer.write_all(black_box(data)).unwrap();
                sealer.finish().unwrap()
            })
        });
        group.bench_with_input(
            BenchmarkId::new("stream-open", name),
            &sealed,
            |b, sealed| {
                let mut buf = vec![0u8; 64 << 10];
                b.iter(|| {
                    let mut opener = Opener::new(black_box(&sealed[..]), &record).unwrap();
                    let mut total = 0;
                    loop {
                        let n = opener.read(&mut buf).unwrap();
                        if n == 0 {
                            break total;
                        }
                        total += n;
                    }
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("openssl-aes256gcm-open", name),
            &gcm_sealed,
            |b, ct| {
                b.iter(|| decrypt_aead(gcm, &key, Some(&iv), b"", black_box(ct), &tag).unwrap())
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench_seal);
criterion_main!(benches);
