//! Streaming sealing and opening for records too large for memory (a 100 MB image).
//!
//! [`Sealer`] is a `Write`: bytes go in, sealed chunks come out to the inner writer.
//! [`Opener`] is a `Read`: it pulls sealed chunks from the inner reader and hands out
//! plaintext only after each chunk's tag verified. Both hold at most one chunk (plus one
//! byte of look-ahead) at a time, so memory does not grow with the record.
//!
//! The wire format is the one [`crate::seal()`] writes: a record sealed by either path
//! opens with either path.

use std::io::{self, Read, Write};

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keys::{RecordKey, RecordKeySource};
use crate::rng;
use crate::seal::{
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
    /// Starts sealing to `inner` with [`DEFAULT_CHUNK_SIZE`]; writes the header.
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

/// Opens a sealed record of any size as it is read.
///
/// Reads return plaintext only from chunks whose tag verified. End of file is reported
/// only after the final chunk verified, so a truncated record is an error, never a
/// short read. Errors come out of `read` as `std::io::Error` wrapping [`Error`];
/// `medvault::Error::from(io_error)` recovers it.
pub struct Opener<R: Read> {
    inner: R,
    header: RecordHeader,
    cipher: ChunkCipher,
    chunk_size: usize,
    /// Sealed bytes read ahead: the current chunk and one byte past it.
    sealed: Vec<u8>,
    /// Verified plaintext not yet handed out, from `position`.
    plain: Zeroizing<Vec<u8>>,
    position: usize,
    index: u32,
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
            cipher,
            chunk_size,
            sealed: Vec::new(),
            plain: Zeroizing::new(Vec::new()),
            position: 0,
            index: 0,
            state: OpenerState::Reading,
        })
    }

    /// The record's header.
    pub fn header(&self) -> &RecordHeader {
        &self.header
    }

    /// Reads, verifies and decrypts the next chunk into `plain`.
    fn next_chunk(&mut self) -> Result<()> {
        let stride = self.chunk_size + CHUNK_OVERHEAD;
        // One byte of look-ahead tells a full middle chunk from a full final one. The
        // buffer grows only as bytes arrive, so a short input declaring a huge chunk
        // size never makes us allocate the declared size.
        let want = (stride + 1).saturating_sub(self.sealed.len());
        (&mut self.inner)
            .take(want as u64)
            .read_to_end(&mut self.sealed)?;
        let last = self.sealed.len() <= stride;
        let chunk_len = self.sealed.len().min(stride);
        if chunk_len < CHUNK_OVERHEAD {
            return Err(Error::Truncated {
                format: "sealed record",
                detail: "a chunk is shorter than its tag",
            });
        }
        let (ciphertext, rest) = self.sealed.split_at(chunk_len - CHUNK_OVERHEAD);
        self.plain.clear();
        self.plain.extend_from_slice(ciphertext);
        self.cipher
            .open_chunk(self.index, last, &mut self.plain, &rest[..CHUNK_OVERHEAD])?;
        self.sealed.drain(..chunk_len);
        self.position = 0;
        if last {
            self.state = OpenerState::Done;
        } else {
            self.index = self.index.checked_add(1).ok_or(Error::Malformed {
                format: "sealed record",
                detail: "more than 2^32 chunks",
            })?;
        }
        Ok(())
    }
}

impl<R: Read> Read for Opener<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.position < self.plain.len() {
                let n = buf.len().min(self.plain.len() - self.position);
                buf[..n].copy_from_slice(&self.plain[self.position..self.position + n]);
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
                    if let Err(err) = self.next_chunk() {
                        self.state = OpenerState::Failed;
                        self.plain.clear();
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
/// Like [`Opener`] it holds at most one chunk and one byte of look-ahead, and hands out
/// only verified plaintext. The final chunk is recognized only at
/// [`IncrementalOpener::finish`], which is where a truncated record is an error.
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
    /// The header and its cipher, once the header is complete.
    opened: Option<(RecordHeader, ChunkCipher)>,
    /// Sealed bytes not yet used: part of the header, or the current chunk and at most
    /// one byte past it.
    buffered: Vec<u8>,
    index: u32,
    failed: bool,
}

impl<K: RecordKeySource> IncrementalOpener<K> {
    /// An opener that will pick the record key from `key` once the header arrived.
    pub fn new(key: K) -> Self {
        IncrementalOpener {
            key,
            opened: None,
            buffered: Vec::new(),
            index: 0,
            failed: false,
        }
    }

    /// The record's header, once enough bytes arrived.
    pub fn header(&self) -> Option<&RecordHeader> {
        self.opened.as_ref().map(|(header, _)| header)
    }

