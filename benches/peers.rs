//! medvault's sealed records beside what a user would seal the same records with
//! instead, in one run, each side paying its own per-record key setup:
//!
//! - `medvault`: the record key derived from the patient key (`K(p,u)` → `D` → `R`, two
//!   SP 800-108 derivations), then `seal`; `open` derives it again from the patient key.
//! - `openssl-gcm`: OpenSSL AES-256-GCM under a fresh key per record, with a random
//!   96-bit nonce; the key is at hand, so only OpenSSL's key setup is per record.
//! - `openssl-gcm-hkdf`: the same, the key derived per record as medvault derives one
//!   (HKDF-SHA-256 from a master key with the record id as info, through OpenSSL's EVP
//!   interface).
//! - `mongodb-cbc-hmac`: MongoDB client-side encryption's
//!   `AEAD_AES_256_CBC_HMAC_SHA_512` (draft-mcgrew-aead-aes-cbc-hmac-sha2 with a
//!   random IV): AES-256-CBC then HMAC-SHA-512 cut to 32 bytes over
//!   `AD ‖ IV ‖ C ‖ len(AD)`, built from OpenSSL's primitives, both keyed per record (a
//!   data key from the key vault is reused across records, so the setup is the two
//!   contexts).
//! - `age`: the `age` crate to an X25519 recipient, as `age -r` seals a file: one X25519
//!   agreement and HKDF per file, then ChaCha20-Poly1305 STREAM in 64 KiB chunks.
//! - `aws-esdk`: the AWS Encryption SDK's default suite
//!   (`AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384`) with a raw AES keyring, built
//!   from OpenSSL's primitives: a fresh data key wrapped by AES-256-GCM, HKDF-SHA-512
//!   for the message key and the key commitment, a header authenticated by GCM, 4 KiB
//!   frames under GCM, and a fresh ECDSA P-384 key per message signing SHA-384 of it.
//!
//! Every row seals (or opens) 1 KiB, 64 KiB, 1 MiB, 64 MiB and a 100 MB file, on one
//! thread (`1-thread`: medvault inside a one-thread pool, so it cannot split a record
//! across cores) and on every core (`all-cores`: one record per core at once, so the
//! throughput counts every core's record). The peers' openings are checked once against
//! the plaintext, so a row cannot time a failure.
//!
//! `cargo bench --bench peers`; `scripts/performance_md.py` puts the rows side by side
//! in `docs/performance.md`.

use std::hint::black_box;
use std::io::{Read, Write};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use openssl::bn::BigNumContext;
use openssl::cipher::Cipher as CtxCipher;
use openssl::cipher_ctx::CipherCtx;
use openssl::ec::{EcGroup, EcKey, PointConversionForm};
use openssl::ecdsa::EcdsaSig;
use openssl::hash::{Hasher, MessageDigest};
use openssl::md::Md;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rand::rand_bytes;
use openssl::sign::Signer;
use openssl::symm::{Cipher, Crypter, Mode, decrypt_aead, encrypt_aead};
use rayon::ThreadPool;

use aes::Aes256Enc;
use cipher::consts::U16;
use cipher::{
    Array, BlockCipherEncBackend, BlockCipherEncClosure, BlockCipherEncrypt, BlockSizeUser, KeyInit,
};

use medvault::{MasterKey, PatientId, PatientKey, ProviderId, RecordId, open, seal};

fn sizes() -> [(usize, &'static str); 5] {
    [
        (1 << 10, "1KiB"),
        (64 << 10, "64KiB"),
        (1 << 20, "1MiB"),
        (64 << 20, "64MiB"),
        (100_000_000, "100MB"),
    ]
}

/// A sealing scheme under test: seals one record with its own key setup, and opens one.
trait Scheme: Sync {
    fn name(&self) -> &'static str;
    fn seal(&self, plaintext: &[u8]) -> Vec<u8>;
    fn open(&self, sealed: &[u8]) -> Vec<u8>;
}

/// A fresh record id per sealed record, so every seal derives a key of its own.
fn next_record_id() -> [u8; 16] {
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let mut id = [0u8; 16];
    id[8..].copy_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    id
}

struct Medvault {
    patient: PatientKey,
}

impl Scheme for Medvault {
    fn name(&self) -> &'static str {
        "medvault"
    }
    fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let key = self
            .patient
            .record_key(RecordId::from_bytes(next_record_id()));
        seal(&key, plaintext).unwrap()
    }
    fn open(&self, sealed: &[u8]) -> Vec<u8> {
        open(&self.patient, sealed).unwrap()
    }
}

