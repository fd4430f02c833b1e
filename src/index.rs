//! The encrypted index: per-epoch entries, the batches providers upload, and the sorted
//! segments the cloud keeps and merges without any key.
//!
//! For one patient `u`, keyword `w` and epoch `e`, the GGM leaf `leaf(w, e)` keys an
//! AES-256 instance `A` used as a PRF on domain-separated single blocks:
//!
//! * `label_i = A(01 ‖ 0³ ‖ 0⁴ ‖ 0⁴ ‖ [i]₃₂)`: where block `i` of the posting list lives;
//! * `value_i = block_i ⊕ (A(02 ‖ 0³ ‖ [j]₃₂ ‖ 0⁴ ‖ [i]₃₂) for j = 0..5)[..68]`.
//!
//! `block_i` packs [`ENTRIES_PER_BLOCK`] entries `op ‖ record_id` (`op` 1 = add,
//! 2 = delete, 0 = empty slot), so every value in every segment is [`VALUE_LEN`] bytes.
//! A single-block PRF call on AES is a PRF up to the birthday bound (2⁶⁴ blocks per leaf),
//! far beyond any posting list.
//!
//! Labels are pseudorandom 128-bit strings under independent keys, so segments from any
//! providers merge by label alone. A repeated label is reported as
//! [`Error::LabelCollision`], never overwritten.
//!
//! **Leaks**: a batch reveals its provider, epoch, key generation and entry count; every
//! value has the same size. Nothing in a batch links entries to each other, to a patient
//! or to a keyword.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use aes::Aes256Enc;
use cipher::{Array, BlockCipherEncrypt, KeyInit, consts::U16};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::ggm::NodeKey;
use crate::keys::{ProviderId, RecordId};
use crate::wire::{Reader, put_preamble};

/// Bytes of a label.
pub const LABEL_LEN: usize = 16;
/// Entries packed in one value block.
pub const ENTRIES_PER_BLOCK: usize = 4;
/// Bytes of one packed entry: op ‖ record id.
pub const ENTRY_LEN: usize = 1 + 16;
/// Bytes of every value.
pub const VALUE_LEN: usize = ENTRIES_PER_BLOCK * ENTRY_LEN;
/// Bytes of one label-value pair on the wire.
pub const PAIR_LEN: usize = LABEL_LEN + VALUE_LEN;

/// Magic bytes of an index batch.
pub const BATCH_MAGIC: &[u8; 4] = b"MVIB";
/// Magic bytes of a segment.
pub const SEGMENT_MAGIC: &[u8; 4] = b"MVSG";
/// Version of the batch and segment formats.
pub const INDEX_VERSION: u8 = 1;
/// Algorithm id: GGM over AES-256, AES-256 block PRF labels, 4-entry packed values.
pub const ALG_GGM_AES256_PACKED4: u8 = 1;

/// A label.
pub type Label = [u8; LABEL_LEN];
/// An encrypted packed block.
pub type Value = [u8; VALUE_LEN];

/// What an index entry says about a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// The record has the keyword.
    Add,
    /// The record no longer has the keyword (from this epoch on).
    Delete,
}

impl Op {
    pub(crate) fn code(self) -> u8 {
        match self {
            Op::Add => 1,
            Op::Delete => 2,
        }
    }
}

/// One decrypted entry: a record id and what happened to it.
pub type Posting = (RecordId, Op);

/// The per-(patient, keyword, epoch) PRF: the leaf key as an AES-256 instance.
pub(crate) struct EpochKey(Aes256Enc);

impl EpochKey {
    pub(crate) fn new(leaf: &NodeKey) -> Self {
        EpochKey(Aes256Enc::new(&leaf.0.into()))
    }

    pub(crate) fn label(&self, i: u32) -> Label {
        let mut block = [0u8; 16];
        block[0] = 1;
        block[12..].copy_from_slice(&i.to_be_bytes());
        let mut block = Array::from(block);
        self.0.encrypt_block(&mut block);
        block.into()
    }

    fn keystream(&self, i: u32) -> [u8; 80] {
        let mut out = [0u8; 80];
        for (j, counter) in out.chunks_exact_mut(16).enumerate() {
            counter[0] = 2;
            counter[4..8].copy_from_slice(&(j as u32).to_be_bytes());
            counter[12..].copy_from_slice(&i.to_be_bytes());
        }
        // Encrypted in place: no copy of the keystream is left behind.
        let (blocks, _) = Array::<u8, U16>::slice_as_chunks_mut(&mut out);
        self.0.encrypt_blocks(blocks);
        out
    }

