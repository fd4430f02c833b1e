//! Streaming sealing and opening for records too large for memory (a 100 MB image).
//!
//! [`Sealer`] is a `Write`: bytes go in, sealed chunks come out to the inner writer.
//! [`Opener`] is a `Read`: it pulls sealed chunks from the inner reader and hands out
//! plaintext only after each chunk's tag verified. Both hold a batch of at most eight
//! chunks and 512 KiB (the openers one byte more, of look-ahead; a record declaring
//! chunks larger than 64 KiB is held one to four chunks at a time), so memory does not
//! grow with the record; a batch goes through AES together, its MAC chains
//! interleaved, as the one-shot path's groups do.
//!
//! The wire format is the one [`crate::record::seal()`] writes: a record sealed by either path
//! opens with either path.

use std::io::{self, Read, Write};

use zeroize::Zeroize;

use crate::crypto::wiped::{WipedVec, wipe_vec};

use super::chunk::{ChunkCipher, split_by_bodies};
use super::header::{
    CHUNK_OVERHEAD, DEFAULT_CHUNK_SIZE, HEADER_FIXED_PREFIX, HEADER_FIXED_SUFFIX, NONCE_PREFIX_LEN,
    RecordHeader, check_chunk_size,
};
use super::seal::{chunk_size_for, seal_with_prefix};
use crate::crypto::eax::LANES;
use crate::crypto::rng;
use crate::error::{Error, Result};
use crate::keys::{RecordKey, RecordKeySource};

/// Seals a record of any size as it is written.
///
/// Call [`Sealer::finish`] at the end: it writes the final chunk. A sealer dropped
/// without `finish` leaves a record that every opener rejects as truncated.
///
/// [`Sealer::new`] picks the chunk size [`crate::seal()`] would: it holds a record of up
/// to 256 KiB whole and seals it at `finish` exactly as the one-shot
/// path does (eight chunks side by side), and commits to [`DEFAULT_CHUNK_SIZE`] as soon
/// as the record proves longer, which is the size `seal` picks for every such length.
/// Nothing reaches the inner writer before then.
///
/// Memory: at most the 256 KiB of a short record (and its sealed copy at `finish`), or
/// for a longer one eight chunks, 512 KiB at the default size (eight chunks are sealed
/// together, their MAC chains interleaved, so the inner writer receives output in
/// steps of up to eight chunks), beside which, once, as the record proves longer than
/// 256 KiB, the plaintext held so far is moved into the first batch. The buffered plaintext is wiped when the sealer is
/// dropped, and so is every buffer it outgrows.
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
    phase: Phase,
    /// While sizing: the plaintext so far. While sealing: up to `lanes` chunks in their
    /// wire layout, `plaintext ‖ tag space`, sealed together in place: `full` complete
    /// ones, then the chunk being filled (a full chunk waits until more input shows it
    /// is not the last one).
    pending: WipedVec,
    full: usize,
    /// Index of the first chunk in `pending`.
    index: u32,
    failed: bool,
}

/// What the sealer knows of the record's chunking.
enum Phase {
    /// [`Sealer::new`], before the record is known to be longer than [`SIZING_LIMIT`].
    Sizing {
        key: RecordKey,
        nonce_prefix: [u8; NONCE_PREFIX_LEN],
    },
    /// The header is written; chunks of `chunk_size` are sealed `lanes` at a time.
    Sealing {
        // Boxed: the key schedule and MAC states are far larger than the key.
        cipher: Box<ChunkCipher>,
        chunk_size: usize,
        lanes: usize,
    },
}

/// The longest record [`Sealer::new`] holds whole before choosing its chunk size: for
/// every longer one [`chunk_size_for`] is [`DEFAULT_CHUNK_SIZE`] (eight chunks of more
/// than half the default).
pub(crate) const SIZING_LIMIT: usize = LANES / 2 * DEFAULT_CHUNK_SIZE as usize;

/// Sealed bytes the streaming paths put in one batch: eight default chunks, so that
/// records sealed with the default chunk size go through AES eight chains at a time, as
/// the one-shot path does (bench `seal`, `stream-*` rows against `seal` and `open`).
const STREAM_BATCH_BYTES: usize = LANES * DEFAULT_CHUNK_SIZE as usize;

