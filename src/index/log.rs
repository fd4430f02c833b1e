//! A provider's signed log: what makes every write attributable to the provider that
//! made it.
//!
//! Each epoch's batch commits to its entries and to the records uploaded with it:
//!
//! * `pairs_root`: the RFC 9162 Merkle root over the batch's `label ‖ value` pairs in
//!   label order;
//! * `records_root`: the root over `record id ‖ SHA-256(sealed record)` in id order;
//!
//! and the provider's log chains the epochs' commitments:
//! `chain₀ = 0³²`, `chainₑ₊₁ = SHA-256("medvault log chain v1" ‖ 00 ‖ provider ‖ [e]₃₂ ‖
//! commitₑ ‖ chainₑ)`. With every batch the provider signs the *head*
//! `"medvault log head v1" ‖ 00 ‖ provider ‖ [e + 1]₃₂ ‖ chainₑ₊₁` (RSA-PSS-SHA256, its
//! identity's signing key). One signature thus vouches for the whole history: every
//! epoch's generation, entry count, entries and records.
//!
//! The cloud checks a batch's signature against the provider's registered key before
//! it stores anything, and a record's digest against the signed commitment before it
//! stores the record. A requester checks the signed head and the chain of the epochs it
//! builds tokens from ([`verify`]), remembers the highest head per provider and refuses
//! to go back, and checks each returned record against its epoch's `records_root`.

use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use crate::crypto::merkle::{self, Digest, Tree};
use crate::error::{Error, Result};
use crate::index::manifest::EpochInfo;
use crate::index::query::EpochProof;
use crate::index::{EpochKey, Label, Posting, Table};
use crate::keys::identity::VerifyingKey;
use crate::keys::{ProviderId, RecordId};

const CHAIN_DOMAIN: &[u8] = b"medvault log chain v1\0";
const HEAD_DOMAIN: &[u8] = b"medvault log head v1\0";

/// The chain value before any epoch.
pub(crate) const CHAIN_START: Digest = [0u8; 32];

/// Bytes of one epoch commitment: generation, entries, pairs root, records, records
/// root.
pub(crate) const COMMIT_LEN: usize = 4 + 4 + 32 + 4 + 32;

/// Most bytes of a head signature (RSA-8192).
pub(crate) const MAX_SIGNATURE_LEN: usize = 1024;

/// The SHA-256 digest of a sealed record, as a batch commits to it.
pub(crate) fn record_digest(sealed: &[u8]) -> Digest {
    Sha256::digest(sealed).into()
}

/// A batch's entries with their Merkle tree: leaf `i` is `H(00 ‖ label ‖ value)` of the
/// `i`-th entry in label order, the root the epoch's `pairs_root`. The cloud keeps one
/// per epoch to prove, for each search, the blocks it found in that epoch and where
/// the list ended ([`EpochPairs::prove`]); the requester checks both
/// ([`verify_list`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EpochPairs {
    table: Table,
    tree: Tree,
}

impl EpochPairs {
    pub(crate) fn new(table: Table) -> Self {
        let (labels, values) = (table.labels(), table.values());
        let leaves = merkle::leaf_hashes(labels.len(), |i| [&labels[i][..], &values[i][..]]);
        EpochPairs {
            tree: Tree::new(leaves),
            table,
        }
    }

    pub(crate) fn table(&self) -> &Table {
        &self.table
    }

    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    pub(crate) fn root(&self) -> Digest {
        self.tree.root()
    }

