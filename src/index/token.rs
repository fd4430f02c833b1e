//! The requester's side of a search: the token for one keyword at one provider, and
//! the check of what the cloud answered with it.
//!
//! A token is, for each key generation the requester holds, the minimal GGM cover of
//! that generation's epochs as the provider's *verified* signed log lists them, in
//! epoch order (generations occupy ascending, disjoint epoch ranges). Nothing in it
//! covers an epoch the provider had not signed when it was built (forward privacy does
//! not trust the cloud's count), nor a generation the requester holds no key for
//! (revocation).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::entry::EpochKey;
use super::keyword::MAX_KEYWORD_LEN;
use super::log::{self, VerifiedLog};
use super::manifest::generation_epochs;
use super::query::{Combine, Hit, ProviderResponse, ProviderTokens, TokenNode, evaluate};
use super::search;
use crate::crypto::ggm;
use crate::error::{Error, Result};
use crate::keys::{PatientKey, RecordId};

/// Most nodes in one token (the count is one byte on the wire).
const MAX_TOKEN_NODES: usize = 255;

/// The token of normalized `keyword` over every epoch of the verified `log` made under
/// a generation in `generations`.
pub(crate) fn build(
    generations: &BTreeMap<u32, PatientKey>,
    log: &VerifiedLog,
    keyword: &str,
) -> Result<Vec<TokenNode>> {
    debug_assert!(keyword.len() <= MAX_KEYWORD_LEN);
    let mut nodes = Vec::new();
    for (&generation, key) in generations {
        let Some((first, end)) = generation_epochs(&log.epochs, generation) else {
            continue;
        };
        let root = key.search_key().keyword_root(keyword);
        for (depth, index) in ggm::cover(u64::from(first), u64::from(end)) {
            nodes.push(TokenNode {
                depth,
                index,
                key: ggm::node(&root, depth, index),
            });
        }
    }
    if nodes.len() > MAX_TOKEN_NODES {
        return Err(Error::InvalidArgument(
            "too many key generations for one token",
        ));
    }
    Ok(nodes)
}

/// Checks the shape of one provider's `answer` against the `tokens` sent for
/// `keywords` keywords and the provider's verified `log`: the same provider and keyword
/// count, one proof per record.
pub(crate) fn check_shape(
    tokens: &ProviderTokens,
    log: &VerifiedLog,
    keywords: usize,
    answer: &ProviderResponse,
) -> Result<()> {
    if answer.provider != tokens.provider
        || answer.provider != log.provider
        || answer.lists.len() != keywords
        || tokens.tokens.len() != keywords
    {
        return Err(Error::InconsistentResponse(
            "providers or keywords differ from the query",
        ));
    }
    if answer.proofs.len() != answer.records.len() {
        return Err(Error::InconsistentResponse(
            "not one proof per returned record",
        ));
    }
    Ok(())
}

/// The postings of every keyword's list in `answer`, each proven against `log`
/// ([`log::verify_list`]): the answer must prove every epoch each token covers (the
/// requester expands its own token nodes, as the cloud does, up to the signed epoch
/// count), and nothing else ([`Error::NotAuthentic`] otherwise). Many epochs are
/// checked on all cores, as the cloud probes them ([`search::try_expand`]); the error
/// reported is the first in epoch order.
pub(crate) fn verified_postings(
    tokens: &ProviderTokens,
    log: &VerifiedLog,
    answer: &ProviderResponse,
) -> Result<Vec<Vec<Hit>>> {
    let forged = |what| Error::NotAuthentic {
        provider: log.provider.to_string(),
        what,
    };
    let limit = u64::from(log.epoch_count());
    let mut lists = Vec::with_capacity(tokens.tokens.len());
    for (token, proofs) in tokens.tokens.iter().zip(&answer.lists) {
        // In strictly ascending epoch order (as the parser requires of the wire form),
        // each expanded epoch finds its own proof, and as many epochs as proofs means
        // none is left over.
        if !proofs.windows(2).all(|w| w[0].epoch < w[1].epoch) {
            return Err(forged("posting lists (epochs repeated or out of order)"));
        }
        let checked = AtomicUsize::new(0);
        let mut hits = Vec::new();
        for node in token {
            search::try_expand(
                &node.key,
                node.depth,
                node.index,
                limit,
                &mut hits,
                &|epoch, leaf, out| {
                    let proof = proofs
                        .binary_search_by_key(&epoch, |p| p.epoch)
                        .map(|at| &proofs[at])
                        .map_err(|_| forged("posting lists (an epoch left out)"))?;
                    let mut postings = Vec::new();
                    log::verify_list(log, &EpochKey::new(leaf), proof, &mut postings)?;
                    out.extend(
                        postings
                            .into_iter()
                            .map(|(record, op)| Hit { epoch, record, op }),
                    );
                    checked.fetch_add(1, Ordering::Relaxed);
                    Ok::<(), Error>(())
                },
            )?;
        }
        if checked.into_inner() != proofs.len() {
            return Err(forged("posting lists (an epoch the token does not cover)"));
        }
        lists.push(hits);
    }
    Ok(lists)
}

/// Checks the contents of an answer of the right shape ([`check_shape`]): every record
/// proven to be the one the provider committed ([`Error::NotAuthentic`]; `leaves` are
/// the records' leaves, `log::record_leaf`), and exactly the records (returned or
/// listed missing) that the verified postings `hits` select under `combine`.
pub(crate) fn check_contents(
    log: &VerifiedLog,
    combine: Combine,
    hits: &[Vec<Hit>],
    answer: &ProviderResponse,
    leaves: &[crate::crypto::merkle::Digest],
) -> Result<()> {
    log::verify_records(log, &answer.records, &answer.proofs, leaves)?;
    let expected = evaluate(hits, combine);
    let mut returned: Vec<RecordId> = answer.records.iter().map(|(id, _)| *id).collect();
    returned.extend(&answer.missing);
    returned.sort();
    if !returned.iter().eq(expected.iter()) {
        return Err(Error::InconsistentResponse(
            "records differ from what the postings select",
        ));
    }
    Ok(())
}