    /// Encrypts block `i` of a posting list (at most [`ENTRIES_PER_BLOCK`] entries).
    pub(crate) fn seal_block(&self, i: u32, postings: &[Posting]) -> Value {
        debug_assert!(postings.len() <= ENTRIES_PER_BLOCK);
        let mut value = [0u8; VALUE_LEN];
        for (slot, (record, op)) in value.chunks_exact_mut(ENTRY_LEN).zip(postings) {
            slot[0] = op.code();
            slot[1..].copy_from_slice(record.as_bytes());
        }
        let stream = self.keystream(i);
        for (v, k) in value.iter_mut().zip(stream.iter()) {
            *v ^= k;
        }
        value
    }

    /// Decrypts block `i`, appending its entries to `out`.
    pub(crate) fn open_block(&self, i: u32, value: &Value, out: &mut Vec<Posting>) -> Result<()> {
        let mut plain = *value;
        for (v, k) in plain.iter_mut().zip(self.keystream(i).iter()) {
            *v ^= k;
        }
        for slot in plain.chunks_exact(ENTRY_LEN) {
            let op = match slot[0] {
                0 => continue,
                1 => Op::Add,
                2 => Op::Delete,
                _ => {
                    return Err(Error::Corrupt {
                        what: "index entry (undecodable block)".to_owned(),
                    });
                }
            };
            let mut id = [0u8; 16];
            id.copy_from_slice(&slot[1..]);
            out.push((RecordId::from_bytes(id), op));
        }
        plain.zeroize();
        Ok(())
    }
}

/// A label-value table sorted by label with no repeats.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Table {
    labels: Vec<Label>,
    values: Vec<Value>,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Table({} entries)", self.labels.len())
    }
}

/// Tables with more entries than this are sorted on all cores.
const PARALLEL_SORT_MIN: usize = 1 << 14;

impl Table {
    /// Sorts `pairs` by label; a repeated label is a collision.
    pub(crate) fn from_unsorted(pairs: Vec<(Label, Value)>) -> Result<Self> {
        // Sort small (label, position) pairs, then gather the 68-byte values once.
        // Positions are kept as u32 (a sort key of 20 bytes, not 24).
        if u32::try_from(pairs.len()).is_err() {
            return Err(Error::InvalidArgument("a table holds at most 2^32 entries"));
        }
        let mut order: Vec<(Label, u32)> = pairs
            .iter()
            .enumerate()
            .map(|(i, p)| (p.0, i as u32))
            .collect();
        if order.len() > PARALLEL_SORT_MIN {
            order.par_sort_unstable();
        } else {
            order.sort_unstable();
        }
        if order.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(Error::LabelCollision);
        }
        let values = order.iter().map(|&(_, i)| pairs[i as usize].1).collect();
        let labels = order.into_iter().map(|(label, _)| label).collect();
        Ok(Table { labels, values })
    }

    /// A table from labels already strictly ascending (checked by the caller) and
    /// their values.
    pub(crate) fn from_sorted_parts(labels: Vec<Label>, values: Vec<Value>) -> Self {
        debug_assert!(labels.windows(2).all(|w| w[0] < w[1]));
        debug_assert_eq!(labels.len(), values.len());
        Table { labels, values }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True if the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The labels, in ascending order.
    pub fn labels(&self) -> &[Label] {
        &self.labels
    }

    pub(crate) fn value(&self, at: usize) -> &Value {
        &self.values[at]
    }

    fn write_pairs(&self, out: &mut Vec<u8>) {
        out.reserve(self.len() * PAIR_LEN);
        for (label, value) in self.labels.iter().zip(&self.values) {
            out.extend_from_slice(label);
            out.extend_from_slice(value);
        }
    }

    /// Reads `count` pairs that must be strictly ascending by label.
    fn read_pairs(r: &mut Reader<'_>, count: usize) -> Result<Self> {
        // The count must match the bytes present before anything is allocated for it.
        if count.checked_mul(PAIR_LEN) != Some(r.remaining_before_trailer()) {
            return Err(r.malformed("entry count does not match the length"));
        }
        let mut labels = Vec::with_capacity(count);
        let mut values = Vec::with_capacity(count);
        for _ in 0..count {
            let label: Label = r.array("label")?;
            if let Some(prev) = labels.last() {
                match label.cmp(prev) {
                    Ordering::Greater => {}
                    Ordering::Equal => return Err(Error::LabelCollision),
                    Ordering::Less => return Err(r.malformed("labels out of order")),
                }
            }
            labels.push(label);
            values.push(r.array("value")?);
        }
        Ok(Table { labels, values })
    }
}