/// Chunks of `chunk_size` sealed or opened together by the streaming paths: as many as
/// fit in [`STREAM_BATCH_BYTES`], from one (a record declaring 16 MiB chunks) to
/// [`LANES`].
pub(super) fn stream_lanes(chunk_size: usize) -> usize {
    (STREAM_BATCH_BYTES / chunk_size.max(1)).clamp(1, LANES)
}

impl<W: Write> Sealer<W> {
    /// Starts sealing to `inner` with the chunk size [`crate::seal()`] would pick for the
    /// record's length, which it learns as the record is written (see above).
    pub fn new(inner: W, key: &RecordKey) -> Result<Self> {
        Self::sizing_with_prefix(inner, key, rng::array()?)
    }

    /// The deterministic core of [`Sealer::new`]; the nonce prefix must be fresh for the
    /// key.
    fn sizing_with_prefix(
        inner: W,
        key: &RecordKey,
        nonce_prefix: [u8; NONCE_PREFIX_LEN],
    ) -> Result<Self> {
        // The header is built now, and again once the chunk size is known, so that a
        // key that cannot seal fails here rather than at the first write.
        RecordHeader::new(key, DEFAULT_CHUNK_SIZE, nonce_prefix)?;
        Ok(Sealer {
            inner: Some(inner),
            phase: Phase::Sizing {
                key: key.clone(),
                nonce_prefix,
            },
            pending: WipedVec::default(),
            full: 0,
            index: 0,
            failed: false,
        })
    }

    /// Starts sealing with an explicit chunk size (16 B to 16 MiB); writes the header.
    pub fn with_chunk_size(inner: W, key: &RecordKey, chunk_size: u32) -> Result<Self> {
        check_chunk_size(chunk_size)?;
        Self::with_prefix(inner, key, chunk_size, rng::array()?)
    }

    /// The deterministic core of [`Sealer::with_chunk_size`]; the nonce prefix must be
    /// fresh for the key.
    fn with_prefix(
        inner: W,
        key: &RecordKey,
        chunk_size: u32,
        nonce_prefix: [u8; NONCE_PREFIX_LEN],
    ) -> Result<Self> {
        let mut sealer = Self::sizing_with_prefix(inner, key, nonce_prefix)?;
        sealer.start(chunk_size)?;
        Ok(sealer)
    }

    fn inner(&mut self) -> Result<&mut W> {
        match (&mut self.inner, self.failed) {
            (Some(inner), false) => Ok(inner),
            _ => Err(Error::InvalidArgument(
                "the sealer failed earlier or has finished",
            )),
        }
    }

