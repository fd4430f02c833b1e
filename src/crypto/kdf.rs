//! The PRF and the key-derivation function, and every derivation label in one place.
//!
//! * PRF `F(k, x)` is AES-256-CMAC.
//! * The KDF is NIST SP 800-108r1 in counter mode with AES-256-CMAC as its PRF:
//!   `K(i) = CMAC(K_in, [i]_32 ‖ Label ‖ 0x00 ‖ Context ‖ [L]_32)` for
//!   `i = 1, 2, …`, concatenated and cut to `L` bits. It is byte-for-byte OpenSSL 3's
//!   `KBKDF` with `mac=CMAC, cipher=AES-256-CBC` and the default separator and length
//!   fields, which the tests check.
//!
//! Every derived key has its own label, so no key is ever used for two purposes.

use aes::Aes256Enc;
use cipher::{Array, BlockCipherEncrypt, KeyInit, consts::U16};
use zeroize::{Zeroize, Zeroizing};

use crate::crypto::cmac::{Subkeys, xor_into};

/// Derivation labels. Each is used for exactly one kind of key; changing one changes
/// every key derived under it, so they are versioned with the format.
pub(crate) mod label {
    /// `K(p,u) = KDF(MK, PATIENT, provider ‖ patient ‖ generation)`.
    pub const PATIENT: &[u8] = b"medvault/v1/patient";
    /// `S = KDF(K(p,u), SEARCH, "")`: keyword trapdoors.
    pub const SEARCH: &[u8] = b"medvault/v1/search";
    /// `D = KDF(K(p,u), DATA, "")`: parent of record keys.
    pub const DATA: &[u8] = b"medvault/v1/data";
    /// `R = KDF(D, RECORD, record_id)`: seals one record.
    pub const RECORD: &[u8] = b"medvault/v1/record";
    /// `root(w) = KDF(S, KEYWORD, normalize(w))`: the GGM root of one keyword.
    pub const KEYWORD: &[u8] = b"medvault/v1/keyword";
}

/// AES-256-CMAC over the concatenation of `parts` (the PRF `F`; the KDF inlines it).
#[cfg(test)]
pub(crate) fn prf(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 16] {
    let message = parts.concat();
    let mut tag = [Array::<u8, U16>::default()];
    Kdf::new(key).cmac_lanes(&message, &[0], &mut tag);
    tag[0].into()
}

/// SP 800-108 counter-mode KDF with AES-256-CMAC, filling all of `out`.
///
/// `out.len()` must be below 2^29 bytes (the 32-bit length field counts bits); every
/// caller in the library asks for 32 or 64 bytes.
pub(crate) fn derive_into(key: &[u8; 32], label: &[u8], context: &[u8], out: &mut [u8]) {
    Kdf::new(key).derive_into(label, context, out);
}

/// The KDF keyed once, for many derivations under the same key: one key schedule and
/// one CMAC subkey computation for all of them. The output blocks of one derivation
/// (`K(1)`, `K(2)`, …) are CMACs of messages that differ only in their counter, so
/// their CBC-MAC chains run side by side through one AES call per block instead of one
/// after the other. The cipher and the subkeys are wiped on drop.
#[derive(Clone)]
pub(crate) struct Kdf {
    cipher: Aes256Enc,
    subkeys: Subkeys,
}

/// Output blocks computed together: every caller asks for 32 or 64 bytes (2 or 4).
const LANES: usize = 4;

