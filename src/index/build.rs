//! Building an epoch's entries from a provider's queue: one keyed KDF per patient, one
//! GGM walk per (patient, keyword) list from the keyword's root to the epoch's leaf,
//! then the list's blocks under that leaf (`entry`). Lists are padded to whole blocks
//! and, optionally, to a power-of-two number of blocks.

use rayon::prelude::*;

use super::entry::{
    ENTRIES_PER_BLOCK, EpochKey, LABEL_LEN, Label, PAIR_LEN, Posting, VALUE_LEN, Value,
};
use super::keyword;
use super::queue::Queue;
use super::table::Table;
use crate::crypto::ggm;
use crate::error::{Error, Result};
use crate::keys::{KeywordRoots, MasterKey, PatientId, ProviderId};
use crate::parallel::{self, Work};

/// Index blocks of a list of `postings` entries: [`ENTRIES_PER_BLOCK`] per block, the
/// last one padded; with `pad`, padded blocks up to a power of two.
fn blocks_for(postings: usize, pad: bool) -> usize {
    let blocks = postings.div_ceil(ENTRIES_PER_BLOCK);
    if pad {
        blocks.next_power_of_two()
    } else {
        blocks
    }
}

/// Writes the index entries of one posting list in `epoch` into `out` (one per block,
/// [`blocks_for`] of them): its GGM leaf from the keyword's root, then its blocks.
fn fill_list(
    roots: &KeywordRoots,
    keyword: &str,
    postings: &[Posting],
    epoch: u32,
    out: &mut [(Label, Value)],
) {
    let epoch_key = EpochKey::new(&ggm::leaf(&roots.root(keyword), epoch));
    for (i, entry) in out.iter_mut().enumerate() {
        let start = (i * ENTRIES_PER_BLOCK).min(postings.len());
        let end = (start + ENTRIES_PER_BLOCK).min(postings.len());
        // i < 2^32: a list longer than 2^34 postings cannot be queued.
        let index = i as u32;
        *entry = (
            epoch_key.label(index),
            epoch_key.seal_block(index, &postings[start..end]),
        );
    }
}

/// The entries of every list in `queue` for `epoch` under key `generation`, sorted by
/// label. The KDFs and walks are independent, so many lists are built on all cores.
pub(crate) fn entries(
    master: &MasterKey,
    provider: &ProviderId,
    queue: &Queue,
    epoch: u32,
    generation: u32,
    pad: bool,
) -> Result<Table> {
    let parallel = parallel::worth_splitting(Work::build_lists(queue.list_count()));
    let roots_of = |patient: &PatientId| {
        master
            .patient_key(provider, patient, generation)
            .search_key()
            .keyword_roots()
    };
    let grouped = queue.grouped();
    // Every list's entries go straight to their place in one preallocated vector
    // (collecting a parallel iterator would grow and copy it).
    let entries = queue
        .lists(&grouped)
        .map(|list| blocks_for(list.postings.len(), pad))
        .sum();
    let mut pairs = vec![([0u8; LABEL_LEN], [0u8; VALUE_LEN]); entries];
    let mut slots: Vec<&mut [(Label, Value)]> = Vec::with_capacity(queue.list_count());
    let mut rest = &mut pairs[..];
    for list in queue.lists(&grouped) {
        let blocks = blocks_for(list.postings.len(), pad);
        let (slot, tail) = core::mem::take(&mut rest).split_at_mut(blocks);
        slots.push(slot);
        rest = tail;
    }
    // One list's entries under its patient's keyword roots.
    let fill = |roots: &[KeywordRoots], i: usize, slot: &mut [(Label, Value)]| {
        let list = queue.list(&grouped, i);
        fill_list(
            &roots[list.patient],
            list.keyword,
            list.postings,
            epoch,
            slot,
        );
    };
    if parallel {
        parallel::run(|| {
            let roots: Vec<KeywordRoots> = queue.patients().par_iter().map(roots_of).collect();
            slots
                .par_iter_mut()
                .enumerate()
                .for_each(|(i, slot)| fill(&roots, i, slot));
        });
    } else {
        let roots: Vec<KeywordRoots> = queue.patients().iter().map(roots_of).collect();
        for (i, slot) in slots.iter_mut().enumerate() {
            fill(&roots, i, slot);
        }
    }
    drop(slots);
    Table::from_unsorted(pairs)
}

/// Normalized keywords, duplicates dropped, first occurrence kept. Up to 16 keywords
/// (most records) are deduplicated by comparing each with those kept so far, which
/// costs no hashing and no copies; a note can carry hundreds of tokens, so more are
/// deduplicated through a hash set rather than quadratically.
pub(crate) fn normalize_all(keywords: &[impl AsRef<str>]) -> Result<Vec<String>> {
    const LINEAR_DEDUPE_MAX: usize = 16;
    let mut out: Vec<String> = Vec::with_capacity(keywords.len());
    if keywords.len() <= LINEAR_DEDUPE_MAX {
        for k in keywords {
            let k = keyword::checked(k.as_ref())?;
            if !out.contains(&k) {
                out.push(k);
            }
        }
        return Ok(out);
    }
    let mut seen = std::collections::HashSet::with_capacity(keywords.len());
    for k in keywords {
        let k = keyword::checked(k.as_ref())?;
        if seen.insert(k.clone()) {
            out.push(k);
        }
    }
    Ok(out)
}

/// `table` with random entries added up to `total`: labels and values that are
/// uniformly random, as every real entry looks to whoever lacks the leaf key, and that
/// no token reaches (a random label equals a real one with probability 2⁻¹²⁸ per pair;
/// that collision would be refused as one).
pub(crate) fn with_random_entries(table: Table, total: usize) -> Result<Table> {
    let extra = total.saturating_sub(table.len());
    let mut random = vec![0u8; extra * PAIR_LEN];
    for chunk in random.chunks_mut(1 << 20) {
        crate::crypto::rng::fill(chunk)?;
    }
    let mut pairs: Vec<(Label, Value)> = Vec::with_capacity(total);
    pairs.extend(
        table
            .labels()
            .iter()
            .zip(table.values())
            .map(|(l, v)| (*l, *v)),
    );
    for pair in random.chunks_exact(PAIR_LEN) {
        let (label, value) = pair.split_at(LABEL_LEN);
        pairs.push((
            label.try_into().map_err(|_| Error::Random)?,
            value.try_into().map_err(|_| Error::Random)?,
        ));
    }
    Table::from_unsorted(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_normalized_and_deduplicated_in_order_at_every_count() {
        assert_eq!(
            normalize_all(&["Asthma", " asthma ", "ASTHMA", "b"]).unwrap(),
            ["asthma", "b"]
        );
        assert!(normalize_all(&["ok", "  "]).is_err());
        assert!(normalize_all(&[] as &[&str]).unwrap().is_empty());
        // Below, at and above the count where the dedupe switches to hashing: the same
        // first occurrences, in the same order.
        for n in [1usize, 15, 16, 17, 40, 200] {
            let keywords: Vec<String> = (0..n)
                .map(|i| format!("{} W{}", if i % 2 == 0 { "Term" } else { "TERM" }, i % 7))
                .collect();
            let want: Vec<String> = (0..n.min(7)).map(|i| format!("term w{i}")).collect();
            assert_eq!(normalize_all(&keywords).unwrap(), want, "{n} keywords");
        }
    }
}
