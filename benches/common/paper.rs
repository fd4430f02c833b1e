//! The paper's experiment, shared by `benches/ciphers.rs` and
//! `examples/cipher_report.rs`: its input files (text and image, 1, 10 and 100 MB),
//! and every algorithm run through medvault and through OpenSSL with the same keys.
#![allow(dead_code)]

use std::sync::OnceLock;

use medvault::lab::{self, LabCipher, PbeKey};
use medvault::{DecryptionKey, EncryptionKey};
use medvault::{ProviderId, RecordId, RecordKey};
use openssl::encrypt::{Decrypter, Encrypter};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Padding;
use openssl::symm::Cipher;

/// The paper's sizes, in MB (10^6 bytes).
pub const SIZES_MB: [usize; 3] = [1, 10, 100];
pub const MB: usize = 1_000_000;
/// `openssl enc -pbkdf2`'s default; the PBE key derivation is measured on its own.
pub const PBE_ITERATIONS: u32 = lab::OPENSSL_DEFAULT_ITERATIONS;
const PASSWORD: &[u8] = b"correct horse battery staple";
const SALT: [u8; 8] = *b"paper-01";

const DICOM: &[u8] = include_bytes!("../../tests/data/dicom/SC_rgb_jpeg_dcmd.dcm");
const RSA_2048: &str = include_str!("../../tests/data/keys/provider-a-enc.pem");
const RSA_3072: &str = include_str!("../../tests/data/keys/lab-rsa-3072.pem");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Image,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::Text, Kind::Image];
    pub fn name(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Image => "image",
        }
    }
}

/// A deterministic input file: clinical-note text, or the JPEG-compressed DICOM sample
/// (pydicom's `SC_rgb_jpeg_dcmd.dcm`) repeated.
pub fn input(kind: Kind, bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes + 256);
    match kind {
        Kind::Text => {
            let mut state = 0x1234_5678_9abc_def1u64;
            let mut next = || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            };
            const LINES: [&str; 6] = [
                "Patient seen in clinic. BP {a}/{b} mmHg, HR {c} bpm.",
                "HbA1c {a}.{c} %; fasting glucose {b} mg/dL. Continue metformin {a}0 mg.",
                "Chest radiograph: no acute cardiopulmonary findings. SpO2 {c} %.",
                "Potassium {a}.{b} mmol/L, creatinine {c} umol/L. Repeat in {a} weeks.",
                "Allergies: penicillin (rash). Lisinopril {b} mg daily; review in {c} days.",
                "Plan: diet counselling, foot exam, ophthalmology referral ({a}/{b}).",
            ];
            while out.len() < bytes {
                let r = next();
                let line = LINES[(r % 6) as usize]
                    .replace("{a}", &(r >> 8 & 0x7f).to_string())
                    .replace("{b}", &(r >> 16 & 0xff).to_string())
                    .replace("{c}", &(r >> 24 & 0x3f).to_string());
                out.extend_from_slice(line.as_bytes());
                out.push(b'\n');
            }
        }
        Kind::Image => {
            while out.len() < bytes {
                out.extend_from_slice(DICOM);
            }
        }
    }
    out.truncate(bytes);
    out
}

/// One algorithm of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// A PBE cipher of the paper (CBC, PKCS#7), key and IV from PBKDF2.
    Pbe(LabCipher),
    /// The file cut into RSA-OAEP-SHA256 blocks, as the paper did.
    RsaChunked(usize),
    /// medvault's sealed record (AES-256-EAX STREAM) beside OpenSSL's AES-256-GCM.
    Seal,
}

impl Algorithm {
    pub fn all() -> Vec<Algorithm> {
        let mut all: Vec<Algorithm> = LabCipher::ALL.into_iter().map(Algorithm::Pbe).collect();
        all.push(Algorithm::RsaChunked(2048));
        all.push(Algorithm::RsaChunked(3072));
        all.push(Algorithm::Seal);
        all
    }

    pub fn name(self) -> String {
        match self {
            Algorithm::Pbe(c) => format!("{c} (PBE)"),
            Algorithm::RsaChunked(bits) => format!("RSA-{bits} OAEP, chunked"),
            Algorithm::Seal => "medvault seal (AES-256-EAX STREAM)".to_owned(),
        }
    }