impl Kdf {
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        let cipher = Aes256Enc::new(key.into());
        let mut zero = Array::from([0u8; 16]);
        cipher.encrypt_block(&mut zero);
        let subkeys = Subkeys::from_zero_block(&zero.into());
        zero.zeroize();
        Kdf { cipher, subkeys }
    }

    /// AES-256-CMAC of `message` once per entry of `counters`, lane `i` with
    /// `counters[i]` (32-bit big-endian) XORed into the message's first four bytes
    /// (those of them the message has), into `tags[i]`.
    fn cmac_lanes(&self, message: &[u8], counters: &[u32], tags: &mut [Array<u8, U16>]) {
        let lanes = counters.len().min(tags.len());
        let states = &mut tags[..lanes];
        states.fill(Array::default());
        // Every block but the last is chained as it is; the last (1 to 16 bytes, or
        // none for an empty message) is masked with K1 if full, else padded and masked
        // with K2.
        let before_last = message.len().saturating_sub(1) / 16;
        for j in 0..=before_last {
            let start = 16 * j;
            let block = &message[start.min(message.len())..(start + 16).min(message.len())];
            for (state, counter) in states.iter_mut().zip(counters) {
                xor_into(state, block);
                if j == 0 {
                    let counter = counter.to_be_bytes();
                    xor_into(state, &counter[..block.len().min(4)]);
                }
                if j == before_last {
                    self.subkeys.mask_last(state, block.len());
                }
            }
            self.cipher.encrypt_blocks(states);
        }
    }

    /// As [`derive_into`] under this key.
    #[allow(
        clippy::expect_used,
        reason = "every caller asks for 32 or 64 bytes, far below 2^29"
    )]
    pub(crate) fn derive_into(&self, label: &[u8], context: &[u8], out: &mut [u8]) {
        let bits = u32::try_from(out.len() * 8).expect("KDF output length fits in 32 bits");
        // `[i]_32 ‖ Label ‖ 0x00 ‖ Context ‖ [L]_32` with the counter left zero; each
        // lane XORs its own in. It holds the context (a keyword, a patient id): wiped.
        let mut message =
            Zeroizing::new(Vec::with_capacity(4 + label.len() + 1 + context.len() + 4));
        message.extend_from_slice(&[0; 4]);
        message.extend_from_slice(label);
        message.push(0);
        message.extend_from_slice(context);
        message.extend_from_slice(&bits.to_be_bytes());
        let mut tags = [Array::<u8, U16>::default(); LANES];
        for (group, chunks) in out.chunks_mut(16 * LANES).enumerate() {
            let first = group * LANES + 1;
            let mut counters = [0u32; LANES];
            for (lane, counter) in counters.iter_mut().enumerate() {
                *counter = u32::try_from(first + lane).expect("KDF block counter fits in 32 bits");
            }
            let lanes = chunks.len().div_ceil(16);
            self.cmac_lanes(&message, &counters[..lanes], &mut tags);
            for (chunk, tag) in chunks.chunks_mut(16).zip(&tags) {
                chunk.copy_from_slice(&tag[..chunk.len()]);
            }
        }
        tags.zeroize();
    }
}

