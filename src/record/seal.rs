//! Sealed records: the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015)
//! over AES-256-EAX, and one-shot [`seal`] / [`open`] for records that fit in memory.
//!
//! A sealed record is a header followed by chunks. Every chunk is encrypted under the
//! record key with nonce `prefix (11 B) ‖ chunk index (u32 BE) ‖ last flag (1 B)` and the
//! whole header as associated data, so:
//! * changing any header field fails authentication (or is refused before decryption);
//! * reordering, dropping or duplicating chunks fails (the index is in the nonce);
//! * cutting the record at a chunk boundary is detected (no chunk carries the last flag)
//!   and reported as [`Error::Truncated`];
//! * appending anything fails (the old last chunk is no longer last).
//!
//! Byte layout: `FORMAT.md`, section "Sealed record".
//!
//! **Leaks** to whoever stores it: the provider id, the record id, the key generation, the
//! chunk size and the plaintext length (to within nothing: length = body − 16 × chunks).
//! Pad the plaintext yourself if its length is sensitive.

use aes::Aes256Enc;
use cipher::KeyInit;
use zeroize::{Zeroize, Zeroizing};

use rayon::prelude::*;

use crate::crypto::eax::{Block, Eax, LANES, TAG_LEN, combine, tags_equal};
use crate::crypto::rng;
use crate::error::{Error, Result};
use crate::keys::{ProviderId, RecordId, RecordKey, RecordKeySource};
use crate::parallel::{self, Work};
use crate::wire::{Reader, put_preamble};

/// Magic bytes of a sealed record.
pub const RECORD_MAGIC: &[u8; 4] = b"MVRC";
/// The sealed-record format version this build writes and reads.
pub const RECORD_VERSION: u8 = 1;
/// Algorithm id of STREAM over AES-256-EAX, the only one in version 1.
pub const ALG_AES256_EAX_STREAM: u8 = 1;
/// Default plaintext bytes per chunk (64 KiB, as age uses): the streaming [`crate::Sealer`]'s,
/// and the one-shot [`seal`]'s for records of a single chunk or over 512 KiB (see
/// [`chunk_size_for`]).
pub const DEFAULT_CHUNK_SIZE: u32 = 64 * 1024;
/// Smallest chunk size [`chunk_size_for`] picks: 16 tag bytes per KiB at most.
pub const SMALLEST_SPLIT_CHUNK_SIZE: u32 = 1024;
/// Smallest chunk size a record may declare.
pub const MIN_CHUNK_SIZE: u32 = 16;
/// Largest chunk size a record may declare (16 MiB): bounds what an opener buffers.
pub const MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;
/// Length of the random nonce prefix.
pub const NONCE_PREFIX_LEN: usize = 11;
/// Authentication tag bytes added to every chunk.
pub const CHUNK_OVERHEAD: usize = TAG_LEN;

const FORMAT: &str = "sealed record";
/// Bytes of the header before the provider id: magic, version, algorithm, id length.
pub(crate) const HEADER_FIXED_PREFIX: usize = 7;
/// Bytes of the header after the provider id: record id, generation, chunk size, prefix.
pub(crate) const HEADER_FIXED_SUFFIX: usize = 16 + 4 + 4 + NONCE_PREFIX_LEN;

/// The public, authenticated header of a sealed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader {
    provider: ProviderId,
    record: RecordId,
    generation: u32,
    chunk_size: u32,
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
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

/// Encrypts and decrypts the chunks of one record.
pub(crate) struct ChunkCipher {
    eax: Eax<Aes256Enc>,
    header_mac: Block,
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
    chunk_size: usize,
}

impl ChunkCipher {
    pub(crate) fn new(key: &RecordKey, header: &RecordHeader) -> Self {
        let eax = Eax::new(Aes256Enc::new(key.expose_secret().into()));
        let header_mac = eax.header_mac(&header.to_bytes());
        ChunkCipher {
            eax,
            header_mac,
            nonce_prefix: header.nonce_prefix,
            chunk_size: header.chunk_size as usize,
        }
    }

