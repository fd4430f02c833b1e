//! The paper's ciphers, **for comparison only — never for records.**
//!
//! The paper encrypts files with DES and AES under password-based encryption (PBE) and
//! with RSA, and compares their speed. This module reproduces those schemes exactly
//! enough to measure them and to show what they lack; it is compiled only with the
//! `lab` cargo feature, so EHR software linking medvault does not carry DES or
//! Blowfish unless it asks.
//!
//! - [`PbeKey`]: AES-128/256-CBC, DES-CBC, 3DES-CBC (EDE3) and Blowfish-CBC (128-bit
//!   key), PKCS#7 padding, the `Salted__` header, key and IV from
//!   PBKDF2-HMAC-SHA256: byte for byte what `openssl enc -<cipher> -pbkdf2 -iter N -md
//!   sha256` writes and reads.
//! - [`rsa_encrypt_chunked`]: the file cut into RSA-OAEP-SHA256 blocks, as the paper
//!   did; [`hybrid_encrypt`]: what to do instead (RSA-OAEP wraps a fresh key, the file
//!   is sealed as a medvault record).
//!
//! What these schemes miss, and why records use [`crate::seal()`] instead: CBC without a
//! MAC is malleable (flipping a ciphertext bit flips the same bit of the next plaintext
//! block, undetected); a wrong password is caught only by the padding check, which a
//! random key passes about once in 256 tries, yielding garbage instead of an error;
//! chunked RSA blocks can be dropped or reordered without detection.
//!
//! ```
//! use medvault::lab::{LabCipher, pbe_decrypt, pbe_encrypt};
//! // What `openssl enc -des-cbc -pbkdf2 -iter 1000 -md sha256` writes, and reads back.
//! let file = pbe_encrypt(LabCipher::DesCbc, b"pw", 1000, b"HbA1c 7.9 %")?;
//! assert!(file.starts_with(b"Salted__"));
//! assert_eq!(pbe_decrypt(LabCipher::DesCbc, b"pw", 1000, &file)?, b"HbA1c 7.9 %");
//! // A flipped ciphertext bit goes unnoticed by CBC: decryption may still succeed.
//! # Ok::<(), medvault::Error>(())
//! ```

use cipher::block_padding::Pkcs7;
use cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keys::identity::{DecryptionKey, EncryptionKey};
use crate::keys::{ProviderId, RecordId, RecordKey};

/// The header `openssl enc` writes before the salt.
pub const SALTED_MAGIC: &[u8; 8] = b"Salted__";
/// `openssl enc -pbkdf2`'s default iteration count.
pub const OPENSSL_DEFAULT_ITERATIONS: u32 = 10_000;
const FORMAT: &str = "openssl enc";

/// A cipher of the paper's comparison, in CBC mode with PKCS#7 padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LabCipher {
    /// AES-128-CBC.
    Aes128Cbc,
    /// AES-256-CBC.
    Aes256Cbc,
    /// DES-CBC (56-bit key; broken by exhaustive search since 1998).
    DesCbc,
    /// Triple DES (EDE, three keys) in CBC mode.
    TripleDesCbc,
    /// Blowfish-CBC with a 128-bit key (OpenSSL's `bf-cbc`).
    BlowfishCbc,
}

impl LabCipher {
    /// Every cipher, in the order of the report.
    pub const ALL: [LabCipher; 5] = [
        LabCipher::Aes128Cbc,
        LabCipher::Aes256Cbc,
        LabCipher::DesCbc,
        LabCipher::TripleDesCbc,
        LabCipher::BlowfishCbc,
    ];

