//! Streaming sealing and opening for records too large for memory (a 100 MB image).
//!
//! [`Sealer`] is a `Write`: bytes go in, sealed chunks come out to the inner writer.
//! [`Opener`] is a `Read`: it pulls sealed chunks from the inner reader and hands out
//! plaintext only after each chunk's tag verified. Both hold at most four chunks (the
//! openers one byte more, of look-ahead) at a time, so memory does not grow with the
//! record; four chunks go through AES together, their MAC chains interleaved.
//!
//! The wire format is the one [`crate::record::seal()`] writes: a record sealed by either path
//! opens with either path.

use std::io::{self, Read, Write};

use zeroize::{Zeroize, Zeroizing};

use crate::crypto::rng;
use crate::error::{Error, Result};
use crate::keys::{RecordKey, RecordKeySource};
use crate::record::seal::{
    CHUNK_OVERHEAD, ChunkCipher, DEFAULT_CHUNK_SIZE, HEADER_FIXED_PREFIX, HEADER_FIXED_SUFFIX,
    NONCE_PREFIX_LEN, RecordHeader, check_chunk_size,
};

/// Seals a record of any size as it is written.
///
/// Call [`Sealer::finish`] at the end: it writes the final chunk. A sealer dropped
/// without `finish` leaves a record that every opener rejects as truncated.
///
/// Memory: one chunk's buffer for a record of one chunk, four chunks' for a longer one
/// (four chunks are sealed together, so the inner writer receives output in steps of up
/// to four chunks). The buffered plaintext is wiped when the sealer is dropped.
///
/// ```
/// use std::io::{Read, Write};
/// use medvault::{MasterKey, Opener, PatientId, ProviderId, RecordId, Sealer};
/// let master = MasterKey::generate()?;
/// let patient = master.patient_key(&ProviderId::new("radiology")?, &PatientId::new("MRN-1")?, 0);
/// let mut sealer = Sealer::new(Vec::new(), &patient.record_key(RecordId::generate()?))?;
/// sealer.write_all(&vec![0x42; 200_000])?; // an image, say
/// let sealed = sealer.finish()?;
///
/// let mut opened = Vec::new();
/// Opener::new(&sealed[..], &patient)?.read_to_end(&mut opened)?;
/// assert_eq!(opened, vec![0x42; 200_000]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Sealer<W: Write> {
    inner: Option<W>,
    cipher: ChunkCipher,
    chunk_size: usize,
    /// Up to [`STREAM_LANES`] chunks in their wire layout, `plaintext ‖ tag space`,
    /// sealed together in place: `full` complete ones, then the chunk being filled (a
    /// full chunk waits until more input shows it is not the last one).
    pending: Zeroizing<Vec<u8>>,
    full: usize,
    /// Index of the first chunk in `pending`.
    index: u32,
    failed: bool,
}

/// Chunks the streaming sealer seals together: their MAC chains interleave (about
/// twice the speed of one chain alone), and four stay within the few chunks of memory
/// the streaming API promises.
const STREAM_LANES: usize = 4;

impl<W: Write> Sealer<W> {
    /// Starts sealing to `inner` with [`DEFAULT_CHUNK_SIZE`]; writes the header. (The
    /// one-shot [`crate::record::seal()`] cuts records of 1 to 512 KiB smaller, which seals them
    /// faster; a caller who knows the length ahead can pass
    /// [`crate::record::seal::chunk_size_for`] to [`Sealer::with_chunk_size`].)
    pub fn new(inner: W, key: &RecordKey) -> Result<Self> {
        Self::with_chunk_size(inner, key, DEFAULT_CHUNK_SIZE)
    }

    /// Starts sealing with an explicit chunk size (16 B to 16 MiB); writes the header.
    pub fn with_chunk_size(inner: W, key: &RecordKey, chunk_size: u32) -> Result<Self> {
        check_chunk_size(chunk_size)?;
        Self::with_prefix(inner, key, chunk_size, rng::array()?)
    }

