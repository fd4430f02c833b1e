//! The primitives every other layer builds on, all over AES-256 from RustCrypto: the
//! EAX AEAD (sealed records), the SP 800-108 KDF and CMAC PRF (the key hierarchy and
//! keyword roots), the GGM tree (per-epoch keys of the index), and the operating
//! system's randomness.

pub(crate) mod eax;
pub(crate) mod ggm;
pub(crate) mod kdf;
pub(crate) mod rng;
