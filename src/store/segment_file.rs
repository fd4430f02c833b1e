//! The directory store's segment file (`MVSF`, FORMAT.md "Segment file"): a sorted
//! label-value table on disk that answers lookups without being loaded.
//!
//! Only a small directory stays in memory: the first label of every block of 128
//! labels (the fences), a CRC-32 per label block, and a Bloom filter — about 1.4 bytes
//! per entry. A lookup reads one 2 KiB label block and one 72-byte value record with
//! `pread`, and checks the CRC of both before using them, so a damaged file gives
//! [`Error::Corrupt`] naming it, never a wrong answer.

use std::fs::File;
use std::path::Path;

use crate::error::{Error, IoAt, Result};
use crate::index::{LABEL_LEN, Label, VALUE_LEN, Value};
use crate::store::disk::{Disk, read_exact_at};

/// Magic bytes of a segment file.
pub const SEGMENT_FILE_MAGIC: &[u8; 4] = b"MVSF";
/// The segment file format version.
pub const SEGMENT_FILE_VERSION: u8 = 1;
const ALG_INDEX_V1: u8 = crate::index::ALG_GGM_AES256_PACKED4;
const HEADER_LEN: u64 = 64;
/// Labels per block: one block is 2 KiB, read whole and checked by one CRC.
const BLOCK_ENTRIES: u64 = 128;
/// A value and the CRC-32 of its position and bytes.
const VALUE_RECORD_LEN: u64 = VALUE_LEN as u64 + 4;
const BLOOM_BITS_PER_ENTRY: u64 = 10;
const BLOOM_HASHES: u64 = 7;
const BLOOM_BLOCK_WORDS: u64 = 8;
/// 2^36 entries (5.8 TB) bounds every offset computation far from overflow.
const MAX_ENTRIES: u64 = 1 << 36;
/// Writes are gathered to this size before they go to the file.
const WRITE_BUFFER: usize = 256 * 1024;
/// Entries read at once by a sequential scan (a whole number of blocks).
const SCAN_WINDOW: u64 = 8 * BLOCK_ENTRIES;

/// Where everything is in a segment file of `entries` entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    entries: u64,
    blocks: u64,
    bloom_words: u64,
}

impl Layout {
    fn new(entries: u64) -> Option<Layout> {
        (entries <= MAX_ENTRIES).then(|| Layout {
            entries,
            blocks: entries.div_ceil(BLOCK_ENTRIES),
            bloom_words: (entries * BLOOM_BITS_PER_ENTRY).div_ceil(512).max(1) * BLOOM_BLOCK_WORDS,
        })
    }

    fn values_at(&self) -> u64 {
        HEADER_LEN + self.entries * LABEL_LEN as u64
    }

    fn meta_at(&self) -> u64 {
        self.values_at() + self.entries * VALUE_RECORD_LEN
    }

    fn meta_len(&self) -> u64 {
        self.blocks * (4 + LABEL_LEN as u64) + self.bloom_words * 8
    }

    fn file_len(&self) -> u64 {
        self.meta_at() + self.meta_len() + 4
    }

    fn block_len(&self, block: u64) -> u64 {
        (self.entries - block * BLOCK_ENTRIES).min(BLOCK_ENTRIES)
    }

    fn header(&self) -> [u8; HEADER_LEN as usize] {
        let mut h = [0u8; HEADER_LEN as usize];
        h[..4].copy_from_slice(SEGMENT_FILE_MAGIC);
        h[4] = SEGMENT_FILE_VERSION;
        h[5] = ALG_INDEX_V1;
        h[8..16].copy_from_slice(&self.entries.to_be_bytes());
        h[16..20].copy_from_slice(&(BLOCK_ENTRIES as u32).to_be_bytes());
        h[20..24].copy_from_slice(&(BLOOM_HASHES as u32).to_be_bytes());
        h[24..32].copy_from_slice(&self.bloom_words.to_be_bytes());
        let crc = crc32fast::hash(&h[..60]);
        h[60..].copy_from_slice(&crc.to_be_bytes());
        h
    }
}

