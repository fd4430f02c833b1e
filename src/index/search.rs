//! The cloud's side of a search: it expands each token node to the leaves of the
//! epochs that exist, probes `label_0, label_1, …` of each epoch until a miss, and
//! decrypts the blocks it found. Many epochs, and long lists, are split between cores;
//! the hits and the first error are those a one-thread walk would give.
//!
//! **Leaks** (to the cloud, per search): which entries match (the access pattern), the
//! result count per epoch, and whether the same token was seen before (the search
//! pattern). Each token node is a key for the lists under it: after a search the cloud
//! can decrypt those lists' entries of the covered epochs, and no others.

use rayon::prelude::*;

use super::entry::{ENTRIES_PER_BLOCK, EpochKey, Label, Posting, Value};
use super::manifest::EpochInfo;
use super::query::{EpochProof, Hit, ProviderTokens};
use crate::crypto::ggm::{self, NodeKey};
use crate::error::{Error, Result};
use crate::keys::ProviderId;
use crate::parallel::{self, Work};
use crate::store::View;

/// One epoch of a list as the cloud found it: the postings it decrypted (to select
/// records) and the proof the requester checks instead.
pub(crate) struct FoundInEpoch {
    hits: Vec<Hit>,
    proof: EpochProof,
}

/// What a search found at one provider, per keyword in token order.
pub(crate) struct Found {
    /// The postings, in epoch order (for the cloud to select records).
    pub(crate) hits: Vec<Vec<Hit>>,
    /// The proof of every epoch the keyword's token covers, ascending.
    pub(crate) lists: Vec<Vec<EpochProof>>,
}

/// Every keyword's postings at one provider and the proof of every epoch its token
/// covers.
pub(crate) fn postings(
    view: &View,
    tokens: &ProviderTokens,
    epochs: &[EpochInfo],
) -> Result<Found> {
    let pairs = view
        .logs()
        .get(&tokens.provider)
        .map_or(&[][..], |tip| tip.pairs.as_slice());
    if view.lookups_round_trip() {
        return postings_in_rounds(view, tokens, epochs, pairs);
    }
    let mut hits = Vec::with_capacity(tokens.tokens.len());
    let mut lists = Vec::with_capacity(tokens.tokens.len());
    for token in &tokens.tokens {
        let mut list: Vec<FoundInEpoch> = Vec::new();
        for node in token {
            try_expand(
                &node.key,
                node.depth,
                node.index,
                epochs.len() as u64,
                &mut list,
                &|epoch, leaf, out| {
                    let batch = pairs.get(epoch as usize).ok_or_else(|| Error::Corrupt {
                        what: format!("index: no entries kept for epoch {epoch}"),
                    })?;
                    let mut hits = Vec::new();
                    let key = EpochKey::new(leaf);
                    let blocks = probe(
                        view,
                        &tokens.provider,
                        epochs[epoch as usize].entries,
                        epoch,
                        &key,
                        &mut hits,
                    )?;
                    let labels: Vec<Label> = (0..=blocks).map(|i| key.label(i)).collect();
                    let proof = batch.prove(epoch, &labels)?;
                    out.push(FoundInEpoch { hits, proof });
                    Ok::<(), Error>(())
                },
            )?;
        }
        let (found, proofs): (Vec<Vec<Hit>>, Vec<EpochProof>) =
            list.into_iter().map(|f| (f.hits, f.proof)).unzip();
        hits.push(found.into_iter().flatten().collect());
        lists.push(proofs);
    }
    Ok(Found { hits, lists })
}

