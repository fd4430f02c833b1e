//! The primitives every other layer builds on, all over AES-256 from RustCrypto: CMAC
//! (the KDF's PRF and EAX's OMAC), the EAX AEAD with its lane scheduler (sealed
//! records), the SP 800-108 KDF (the key hierarchy and keyword roots), the GGM tree
//! (per-epoch keys of the index), RFC 9162 Merkle trees (the providers' signed logs), and the operating system's randomness.

pub(crate) mod cmac;
pub(crate) mod eax;
pub(crate) mod ggm;
pub(crate) mod kdf;
mod lanes;
pub(crate) mod merkle;
pub(crate) mod rng;
mod wide_ctr;
pub(crate) mod wiped;