    /// The deterministic core of [`Sealer::with_chunk_size`]; the nonce prefix must be
    /// fresh for the key.
    fn with_prefix(
        mut inner: W,
        key: &RecordKey,
        chunk_size: u32,
        nonce_prefix: [u8; NONCE_PREFIX_LEN],
    ) -> Result<Self> {
        let header = RecordHeader::new(key, chunk_size, nonce_prefix)?;
        inner.write_all(&header.to_bytes())?;
        Ok(Sealer {
            inner: Some(inner),
            cipher: ChunkCipher::new(key, &header),
            chunk_size: chunk_size as usize,
            // One chunk's room: a small record never pays for a batch's buffer (nor
            // for wiping it).
            pending: Zeroizing::new(Vec::with_capacity(chunk_size as usize + CHUNK_OVERHEAD)),
            full: 0,
            index: 0,
            failed: false,
        })
    }

    fn inner(&mut self) -> Result<&mut W> {
        match (&mut self.inner, self.failed) {
            (Some(inner), false) => Ok(inner),
            _ => Err(Error::InvalidArgument(
                "the sealer failed earlier or has finished",
            )),
        }
    }

    /// Seals the buffered chunks in place and writes them out: the complete ones, and
    /// with `last` the chunk being filled too, as the final one.
    fn emit(&mut self, last: bool) -> Result<()> {
        const TOO_MANY: Error = Error::InvalidArgument("a record has at most 2^32 chunks");
        if last {
            self.pending.extend_from_slice(&[0u8; CHUNK_OVERHEAD]);
        }
        let count = self.full + usize::from(last);
        let first = self.index;
        let final_index = u32::try_from(count.saturating_sub(1))
            .ok()
            .and_then(|n| first.checked_add(n))
            .ok_or(TOO_MANY)?;
        // Chunks that are not the last need a successor's index to exist.
        let next = if last {
            final_index
        } else {
            final_index.checked_add(1).ok_or(TOO_MANY)?
        };
        let stride = self.chunk_size + CHUNK_OVERHEAD;
        let mut regions: Vec<&mut [u8]> = self.pending.chunks_mut(stride).collect();
        self.cipher
            .seal_group_in_place(first, last.then_some(final_index), &mut regions);
        let result = match self.inner.as_mut() {
            Some(inner) => inner.write_all(&self.pending).map_err(Error::from),
            None => Err(Error::InvalidArgument("the sealer has finished")),
        };
        self.pending.clear();
        self.full = 0;
        if result.is_err() {
            self.failed = true;
            return result;
        }
        self.index = next;
        Ok(())
    }

    /// The inner writer, for example to take out what was sealed so far. Writing to it
    /// directly corrupts the record.
    pub fn get_mut(&mut self) -> Option<&mut W> {
        self.inner.as_mut()
    }

    /// Seals the last chunk, flushes, and returns the inner writer.
    pub fn finish(mut self) -> Result<W> {
        self.inner()?;
        self.emit(true)?;
        let mut inner = self
            .inner
            .take()
            .ok_or(Error::InvalidArgument("the sealer has finished"))?;
        inner.flush()?;
        Ok(inner)
    }
}

impl<W: Write> Write for Sealer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner()?;
        let stride = self.chunk_size + CHUNK_OVERHEAD;
        let mut rest = buf;
        while !rest.is_empty() {
            let filling = self.pending.len() - self.full * stride;
            if filling == self.chunk_size {
                // More input exists, so the full chunk is not the last one.
                self.pending.extend_from_slice(&[0u8; CHUNK_OVERHEAD]);
                self.full += 1;
                let batch = STREAM_LANES * stride;
                if self.full == STREAM_LANES || self.pending.capacity() < batch {
                    self.emit(false)?;
                    if self.pending.capacity() < batch {
                        // The record is longer than a chunk: room for whole batches
                        // from now on (the first chunk went out alone). The old buffer
                        // goes first, so the two never coexist.
                        self.pending = Zeroizing::new(Vec::new());
                        self.pending = Zeroizing::new(Vec::with_capacity(batch));
                    }
                }
                continue;
            }
            let take = rest.len().min(self.chunk_size - filling);
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
        }
        Ok(buf.len())
    }

    /// Flushes the inner writer. Pending plaintext stays pending: a chunk is sealed only
    /// once it is full or the record is finished.
    fn flush(&mut self) -> io::Result<()> {
        self.inner()?.flush()?;
        Ok(())
    }
}