    /// Writes `bytes` to the inner writer; a failure spends the sealer.
    fn write_out(&mut self, bytes: &[u8]) -> Result<()> {
        let result = match self.inner.as_mut() {
            Some(inner) => inner.write_all(bytes).map_err(Error::from),
            None => Err(Error::InvalidArgument("the sealer has finished")),
        };
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    /// Leaves the sizing phase with chunks of `chunk_size`: writes the header, then
    /// takes the plaintext held so far as the start of the record.
    fn start(&mut self, chunk_size: u32) -> Result<()> {
        let Phase::Sizing { key, nonce_prefix } = &self.phase else {
            return Ok(());
        };
        let header = RecordHeader::new(key, chunk_size, *nonce_prefix)?;
        let cipher = ChunkCipher::new(key, &header);
        self.write_out(&header.to_bytes())?;
        let chunk_size = chunk_size as usize;
        let lanes = stream_lanes(chunk_size);
        self.phase = Phase::Sealing {
            cipher: Box::new(cipher),
            chunk_size,
            lanes,
        };
        let held = std::mem::take(&mut self.pending);
        // One chunk's room for a record that may be one chunk long (it never pays for
        // a batch's buffer, nor for wiping it); a longer one gets a whole batch's.
        let room = if held.len() > chunk_size {
            lanes * (chunk_size + CHUNK_OVERHEAD)
        } else {
            chunk_size + CHUNK_OVERHEAD
        };
        self.pending = WipedVec::with_capacity(room);
        self.take_chunks(&held)
    }

    /// Seals the buffered chunks in place and writes them out: the complete ones, and
    /// with `last` the chunk being filled too, as the final one.
    fn emit(&mut self, last: bool) -> Result<()> {
        const TOO_MANY: Error = Error::InvalidArgument("a record has at most 2^32 chunks");
        let Phase::Sealing {
            cipher, chunk_size, ..
        } = &self.phase
        else {
            return Err(Error::InvalidArgument("the sealer has not started"));
        };
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
        let stride = chunk_size + CHUNK_OVERHEAD;
        let mut regions: Vec<&mut [u8]> = self.pending.chunks_mut(stride).collect();
        cipher.seal_group_in_place(first, last.then_some(final_index), &mut regions);
        let sealed = std::mem::take(&mut self.pending);
        let result = self.write_out(&sealed);
        self.pending = sealed;
        self.pending.clear();
        self.full = 0;
        result?;
        self.index = next;
        Ok(())
    }

    /// Takes plaintext into the chunk being filled, sealing every batch it completes.
    fn take_chunks(&mut self, mut rest: &[u8]) -> Result<()> {
        let Phase::Sealing {
            chunk_size, lanes, ..
        } = self.phase
        else {
            return Err(Error::InvalidArgument("the sealer has not started"));
        };
        let stride = chunk_size + CHUNK_OVERHEAD;
        while !rest.is_empty() {
            let filling = self.pending.len() - self.full * stride;
            if filling == chunk_size {
                // More input exists, so the full chunk is not the last one.
                self.pending.extend_from_slice(&[0u8; CHUNK_OVERHEAD]);
                self.full += 1;
                let batch = lanes * stride;
                if self.full == lanes || self.pending.capacity() < batch {
                    self.emit(false)?;
                    if self.pending.capacity() < batch {
                        // The record is longer than a chunk: room for whole batches
                        // from now on (the first chunk went out alone). The old buffer
                        // goes first, so the two never coexist.
                        self.pending = WipedVec::default();
                        self.pending = WipedVec::with_capacity(batch);
                    }
                }
                continue;
            }
            let take = rest.len().min(chunk_size - filling);
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
        }
        Ok(())
    }

    /// Holds `bytes` of a record still being sized. The buffer grows by doubling, and
    /// each one it outgrows is wiped before it is freed.
    fn hold(&mut self, bytes: &[u8]) {
        let need = self.pending.len() + bytes.len();
        if need > self.pending.capacity() {
            self.pending
                .grow(need.max(self.pending.capacity() * 2).min(SIZING_LIMIT));
        }
        self.pending.extend_from_slice(bytes);
    }

    /// The inner writer, for example to take out what was sealed so far (nothing,
    /// while [`Sealer::new`] is still sizing a short record). Writing to it directly
    /// corrupts the record.
    pub fn get_mut(&mut self) -> Option<&mut W> {
        self.inner.as_mut()
    }

    /// While sizing, the whole record is held: it is sealed as the one-shot path seals
    /// it. `None` once the sealer has started writing chunks.
    fn seal_held(&self) -> Result<Option<Vec<u8>>> {
        let Phase::Sizing { key, nonce_prefix } = &self.phase else {
            return Ok(None);
        };
        let chunk_size = chunk_size_for(self.pending.len());
        seal_with_prefix(key, &self.pending, chunk_size, *nonce_prefix).map(Some)
    }

    /// Seals the last chunk, flushes, and returns the inner writer.
    pub fn finish(mut self) -> Result<W> {
        self.inner()?;
        if let Some(sealed) = self.seal_held()? {
            self.write_out(&sealed)?;
        } else {
            self.emit(true)?;
        }
        let mut inner = self
            .inner
            .take()
            .ok_or(Error::InvalidArgument("the sealer has finished"))?;
        inner.flush()?;
        Ok(inner)
    }
}

impl Sealer<Vec<u8>> {
    /// As [`Sealer::finish`], for a sealer writing to an empty vector (the C ABI's): a
    /// record still being sized is sealed straight into the vector returned, as the
    /// one-shot path seals, rather than aside and then copied in (bench `c_stream`,
    /// `stream-seal/64KiB`).
    pub(crate) fn finish_vec(mut self) -> Result<Vec<u8>> {
        if self.inner()?.is_empty()
            && let Some(sealed) = self.seal_held()?
        {
            self.inner = None;
            return Ok(sealed);
        }
        self.finish()
    }
}

impl<W: Write> Write for Sealer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner()?;
        if matches!(self.phase, Phase::Sizing { .. }) {
            if self.pending.len() + buf.len() <= SIZING_LIMIT {
                self.hold(buf);
                return Ok(buf.len());
            }
            self.start(DEFAULT_CHUNK_SIZE)?;
        }
        self.take_chunks(buf)?;
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
/// chunk boundary until a batch of chunks ([`stream_lanes`]) and one byte past them are
/// in (that byte proves none of them is the record's last chunk), then the batch is
/// verified and decrypted in place, its chains interleaved. The buffer grows by
/// doubling as bytes arrive, so a short record never pays for a whole batch's buffer.
pub(super) struct BatchOpener {
    cipher: ChunkCipher,
    chunk_size: usize,
    /// Chunks per batch.
    lanes: usize,
    /// Sealed bytes from the start of chunk `index`. Once a batch is opened in place:
    /// its chunks' `plain` bytes of verified plaintext (each chunk's body where it was,
    /// its tag space unused), and from `consumed` on the sealed bytes that follow the
    /// batch.
    buf: Vec<u8>,
    /// Whether plaintext was ever decrypted into `buf`: only then is it wiped on drop
    /// (batches opened straight into the reader's buffer leave only ciphertext here).
    held_plaintext: bool,
    plain: usize,
    consumed: usize,
    index: u32,
}

impl Drop for BatchOpener {
    fn drop(&mut self) {
        if self.held_plaintext {
            wipe_vec(&mut self.buf);
        }
    }
}

impl BatchOpener {
    pub(super) fn new(cipher: ChunkCipher, chunk_size: usize) -> Self {
        BatchOpener {
            cipher,
            chunk_size,
            lanes: stream_lanes(chunk_size),
            buf: Vec::new(),
            held_plaintext: false,
            plain: 0,
            consumed: 0,
            index: 0,
        }
    }

