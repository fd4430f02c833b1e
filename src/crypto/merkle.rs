//! Merkle trees as RFC 9162 (Certificate Transparency 2.0) defines them over SHA-256:
//! `leaf = H(00 ‖ data)`, `node = H(01 ‖ left ‖ right)`, the empty tree `H()`, and a
//! tree of `n > 1` leaves split after the largest power of two below `n`. That shape is
//! the one built level by level where an unpaired last node moves up unchanged, which
//! is how [`Tree`] stores it; inclusion proofs are RFC 9162's audit paths and are
//! checked by its §2.1.3.2 algorithm.
//!
//! Why this tree: its proofs are short (`⌈log₂ n⌉` hashes), its rules are public and
//! implemented widely, and the domain bytes keep a leaf from passing as a node.

use rayon::prelude::*;
use sha2::{Digest as _, Sha256};

use crate::parallel::{self, Work};

/// A SHA-256 digest.
pub type Digest = [u8; 32];

/// `H(00 ‖ data)`.
pub(crate) fn leaf_hash(data: &[&[u8]]) -> Digest {
    if data.iter().map(|p| p.len()).sum::<usize>() < SHORT_MAX {
        return short_sha256(0, data);
    }
    let mut h = Sha256::new();
    h.update([0u8]);
    for part in data {
        h.update(part);
    }
    h.finalize().into()
}

/// `H(01 ‖ left ‖ right)`.
pub(crate) fn node_hash(left: &Digest, right: &Digest) -> Digest {
    short_sha256(1, &[left, right])
}

/// SHA-256's initial state (FIPS 180-4 §5.3.3).
const SHA256_IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// Most message bytes whose padded form fits two blocks (`+ 0x80 + 8` length bytes).
const SHORT_MAX: usize = 128 - 9;