/// HKDF (RFC 5869) with OpenSSL: `length` bytes from `key`, `salt` and `info`.
fn hkdf(md: &openssl::md::MdRef, key: &[u8], salt: &[u8], info: &[u8], out: &mut [u8]) {
    let mut ctx = PkeyCtx::new_id(Id::HKDF).unwrap();
    ctx.derive_init().unwrap();
    ctx.set_hkdf_md(md).unwrap();
    ctx.set_hkdf_key(key).unwrap();
    if !salt.is_empty() {
        ctx.set_hkdf_salt(salt).unwrap();
    }
    ctx.add_hkdf_info(info).unwrap();
    ctx.derive(Some(out)).unwrap();
}

/// `record id (16) ‖ nonce (12) ‖ ciphertext ‖ tag (16)`, under a key of its own per
/// record: with `derive`, HKDF-SHA-256 of a master key through OpenSSL's EVP interface
/// (what an OpenSSL user pays to derive it); without, the key is at hand and only
/// OpenSSL's key setup is per record (the yardstick of the 1 KiB target).
struct OpensslGcm {
    master: [u8; 32],
    derive: bool,
}

impl OpensslGcm {
    fn record_key(&self, id: &[u8]) -> [u8; 32] {
        let mut key = self.master;
        if self.derive {
            hkdf(Md::sha256(), &self.master, b"", id, &mut key);
        } else {
            // A different key each record all the same, so no cache can help.
            key[..16].copy_from_slice(id);
        }
        key
    }
}

impl Scheme for OpensslGcm {
    fn name(&self) -> &'static str {
        if self.derive {
            "openssl-gcm-hkdf"
        } else {
            "openssl-gcm"
        }
    }
    fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let id = next_record_id();
        let key = self.record_key(&id);
        let mut nonce = [0u8; 12];
        if self.derive {
            // A derived key may repeat (a record sealed again under its id): a random
            // nonce. A key used once could take a fixed nonce, and does, which favours
            // OpenSSL.
            rand_bytes(&mut nonce).unwrap();
        }
        let mut out = vec![0u8; 16 + 12 + plaintext.len() + 16 + 16];
        out[..16].copy_from_slice(&id);
        out[16..28].copy_from_slice(&nonce);
        let mut crypter =
            Crypter::new(Cipher::aes_256_gcm(), Mode::Encrypt, &key, Some(&nonce)).unwrap();
        crypter.aad_update(&id).unwrap();
        let n = crypter.update(plaintext, &mut out[28..]).unwrap();
        let n = n + crypter.finalize(&mut out[28 + n..]).unwrap();
        let mut tag = [0u8; 16];
        crypter.get_tag(&mut tag).unwrap();
        out.truncate(28 + n);
        out.extend_from_slice(&tag);
        out
    }
    fn open(&self, sealed: &[u8]) -> Vec<u8> {
        let (id, rest) = sealed.split_at(16);
        let (nonce, rest) = rest.split_at(12);
        let (ciphertext, tag) = rest.split_at(rest.len() - 16);
        let key = self.record_key(id);
        decrypt_aead(
            Cipher::aes_256_gcm(),
            &key,
            Some(nonce),
            id,
            ciphertext,
            tag,
        )
        .unwrap()
    }
}

/// `IV (16) ‖ AES-256-CBC(PKCS#7) ‖ HMAC-SHA-512(…)[..32]`, the associated data being
/// the record id (not stored: the caller knows which record it asked for).
struct MongoCbcHmac {
    mac_key: [u8; 32],
    enc_key: [u8; 32],
}

const MONGO_AD: &[u8] = b"record-0000000001";

impl MongoCbcHmac {
    fn tag(&self, iv_and_ciphertext: &[u8]) -> [u8; 32] {
        let key = PKey::hmac(&self.mac_key).unwrap();
        let mut signer = Signer::new(MessageDigest::sha512(), &key).unwrap();
        signer.update(MONGO_AD).unwrap();
        signer.update(iv_and_ciphertext).unwrap();
        signer
            .update(&((MONGO_AD.len() as u64) * 8).to_be_bytes())
            .unwrap();
        let full = signer.sign_to_vec().unwrap();
        full[..32].try_into().unwrap()
    }
}

