//! Opening a sealed record pushed in pieces, for callers that receive it through
//! callbacks rather than a `Read`.

use zeroize::Zeroize;

use super::chunk::ChunkCipher;
use super::header::{HEADER_FIXED_PREFIX, HEADER_FIXED_SUFFIX, RecordHeader};
use crate::error::{Error, Result};
use crate::keys::RecordKeySource;

use super::stream::BatchOpener;

/// Opens a sealed record pushed to it in pieces of any size, for callers that receive
/// bytes rather than read them (network callbacks, the C ABI's `_update`).
///
/// Like [`Opener`](super::stream::Opener) it hands out only verified plaintext, opening
/// batches of up to eight chunks and 512 KiB (so it holds one batch and one byte).
/// The final chunk is recognized only at [`IncrementalOpener::finish`], which is where
/// a truncated record is an error.
///
/// ```
/// use medvault::{IncrementalOpener, MasterKey, PatientId, ProviderId, RecordId};
/// let master = MasterKey::generate()?;
/// let patient = master.patient_key(&ProviderId::new("radiology")?, &PatientId::new("MRN-1")?, 0);
/// let sealed = medvault::seal(&patient.record_key(RecordId::generate()?), &[7u8; 100_000])?;
/// let mut opener = IncrementalOpener::new(patient);
/// let mut plain = Vec::new();
/// for piece in sealed.chunks(1000) {
///     opener.update(piece, &mut plain)?;
/// }
/// opener.finish(&mut plain)?;
/// assert_eq!(plain, vec![7u8; 100_000]);
/// # Ok::<(), medvault::Error>(())
/// ```
pub struct IncrementalOpener<K: RecordKeySource> {
    key: K,
    /// Header bytes received so far, until the header is complete.
    header_bytes: Vec<u8>,
    /// The header and the chunks after it, once the header is complete.
    opened: Option<(RecordHeader, BatchOpener)>,
    failed: bool,
}

impl<K: RecordKeySource> IncrementalOpener<K> {
    /// An opener that will pick the record key from `key` once the header arrived.
    pub fn new(key: K) -> Self {
        IncrementalOpener {
            key,
            header_bytes: Vec::new(),
            opened: None,
            failed: false,
        }
    }

    /// The record's header, once enough bytes arrived.
    pub fn header(&self) -> Option<&RecordHeader> {
        self.opened.as_ref().map(|(header, _)| header)
    }

    /// Takes the next piece of the sealed record and appends the plaintext of every
    /// batch of chunks it completes (and verifies) to `plaintext`. After an error the
    /// opener is spent: every later call fails.
    ///
    /// Room for everything this call can append (no more than the sealed bytes
    /// buffered and given) is reserved in `plaintext` before anything is written, so
    /// plaintext is never moved by a reallocation, which would free a copy unwiped.
    /// Give each call an empty vector (as the C ABI does), or reserve the record's
    /// length up front: a vector already holding plaintext may be moved by the
    /// reservation itself.
    pub fn update(&mut self, sealed: &[u8], plaintext: &mut Vec<u8>) -> Result<()> {
        if self.failed {
            return Err(Error::InvalidArgument(
                "the opener failed earlier; discard it",
            ));
        }
        plaintext.reserve(self.buffered().saturating_add(sealed.len()));
        let result = self.consume(sealed, plaintext);
        if result.is_err() {
            self.failed = true;
            if let Some((_, batches)) = &mut self.opened {
                batches.wipe();
            }
        }
        result
    }

    fn consume(&mut self, mut sealed: &[u8], plaintext: &mut Vec<u8>) -> Result<()> {
        while !sealed.is_empty() {
            let Some((_, batches)) = &mut self.opened else {
                let taken = self.take_header_bytes(sealed)?;
                sealed = &sealed[taken..];
                continue;
            };
            let taken = batches.push(sealed);
            sealed = &sealed[taken..];
            if batches.wanted() == 0 {
                let room = batches.openable_len();
                open_onto(plaintext, room, |into| batches.open_batch(Some(into)))?;
                batches.advance();
            }
        }
        Ok(())
    }

    /// Moves header bytes from `sealed` into the buffer; parses the header once it is
    /// complete. Returns how many bytes it took.
    fn take_header_bytes(&mut self, sealed: &[u8]) -> Result<usize> {
        let have = self.header_bytes.len();
        let need = if have < HEADER_FIXED_PREFIX {
            HEADER_FIXED_PREFIX
        } else {
            HEADER_FIXED_PREFIX
                + self.header_bytes[HEADER_FIXED_PREFIX - 1] as usize
                + HEADER_FIXED_SUFFIX
        };
        let take = (need - have).min(sealed.len());
        self.header_bytes.extend_from_slice(&sealed[..take]);
        match RecordHeader::parse(&self.header_bytes) {
            Ok((header, used)) => {
                debug_assert_eq!(used, self.header_bytes.len());
                let key = self.key.record_key_for(
                    header.provider(),
                    header.generation(),
                    header.record_id(),
                )?;
                let cipher = ChunkCipher::new(&key, &header);
                let chunk_size = header.chunk_size() as usize;
                self.header_bytes = Vec::new();
                self.opened = Some((header, BatchOpener::new(cipher, chunk_size)));
            }
            // Magic, version and algorithm are checked as soon as their bytes arrive.
            Err(Error::Truncated { .. }) => {}
            Err(err) => return Err(err),
        }
        Ok(take)
    }

    /// Verifies the final chunks and appends their plaintext. An input that ends before
    /// its final chunk is [`Error::Truncated`].
    pub fn finish(mut self, plaintext: &mut Vec<u8>) -> Result<()> {
        if self.failed {
            return Err(Error::InvalidArgument(
                "the opener failed earlier; discard it",
            ));
        }
        let Some((_, batches)) = &mut self.opened else {
            return Err(Error::Truncated {
                format: "sealed record",
                detail: "the header is cut short",
            });
        };
        let room = batches.openable_len();
        plaintext.reserve(room);
        open_onto(plaintext, room, |into| batches.open_end(Some(into)))
    }

    /// Sealed bytes held, waiting for the rest of their batch.
    fn buffered(&self) -> usize {
        match &self.opened {
            Some((_, batches)) => batches.buffered(),
            None => self.header_bytes.len(),
        }
    }
}

/// Opens a batch straight onto the end of `plaintext` (`room` bytes made for it there),
/// so its plaintext is never in the opener's buffer nor copied out of it. On failure
/// the part it may have written is wiped and cut off again.
fn open_onto(
    plaintext: &mut Vec<u8>,
    room: usize,
    open: impl FnOnce(&mut [u8]) -> Result<usize>,
) -> Result<()> {
    let start = plaintext.len();
    plaintext.resize(start + room, 0);
    match open(&mut plaintext[start..]) {
        Ok(written) => {
            plaintext.truncate(start + written);
            Ok(())
        }
        Err(err) => {
            plaintext[start..].zeroize();
            plaintext.truncate(start);
            Err(err)
        }
    }
}