    /// The proof, as `epoch`, of a list whose blocks `0..k` are under `labels[..k]` and
    /// whose next label `labels[k]` is absent. [`Error::Corrupt`] if the entries say
    /// otherwise (the cloud's segments and its copy of the batch disagree).
    pub(crate) fn prove(&self, epoch: u32, labels: &[Label]) -> Result<EpochProof> {
        let corrupt = |detail: &str| Error::Corrupt {
            what: format!("index entries of epoch {epoch}: {detail}"),
        };
        let (next, found) = labels.split_last().ok_or_else(|| corrupt("no label"))?;
        let all = self.table.labels();
        let mut blocks = Vec::with_capacity(found.len());
        for label in found {
            let place = all
                .binary_search(label)
                .map_err(|_| corrupt("a block found in a segment is not in its batch"))?;
            blocks.push((place as u32, *self.table.value(place)));
        }
        let gap = match all.binary_search(next) {
            Ok(_) => return Err(corrupt("the list goes on in its batch")),
            Err(gap) => gap,
        };
        let entry = |place: usize| (all[place], *self.table.value(place));
        let below = gap.checked_sub(1).map(entry);
        let above = (gap < all.len()).then(|| entry(gap));
        let mut places: Vec<usize> = blocks.iter().map(|&(place, _)| place as usize).collect();
        places.extend(gap.checked_sub(1));
        if gap < all.len() {
            places.push(gap);
        }
        places.sort_unstable();
        places.dedup();
        let siblings = self
            .tree
            .multiproof(&places)
            .ok_or_else(|| corrupt("a place outside the batch"))?;
        Ok(EpochProof {
            epoch,
            blocks,
            gap: gap as u32,
            below,
            above,
            siblings,
        })
    }
}

/// Checks one epoch of a posting list against `log` and returns its postings: every
/// block the cloud returned is block `i` of the list under `key` (its label
/// `label_i`) as the provider signed it in that epoch, and the list's next label is
/// absent there (its neighbours are adjacent signed entries on either side of it).
/// [`Error::NotAuthentic`] naming the provider otherwise.
pub(crate) fn verify_list(
    log: &VerifiedLog,
    key: &EpochKey,
    proof: &EpochProof,
    out: &mut Vec<Posting>,
) -> Result<()> {
    let forged = |what| Error::NotAuthentic {
        provider: log.provider.to_string(),
        what,
    };
    let info = log
        .epochs
        .get(proof.epoch as usize)
        .ok_or_else(|| forged("posting list (its epoch is not in the signed log)"))?;
    let entries = info.entries;
    if proof.blocks.len() > entries as usize
        || proof.gap > entries
        || proof.below.is_some() != (proof.gap > 0)
        || proof.above.is_some() != (proof.gap < entries)
    {
        return Err(forged("posting list (its shape)"));
    }
    let k = proof.blocks.len() as u32;
    let next = key.label(k);
    let mut leaves: Vec<(u64, Digest)> = Vec::with_capacity(proof.blocks.len() + 2);
    for (i, (place, value)) in proof.blocks.iter().enumerate() {
        let label = key.label(i as u32);
        leaves.push((u64::from(*place), merkle::leaf_hash(&[&label, value])));
    }
    if let Some((label, value)) = &proof.below {
        if *label >= next {
            return Err(forged("posting list (its end: a neighbour out of order)"));
        }
        leaves.push((u64::from(proof.gap - 1), merkle::leaf_hash(&[label, value])));
    }
    if let Some((label, value)) = &proof.above {
        if *label <= next {
            return Err(forged("posting list (its end: a neighbour out of order)"));
        }
        leaves.push((u64::from(proof.gap), merkle::leaf_hash(&[label, value])));
    }
    // A block may also be a neighbour of the gap: one place, one leaf.
    leaves.sort_unstable_by_key(|&(place, _)| place);
    if leaves
        .windows(2)
        .any(|w| w[0].0 == w[1].0 && w[0].1 != w[1].1)
    {
        return Err(forged("posting list (two entries at one place)"));
    }
    leaves.dedup_by_key(|&mut (place, _)| place);
    if !merkle::verify_multiproof(
        u64::from(entries),
        &leaves,
        &proof.siblings,
        &info.pairs_root,
    ) {
        return Err(forged("posting list (not what the provider signed)"));
    }
    for (i, (_, value)) in proof.blocks.iter().enumerate() {
        key.open_block(i as u32, value, out)?;
    }
    Ok(())
}

/// The records uploaded with one batch: `(id, digest)` sorted by id, each id once, with
/// its Merkle tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordTable {
    entries: Vec<(RecordId, Digest)>,
    tree: Tree,
}