/// As [`expand`], but `visit(epoch, leaf, out)` may fail, and a subtree of many leaves
/// is split between cores. Every leaf's output is appended to `out` in epoch order, as
/// the one-thread walk would write it; the error returned is the first in epoch order
/// (a failed subtree visits no further leaf).
pub(crate) fn try_expand<T: Send, E: Send>(
    key: &NodeKey,
    depth: u8,
    index: u32,
    limit: u64,
    out: &mut Vec<T>,
    visit: &(impl Fn(u32, &NodeKey, &mut Vec<T>) -> Result<(), E> + Sync),
) -> Result<(), E> {
    let (first, width) = ggm::span(depth, index);
    if first >= limit {
        return Ok(());
    }
    if !parallel::worth_splitting(Work::search_leaves((limit - first).min(width))) {
        let mut failure = None;
        ggm::expand(key, depth, index, limit, &mut |epoch, leaf| {
            if failure.is_none()
                && let Err(e) = visit(epoch, leaf, out)
            {
                failure = Some(e);
            }
        });
        return failure.map_or(Ok(()), Err);
    }
    // At least two leaves below the limit, so this is not a leaf.
    let (_, half) = ggm::span(depth + 1, 0);
    if first + half >= limit {
        return try_expand(&key.child(false), depth + 1, index << 1, limit, out, visit);
    }
    let (left, right) = key.children();
    let (left, right) = parallel::run(|| {
        rayon::join(
            || try_expand(&left, depth + 1, index << 1, limit, out, visit),
            || {
                let mut right_out = Vec::new();
                try_expand(
                    &right,
                    depth + 1,
                    (index << 1) | 1,
                    limit,
                    &mut right_out,
                    visit,
                )
                .map(|()| right_out)
            },
        )
    });
    left?;
    out.extend(right?);
    Ok(())
}

/// Blocks of one list probed one by one before the rest of the list is looked up on
/// all cores: most lists end well before this, and waking the pool for a short list
/// was measured slower (a 250-block list in windows of 64: 322 µs against 200 µs).
const SERIAL_PROBES: u32 = 256;

/// The largest window of blocks looked up on all cores at once (its values are held
/// until the window is decrypted: 4,096 × 68 bytes).
const MAX_PROBE_WINDOW: u32 = 4096;

/// Probes `label_0, label_1, …` of one epoch (in the segments covering it) until a miss
/// (or the epoch's entry count, a bound no honest list exceeds) and appends the
/// decrypted postings, in block order. Returns the number of blocks found.
///
/// The first [`SERIAL_PROBES`] blocks are probed in order on this thread. A list that
/// goes on is then probed in windows (doubling up to [`MAX_PROBE_WINDOW`]) whose
/// lookups and decryptions run on all cores; a window may look past the list's end,
/// but only blocks before the first miss count, and the error reported is the first
/// in block order, as probing one by one would report it.
fn probe(
    view: &View,
    provider: &ProviderId,
    entries: u32,
    epoch: u32,
    key: &EpochKey,
    out: &mut Vec<Hit>,
) -> Result<u32> {
    let lookup = |i: u32| view.lookup_in_epoch(provider, epoch, &key.label(i));
    let mut postings: Vec<Posting> = Vec::new();
    let mut ended = false;
    let mut at = 0;
    // One by one up to `SERIAL_PROBES`, and to the end with one thread in the pool (the
    // windows would only add the hand-off to it). The pool is asked only for a list
    // that goes on: asking starts it.
    let mut serial_end = entries.min(SERIAL_PROBES);
    while !ended && at < serial_end {
        match lookup(at)? {
            Some(value) => key.open_block(at, &value, &mut postings)?,
            None => ended = true,
        }
        at += 1;
        if !ended && at == SERIAL_PROBES && at < entries && parallel::threads() < 2 {
            serial_end = entries;
        }
    }
    let mut window = SERIAL_PROBES;
    while !ended && at < entries {
        let end = at.saturating_add(window).min(entries);
        let looked_up: Vec<Result<Option<Value>>> =
            parallel::run(|| (at..end).into_par_iter().map(lookup).collect());
        let mut found = Vec::with_capacity(looked_up.len());
        for value in looked_up {
            match value? {
                Some(value) => found.push(value),
                None => {
                    ended = true;
                    break;
                }
            }
        }
        // Decrypted in runs of blocks, each run in order on one core; the runs are
        // then taken in order, so the first undecodable block is the one reported.
        let runs: Vec<Result<Vec<Posting>>> = parallel::run(|| {
            found
                .par_chunks(DECRYPT_RUN)
                .enumerate()
                .map(|(run, values)| {
                    let mut postings = Vec::with_capacity(values.len() * ENTRIES_PER_BLOCK);
                    for (k, value) in values.iter().enumerate() {
                        // `at + run·DECRYPT_RUN + k < end ≤ entries`: a u32.
                        let i = at + (run * DECRYPT_RUN + k) as u32;
                        key.open_block(i, value, &mut postings)?;
                    }
                    Ok(postings)
                })
                .collect()
        });
        for run in runs {
            postings.extend(run?);
        }
        // Past the miss, if there was one: `at - 1` is then the first missing block.
        at = if ended {
            at + found.len() as u32 + 1
        } else {
            end
        };
        window = (window * 2).min(MAX_PROBE_WINDOW);
    }
    // Blocks `0..at` were looked up; with a miss, the last of them is it.
    let blocks = if ended { at - 1 } else { at };
    out.extend(
        postings
            .into_iter()
            .map(|(record, op)| Hit { epoch, record, op }),
    );
    Ok(blocks)
}