    fn nonce(&self, index: u32, last: bool) -> [u8; 16] {
        let mut nonce = [0u8; 16];
        nonce[..NONCE_PREFIX_LEN].copy_from_slice(&self.nonce_prefix);
        nonce[NONCE_PREFIX_LEN..15].copy_from_slice(&index.to_be_bytes());
        nonce[15] = u8::from(last);
        nonce
    }

    fn nonce_mac(&self, index: u32, last: bool) -> Block {
        let mut out = [[0u8; 16]; 1];
        self.eax.nonce_macs(&[self.nonce(index, last)], &mut out);
        out[0]
    }

    /// Nonces of up to [`LANES`] consecutive chunks from `first`; the chunk with index
    /// `last_index`, if any, gets the last flag.
    fn nonces(&self, first: u32, last_index: Option<u32>) -> [[u8; 16]; LANES] {
        core::array::from_fn(|i| {
            let index = first.wrapping_add(i as u32);
            self.nonce(index, Some(index) == last_index)
        })
    }

    /// Seals up to [`LANES`] consecutive chunks from `inputs` into `ciphertext ‖ tag`
    /// regions, the first being chunk `first`; the chunk with index `last_index` (if
    /// among them) gets the last flag.
    pub(crate) fn seal_group(
        &self,
        first: u32,
        last_index: u32,
        inputs: &[&[u8]],
        regions: &mut [&mut [u8]],
    ) {
        let n = inputs.len();
        let nonces = self.nonces(first, Some(last_index));
        let mut tags = [[0u8; 16]; LANES];
        let (mut bodies, mut tag_slots) = split_regions(regions);
        self.eax.seal_lanes(
            &nonces[..n],
            &self.header_mac,
            inputs,
            &mut bodies,
            &mut tags[..n],
        );
        for (slot, tag) in tag_slots.iter_mut().zip(&tags) {
            slot.copy_from_slice(tag);
        }
    }

    /// Seals up to [`LANES`] consecutive `plaintext ‖ tag space` regions in place into
    /// `ciphertext ‖ tag`, the first being chunk `first`; the chunk with index
    /// `last_index` (if any, and among them) gets the last flag.
    pub(crate) fn seal_group_in_place(
        &self,
        first: u32,
        last_index: Option<u32>,
        regions: &mut [&mut [u8]],
    ) {
        let n = regions.len();
        let nonces = self.nonces(first, last_index);
        let mut tags = [[0u8; 16]; LANES];
        let (mut bodies, mut tag_slots) = split_regions(regions);
        self.eax
            .seal_lanes_in_place(&nonces[..n], &self.header_mac, &mut bodies, &mut tags[..n]);
        for (slot, tag) in tag_slots.iter_mut().zip(&tags) {
            slot.copy_from_slice(tag);
        }
    }

    /// Verifies up to [`LANES`] consecutive chunks, each a `ciphertext ‖ tag` region,
    /// the first being chunk `first` (the chunk with index `last_index`, if among them,
    /// is checked as the final one), and decrypts them into `outputs`. Nothing of a
    /// chunk that failed is written; the first failure, in chunk order, is reported.
    pub(crate) fn open_group(
        &self,
        first: u32,
        last_index: u32,
        regions: &[&[u8]],
        outputs: &mut [&mut [u8]],
    ) -> Result<()> {
        let n = regions.len();
        let nonces: [[u8; 16]; LANES] = core::array::from_fn(|i| {
            let index = first.wrapping_add(i as u32);
            self.nonce(index, index == last_index)
        });
        let split: [(&[u8], &[u8]); LANES] = core::array::from_fn(|i| {
            regions.get(i).map_or((&[][..], &[][..]), |r| {
                r.split_at(r.len().saturating_sub(CHUNK_OVERHEAD))
            })
        });
        let bodies: [&[u8]; LANES] = core::array::from_fn(|i| split[i].0);
        let tags: [&[u8]; LANES] = core::array::from_fn(|i| split[i].1);
        match self.eax.open_lanes(
            &nonces[..n],
            &self.header_mac,
            &bodies[..n],
            &tags[..n],
            outputs,
        ) {
            None => Ok(()),
            Some((bad, ct_mac)) => {
                let index = first.wrapping_add(bad as u32);
                let last = index == last_index;
                Err(self.rejection(index, last, bodies[bad].len(), &ct_mac, tags[bad]))
            }
        }
    }