impl RecordTable {
    /// A table of `entries`, which must be sorted by id without repeats.
    pub(crate) fn new(entries: Vec<(RecordId, Digest)>) -> Result<Self> {
        if !entries.windows(2).all(|w| w[0].0 < w[1].0) {
            return Err(Error::InvalidArgument(
                "a batch's records must be sorted by id, each id once",
            ));
        }
        let tree = Tree::new(
            entries
                .iter()
                .map(|(id, digest)| merkle::leaf_hash(&[id.as_bytes(), digest]))
                .collect(),
        );
        Ok(RecordTable { entries, tree })
    }

    pub(crate) fn entries(&self) -> &[(RecordId, Digest)] {
        &self.entries
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn root(&self) -> Digest {
        self.tree.root()
    }

    /// The inclusion proof of entry `index`.
    pub(crate) fn path(&self, index: usize) -> Option<Vec<Digest>> {
        self.tree.path(index)
    }
}

/// The commitment of one epoch, as the chain hashes it.
pub(crate) fn encode_commit(info: &EpochInfo, out: &mut Vec<u8>) {
    out.extend_from_slice(&info.generation.to_be_bytes());
    out.extend_from_slice(&info.entries.to_be_bytes());
    out.extend_from_slice(&info.pairs_root);
    out.extend_from_slice(&info.records.to_be_bytes());
    out.extend_from_slice(&info.records_root);
}

/// `chainₑ₊₁` from `chainₑ` and epoch `e`'s commitment.
pub(crate) fn next_chain(
    provider: &ProviderId,
    epoch: u32,
    info: &EpochInfo,
    previous: &Digest,
) -> Digest {
    let mut message = Vec::with_capacity(CHAIN_DOMAIN.len() + 70 + COMMIT_LEN + 32);
    message.extend_from_slice(CHAIN_DOMAIN);
    provider.encode_into(&mut message);
    message.extend_from_slice(&epoch.to_be_bytes());
    encode_commit(info, &mut message);
    message.extend_from_slice(previous);
    Sha256::digest(&message).into()
}

/// The chain over all of `epochs`.
pub(crate) fn chain_of(provider: &ProviderId, epochs: &[EpochInfo]) -> Digest {
    epochs
        .iter()
        .enumerate()
        .fold(CHAIN_START, |chain, (e, info)| {
            next_chain(provider, e as u32, info, &chain)
        })
}

/// The message a provider signs for its log of `epoch_count` epochs ending in `chain`.
pub(crate) fn head_message(provider: &ProviderId, epoch_count: u32, chain: &Digest) -> Vec<u8> {
    let mut message = Vec::with_capacity(HEAD_DOMAIN.len() + 70 + 36);
    message.extend_from_slice(HEAD_DOMAIN);
    provider.encode_into(&mut message);
    message.extend_from_slice(&epoch_count.to_be_bytes());
    message.extend_from_slice(chain);
    message
}

/// Checks that key generations never go back and rise by at most one per epoch
/// (the first epoch's generation is 0 or 1).
pub(crate) fn check_generations(epochs: &[EpochInfo]) -> Result<()> {
    let mut previous = 0u32;
    for info in epochs {
        if info.generation < previous {
            return Err(Error::GenerationRegressed {
                current: previous,
                found: info.generation,
            });
        }
        if info.generation - previous > 1 {
            return Err(Error::Malformed {
                format: "provider log",
                detail: "key generation rises by more than one in one epoch",
            });
        }
        previous = info.generation;
    }
    Ok(())
}

/// A provider's log as a requester verified it: the epochs its tokens may cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VerifiedLog {
    pub(crate) provider: ProviderId,
    pub(crate) epochs: Vec<EpochInfo>,
    pub(crate) chain: Digest,
}

impl VerifiedLog {
    pub(crate) fn epoch_count(&self) -> u32 {
        self.epochs.len() as u32
    }
}

