//! Queries and search responses: what a requester sends the cloud, and what comes back.
//!
//! A [`Query`] holds, for each provider, one token per keyword; a token is the GGM cover
//! of the epochs the requester may search there (at most 32 nodes per key generation).
//! The cloud expands every node to the leaves of the epochs that exist, probes
//! `label_0, label_1, …` in each epoch until a miss, decrypts the blocks it found and
//! returns the postings with the sealed records they select, grouped by provider.
//!
//! **Leaks** to the cloud, per search: which entries match (the access pattern) and so
//! the record ids returned, the result count per epoch, which postings are deletions, and
//! whether the same keyword was searched before for the same patient (equal tokens: the
//! search pattern). Not the keyword, not the patient.

use std::collections::BTreeSet;

use crate::error::{Error, Result};
use crate::ggm::{DEPTH, NodeKey};
use crate::index::Op;
use crate::keys::{ProviderId, RecordId};
use crate::wire::{CountWidth, Reader, put_preamble};

/// Magic bytes of a query.
pub const QUERY_MAGIC: &[u8; 4] = b"MVQY";
/// Magic bytes of a search response.
pub const RESPONSE_MAGIC: &[u8; 4] = b"MVSR";
/// Version of the query and response formats.
pub const QUERY_VERSION: u8 = 1;
const ALG_INDEX_V1: u8 = crate::index::ALG_GGM_AES256_PACKED4;

/// Most keywords in one query.
pub const MAX_KEYWORDS: usize = 16;
/// Most providers in one query.
pub const MAX_PROVIDERS: usize = 255;

/// How the keywords of a query combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    /// Records that have every keyword.
    And,
    /// Records that have at least one keyword.
    Or,
}

impl Combine {
    fn code(self) -> u8 {
        match self {
            Combine::And => 1,
            Combine::Or => 2,
        }
    }
}

/// One node of a token: a GGM subtree root that covers a dyadic range of epochs.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenNode {
    pub(crate) depth: u8,
    pub(crate) index: u32,
    pub(crate) key: NodeKey,
}

impl std::fmt::Debug for TokenNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TokenNode(depth {}, index {}, <redacted>)",
            self.depth, self.index
        )
    }
}

impl PartialEq for NodeKey {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl Eq for NodeKey {}

/// The tokens for one provider: one per keyword, in the query's keyword order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderTokens {
    pub(crate) provider: ProviderId,
    pub(crate) tokens: Vec<Vec<TokenNode>>,
}

/// A search across providers, as the cloud receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub(crate) combine: Combine,
    pub(crate) keyword_count: usize,
    pub(crate) providers: Vec<ProviderTokens>,
}

impl Query {
    /// AND or OR.
    pub fn combine(&self) -> Combine {
        self.combine
    }

    /// The providers searched.
    pub fn providers(&self) -> impl Iterator<Item = &ProviderId> {
        self.providers.iter().map(|p| &p.provider)
    }

    /// The wire form (`FORMAT.md`, "Query").
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_preamble(&mut out, QUERY_MAGIC, QUERY_VERSION, ALG_INDEX_V1);
        out.push(self.combine.code());
        out.push(self.keyword_count as u8);
        out.push(self.providers.len() as u8);
        for p in &self.providers {
            p.provider.encode_into(&mut out);
            for token in &p.tokens {
                out.push(token.len() as u8);
                for node in token {
                    out.push(node.depth);
                    out.extend_from_slice(&node.index.to_be_bytes());
                    out.extend_from_slice(&node.key.0);
                }
            }
        }
        out
    }

    /// Parses a query. Every token's nodes must be valid tree nodes in ascending,
    /// non-overlapping epoch order.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "query");
        r.preamble(QUERY_MAGIC, QUERY_VERSION, &[ALG_INDEX_V1])?;
        let combine = match r.u8("combine")? {
            1 => Combine::And,
            2 => Combine::Or,
            _ => return Err(r.malformed("unknown combine operator")),
        };
        let keyword_count = usize::from(r.u8("keyword count")?);
        if keyword_count == 0 || keyword_count > MAX_KEYWORDS {
            return Err(r.malformed("keyword count out of range"));
        }
        let provider_count = r.count(CountWidth::U8, 2 + keyword_count, "provider count")?;
        if provider_count == 0 {
            return Err(r.malformed("no provider"));
        }
        let mut providers: Vec<ProviderTokens> = Vec::with_capacity(provider_count);
        for _ in 0..provider_count {
            let provider = ProviderId::decode(&mut r)?;
            if providers.iter().any(|p| p.provider == provider) {
                return Err(r.malformed("provider repeated"));
            }
            let mut tokens = Vec::with_capacity(keyword_count);
            for _ in 0..keyword_count {
                let node_count = r.count(CountWidth::U8, 37, "node count")?;
                let mut nodes: Vec<TokenNode> = Vec::with_capacity(node_count);
                let mut next_free = 0u64;
                for _ in 0..node_count {
                    let depth = r.u8("node depth")?;
                    let index = r.u32("node index")?;
                    let key = NodeKey(r.array("node key")?);
                    // Depth 0 (the keyword root) would open every future epoch: never sent.
                    if depth == 0 || depth > DEPTH || (depth < 32 && u64::from(index) >> depth != 0)
                    {
                        return Err(r.malformed("token node outside the tree"));
                    }
                    let (first, width) = crate::ggm::span(depth, index);
                    if first < next_free {
                        return Err(r.malformed("token nodes overlap or are out of order"));
                    }
                    next_free = first + width;
                    nodes.push(TokenNode { depth, index, key });
                }
                tokens.push(nodes);
            }
            providers.push(ProviderTokens { provider, tokens });
        }
        r.finish()?;
        Ok(Query {
            combine,
            keyword_count,
            providers,
        })
    }
}

