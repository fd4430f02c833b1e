//! AES-EAX (Bellare, Rogaway, Wagner 2004), built from the `ctr` and `cmac` crates.
//!
//! `N' = OMAC⁰(N)`, `H' = OMAC¹(H)`, `C = CTR_{N'}(M)`, `tag = N' ⊕ H' ⊕ OMAC²(C)`,
//! where `OMACᵗ(X) = CMAC(K, [t]₁₂₈ ‖ X)`.
//!
//! Two properties of EAX shape the API: `H'` does not depend on the nonce, so the
//! STREAM layer computes it once per record and reuses it for every chunk; and
//! `OMAC²(C)` does not depend on the nonce either, so a chunk's tag can be checked
//! against both the "last" and "not last" nonces for the cost of one MAC, which lets
//! the opener tell truncation apart from tampering.

use cipher::typenum::Unsigned;
use cipher::{
    Array, BlockCipherEncBackend, BlockCipherEncClosure, BlockSizeUser, InnerIvInit, ParBlocks,
    StreamCipher, StreamCipherCoreWrapper, consts::U16,
};
use cmac::digest::block_api::SmallBlockSizeUser;
use cmac::digest::common::InnerInit;
use cmac::{Cmac, Mac, block_api::CmacCipher};
use ctr::{CtrCore, flavors::Ctr128BE};
use subtle::ConstantTimeEq;

/// EAX tag length in bytes (the full block; tags are never truncated here).
pub(crate) const TAG_LEN: usize = 16;

/// An EAX tag or an intermediate OMAC value.
pub(crate) type Block = [u8; 16];

/// Most messages sealed or opened together by the multi-lane path.
pub(crate) const LANES: usize = 8;

/// An EAX instance: a keyed block cipher and the three OMAC states, each already past
/// its one-block domain prefix; and, for the multi-lane path, the CMAC subkeys and the
/// encrypted domain blocks.
#[derive(Clone)]
pub(crate) struct Eax<C: CmacCipher + Clone> {
    cipher: C,
    omac: [Cmac<C>; 3],
    /// CMAC subkeys `K1 = dbl(E(0))`, `K2 = dbl(K1)`.
    k1: Block,
    k2: Block,
    /// `E([0]₁₂₈)` and `E([2]₁₂₈)`: the CBC-MAC state after the domain block of OMAC⁰
    /// and OMAC².
    start0: Block,
    start2: Block,
}

/// Doubling in GF(2^128) (the CMAC subkey step), without a secret-dependent branch.
fn dbl(block: Block) -> Block {
    let v = u128::from_be_bytes(block);
    let carry = 0u128.wrapping_sub(v >> 127) & 0x87;
    ((v << 1) ^ carry).to_be_bytes()
}

fn xor_into(acc: &mut [u8], other: &[u8]) {
    for (a, b) in acc.iter_mut().zip(other) {
        *a ^= b;
    }
}

/// XORs one full 16-byte block into a state as a single 128-bit operation (a byte loop
/// here was the hot spot of the interleaved CBC-MAC).
#[inline(always)]
fn xor_block(state: &mut Array<u8, U16>, block: &[u8]) {
    let (Ok(a), Ok(b)) = (
        <[u8; 16]>::try_from(&state[..]),
        <[u8; 16]>::try_from(block),
    ) else {
        return xor_into(state, block);
    };
    let x = u128::from_ne_bytes(a) ^ u128::from_ne_bytes(b);
    state.copy_from_slice(&x.to_ne_bytes());
}

/// The block ciphers EAX is built on here: 128-bit blocks, usable by `cmac` and `ctr`.
pub(crate) trait EaxCipher:
    CmacCipher + SmallBlockSizeUser<_BlockSize = U16> + Clone
{
}
impl<C: CmacCipher + SmallBlockSizeUser<_BlockSize = U16> + Clone> EaxCipher for C {}