    /// The name `openssl enc` knows it by.
    pub fn openssl_name(self) -> &'static str {
        match self {
            LabCipher::Aes128Cbc => "aes-128-cbc",
            LabCipher::Aes256Cbc => "aes-256-cbc",
            LabCipher::DesCbc => "des-cbc",
            LabCipher::TripleDesCbc => "des-ede3-cbc",
            LabCipher::BlowfishCbc => "bf-cbc",
        }
    }

    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            LabCipher::Aes128Cbc | LabCipher::BlowfishCbc => 16,
            LabCipher::Aes256Cbc => 32,
            LabCipher::DesCbc => 8,
            LabCipher::TripleDesCbc => 24,
        }
    }

    /// Block (and IV) length in bytes.
    pub fn block_len(self) -> usize {
        match self {
            LabCipher::Aes128Cbc | LabCipher::Aes256Cbc => 16,
            _ => 8,
        }
    }

    /// True for the ciphers OpenSSL 3 keeps in its legacy provider.
    pub fn is_legacy(self) -> bool {
        matches!(self, LabCipher::DesCbc | LabCipher::BlowfishCbc)
    }

    fn check(self, key: &[u8], iv: &[u8]) -> Result<()> {
        if key.len() != self.key_len() {
            return Err(Error::InvalidArgument("wrong key length for this cipher"));
        }
        if iv.len() != self.block_len() {
            return Err(Error::InvalidArgument("wrong IV length for this cipher"));
        }
        Ok(())
    }
}

impl std::fmt::Display for LabCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LabCipher::Aes128Cbc => "AES-128-CBC",
            LabCipher::Aes256Cbc => "AES-256-CBC",
            LabCipher::DesCbc => "DES-CBC",
            LabCipher::TripleDesCbc => "3DES-CBC",
            LabCipher::BlowfishCbc => "Blowfish-CBC",
        })
    }
}

/// Runs `$body` with `$mode` bound to the `cbc` mode type of `$cipher`'s block cipher.
macro_rules! with_mode {
    ($cipher:expr, $mode:ident, $body:expr) => {
        match $cipher {
            LabCipher::Aes128Cbc => {
                type $mode = aes::Aes128;
                $body
            }
            LabCipher::Aes256Cbc => {
                type $mode = aes::Aes256;
                $body
            }
            LabCipher::DesCbc => {
                type $mode = des::Des;
                $body
            }
            LabCipher::TripleDesCbc => {
                type $mode = des::TdesEde3;
                $body
            }
            LabCipher::BlowfishCbc => {
                type $mode = blowfish::Blowfish;
                $body
            }
        }
    };
}

fn cbc_new_error(_: cipher::InvalidLength) -> Error {
    Error::InvalidArgument("wrong key or IV length for this cipher")
}

/// CBC encryption with PKCS#7 padding under a raw key and IV.
pub fn cbc_encrypt(cipher: LabCipher, key: &[u8], iv: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    cipher.check(key, iv)?;
    with_mode!(cipher, C, {
        let mode = cbc::Encryptor::<C>::new_from_slices(key, iv).map_err(cbc_new_error)?;
        Ok(mode.encrypt_padded_vec::<Pkcs7>(plaintext))
    })
}

/// CBC decryption, removing PKCS#7 padding. Bad padding is the only check there is:
/// see the module documentation.
pub fn cbc_decrypt(cipher: LabCipher, key: &[u8], iv: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>> {
    cipher.check(key, iv)?;
    if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(cipher.block_len()) {
        return Err(Error::Malformed {
            format: FORMAT,
            detail: "ciphertext is not a whole number of blocks",
        });
    }
    with_mode!(cipher, C, {
        let mode = cbc::Decryptor::<C>::new_from_slices(key, iv).map_err(cbc_new_error)?;
        mode.decrypt_padded_vec::<Pkcs7>(ciphertext)
            .map_err(|_| Error::Malformed {
                format: FORMAT,
                detail: "bad padding (a wrong password, or damaged data)",
            })
    })
}

/// CBC without padding on whole blocks, for known-answer tests of the block ciphers.
pub fn cbc_encrypt_blocks(
    cipher: LabCipher,
    key: &[u8],
    iv: &[u8],
    blocks: &[u8],
) -> Result<Vec<u8>> {
    cipher.check(key, iv)?;
    if !blocks.len().is_multiple_of(cipher.block_len()) {
        return Err(Error::InvalidArgument("not a whole number of blocks"));
    }
    with_mode!(cipher, C, {
        let mut mode = cbc::Encryptor::<C>::new_from_slices(key, iv).map_err(cbc_new_error)?;
        let mut out = blocks.to_vec();
        let (chunks, _) = cipher::Block::<C>::slice_as_chunks_mut(&mut out);
        mode.encrypt_blocks(chunks);
        Ok(out)
    })
}

/// A PBE key and IV derived from a password the way `openssl enc -pbkdf2 -md sha256`
/// derives them: PBKDF2-HMAC-SHA256(password, salt, iterations) gives key ‖ IV.
pub struct PbeKey {
    cipher: LabCipher,
    salt: [u8; 8],
    key_iv: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for PbeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PbeKey({}, <redacted>)", self.cipher)
    }
}