/// The opening core both streaming openers share: sealed bytes are buffered from a
/// chunk boundary until a batch of chunks and one byte past them are in (that byte
/// proves none of them is the record's last chunk), then the batch is verified and
/// decrypted in place, its chains interleaved. The first chunk goes alone, in a buffer
/// the size of one chunk, so a record of one chunk never pays for a batch's buffer;
/// after it, batches of [`STREAM_LANES`].
struct BatchOpener {
    cipher: ChunkCipher,
    chunk_size: usize,
    /// Chunks per batch: 1 for the first, then [`STREAM_LANES`].
    lanes: usize,
    /// Sealed bytes from the start of chunk `index`. Once a batch is opened: `plain`
    /// bytes of verified plaintext at the front, and from `consumed` on the sealed
    /// bytes that follow the batch.
    buf: Zeroizing<Vec<u8>>,
    plain: usize,
    consumed: usize,
    index: u32,
}

impl BatchOpener {
    fn new(cipher: ChunkCipher, chunk_size: usize) -> Self {
        BatchOpener {
            cipher,
            chunk_size,
            lanes: 1,
            buf: Zeroizing::new(Vec::new()),
            plain: 0,
            consumed: 0,
            index: 0,
        }
    }

    fn stride(&self) -> usize {
        self.chunk_size + CHUNK_OVERHEAD
    }

    /// Sealed bytes a batch takes: its chunks and the one byte past them.
    fn batch_len(&self) -> usize {
        self.lanes * self.stride() + 1
    }

    /// Sealed bytes still missing before the batch can be opened.
    fn wanted(&self) -> usize {
        self.batch_len().saturating_sub(self.buf.len())
    }

    /// Verified plaintext of the last batch opened.
    fn plaintext(&self) -> &[u8] {
        &self.buf[..self.plain]
    }

    /// Room for `more` sealed bytes. The buffer grows by doubling as bytes arrive (a
    /// short input declaring a 16 MiB chunk size allocates no more than the input),
    /// never past one batch, and only before any plaintext was in it: no freed buffer
    /// holds plaintext.
    fn reserve(&mut self, more: usize) {
        let need = self.buf.len() + more;
        if need <= self.buf.capacity() {
            return;
        }
        let target = self.batch_len();
        let mut room = target.min(need.max(self.buf.capacity().max(2048) * 2));
        if room + room / 2 > target {
            // A last step of a few bytes would hold two large buffers at once.
            room = target;
        }
        let len = self.buf.len();
        self.buf.reserve_exact(room - len);
    }

    /// Takes sealed bytes up to the end of the batch; returns how many it took.
    fn push(&mut self, sealed: &[u8]) -> usize {
        let take = self.wanted().min(sealed.len());
        self.reserve(take);
        self.buf.extend_from_slice(&sealed[..take]);
        take
    }

    /// Reads from `inner` until the batch is in or the input ends.
    fn fill(&mut self, inner: &mut impl Read) -> io::Result<()> {
        while self.wanted() > 0 {
            // Room for at least one more byte: the buffer doubles as the input proves
            // to be long, rather than taking the whole batch on the header's word.
            self.reserve(1);
            let room = self.buf.capacity().min(self.batch_len()) - self.buf.len();
            let got = inner
                .by_ref()
                .take(room as u64)
                .read_to_end(&mut self.buf)?;
            if got < room {
                break; // the input ended
            }
        }
        Ok(())
    }

    /// Opens the complete batch: all its chunks are middle chunks.
    fn open_batch(&mut self) -> Result<()> {
        debug_assert_eq!(self.wanted(), 0);
        // The chunk after the batch needs an index too.
        self.index
            .checked_add(self.lanes as u32)
            .ok_or(Error::Malformed {
                format: "sealed record",
                detail: "more than 2^32 chunks",
            })?;
        self.open_span(self.lanes * self.stride(), None)
    }

    /// Opens what is buffered as the end of the record, its last chunk as the final one.
    /// A final chunk shorter than its tag, or only a tag after other chunks (writers put
    /// at least one byte in a final chunk unless the record is empty), is a cut record:
    /// reported after the chunks before it verified, as [`crate::open`] reports it.
    fn open_end(&mut self) -> Result<()> {
        let stride = self.stride();
        let len = self.buf.len();
        let chunks = len.div_ceil(stride).max(1);
        let last_len = len - (chunks - 1) * stride;
        let final_index = u32::try_from(chunks - 1)
            .ok()
            .and_then(|n| self.index.checked_add(n))
            .ok_or(Error::Malformed {
                format: "sealed record",
                detail: "more than 2^32 chunks",
            })?;
        let whole = last_len > CHUNK_OVERHEAD || (last_len == CHUNK_OVERHEAD && final_index == 0);
        if whole {
            return self.open_span(len, Some(final_index));
        }
        self.open_span((chunks - 1) * stride, None)?;
        Err(Error::Truncated {
            format: "sealed record",
            detail: if last_len < CHUNK_OVERHEAD {
                "a chunk is shorter than its tag"
            } else {
                "the record ends inside a chunk"
            },
        })
    }