/// Verifies the log `epochs` of `provider` under its head `signature` and the pinned
/// `key`, against the highest log verified before (`seen`): a log shorter than `seen`
/// is [`Error::LogRollback`], one that does not extend it is
/// [`Error::NotAuthentic`]. A log equal to `seen` is accepted without a signature
/// check (the head is cached).
pub(crate) fn verify(
    provider: &ProviderId,
    epochs: &[EpochInfo],
    signature: &[u8],
    key: &VerifyingKey,
    seen: Option<&Arc<VerifiedLog>>,
) -> Result<Arc<VerifiedLog>> {
    let forged = |what| Error::NotAuthentic {
        provider: provider.to_string(),
        what,
    };
    if let Some(seen) = seen
        && epochs.len() < seen.epochs.len()
    {
        return Err(Error::LogRollback {
            provider: provider.to_string(),
            seen: seen.epoch_count(),
            found: epochs.len() as u32,
        });
    }
    if let Some(seen) = seen
        && epochs == seen.epochs.as_slice()
    {
        return Ok(Arc::clone(seen));
    }
    check_generations(epochs).map_err(|_| forged("log (key generations)"))?;
    // The chain after each prefix; the one after the prefix seen before must be the
    // chain seen (same length or longer: a fork or a rewrite otherwise).
    let mut chain = CHAIN_START;
    let rewrites =
        |e: usize, chain: &Digest| seen.is_some_and(|s| e == s.epochs.len() && *chain != s.chain);
    for (e, info) in epochs.iter().enumerate() {
        if rewrites(e, &chain) {
            return Err(forged("log (it rewrites history seen before)"));
        }
        chain = next_chain(provider, e as u32, info, &chain);
    }
    if rewrites(epochs.len(), &chain) {
        return Err(forged("log (it rewrites history seen before)"));
    }
    if epochs.is_empty() {
        if !signature.is_empty() {
            return Err(forged("log (a signature without epochs)"));
        }
    } else {
        key.verify(
            &head_message(provider, epochs.len() as u32, &chain),
            signature,
        )
        .map_err(|_| forged("log head signature"))?;
    }
    Ok(Arc::new(VerifiedLog {
        provider: provider.clone(),
        epochs: epochs.to_vec(),
        chain,
    }))
}

/// The Merkle leaf of a record in its epoch's record table.
pub(crate) fn record_leaf(record: RecordId, sealed: &[u8]) -> Digest {
    merkle::leaf_hash(&[record.as_bytes(), &record_digest(sealed)])
}

/// Checks that each returned record is the one committed in its proof's epoch of
/// `log`, at its index: `records[i]` with `proofs[i]`, whose leaf the caller computed
/// as `leaves[i]` ([`record_leaf`]; the requester does it in the same pass on all
/// cores that opens the records). The records of one epoch are checked together
/// ([`merkle::verify_many`]), their shared ancestors hashed once. If any fails, the
/// error is the one [`verify_record`] gives for the first failing record in `records`'
/// order, as checking them one by one would report.
pub(crate) fn verify_records(
    log: &VerifiedLog,
    records: &[(RecordId, Vec<u8>)],
    proofs: &[crate::index::query::RecordProof],
    leaves: &[Digest],
) -> Result<()> {
    debug_assert_eq!(records.len(), proofs.len());
    debug_assert_eq!(records.len(), leaves.len());
    let mut by_epoch: std::collections::BTreeMap<u32, Vec<usize>> = Default::default();
    for (i, proof) in proofs.iter().enumerate() {
        by_epoch.entry(proof.epoch).or_default().push(i);
    }
    let verify_one = |i: usize| {
        let ((id, sealed), proof) = (&records[i], &proofs[i]);
        verify_record(log, *id, proof.epoch, proof.index, &proof.path, sealed)
    };
    let mut first_bad: Option<(usize, Error)> = None;
    for (epoch, members) in &by_epoch {
        let together = log.epochs.get(*epoch as usize).is_some_and(|info| {
            let items: Vec<(u64, Digest, &[Digest])> = members
                .iter()
                .map(|&i| {
                    (
                        u64::from(proofs[i].index),
                        leaves[i],
                        proofs[i].path.as_slice(),
                    )
                })
                .collect();
            merkle::verify_many(u64::from(info.records), &items, &info.records_root)
        });
        if together {
            continue;
        }
        // The first failing one, the slow way, for its error. If each passes alone,
        // two of them claim one place (only one record can be there).
        let bad = members
            .iter()
            .find_map(|&i| verify_one(i).err().map(|e| (i, e)))
            .unwrap_or_else(|| {
                let error = Error::NotAuthentic {
                    provider: log.provider.to_string(),
                    what: "record (two records claim one place)",
                };
                (members[0], error)
            });
        if first_bad.as_ref().is_none_or(|(b, _)| bad.0 < *b) {
            first_bad = Some(bad);
        }
    }
    first_bad.map_or(Ok(()), |(_, error)| Err(error))
}