    pub(super) fn stride(&self) -> usize {
        self.chunk_size + CHUNK_OVERHEAD
    }

    /// Sealed bytes a batch takes: its chunks and the one byte past them.
    pub(super) fn batch_len(&self) -> usize {
        self.lanes * self.stride() + 1
    }

    /// Sealed bytes still missing before the batch can be opened.
    pub(super) fn wanted(&self) -> usize {
        self.batch_len().saturating_sub(self.buf.len())
    }

    /// Verified plaintext of the last batch opened, from offset `from` in it to the end
    /// of the chunk that holds that offset; empty past its end.
    pub(super) fn plaintext_from(&self, from: usize) -> &[u8] {
        if from >= self.plain {
            return &[];
        }
        let chunk = from / self.chunk_size;
        let body_start = chunk * self.stride();
        let body_len = self.chunk_size.min(self.plain - chunk * self.chunk_size);
        &self.buf[body_start + from % self.chunk_size..body_start + body_len]
    }

    /// Room for `more` sealed bytes. The buffer grows fourfold from 16 KiB as bytes
    /// arrive (a short input declaring a 16 MiB chunk size allocates no more than that
    /// or the input; each step copies what came before, so few steps: bench `seal`,
    /// `stream-open/64KiB`), never past one batch, and only before any plaintext was in
    /// it: no freed buffer holds plaintext.
    pub(super) fn reserve(&mut self, more: usize) {
        let need = self.buf.len() + more;
        if need <= self.buf.capacity() {
            return;
        }
        let target = self.batch_len();
        let mut room = target.min(need.max(self.buf.capacity().max(4096) * 4));
        if room + room / 2 > target {
            // A last step of a few bytes would hold two large buffers at once.
            room = target;
        }
        let len = self.buf.len();
        self.buf.reserve_exact(room - len);
    }