impl PbeKey {
    /// Derives the key and IV for `cipher` from `password` and `salt`.
    pub fn derive(
        cipher: LabCipher,
        password: &[u8],
        salt: [u8; 8],
        iterations: u32,
    ) -> Result<Self> {
        if iterations == 0 {
            return Err(Error::InvalidArgument(
                "PBKDF2 needs at least one iteration",
            ));
        }
        let mut key_iv = Zeroizing::new(vec![0u8; cipher.key_len() + cipher.block_len()]);
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, &salt, iterations, &mut key_iv);
        Ok(PbeKey {
            cipher,
            salt,
            key_iv,
        })
    }

    /// A fresh random salt, then [`PbeKey::derive`].
    pub fn generate(cipher: LabCipher, password: &[u8], iterations: u32) -> Result<Self> {
        let mut salt = [0u8; 8];
        crate::crypto::rng::fill(&mut salt)?;
        PbeKey::derive(cipher, password, salt, iterations)
    }

    /// The cipher.
    pub fn cipher(&self) -> LabCipher {
        self.cipher
    }

    /// The salt (public: it is written into the file).
    pub fn salt(&self) -> [u8; 8] {
        self.salt
    }

    fn key(&self) -> &[u8] {
        &self.key_iv[..self.cipher.key_len()]
    }

    fn iv(&self) -> &[u8] {
        &self.key_iv[self.cipher.key_len()..]
    }

    /// `Salted__` ‖ salt ‖ CBC-PKCS#7(plaintext): what `openssl enc -e` writes.
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<Vec<u8>> {
        let body = cbc_encrypt(self.cipher, self.key(), self.iv(), plaintext)?;
        let mut out = Vec::with_capacity(16 + body.len());
        out.extend_from_slice(SALTED_MAGIC);
        out.extend_from_slice(&self.salt);
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Decrypts what [`PbeKey::encrypt`] or `openssl enc -e` wrote with this key's salt.
    pub fn decrypt(&self, file: &[u8]) -> Result<Vec<u8>> {
        let (salt, body) = split_salted(file)?;
        if salt != self.salt {
            return Err(Error::InvalidArgument(
                "the file was encrypted under another salt: derive the key from its salt",
            ));
        }
        cbc_decrypt(self.cipher, self.key(), self.iv(), body)
    }
}

fn split_salted(file: &[u8]) -> Result<([u8; 8], &[u8])> {
    if file.len() < 16 {
        return Err(Error::Truncated {
            format: FORMAT,
            detail: "shorter than the Salted__ header",
        });
    }
    if &file[..8] != SALTED_MAGIC {
        return Err(Error::Malformed {
            format: FORMAT,
            detail: "no Salted__ header",
        });
    }
    let mut salt = [0u8; 8];
    salt.copy_from_slice(&file[8..16]);
    Ok((salt, &file[16..]))
}

/// `openssl enc -e -<cipher> -pbkdf2 -iter <iterations> -md sha256`, with a fresh salt.
pub fn pbe_encrypt(
    cipher: LabCipher,
    password: &[u8],
    iterations: u32,
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    PbeKey::generate(cipher, password, iterations)?.encrypt(plaintext)
}

/// `openssl enc -d -<cipher> -pbkdf2 -iter <iterations> -md sha256`: derives the key
/// from the file's salt and decrypts.
pub fn pbe_decrypt(
    cipher: LabCipher,
    password: &[u8],
    iterations: u32,
    file: &[u8],
) -> Result<Vec<u8>> {
    let (salt, _) = split_salted(file)?;
    PbeKey::derive(cipher, password, salt, iterations)?.decrypt(file)
}

/// The largest plaintext block RSA-OAEP-SHA256 takes under a key of `modulus_len` bytes.
pub fn rsa_block_len(modulus_len: usize) -> usize {
    modulus_len.saturating_sub(2 * 32 + 2)
}