/// Checks that `sealed` is the record `record` committed in `epoch` of `log` at
/// `index` with inclusion proof `path`.
pub(crate) fn verify_record(
    log: &VerifiedLog,
    record: RecordId,
    epoch: u32,
    index: u32,
    path: &[Digest],
    sealed: &[u8],
) -> Result<()> {
    let info = log
        .epochs
        .get(epoch as usize)
        .ok_or_else(|| Error::NotAuthentic {
            provider: log.provider.to_string(),
            what: "record (its epoch is not in the signed log)",
        })?;
    let leaf = merkle::leaf_hash(&[record.as_bytes(), &record_digest(sealed)]);
    if merkle::verify_inclusion(
        &leaf,
        u64::from(index),
        u64::from(info.records),
        path,
        &info.records_root,
    ) {
        Ok(())
    } else {
        Err(Error::NotAuthentic {
            provider: log.provider.to_string(),
            what: "record (not the one the provider signed)",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::test_keys;

    fn info(generation: u32, seed: u8) -> EpochInfo {
        EpochInfo {
            generation,
            entries: u32::from(seed),
            pairs_root: [seed; 32],
            records: 0,
            records_root: [seed ^ 0xff; 32],
        }
    }

    /// `epochs` signed by provider A as `lab`'s log.
    fn signed(epochs: &[EpochInfo]) -> Vec<u8> {
        let lab = ProviderId::new("lab").unwrap();
        test_keys::provider_a()
            .signing
            .sign(&head_message(
                &lab,
                epochs.len() as u32,
                &chain_of(&lab, epochs),
            ))
            .unwrap()
    }

    #[test]
    fn a_log_verifies_only_as_signed_and_never_goes_back() {
        let lab = ProviderId::new("lab").unwrap();
        let key = test_keys::provider_a().public().verifying;
        let three = [info(0, 1), info(0, 2), info(1, 3)];
        let log = verify(&lab, &three, &signed(&three), &key, None).unwrap();
        assert_eq!(log.epoch_count(), 3);
        assert_eq!(log.chain, chain_of(&lab, &three));
        let not_authentic =
            |r: Result<Arc<VerifiedLog>>| matches!(r, Err(Error::NotAuthentic { .. }));
        // Verified by a requester that has seen nothing of the lab before.
        let refused = |epochs: &[EpochInfo], signature: &[u8]| {
            not_authentic(verify(&lab, epochs, signature, &key, None))
        };
        // Under another key, for another provider, inflated, changed, or with a
        // signature over something else.
        let other = test_keys::provider_b().public().verifying;
        assert!(not_authentic(verify(
            &lab,
            &three,
            &signed(&three),
            &other,
            None
        )));
        let clinic = ProviderId::new("clinic").unwrap();
        assert!(not_authentic(verify(
            &clinic,
            &three,
            &signed(&three),
            &key,
            None
        )));
        let mut inflated = three.to_vec();
        inflated.push(info(1, 4));
        assert!(refused(&inflated, &signed(&three)));
        for at in 0..3 {
            let mut changed = three.to_vec();
            changed[at].entries += 1;
            assert!(refused(&changed, &signed(&three)));
        }
        assert!(refused(&three, &signed(&three[..2])));
        assert!(refused(&[], &signed(&three)));
        // Generations that jump or go back are refused even when signed.
        let jump = [info(0, 1), info(2, 2)];
        assert!(refused(&jump, &signed(&jump)));
        let back = [info(1, 1), info(0, 2)];
        assert!(refused(&back, &signed(&back)));

        // Against what was seen: the same log needs no signature check (the head is
        // cached); a shorter one is a rollback; a longer one must extend it.
        assert_eq!(verify(&lab, &three, b"", &key, Some(&log)).unwrap(), log);
        assert!(matches!(
            verify(&lab, &three[..2], &signed(&three[..2]), &key, Some(&log)),
            Err(Error::LogRollback {
                seen: 3,
                found: 2,
                ..
            })
        ));
        let mut fork = three.to_vec();
        fork[2].entries += 1;
        assert!(not_authentic(verify(
            &lab,
            &fork,
            &signed(&fork),
            &key,
            Some(&log)
        )));
        fork.push(info(1, 9));
        assert!(not_authentic(verify(
            &lab,
            &fork,
            &signed(&fork),
            &key,
            Some(&log)
        )));
        let mut four = three.to_vec();
        four.push(info(1, 4));
        let longer = verify(&lab, &four, &signed(&four), &key, Some(&log)).unwrap();
        assert_eq!(longer.epoch_count(), 4);
        let empty = verify(&lab, &[], b"", &key, None).unwrap();
        assert!(matches!(
            verify(&lab, &[], b"", &key, Some(&longer)),
            Err(Error::LogRollback { found: 0, .. })
        ));
        assert_eq!(empty.chain, CHAIN_START);
    }

    #[test]
    fn a_record_verifies_only_at_its_place_with_its_bytes() {
        let lab = ProviderId::new("lab").unwrap();
        let records: Vec<(RecordId, Vec<u8>)> = (0..5u8)
            .map(|i| (RecordId::from_bytes([i; 16]), vec![i; 40 + usize::from(i)]))
            .collect();
        let table = RecordTable::new(
            records
                .iter()
                .map(|(id, bytes)| (*id, record_digest(bytes)))
                .collect(),
        )
        .unwrap();
        let mut epoch = info(0, 1);
        epoch.records = 5;
        epoch.records_root = table.root();
        let log = VerifiedLog {
            provider: lab,
            epochs: vec![info(0, 0), epoch],
            chain: CHAIN_START,
        };
        for (i, (id, bytes)) in records.iter().enumerate() {
            let path = table.path(i).unwrap();
            verify_record(&log, *id, 1, i as u32, &path, bytes).unwrap();
            let refused = |id: RecordId, epoch: u32, index: u32, path: &[Digest], bytes: &[u8]| {
                matches!(
                    verify_record(&log, id, epoch, index, path, bytes),
                    Err(Error::NotAuthentic { .. })
                )
            };
            for at in 0..bytes.len() {
                let mut flipped = bytes.clone();
                flipped[at] ^= 1;
                assert!(refused(*id, 1, i as u32, &path, &flipped));
            }
            assert!(refused(*id, 1, i as u32, &path, &bytes[..bytes.len() - 1]));
            assert!(refused(records[(i + 1) % 5].0, 1, i as u32, &path, bytes));
            assert!(refused(*id, 0, i as u32, &path, bytes));
            assert!(refused(*id, 2, i as u32, &path, bytes));
            assert!(refused(*id, 1, (i as u32 + 1) % 5, &path, bytes));
            for p in 0..path.len() {
                let mut bad = path.clone();
                bad[p][0] ^= 1;
                assert!(refused(*id, 1, i as u32, &bad, bytes));
            }
        }
        assert!(matches!(
            RecordTable::new(vec![
                (RecordId::from_bytes([2; 16]), [0; 32]),
                (RecordId::from_bytes([1; 16]), [0; 32])
            ]),
            Err(Error::InvalidArgument(_))
        ));
    }
}