/// An index batch: one provider's entries for one epoch, sorted by label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexBatch {
    pub(crate) provider: ProviderId,
    pub(crate) epoch: u32,
    pub(crate) generation: u32,
    pub(crate) table: Table,
}

impl IndexBatch {
    /// The provider that built the batch.
    pub fn provider(&self) -> &ProviderId {
        &self.provider
    }
    /// The batch's epoch at its provider.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }
    /// The key generation its entries were made under.
    pub fn generation(&self) -> u32 {
        self.generation
    }
    /// Number of label-value entries.
    pub fn len(&self) -> usize {
        self.table.len()
    }
    /// True for a batch without entries (a provider may upload one to advance its epoch).
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
    /// The entries.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// The wire form (`FORMAT.md`, "Index batch").
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.table.len() * PAIR_LEN);
        put_preamble(&mut out, BATCH_MAGIC, INDEX_VERSION, ALG_GGM_AES256_PACKED4);
        self.provider.encode_into(&mut out);
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&self.generation.to_be_bytes());
        out.extend_from_slice(&(self.table.len() as u32).to_be_bytes());
        self.table.write_pairs(&mut out);
        out
    }

    /// Parses and checks a batch: sorted, no repeated label, nothing trailing.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "index batch");
        r.preamble(BATCH_MAGIC, INDEX_VERSION, &[ALG_GGM_AES256_PACKED4])?;
        let provider = ProviderId::decode(&mut r)?;
        let epoch = r.u32("epoch")?;
        if epoch == u32::MAX {
            return Err(r.malformed("epoch out of range"));
        }
        let generation = r.u32("key generation")?;
        let count = r.u32("entry count")? as usize;
        let table = Table::read_pairs(&mut r, count)?;
        r.finish()?;
        Ok(IndexBatch {
            provider,
            epoch,
            generation,
            table,
        })
    }
}

/// A segment: the cloud's immutable sorted table, from one batch or merged from many,
/// from any providers. Lookups use a directory over the labels' leading bits, since
/// labels are uniform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    table: Table,
    /// `directory[b]` = first position whose label's top `bits` bits are ≥ `b`.
    directory: Vec<u32>,
    bits: u32,
}

impl Segment {
    /// A segment holding `table`.
    pub fn new(table: Table) -> Self {
        // About one entry per bucket; at most 2^24 buckets.
        let bits = (usize::BITS - table.len().leading_zeros()).clamp(1, 24);
        let buckets = 1usize << bits;
        let mut directory = Vec::with_capacity(buckets + 1);
        let mut at = 0usize;
        for bucket in 0..buckets {
            while at < table.len() && (prefix(&table.labels[at], bits) as usize) < bucket {
                at += 1;
            }
            directory.push(at as u32);
        }
        directory.push(table.len() as u32);
        Segment {
            table,
            directory,
            bits,
        }
    }

    /// The entries.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True for an empty segment.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The value stored under `label`.
    pub fn get(&self, label: &Label) -> Option<&Value> {
        let bucket = prefix(label, self.bits) as usize;
        let (lo, hi) = (
            self.directory[bucket] as usize,
            self.directory[bucket + 1] as usize,
        );
        let at = self.table.labels[lo..hi].binary_search(label).ok()?;
        Some(self.table.value(lo + at))
    }