/// SHA-256 of `first ‖ parts`, at most [`SHORT_MAX`] bytes (the caller's bound): the
/// padding written here and the blocks handed to the compression function at once.
/// The same digest as `Sha256`, without its buffering, which was most of the cost of
/// hashing a tree's 65-byte nodes (bench `index/verified-search`).
fn short_sha256(first: u8, parts: &[&[u8]]) -> Digest {
    let len = 1 + parts.iter().map(|p| p.len()).sum::<usize>();
    debug_assert!(len <= SHORT_MAX);
    let mut blocks = [[0u8; 64]; 2];
    let used = if len + 9 <= 64 { 1 } else { 2 };
    {
        let flat = blocks.as_flattened_mut();
        flat[0] = first;
        let mut at = 1;
        for part in parts {
            flat[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        flat[at] = 0x80;
        flat[used * 64 - 8..used * 64].copy_from_slice(&((len as u64) * 8).to_be_bytes());
    }
    let mut state = SHA256_IV;
    sha2::block_api::compress256(&mut state, &blocks[..used]);
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// The root of the empty tree, `H()`.
pub(crate) fn empty_root() -> Digest {
    Sha256::digest([]).into()
}

/// The level above `level`: pairs hashed, an unpaired last node moved up unchanged.
fn parent_level(level: &[Digest]) -> Vec<Digest> {
    let pair = |p: &[Digest]| match p {
        [left, right] => node_hash(left, right),
        [single] => *single,
        _ => unreachable!("chunks of two"),
    };
    if parallel::worth_splitting(Work::hashes(level.len() / 2)) {
        parallel::run(|| level.par_chunks(2).map(pair).collect())
    } else {
        level.chunks(2).map(pair).collect()
    }
}

/// The root over `leaves` (leaf hashes, in order) without keeping the levels.
#[cfg(test)]
pub(crate) fn root(leaves: &[Digest]) -> Digest {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        _ => {
            let mut level = parent_level(leaves);
            while level.len() > 1 {
                level = parent_level(&level);
            }
            level[0]
        }
    }
}

/// Leaf hashes of `count` items, item `i` given by `item(i)` as its parts; on all
/// cores when there are many.
pub(crate) fn leaf_hashes<'a>(
    count: usize,
    item: impl Fn(usize) -> [&'a [u8]; 2] + Sync,
) -> Vec<Digest> {
    if parallel::worth_splitting(Work::hashes(count)) {
        parallel::run(|| {
            (0..count)
                .into_par_iter()
                .map(|i| leaf_hash(&item(i)))
                .collect()
        })
    } else {
        (0..count).map(|i| leaf_hash(&item(i))).collect()
    }
}

/// A whole tree, every level kept, for answering inclusion proofs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tree {
    /// Level 0 is the leaf hashes; the last level is the root alone.
    levels: Vec<Vec<Digest>>,
}

impl Tree {
    pub(crate) fn new(leaves: Vec<Digest>) -> Self {
        let mut levels = vec![leaves];
        while levels[levels.len() - 1].len() > 1 {
            let next = parent_level(&levels[levels.len() - 1]);
            levels.push(next);
        }
        Tree { levels }
    }

    pub(crate) fn len(&self) -> usize {
        self.levels[0].len()
    }

    pub(crate) fn root(&self) -> Digest {
        match self.levels.last().map(Vec::as_slice) {
            Some([root]) => *root,
            _ => empty_root(),
        }
    }

    /// The audit path of leaf `index` (RFC 9162 `PATH`), bottom up; `None` past the end.
    pub(crate) fn path(&self, index: usize) -> Option<Vec<Digest>> {
        if index >= self.len() {
            return None;
        }
        let mut path = Vec::with_capacity(self.levels.len());
        let mut at = index;
        for level in &self.levels[..self.levels.len() - 1] {
            // An unpaired last node has no sibling at this level: it moves up as is.
            if let Some(sibling) = level.get(at ^ 1) {
                path.push(*sibling);
            }
            at >>= 1;
        }
        Some(path)
    }
}

/// Checks that `leaf` is leaf `index` of the tree of `size` leaves with `root`
/// (RFC 9162 §2.1.3.2).
pub(crate) fn verify_inclusion(
    leaf: &Digest,
    index: u64,
    size: u64,
    path: &[Digest],
    root: &Digest,
) -> bool {
    if index >= size {
        return false;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && bool::from(subtle::ConstantTimeEq::ct_eq(&r[..], &root[..]))
}

/// The number of hashes in the audit path of leaf `index` in a tree of `size` leaves:
/// one per level where the leaf's ancestor has a sibling.
pub(crate) fn path_len(index: u64, size: u64) -> usize {
    let (mut at, mut len, mut count) = (index, size, 0);
    while len > 1 {
        if at ^ 1 < len {
            count += 1;
        }
        at >>= 1;
        len = len.div_ceil(2);
    }
    count
}

/// Checks many leaves of one tree at once: each `(index, leaf, path)` is leaf `index`
/// of the tree of `size` leaves with `root`, its `path` its audit path. Ancestors
/// shared by several leaves are hashed once, so `k` leaves of one tree cost about `k`
/// node hashes instead of `k · log₂ size`. Sound as a multiproof: the root is computed
/// from the leaves and the supplied siblings only, and every path must have exactly
/// its leaf's length. False if any check fails, or if two leaves claim one index.
pub(crate) fn verify_many(size: u64, items: &[(u64, Digest, &[Digest])], root: &Digest) -> bool {
    // Known nodes of the current level, ascending: (index, hash, the item whose path
    // supplies siblings above it, how much of that path is used). Each level replaces
    // the one below in place, as in `verify_multiproof`.
    let mut known: Vec<(u64, Digest, usize, usize)> = Vec::with_capacity(items.len());
    for (item, (index, leaf, path)) in items.iter().enumerate() {
        if *index >= size || path.len() != path_len(*index, size) {
            return false;
        }
        known.push((*index, *leaf, item, 0));
    }
    known.sort_unstable_by_key(|k| k.0);
    if known.windows(2).any(|w| w[0].0 == w[1].0) {
        return false;
    }
    let mut len = size;
    while len > 1 {
        let (mut read, mut written) = (0, 0);
        while read < known.len() {
            let (at, hash, item, used) = known[read];
            let parent = if at & 1 == 0 && known.get(read + 1).is_some_and(|k| k.0 == at + 1) {
                // Hashed with its right sibling, which the other item's path also
                // lists: that item's path moves on one step too, unused.
                read += 1;
                (node_hash(&hash, &known[read].1), item, used + 1)
            } else if at ^ 1 >= len {
                (hash, item, used) // unpaired: moves up as is
            } else {
                let Some(sibling) = items[item].2.get(used) else {
                    return false;
                };
                let combined = if at & 1 == 0 {
                    node_hash(&hash, sibling)
                } else {
                    node_hash(sibling, &hash)
                };
                (combined, item, used + 1)
            };
            known[written] = (at >> 1, parent.0, parent.1, parent.2);
            written += 1;
            read += 1;
        }
        known.truncate(written);
        len = len.div_ceil(2);
    }
    match known.as_slice() {
        [(_, computed, _, _)] => {
            bool::from(subtle::ConstantTimeEq::ct_eq(&computed[..], &root[..]))
        }
        _ => size == 0 && items.is_empty(),
    }
}

impl Tree {
    /// The siblings needed to compute the root from the leaves at `indices` (ascending, each
    /// once): level by level from the leaves up, in ascending index order within a level,
    /// every sibling of a known node that is neither known nor missing (an unpaired last
    /// node moves up without one). FORMAT.md, "Multiproof". `None` if an index is out of
    /// range or the indices are not strictly ascending.
    pub(crate) fn multiproof(&self, indices: &[usize]) -> Option<Vec<Digest>> {
        if !indices.windows(2).all(|w| w[0] < w[1]) || indices.last() >= Some(&self.len()) {
            return None;
        }
        let mut known: Vec<usize> = indices.to_vec();
        let mut proof = Vec::new();
        for level in &self.levels[..self.levels.len() - 1] {
            let mut i = 0;
            while i < known.len() {
                let at = known[i];
                let pair_known = at & 1 == 0 && known.get(i + 1) == Some(&(at + 1));
                if pair_known {
                    i += 2;
                    continue;
                }
                if let Some(sibling) = level.get(at ^ 1) {
                    proof.push(*sibling);
                }
                i += 1;
            }
            for at in &mut known {
                *at >>= 1;
            }
            known.dedup();
        }
        Some(proof)
    }
}

/// Checks a multiproof ([`Tree::multiproof`]): `leaves` (strictly ascending indices,
/// each with its leaf hash) are leaves of the tree of `size` leaves with `root`, `proof`
/// the siblings in the order the multiproof lists them, every one used. The empty tree
/// is proven by no leaves and no siblings.
pub(crate) fn verify_multiproof(
    size: u64,
    leaves: &[(u64, Digest)],
    proof: &[Digest],
    root: &Digest,
) -> bool {
    if size == 0 {
        return leaves.is_empty()
            && proof.is_empty()
            && bool::from(subtle::ConstantTimeEq::ct_eq(&empty_root()[..], &root[..]));
    }
    if leaves.is_empty()
        || !leaves.windows(2).all(|w| w[0].0 < w[1].0)
        || leaves[leaves.len() - 1].0 >= size
    {
        return false;
    }
    // Each level's known nodes replace the level below's in place (a parent's
    // position never passes its first child's).
    let mut known: Vec<(u64, Digest)> = leaves.to_vec();
    let mut siblings = proof.iter();
    let mut len = size;
    while len > 1 {
        let (mut read, mut written) = (0, 0);
        while read < known.len() {
            let (at, hash) = known[read];
            let parent = if at & 1 == 0 && known.get(read + 1).is_some_and(|k| k.0 == at + 1) {
                read += 1;
                node_hash(&hash, &known[read].1)
            } else if at ^ 1 >= len {
                hash // unpaired: moves up as is
            } else {
                let Some(sibling) = siblings.next() else {
                    return false;
                };
                if at & 1 == 0 {
                    node_hash(&hash, sibling)
                } else {
                    node_hash(sibling, &hash)
                }
            };
            known[written] = (at >> 1, parent);
            written += 1;
            read += 1;
        }
        known.truncate(written);
        len = len.div_ceil(2);
    }
    siblings.next().is_none()
        && known.len() == 1
        && bool::from(subtle::ConstantTimeEq::ct_eq(&known[0].1[..], &root[..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9162's recursive definition, as written.
    fn reference_root(leaves: &[Digest]) -> Digest {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = 1 << (usize::BITS - 1 - (n - 1).leading_zeros());
                node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
            }
        }
    }

    fn reference_path(m: usize, leaves: &[Digest]) -> Vec<Digest> {
        let n = leaves.len();
        if n <= 1 {
            return Vec::new();
        }
        let k = 1 << (usize::BITS - 1 - (n - 1).leading_zeros());
        if m < k {
            let mut p = reference_path(m, &leaves[..k]);
            p.push(reference_root(&leaves[k..]));
            p
        } else {
            let mut p = reference_path(m - k, &leaves[k..]);
            p.push(reference_root(&leaves[..k]));
            p
        }
    }

    fn leaves(n: usize) -> Vec<Digest> {
        (0..n as u32)
            .map(|i| leaf_hash(&[&i.to_be_bytes()]))
            .collect()
    }

    #[test]
    fn levels_agree_with_the_recursive_definition() {
        for n in 0..70 {
            let l = leaves(n);
            let tree = Tree::new(l.clone());
            assert_eq!(tree.root(), reference_root(&l), "n = {n}");
            assert_eq!(root(&l), reference_root(&l), "n = {n}");
            for m in 0..n {
                let path = tree.path(m).unwrap();
                assert_eq!(path, reference_path(m, &l), "n = {n}, m = {m}");
                assert!(verify_inclusion(
                    &l[m],
                    m as u64,
                    n as u64,
                    &path,
                    &tree.root()
                ));
            }
            assert!(tree.path(n).is_none());
        }
    }

    #[test]
    fn many_leaves_verify_together_exactly_when_each_verifies_alone() {
        let mut state = 0x1234_5678_u64;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        for n in [1usize, 2, 3, 5, 8, 13, 64, 100] {
            let l = leaves(n);
            let tree = Tree::new(l.clone());
            let root = tree.root();
            let paths: Vec<Vec<Digest>> = (0..n).map(|i| tree.path(i).unwrap()).collect();
            for (i, path) in paths.iter().enumerate() {
                assert_eq!(path.len(), path_len(i as u64, n as u64));
            }
            for _ in 0..20 {
                let k = 1 + next(n);
                let mut picked: Vec<usize> = (0..k).map(|_| next(n)).collect();
                picked.sort_unstable();
                picked.dedup();
                let items: Vec<(u64, Digest, &[Digest])> = picked
                    .iter()
                    .map(|&i| (i as u64, l[i], paths[i].as_slice()))
                    .collect();
                assert!(verify_many(n as u64, &items, &root), "n {n}, {picked:?}");
                // Any one leaf, index, path hash or the root changed: refused.
                for at in 0..items.len() {
                    let mut bad = items.clone();
                    bad[at].1[0] ^= 1;
                    assert!(!verify_many(n as u64, &bad, &root));
                    let mut moved = items.clone();
                    moved[at].0 = (moved[at].0 + 1) % n as u64;
                    if n > 1 && !picked.contains(&(moved[at].0 as usize)) {
                        assert!(!verify_many(n as u64, &moved, &root), "moved {at}");
                    }
                    for p in 0..items[at].2.len() {
                        let mut tampered: Vec<Digest> = items[at].2.to_vec();
                        tampered[p][3] ^= 1;
                        let mut with = items.clone();
                        with[at].2 = &tampered;
                        // A sibling another picked leaf supplies is not read from the
                        // path; every other one is.
                        let alone = verify_inclusion(
                            &l[picked[at]],
                            picked[at] as u64,
                            n as u64,
                            &tampered,
                            &root,
                        );
                        assert!(!alone);
                        let _ = verify_many(n as u64, &with, &root);
                    }
                    let mut short: Vec<Digest> = items[at].2.to_vec();
                    if short.pop().is_some() {
                        let mut with = items.clone();
                        with[at].2 = &short;
                        assert!(!verify_many(n as u64, &with, &root));
                    }
                }
                let mut bad_root = root;
                bad_root[31] ^= 1;
                assert!(!verify_many(n as u64, &items, &bad_root));
                let twice: Vec<_> = items.iter().chain(items.first()).copied().collect();
                assert!(!verify_many(n as u64, &twice, &root));
            }
        }
    }

    #[test]
    fn a_multiproof_verifies_exactly_its_leaves() {
        let mut state = 0x9E37_79B9_u64;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        assert!(verify_multiproof(0, &[], &[], &empty_root()));
        assert!(!verify_multiproof(0, &[], &[empty_root()], &empty_root()));
        for n in [1usize, 2, 3, 5, 7, 8, 13, 64, 100, 257] {
            let l = leaves(n);
            let tree = Tree::new(l.clone());
            let root = tree.root();
            assert!(tree.multiproof(&[n]).is_none());
            assert!(!verify_multiproof(n as u64, &[], &[], &root));
            for round in 0..30 {
                let k = 1 + next(n.min(12));
                let mut picked: Vec<usize> = (0..k).map(|_| next(n)).collect();
                if round % 3 == 0 {
                    // Two neighbours, as an absence proof has.
                    let at = next(n);
                    picked = vec![at, (at + 1).min(n - 1)];
                }
                picked.sort_unstable();
                picked.dedup();
                let proof = tree.multiproof(&picked).unwrap();
                let items: Vec<(u64, Digest)> = picked.iter().map(|&i| (i as u64, l[i])).collect();
                assert!(
                    verify_multiproof(n as u64, &items, &proof, &root),
                    "{n} {picked:?}"
                );
                // One leaf alone agrees with its audit path's length.
                if picked.len() == 1 {
                    assert_eq!(proof, tree.path(picked[0]).unwrap());
                }
                for at in 0..items.len() {
                    let mut bad = items.clone();
                    bad[at].1[0] ^= 1;
                    assert!(!verify_multiproof(n as u64, &bad, &proof, &root));
                    let moved = (bad[at].0 + 1) % n as u64;
                    let mut shifted = items.clone();
                    shifted[at].0 = moved;
                    shifted.sort_by_key(|item| item.0);
                    if n > 1 && !picked.contains(&(moved as usize)) {
                        assert!(!verify_multiproof(n as u64, &shifted, &proof, &root));
                    }
                }
                for p in 0..proof.len() {
                    let mut bad = proof.clone();
                    bad[p][7] ^= 1;
                    assert!(!verify_multiproof(n as u64, &items, &bad, &root));
                    let mut short = proof.clone();
                    short.remove(p);
                    assert!(!verify_multiproof(n as u64, &items, &short, &root));
                }
                let mut longer = proof.clone();
                longer.push(root);
                assert!(!verify_multiproof(n as u64, &items, &longer, &root));
                let twice: Vec<_> = items.iter().chain(items.last()).copied().collect();
                assert!(!verify_multiproof(n as u64, &twice, &proof, &root));
                // (The size is not bound by a proof, as for one path: [0, 1] of 3
                // leaves prove as of 4. It comes from the signed commitment.)
            }
        }
    }

    #[test]
    fn the_short_path_is_sha256() {
        let data: Vec<u8> = (0..200u32).map(|i| (i * 131 % 251) as u8).collect();
        for len in 0..=SHORT_MAX + 3 {
            for split in [0, len / 3, len.saturating_sub(1)] {
                let (a, b) = data[..len].split_at(split.min(len));
                let mut h = Sha256::new();
                h.update([7u8]);
                h.update(a);
                h.update(b);
                let want: Digest = h.finalize().into();
                if len < SHORT_MAX {
                    assert_eq!(short_sha256(7, &[a, b]), want, "{len} bytes");
                }
                let mut leaf = Sha256::new();
                leaf.update([0u8]);
                leaf.update(a);
                leaf.update(b);
                assert_eq!(leaf_hash(&[a, b]), <[u8; 32]>::from(leaf.finalize()));
            }
        }
    }

    #[test]
    fn known_answer_of_the_empty_tree_and_one_leaf() {
        // RFC 9162 §2.1.1: MTH({}) = SHA-256 of the empty string.
        assert_eq!(
            hex::encode(empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // MTH({""}) = SHA-256(0x00), the first entry of the CT test trees.
        assert_eq!(
            hex::encode(leaf_hash(&[b""])),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }

    #[test]
    fn wrong_leaf_index_size_path_or_root_is_refused() {
        let l = leaves(13);
        let tree = Tree::new(l.clone());
        let root = tree.root();
        for m in 0..13usize {
            let path = tree.path(m).unwrap();
            let ok = |leaf: &Digest, index: u64, size: u64, path: &[Digest], root: &Digest| {
                verify_inclusion(leaf, index, size, path, root)
            };
            assert!(ok(&l[m], m as u64, 13, &path, &root));
            assert!(!ok(&l[(m + 1) % 13], m as u64, 13, &path, &root));
            assert!(!ok(&l[m], (m as u64 + 1) % 13, 13, &path, &root));
            // (The size itself is not bound by a path: it comes from the signed commit.)
            assert!(!ok(&l[m], 13, 13, &path, &root));
            assert!(!ok(&l[m], m as u64, 13, &path[..path.len() - 1], &root));
            let mut longer = path.clone();
            longer.push(root);
            assert!(!ok(&l[m], m as u64, 13, &longer, &root));
            for i in 0..path.len() {
                let mut bad = path.clone();
                bad[i][5] ^= 1;
                assert!(!ok(&l[m], m as u64, 13, &bad, &root));
            }
            let mut bad_root = root;
            bad_root[0] ^= 0x80;
            assert!(!ok(&l[m], m as u64, 13, &path, &bad_root));
        }
    }
}