    /// Verifies and decrypts the chunks in the first `end` buffered bytes in place, then
    /// moves their plaintext together to the front of the buffer.
    fn open_span(&mut self, end: usize, final_index: Option<u32>) -> Result<()> {
        let stride = self.stride();
        let mut regions: Vec<&mut [u8]> = self.buf[..end].chunks_mut(stride).collect();
        let chunks = regions.len();
        if chunks > 0 {
            self.cipher
                .open_group_in_place(self.index, final_index, &mut regions)?;
        }
        let mut plain = 0;
        for start in (0..end).step_by(stride) {
            let body = (end - start).min(stride) - CHUNK_OVERHEAD;
            self.buf.copy_within(start..start + body, plain);
            plain += body;
        }
        self.plain = plain;
        self.consumed = end;
        // Only a span of middle chunks is followed by more; its successor's index was
        // checked to exist.
        self.index = self.index.wrapping_add(chunks as u32);
        Ok(())
    }

    /// Drops the batch whose plaintext was handed out, keeping the bytes after it. After
    /// the first chunk, the one-chunk buffer is freed (and wiped) before the batch
    /// buffer is allocated, so the two never coexist.
    fn advance(&mut self) {
        if self.consumed == 0 {
            return;
        }
        if self.lanes == 1 {
            let rest: Vec<u8> = self.buf[self.consumed..].to_vec();
            self.lanes = STREAM_LANES;
            self.buf = Zeroizing::new(Vec::new());
            self.buf = Zeroizing::new(Vec::with_capacity(self.batch_len()));
            self.buf.extend_from_slice(&rest);
        } else {
            self.buf.drain(..self.consumed);
        }
        self.plain = 0;
        self.consumed = 0;
    }

    /// After a failure: nothing buffered is kept, plaintext of chunks that verified
    /// included.
    fn wipe(&mut self) {
        self.buf.zeroize();
        self.plain = 0;
        self.consumed = 0;
    }
}

/// Opens a sealed record of any size as it is read.
///
/// Reads return plaintext only from chunks whose tag verified. End of file is reported
/// only after the final chunk verified, so a truncated record is an error, never a
/// short read. Errors come out of `read` as `std::io::Error` wrapping [`Error`];
/// `medvault::Error::from(io_error)` recovers it.
///
/// Memory: the first chunk is read and verified alone; after it, up to four chunks
/// (and one byte past them) are read, verified together and decrypted in place, so
/// the opener reads ahead of what it hands out by up to four chunks. A failure in a
/// batch discards the whole batch.
pub struct Opener<R: Read> {
    inner: R,
    header: RecordHeader,
    batches: BatchOpener,
    /// Plaintext of the current batch already handed out.
    position: usize,
    state: OpenerState,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum OpenerState {
    Reading,
    Done,
    Failed,
}

impl<R: Read> Opener<R> {
    /// Reads and checks the header, and picks the record key from `key`.
    pub fn new(mut inner: R, key: &impl RecordKeySource) -> Result<Self> {
        let header = read_header(&mut inner)?;
        let record_key =
            key.record_key_for(header.provider(), header.generation(), header.record_id())?;
        let cipher = ChunkCipher::new(&record_key, &header);
        let chunk_size = header.chunk_size() as usize;
        Ok(Opener {
            inner,
            header,
            batches: BatchOpener::new(cipher, chunk_size),
            position: 0,
            state: OpenerState::Reading,
        })
    }

    /// The record's header.
    pub fn header(&self) -> &RecordHeader {
        &self.header
    }