/// A blocked Bloom filter: all of a label's bits fall in one 512-bit (cache-line)
/// block, so a lookup or an insert touches one cache line.
fn bloom_bits(label: &Label, words: u64) -> impl Iterator<Item = (usize, u64)> {
    // Labels are PRF outputs: their bytes are already uniform hashes.
    let h1 = u64::from_be_bytes(label[..8].try_into().unwrap_or_default());
    let h2 = u64::from_be_bytes(label[8..].try_into().unwrap_or_default());
    let base = (h1 % (words / BLOOM_BLOCK_WORDS)) * BLOOM_BLOCK_WORDS;
    (0..BLOOM_HASHES).map(move |i| {
        let bit = (h2 >> (9 * i)) & 511;
        ((base + bit / 64) as usize, 1u64 << (bit % 64))
    })
}

fn block_crc(block: u64, labels: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&block.to_be_bytes());
    h.update(labels);
    h.finalize()
}

fn value_crc(position: u64, value: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&position.to_be_bytes());
    h.update(value);
    h.finalize()
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// A segment file open for lookups. Shared by any number of readers (`pread` has no
/// file position); the file is immutable once written.
pub struct SegmentFile {
    name: String,
    file: File,
    layout: Layout,
    crcs: Vec<u32>,
    fences: Vec<Label>,
    bloom: Vec<u64>,
}

impl std::fmt::Debug for SegmentFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SegmentFile({}, {} entries)",
            self.name, self.layout.entries
        )
    }
}

#[allow(
    clippy::len_without_is_empty,
    reason = "a file of entries, not a collection to test for emptiness"
)]
impl SegmentFile {
    /// Opens a segment file: checks its header, its length and the CRC of its
    /// directory, and loads the directory. Blocks are checked when read.
    pub fn open(path: &Path) -> Result<SegmentFile> {
        let name = file_name(path);
        let corrupt = |what: &str| Error::Corrupt {
            what: format!("segment file {name}: {what}"),
        };
        let file = File::open(path).at("open", path)?;
        let len = file.metadata().at("inspect", path)?.len();
        let mut header = [0u8; HEADER_LEN as usize];
        if len < HEADER_LEN {
            return Err(corrupt("shorter than its header"));
        }
        read_exact_at(&file, &mut header, 0)?;
        if &header[..4] != SEGMENT_FILE_MAGIC {
            return Err(corrupt("wrong magic bytes"));
        }
        if header[4] != SEGMENT_FILE_VERSION {
            return Err(Error::UnsupportedVersion {
                format: "segment file",
                version: header[4],
            });
        }
        let crc = u32::from_be_bytes([header[60], header[61], header[62], header[63]]);
        if crc32fast::hash(&header[..60]) != crc {
            return Err(corrupt("header checksum"));
        }
        if header[5] != ALG_INDEX_V1 {
            return Err(Error::UnsupportedAlgorithm {
                format: "segment file",
                algorithm: header[5],
            });
        }
        let entries = u64::from_be_bytes(header[8..16].try_into().unwrap_or_default());
        let layout = Layout::new(entries).ok_or_else(|| corrupt("entry count too large"))?;
        // The rest of the header is determined by the entry count in version 1.
        if layout.header() != header {
            return Err(corrupt("header fields"));
        }
        if len != layout.file_len() {
            return Err(corrupt(
                "length does not match the entry count (torn or truncated)",
            ));
        }
        let meta_len =
            usize::try_from(layout.meta_len()).map_err(|_| corrupt("directory too large"))?;
        let mut meta = vec![0u8; meta_len + 4];
        read_exact_at(&file, &mut meta, layout.meta_at())?;
        let (meta, crc) = meta.split_at(meta_len);
        if crc32fast::hash(meta).to_be_bytes() != crc {
            return Err(corrupt("directory checksum"));
        }
        let blocks = layout.blocks as usize;
        let (crc_bytes, rest) = meta.split_at(blocks * 4);
        let (fence_bytes, bloom_bytes) = rest.split_at(blocks * LABEL_LEN);
        let crcs = crc_bytes
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let fences: Vec<Label> = fence_bytes
            .chunks_exact(LABEL_LEN)
            .map(|c| c.try_into().unwrap_or_default())
            .collect();
        if fences.windows(2).any(|w| w[0] >= w[1]) {
            return Err(corrupt("fences out of order"));
        }
        let bloom = bloom_bytes
            .chunks_exact(8)
            .map(|c| u64::from_be_bytes(c.try_into().unwrap_or_default()))
            .collect();
        Ok(SegmentFile {
            name,
            file,
            layout,
            crcs,
            fences,
            bloom,
        })
    }