    /// Verifies up to [`LANES`] consecutive `ciphertext ‖ tag` regions, the first being
    /// chunk `first` (the chunk with index `last_index`, if any and among them, is
    /// checked as the final one), and decrypts each ciphertext in place. The first
    /// failure in chunk order is reported; a chunk that failed keeps its ciphertext.
    /// One chunk alone is opened in one pass.
    pub(crate) fn open_group_in_place(
        &self,
        first: u32,
        last_index: Option<u32>,
        regions: &mut [&mut [u8]],
    ) -> Result<()> {
        let (mut bodies, tag_slots) = split_regions(regions);
        if let ([body], [tag]) = (&mut bodies[..], &tag_slots[..]) {
            return self.open_chunk(first, last_index == Some(first), body, tag);
        }
        let nonces = self.nonces(first, last_index);
        let n = bodies.len().min(LANES);
        let tags: Vec<&[u8]> = tag_slots.iter().map(|tag| &tag[..]).collect();
        match self
            .eax
            .open_lanes_in_place(&nonces[..n], &self.header_mac, &mut bodies, &tags)
        {
            None => Ok(()),
            Some((bad, ct_mac)) => {
                let index = first.wrapping_add(bad as u32);
                let last = Some(index) == last_index;
                let len = bodies.get(bad).map_or(0, |body| body.len());
                let tag = tags.get(bad).copied().unwrap_or_default();
                Err(self.rejection(index, last, len, &ct_mac, tag))
            }
        }
    }

    /// Why chunk `index` (`len` bytes of ciphertext, `OMAC²` of it `ct_mac`) failed to
    /// verify: a final chunk of full size whose tag verifies as a middle chunk's means
    /// the record was cut at a chunk boundary; anything else is tampering.
    fn rejection(&self, index: u32, last: bool, len: usize, ct_mac: &Block, tag: &[u8]) -> Error {
        if last && len == self.chunk_size {
            let as_middle = combine(&self.nonce_mac(index, false), &self.header_mac, ct_mac);
            if tags_equal(&as_middle, tag) {
                return Error::Truncated {
                    format: FORMAT,
                    detail: "the record ends before its final chunk",
                };
            }
        }
        Error::AuthenticationFailed {
            what: "sealed record chunk",
        }
    }

    /// Verifies and decrypts chunk `index` in place. A final-position chunk that
    /// verifies only as a non-final chunk means the record was cut at a chunk boundary.
    pub(crate) fn open_chunk(
        &self,
        index: u32,
        last: bool,
        buf: &mut [u8],
        tag: &[u8],
    ) -> Result<()> {
        if last && buf.is_empty() && index > 0 {
            // Writers put at least one byte in a final chunk unless the record is empty,
            // so this is a record cut just after a chunk's worth of tag bytes.
            return Err(Error::Truncated {
                format: FORMAT,
                detail: "the record ends inside a chunk",
            });
        }
        let nonce_mac = self.nonce_mac(index, last);
        match self
            .eax
            .decrypt_or_mac(&nonce_mac, &self.header_mac, buf, tag)
        {
            Ok(()) => Ok(()),
            Err(ct_mac) => Err(self.rejection(index, last, buf.len(), &ct_mac, tag)),
        }
    }
}

