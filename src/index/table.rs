//! The sorted label-value tables of the index: [`Table`] (a batch's entries) and
//! [`Segment`] (what the cloud keeps, from one batch or merged from many, from any
//! providers).
//!
//! Labels are pseudorandom 128-bit strings under independent keys, so segments from any
//! providers merge by label alone. A repeated label is reported as
//! [`Error::LabelCollision`], never overwritten.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rayon::prelude::*;

use super::entry::{LABEL_LEN, Label, PAIR_LEN, VALUE_LEN, Value};
use crate::error::{Error, Result};
use crate::parallel::{self, Work};
use crate::wire::Reader;

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
        if parallel::worth_splitting(Work::label_sort(order.len())) {
            parallel::run(|| order.par_sort_unstable());
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
    #[cfg(any(test, feature = "fuzzing"))]
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

    pub(crate) fn values(&self) -> &[Value] {
        &self.values
    }

    pub(crate) fn value(&self, at: usize) -> &Value {
        &self.values[at]
    }

    pub(crate) fn write_pairs(&self, out: &mut Vec<u8>) {
        out.reserve(self.len() * PAIR_LEN);
        for (label, value) in self.labels.iter().zip(&self.values) {
            out.extend_from_slice(label);
            out.extend_from_slice(value);
        }
    }

    /// Reads `count` pairs that must be strictly ascending by label.
    pub(crate) fn read_pairs(r: &mut Reader<'_>, count: usize) -> Result<Self> {
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
        let parts = if parallel::worth_splitting(Work::merge(total)) {
            64
        } else {
            1
        };
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
        parallel::run(|| {
            slices
                .par_iter()
                .zip(outputs.into_par_iter())
                .map(|(runs, (l, v))| merge_runs(runs, l, v))
                .collect::<Result<()>>()
        })?;
        Ok(Segment::new(Table { labels, values }))
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
    use crate::crypto::ggm::NodeKey;
    use crate::index::{EpochKey, Op};
    use crate::keys::RecordId;

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
}
