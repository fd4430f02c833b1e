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

use super::keyword::MAX_KEYWORD_LEN;
use super::log::{self, VerifiedLog};
use super::manifest::generation_epochs;
use super::query::{
    Combine, ProviderResponse, ProviderTokens, TokenNode, check_epoch_order, evaluate,
};
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
/// count, every list in epoch order and inside the signed epochs, one proof per record.
pub(crate) fn check_shape(
    tokens: &ProviderTokens,
    log: &VerifiedLog,
    keywords: usize,
    answer: &ProviderResponse,
) -> Result<()> {
    if answer.provider != tokens.provider
        || answer.provider != log.provider
        || answer.hits.len() != keywords
    {
        return Err(Error::InconsistentResponse(
            "providers or keywords differ from the query",
        ));
    }
    for list in &answer.hits {
        check_epoch_order(list)?;
        if list.iter().any(|hit| hit.epoch >= log.epoch_count()) {
            return Err(Error::NotAuthentic {
                provider: log.provider.to_string(),
                what: "posting (its epoch is not in the signed log)",
            });
        }
    }
    if answer.proofs.len() != answer.records.len() {
        return Err(Error::InconsistentResponse(
            "not one proof per returned record",
        ));
    }
    Ok(())
}

/// Checks the contents of an answer of the right shape ([`check_shape`]): every record
/// proven to be the one the provider committed ([`Error::NotAuthentic`]; `leaves` are
/// the records' leaves, `log::record_leaf`), and exactly the records (returned or
/// listed missing) that the postings select under `combine`.
pub(crate) fn check_contents(
    log: &VerifiedLog,
    combine: Combine,
    answer: &ProviderResponse,
    leaves: &[crate::crypto::merkle::Digest],
) -> Result<()> {
    log::verify_records(log, &answer.records, &answer.proofs, leaves)?;
    let expected = evaluate(&answer.hits, combine);
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