impl<C: EaxCipher> Eax<C> {
    /// Prepares EAX over an already keyed block cipher.
    pub(crate) fn new(cipher: C) -> Self {
        let omac = [0u8, 1, 2].map(|t| {
            let mut mac = Cmac::inner_init(cipher.clone());
            let mut prefix = [0u8; 16];
            prefix[15] = t;
            mac.update(&prefix);
            mac
        });
        let encrypt = |block: Block| -> Block {
            let mut b = Array::from(block);
            cipher.encrypt_block(&mut b);
            b.into()
        };
        let k1 = dbl(encrypt([0; 16]));
        let k2 = dbl(k1);
        let mut domain2 = [0u8; 16];
        domain2[15] = 2;
        let start0 = encrypt([0; 16]);
        let start2 = encrypt(domain2);
        Eax {
            cipher,
            omac,
            k1,
            k2,
            start0,
            start2,
        }
    }

    /// `N' = OMAC⁰(nonce)` for up to [`LANES`] 16-byte nonces at once.
    pub(crate) fn nonce_macs(&self, nonces: &[[u8; 16]], out: &mut [Block]) {
        let mut blocks = [Array::from([0u8; 16]); LANES];
        for (block, nonce) in blocks.iter_mut().zip(nonces) {
            // One full block after the domain block: the last block, masked with K1.
            *block = Array::from(self.start0);
            xor_into(block, nonce);
            xor_into(block, &self.k1);
        }
        self.cipher.encrypt_blocks(&mut blocks[..nonces.len()]);
        for (o, b) in out.iter_mut().zip(&blocks) {
            *o = (*b).into();
        }
    }

    /// `OMAC²(ciphertext)` of up to [`LANES`] messages at once: the CBC-MAC chains run
    /// interleaved block by block, so the block cipher's parallel path (eight AES blocks
    /// in flight with AES-NI) works on eight independent chains.
    pub(crate) fn ciphertext_macs(&self, messages: &[&[u8]], out: &mut [Block]) {
        let n = messages.len();
        debug_assert!(n <= LANES);
        // Blocks before the last one, per message (the last gets the subkey).
        let middle: [usize; LANES] = core::array::from_fn(|i| {
            messages
                .get(i)
                .map_or(0, |m| m.len().div_ceil(16).saturating_sub(1))
        });
        let common = middle[..n].iter().copied().min().unwrap_or(0);
        let mut states = [Array::from(self.start2); LANES];
        self.cipher.encrypt_with_backend(InterleavedCbcMac {
            states: &mut states[..n],
            messages,
            blocks: common,
        });
        for i in 0..n {
            for j in common..middle[i] {
                xor_into(&mut states[i], &messages[i][16 * j..16 * j + 16]);
                self.cipher.encrypt_block(&mut states[i]);
            }
        }
        for (i, message) in messages.iter().enumerate() {
            if message.is_empty() {
                // The domain block alone is the (full) last block.
                let mut domain = [0u8; 16];
                domain[15] = 2;
                states[i] = Array::from(domain);
                xor_into(&mut states[i], &self.k1);
                continue;
            }
            let last = &message[16 * middle[i]..];
            xor_into(&mut states[i], last);
            if last.len() == 16 {
                xor_into(&mut states[i], &self.k1);
            } else {
                states[i][last.len()] ^= 0x80;
                xor_into(&mut states[i], &self.k2);
            }
        }
        self.cipher.encrypt_blocks(&mut states[..n]);
        for (o, s) in out.iter_mut().zip(&states) {
            *o = (*s).into();
        }
    }

    /// CTR keystream starting at counter block `nonce_mac`, from `input` into `output`
    /// (same length).
    pub(crate) fn apply_keystream_b2b(&self, nonce_mac: &Block, input: &[u8], output: &mut [u8]) {
        if input.len() != output.len() {
            // Callers rule this out; fail closed rather than panic.
            output.fill(0);
            return;
        }
        let core = CtrCore::<C, Ctr128BE>::inner_iv_init(self.cipher.clone(), nonce_mac.into());
        StreamCipherCoreWrapper::from_core(core).apply_keystream_b2b(input, output);
    }