    pub fn peer_name(self) -> &'static str {
        match self {
            Algorithm::Seal => "OpenSSL AES-256-GCM",
            _ => "OpenSSL, same algorithm",
        }
    }

    /// A short id for benchmark names and file names.
    pub fn id(self) -> String {
        match self {
            Algorithm::Pbe(c) => c.openssl_name().to_owned(),
            Algorithm::RsaChunked(bits) => format!("rsa{bits}-chunked"),
            Algorithm::Seal => "medvault-seal".to_owned(),
        }
    }
}

/// OpenSSL 3 keeps DES and Blowfish in its legacy provider: load it once, next to the
/// default one.
fn openssl_legacy() {
    static PROVIDERS: OnceLock<(openssl::provider::Provider, openssl::provider::Provider)> =
        OnceLock::new();
    PROVIDERS.get_or_init(|| {
        let legacy =
            openssl::provider::Provider::load(None, "legacy").expect("OpenSSL legacy provider");
        let default =
            openssl::provider::Provider::load(None, "default").expect("OpenSSL default provider");
        (legacy, default)
    });
}

fn openssl_cipher(cipher: LabCipher) -> Cipher {
    openssl_legacy();
    match cipher {
        LabCipher::Aes128Cbc => Cipher::aes_128_cbc(),
        LabCipher::Aes256Cbc => Cipher::aes_256_cbc(),
        LabCipher::DesCbc => Cipher::des_cbc(),
        LabCipher::TripleDesCbc => Cipher::des_ede3_cbc(),
        LabCipher::BlowfishCbc => Cipher::bf_cbc(),
    }
}

/// Keys and contexts for one algorithm, made once (key derivation is not in the
/// measured time).
pub struct Runner {
    pub algorithm: Algorithm,
    pbe: Option<(PbeKey, Vec<u8>, Vec<u8>)>,
    rsa: Option<(EncryptionKey, DecryptionKey, PKey<Private>)>,
    record_key: RecordKey,
}

impl Runner {
    pub fn new(algorithm: Algorithm) -> Runner {
        let pbe = match algorithm {
            Algorithm::Pbe(cipher) => {
                let ours = PbeKey::derive(cipher, PASSWORD, SALT, PBE_ITERATIONS).unwrap();
                let (key, iv) = openssl_pbe_key(cipher);
                Some((ours, key, iv))
            }
            _ => None,
        };
        let rsa = match algorithm {
            Algorithm::RsaChunked(bits) => {
                let pem = if bits == 2048 { RSA_2048 } else { RSA_3072 };
                let private = DecryptionKey::from_pkcs8_pem(pem).unwrap();
                let theirs = PKey::private_key_from_pem(pem.as_bytes()).unwrap();
                Some((private.public_key(), private, theirs))
            }
            _ => None,
        };
        let record_key = RecordKey::from_bytes(
            ProviderId::new("paper").unwrap(),
            0,
            RecordId::from_bytes([1; 16]),
            [0x42; 32],
        );
        Runner {
            algorithm,
            pbe,
            rsa,
            record_key,
        }
    }

    pub fn encrypt(&self, data: &[u8]) -> Vec<u8> {
        match self.algorithm {
            Algorithm::Pbe(_) => self.pbe.as_ref().unwrap().0.encrypt(data).unwrap(),
            Algorithm::RsaChunked(_) => {
                lab::rsa_encrypt_chunked(&self.rsa.as_ref().unwrap().0, data).unwrap()
            }
            Algorithm::Seal => medvault::seal(&self.record_key, data).unwrap(),
        }
    }

    pub fn decrypt(&self, ciphertext: &[u8]) -> Vec<u8> {
        match self.algorithm {
            Algorithm::Pbe(_) => self.pbe.as_ref().unwrap().0.decrypt(ciphertext).unwrap(),
            Algorithm::RsaChunked(_) => {
                lab::rsa_decrypt_chunked(&self.rsa.as_ref().unwrap().1, ciphertext).unwrap()
            }
            Algorithm::Seal => medvault::open(&self.record_key, ciphertext).unwrap(),
        }
    }