impl Scheme for MongoCbcHmac {
    fn name(&self) -> &'static str {
        "mongodb-cbc-hmac"
    }
    fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let cipher = Cipher::aes_256_cbc();
        let mut out = vec![0u8; 16 + plaintext.len() + 16 + 32];
        rand_bytes(&mut out[..16]).unwrap();
        let iv: [u8; 16] = out[..16].try_into().unwrap();
        let mut crypter = Crypter::new(cipher, Mode::Encrypt, &self.enc_key, Some(&iv)).unwrap();
        let n = crypter.update(plaintext, &mut out[16..]).unwrap();
        let n = n + crypter.finalize(&mut out[16 + n..]).unwrap();
        out.truncate(16 + n);
        let tag = self.tag(&out);
        out.extend_from_slice(&tag);
        out
    }
    fn open(&self, sealed: &[u8]) -> Vec<u8> {
        let (body, tag) = sealed.split_at(sealed.len() - 32);
        assert!(openssl::memcmp::eq(&self.tag(body), tag), "MAC check");
        let (iv, ciphertext) = body.split_at(16);
        let cipher = Cipher::aes_256_cbc();
        let mut crypter = Crypter::new(cipher, Mode::Decrypt, &self.enc_key, Some(iv)).unwrap();
        let mut out = vec![0u8; ciphertext.len() + 16];
        let n = crypter.update(ciphertext, &mut out).unwrap();
        let n = n + crypter.finalize(&mut out[n..]).unwrap();
        out.truncate(n);
        out
    }
}

struct Age {
    identity: age::x25519::Identity,
    recipient: age::x25519::Recipient,
}

impl Scheme for Age {
    fn name(&self) -> &'static str {
        "age"
    }
    fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let encryptor = age::Encryptor::with_recipients(std::iter::once(
            &self.recipient as &dyn age::Recipient,
        ))
        .unwrap();
        // age's overhead: a header of about 200 bytes and 16 per 64 KiB chunk.
        let room = plaintext.len() + plaintext.len() / 4096 + 512;
        let mut writer = encryptor.wrap_output(Vec::with_capacity(room)).unwrap();
        writer.write_all(plaintext).unwrap();
        writer.finish().unwrap()
    }
    fn open(&self, sealed: &[u8]) -> Vec<u8> {
        let decryptor = age::Decryptor::new(sealed).unwrap();
        let mut reader = decryptor
            .decrypt(std::iter::once(&self.identity as &dyn age::Identity))
            .unwrap();
        let mut out = Vec::with_capacity(sealed.len());
        reader.read_to_end(&mut out).unwrap();
        out
    }
}

/// The AWS Encryption SDK's message format, reduced to what its default suite computes:
/// `header ‖ header tag ‖ frames ‖ signature ‖ its length (2)`, the header holding the message id, the
/// wrapped data key, the commitment key and the signer's public key.
struct AwsEsdk {
    wrapping_key: [u8; 32],
}

const ESDK_SUITE: [u8; 2] = [0x05, 0x78];
const ESDK_FRAME: usize = 4096;

impl AwsEsdk {
    /// The message key and the commitment key from a data key and the message id.
    fn derive(data_key: &[u8], message_id: &[u8]) -> ([u8; 32], [u8; 32]) {
        let (mut key, mut commitment) = ([0u8; 32], [0u8; 32]);
        let mut info = ESDK_SUITE.to_vec();
        info.extend_from_slice(b"DERIVEKEY");
        hkdf(Md::sha512(), data_key, message_id, &info, &mut key);
        hkdf(
            Md::sha512(),
            data_key,
            message_id,
            b"COMMITKEY",
            &mut commitment,
        );
        (key, commitment)
    }

    fn frame_iv(sequence: u32) -> [u8; 12] {
        let mut iv = [0u8; 12];
        iv[8..].copy_from_slice(&sequence.to_be_bytes());
        iv
    }

    fn frame_aad(message_id: &[u8], sequence: u32, len: usize) -> Vec<u8> {
        let mut aad = message_id.to_vec();
        aad.extend_from_slice(b"AWSKMSEncryptionClient Frame");
        aad.extend_from_slice(&sequence.to_be_bytes());
        aad.extend_from_slice(&(len as u64).to_be_bytes());
        aad
    }

    fn group() -> EcGroup {
        EcGroup::from_curve_name(Nid::SECP384R1).unwrap()
    }
}

/// Header: suite (2) ‖ message id (32) ‖ public key (49, compressed) ‖ wrap IV (12) ‖
/// wrapped data key (32 + 16) ‖ commitment (32) ‖ frame length (4).
const ESDK_HEADER: usize = 2 + 32 + 49 + 12 + 48 + 32 + 4;