    /// Encrypts up to [`LANES`] messages from `inputs` into `outputs` (same lengths), each
    /// under its own 16-byte nonce, all with the same associated-data MAC; writes tags.
    pub(crate) fn seal_lanes(
        &self,
        nonces: &[[u8; 16]],
        header_mac: &Block,
        inputs: &[&[u8]],
        outputs: &mut [&mut [u8]],
        tags: &mut [Block],
    ) {
        let n = inputs.len();
        let mut nonce_macs = [[0u8; 16]; LANES];
        self.nonce_macs(&nonces[..n], &mut nonce_macs);
        for ((input, output), nonce_mac) in inputs.iter().zip(outputs.iter_mut()).zip(&nonce_macs) {
            self.apply_keystream_b2b(nonce_mac, input, output);
        }
        let mut ct_macs = [[0u8; 16]; LANES];
        let views: [&[u8]; LANES] =
            core::array::from_fn(|i| outputs.get(i).map_or(&[][..], |b| &b[..]));
        self.ciphertext_macs(&views[..n], &mut ct_macs);
        for i in 0..n {
            tags[i] = combine(&nonce_macs[i], header_mac, &ct_macs[i]);
        }
    }

    /// Verifies up to [`LANES`] ciphertexts and decrypts into `outputs` only those whose
    /// tag verified (the others' outputs are left as they were). Returns the index of the
    /// first lane that failed, if any.
    pub(crate) fn open_lanes(
        &self,
        nonces: &[[u8; 16]],
        header_mac: &Block,
        ciphertexts: &[&[u8]],
        tags: &[&[u8]],
        outputs: &mut [&mut [u8]],
    ) -> Option<usize> {
        let n = ciphertexts.len();
        let mut nonce_macs = [[0u8; 16]; LANES];
        self.nonce_macs(&nonces[..n], &mut nonce_macs);
        let mut ct_macs = [[0u8; 16]; LANES];
        self.ciphertext_macs(ciphertexts, &mut ct_macs);
        let mut first_bad = None;
        for i in 0..n {
            if tags_equal(&combine(&nonce_macs[i], header_mac, &ct_macs[i]), tags[i]) {
                self.apply_keystream_b2b(&nonce_macs[i], ciphertexts[i], outputs[i]);
            } else if first_bad.is_none() {
                first_bad = Some(i);
            }
        }
        first_bad
    }

