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

use cipher::{InnerIvInit, StreamCipher, StreamCipherCoreWrapper, consts::U16};
use cmac::digest::block_api::SmallBlockSizeUser;
use cmac::digest::common::InnerInit;
use cmac::{Cmac, Mac, block_api::CmacCipher};
use ctr::{CtrCore, flavors::Ctr128BE};
use subtle::ConstantTimeEq;

/// EAX tag length in bytes (the full block; tags are never truncated here).
pub(crate) const TAG_LEN: usize = 16;

/// An EAX tag or an intermediate OMAC value.
pub(crate) type Block = [u8; 16];

/// An EAX instance: a keyed block cipher and the three OMAC states, each already past
/// its one-block domain prefix.
#[derive(Clone)]
pub(crate) struct Eax<C: CmacCipher + Clone> {
    cipher: C,
    omac: [Cmac<C>; 3],
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
        Eax { cipher, omac }
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

    #[test]
    fn truncated_or_long_tags_never_match() {
        let expected = [7u8; 16];
        assert!(tags_equal(&expected, &[7u8; 16]));
        assert!(!tags_equal(&expected, &[7u8; 15]));
        assert!(!tags_equal(&expected, &[7u8; 17]));
        assert!(!tags_equal(&expected, &[]));
    }
}