    /// The most plaintext opening what is buffered can give (as a batch, or as the end
    /// of the record, cut or whole).
    pub(super) fn openable_len(&self) -> usize {
        let len = self.buf.len();
        let chunks = len.div_ceil(self.stride());
        (chunks.saturating_sub(1) * self.chunk_size)
            .max(len.saturating_sub(chunks * CHUNK_OVERHEAD))
    }

    /// Bytes in the buffer: sealed bytes waiting, or a batch's plaintext not yet taken.
    pub(super) fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Takes sealed bytes up to the end of the batch; returns how many it took.
    pub(super) fn push(&mut self, sealed: &[u8]) -> usize {
        let take = self.wanted().min(sealed.len());
        self.reserve(take);
        self.buf.extend_from_slice(&sealed[..take]);
        take
    }

    /// Reads from `inner` until the batch is in or the input ends.
    pub(super) fn fill(&mut self, inner: &mut impl Read) -> io::Result<()> {
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

    /// Opens the complete batch: all its chunks are middle chunks. With `into` (at
    /// least [`BatchOpener::openable_len`] bytes), the plaintext is decrypted there and its
    /// length returned; else it stays in the buffer and 0 is returned.
    pub(super) fn open_batch(&mut self, into: Option<&mut [u8]>) -> Result<usize> {
        debug_assert_eq!(self.wanted(), 0);
        // The chunk after the batch needs an index too.
        self.index
            .checked_add(self.lanes as u32)
            .ok_or(Error::Malformed {
                format: "sealed record",
                detail: "more than 2^32 chunks",
            })?;
        self.open_span(self.lanes * self.stride(), None, into)
    }

    /// Opens what is buffered as the end of the record, its last chunk as the final one.
    /// A final chunk shorter than its tag, or only a tag after other chunks (writers put
    /// at least one byte in a final chunk unless the record is empty), is a cut record:
    /// reported after the chunks before it verified, as [`crate::open`] reports it.
    /// `into` as for [`BatchOpener::open_batch`]; after a failure it may hold plaintext
    /// of chunks that verified, which the caller wipes.
    pub(super) fn open_end(&mut self, into: Option<&mut [u8]>) -> Result<usize> {
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
            return self.open_span(len, Some(final_index), into);
        }
        self.open_span((chunks - 1) * stride, None, into)?;
        Err(Error::Truncated {
            format: "sealed record",
            detail: if last_len < CHUNK_OVERHEAD {
                "a chunk is shorter than its tag"
            } else {
                "the record ends inside a chunk"
            },
        })
    }

    /// Verifies and decrypts the chunks in the first `end` buffered bytes: into `into`
    /// when given (returning the plaintext length), else in place, where their plaintext
    /// stays, read around the tags (moving it together cost a tenth of a 64 KiB
    /// record's opening: bench `seal`, `stream-open` rows).
    pub(super) fn open_span(
        &mut self,
        end: usize,
        final_index: Option<u32>,
        into: Option<&mut [u8]>,
    ) -> Result<usize> {
        let stride = self.stride();
        let chunks = end.div_ceil(stride);
        // Every chunk holds its tag; the callers checked that each is at least that long.
        let plain = end - chunks * CHUNK_OVERHEAD;
        let written = match into {
            Some(out) if chunks > 0 => {
                let regions: Vec<&[u8]> = self.buf[..end].chunks(stride).collect();
                let mut outputs = split_by_bodies(&regions, &mut out[..plain]);
                // A batch of middle chunks names no final one: no chunk of it has the
                // index u32::MAX (the successor's index was checked to exist).
                self.cipher.open_group(
                    self.index,
                    final_index.unwrap_or(u32::MAX),
                    &regions,
                    &mut outputs,
                )?;
                self.plain = 0;
                plain
            }
            _ => {
                let mut regions: Vec<&mut [u8]> = self.buf[..end].chunks_mut(stride).collect();
                self.held_plaintext = true;
                if chunks > 0 {
                    self.cipher
                        .open_group_in_place(self.index, final_index, &mut regions)?;
                }
                self.plain = plain;
                0
            }
        };
        self.consumed = end;
        // Only a span of middle chunks is followed by more; its successor's index was
        // checked to exist.
        self.index = self.index.wrapping_add(chunks as u32);
        Ok(written)
    }