impl Scheme for AwsEsdk {
    fn name(&self) -> &'static str {
        "aws-esdk"
    }
    fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut message_id = [0u8; 32];
        rand_bytes(&mut message_id).unwrap();
        let mut data_key = [0u8; 32];
        rand_bytes(&mut data_key).unwrap();
        let mut wrap_iv = [0u8; 12];
        rand_bytes(&mut wrap_iv).unwrap();
        let mut wrap_tag = [0u8; 16];
        let wrapped = encrypt_aead(
            Cipher::aes_256_gcm(),
            &self.wrapping_key,
            Some(&wrap_iv),
            &message_id,
            &data_key,
            &mut wrap_tag,
        )
        .unwrap();
        let (key, commitment) = Self::derive(&data_key, &message_id);
        let group = Self::group();
        let signing = EcKey::generate(&group).unwrap();
        let public = signing
            .public_key()
            .to_bytes(
                &group,
                PointConversionForm::COMPRESSED,
                &mut BigNumContext::new().unwrap(),
            )
            .unwrap();
        let frames = plaintext.len() / ESDK_FRAME + 1;
        let mut out = Vec::with_capacity(ESDK_HEADER + 16 + plaintext.len() + frames * 32 + 128);
        out.extend_from_slice(&ESDK_SUITE);
        out.extend_from_slice(&message_id);
        out.extend_from_slice(&public);
        out.extend_from_slice(&wrap_iv);
        out.extend_from_slice(&wrapped);
        out.extend_from_slice(&wrap_tag);
        out.extend_from_slice(&commitment);
        out.extend_from_slice(&(ESDK_FRAME as u32).to_be_bytes());
        let mut ctx = CipherCtx::new().unwrap();
        ctx.encrypt_init(Some(CtxCipher::aes_256_gcm()), Some(&key), None)
            .unwrap();
        // The header tag: GCM over nothing, the header as associated data, IV zero.
        ctx.encrypt_init(None, None, Some(&[0u8; 12])).unwrap();
        ctx.cipher_update(&out, None).unwrap();
        ctx.cipher_final(&mut []).unwrap();
        let mut tag = [0u8; 16];
        ctx.tag(&mut tag).unwrap();
        out.extend_from_slice(&tag);
        // Frames: sequence number ‖ ciphertext ‖ tag; the last one may be short.
        for (sequence, frame) in (1u32..).zip(
            plaintext.chunks(ESDK_FRAME).chain(
                plaintext
                    .len()
                    .is_multiple_of(ESDK_FRAME)
                    .then_some(&[][..]),
            ),
        ) {
            out.extend_from_slice(&sequence.to_be_bytes());
            ctx.encrypt_init(None, None, Some(&Self::frame_iv(sequence)))
                .unwrap();
            ctx.cipher_update(&Self::frame_aad(&message_id, sequence, frame.len()), None)
                .unwrap();
            let at = out.len();
            out.resize(at + frame.len(), 0);
            let n = ctx.cipher_update(frame, Some(&mut out[at..])).unwrap();
            debug_assert_eq!(n, frame.len());
            ctx.cipher_final(&mut []).unwrap();
            ctx.tag(&mut tag).unwrap();
            out.extend_from_slice(&tag);
        }
        let mut hasher = Hasher::new(MessageDigest::sha384()).unwrap();
        hasher.update(&out).unwrap();
        let digest = hasher.finish().unwrap();
        let signature = EcdsaSig::sign(&digest, &signing).unwrap().to_der().unwrap();
        out.extend_from_slice(&signature);
        out.extend_from_slice(&(signature.len() as u16).to_be_bytes());
        out
    }
    fn open(&self, sealed: &[u8]) -> Vec<u8> {
        // The signature first: the SDK releases no plaintext of an unsigned message.
        let der_len = u16::from_be_bytes(sealed[sealed.len() - 2..].try_into().unwrap()) as usize;
        let signed = &sealed[..sealed.len() - 2 - der_len];
        let signature = EcdsaSig::from_der(&sealed[signed.len()..sealed.len() - 2]).unwrap();
        let group = Self::group();
        let public = openssl::ec::EcPoint::from_bytes(
            &group,
            &sealed[34..34 + 49],
            &mut BigNumContext::new().unwrap(),
        )
        .unwrap();
        let verifying = EcKey::from_public_key(&group, &public).unwrap();
        let mut hasher = Hasher::new(MessageDigest::sha384()).unwrap();
        hasher.update(signed).unwrap();
        assert!(
            signature
                .verify(&hasher.finish().unwrap(), &verifying)
                .unwrap(),
            "signature"
        );
        let message_id = &sealed[2..34];
        let wrap_iv = &sealed[83..95];
        let data_key = decrypt_aead(
            Cipher::aes_256_gcm(),
            &self.wrapping_key,
            Some(wrap_iv),
            message_id,
            &sealed[95..127],
            &sealed[127..143],
        )
        .unwrap();
        let (key, commitment) = Self::derive(&data_key, message_id);
        assert!(
            openssl::memcmp::eq(&commitment, &sealed[143..175]),
            "commitment"
        );
        let mut ctx = CipherCtx::new().unwrap();
        ctx.decrypt_init(Some(CtxCipher::aes_256_gcm()), Some(&key), None)
            .unwrap();
        ctx.decrypt_init(None, None, Some(&[0u8; 12])).unwrap();
        ctx.cipher_update(&sealed[..ESDK_HEADER], None).unwrap();
        ctx.set_tag(&sealed[ESDK_HEADER..ESDK_HEADER + 16]).unwrap();
        ctx.cipher_final(&mut []).unwrap();
        let mut out = Vec::with_capacity(signed.len());
        let mut at = ESDK_HEADER + 16;
        while at < signed.len() {
            let sequence = u32::from_be_bytes(signed[at..at + 4].try_into().unwrap());
            let len = ESDK_FRAME.min(signed.len() - at - 4 - 16);
            let frame = &signed[at + 4..at + 4 + len];
            let tag = &signed[at + 4 + len..at + 4 + len + 16];
            ctx.decrypt_init(None, None, Some(&Self::frame_iv(sequence)))
                .unwrap();
            ctx.cipher_update(&Self::frame_aad(message_id, sequence, len), None)
                .unwrap();
            let start = out.len();
            out.resize(start + len, 0);
            ctx.cipher_update(frame, Some(&mut out[start..])).unwrap();
            ctx.set_tag(tag).unwrap();
            ctx.cipher_final(&mut []).unwrap();
            at += 4 + len + 16;
        }
        out
    }
}