/// The chunk size [`seal`], [`seal_into`] and [`sealed_len`] use for a record of `len`
/// plaintext bytes: [`DEFAULT_CHUNK_SIZE`] for a record that fits in
/// [`SMALLEST_SPLIT_CHUNK_SIZE`] (one chunk) or spans eight default chunks or more;
/// between them, the power of two that splits it into eight chunks or fewer, at least
/// [`SMALLEST_SPLIT_CHUNK_SIZE`].
///
/// Why: EAX's MAC is a chain, so one chunk is sealed at the speed of one block's AES
/// latency, while eight chunks run as eight interleaved chains at the AES unit's
/// throughput. A 64 KiB record in one chunk sealed at about 630 MiB/s on the project's
/// machine, in eight chunks of 8 KiB at about 2.1 GiB/s. The cost is 16 tag bytes per
/// extra chunk (at most 1.6 % of a record between 1 and 16 KiB, 0.2 % from 64 KiB). The
/// length the chunk size reveals is the one the sealed record's own length shows.
///
/// ```
/// use medvault::seal::{chunk_size_for, DEFAULT_CHUNK_SIZE};
/// assert_eq!(chunk_size_for(1000), DEFAULT_CHUNK_SIZE);
/// assert_eq!(chunk_size_for(64 * 1024), 8 * 1024);
/// assert_eq!(chunk_size_for(100 << 20), DEFAULT_CHUNK_SIZE);
/// ```
pub fn chunk_size_for(len: usize) -> u32 {
    let smallest = SMALLEST_SPLIT_CHUNK_SIZE as usize;
    if len <= smallest {
        return DEFAULT_CHUNK_SIZE;
    }
    let per_lane = len.div_ceil(LANES).next_power_of_two();
    // Both bounds fit in a u32, and so does anything clamped between them.
    per_lane.clamp(smallest, DEFAULT_CHUNK_SIZE as usize) as u32
}

/// Seals `plaintext` for the record `key` names, in chunks of
/// [`chunk_size_for`]`(plaintext.len())` bytes.
///
/// ```
/// use medvault::{MasterKey, PatientId, ProviderId, RecordId, seal, open};
/// let master = MasterKey::generate()?;
/// let lab = ProviderId::new("city-lab")?;
/// let patient = master.patient_key(&lab, &PatientId::new("+15550100")?, 0);
/// let record_key = patient.record_key(RecordId::generate()?);
/// let sealed = seal(&record_key, b"HbA1c 7.9 %")?;
/// assert_eq!(open(&patient, &sealed)?, b"HbA1c 7.9 %");
/// # Ok::<(), medvault::Error>(())
/// ```
pub fn seal(key: &RecordKey, plaintext: &[u8]) -> Result<Vec<u8>> {
    seal_with_chunk_size(key, plaintext, chunk_size_for(plaintext.len()))
}

/// Seals `plaintext` with an explicit chunk size (16 B to 16 MiB).
pub fn seal_with_chunk_size(key: &RecordKey, plaintext: &[u8], chunk_size: u32) -> Result<Vec<u8>> {
    check_chunk_size(chunk_size)?;
    seal_with_prefix(key, plaintext, chunk_size, rng::array()?)
}

/// Length of the sealed record of `plaintext_len` bytes under `key`, as [`seal`] and
/// [`seal_into`] make it (chunks of [`chunk_size_for`]`(plaintext_len)`): how much room
/// [`seal_into`] needs.
pub fn sealed_len(key: &RecordKey, plaintext_len: usize) -> Result<usize> {
    sealed_len_with_chunk_size(key, plaintext_len, chunk_size_for(plaintext_len))
}

fn sealed_len_with_chunk_size(
    key: &RecordKey,
    plaintext_len: usize,
    chunk_size: u32,
) -> Result<usize> {
    check_chunk_size(chunk_size)?;
    let chunks = plaintext_len.div_ceil(chunk_size as usize).max(1);
    chunk_index(chunks - 1)?;
    let header_len = HEADER_FIXED_PREFIX + key.provider().as_str().len() + HEADER_FIXED_SUFFIX;
    header_len
        .checked_add(plaintext_len)
        .and_then(|n| n.checked_add(chunks * CHUNK_OVERHEAD))
        .ok_or(Error::InvalidArgument(
            "the sealed record would not fit in memory",
        ))
}

