//! RSA key pairs: who signs access requests and grants, and who receives sealed keys.
//!
//! Every party has two key pairs, never one key for both purposes: a **signing** pair
//! (RSA-PSS-SHA256, salt 32) and an **encryption** pair (RSA-OAEP-SHA256 with MGF1-SHA256
//! and a label naming what is wrapped). The types keep the two apart: a [`SigningKey`]
//! cannot decrypt and a [`DecryptionKey`] cannot sign.
//!
//! Keys are 3072 bits by default, 2048 to 8192 accepted. Private keys import and export
//! as PKCS#8 PEM (optionally password-encrypted), public keys as SPKI PEM or DER, so keys
//! move to and from OpenSSL (`openssl genpkey -algorithm RSA`, `openssl pkey`).
//! The `rsa` crate ≥ 0.10 is used: constant-time big integers (the Marvin attack fix) and
//! blinded private operations.

use std::fmt;

use getrandom::SysRng;
use rsa::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rsa::sha2::{Digest, Sha256};
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, PrivateKey, PublicKey};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Default RSA modulus size.
pub const DEFAULT_RSA_BITS: usize = 3072;
/// Smallest modulus accepted, on generation and import.
pub const MIN_RSA_BITS: usize = 2048;
/// Largest modulus accepted (bounds the work a hostile key can cause).
pub const MAX_RSA_BITS: usize = 8192;

/// SHA-256 of a public key's SPKI DER encoding: how keys are named and pinned.
pub type Fingerprint = [u8; 32];

fn check_size(bits: usize) -> Result<()> {
    if (MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        Ok(())
    } else {
        Err(Error::InvalidArgument("RSA keys are 2048 to 8192 bits"))
    }
}

fn generate(bits: usize) -> Result<PrivateKey> {
    check_size(bits)?;
    PrivateKey::new(&mut SysRng, bits).map_err(|_| Error::Random)
}

/// Largest scrypt memory (128 · r · N bytes) an encrypted key may demand.
const MAX_SCRYPT_MEMORY: u64 = 256 * 1024 * 1024;
/// Most PBKDF2 iterations an encrypted key may demand.
const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;

fn private_from_pem(pem: &str, password: Option<&[u8]>) -> Result<PrivateKey> {
    let malformed = || Error::Malformed {
        format: "PKCS#8 private key",
        detail: "not a PEM-encoded PKCS#8 RSA private key",
    };
    let key = match password {
        None => PrivateKey::from_pkcs8_pem(pem).map_err(|_| malformed())?,
        Some(pw) => {
            let der = decrypt_pkcs8_pem(pem, pw)?;
            PrivateKey::from_pkcs8_der(der.as_bytes()).map_err(|_| malformed())?
        }
    };
    check_size(key.size() * 8)?;
    Ok(key)
}

/// Decrypts an `ENCRYPTED PRIVATE KEY` PEM after bounding the cost its own parameters
/// demand: a hostile file could otherwise ask for terabytes of scrypt memory (an abort)
/// or 10^8 PBKDF2 iterations.
fn decrypt_pkcs8_pem(pem: &str, password: &[u8]) -> Result<pkcs8::SecretDocument> {
    use pkcs8::der::Decode;
    use pkcs8::pkcs5::{EncryptionScheme, pbes2::Kdf};
    let malformed = |detail| Error::Malformed {
        format: "encrypted PKCS#8 private key",
        detail,
    };
    let (label, document) =
        pkcs8::Document::from_pem(pem).map_err(|_| malformed("not a PEM document"))?;
    if label != "ENCRYPTED PRIVATE KEY" {
        return Err(malformed("not an ENCRYPTED PRIVATE KEY"));
    }
    let info = pkcs8::EncryptedPrivateKeyInfoRef::from_der(document.as_bytes())
        .map_err(|_| malformed("not an EncryptedPrivateKeyInfo"))?;
    let acceptable = match &info.encryption_algorithm {
        EncryptionScheme::Pbes2(params) => match &params.kdf {
            Kdf::Pbkdf2(p) => p.iteration_count <= MAX_PBKDF2_ITERATIONS,
            Kdf::Scrypt(p) => {
                128u64
                    .saturating_mul(u64::from(p.block_size))
                    .saturating_mul(p.cost_parameter)
                    <= MAX_SCRYPT_MEMORY
                    && p.parallelization <= 16
            }
            _ => false,
        },
        // PBES1 (DES, RC2 with MD5 or SHA-1) and anything newer are not accepted.
        _ => false,
    };
    if !acceptable {
        return Err(malformed(
            "key-derivation parameters out of the accepted range",
        ));
    }
    info.decrypt(password).map_err(|_| Error::WrongPassword)
}