fn schemes() -> Vec<Box<dyn Scheme>> {
    let master = MasterKey::from_bytes([1; 32]);
    let patient = master.patient_key(
        &ProviderId::new("bench-hospital").unwrap(),
        &PatientId::new("+15550100").unwrap(),
        0,
    );
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public();
    vec![
        Box::new(Medvault { patient }),
        Box::new(OpensslGcm {
            master: [2; 32],
            derive: false,
        }),
        Box::new(OpensslGcm {
            master: [2; 32],
            derive: true,
        }),
        Box::new(MongoCbcHmac {
            mac_key: [3; 32],
            enc_key: [4; 32],
        }),
        Box::new(Age {
            identity,
            recipient,
        }),
        Box::new(AwsEsdk {
            wrapping_key: [5; 32],
        }),
    ]
}

/// Wall time of `iters` rounds of `work`: on `one_thread`'s only worker for one record
/// (the loop runs there, not a hand-off per call), or on `records` threads at once, each
/// doing its own `iters` records.
fn timed(
    records: usize,
    one_thread: &ThreadPool,
    iters: u64,
    work: &(dyn Fn() + Sync),
) -> Duration {
    if records == 1 {
        return one_thread.install(|| {
            let start = Instant::now();
            for _ in 0..iters {
                work();
            }
            start.elapsed()
        });
    }
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..records {
            scope.spawn(|| {
                for _ in 0..iters {
                    work();
                }
            });
        }
    });
    start.elapsed()
}

