//! Password-protected key files for a provider's master key.
//!
//! The password goes through Argon2id (default; memory-hard) or PBKDF2-HMAC-SHA256 (the
//! FIPS option), with the salt and parameters stored in the file. The derived key seals
//! the master key with AES-256-EAX, with everything before the ciphertext as associated
//! data, so the parameters cannot be changed unnoticed. A SHA-256 checksum over the whole
//! file tells a damaged file ([`Error::Corrupt`]) from a wrong password
//! ([`Error::WrongPassword`]).
//!
//! Byte layout: `FORMAT.md`, section "Key file".
//!
//! **Leaks** to whoever holds the file: the provider id and the KDF parameters. The
//! file's strength against offline guessing is that of the password under those
//! parameters.
//!
//! ```
//! use medvault::{MasterKey, ProviderId};
//! use medvault::keyfile::{self, PasswordKdf};
//! let master = MasterKey::generate()?;
//! let provider = ProviderId::new("st-mary-hospital")?;
//! let file = keyfile::lock(&master, &provider, b"correct horse battery staple", PasswordKdf::default())?;
//! let unlocked = keyfile::unlock(&file, b"correct horse battery staple")?;
//! assert_eq!(unlocked.provider, provider);
//! assert!(matches!(keyfile::unlock(&file, b"wrong"), Err(medvault::Error::WrongPassword)));
//! # Ok::<(), medvault::Error>(())
//! ```

use aes::Aes256Enc;
use argon2::{Algorithm, Argon2, Params, Version};
use cipher::KeyInit;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::crypto::eax::{Eax, TAG_LEN};
use crate::crypto::rng;
use crate::error::{Error, Result};
use crate::keys::{MasterKey, ProviderId};
use crate::wire::{Reader, put_preamble};

/// Magic bytes of a key file.
pub(crate) const KEY_FILE_MAGIC: &[u8; 4] = b"MVKF";
/// The key-file format version this build writes and reads.
pub(crate) const KEY_FILE_VERSION: u8 = 1;
/// Algorithm id: Argon2id (v0x13) protects the key.
pub(crate) const ALG_ARGON2ID: u8 = 1;
/// Algorithm id: PBKDF2-HMAC-SHA256 protects the key.
pub(crate) const ALG_PBKDF2_SHA256: u8 = 2;

const FORMAT: &str = "key file";
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 16;
const CHECKSUM_LEN: usize = 32;

/// Bounds on stored parameters: a hostile file cannot make unlocking take hours or
/// gigabytes, and a writer cannot choose parameters too weak to mean anything.
const ARGON2_MAX_MEMORY_KIB: u32 = 1024 * 1024;
const ARGON2_MIN_MEMORY_KIB: u32 = 8 * 1024;
const ARGON2_MAX_ITERATIONS: u32 = 64;
const ARGON2_MAX_PARALLELISM: u32 = 64;
const PBKDF2_MIN_ITERATIONS: u32 = 100_000;
const PBKDF2_MAX_ITERATIONS: u32 = 100_000_000;

/// How the password becomes a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordKdf {
    /// Argon2id, RFC 9106.
    Argon2id {
        /// Memory in KiB (8 MiB to 1 GiB).
        memory_kib: u32,
        /// Passes over memory (1 to 64).
        iterations: u32,
        /// Lanes (1 to 64).
        parallelism: u32,
    },
    /// PBKDF2-HMAC-SHA256, for deployments that must use FIPS-approved algorithms.
    Pbkdf2Sha256 {
        /// Iteration count (100,000 to 100,000,000).
        iterations: u32,
    },
}