/// Seals `plaintext` into the front of `out`, a buffer the caller owns (reused, or a
/// mapped file), and returns the sealed length ([`sealed_len`]); the bytes are those
/// [`seal`] would return. Fails with [`Error::InvalidArgument`], writing nothing, if
/// `out` is shorter than that.
pub fn seal_into(key: &RecordKey, plaintext: &[u8], out: &mut [u8]) -> Result<usize> {
    let len = sealed_len(key, plaintext.len())?;
    let out = out.get_mut(..len).ok_or(Error::InvalidArgument(
        "the output buffer is shorter than the sealed record (see sealed_len)",
    ))?;
    let chunk_size = chunk_size_for(plaintext.len());
    seal_with_prefix_into(key, plaintext, chunk_size, rng::array()?, out)?;
    Ok(len)
}

/// The deterministic core of sealing; the nonce prefix must be fresh for the key.
pub(crate) fn seal_with_prefix(
    key: &RecordKey,
    plaintext: &[u8],
    chunk_size: u32,
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
) -> Result<Vec<u8>> {
    // `vec![0; n]` asks the allocator for zeroed pages it maps lazily: a large record's
    // pages are then faulted in by the threads that fill them, not zeroed up front by
    // one.
    let mut out = vec![0u8; sealed_len_with_chunk_size(key, plaintext.len(), chunk_size)?];
    seal_with_prefix_into(key, plaintext, chunk_size, nonce_prefix, &mut out)?;
    Ok(out)
}

/// Seals into `out`, exactly [`sealed_len_with_chunk_size`] bytes long.
fn seal_with_prefix_into(
    key: &RecordKey,
    plaintext: &[u8],
    chunk_size: u32,
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
    out: &mut [u8],
) -> Result<()> {
    let header = RecordHeader::new(key, chunk_size, nonce_prefix)?;
    let cipher = ChunkCipher::new(key, &header);
    let chunk = chunk_size as usize;
    let stride = chunk + CHUNK_OVERHEAD;
    let chunks = plaintext.len().div_ceil(chunk).max(1);
    let last_index = chunk_index(chunks - 1)?;
    let header_bytes = header.to_bytes();
    let header_len = header_bytes.len();
    debug_assert_eq!(
        out.len(),
        header_len + plaintext.len() + chunks * CHUNK_OVERHEAD
    );
    out[..header_len].copy_from_slice(&header_bytes);
    let body = &mut out[header_len..];
    let lanes = LANES;
    let seal_group = |group: usize, regions: &mut [u8], input: &[u8]| {
        let mut views: Vec<&mut [u8]> = regions.chunks_mut(stride).collect();
        let mut pieces: Vec<&[u8]> = input.chunks(chunk).collect();
        if pieces.is_empty() {
            pieces.push(&[]); // the empty record: one empty last chunk
        }
        cipher.seal_group((group * lanes) as u32, last_index, &pieces, &mut views);
    };
    let group_out = lanes * stride;
    let group_in = lanes * chunk;
    if worth_splitting(plaintext.len(), chunks) {
        parallel::run(|| {
            body.par_chunks_mut(group_out)
                .zip(plaintext.par_chunks(group_in))
                .enumerate()
                .for_each(|(g, (regions, input))| seal_group(g, regions, input))
        });
    } else {
        // Small records: the multi-lane path on this thread, no pool overhead.
        for (g, regions) in body.chunks_mut(group_out).enumerate() {
            let input = plaintext
                .get(g * group_in..)
                .map_or(&[][..], |rest| &rest[..rest.len().min(group_in)]);
            seal_group(g, regions, input);
        }
    }
    Ok(())
}