    /// The file's name (what errors about it name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of entries.
    pub fn len(&self) -> u64 {
        self.layout.entries
    }

    fn corrupt(&self, what: impl std::fmt::Display) -> Error {
        Error::Corrupt {
            what: format!("segment file {}: {what}", self.name),
        }
    }

    fn may_contain(&self, label: &Label) -> bool {
        bloom_bits(label, self.layout.bloom_words).all(|(w, bit)| self.bloom[w] & bit != 0)
    }

    /// Reads blocks `first..first + count` of labels and checks their CRCs.
    fn read_label_blocks(&self, first: u64, count: u64, out: &mut Vec<u8>) -> Result<()> {
        let start = first * BLOCK_ENTRIES;
        let end = ((first + count) * BLOCK_ENTRIES).min(self.layout.entries);
        out.resize(((end - start) as usize) * LABEL_LEN, 0);
        read_exact_at(&self.file, out, HEADER_LEN + start * LABEL_LEN as u64)
            .map_err(|e| self.read_error(e))?;
        for (i, chunk) in out.chunks(BLOCK_ENTRIES as usize * LABEL_LEN).enumerate() {
            let block = first + i as u64;
            if block_crc(block, chunk) != self.crcs[block as usize] {
                return Err(self.corrupt(format_args!("label block {block} checksum")));
            }
        }
        Ok(())
    }

    /// Reads value records `first..first + count` and checks their CRCs.
    fn read_values(&self, first: u64, count: u64, out: &mut Vec<u8>) -> Result<()> {
        out.resize((count * VALUE_RECORD_LEN) as usize, 0);
        read_exact_at(
            &self.file,
            out,
            self.layout.values_at() + first * VALUE_RECORD_LEN,
        )
        .map_err(|e| self.read_error(e))?;
        for (i, record) in out.chunks_exact(VALUE_RECORD_LEN as usize).enumerate() {
            let (value, crc) = record.split_at(VALUE_LEN);
            if value_crc(first + i as u64, value).to_be_bytes() != crc {
                return Err(self.corrupt(format_args!("value {} checksum", first + i as u64)));
            }
        }
        Ok(())
    }

    fn read_error(&self, e: std::io::Error) -> Error {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            self.corrupt("shorter than when it was opened")
        } else {
            Error::Io(e)
        }
    }

    /// The value stored under `label`.
    pub fn get(&self, label: &Label) -> Result<Option<Value>> {
        if !self.may_contain(label) {
            return Ok(None);
        }
        let block = match self.fences.partition_point(|f| f <= label) {
            0 => return Ok(None),
            n => n as u64 - 1,
        };
        let count = self.layout.block_len(block) as usize;
        let mut buf = [0u8; BLOCK_ENTRIES as usize * LABEL_LEN];
        let labels = &mut buf[..count * LABEL_LEN];
        read_exact_at(
            &self.file,
            labels,
            HEADER_LEN + block * BLOCK_ENTRIES * LABEL_LEN as u64,
        )
        .map_err(|e| self.read_error(e))?;
        if block_crc(block, labels) != self.crcs[block as usize] {
            return Err(self.corrupt(format_args!("label block {block} checksum")));
        }
        let (mut lo, mut hi) = (0, count);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match labels[mid * LABEL_LEN..][..LABEL_LEN].cmp(label.as_slice()) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => {
                    let position = block * BLOCK_ENTRIES + mid as u64;
                    let mut record = [0u8; VALUE_RECORD_LEN as usize];
                    read_exact_at(
                        &self.file,
                        &mut record,
                        self.layout.values_at() + position * VALUE_RECORD_LEN,
                    )
                    .map_err(|e| self.read_error(e))?;
                    let (value, crc) = record.split_at(VALUE_LEN);
                    if value_crc(position, value).to_be_bytes() != crc {
                        return Err(self.corrupt(format_args!("value {position} checksum")));
                    }
                    let mut out = [0u8; VALUE_LEN];
                    out.copy_from_slice(value);
                    return Ok(Some(out));
                }
            }
        }
        Ok(None)
    }

    /// Reads every entry in order, checking every CRC and the order of the labels.
    pub fn scan(&self) -> Scan<'_> {
        Scan {
            segment: self,
            next_block: 0,
            labels: Vec::new(),
            values: Vec::new(),
            at: 0,
            last: None,
        }
    }

    /// Checks the whole file: every block and value CRC, strict label order, and that
    /// the fences and the Bloom filter agree with the labels.
    pub fn verify(&self) -> Result<()> {
        for (i, entry) in self.scan().enumerate() {
            let (label, _) = entry?;
            let i = i as u64;
            if i.is_multiple_of(BLOCK_ENTRIES) && self.fences[(i / BLOCK_ENTRIES) as usize] != label
            {
                return Err(self.corrupt(format_args!("fence {}", i / BLOCK_ENTRIES)));
            }
            if !self.may_contain(&label) {
                return Err(self.corrupt("Bloom filter misses a label"));
            }
        }
        Ok(())
    }

    /// The whole segment in memory: for the tests and the fuzz targets, which compare
    /// it with what lookups find (the store itself never loads a segment whole).
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn load(&self) -> Result<crate::index::Segment> {
        let mut labels = Vec::with_capacity(self.layout.entries as usize);
        let mut values = Vec::with_capacity(self.layout.entries as usize);
        for entry in self.scan() {
            let (label, value) = entry?;
            labels.push(label);
            values.push(value);
        }
        Ok(crate::index::Segment::new(
            crate::index::Table::from_sorted_parts(labels, values),
        ))
    }
}