/// Blocks decrypted in order by one task of a parallel window.
const DECRYPT_RUN: usize = 64;

/// Labels of each epoch asked for in the first round of a store whose lookups are
/// round trips: a 10-result list is three blocks and the miss after them.
const FIRST_ROUND: u32 = 1;

/// One epoch of one keyword being probed round by round.
struct Probing {
    token: usize,
    epoch: u32,
    key: EpochKey,
    /// Blocks looked up so far (all found), and the next round's window.
    at: u32,
    window: u32,
    ended: bool,
    postings: Vec<Posting>,
}

/// [`postings`] for a store whose every lookup is a round trip (the PostgreSQL store):
/// every epoch of every keyword is probed at once, each round asking for the next
/// window of labels of all the lists still going in one
/// [`View::lookup_many`] (one `label = ANY($1)` query); windows double from
/// [`FIRST_ROUND`] to [`MAX_PROBE_WINDOW`]. A 10-result search is then one round trip
/// however many epochs its tokens cover. Hits and proofs are those of [`probe`].
fn postings_in_rounds(
    view: &View,
    tokens: &ProviderTokens,
    epochs: &[EpochInfo],
    pairs: &[std::sync::Arc<super::log::EpochPairs>],
) -> Result<Found> {
    let mut lists: Vec<Probing> = Vec::new();
    for (token, nodes) in tokens.tokens.iter().enumerate() {
        for node in nodes {
            ggm::expand(
                &node.key,
                node.depth,
                node.index,
                epochs.len() as u64,
                &mut |epoch, leaf| {
                    lists.push(Probing {
                        token,
                        epoch,
                        key: EpochKey::new(leaf),
                        at: 0,
                        window: FIRST_ROUND,
                        ended: false,
                        postings: Vec::new(),
                    })
                },
            );
        }
    }
    let end_of = |list: &Probing| {
        let entries = epochs[list.epoch as usize].entries;
        list.at.saturating_add(list.window).min(entries)
    };
    loop {
        let mut asked: Vec<(u32, Label)> = Vec::new();
        for list in lists.iter().filter(|l| !l.ended) {
            asked.extend((list.at..end_of(list)).map(|i| (list.epoch, list.key.label(i))));
        }
        if asked.is_empty() {
            break;
        }
        let values = view.lookup_many(&tokens.provider, &asked)?;
        let mut next = values.iter();
        for list in lists.iter_mut().filter(|l| !l.ended) {
            let end = end_of(list);
            let mut missed = false;
            for i in list.at..end {
                // One value per label asked, in order; blocks after a miss are skipped.
                match next.next().and_then(Option::as_ref) {
                    Some(value) if !missed => {
                        list.key.open_block(i, value, &mut list.postings)?;
                        list.at = i + 1;
                    }
                    _ => missed = true,
                }
            }
            let entries = epochs[list.epoch as usize].entries;
            list.ended = missed || list.at >= entries;
            list.window = (list.window * 2).min(MAX_PROBE_WINDOW);
        }
    }
    let mut hits = vec![Vec::new(); tokens.tokens.len()];
    let mut proofs: Vec<Vec<EpochProof>> = vec![Vec::new(); tokens.tokens.len()];
    for list in lists {
        let batch = pairs
            .get(list.epoch as usize)
            .ok_or_else(|| Error::Corrupt {
                what: format!("index: no entries kept for epoch {}", list.epoch),
            })?;
        let labels: Vec<Label> = (0..=list.at).map(|i| list.key.label(i)).collect();
        proofs[list.token].push(batch.prove(list.epoch, &labels)?);
        let epoch = list.epoch;
        hits[list.token].extend(list.postings.into_iter().map(|(record, op)| Hit {
            epoch,
            record,
            op,
        }));
    }
    Ok(Found {
        hits,
        lists: proofs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::Cloud;
    use crate::error::Error;
    use crate::index::IndexBatch;
    use crate::keys::RecordId;

    fn root() -> NodeKey {
        NodeKey([0x42; 32])
    }

    /// Runs `f` in a pool of each size: one thread (nothing split), two (this
    /// machine's cores) and four (more threads than cores), whatever the machine.
    fn in_pools(f: impl Fn() + Sync) {
        for threads in [1, 2, 4] {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(&f);
        }
    }

    #[test]
    fn the_parallel_expansion_visits_what_the_serial_one_does() {
        let root = root();
        // Limits below, at and above the split threshold, odd ones included.
        let t = 16; // where `Work::search_leaves` starts to split
        let ends = [
            0u64,
            1,
            t - 1,
            t,
            t + 1,
            2 * t + 1,
            255,
            256,
            257,
            511,
            512,
            513,
            1000,
            1025,
            4097,
        ];
        in_pools(|| {
            for end in ends {
                for (depth, index) in ggm::cover(0, end).into_iter().chain([(0, 0), (20, 0)]) {
                    let key = ggm::node(&root, depth, index);
                    let mut want = Vec::new();
                    ggm::expand(&key, depth, index, end, &mut |e, leaf| {
                        want.push((e, leaf.0))
                    });
                    let mut got = vec![(u32::MAX, [0; 32])];
                    let done: Result<(), ()> =
                        try_expand(&key, depth, index, end, &mut got, &|e, leaf, out| {
                            out.push((e, leaf.0));
                            Ok(())
                        });
                    done.unwrap();
                    // Appended after what `out` held.
                    assert_eq!(got.remove(0).0, u32::MAX);
                    assert_eq!(got, want, "{depth}/{index} below {end}");
                }
            }
        });
    }

    #[test]
    fn the_parallel_expansion_reports_the_first_failure_in_epoch_order() {
        let root = root();
        // Failing epochs on both sides of several splits, in the last leaf, and
        // everywhere: the earliest one is reported, whichever thread meets it first.
        let cases: [(&[u32], u32); 5] = [
            (&[700, 3000, 100, 2049], 100),
            (&[4095], 4095),
            (&[64, 63, 4000], 63),
            (&[2048, 2047], 2047),
            (&(0..4096).rev().collect::<Vec<u32>>(), 0),
        ];
        in_pools(|| {
            for (failing, first) in cases {
                for _ in 0..20 {
                    let mut out = Vec::new();
                    let got = try_expand(&root, 0, 0, 4096, &mut out, &|e, _, out| {
                        if failing.contains(&e) {
                            return Err(e);
                        }
                        out.push(e);
                        Ok(())
                    });
                    assert_eq!(got, Err(first));
                }
            }
            let mut out = Vec::new();
            let got: Result<(), u32> = try_expand(&root, 0, 0, 4096, &mut out, &|e, _, out| {
                out.push(e);
                Ok(())
            });
            assert_eq!(got, Ok(()));
            assert_eq!(out, (0..4096).collect::<Vec<_>>());
        });
    }

    use crate::index::{Op, Table};
    use crate::keys::ProviderId;

    /// A cloud holding one epoch, and the postings a probe of its list must find.
    struct World {
        cloud: Cloud,
        provider: ProviderId,
        entries: u32,
        expected: Vec<Posting>,
    }

    /// The entries of one list under `leaf`: `blocks` blocks of 4 postings, then the
    /// blocks in `after` (labels past a gap, which no prober may count), and `noise`
    /// entries of another list. `bad` blocks decrypt to an unknown operation.
    fn world(leaf: &ggm::NodeKey, blocks: u32, bad: &[u32], after: &[u32], noise: u32) -> World {
        let key = EpochKey::new(leaf);
        let other = EpochKey::new(&ggm::NodeKey([0x77; 32]));
        let mut pairs = Vec::new();
        let mut expected = Vec::new();
        for i in (0..blocks).chain(after.iter().copied()) {
            let postings: Vec<Posting> = (0..ENTRIES_PER_BLOCK as u32)
                .map(|k| {
                    let mut id = [0u8; 16];
                    id[..4].copy_from_slice(&i.to_be_bytes());
                    id[4..8].copy_from_slice(&k.to_be_bytes());
                    let op = if (i + k) % 5 == 0 {
                        Op::Delete
                    } else {
                        Op::Add
                    };
                    (RecordId::from_bytes(id), op)
                })
                .collect();
            let mut value = key.seal_block(i, &postings);
            if bad.contains(&i) {
                // The first entry's operation byte becomes 7 (add is 1, delete 2).
                value[0] ^= postings[0].1.code() ^ 7;
            }
            if i < blocks {
                expected.extend(postings);
            }
            pairs.push((key.label(i), value));
        }
        for i in 0..noise {
            pairs.push((other.label(i), other.seal_block(i, &[])));
        }
        let entries = pairs.len() as u32;
        let provider = ProviderId::new("probe-lab").unwrap();
        let cloud = Cloud::new();
        let identity = crate::keys::test_keys::provider_a();
        cloud
            .register_provider(provider.clone(), identity.public())
            .unwrap();
        cloud
            .ingest(IndexBatch::signed_for_test(
                provider.clone(),
                0,
                0,
                Table::from_unsorted(pairs).unwrap(),
                &crate::index::log::CHAIN_START,
                &identity.signing,
            ))
            .unwrap();
        World {
            cloud,
            provider,
            entries,
            expected,
        }
    }

    fn run_probe(world: &World, leaf: &ggm::NodeKey) -> Result<Vec<Posting>> {
        let view = world.cloud.store().view();
        let mut hits = Vec::new();
        let key = EpochKey::new(leaf);
        probe(&view, &world.provider, world.entries, 0, &key, &mut hits)?;
        assert!(hits.iter().all(|hit| hit.epoch == 0));
        Ok(hits.into_iter().map(|hit| (hit.record, hit.op)).collect())
    }

    #[test]
    fn lists_across_the_parallel_windows_are_found_whole_and_in_order() {
        let leaf = ggm::NodeKey([0x42; 32]);
        let serial = SERIAL_PROBES;
        // Around the end of the serial part and of the first windows (256, 512, …).
        for blocks in [
            0,
            1,
            serial - 1,
            serial,
            serial + 1,
            3 * serial - 1,
            3 * serial,
            3 * serial + 1,
            7 * serial + 5,
            40 * serial + 3,
        ] {
            // Ended by a miss (other entries in the epoch), and by the entry count.
            for noise in [300, 0] {
                let world = world(&leaf, blocks, &[], &[], noise);
                let found = run_probe(&world, &leaf).unwrap();
                assert!(found == world.expected, "{blocks} blocks, {noise} others");
            }
        }
    }

    #[test]
    fn only_blocks_before_the_first_miss_count() {
        let leaf = ggm::NodeKey([0x43; 32]);
        // Undecodable blocks just past the gap a window looks across: never reported.
        let blocks = SERIAL_PROBES + 100;
        let after: Vec<u32> = (blocks + 1..blocks + 50).collect();
        let world = world(&leaf, blocks, &after, &after, 10);
        assert!(run_probe(&world, &leaf).unwrap() == world.expected);
    }

    #[test]
    fn an_undecodable_block_anywhere_in_the_list_is_an_error() {
        let leaf = ggm::NodeKey([0x44; 32]);
        let blocks = 6 * SERIAL_PROBES;
        for bad in [
            0,
            SERIAL_PROBES - 1,
            SERIAL_PROBES,
            2 * SERIAL_PROBES + 7,
            blocks - 1,
        ] {
            let world = world(&leaf, blocks, &[bad, bad + 1], &[], 10);
            assert!(
                matches!(run_probe(&world, &leaf), Err(Error::Corrupt { .. })),
                "bad block {bad}"
            );
        }
    }
}
