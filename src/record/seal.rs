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

use zeroize::{Zeroize, Zeroizing};

use rayon::prelude::*;

use crate::crypto::eax::LANES;
use crate::crypto::rng;
use crate::error::{Error, Result};
use crate::keys::{RecordKey, RecordKeySource};
use crate::parallel::{self, Work};

use super::chunk::*;
use super::header::*;

/// The chunk size [`seal`], [`seal_into`] and [`sealed_len`] use for a record of `len`
/// plaintext bytes: [`DEFAULT_CHUNK_SIZE`] for a record that fits in 1 KiB (one chunk)
/// or spans eight default chunks or more; between them, the power of two that splits
/// it into eight chunks or fewer, at least 1 KiB.
///
/// ```
/// use medvault::{DEFAULT_CHUNK_SIZE, chunk_size_for};
/// assert_eq!(chunk_size_for(1000), DEFAULT_CHUNK_SIZE);
/// assert_eq!(chunk_size_for(64 * 1024), 8 * 1024);
/// assert_eq!(chunk_size_for(100 << 20), DEFAULT_CHUNK_SIZE);
/// ```
///
/// Why: EAX's MAC is a chain, so one chunk is sealed at the speed of one block's AES
/// latency, while eight chunks run as eight interleaved chains at the AES unit's
/// throughput (bench `seal`, 64 KiB rows: eight chunks of 8 KiB seal about three times
/// as fast as one of 64 KiB). The cost is 16 tag bytes per extra chunk (at most 1.6 %
/// of a record between 1 and 16 KiB, 0.2 % from 64 KiB). The length the chunk size
/// reveals is the one the sealed record's own length shows.
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
    if chunks == 1 {
        seal_lone_chunk(key, &header_bytes, &nonce_prefix, plaintext, body);
        return Ok(());
    }
    let cipher = ChunkCipher::new(key, &header);
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
    /// The header as stored. It parses only from its canonical form, so these are the
    /// bytes `header.to_bytes()` gives, which every chunk's tag covers.
    header_bytes: &'a [u8],
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
            header_bytes: &sealed[..header_len],
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
        if self.verified_chunks == 1 && self.final_is_whole {
            return open_lone_chunk(&record_key, header, self.header_bytes, self.verified, out);
        }
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

#[cfg(test)]
#[path = "seal_tests.rs"]
mod tests;