fn private_to_pem(key: &PrivateKey, password: Option<&[u8]>) -> Result<Zeroizing<String>> {
    let pem = match password {
        None => key.to_pkcs8_pem(LineEnding::LF),
        Some(pw) => {
            if pw.is_empty() {
                return Err(Error::InvalidArgument("the password is empty"));
            }
            key.to_pkcs8_encrypted_pem(pw, LineEnding::LF)
        }
    };
    pem.map_err(|_| Error::InvalidArgument("the key cannot be encoded as PKCS#8"))
}

fn public_from_der(der: &[u8]) -> Result<PublicKey> {
    let key = PublicKey::from_public_key_der(der).map_err(|_| Error::Malformed {
        format: "SPKI public key",
        detail: "not a DER-encoded SPKI RSA public key",
    })?;
    check_size(key.size() * 8)?;
    Ok(key)
}

fn public_from_pem(pem: &str) -> Result<PublicKey> {
    let key = PublicKey::from_public_key_pem(pem).map_err(|_| Error::Malformed {
        format: "SPKI public key",
        detail: "not a PEM-encoded SPKI RSA public key",
    })?;
    check_size(key.size() * 8)?;
    Ok(key)
}

fn public_der(key: &PublicKey) -> Vec<u8> {
    // Encoding a valid in-memory key cannot fail; an empty result would fail every
    // later parse rather than pass silently.
    key.to_public_key_der()
        .map(|d| d.as_bytes().to_vec())
        .unwrap_or_default()
}

macro_rules! private_key_type {
    ($name:ident, $public:ident, $what:literal) => {
        #[doc = concat!("A private RSA key for ", $what, ". Redacted in `Debug`; zeroized on drop by the `rsa` crate.")]
        #[derive(Clone)]
        pub struct $name(PrivateKey);

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({} bits, <redacted>)"), self.0.size() * 8)
            }
        }

        impl $name {
            /// A fresh 3072-bit key from the OS random number generator.
            pub fn generate() -> Result<Self> {
                Self::generate_with_bits(DEFAULT_RSA_BITS)
            }

            /// A fresh key of `bits` bits (2048 to 8192).
            pub fn generate_with_bits(bits: usize) -> Result<Self> {
                generate(bits).map($name)
            }

            /// Imports a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`).
            pub fn from_pkcs8_pem(pem: &str) -> Result<Self> {
                private_from_pem(pem, None).map($name)
            }

            /// Imports a password-encrypted PKCS#8 PEM private key
            /// (`-----BEGIN ENCRYPTED PRIVATE KEY-----`); a wrong password is
            /// [`Error::WrongPassword`].
            pub fn from_pkcs8_encrypted_pem(pem: &str, password: &[u8]) -> Result<Self> {
                private_from_pem(pem, Some(password)).map($name)
            }

            /// Exports as PKCS#8 PEM. The string is wiped on drop.
            pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>> {
                private_to_pem(&self.0, None)
            }

            /// Exports as password-encrypted PKCS#8 PEM (PBES2).
            pub fn to_pkcs8_encrypted_pem(&self, password: &[u8]) -> Result<Zeroizing<String>> {
                private_to_pem(&self.0, Some(password))
            }

            /// The public half.
            pub fn public_key(&self) -> $public {
                $public(self.0.to_public_key())
            }

            /// Modulus size in bits.
            pub fn bits(&self) -> usize {
                self.0.size() * 8
            }
        }
    };
}