/// The paper's RSA file encryption: the file cut into blocks of at most
/// [`rsa_block_len`] bytes, each RSA-OAEP-SHA256-encrypted (empty label), the
/// ciphertext blocks concatenated. Slow (one RSA operation per 190 or 318 bytes) and
/// unordered: blocks can be dropped or swapped undetected.
pub fn rsa_encrypt_chunked(key: &EncryptionKey, plaintext: &[u8]) -> Result<Vec<u8>> {
    let k = key.bits().div_ceil(8);
    let block = rsa_block_len(k);
    let mut out = Vec::with_capacity(plaintext.len().div_ceil(block).max(1) * k);
    // An empty file is one block holding nothing, so it round-trips.
    if plaintext.is_empty() {
        out.extend(key.wrap(b"", b"")?);
    }
    for chunk in plaintext.chunks(block) {
        out.extend(key.wrap(b"", chunk)?);
    }
    Ok(out)
}

/// Decrypts [`rsa_encrypt_chunked`]'s output; any damaged block is
/// [`Error::AuthenticationFailed`].
pub fn rsa_decrypt_chunked(key: &DecryptionKey, ciphertext: &[u8]) -> Result<Vec<u8>> {
    let k = key.bits().div_ceil(8);
    if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(k) {
        return Err(Error::Malformed {
            format: "chunked RSA",
            detail: "not a whole number of RSA blocks",
        });
    }
    let mut out = Vec::with_capacity(ciphertext.len() / k * rsa_block_len(k));
    for block in ciphertext.chunks(k) {
        out.extend_from_slice(&key.unwrap(b"", block)?);
    }
    Ok(out)
}

const HYBRID_LABEL: &[u8] = b"medvault/v1/lab-hybrid";
/// Magic bytes of a hybrid RSA file (FORMAT.md, "Lab formats").
pub const HYBRID_MAGIC: &[u8; 4] = b"MVLH";
/// The hybrid RSA file format version.
pub const HYBRID_VERSION: u8 = 1;

fn hybrid_scope() -> Result<(ProviderId, RecordId)> {
    Ok((
        ProviderId::new("lab-hybrid")?,
        RecordId::from_bytes([0; 16]),
    ))
}

/// What to do instead of chunked RSA: a fresh 256-bit key sealed with RSA-OAEP, the
/// file sealed with it as a medvault record (AES-256-EAX STREAM). Output (`MVLH`,
/// FORMAT.md): preamble ‖ `[len]₁₆` ‖ RSA-OAEP(key) ‖ sealed record.
pub fn hybrid_encrypt(key: &EncryptionKey, plaintext: &[u8]) -> Result<Vec<u8>> {
    let mut file_key = Zeroizing::new([0u8; 32]);
    crate::crypto::rng::fill(file_key.as_mut())?;
    let wrapped = key.wrap(HYBRID_LABEL, file_key.as_ref())?;
    let (provider, record) = hybrid_scope()?;
    let record_key = RecordKey::from_bytes(provider, 0, record, *file_key);
    let sealed = crate::record::seal::seal(&record_key, plaintext)?;
    let mut out = Vec::with_capacity(8 + wrapped.len() + sealed.len());
    crate::wire::put_preamble(&mut out, HYBRID_MAGIC, HYBRID_VERSION, 1);
    out.extend_from_slice(&(wrapped.len() as u16).to_be_bytes());
    out.extend_from_slice(&wrapped);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens [`hybrid_encrypt`]'s output: any change anywhere is an error.
pub fn hybrid_decrypt(key: &DecryptionKey, file: &[u8]) -> Result<Vec<u8>> {
    let mut r = crate::wire::Reader::new(file, "hybrid RSA");
    r.preamble(HYBRID_MAGIC, HYBRID_VERSION, &[1])?;
    let len = usize::from(u16::from_be_bytes(r.array("wrapped key length")?));
    let wrapped = r.take(len, "wrapped key")?;
    let sealed = r.take(r.remaining(), "sealed record")?;
    let file_key = key.unwrap(HYBRID_LABEL, wrapped)?;
    let file_key: [u8; 32] =
        file_key
            .as_slice()
            .try_into()
            .map_err(|_| Error::AuthenticationFailed {
                what: "RSA-OAEP ciphertext",
            })?;
    let (provider, record) = hybrid_scope()?;
    let record_key = RecordKey::from_bytes(provider, 0, record, file_key);
    crate::record::seal::open(&record_key, sealed)
}