/// What no implementation of medvault's 1 KiB record can go below on this machine,
/// timed in the same run as the rows it bounds (`docs/performance.md`, "Targets"):
///
/// - `floor-derive`: the record key derived from the patient key, as every `seal` and
///   `open` row above pays it;
/// - `floor-setup`: the record key's AES key schedule and one AES call under it (EAX's
///   domain blocks), which the chain's first block waits for;
/// - `floor-mac-chain`: EAX's MAC over one chunk's ciphertext, a CBC-MAC chain of one
///   AES call per block, each waiting for the one before, run inside the `aes` backend
///   (no dispatch per block). A 1 KiB record is one chunk of 64 blocks; nothing EAX
///   computes beside the chain (the keystream, the header's MAC) shortens it;
/// - `floor-nonce`: the 11-byte nonce prefix drawn from the operating system, once per
///   sealed record.
fn floor_rows(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    one_thread: &ThreadPool,
    data: &[u8],
    size_name: &str,
) {
    let master = MasterKey::from_bytes([1; 32]);
    let patient = master.patient_key(
        &ProviderId::new("bench-hospital").unwrap(),
        &PatientId::new("+15550100").unwrap(),
        0,
    );
    group.bench_function(BenchmarkId::new("floor-derive", size_name), |b| {
        one_thread.install(|| {
            b.iter(|| {
                drop(black_box(
                    patient.record_key(RecordId::from_bytes(next_record_id())),
                ))
            })
        })
    });
    group.bench_function(BenchmarkId::new("floor-setup", size_name), |b| {
        one_thread.install(|| {
            b.iter(|| {
                let aes = Aes256Enc::new(&black_box([3u8; 32]).into());
                let mut domain = Array::<u8, U16>::from([2u8; 16]);
                aes.encrypt_block(&mut domain);
                domain
            })
        })
    });
    let aes = Aes256Enc::new(&[3u8; 32].into());
    group.bench_function(BenchmarkId::new("floor-mac-chain", size_name), |b| {
        one_thread.install(|| {
            b.iter(|| {
                let mut state = [0u8; 16];
                aes.encrypt_with_backend(CbcMacChain {
                    message: black_box(data),
                    state: &mut state,
                });
                state
            })
        })
    });
    group.bench_function(BenchmarkId::new("floor-nonce", size_name), |b| {
        one_thread.install(|| {
            b.iter(|| {
                let mut prefix = [0u8; 11];
                getrandom::fill(&mut prefix).unwrap();
                prefix
            })
        })
    });
}

/// A CBC-MAC chain over `message` (whole blocks) inside the block cipher's backend.
struct CbcMacChain<'a> {
    message: &'a [u8],
    state: &'a mut [u8; 16],
}

impl BlockSizeUser for CbcMacChain<'_> {
    type BlockSize = U16;
}

impl BlockCipherEncClosure for CbcMacChain<'_> {
    #[inline(always)]
    fn call<B: BlockCipherEncBackend<BlockSize = U16>>(self, backend: &B) {
        let mut state = Array::<u8, U16>::from(*self.state);
        for block in self.message.chunks_exact(16) {
            let mut input = [0u8; 16];
            input.copy_from_slice(block);
            let chained = u128::from_ne_bytes(state.into()) ^ u128::from_ne_bytes(input);
            state = Array::from(chained.to_ne_bytes());
            backend.encrypt_block_inplace(&mut state);
        }
        *self.state = state.into();
    }
}

fn bench_peers(c: &mut Criterion) {
    let schemes = schemes();
    let cores = rayon::current_num_threads();
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    for (size, size_name) in sizes() {
        let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        for (mode, records) in [("1-thread", 1), ("all-cores", cores)] {
            let mut group = c.benchmark_group(format!("peers-{mode}"));
            group.throughput(Throughput::Bytes((size * records) as u64));
            if size >= 1 << 20 {
                group.sample_size(10);
            }
            if size >= 64 << 20 {
                group
                    .warm_up_time(Duration::from_secs(1))
                    .measurement_time(Duration::from_secs(10));
            } else {
                group
                    .warm_up_time(Duration::from_secs(1))
                    .measurement_time(Duration::from_secs(3));
            }
            if mode == "1-thread" && size == 1 << 10 {
                floor_rows(&mut group, &one_thread, &data, size_name);
            }
            for scheme in &schemes {
                let scheme = scheme.as_ref();
                // Sealed (and checked) only for a row that runs, not for filtered ones.
                let sealed = OnceLock::new();
                let sealed = || {
                    sealed.get_or_init(|| {
                        let sealed = scheme.seal(&data);
                        assert!(scheme.open(&sealed) == data, "{} opens", scheme.name());
                        sealed
                    })
                };
                let seal_one = || drop(black_box(scheme.seal(black_box(&data))));
                let open_one = || drop(black_box(scheme.open(black_box(sealed()))));
                group.bench_function(
                    BenchmarkId::new(format!("{}-seal", scheme.name()), size_name),
                    |b| {
                        sealed();
                        b.iter_custom(|iters| timed(records, &one_thread, iters, &seal_one))
                    },
                );
                group.bench_function(
                    BenchmarkId::new(format!("{}-open", scheme.name()), size_name),
                    |b| b.iter_custom(|iters| timed(records, &one_thread, iters, &open_one)),
                );
            }
            group.finish();
        }
    }
}

criterion_group!(benches, bench_peers);
criterion_main!(benches);