    /// Drops the batch whose plaintext was handed out, keeping the bytes after it.
    pub(super) fn advance(&mut self) {
        if self.consumed == 0 {
            return;
        }
        self.buf.drain(..self.consumed);
        self.plain = 0;
        self.consumed = 0;
    }

    /// After a failure: nothing buffered is kept, plaintext of chunks that verified
    /// included.
    pub(super) fn wipe(&mut self) {
        wipe_vec(&mut self.buf);
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
/// Memory: batches of up to eight chunks and 512 KiB (and one byte past them) are
/// read and verified together, so the opener reads ahead of what it hands out by up to
/// one batch. A `read` with room for the whole batch gets it decrypted straight into
/// its buffer (no copy, and no plaintext in the opener's); a smaller one is served from
/// the batch decrypted in place. A failure in a batch discards the whole batch, and a
/// `read` that fails leaves its buffer zeroed.
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

    /// Reads, verifies and decrypts the next batch of chunks: straight into `out` if it
    /// has room for the whole batch (returning how many bytes it wrote there; the
    /// plaintext is then never in the opener's buffer, nor copied out of it), else into
    /// the buffer (returning 0). After a failure `out` may hold plaintext of chunks that
    /// verified: the caller wipes it.
    fn next_batch(&mut self, out: &mut [u8]) -> Result<usize> {
        self.batches.advance();
        self.position = 0;
        self.batches.fill(&mut self.inner)?;
        let into = (out.len() >= self.batches.openable_len()).then_some(out);
        if self.batches.wanted() == 0 {
            self.batches.open_batch(into)
        } else {
            let written = self.batches.open_end(into)?;
            self.state = OpenerState::Done;
            Ok(written)
        }
    }
}

impl<R: Read> Read for Opener<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // As much of the batch as fits, chunk body by chunk body.
            let mut given = 0;
            while given < buf.len() {
                let piece = self.batches.plaintext_from(self.position);
                if piece.is_empty() {
                    break;
                }
                let n = (buf.len() - given).min(piece.len());
                buf[given..given + n].copy_from_slice(&piece[..n]);
                self.position += n;
                given += n;
            }
            if given > 0 || buf.is_empty() {
                return Ok(given);
            }
            match self.state {
                OpenerState::Done => return Ok(0),
                OpenerState::Failed => {
                    return Err(
                        Error::InvalidArgument("the opener failed earlier; discard it").into(),
                    );
                }
                OpenerState::Reading => match self.next_batch(buf) {
                    Ok(0) => {}
                    Ok(written) => return Ok(written),
                    Err(err) => {
                        self.state = OpenerState::Failed;
                        self.batches.wipe();
                        buf.zeroize();
                        return Err(err.into());
                    }
                },
            }
        }
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
    let got = read_until_full(inner, &mut bytes[HEADER_FIXED_PREFIX..]).map_err(Error::Io)?;
    if HEADER_FIXED_PREFIX + got < bytes.len() {
        // Cut short. What did arrive may already be malformed (a provider id outside
        // its alphabet): said so, as `open` and the push opener say of the same bytes.
        return Err(
            match RecordHeader::parse(&bytes[..HEADER_FIXED_PREFIX + got]) {
                Err(err) if !matches!(err, Error::Truncated { .. }) => err,
                _ => truncated(io::ErrorKind::UnexpectedEof.into()),
            },
        );
    }
    let (header, used) = RecordHeader::parse(&bytes)?;
    debug_assert_eq!(used, bytes.len());
    Ok(header)
}

/// Reads into `buf` until it is full or `inner` ends; returns the bytes read.
fn read_until_full(inner: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match inner.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(got)
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