/// Whether a record of `bytes` in `chunks` chunks is sealed or opened on all cores
/// rather than on the calling thread: enough work by the library's policy
/// ([`crate::parallel`]), and more than [`PARALLEL_MIN_CHUNKS`] chunks so that both
/// halves get work. Records chunked by [`chunk_size_for`] cross the chunk count first;
/// the work bound keeps small records with small declared chunks (and hostile headers)
/// off the pool.
fn worth_splitting(bytes: usize, chunks: usize) -> bool {
    chunks > PARALLEL_MIN_CHUNKS && parallel::worth_splitting(Work::seal(bytes, chunks))
}

/// Records with more chunks than this may go to all cores: two groups of [`LANES`], the
/// second at least half full (bench `seal`, 1 MiB rows: two groups of eight beat one
/// core, eight plus two did not).
const PARALLEL_MIN_CHUNKS: usize = 11;

pub(crate) fn chunk_index(index: usize) -> Result<u32> {
    u32::try_from(index).map_err(|_| Error::InvalidArgument("a record has at most 2^32 chunks"))
}

/// Where a sealed record's chunks lie, from its header and length alone.
struct SealedLayout<'a> {
    header: RecordHeader,
    /// Every chunk but a cut final one: verified in groups and decrypted.
    verified: &'a [u8],
    verified_chunks: usize,
    last_index: u32,
    /// The final chunk, and whether it is whole (else the record was cut).
    last: &'a [u8],
    final_is_whole: bool,
    /// Plaintext bytes in `verified`.
    plain_len: usize,
}

impl<'a> SealedLayout<'a> {
    fn parse(sealed: &'a [u8]) -> Result<Self> {
        let (header, header_len) = RecordHeader::parse(sealed)?;
        let body = &sealed[header_len..];
        let stride = header.chunk_size as usize + CHUNK_OVERHEAD;
        let chunks = body.len().div_ceil(stride).max(1);
        let last_index = chunk_index(chunks - 1)?;
        let last_start = (chunks - 1) * stride;
        let last = &body[last_start..];
        // A final chunk shorter than its tag, or only a tag after other chunks (writers
        // put at least one byte in a final chunk unless the record is empty), is a cut
        // record: reported once the chunks before it verified, as a sequential reader
        // meets them.
        let final_is_whole =
            last.len() > CHUNK_OVERHEAD || (last.len() == CHUNK_OVERHEAD && last_index == 0);
        let (verified, verified_chunks) = if final_is_whole {
            (body, chunks)
        } else {
            (&body[..last_start], chunks - 1)
        };
        Ok(SealedLayout {
            header,
            verified,
            verified_chunks,
            last_index,
            last,
            final_is_whole,
            plain_len: verified.len() - verified_chunks * CHUNK_OVERHEAD,
        })
    }

    /// Verifies and decrypts into `out` (`plain_len` bytes). On failure `out` may hold
    /// the plaintext of chunks that verified; the callers wipe it.
    fn open_into(&self, key: &impl RecordKeySource, out: &mut [u8]) -> Result<()> {
        let header = &self.header;
        let record_key = key.record_key_for(&header.provider, header.generation, header.record)?;
        let cipher = ChunkCipher::new(&record_key, header);
        let chunk = header.chunk_size as usize;
        let stride = chunk + CHUNK_OVERHEAD;
        let (verified, last_index) = (self.verified, self.last_index);
        // Every chunk but a cut final one is verified in groups of `LANES` (on all cores
        // for large records) and decrypted straight into place.
        let lanes = LANES;
        let open_group = |g: usize, regions: &[u8], outputs: &mut [u8]| {
            let regions: Vec<&[u8]> = regions.chunks(stride).collect();
            let mut outputs = split_by_bodies(&regions, outputs);
            cipher.open_group((g * lanes) as u32, last_index, &regions, &mut outputs)
        };
        if worth_splitting(verified.len(), self.verified_chunks) {
            parallel::run(|| {
                verified
                    .par_chunks(lanes * stride)
                    .zip(out.par_chunks_mut(lanes * chunk))
                    .enumerate()
                    .map(|(g, (regions, outputs))| open_group(g, regions, outputs))
                    .collect::<Vec<_>>()
            })
            .into_iter()
            .collect::<Result<()>>()?;
        } else {
            let plain = out.len();
            for (g, regions) in verified.chunks(lanes * stride).enumerate() {
                let from = (g * lanes * chunk).min(plain);
                let to = (from + lanes * chunk).min(plain);
                open_group(g, regions, &mut out[from..to])?;
            }
        }
        if !self.final_is_whole {
            return Err(Error::Truncated {
                format: FORMAT,
                detail: if self.last.len() < CHUNK_OVERHEAD {
                    "a chunk is shorter than its tag"
                } else {
                    "the record ends inside a chunk"
                },
            });
        }
        Ok(())
    }
}