macro_rules! public_key_type {
    ($name:ident, $what:literal) => {
        #[doc = concat!("A public RSA key for ", $what, ".")]
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(PublicKey);

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(
                    f,
                    concat!(stringify!($name), "({} bits, {})"),
                    self.bits(),
                    hex_prefix(&self.fingerprint())
                )
            }
        }

        impl $name {
            /// Imports an SPKI PEM public key (`-----BEGIN PUBLIC KEY-----`).
            pub fn from_spki_pem(pem: &str) -> Result<Self> {
                public_from_pem(pem).map($name)
            }

            /// Imports an SPKI DER public key.
            pub fn from_spki_der(der: &[u8]) -> Result<Self> {
                public_from_der(der).map($name)
            }

            /// Exports as SPKI PEM.
            pub fn to_spki_pem(&self) -> String {
                self.0.to_public_key_pem(LineEnding::LF).unwrap_or_default()
            }

            /// Exports as SPKI DER.
            pub fn to_spki_der(&self) -> Vec<u8> {
                public_der(&self.0)
            }

            /// SHA-256 of the SPKI DER encoding.
            pub fn fingerprint(&self) -> Fingerprint {
                Sha256::digest(self.to_spki_der()).into()
            }

            /// Modulus size in bits.
            pub fn bits(&self) -> usize {
                self.0.size() * 8
            }
        }
    };
}

fn hex_prefix(fp: &Fingerprint) -> String {
    fp[..8].iter().map(|b| format!("{b:02x}")).collect()
}

private_key_type!(SigningKey, VerifyingKey, "signing (RSA-PSS-SHA256)");
private_key_type!(
    DecryptionKey,
    EncryptionKey,
    "receiving wrapped keys (RSA-OAEP-SHA256)"
);
public_key_type!(VerifyingKey, "verifying signatures (RSA-PSS-SHA256)");
public_key_type!(
    EncryptionKey,
    "wrapping keys to its owner (RSA-OAEP-SHA256)"
);

impl SigningKey {
    /// RSA-PSS-SHA256 signature (MGF1-SHA256, 32-byte salt) over `message`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        let digest = Sha256::digest(message);
        self.0
            .sign_with_rng(&mut SysRng, rsa::Pss::<Sha256>::new(), &digest)
            .map_err(|_| Error::Random)
    }
}

impl VerifyingKey {
    /// Checks an RSA-PSS-SHA256 signature (salt length exactly 32).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<()> {
        self.0
            .pss_verify::<Sha256>(message, signature)
            .map_err(|_| Error::SignatureInvalid)
    }
}

impl EncryptionKey {
    /// RSA-OAEP-SHA256 (MGF1-SHA256) encryption of `plaintext` under `label`.
    pub fn wrap(&self, label: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        self.0
            .encrypt(
                &mut SysRng,
                Oaep::<Sha256>::new_with_label(label.to_vec()),
                plaintext,
            )
            .map_err(|_| Error::InvalidArgument("the plaintext is too long for this RSA key"))
    }
}

impl DecryptionKey {
    /// RSA-OAEP-SHA256 decryption (blinded) under `label`. Any failure is
    /// [`Error::AuthenticationFailed`]: one error for every cause, so failures reveal
    /// nothing about the padding.
    ///
    /// The EME-OAEP decoding is done here rather than by the `rsa` crate: `rsa` 0.10.0
    /// does not check that the leading byte of the encoded message is zero (RFC 8017
    /// §7.1.2 step 3g), which Wycheproof's OAEP vectors catch. The private operation
    /// is the crate's blinded, CRT-checked one.
    pub fn unwrap(&self, label: &[u8], ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let fail = || Error::AuthenticationFailed {
            what: "RSA-OAEP ciphertext",
        };
        let k = self.0.size();
        if ciphertext.len() != k {
            return Err(fail());
        }
        let precision = self.0.n().as_ref().bits_precision();
        let c = rsa::BoxedUint::from_be_slice(ciphertext, precision).map_err(|_| fail())?;
        let m = rsa::hazmat::rsa_decrypt_and_check(&self.0, Some(&mut SysRng), &c)
            .map_err(|_| fail())?;
        let full = Zeroizing::new(m.to_be_bytes());
        // m < n < 2^(8k): the encoding is the last k bytes, the rest are zero.
        let mut em = Zeroizing::new(full[full.len() - k..].to_vec());
        oaep_decode(&mut em, label).ok_or_else(fail)
    }
}