/// A sequential read of a segment file: windows of 1,024 entries, every CRC checked,
/// labels checked to be strictly ascending.
pub struct Scan<'a> {
    segment: &'a SegmentFile,
    next_block: u64,
    labels: Vec<u8>,
    values: Vec<u8>,
    at: usize,
    last: Option<Label>,
}

impl Scan<'_> {
    fn refill(&mut self) -> Result<bool> {
        let layout = &self.segment.layout;
        if self.next_block >= layout.blocks {
            return Ok(false);
        }
        let blocks = (layout.blocks - self.next_block).min(SCAN_WINDOW / BLOCK_ENTRIES);
        self.segment
            .read_label_blocks(self.next_block, blocks, &mut self.labels)?;
        let first = self.next_block * BLOCK_ENTRIES;
        let count = (self.labels.len() / LABEL_LEN) as u64;
        self.segment.read_values(first, count, &mut self.values)?;
        self.next_block += blocks;
        self.at = 0;
        Ok(true)
    }
}

impl Iterator for Scan<'_> {
    type Item = Result<(Label, Value)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.at * LABEL_LEN >= self.labels.len() {
            match self.refill() {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => {
                    self.next_block = u64::MAX;
                    return Some(Err(e));
                }
            }
        }
        let mut label = [0u8; LABEL_LEN];
        label.copy_from_slice(&self.labels[self.at * LABEL_LEN..][..LABEL_LEN]);
        let mut value = [0u8; VALUE_LEN];
        value.copy_from_slice(&self.values[self.at * VALUE_RECORD_LEN as usize..][..VALUE_LEN]);
        self.at += 1;
        if self.last.is_some_and(|last| last >= label) {
            self.next_block = u64::MAX;
            self.labels.clear();
            return Some(Err(self.segment.corrupt("labels out of order")));
        }
        self.last = Some(label);
        Some(Ok((label, value)))
    }
}

/// Writes a segment file of a known number of entries, pushed in ascending label order.
/// The file is complete and fsynced when [`SegmentWriter::finish`] returns; until then
/// it is not referenced by any catalog, so a crash leaves only an orphan to remove.
pub(crate) struct SegmentWriter<'d> {
    disk: &'d Disk,
    file: File,
    /// Where it is written, for errors.
    path: std::path::PathBuf,
    name: String,
    layout: Layout,
    written: u64,
    last: Option<Label>,
    block: crc32fast::Hasher,
    labels: Vec<u8>,
    labels_at: u64,
    values: Vec<u8>,
    values_at: u64,
    crcs: Vec<u32>,
    fences: Vec<Label>,
    bloom: Vec<u64>,
}

