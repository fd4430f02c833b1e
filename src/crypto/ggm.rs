//! The GGM tree over 32-bit epoch numbers: a keyword's root key yields one leaf key per
//! epoch, and a set of subtree roots (a "cover") hands out exactly the leaves of a range
//! of epochs, nothing more.
//!
//! Node keys are AES-256 keys. The children of node `k` are
//! `left = AES_k(0) ‖ AES_k(1)` and `right = AES_k(2) ‖ AES_k(3)`, the blocks being
//! 128-bit big-endian integers (DESIGN: child on side `b` is `AES_k(2b) ‖ AES_k(2b+1)`).
//! The leaf of epoch `e` is reached from the root by the bits of `e`, most significant
//! first. A node is named by its depth (0 = root, 32 = leaf) and its index among the
//! nodes of that depth; it covers epochs `[index·2^(32−depth), (index+1)·2^(32−depth))`.
//!
//! Forward privacy rests here: AES is a PRF, so nothing computable from the nodes of a
//! cover of `[0, E)` tells anything about the leaf of an epoch `≥ E`.

use aes::Aes256Enc;
use cipher::{Array, BlockCipherEncrypt, KeyInit, consts::U16};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Depth of the tree: one level per bit of the epoch number.
pub(crate) const DEPTH: u8 = 32;

/// A node key of the tree.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct NodeKey(pub(crate) [u8; 32]);

/// Node keys compare in constant time: a query's tokens are compared as keys.
impl PartialEq for NodeKey {
    fn eq(&self, other: &Self) -> bool {
        bool::from(subtle::ConstantTimeEq::ct_eq(&self.0[..], &other.0[..]))
    }
}
impl Eq for NodeKey {}

/// `AES_k(first) ‖ AES_k(first + 1)` into `out`: one key schedule, two blocks,
/// encrypted in place in `out` (no copy of the child leaves a stack slot to wipe).
fn expand_pair(key: &[u8; 32], first: u8, out: &mut [u8; 32]) {
    let cipher = Aes256Enc::new(key.into());
    *out = [0; 32];
    out[15] = first;
    out[31] = first + 1;
    let (blocks, _) = Array::<u8, U16>::slice_as_chunks_mut(out);
    cipher.encrypt_blocks(blocks);
}

impl NodeKey {
    /// Both children: one key schedule, four blocks, encrypted in place.
    pub(crate) fn children(&self) -> (NodeKey, NodeKey) {
        let cipher = Aes256Enc::new(&self.0.into());
        let mut both = [0u8; 64];
        for (i, counter) in both.chunks_exact_mut(16).enumerate() {
            counter[15] = i as u8;
        }
        let (blocks, _) = Array::<u8, U16>::slice_as_chunks_mut(&mut both);
        cipher.encrypt_blocks(blocks);
        let mut left = NodeKey([0; 32]);
        let mut right = NodeKey([0; 32]);
        left.0.copy_from_slice(&both[..32]);
        right.0.copy_from_slice(&both[32..]);
        both.zeroize();
        (left, right)
    }

    /// One child.
    pub(crate) fn child(&self, bit: bool) -> NodeKey {
        let mut child = NodeKey([0; 32]);
        expand_pair(&self.0, if bit { 2 } else { 0 }, &mut child.0);
        child
    }

    /// The descendant `depth` levels down along the low `depth` bits of `path`,
    /// computed in place: each level overwrites the last, and only the result and one
    /// scratch buffer are ever wiped.
    fn descend(&self, path: u32, depth: u8) -> NodeKey {
        let mut node = self.clone();
        let mut scratch = NodeKey([0; 32]);
        for level in (0..depth).rev() {
            let bit = (path >> level) & 1 == 1;
            expand_pair(&node.0, if bit { 2 } else { 0 }, &mut scratch.0);
            core::mem::swap(&mut node, &mut scratch);
        }
        node
    }
}

/// The leaf key of `epoch` under `root`.
pub(crate) fn leaf(root: &NodeKey, epoch: u32) -> NodeKey {
    root.descend(epoch, DEPTH)
}