/// One decrypted posting as the cloud found it: epoch, record, add or delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// The epoch the posting was uploaded in.
    pub epoch: u32,
    /// The record.
    pub record: RecordId,
    /// Add or delete.
    pub op: Op,
}

/// The cloud's answer for one provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderResponse {
    /// The provider.
    pub provider: ProviderId,
    /// Per keyword (in query order), the postings found, in epoch order.
    pub hits: Vec<Vec<Hit>>,
    /// The sealed records of the result set, by record id, ascending.
    pub records: Vec<(RecordId, Vec<u8>)>,
    /// Records of the result set that the cloud does not hold.
    pub missing: Vec<RecordId>,
}

/// The cloud's answer to a [`Query`], grouped by provider in query order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchResponse {
    /// One entry per provider of the query.
    pub providers: Vec<ProviderResponse>,
}

impl SearchResponse {
    /// The wire form (`FORMAT.md`, "Search response").
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_preamble(&mut out, RESPONSE_MAGIC, QUERY_VERSION, ALG_INDEX_V1);
        out.push(self.providers.len() as u8);
        for p in &self.providers {
            p.provider.encode_into(&mut out);
            out.push(p.hits.len() as u8);
            for list in &p.hits {
                out.extend_from_slice(&(list.len() as u32).to_be_bytes());
                for hit in list {
                    out.extend_from_slice(&hit.epoch.to_be_bytes());
                    out.push(match hit.op {
                        Op::Add => 1,
                        Op::Delete => 2,
                    });
                    out.extend_from_slice(hit.record.as_bytes());
                }
            }
            out.extend_from_slice(&(p.records.len() as u32).to_be_bytes());
            for (id, sealed) in &p.records {
                out.extend_from_slice(id.as_bytes());
                out.extend_from_slice(&(sealed.len() as u64).to_be_bytes());
                out.extend_from_slice(sealed);
            }
            out.extend_from_slice(&(p.missing.len() as u32).to_be_bytes());
            for id in &p.missing {
                out.extend_from_slice(id.as_bytes());
            }
        }
        out
    }

    /// Parses a response.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "search response");
        r.preamble(RESPONSE_MAGIC, QUERY_VERSION, &[ALG_INDEX_V1])?;
        let provider_count = r.count(CountWidth::U8, 2 + 1 + 8, "provider count")?;
        let mut providers = Vec::with_capacity(provider_count);
        for _ in 0..provider_count {
            let provider = ProviderId::decode(&mut r)?;
            let keyword_count = usize::from(r.u8("keyword count")?);
            if keyword_count == 0 || keyword_count > MAX_KEYWORDS {
                return Err(r.malformed("keyword count out of range"));
            }
            let mut hits = Vec::with_capacity(keyword_count);
            for _ in 0..keyword_count {
                let n = r.count(CountWidth::U32, 21, "hit count")?;
                let mut list = Vec::with_capacity(n);
                for _ in 0..n {
                    let epoch = r.u32("hit epoch")?;
                    let op = match r.u8("hit op")? {
                        1 => Op::Add,
                        2 => Op::Delete,
                        _ => return Err(r.malformed("unknown posting op")),
                    };
                    list.push(Hit {
                        epoch,
                        op,
                        record: RecordId::from_bytes(r.array("hit record id")?),
                    });
                }
                hits.push(list);
            }
            let n = r.count(CountWidth::U32, 24, "record count")?;
            let mut records = Vec::with_capacity(n);
            for _ in 0..n {
                let id = RecordId::from_bytes(r.array("record id")?);
                let len = usize::try_from(r.u64("record length")?)
                    .map_err(|_| r.malformed("record too long"))?;
                records.push((id, r.take(len, "sealed record")?.to_vec()));
            }
            let n = r.count(CountWidth::U32, 16, "missing count")?;
            let missing = (0..n)
                .map(|_| r.array("missing record id").map(RecordId::from_bytes))
                .collect::<Result<_>>()?;
            providers.push(ProviderResponse {
                provider,
                hits,
                records,
                missing,
            });
        }
        r.finish()?;
        Ok(SearchResponse { providers })
    }
}

/// The records a set of posting lists selects: per list, a record is in if its last
/// posting (in epoch order) is an add; lists combine by AND or OR.
pub fn evaluate(lists: &[Vec<Hit>], combine: Combine) -> BTreeSet<RecordId> {
    let sets = lists.iter().map(|list| {
        let mut present = BTreeSet::new();
        for hit in list {
            match hit.op {
                Op::Add => present.insert(hit.record),
                Op::Delete => present.remove(&hit.record),
            };
        }
        present
    });
    let mut result: Option<BTreeSet<RecordId>> = None;
    for set in sets {
        result = Some(match (result, combine) {
            (None, _) => set,
            (Some(acc), Combine::And) => acc.intersection(&set).copied().collect(),
            (Some(acc), Combine::Or) => acc.union(&set).copied().collect(),
        });
    }
    result.unwrap_or_default()
}

/// Checks that hits are in epoch order, as the evaluation requires.
pub(crate) fn check_epoch_order(list: &[Hit]) -> Result<()> {
    if list.windows(2).all(|w| w[0].epoch <= w[1].epoch) {
        Ok(())
    } else {
        Err(Error::InconsistentResponse("postings out of epoch order"))
    }
}