    /// Merges segments into one by label (a k-way merge, no key needed). Fails with
    /// [`Error::LabelCollision`] if two entries share a label; nothing is overwritten.
    ///
    /// Labels are uniform, so the label space splits into ranges by leading bytes; the
    /// ranges merge independently on all cores and concatenate in order.
    pub fn merge(segments: &[&Segment]) -> Result<Segment> {
        let total: usize = segments.iter().map(|s| s.len()).sum();
        let parts = if total > 1 << 16 { 64 } else { 1 };
        // Range r holds labels whose first two bytes, as a u16, fall in [r·2^16/parts, …).
        let bound = |r: usize| -> Label {
            let mut label = [0u8; LABEL_LEN];
            let start = (r * (1 << 16) / parts) as u16;
            label[..2].copy_from_slice(&start.to_be_bytes());
            label
        };
        let slices: Vec<Vec<(&[Label], &[Value])>> = (0..parts)
            .map(|r| {
                segments
                    .iter()
                    .map(|s| {
                        let lo = if r == 0 {
                            0
                        } else {
                            s.table.labels.partition_point(|l| *l < bound(r))
                        };
                        let hi = if r + 1 == parts {
                            s.len()
                        } else {
                            s.table.labels.partition_point(|l| *l < bound(r + 1))
                        };
                        (&s.table.labels[lo..hi], &s.table.values[lo..hi])
                    })
                    .collect()
            })
            .collect();
        // Every range merges straight into its place in the output, on all cores (the
        // zeroed output pages are faulted in by the threads that fill them).
        let mut labels = vec![[0u8; LABEL_LEN]; total];
        let mut values = vec![[0u8; VALUE_LEN]; total];
        let mut outputs = Vec::with_capacity(parts);
        let (mut labels_left, mut values_left) = (&mut labels[..], &mut values[..]);
        for runs in &slices {
            let n = runs.iter().map(|(l, _)| l.len()).sum();
            let (l, l_rest) = core::mem::take(&mut labels_left).split_at_mut(n);
            let (v, v_rest) = core::mem::take(&mut values_left).split_at_mut(n);
            outputs.push((l, v));
            (labels_left, values_left) = (l_rest, v_rest);
        }
        slices
            .par_iter()
            .zip(outputs.into_par_iter())
            .map(|(runs, (l, v))| merge_runs(runs, l, v))
            .collect::<Result<()>>()?;
        Ok(Segment::new(Table { labels, values }))
    }

    /// The wire form (`FORMAT.md`, "Segment"), ending in a SHA-256 checksum.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(48 + self.len() * PAIR_LEN);
        put_preamble(
            &mut out,
            SEGMENT_MAGIC,
            INDEX_VERSION,
            ALG_GGM_AES256_PACKED4,
        );
        out.extend_from_slice(&(self.len() as u64).to_be_bytes());
        self.table.write_pairs(&mut out);
        let sum = Sha256::digest(&out);
        out.extend_from_slice(&sum);
        out
    }

    /// Parses a segment and verifies its checksum.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "segment");
        r.preamble(SEGMENT_MAGIC, INDEX_VERSION, &[ALG_GGM_AES256_PACKED4])?;
        let body_len = bytes.len().checked_sub(32).ok_or(Error::Truncated {
            format: "segment",
            detail: "shorter than its checksum",
        })?;
        if !bool::from(
            Sha256::digest(&bytes[..body_len])
                .as_slice()
                .ct_eq(&bytes[body_len..]),
        ) {
            return Err(Error::Corrupt {
                what: "segment: checksum".to_owned(),
            });
        }
        let mut r = r.with_trailer(32);
        let count = usize::try_from(r.u64("entry count")?)
            .map_err(|_| r.malformed("entry count too large"))?;
        let table = Table::read_pairs(&mut r, count)?;
        r.take(32, "checksum")?;
        r.finish()?;
        Ok(Segment::new(table))
    }
}

/// k-way merge of sorted runs (a min-heap of run heads); a repeated label is a collision.
/// Merges sorted runs into `labels` and `values` (exactly as long as the runs together).
/// Labels compare as big-endian integers, which orders them as bytes do.
fn merge_runs(
    runs: &[(&[Label], &[Value])],
    labels: &mut [Label],
    values: &mut [Value],
) -> Result<()> {
    use std::cmp::Reverse;
    use std::collections::binary_heap::PeekMut;
    let mut heap: BinaryHeap<Reverse<(u128, usize, usize)>> = runs
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.0.is_empty())
        .map(|(i, r)| Reverse((u128::from_be_bytes(r.0[0]), i, 0)))
        .collect();
    let mut last = None;
    let mut written = 0;
    while let Some(mut top) = heap.peek_mut() {
        let Reverse((key, run, pos)) = *top;
        if last == Some(key) {
            return Err(Error::LabelCollision);
        }
        last = Some(key);
        labels[written] = runs[run].0[pos];
        values[written] = runs[run].1[pos];
        written += 1;
        // The run's next label replaces the top in one sift, not a pop and a push.
        match runs[run].0.get(pos + 1) {
            Some(next) => *top = Reverse((u128::from_be_bytes(*next), run, pos + 1)),
            None => {
                PeekMut::pop(top);
            }
        }
    }
    debug_assert_eq!(written, labels.len());
    Ok(())
}

