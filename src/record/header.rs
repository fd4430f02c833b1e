//! The sealed record's header (FORMAT.md, "Sealed record"): magic, version, algorithm,
//! provider, record id, key generation, chunk size and nonce prefix. It is the
//! associated data of every chunk, so no field of it can change unnoticed.

use crate::crypto::eax::TAG_LEN;
use crate::error::{Error, Result};
use crate::keys::{ProviderId, RecordId, RecordKey};
use crate::wire::{Reader, put_preamble};

/// Magic bytes of a sealed record.
pub const RECORD_MAGIC: &[u8; 4] = b"MVRC";
/// The sealed-record format version this build writes and reads.
pub const RECORD_VERSION: u8 = 1;
/// Algorithm id of STREAM over AES-256-EAX, the only one in version 1.
pub const ALG_AES256_EAX_STREAM: u8 = 1;
/// Default plaintext bytes per chunk (64 KiB, as age uses): the streaming [`crate::Sealer`]'s,
/// and the one-shot [`seal`](crate::seal())'s for records of a single chunk or over
/// 512 KiB (see [`chunk_size_for`](crate::chunk_size_for)).
pub const DEFAULT_CHUNK_SIZE: u32 = 64 * 1024;
/// Smallest chunk size [`chunk_size_for`](crate::chunk_size_for) picks: 16 tag bytes per KiB at most.
pub const SMALLEST_SPLIT_CHUNK_SIZE: u32 = 1024;
/// Smallest chunk size a record may declare.
pub const MIN_CHUNK_SIZE: u32 = 16;
/// Largest chunk size a record may declare (16 MiB): bounds what an opener buffers.
pub const MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;
/// Length of the random nonce prefix.
pub const NONCE_PREFIX_LEN: usize = 11;
/// Authentication tag bytes added to every chunk.
pub const CHUNK_OVERHEAD: usize = TAG_LEN;

pub(super) const FORMAT: &str = "sealed record";
/// Bytes of the header before the provider id: magic, version, algorithm, id length.
pub(crate) const HEADER_FIXED_PREFIX: usize = 7;
/// Bytes of the header after the provider id: record id, generation, chunk size, prefix.
pub(crate) const HEADER_FIXED_SUFFIX: usize = 16 + 4 + 4 + NONCE_PREFIX_LEN;

/// The public, authenticated header of a sealed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader {
    pub(super) provider: ProviderId,
    pub(super) record: RecordId,
    pub(super) generation: u32,
    pub(super) chunk_size: u32,
    pub(super) nonce_prefix: [u8; NONCE_PREFIX_LEN],
}

impl RecordHeader {
    /// The provider that sealed the record.
    pub fn provider(&self) -> &ProviderId {
        &self.provider
    }
    /// The record's id.
    pub fn record_id(&self) -> RecordId {
        self.record
    }
    /// The key generation the record was sealed under.
    pub fn generation(&self) -> u32 {
        self.generation
    }
    /// Plaintext bytes per chunk.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    pub(crate) fn new(
        key: &RecordKey,
        chunk_size: u32,
        nonce_prefix: [u8; NONCE_PREFIX_LEN],
    ) -> Result<Self> {
        check_chunk_size(chunk_size)?;
        Ok(RecordHeader {
            provider: key.provider().clone(),
            record: key.record_id(),
            generation: key.generation(),
            chunk_size,
            nonce_prefix,
        })
    }

    /// The header's bytes, exactly as they start the sealed record.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_FIXED_PREFIX + 64 + HEADER_FIXED_SUFFIX);
        put_preamble(
            &mut out,
            RECORD_MAGIC,
            RECORD_VERSION,
            ALG_AES256_EAX_STREAM,
        );
        self.provider.encode_into(&mut out);
        out.extend_from_slice(self.record.as_bytes());
        out.extend_from_slice(&self.generation.to_be_bytes());
        out.extend_from_slice(&self.chunk_size.to_be_bytes());
        out.extend_from_slice(&self.nonce_prefix);
        out
    }

    /// Parses a header from the start of `bytes`; returns it and its length.
    pub fn parse(bytes: &[u8]) -> Result<(Self, usize)> {
        let mut r = Reader::new(bytes, FORMAT);
        r.preamble(RECORD_MAGIC, RECORD_VERSION, &[ALG_AES256_EAX_STREAM])?;
        let provider = ProviderId::decode(&mut r)?;
        let record = RecordId::from_bytes(r.array("record id")?);
        let generation = r.u32("key generation")?;
        let chunk_size = r.u32("chunk size")?;
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
            return Err(r.malformed("chunk size out of range"));
        }
        let nonce_prefix = r.array("nonce prefix")?;
        let used = bytes.len() - r.remaining();
        Ok((
            RecordHeader {
                provider,
                record,
                generation,
                chunk_size,
                nonce_prefix,
            },
            used,
        ))
    }

    /// Length of the header in bytes.
    pub fn len(&self) -> usize {
        HEADER_FIXED_PREFIX + self.provider.as_str().len() + HEADER_FIXED_SUFFIX
    }

    /// Always false: a header has at least its fixed fields.
    pub fn is_empty(&self) -> bool {
        false
    }
}

pub(crate) fn check_chunk_size(chunk_size: u32) -> Result<()> {
    if (MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
        Ok(())
    } else {
        Err(Error::InvalidArgument("chunk size must be 16 B to 16 MiB"))
    }
}