    fn omac(&self, domain: usize, data: &[u8]) -> Block {
        let mut mac = self.omac[domain].clone();
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// `N' = OMAC⁰(nonce)`: also the initial counter block.
    pub(crate) fn nonce_mac(&self, nonce: &[u8]) -> Block {
        self.omac(0, nonce)
    }

    /// `H' = OMAC¹(associated data)`: independent of the nonce.
    pub(crate) fn header_mac(&self, associated_data: &[u8]) -> Block {
        self.omac(1, associated_data)
    }

    /// `OMAC²(ciphertext)`: independent of the nonce.
    pub(crate) fn ciphertext_mac(&self, ciphertext: &[u8]) -> Block {
        self.omac(2, ciphertext)
    }

    /// CTR keystream starting at counter block `nonce_mac`, XORed into `buf`.
    pub(crate) fn apply_keystream(&self, nonce_mac: &Block, buf: &mut [u8]) {
        let core = CtrCore::<C, Ctr128BE>::inner_iv_init(self.cipher.clone(), nonce_mac.into());
        StreamCipherCoreWrapper::from_core(core).apply_keystream(buf);
    }

    /// Encrypts `buf` in place and returns the tag.
    pub(crate) fn encrypt(&self, nonce_mac: &Block, header_mac: &Block, buf: &mut [u8]) -> Block {
        self.apply_keystream(nonce_mac, buf);
        combine(nonce_mac, header_mac, &self.ciphertext_mac(buf))
    }

    /// Verifies `tag` over `buf` (ciphertext) and only then decrypts it in place. On a
    /// mismatch `buf` is left as it was: unauthenticated plaintext never exists.
    pub(crate) fn decrypt(
        &self,
        nonce_mac: &Block,
        header_mac: &Block,
        buf: &mut [u8],
        tag: &[u8],
    ) -> bool {
        let expected = combine(nonce_mac, header_mac, &self.ciphertext_mac(buf));
        if !tags_equal(&expected, tag) {
            return false;
        }
        self.apply_keystream(nonce_mac, buf);
        true
    }

    /// One-shot encryption with an arbitrary-length nonce.
    pub(crate) fn seal_detached(
        &self,
        nonce: &[u8],
        associated_data: &[u8],
        buf: &mut [u8],
    ) -> Block {
        self.encrypt(
            &self.nonce_mac(nonce),
            &self.header_mac(associated_data),
            buf,
        )
    }

    /// One-shot decryption with an arbitrary-length nonce.
    pub(crate) fn open_detached(
        &self,
        nonce: &[u8],
        associated_data: &[u8],
        buf: &mut [u8],
        tag: &[u8],
    ) -> bool {
        self.decrypt(
            &self.nonce_mac(nonce),
            &self.header_mac(associated_data),
            buf,
            tag,
        )
    }
}

/// The shared part of up to [`LANES`] CBC-MAC chains, run inside the block cipher's
/// backend (one dispatch for the whole loop, as the `cmac` crate does for one chain):
/// each step XORs block `j` of every message into its state, then encrypts all states,
/// through the backend's parallel-blocks path when there are exactly as many lanes.
struct InterleavedCbcMac<'a> {
    states: &'a mut [Array<u8, U16>],
    messages: &'a [&'a [u8]],
    blocks: usize,
}

impl BlockSizeUser for InterleavedCbcMac<'_> {
    type BlockSize = U16;
}

impl BlockCipherEncClosure for InterleavedCbcMac<'_> {
    #[inline(always)]
    fn call<B: BlockCipherEncBackend<BlockSize = U16>>(self, backend: &B) {
        let n = self.states.len();
        let par = n == B::ParBlocksSize::USIZE;
        let mut par_blocks: ParBlocks<B> = Default::default();
        for j in 0..self.blocks {
            for (state, message) in self.states.iter_mut().zip(self.messages) {
                xor_block(state, &message[16 * j..16 * j + 16]);
            }
            if par {
                par_blocks
                    .iter_mut()
                    .zip(self.states.iter())
                    .for_each(|(p, s)| *p = *s);
                backend.encrypt_par_blocks_inplace(&mut par_blocks);
                self.states
                    .iter_mut()
                    .zip(par_blocks.iter())
                    .for_each(|(s, p)| *s = *p);
            } else {
                for state in self.states.iter_mut() {
                    backend.encrypt_block_inplace(state);
                }
            }
        }
    }
}

/// `N' ⊕ H' ⊕ C'`.
pub(crate) fn combine(nonce_mac: &Block, header_mac: &Block, ciphertext_mac: &Block) -> Block {
    let mut tag = [0u8; 16];
    for i in 0..16 {
        tag[i] = nonce_mac[i] ^ header_mac[i] ^ ciphertext_mac[i];
    }
    tag
}