    /// Takes the next piece of the sealed record and appends the plaintext of every
    /// chunk it completes (and verifies) to `plaintext`. After an error the opener is
    /// spent: every later call fails.
    pub fn update(&mut self, sealed: &[u8], plaintext: &mut Vec<u8>) -> Result<()> {
        if self.failed {
            return Err(Error::InvalidArgument(
                "the opener failed earlier; discard it",
            ));
        }
        let result = self.consume(sealed, plaintext);
        self.failed = result.is_err();
        result
    }

    fn consume(&mut self, mut sealed: &[u8], plaintext: &mut Vec<u8>) -> Result<()> {
        while !sealed.is_empty() {
            let Some((header, cipher)) = &self.opened else {
                let taken = self.take_header_bytes(sealed)?;
                sealed = &sealed[taken..];
                continue;
            };
            let stride = header.chunk_size() as usize + CHUNK_OVERHEAD;
            // Fill up to one byte past the chunk: that byte proves it is not the last.
            let take = (stride + 1 - self.buffered.len()).min(sealed.len());
            self.buffered.extend_from_slice(&sealed[..take]);
            sealed = &sealed[take..];
            if self.buffered.len() == stride + 1 {
                let mut chunk = Zeroizing::new(self.buffered[..stride - CHUNK_OVERHEAD].to_vec());
                cipher.open_chunk(
                    self.index,
                    false,
                    &mut chunk,
                    &self.buffered[stride - CHUNK_OVERHEAD..stride],
                )?;
                plaintext.extend_from_slice(&chunk);
                self.buffered.drain(..stride);
                self.index = self.index.checked_add(1).ok_or(Error::Malformed {
                    format: "sealed record",
                    detail: "more than 2^32 chunks",
                })?;
            }
        }
        Ok(())
    }

    /// Moves header bytes from `sealed` into the buffer; parses the header once it is
    /// complete. Returns how many bytes it took.
    fn take_header_bytes(&mut self, sealed: &[u8]) -> Result<usize> {
        let need = if self.buffered.len() < HEADER_FIXED_PREFIX {
            HEADER_FIXED_PREFIX
        } else {
            HEADER_FIXED_PREFIX
                + self.buffered[HEADER_FIXED_PREFIX - 1] as usize
                + HEADER_FIXED_SUFFIX
        };
        let take = (need - self.buffered.len()).min(sealed.len());
        self.buffered.extend_from_slice(&sealed[..take]);
        match RecordHeader::parse(&self.buffered) {
            Ok((header, used)) => {
                debug_assert_eq!(used, self.buffered.len());
                let key = self.key.record_key_for(
                    header.provider(),
                    header.generation(),
                    header.record_id(),
                )?;
                let cipher = ChunkCipher::new(&key, &header);
                self.buffered.clear();
                self.opened = Some((header, cipher));
            }
            // Magic, version and algorithm are checked as soon as their bytes arrive.
            Err(Error::Truncated { .. }) => {}
            Err(err) => return Err(err),
        }
        Ok(take)
    }

    /// Verifies the final chunk and appends its plaintext. An input that ends before
    /// its final chunk is [`Error::Truncated`].
    pub fn finish(self, plaintext: &mut Vec<u8>) -> Result<()> {
        if self.failed {
            return Err(Error::InvalidArgument(
                "the opener failed earlier; discard it",
            ));
        }
        let Some((_, cipher)) = &self.opened else {
            return Err(Error::Truncated {
                format: "sealed record",
                detail: "the header is cut short",
            });
        };
        if self.buffered.len() < CHUNK_OVERHEAD {
            return Err(Error::Truncated {
                format: "sealed record",
                detail: "a chunk is shorter than its tag",
            });
        }
        let split = self.buffered.len() - CHUNK_OVERHEAD;
        let mut chunk = Zeroizing::new(self.buffered[..split].to_vec());
        cipher.open_chunk(self.index, true, &mut chunk, &self.buffered[split..])?;
        plaintext.extend_from_slice(&chunk);
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
    use crate::seal::seal_with_prefix;

    /// The streaming sealer, which seals up to [`STREAM_LANES`] chunks together, writes
    /// exactly the bytes of the one-shot `seal` for the same nonce prefix: whatever the
    /// length (empty, around one chunk, around a batch of chunks, many batches) and
    /// however the input is split into writes.
    #[test]
    fn the_sealer_writes_what_seal_writes() {
        let master = MasterKey::from_bytes([4; 32]);
        let patient = master.patient_key(
            &ProviderId::new("lab").unwrap(),
            &PatientId::new("MRN-2").unwrap(),
            1,
        );
        let key = patient.record_key(RecordId::from_bytes([6; 16]));
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
}