fn prefix(label: &Label, bits: u32) -> u32 {
    u32::from_be_bytes([label[0], label[1], label[2], label[3]]) >> (32 - bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(labels: &[u8]) -> Table {
        Table::from_unsorted(labels.iter().map(|&b| ([b; 16], [b; VALUE_LEN])).collect()).unwrap()
    }

    #[test]
    fn blocks_round_trip_and_pad() {
        let key = EpochKey::new(&NodeKey([3; 32]));
        let postings = [
            (RecordId::from_bytes([1; 16]), Op::Add),
            (RecordId::from_bytes([2; 16]), Op::Delete),
        ];
        let value = key.seal_block(5, &postings);
        let mut out = Vec::new();
        key.open_block(5, &value, &mut out).unwrap();
        assert_eq!(out, postings);
        // Another index decrypts to garbage: an undecodable op, or different entries.
        let mut other = Vec::new();
        let wrong = key.open_block(6, &value, &mut other);
        assert!(wrong.is_err() || other != postings);
        assert_ne!(key.label(0), key.label(1));
    }

    #[test]
    fn directory_lookups_find_every_label_and_nothing_else() {
        let labels: Vec<u8> = (0..=255).step_by(3).collect();
        let seg = Segment::new(table(&labels));
        for b in 0..=255u8 {
            assert_eq!(seg.get(&[b; 16]).is_some(), labels.contains(&b), "{b}");
        }
        assert!(Segment::new(Table::default()).get(&[0; 16]).is_none());
    }

    #[test]
    fn merge_is_sorted_and_reports_collisions() {
        let a = Segment::new(table(&[1, 5, 9]));
        let b = Segment::new(table(&[2, 3, 10]));
        let merged = Segment::merge(&[&a, &b]).unwrap();
        assert_eq!(
            merged
                .table()
                .labels()
                .iter()
                .map(|l| l[0])
                .collect::<Vec<_>>(),
            [1, 2, 3, 5, 9, 10]
        );
        let c = Segment::new(table(&[4, 9]));
        assert!(matches!(
            Segment::merge(&[&a, &b, &c]),
            Err(Error::LabelCollision)
        ));
        assert!(matches!(
            Table::from_unsorted(vec![([1; 16], [0; VALUE_LEN]); 2]),
            Err(Error::LabelCollision)
        ));
    }

    /// Above 2^16 entries the merge splits the label space across cores; the result is
    /// the same sorted table, and a collision in any range is still reported.
    #[test]
    fn parallel_merge_is_sorted_complete_and_reports_collisions() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut random_label = || {
            let mut label = [0u8; 16];
            for chunk in label.chunks_mut(8) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                chunk.copy_from_slice(&seed.to_be_bytes());
            }
            label
        };
        // Each value starts with its label, so a value merged beside the wrong label shows.
        let value_of = |label: &Label| {
            let mut value = [1; VALUE_LEN];
            value[..16].copy_from_slice(label);
            value
        };
        let make = |n: usize, next: &mut dyn FnMut() -> Label| {
            Segment::new(
                Table::from_unsorted(
                    (0..n)
                        .map(|_| {
                            let label = next();
                            (label, value_of(&label))
                        })
                        .collect(),
                )
                .unwrap(),
            )
        };
        let a = make(50_000, &mut random_label);
        let b = make(40_000, &mut random_label);
        let c = make(30_000, &mut random_label);
        let merged = Segment::merge(&[&a, &b, &c]).unwrap();
        assert_eq!(merged.len(), 120_000);
        assert!(merged.table().labels().windows(2).all(|w| w[0] < w[1]));
        assert!(
            merged
                .table()
                .labels()
                .iter()
                .all(|l| merged.get(l) == Some(&value_of(l)))
        );
        for s in [&a, &b, &c] {
            assert!(
                s.table()
                    .labels()
                    .iter()
                    .step_by(997)
                    .all(|l| merged.get(l).is_some())
            );
        }
        // One label of `b`, deep inside the label space, repeated in another segment.
        let stolen = b.table().labels()[20_000];
        let d = Segment::new(Table::from_unsorted(vec![(stolen, [2; VALUE_LEN])]).unwrap());
        assert!(matches!(
            Segment::merge(&[&a, &b, &d]),
            Err(Error::LabelCollision)
        ));
    }

    #[test]
    fn segments_round_trip_and_detect_damage() {
        let seg = Segment::new(table(&[1, 2, 3]));
        let bytes = seg.to_bytes();
        assert_eq!(Segment::from_bytes(&bytes).unwrap(), seg);
        for pos in 6..bytes.len() {
            let mut bad = bytes.clone();
            bad[pos] ^= 0x10;
            assert!(
                matches!(Segment::from_bytes(&bad), Err(Error::Corrupt { .. })),
                "byte {pos}"
            );
        }
        for len in 0..bytes.len() {
            assert!(Segment::from_bytes(&bytes[..len]).is_err());
        }
    }
}