/// Opens a sealed record with a key that covers it (a [`RecordKey`] for that record, or
/// the [`crate::PatientKey`] it was sealed under).
///
/// Fails with [`Error::WrongKey`] if the key is for another provider, generation or
/// record, [`Error::AuthenticationFailed`] if any byte was changed,
/// [`Error::Truncated`] if the record was cut, and a parse error for anything else.
pub fn open(key: &impl RecordKeySource, sealed: &[u8]) -> Result<Vec<u8>> {
    let layout = SealedLayout::parse(sealed)?;
    // Zeroized if we fail half way: no partial plaintext is left behind in memory.
    let mut out = Zeroizing::new(vec![0u8; layout.plain_len]);
    layout.open_into(key, &mut out)?;
    Ok(std::mem::take(&mut *out))
}

/// Plaintext length of a sealed record, from its header and length: how much room
/// [`open_into`] needs. Fails only if the header does not parse.
pub fn opened_len(sealed: &[u8]) -> Result<usize> {
    Ok(SealedLayout::parse(sealed)?.plain_len)
}

/// Opens a sealed record into the front of `out`, a buffer the caller owns, and returns
/// the plaintext length ([`opened_len`]). Fails as [`open`] does, and with
/// [`Error::InvalidArgument`] if `out` is shorter than that; on any failure the part of
/// `out` it may have written is zeroed, so no plaintext of a rejected record is left in
/// it.
pub fn open_into(key: &impl RecordKeySource, sealed: &[u8], out: &mut [u8]) -> Result<usize> {
    let layout = SealedLayout::parse(sealed)?;
    let out = out
        .get_mut(..layout.plain_len)
        .ok_or(Error::InvalidArgument(
            "the output buffer is shorter than the opened record (see opened_len)",
        ))?;
    layout.open_into(key, out).inspect_err(|_| out.zeroize())?;
    Ok(layout.plain_len)
}

/// Each `body ‖ tag` region split into its body and its last [`CHUNK_OVERHEAD`] bytes
/// (a region shorter than that is all tag).
fn split_regions<'a>(regions: &'a mut [&mut [u8]]) -> (Vec<&'a mut [u8]>, Vec<&'a mut [u8]>) {
    regions
        .iter_mut()
        .map(|region| {
            let len = region.len().saturating_sub(CHUNK_OVERHEAD);
            region.split_at_mut(len)
        })
        .unzip()
}