/// A 256-bit key derived from `key` under `label` and `context`.
pub(crate) fn derive_key(key: &[u8; 32], label: &[u8], context: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    derive_into(key, label, context, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// Vectors produced by OpenSSL 3.0:
    /// `openssl kdf -keylen L -kdfopt mac:CMAC -kdfopt cipher:AES-256-CBC
    ///  -kdfopt hexkey:K -kdfopt salt:LABEL -kdfopt hexinfo:CONTEXT KBKDF`
    #[test]
    fn matches_openssl_kbkdf_cmac_counter_mode() {
        let key: [u8; 32] =
            unhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
                .try_into()
                .unwrap();
        assert_eq!(
            derive_key(&key, b"medvault/v1/patient", &[1, 2]).to_vec(),
            unhex("05b88fe5404fe569d08d0ecdd4ad2f3a45020ce0e447cfde17ac0c2b704a70f2")
        );
        let mut long = [0u8; 64];
        derive_into(&key, b"medvault/v1/patient", &[1, 2], &mut long);
        assert_eq!(
            long.to_vec(),
            unhex(
                "f87b89234e6b751d73fed6733cdd1b5b73f05383ae54b3bfb09d4aeb01ea7e83\
                 b038dc1d64f0851993b74f2f1b3e7bdccc12af60e21a2440bb446e9a889d5c6b"
            )
        );
        let key: [u8; 32] =
            unhex("ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
                .try_into()
                .unwrap();
        assert_eq!(
            derive_key(
                &key,
                b"medvault/v1/record",
                &unhex("00112233445566778899aabbccddeeff")
            )
            .to_vec(),
            unhex("c4f1b4d654bc1f6e362b23ceddf6125db907f633289bbddc8c5b5f9a6c796f8e")
        );
    }

    /// SP 800-108 counter mode written out with the `cmac` crate, one output block at a
    /// time: what the lanes must reproduce.
    fn reference(key: &[u8; 32], label: &[u8], context: &[u8], out: &mut [u8]) {
        use cmac::{Cmac, Mac};
        let bits = (out.len() as u32 * 8).to_be_bytes();
        for (i, chunk) in out.chunks_mut(16).enumerate() {
            let mut mac = <Cmac<Aes256Enc> as cmac::KeyInit>::new(key.into());
            for part in [
                &(i as u32 + 1).to_be_bytes()[..],
                label,
                &[0],
                context,
                &bits,
            ] {
                mac.update(part);
            }
            let tag = mac.finalize().into_bytes();
            chunk.copy_from_slice(&tag[..chunk.len()]);
        }
    }

    #[test]
    fn lanes_match_one_cmac_per_block_for_every_length() {
        let key: [u8; 32] = core::array::from_fn(|i| (i * 7 + 1) as u8);
        let kdf = Kdf::new(&key);
        let bytes: Vec<u8> = (0..200u32).map(|i| (i * 31 + 5) as u8).collect();
        // Message lengths 9 to 109 bytes cross every block boundary and both masks;
        // outputs of 1 to 80 bytes use one to five lanes, over two groups.
        for label_len in [0usize, 1, 7, 19, 23] {
            for context_len in 0..=86 {
                for out_len in [1usize, 15, 16, 17, 32, 48, 64, 65, 80] {
                    let (label, context) = (&bytes[..label_len], &bytes[100..100 + context_len]);
                    let mut expected = vec![0u8; out_len];
                    reference(&key, label, context, &mut expected);
                    let mut got = vec![0u8; out_len];
                    kdf.derive_into(label, context, &mut got);
                    assert_eq!(
                        got, expected,
                        "label {label_len}, context {context_len}, out {out_len}"
                    );
                }
            }
        }
    }

    #[test]
    fn labels_are_distinct() {
        let labels = [
            label::PATIENT,
            label::SEARCH,
            label::DATA,
            label::RECORD,
            label::KEYWORD,
        ];
        for (i, a) in labels.iter().enumerate() {
            for b in &labels[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}

#[cfg(test)]
mod wycheproof {
    use aes::{Aes128, Aes192, Aes256};
    use cmac::{Cmac, KeyInit, Mac};
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct File {
        #[serde(rename = "testGroups")]
        groups: Vec<Group>,
        #[serde(rename = "numberOfTests")]
        count: usize,
    }
    #[derive(Deserialize)]
    struct Group {
        #[serde(rename = "keySize")]
        key_size: usize,
        #[serde(rename = "tagSize")]
        tag_size: usize,
        tests: Vec<Case>,
    }
    #[derive(Deserialize)]
    struct Case {
        #[serde(rename = "tcId")]
        id: usize,
        key: String,
        msg: String,
        tag: String,
        result: String,
    }

    fn mac<M: Mac + KeyInit>(key: &[u8], msg: &[u8]) -> Option<Vec<u8>> {
        let mut m = <M as KeyInit>::new_from_slice(key).ok()?;
        m.update(msg);
        Some(m.finalize().into_bytes().to_vec())
    }

    /// Every case of Wycheproof's `aes_cmac_test.json` through the `cmac` crate the
    /// library's PRF is built on, and the 256-bit cases through the PRF itself.
    #[test]
    fn wycheproof_aes_cmac() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/wycheproof/aes_cmac_test.json"
        );
        let file: File = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut ran = 0;
        for group in &file.groups {
            for case in &group.tests {
                let key = hex::decode(&case.key).unwrap();
                let msg = hex::decode(&case.msg).unwrap();
                let tag = hex::decode(&case.tag).unwrap();
                let computed = match key.len() {
                    16 => mac::<Cmac<Aes128>>(&key, &msg),
                    24 => mac::<Cmac<Aes192>>(&key, &msg),
                    32 => {
                        let via_prf = super::prf(&key.clone().try_into().unwrap(), &[&msg]);
                        let via_crate = mac::<Cmac<Aes256>>(&key, &msg);
                        assert_eq!(via_crate.as_deref(), Some(&via_prf[..]));
                        via_crate
                    }
                    _ => None, // not an AES key: no CMAC exists for it
                };
                let matches = computed
                    .map(|full| full[..group.tag_size / 8] == tag[..])
                    .unwrap_or(false);
                assert_eq!(
                    matches,
                    case.result == "valid",
                    "tcId {} (key size {})",
                    case.id,
                    group.key_size
                );
                ran += 1;
            }
        }
        assert_eq!(ran, file.count);
        assert_eq!(ran, 311);
    }
}