/// The key of node (`depth`, `index`) under `root`; `index < 2^depth`.
pub(crate) fn node(root: &NodeKey, depth: u8, index: u32) -> NodeKey {
    root.descend(index, depth)
}

/// First epoch under node (`depth`, `index`) and the number of epochs it covers.
pub(crate) fn span(depth: u8, index: u32) -> (u64, u64) {
    let width = 1u64 << (DEPTH - depth);
    (u64::from(index) * width, width)
}

/// The fewest nodes whose spans exactly tile `[start, end)` (`end ≤ 2^32`), in epoch
/// order. At most 62 nodes; at most 32 when `start` is 0.
pub(crate) fn cover(start: u64, end: u64) -> Vec<(u8, u32)> {
    let mut out = Vec::new();
    let mut at = start;
    while at < end {
        // The largest aligned block that starts at `at` and fits before `end`.
        let mut depth = if at == 0 {
            0
        } else {
            DEPTH - at.trailing_zeros().min(32) as u8
        };
        while (1u64 << (DEPTH - depth)) > end - at {
            depth += 1;
        }
        let width = 1u64 << (DEPTH - depth);
        out.push((depth, (at / width) as u32));
        at += width;
    }
    out
}

/// Calls `f(epoch, leaf)` for every leaf under `key` at (`depth`, `index`) whose epoch
/// is below `limit`, in epoch order. Subtrees entirely at or past `limit` are never
/// computed, so work is bounded by the epochs that exist.
pub(crate) fn expand(
    key: &NodeKey,
    depth: u8,
    index: u32,
    limit: u64,
    f: &mut impl FnMut(u32, &NodeKey),
) {
    let (first, _) = span(depth, index);
    if first >= limit {
        return;
    }
    if depth == DEPTH {
        f(index, key);
        return;
    }
    let (_, half) = span(depth + 1, 0);
    if first + half >= limit {
        // Only the left half has epochs below the limit.
        expand(&key.child(false), depth + 1, index << 1, limit, f);
    } else {
        let (left, right) = key.children();
        expand(&left, depth + 1, index << 1, limit, f);
        expand(&right, depth + 1, (index << 1) | 1, limit, f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPOCHS: u64 = 1 << DEPTH;

    fn root() -> NodeKey {
        NodeKey([0x42; 32])
    }

    #[test]
    fn children_agree_with_single_child() {
        let (l, r) = root().children();
        assert_eq!(l.0, root().child(false).0);
        assert_eq!(r.0, root().child(true).0);
        assert_ne!(l.0, r.0);
    }

    #[test]
    fn covers_tile_ranges_exactly() {
        for (start, end) in [
            (0u64, 1u64),
            (0, 30),
            (0, 64),
            (5, 6),
            (3, 1000),
            (10, 11),
            (0, EPOCHS),
            (1, EPOCHS),
        ] {
            let nodes = cover(start, end);
            let mut at = start;
            for &(depth, index) in &nodes {
                let (first, width) = span(depth, index);
                assert_eq!(first, at, "contiguous");
                at += width;
            }
            assert_eq!(at, end);
            assert!(
                nodes.len() <= if start == 0 { 32 } else { 62 },
                "{start}..{end}: {}",
                nodes.len()
            );
        }
        assert_eq!(cover(0, 64), vec![(26, 0)]);
        assert!(cover(7, 7).is_empty());
    }

    #[test]
    fn expanding_a_cover_yields_the_same_leaves_as_direct_derivation() {
        let root = root();
        for (start, end) in [(0u64, 1u64), (0, 37), (5, 70), (64, 128)] {
            let mut got = Vec::new();
            for (depth, index) in cover(start, end) {
                let key = node(&root, depth, index);
                expand(&key, depth, index, end, &mut |e, leaf_key| {
                    got.push((e, leaf_key.0))
                });
            }
            let want: Vec<_> = (start..end)
                .map(|e| (e as u32, leaf(&root, e as u32).0))
                .collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn expansion_stops_at_the_limit() {
        // A depth-1 node covers 2^31 epochs; with 3 existing epochs it yields 3 leaves.
        let mut count = 0;
        expand(&node(&root(), 1, 0), 1, 0, 3, &mut |_, _| count += 1);
        assert_eq!(count, 3);
    }
}