impl<'d> SegmentWriter<'d> {
    pub(crate) fn create(disk: &'d Disk, path: &Path, entries: u64) -> Result<Self> {
        let layout = Layout::new(entries).ok_or(Error::InvalidArgument(
            "a segment may hold at most 2^36 entries",
        ))?;
        let file = disk.create_new(path).at("create", path)?;
        disk.write_at(&file, &layout.header(), 0)
            .at("write", path)?;
        Ok(SegmentWriter {
            disk,
            file,
            path: path.to_owned(),
            name: file_name(path),
            layout,
            written: 0,
            last: None,
            block: crc32fast::Hasher::new(),
            labels: Vec::with_capacity(WRITE_BUFFER),
            labels_at: HEADER_LEN,
            values: Vec::with_capacity(WRITE_BUFFER),
            values_at: layout.values_at(),
            crcs: Vec::with_capacity(layout.blocks as usize),
            fences: Vec::with_capacity(layout.blocks as usize),
            bloom: vec![0; layout.bloom_words as usize],
        })
    }

    /// Appends the next entry; a label equal to the previous one is a collision.
    pub(crate) fn push(&mut self, label: &Label, value: &Value) -> Result<()> {
        if self.written == self.layout.entries {
            return Err(Error::InvalidArgument(
                "more entries than the segment declared",
            ));
        }
        match self.last {
            Some(last) if last == *label => return Err(Error::LabelCollision),
            Some(last) if last > *label => {
                return Err(Error::Corrupt {
                    what: format!("segment file {}: input out of order", self.name),
                });
            }
            _ => {}
        }
        self.last = Some(*label);
        let position = self.written;
        if position.is_multiple_of(BLOCK_ENTRIES) {
            self.fences.push(*label);
            self.block = crc32fast::Hasher::new();
            self.block.update(&(position / BLOCK_ENTRIES).to_be_bytes());
        }
        self.block.update(label);
        for (w, bit) in bloom_bits(label, self.layout.bloom_words) {
            self.bloom[w] |= bit;
        }
        self.labels.extend_from_slice(label);
        self.values.extend_from_slice(value);
        self.values
            .extend_from_slice(&value_crc(position, value).to_be_bytes());
        self.written += 1;
        if self.written.is_multiple_of(BLOCK_ENTRIES) || self.written == self.layout.entries {
            let done = std::mem::replace(&mut self.block, crc32fast::Hasher::new());
            self.crcs.push(done.finalize());
        }
        if self.labels.len() >= WRITE_BUFFER {
            self.flush_labels()?;
        }
        if self.values.len() >= WRITE_BUFFER {
            self.flush_values()?;
        }
        Ok(())
    }

    fn flush_labels(&mut self) -> Result<()> {
        self.disk
            .write_at(&self.file, &self.labels, self.labels_at)
            .at("write", &self.path)?;
        self.labels_at += self.labels.len() as u64;
        self.labels.clear();
        Ok(())
    }

    fn flush_values(&mut self) -> Result<()> {
        self.disk
            .write_at(&self.file, &self.values, self.values_at)
            .at("write", &self.path)?;
        self.values_at += self.values.len() as u64;
        self.values.clear();
        Ok(())
    }

    /// Writes the directory, fsyncs the file and returns it open for lookups.
    pub(crate) fn finish(mut self) -> Result<SegmentFile> {
        if self.written != self.layout.entries {
            return Err(Error::InvalidArgument(
                "fewer entries than the segment declared",
            ));
        }
        self.flush_labels()?;
        self.flush_values()?;
        let mut meta = Vec::with_capacity(self.layout.meta_len() as usize + 4);
        for crc in &self.crcs {
            meta.extend_from_slice(&crc.to_be_bytes());
        }
        for fence in &self.fences {
            meta.extend_from_slice(fence);
        }
        for word in &self.bloom {
            meta.extend_from_slice(&word.to_be_bytes());
        }
        let crc = crc32fast::hash(&meta);
        meta.extend_from_slice(&crc.to_be_bytes());
        self.disk
            .write_at(&self.file, &meta, self.layout.meta_at())
            .at("write", &self.path)?;
        self.disk.sync(&self.file).at("sync", &self.path)?;
        Ok(SegmentFile {
            name: self.name,
            file: self.file,
            layout: self.layout,
            crcs: self.crcs,
            fences: self.fences,
            bloom: self.bloom,
        })
    }
}

#[cfg(test)]
#[path = "segment_file_tests.rs"]
mod tests;