impl Default for PasswordKdf {
    /// Argon2id with 19 MiB, 2 passes, 1 lane: OWASP's recommended minimum.
    fn default() -> Self {
        PasswordKdf::Argon2id {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl PasswordKdf {
    /// PBKDF2-HMAC-SHA256 with 600,000 iterations (OWASP 2023).
    pub const PBKDF2_DEFAULT: PasswordKdf = PasswordKdf::Pbkdf2Sha256 {
        iterations: 600_000,
    };

    fn check(&self) -> bool {
        match *self {
            PasswordKdf::Argon2id {
                memory_kib,
                iterations,
                parallelism,
            } => {
                (ARGON2_MIN_MEMORY_KIB..=ARGON2_MAX_MEMORY_KIB).contains(&memory_kib)
                    && (1..=ARGON2_MAX_ITERATIONS).contains(&iterations)
                    && (1..=ARGON2_MAX_PARALLELISM).contains(&parallelism)
                    && memory_kib >= 8 * parallelism
            }
            PasswordKdf::Pbkdf2Sha256 { iterations } => {
                (PBKDF2_MIN_ITERATIONS..=PBKDF2_MAX_ITERATIONS).contains(&iterations)
            }
        }
    }

    fn algorithm(&self) -> u8 {
        match self {
            PasswordKdf::Argon2id { .. } => ALG_ARGON2ID,
            PasswordKdf::Pbkdf2Sha256 { .. } => ALG_PBKDF2_SHA256,
        }
    }

    fn derive(&self, password: &[u8], salt: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
        let mut key = Zeroizing::new([0u8; 32]);
        match *self {
            PasswordKdf::Argon2id {
                memory_kib,
                iterations,
                parallelism,
            } => {
                let params = Params::new(memory_kib, iterations, parallelism, Some(32))
                    .map_err(|_| Error::InvalidArgument("Argon2id parameters out of range"))?;
                Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
                    .hash_password_into(password, salt, &mut *key)
                    .map_err(|_| Error::InvalidArgument("Argon2id parameters out of range"))?;
            }
            PasswordKdf::Pbkdf2Sha256 { iterations } => {
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut *key);
            }
        }
        Ok(key)
    }
}

/// A key file's contents after a successful unlock.
#[derive(Debug)]
pub struct Unlocked {
    /// The provider the key belongs to.
    pub provider: ProviderId,
    /// The provider's master key.
    pub master_key: MasterKey,
    /// How the file was protected.
    pub kdf: PasswordKdf,
}

/// Writes `master` into a key file protected by `password` (at least 1 byte).
pub fn lock(
    master: &MasterKey,
    provider: &ProviderId,
    password: &[u8],
    kdf: PasswordKdf,
) -> Result<Vec<u8>> {
    lock_with(
        master,
        provider,
        password,
        kdf,
        rng::array()?,
        rng::array()?,
    )
}

pub(crate) fn lock_with(
    master: &MasterKey,
    provider: &ProviderId,
    password: &[u8],
    kdf: PasswordKdf,
    salt: [u8; SALT_LEN],
    nonce: [u8; NONCE_LEN],
) -> Result<Vec<u8>> {
    if password.is_empty() {
        return Err(Error::InvalidArgument("the password is empty"));
    }
    if !kdf.check() {
        return Err(Error::InvalidArgument(
            "password KDF parameters out of range",
        ));
    }
    let mut out = Vec::with_capacity(160);
    put_preamble(&mut out, KEY_FILE_MAGIC, KEY_FILE_VERSION, kdf.algorithm());
    match kdf {
        PasswordKdf::Argon2id {
            memory_kib,
            iterations,
            parallelism,
        } => {
            out.extend_from_slice(&memory_kib.to_be_bytes());
            out.extend_from_slice(&iterations.to_be_bytes());
            out.extend_from_slice(&parallelism.to_be_bytes());
        }
        PasswordKdf::Pbkdf2Sha256 { iterations } => {
            out.extend_from_slice(&iterations.to_be_bytes())
        }
    }
    out.extend_from_slice(&salt);
    provider.encode_into(&mut out);
    out.extend_from_slice(&nonce);
    let wrapping_key = kdf.derive(password, &salt)?;
    let eax = Eax::new(Aes256Enc::new((&*wrapping_key).into()));
    let mut wrapped = Zeroizing::new(*master.expose_secret());
    let tag = eax.seal_detached(&nonce, &out, &mut *wrapped);
    out.extend_from_slice(&*wrapped);
    out.extend_from_slice(&tag);
    let checksum = Sha256::digest(&out);
    out.extend_from_slice(&checksum);
    Ok(out)
}

/// Reads a key file's public part (provider and KDF) without the password.
pub fn inspect(file: &[u8]) -> Result<(ProviderId, PasswordKdf)> {
    let parsed = parse(file)?;
    Ok((parsed.provider, parsed.kdf))
}

struct Parsed<'a> {
    kdf: PasswordKdf,
    salt: &'a [u8],
    provider: ProviderId,
    nonce: &'a [u8],
    associated: &'a [u8],
    wrapped: [u8; 32],
    tag: &'a [u8],
}

fn parse(file: &[u8]) -> Result<Parsed<'_>> {
    let algorithm = Reader::new(file, FORMAT).preamble(
        KEY_FILE_MAGIC,
        KEY_FILE_VERSION,
        &[ALG_ARGON2ID, ALG_PBKDF2_SHA256],
    )?;
    // The checksum comes first: any damage past the preamble reads as damage, whichever
    // field it hit, rather than as a confusing parse error.
    let body_len = file
        .len()
        .checked_sub(CHECKSUM_LEN)
        .filter(|&n| n >= 6)
        .ok_or(Error::Truncated {
            format: FORMAT,
            detail: "shorter than its checksum",
        })?;
    let (body, checksum) = file.split_at(body_len);
    if !bool::from(Sha256::digest(body).as_slice().ct_eq(checksum)) {
        return Err(Error::Corrupt {
            what: format!("{FORMAT}: checksum"),
        });
    }
    let mut r = Reader::new(&body[6..], FORMAT);
    let kdf = match algorithm {
        ALG_ARGON2ID => PasswordKdf::Argon2id {
            memory_kib: r.u32("Argon2id memory")?,
            iterations: r.u32("Argon2id iterations")?,
            parallelism: r.u32("Argon2id parallelism")?,
        },
        // preamble() admitted only the two ids, so this is ALG_PBKDF2_SHA256.
        _ => PasswordKdf::Pbkdf2Sha256 {
            iterations: r.u32("PBKDF2 iterations")?,
        },
    };
    let salt = r.take(SALT_LEN, "salt")?;
    let provider = ProviderId::decode(&mut r)?;
    let nonce = r.take(NONCE_LEN, "nonce")?;
    let associated = &body[..body.len() - r.remaining()];
    let wrapped = r.array("wrapped key")?;
    let tag = r.take(TAG_LEN, "tag")?;
    r.finish()?;
    // An intact file with absurd parameters is refused before any work.
    if !kdf.check() {
        return Err(Error::Malformed {
            format: FORMAT,
            detail: "password KDF parameters out of range",
        });
    }
    Ok(Parsed {
        kdf,
        salt,
        provider,
        nonce,
        associated,
        wrapped,
        tag,
    })
}

/// Unlocks a key file. A wrong password is [`Error::WrongPassword`]; a damaged or cut
/// file is [`Error::Corrupt`] (or [`Error::Truncated`] if not even the checksum is
/// left); an unknown format version is [`Error::UnsupportedVersion`].
pub fn unlock(file: &[u8], password: &[u8]) -> Result<Unlocked> {
    let parsed = parse(file)?;
    let wrapping_key = parsed.kdf.derive(password, parsed.salt)?;
    let eax = Eax::new(Aes256Enc::new((&*wrapping_key).into()));
    let mut key = Zeroizing::new(parsed.wrapped);
    if !eax.open_detached(parsed.nonce, parsed.associated, &mut *key, parsed.tag) {
        return Err(Error::WrongPassword);
    }
    Ok(Unlocked {
        provider: parsed.provider,
        master_key: MasterKey::from_bytes(*key),
        kdf: parsed.kdf,
    })
}