/// MGF1 with SHA-256: XORs the mask generated from `seed` into `out`.
fn mgf1_xor(seed: &[u8], out: &mut [u8]) {
    for (counter, chunk) in out.chunks_mut(32).enumerate() {
        let mask = Sha256::new()
            .chain_update(seed)
            .chain_update((counter as u32).to_be_bytes())
            .finalize();
        for (o, m) in chunk.iter_mut().zip(mask.iter()) {
            *o ^= m;
        }
    }
}

/// EME-OAEP decoding (RFC 8017 §7.1.2 step 3) with SHA-256, in constant time up to the
/// final accept/reject: every check is folded into one `Choice` before any branch.
fn oaep_decode(em: &mut [u8], label: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    use subtle::{ConditionallySelectable, ConstantTimeEq};
    const H: usize = 32;
    let k = em.len();
    if k < 2 * H + 2 {
        return None;
    }
    let (head, rest) = em.split_at_mut(1);
    let (masked_seed, masked_db) = rest.split_at_mut(H);
    mgf1_xor(masked_db, masked_seed);
    mgf1_xor(masked_seed, masked_db);
    let (db, seed) = (masked_db, masked_seed);
    let leading_zero = head[0].ct_eq(&0);
    let hash_ok = db[..H].ct_eq(Sha256::digest(label).as_slice());
    // After lHash: zero or more 0x00, then 0x01, then the message.
    let mut looking = subtle::Choice::from(1);
    let mut separator = 0u32;
    let mut junk = subtle::Choice::from(0);
    for (i, byte) in db[H..].iter().enumerate() {
        let is_zero = byte.ct_eq(&0);
        let is_one = byte.ct_eq(&1);
        separator.conditional_assign(&(i as u32), looking & is_one);
        junk |= looking & !is_zero & !is_one;
        looking &= !is_one;
    }
    seed.iter_mut().for_each(|b| *b = 0);
    let valid = leading_zero & hash_ok & !looking & !junk;
    if bool::from(valid) {
        Some(Zeroizing::new(db[H + separator as usize + 1..].to_vec()))
    } else {
        None
    }
}

/// A party's private keys: one pair for signing, one for receiving wrapped keys.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Signs requests or grants.
    pub signing: SigningKey,
    /// Unwraps keys sent to this party.
    pub decryption: DecryptionKey,
}

/// The public half of an [`Identity`]: what others pin and send to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicIdentity {
    /// Checks this party's signatures.
    pub verifying: VerifyingKey,
    /// Wraps keys to this party.
    pub encryption: EncryptionKey,
}

impl Identity {
    /// Two fresh 3072-bit key pairs.
    pub fn generate() -> Result<Self> {
        Self::generate_with_bits(DEFAULT_RSA_BITS)
    }

    /// Two fresh key pairs of `bits` bits.
    pub fn generate_with_bits(bits: usize) -> Result<Self> {
        Self::new(
            SigningKey::generate_with_bits(bits)?,
            DecryptionKey::generate_with_bits(bits)?,
        )
    }

    /// Pairs existing keys; refuses the same RSA key for both purposes.
    pub fn new(signing: SigningKey, decryption: DecryptionKey) -> Result<Self> {
        if signing.public_key().to_spki_der() == decryption.public_key().to_spki_der() {
            return Err(Error::InvalidArgument(
                "signing and encryption must use different RSA keys",
            ));
        }
        Ok(Identity {
            signing,
            decryption,
        })
    }

    /// The public half.
    pub fn public(&self) -> PublicIdentity {
        PublicIdentity {
            verifying: self.signing.public_key(),
            encryption: self.decryption.public_key(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_bounded() {
        assert!(matches!(
            SigningKey::generate_with_bits(1024),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            SigningKey::generate_with_bits(16384),
            Err(Error::InvalidArgument(_))
        ));
    }
}