/// `outputs` cut into one piece per `ciphertext ‖ tag` region, each the length of the
/// region's ciphertext (as far as `outputs` reaches).
fn split_by_bodies<'a>(regions: &[&[u8]], outputs: &'a mut [u8]) -> Vec<&'a mut [u8]> {
    let mut rest = outputs;
    let mut pieces = Vec::with_capacity(regions.len());
    for region in regions {
        let len = region.len().saturating_sub(CHUNK_OVERHEAD).min(rest.len());
        let (piece, tail) = core::mem::take(&mut rest).split_at_mut(len);
        pieces.push(piece);
        rest = tail;
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_one_shot_chunk_size_follows_the_length() {
        let smallest = SMALLEST_SPLIT_CHUNK_SIZE as usize;
        let default = DEFAULT_CHUNK_SIZE as usize;
        // One chunk up to the smallest split, then at most eight chunks of a power of two
        // up to eight default chunks, then the default.
        assert_eq!(chunk_size_for(0), DEFAULT_CHUNK_SIZE);
        assert_eq!(chunk_size_for(smallest), DEFAULT_CHUNK_SIZE);
        assert_eq!(chunk_size_for(smallest + 1), SMALLEST_SPLIT_CHUNK_SIZE);
        assert_eq!(chunk_size_for(8 * smallest), SMALLEST_SPLIT_CHUNK_SIZE);
        assert_eq!(
            chunk_size_for(8 * smallest + 1),
            2 * SMALLEST_SPLIT_CHUNK_SIZE
        );
        assert_eq!(chunk_size_for(64 << 10), 8 << 10);
        assert_eq!(chunk_size_for(8 * default), DEFAULT_CHUNK_SIZE);
        assert_eq!(chunk_size_for(8 * default + 1), DEFAULT_CHUNK_SIZE);
        assert_eq!(chunk_size_for(usize::MAX), DEFAULT_CHUNK_SIZE);
        let mut previous = 0;
        for len in (0..=9 * default).step_by(997) {
            let chunk = chunk_size_for(len) as usize;
            assert!(chunk.is_power_of_two() && (smallest..=default).contains(&chunk));
            let chunks = len.div_ceil(chunk).max(1);
            if len > smallest && len <= 8 * default {
                assert!(chunks <= 8, "{len} bytes in {chunks} chunks of {chunk}");
                assert!(chunk >= previous, "chunk sizes grow with the length");
                previous = chunk;
            }
            if chunk > smallest && len > smallest && len <= 8 * default {
                // Never needlessly small: half the size would take more than eight.
                assert!(
                    len > 4 * chunk,
                    "{len} bytes could use chunks of {}",
                    chunk / 2
                );
            }
        }
    }

    fn chunks_for(len: usize, chunk: usize) -> usize {
        len.div_ceil(chunk).max(1)
    }

    #[test]
    fn records_chunked_by_length_split_from_twelve_default_chunks() {
        let default = DEFAULT_CHUNK_SIZE as usize;
        for len in (0..=16 * default)
            .step_by(4099)
            .chain([11 * default, 11 * default + 1])
        {
            let chunks = chunks_for(len, chunk_size_for(len) as usize);
            assert_eq!(
                worth_splitting(len, chunks),
                len > 11 * default,
                "{len} bytes in {chunks} chunks"
            );
        }
    }

    #[test]
    fn small_records_in_tiny_chunks_stay_on_the_calling_thread() {
        // Many chunks, little work: the pool's hand-off would cost more than the work.
        assert!(!worth_splitting(1024, chunks_for(1024, 16)));
        assert!(!worth_splitting(4096, chunks_for(4096, 16)));
        assert!(!worth_splitting(16 << 10, chunks_for(16 << 10, 256)));
        assert!(!worth_splitting(64 << 10, chunks_for(64 << 10, 4096)));
        // Enough work, whether from bytes or from chunks.
        assert!(worth_splitting(16 << 10, chunks_for(16 << 10, 16)));
        assert!(worth_splitting(256 << 10, chunks_for(256 << 10, 1024)));
        // Both halves must get work, however large the chunks.
        assert!(!worth_splitting(11 * MAX_CHUNK_SIZE as usize, 11));
        assert!(worth_splitting(12 * MAX_CHUNK_SIZE as usize, 12));
        // No overflow at the extremes.
        assert!(worth_splitting(usize::MAX, usize::MAX));
        assert!(!worth_splitting(usize::MAX, 1));
    }
}