/// Constant-time tag comparison; a tag of the wrong length never matches.
pub(crate) fn tags_equal(expected: &Block, found: &[u8]) -> bool {
    found.len() == TAG_LEN && bool::from(expected.ct_eq(found))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes::{Aes128, Aes192, Aes256};
    use cipher::KeyInit;
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
        tests: Vec<Case>,
    }
    #[derive(Deserialize)]
    struct Case {
        #[serde(rename = "tcId")]
        id: usize,
        key: String,
        iv: String,
        aad: String,
        msg: String,
        ct: String,
        tag: String,
        result: String,
    }

    fn run<C: EaxCipher + KeyInit>(case: &Case) {
        let unhex = |s: &str| hex::decode(s).unwrap();
        let eax = Eax::new(C::new_from_slice(&unhex(&case.key)).unwrap());
        let (nonce, aad, msg, ct, tag) = (
            unhex(&case.iv),
            unhex(&case.aad),
            unhex(&case.msg),
            unhex(&case.ct),
            unhex(&case.tag),
        );
        let mut buf = ct.clone();
        let opened = eax.open_detached(&nonce, &aad, &mut buf, &tag);
        match case.result.as_str() {
            "valid" => {
                assert!(opened, "tcId {} must open", case.id);
                assert_eq!(buf, msg, "tcId {} plaintext", case.id);
                let mut sealed = msg.clone();
                let computed = eax.seal_detached(&nonce, &aad, &mut sealed);
                assert_eq!(sealed, ct, "tcId {} ciphertext", case.id);
                assert_eq!(computed.to_vec(), tag, "tcId {} tag", case.id);
            }
            "invalid" => {
                assert!(!opened, "tcId {} must be rejected", case.id);
                assert_eq!(buf, ct, "tcId {}: a rejected buffer is untouched", case.id);
            }
            other => panic!("tcId {}: unexpected result {other}", case.id),
        }
    }

    /// Every case of Wycheproof's `aes_eax_test.json` (AES-128/192/256, nonces of 0 to
    /// 257 bytes), through the same `Eax` the sealed-record format uses.
    #[test]
    fn wycheproof_aes_eax() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/wycheproof/aes_eax_test.json"
        );
        let file: File = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut ran = 0;
        for group in &file.groups {
            for case in &group.tests {
                match group.key_size {
                    128 => run::<Aes128>(case),
                    192 => run::<Aes192>(case),
                    256 => run::<Aes256>(case),
                    other => panic!("unexpected key size {other}"),
                }
                ran += 1;
            }
        }
        assert_eq!(ran, file.count);
        assert_eq!(ran, 240);
    }

    /// Wycheproof's AES-256 cases with 16-byte nonces through the multi-lane path, one
    /// lane at a time and eight copies at once.
    #[test]
    fn wycheproof_aes256_eax_through_the_lanes() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/wycheproof/aes_eax_test.json"
        );
        let file: File = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let unhex = |s: &str| hex::decode(s).unwrap();
        let mut ran = 0;
        for group in file.groups.iter().filter(|g| g.key_size == 256) {
            for case in group.tests.iter().filter(|c| c.iv.len() == 32) {
                let eax = Eax::new(Aes256::new_from_slice(&unhex(&case.key)).unwrap());
                let nonce: [u8; 16] = unhex(&case.iv).try_into().unwrap();
                let header_mac = eax.header_mac(&unhex(&case.aad));
                let (msg, ct, tag) = (unhex(&case.msg), unhex(&case.ct), unhex(&case.tag));
                for lanes in [1, 8] {
                    let nonces = vec![nonce; lanes];
                    let cts: Vec<&[u8]> = vec![&ct[..]; lanes];
                    let tags: Vec<&[u8]> = vec![&tag[..]; lanes];
                    let mut bufs: Vec<Vec<u8>> = vec![vec![0xee; ct.len()]; lanes];
                    let mut views: Vec<&mut [u8]> = bufs.iter_mut().map(|b| &mut b[..]).collect();
                    let bad = eax.open_lanes(&nonces, &header_mac, &cts, &tags, &mut views);
                    if case.result == "valid" {
                        assert_eq!(bad, None, "tcId {}", case.id);
                        assert!(bufs.iter().all(|b| *b == msg), "tcId {}", case.id);
                        let msgs: Vec<&[u8]> = vec![&msg[..]; lanes];
                        let mut sealed: Vec<Vec<u8>> = vec![vec![0; msg.len()]; lanes];
                        let mut views: Vec<&mut [u8]> =
                            sealed.iter_mut().map(|b| &mut b[..]).collect();
                        let mut out = vec![[0u8; 16]; lanes];
                        eax.seal_lanes(&nonces, &header_mac, &msgs, &mut views, &mut out);
                        assert!(sealed.iter().all(|b| *b == ct), "tcId {}", case.id);
                        assert!(out.iter().all(|t| t[..] == tag[..]), "tcId {}", case.id);
                    } else {
                        assert_eq!(bad, Some(0), "tcId {}", case.id);
                        assert!(
                            bufs.iter().all(|b| b.iter().all(|&x| x == 0xee)),
                            "tcId {}: nothing written",
                            case.id
                        );
                    }
                }
                ran += 1;
            }
        }
        assert_eq!(ran, 56);
    }

    /// The multi-lane path is bit-identical to the one-message path for random lengths,
    /// including ragged groups and empty messages, and reports the first bad lane.
    #[test]
    fn lanes_agree_with_the_single_path() {
        let eax = Eax::new(Aes256::new(&[9u8; 32].into()));
        let header_mac = eax.header_mac(b"header");
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..200 {
            let n = 1 + (next() % LANES as u64) as usize;
            let lens: Vec<usize> = (0..n)
                .map(|_| {
                    if round % 2 == 0 {
                        160
                    } else {
                        (next() % 300) as usize
                    }
                })
                .collect();
            let nonces: Vec<[u8; 16]> = (0..n)
                .map(|_| core::array::from_fn(|_| next() as u8))
                .collect();
            let plain: Vec<Vec<u8>> = lens
                .iter()
                .map(|&l| (0..l).map(|_| next() as u8).collect())
                .collect();
            let inputs: Vec<&[u8]> = plain.iter().map(|p| &p[..]).collect();
            let mut sealed: Vec<Vec<u8>> = lens.iter().map(|&l| vec![0; l]).collect();
            let mut views: Vec<&mut [u8]> = sealed.iter_mut().map(|b| &mut b[..]).collect();
            let mut tags = vec![[0u8; 16]; n];
            eax.seal_lanes(&nonces, &header_mac, &inputs, &mut views, &mut tags);
            for i in 0..n {
                let mut single = plain[i].clone();
                let tag = eax.encrypt(&eax.nonce_mac(&nonces[i]), &header_mac, &mut single);
                assert_eq!(single, sealed[i]);
                assert_eq!(tag, tags[i]);
            }
            // Break one lane: it alone is reported, and nothing of it is written.
            let bad = (next() % n as u64) as usize;
            tags[bad][0] ^= 1;
            let tag_views: Vec<&[u8]> = tags.iter().map(|t| &t[..]).collect();
            let cts: Vec<&[u8]> = sealed.iter().map(|c| &c[..]).collect();
            let mut opened: Vec<Vec<u8>> = lens.iter().map(|&l| vec![0; l]).collect();
            let mut views: Vec<&mut [u8]> = opened.iter_mut().map(|b| &mut b[..]).collect();
            assert_eq!(
                eax.open_lanes(&nonces, &header_mac, &cts, &tag_views, &mut views),
                Some(bad)
            );
            for i in 0..n {
                if i == bad {
                    assert!(
                        opened[i].iter().all(|&b| b == 0),
                        "nothing of a failed lane is written"
                    );
                } else {
                    assert_eq!(opened[i], plain[i]);
                }
            }
        }
    }

    #[test]
    fn truncated_or_long_tags_never_match() {
        let expected = [7u8; 16];
        assert!(tags_equal(&expected, &[7u8; 16]));
        assert!(!tags_equal(&expected, &[7u8; 15]));
        assert!(!tags_equal(&expected, &[7u8; 17]));
        assert!(!tags_equal(&expected, &[]));
    }
}