    /// Reads, verifies and decrypts the next batch of chunks.
    fn next_batch(&mut self) -> Result<()> {
        self.batches.advance();
        self.position = 0;
        self.batches.fill(&mut self.inner)?;
        if self.batches.wanted() == 0 {
            self.batches.open_batch()
        } else {
            self.batches.open_end()?;
            self.state = OpenerState::Done;
            Ok(())
        }
    }
}

impl<R: Read> Read for Opener<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let plaintext = self.batches.plaintext();
            if self.position < plaintext.len() {
                let n = buf.len().min(plaintext.len() - self.position);
                buf[..n].copy_from_slice(&plaintext[self.position..self.position + n]);
                self.position += n;
                return Ok(n);
            }
            match self.state {
                OpenerState::Done => return Ok(0),
                OpenerState::Failed => {
                    return Err(
                        Error::InvalidArgument("the opener failed earlier; discard it").into(),
                    );
                }
                OpenerState::Reading => {
                    if let Err(err) = self.next_batch() {
                        self.state = OpenerState::Failed;
                        self.batches.wipe();
                        return Err(err.into());
                    }
                }
            }
        }
    }
}

/// Opens a sealed record pushed to it in pieces of any size, for callers that receive
/// bytes rather than read them (network callbacks, the C ABI's `_update`).
///
/// Like [`Opener`] it hands out only verified plaintext, opening the first chunk alone
/// and then up to four chunks at a time (so it holds up to four chunks and one byte).
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
    pub fn update(&mut self, sealed: &[u8], plaintext: &mut Vec<u8>) -> Result<()> {
        if self.failed {
            return Err(Error::InvalidArgument(
                "the opener failed earlier; discard it",
            ));
        }
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
                batches.open_batch()?;
                plaintext.extend_from_slice(batches.plaintext());
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
        batches.open_end()?;
        plaintext.extend_from_slice(batches.plaintext());
        Ok(())
    }
}