    pub fn openssl_encrypt(&self, data: &[u8]) -> Vec<u8> {
        match self.algorithm {
            Algorithm::Pbe(cipher) => {
                let (_, key, iv) = self.pbe.as_ref().unwrap();
                let mut out = b"Salted__".to_vec();
                out.extend_from_slice(&SALT);
                out.extend(
                    openssl::symm::encrypt(openssl_cipher(cipher), key, Some(iv), data).unwrap(),
                );
                out
            }
            Algorithm::RsaChunked(bits) => {
                let pkey = &self.rsa.as_ref().unwrap().2;
                let k = bits / 8;
                let mut out = Vec::with_capacity(data.len().div_ceil(lab::rsa_block_len(k)) * k);
                for chunk in data.chunks(lab::rsa_block_len(k)) {
                    let mut e = Encrypter::new(pkey).unwrap();
                    e.set_rsa_padding(Padding::PKCS1_OAEP).unwrap();
                    e.set_rsa_oaep_md(MessageDigest::sha256()).unwrap();
                    e.set_rsa_mgf1_md(MessageDigest::sha256()).unwrap();
                    let mut block = vec![0u8; e.encrypt_len(chunk).unwrap()];
                    let n = e.encrypt(chunk, &mut block).unwrap();
                    out.extend_from_slice(&block[..n]);
                }
                out
            }
            Algorithm::Seal => {
                let mut tag = [0u8; 16];
                let mut out = openssl::symm::encrypt_aead(
                    Cipher::aes_256_gcm(),
                    &[0x42; 32],
                    Some(&[7; 12]),
                    b"",
                    data,
                    &mut tag,
                )
                .unwrap();
                out.extend_from_slice(&tag);
                out
            }
        }
    }

    pub fn openssl_decrypt(&self, ciphertext: &[u8]) -> Vec<u8> {
        match self.algorithm {
            Algorithm::Pbe(cipher) => {
                let (_, key, iv) = self.pbe.as_ref().unwrap();
                openssl::symm::decrypt(openssl_cipher(cipher), key, Some(iv), &ciphertext[16..])
                    .unwrap()
            }
            Algorithm::RsaChunked(bits) => {
                let pkey = &self.rsa.as_ref().unwrap().2;
                let mut out = Vec::with_capacity(ciphertext.len());
                for block in ciphertext.chunks(bits / 8) {
                    let mut d = Decrypter::new(pkey).unwrap();
                    d.set_rsa_padding(Padding::PKCS1_OAEP).unwrap();
                    d.set_rsa_oaep_md(MessageDigest::sha256()).unwrap();
                    d.set_rsa_mgf1_md(MessageDigest::sha256()).unwrap();
                    let mut plain = vec![0u8; d.decrypt_len(block).unwrap()];
                    let n = d.decrypt(block, &mut plain).unwrap();
                    out.extend_from_slice(&plain[..n]);
                }
                out
            }
            Algorithm::Seal => {
                let (body, tag) = ciphertext.split_at(ciphertext.len() - 16);
                openssl::symm::decrypt_aead(
                    Cipher::aes_256_gcm(),
                    &[0x42; 32],
                    Some(&[7; 12]),
                    b"",
                    body,
                    tag,
                )
                .unwrap()
            }
        }
    }
}

/// Key and IV by OpenSSL's own PBKDF2, the way `openssl enc -pbkdf2 -md sha256` does.
pub fn openssl_pbe_key(cipher: LabCipher) -> (Vec<u8>, Vec<u8>) {
    let mut key_iv = vec![0u8; cipher.key_len() + cipher.block_len()];
    openssl::pkcs5::pbkdf2_hmac(
        PASSWORD,
        &SALT,
        PBE_ITERATIONS as usize,
        MessageDigest::sha256(),
        &mut key_iv,
    )
    .unwrap();
    let iv = key_iv.split_off(cipher.key_len());
    (key_iv, iv)
}

/// PBE key derivation alone, through medvault.
pub fn derive_pbe(cipher: LabCipher) -> PbeKey {
    PbeKey::derive(cipher, PASSWORD, SALT, PBE_ITERATIONS).unwrap()
}

/// Checks that both sides agree, so the timings compare equal work: PBE output is
/// byte-identical to OpenSSL's, RSA blocks decrypt across, and each side opens its own.
pub fn cross_check(runner: &Runner, data: &[u8]) {
    let ours = runner.encrypt(data);
    let theirs = runner.openssl_encrypt(data);
    assert_eq!(runner.decrypt(&ours), data);
    assert_eq!(runner.openssl_decrypt(&theirs), data);
    match runner.algorithm {
        Algorithm::Pbe(_) => assert!(
            ours == theirs,
            "{}: differs from OpenSSL",
            runner.algorithm.name()
        ),
        Algorithm::RsaChunked(_) => {
            assert_eq!(runner.decrypt(&theirs), data);
            assert_eq!(runner.openssl_decrypt(&ours), data);
        }
        Algorithm::Seal => {}
    }
}