/// Reads exactly one header from `inner`, byte-exact, with no read-ahead.
fn read_header(inner: &mut impl Read) -> Result<RecordHeader> {
    let truncated = |err: io::Error| -> Error {
        if err.kind() == io::ErrorKind::UnexpectedEof {
            Error::Truncated {
                format: "sealed record",
                detail: "the header is cut short",
            }
        } else {
            Error::Io(err)
        }
    };
    let mut bytes = vec![0u8; HEADER_FIXED_PREFIX];
    inner.read_exact(&mut bytes).map_err(truncated)?;
    // Check magic, version and algorithm before trusting the length byte.
    if let Err(err) = RecordHeader::parse(&bytes)
        && !matches!(err, Error::Truncated { .. })
    {
        return Err(err);
    }
    let provider_len = bytes[HEADER_FIXED_PREFIX - 1] as usize;
    bytes.resize(HEADER_FIXED_PREFIX + provider_len + HEADER_FIXED_SUFFIX, 0);
    inner
        .read_exact(&mut bytes[HEADER_FIXED_PREFIX..])
        .map_err(truncated)?;
    let (header, used) = RecordHeader::parse(&bytes)?;
    debug_assert_eq!(used, bytes.len());
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{MasterKey, PatientId, ProviderId, RecordId};
    use crate::record::seal::seal_with_prefix;

    /// The key of record `[record; 16]` of patient `patient` at provider "lab".
    fn record_key(master: u8, patient: &str, generation: u32, record: u8) -> RecordKey {
        MasterKey::from_bytes([master; 32])
            .patient_key(
                &ProviderId::new("lab").unwrap(),
                &PatientId::new(patient).unwrap(),
                generation,
            )
            .record_key(RecordId::from_bytes([record; 16]))
    }

    /// The streaming sealer, which seals up to [`STREAM_LANES`] chunks together, writes
    /// exactly the bytes of the one-shot `seal` for the same nonce prefix: whatever the
    /// length (empty, around one chunk, around a batch of chunks, many batches) and
    /// however the input is split into writes.
    #[test]
    fn the_sealer_writes_what_seal_writes() {
        let key = record_key(4, "MRN-2", 1, 6);
        let prefix = [9u8; NONCE_PREFIX_LEN];
        for chunk in [16usize, 48] {
            let batch = STREAM_LANES * chunk;
            let lengths = [
                0,
                1,
                chunk - 1,
                chunk,
                chunk + 1,
                batch - 1,
                batch,
                batch + 1,
                3 * batch + 5,
                9 * chunk,
            ];
            for len in lengths {
                let data: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
                let expected = seal_with_prefix(&key, &data, chunk as u32, prefix).unwrap();
                for split in [1, 5, chunk, chunk + 3, len.max(1)] {
                    let mut sealer =
                        Sealer::with_prefix(Vec::new(), &key, chunk as u32, prefix).unwrap();
                    for piece in data.chunks(split) {
                        sealer.write_all(piece).unwrap();
                    }
                    let sealed = sealer.finish().unwrap();
                    assert!(
                        sealed == expected,
                        "chunk {chunk}, {len} bytes, writes of {split}"
                    );
                }
            }
        }
    }

    /// Opens `sealed` with the pull opener reading `read` bytes at a time, and with the
    /// push opener fed `piece` bytes at a time.
    fn both_openers(
        key: &RecordKey,
        sealed: &[u8],
        read: usize,
        piece: usize,
    ) -> (Result<Vec<u8>>, Result<Vec<u8>>) {
        let pulled = Opener::new(sealed, key).and_then(|mut opener| {
            let mut out = Vec::new();
            let mut buf = vec![0u8; read];
            loop {
                match opener.read(&mut buf) {
                    Ok(0) => return Ok(out),
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                    Err(err) => return Err(Error::from(err)),
                }
            }
        });
        let mut opener = IncrementalOpener::new(key);
        let mut out = Vec::new();
        let pushed = sealed
            .chunks(piece)
            .try_for_each(|part| opener.update(part, &mut out))
            .and_then(|()| opener.finish(&mut out))
            .map(|()| out);
        (pulled, pushed)
    }

    /// The streaming openers, which open the first chunk alone and then four at a time,
    /// give back exactly what was sealed: whatever the length (empty, around one chunk,
    /// around the first batch, several batches, a batch that ends the record exactly)
    /// and however the bytes arrive.
    #[test]
    fn the_openers_open_every_length_and_split() {
        let key = record_key(4, "MRN-2", 1, 6);
        for chunk in [16usize, 48] {
            let batch = STREAM_LANES * chunk;
            let lengths = [
                0,
                1,
                chunk - 1,
                chunk,
                chunk + 1,
                chunk + batch - 1,
                chunk + batch,
                chunk + batch + 1,
                chunk + 3 * batch,
                chunk + 3 * batch + 5,
                9 * chunk,
            ];
            for len in lengths {
                let data: Vec<u8> = (0..len).map(|i| (i * 5 + len) as u8).collect();
                let sealed =
                    crate::record::seal::seal_with_chunk_size(&key, &data, chunk as u32).unwrap();
                for split in [1, 5, chunk, chunk + 3, sealed.len()] {
                    let (pulled, pushed) = both_openers(&key, &sealed, split, split);
                    let what = format!("chunk {chunk}, {len} bytes, pieces of {split}");
                    assert!(pulled.unwrap() == data, "pull: {what}");
                    assert!(pushed.unwrap() == data, "push: {what}");
                }
            }
        }
    }

    /// Cut at every byte or with any one byte flipped, a record of eleven chunks (the
    /// first alone, two batches of four, the end) fails in both openers exactly as
    /// the one-shot `open` fails: same error.
    #[test]
    fn the_openers_fail_as_open_fails() {
        let key = record_key(8, "MRN-3", 0, 2);
        let chunk = 16usize;
        let data: Vec<u8> = (0..10 * chunk + 7).map(|i| i as u8).collect();
        let sealed = crate::record::seal::seal_with_chunk_size(&key, &data, chunk as u32).unwrap();
        let header_len = RecordHeader::parse(&sealed).unwrap().1;
        // Inside the header the readers word a cut their own way: the same kind of
        // error is enough there. In the chunks, the very same error.
        let same = |bad: &[u8], in_header: bool, what: &str| {
            let expected = crate::record::seal::open(&key, bad).expect_err(what);
            for split in [1, 7, sealed.len()] {
                let (pulled, pushed) = both_openers(&key, bad, split, split);
                for (how, got) in [("pull", pulled), ("push", pushed)] {
                    let got = got.expect_err(what);
                    if in_header {
                        assert_eq!(
                            core::mem::discriminant(&got),
                            core::mem::discriminant(&expected),
                            "{how}: {what}: {got:?} / {expected:?}"
                        );
                    } else {
                        assert_eq!(got.to_string(), expected.to_string(), "{how}: {what}");
                    }
                }
            }
        };
        for len in 0..sealed.len() {
            same(&sealed[..len], len < header_len, &format!("cut at {len}"));
        }
        for pos in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[pos] ^= 0x20;
            same(&bad, pos < header_len, &format!("byte {pos} flipped"));
        }
    }
}
