//! The cloud: stores sealed records and index segments, merges segments, answers
//! queries — and never holds a key.
//!
//! This is the in-memory cloud; it is `Send + Sync` (readers share, one writer at a
//! time). Every mutating call checks everything before it changes anything: a call that
//! fails leaves the state as it was.
//!
//! **Leaks** (what the cloud and its admin learn): the [`Manifest`] (providers, epochs,
//! generations, entry counts, record counts); each sealed record's header and size; per
//! search, the access pattern, the result count per epoch and the search pattern (see
//! [`crate::query`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use crate::broker::{AdminView, Broker, FileDetails};
use crate::error::{Error, Result};
use crate::ggm;
use crate::grant::{AccessRequest, Grant, now_unix};
use crate::identity::{Fingerprint, PublicIdentity};
use crate::index::{EpochKey, IndexBatch, Posting, Segment, Value};
use crate::keys::{ProviderId, RecordId};
use crate::manifest::{EpochInfo, Manifest, ProviderManifest};
use crate::query::{Hit, ProviderResponse, Query, SearchResponse, evaluate};
use crate::seal::RecordHeader;

#[derive(Default)]
struct State {
    epochs: BTreeMap<ProviderId, Vec<EpochInfo>>,
    segments: Vec<Arc<Segment>>,
    records: HashMap<(ProviderId, RecordId), StoredRecord>,
}

struct StoredRecord {
    bytes: Arc<Vec<u8>>,
    uploaded_at: u64,
}

impl State {
    fn lookup(&self, label: &crate::index::Label) -> Option<&Value> {
        self.segments.iter().find_map(|s| s.get(label))
    }
}

/// The honest-but-curious cloud server.
#[derive(Default)]
pub struct Cloud {
    state: RwLock<State>,
    broker: RwLock<Broker>,
}

impl std::fmt::Debug for Cloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.read();
        write!(
            f,
            "Cloud({} providers, {} segments, {} records)",
            s.epochs.len(),
            s.segments.len(),
            s.records.len()
        )
    }
}

impl Cloud {
    /// An empty cloud.
    pub fn new() -> Self {
        Cloud::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-changed (every
        // mutation is a single assignment after all checks), so a poisoned lock is safe.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores a sealed record under the provider and record id of its header.
    /// Records are immutable: storing an id twice is an error.
    pub fn put_record(&self, sealed: Vec<u8>) -> Result<(ProviderId, RecordId)> {
        let (header, _) = RecordHeader::parse(&sealed)?;
        let key = (header.provider().clone(), header.record_id());
        let mut state = self.write();
        if state.records.contains_key(&key) {
            return Err(Error::InvalidArgument(
                "a record with this id is already stored",
            ));
        }
        state.records.insert(
            key.clone(),
            StoredRecord {
                bytes: Arc::new(sealed),
                uploaded_at: now_unix(),
            },
        );
        Ok(key)
    }

    /// The sealed record `record` of `provider`.
    pub fn record(&self, provider: &ProviderId, record: RecordId) -> Option<Arc<Vec<u8>>> {
        self.read()
            .records
            .get(&(provider.clone(), record))
            .map(|stored| stored.bytes.clone())
    }

    /// Every stored record's provider, id and size (what the admin sees of files).
    pub fn record_list(&self) -> Vec<(ProviderId, RecordId, usize)> {
        let mut list: Vec<_> = self
            .read()
            .records
            .iter()
            .map(|((p, r), stored)| (p.clone(), *r, stored.bytes.len()))
            .collect();
        list.sort();
        list
    }

    fn broker_read(&self) -> std::sync::RwLockReadGuard<'_, Broker> {
        self.broker.read().unwrap_or_else(|e| e.into_inner())
    }

    fn broker_write(&self) -> std::sync::RwLockWriteGuard<'_, Broker> {
        self.broker.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes a provider's public keys in the cloud's directory (see
    /// [`crate::broker`] on pinning).
    pub fn register_provider(&self, provider: ProviderId, keys: PublicIdentity) {
        self.broker_write().register(provider, keys);
    }

    /// A provider's public keys from the directory.
    pub fn provider_keys(&self, provider: &ProviderId) -> Option<PublicIdentity> {
        self.broker_read().provider_keys(provider).cloned()
    }

    /// Puts a signed access request in the inbox (its signature is checked on parse).
    pub fn submit_request(&self, request: &[u8]) -> Result<[u8; 16]> {
        let request = AccessRequest::from_bytes(request)?;
        self.broker_write().submit(request)
    }

    /// What the cloud admin sees: requests and stored files. No patient id, no key.
    pub fn admin_view(&self) -> AdminView {
        let mut files: Vec<FileDetails> = self
            .read()
            .records
            .iter()
            .map(|((provider, record), stored)| FileDetails {
                provider: provider.clone(),
                record: *record,
                size: stored.bytes.len() as u64,
                uploaded_at: stored.uploaded_at,
            })
            .collect();
        files.sort_by(|a, b| (&a.provider, a.record).cmp(&(&b.provider, b.record)));
        AdminView {
            requests: self.broker_read().summaries(),
            files,
        }
    }

    /// The admin's decision on a pending request.
    pub fn decide_request(&self, id: [u8; 16], approve: bool) -> Result<()> {
        self.broker_write().decide(id, approve)
    }

    /// Approved requests waiting for `provider`'s grant.
    pub fn approved_requests(&self, provider: &ProviderId) -> Vec<AccessRequest> {
        self.broker_read().approved_for(provider)
    }

    /// Posts a grant to the mailbox: its signature must verify under the registered
    /// provider key, and it must answer an approved request of its recipient.
    pub fn post_grant(&self, grant: &[u8]) -> Result<()> {
        let grant = Grant::from_bytes(grant)?;
        self.broker_write().post_grant(grant)
    }

    /// The grants waiting for the holder of the encryption key with `fingerprint`.
    pub fn fetch_grants(&self, fingerprint: &Fingerprint) -> Vec<Grant> {
        self.broker_read().grants_for(fingerprint)
    }

    /// Parses and ingests an index batch (see [`Cloud::ingest`]).
    pub fn ingest_bytes(&self, batch: &[u8]) -> Result<()> {
        self.ingest(IndexBatch::from_bytes(batch)?)
    }

    /// Ingests a provider's batch as a new segment. The batch must be the provider's
    /// next epoch ([`Error::EpochOutOfOrder`] otherwise), its generation must not go
    /// back, and none of its labels may already exist ([`Error::LabelCollision`]).
    pub fn ingest(&self, batch: IndexBatch) -> Result<()> {
        let mut state = self.write();
        let epochs = state.epochs.get(&batch.provider);
        let expected = epochs.map_or(0, |e| e.len() as u32);
        if batch.epoch != expected {
            return Err(Error::EpochOutOfOrder {
                expected,
                found: batch.epoch,
            });
        }
        if let Some(current) = epochs.and_then(|e| e.last()).map(|e| e.generation)
            && batch.generation < current
        {
            return Err(Error::GenerationRegressed {
                current,
                found: batch.generation,
            });
        }
        if batch
            .table
            .labels()
            .iter()
            .any(|l| state.lookup(l).is_some())
        {
            return Err(Error::LabelCollision);
        }
        let info = EpochInfo {
            generation: batch.generation,
            entries: batch.table.len() as u32,
        };
        state.epochs.entry(batch.provider).or_default().push(info);
        state.segments.push(Arc::new(Segment::new(batch.table)));
        Ok(())
    }

    /// Merges all segments into one, by label, without any key.
    pub fn merge(&self) -> Result<()> {
        let segments = self.read().segments.clone();
        if segments.len() < 2 {
            return Ok(());
        }
        let merged = Segment::merge(&segments.iter().map(Arc::as_ref).collect::<Vec<_>>())?;
        let mut state = self.write();
        // Segments ingested while merging stay, after the merged one.
        let newer = state.segments.split_off(segments.len());
        state.segments = std::iter::once(Arc::new(merged)).chain(newer).collect();
        Ok(())
    }

    /// The segments, oldest first.
    pub fn segments(&self) -> Vec<Arc<Segment>> {
        self.read().segments.clone()
    }

    /// The public metadata.
    pub fn manifest(&self) -> Manifest {
        let state = self.read();
        let mut records: HashMap<&ProviderId, u64> = HashMap::new();
        for (p, _) in state.records.keys() {
            *records.entry(p).or_default() += 1;
        }
        let mut providers: Vec<ProviderManifest> = state
            .epochs
            .iter()
            .map(|(p, epochs)| ProviderManifest {
                provider: p.clone(),
                records: records.get(p).copied().unwrap_or(0),
                epochs: epochs.clone(),
            })
            .collect();
        for (p, count) in records {
            if !state.epochs.contains_key(p) {
                providers.push(ProviderManifest {
                    provider: p.clone(),
                    records: count,
                    epochs: Vec::new(),
                });
            }
        }
        providers.sort_by(|a, b| a.provider.cmp(&b.provider));
        Manifest {
            providers,
            segments: state.segments.iter().map(|s| s.len() as u64).collect(),
        }
    }

    /// Parses and answers a query (see [`Cloud::search`]).
    pub fn search_bytes(&self, query: &[u8]) -> Result<SearchResponse> {
        self.search(&Query::from_bytes(query)?)
    }

    /// Answers a query in one call: for every provider and keyword, expands the token
    /// to the epochs that exist, probes and decrypts the matching blocks, evaluates AND /
    /// OR on the record ids, and returns the postings and the sealed records.
    pub fn search(&self, query: &Query) -> Result<SearchResponse> {
        let state = self.read();
        let mut providers = Vec::with_capacity(query.providers.len());
        for tokens in &query.providers {
            let epochs = state
                .epochs
                .get(&tokens.provider)
                .ok_or(Error::NotFound("a provider named in the query"))?;
            let mut hits = Vec::with_capacity(tokens.tokens.len());
            for token in &tokens.tokens {
                let mut list = Vec::new();
                let mut failure = None;
                for node in token {
                    ggm::expand(
                        &node.key,
                        node.depth,
                        node.index,
                        epochs.len() as u64,
                        &mut |epoch, leaf| {
                            if failure.is_none()
                                && let Err(e) = probe(
                                    &state,
                                    epochs[epoch as usize].entries,
                                    epoch,
                                    leaf,
                                    &mut list,
                                )
                            {
                                failure = Some(e);
                            }
                        },
                    );
                }
                if let Some(e) = failure {
                    return Err(e);
                }
                hits.push(list);
            }
            let selected = evaluate(&hits, query.combine);
            let mut records = Vec::new();
            let mut missing = Vec::new();
            for id in selected {
                match state.records.get(&(tokens.provider.clone(), id)) {
                    Some(stored) => records.push((id, stored.bytes.as_ref().clone())),
                    None => missing.push(id),
                }
            }
            providers.push(ProviderResponse {
                provider: tokens.provider.clone(),
                hits,
                records,
                missing,
            });
        }
        Ok(SearchResponse { providers })
    }
}

/// Probes `label_0, label_1, …` of one epoch until a miss (or the epoch's entry count,
/// a bound no honest list exceeds) and appends the decrypted postings.
fn probe(
    state: &State,
    entries: u32,
    epoch: u32,
    leaf: &ggm::NodeKey,
    out: &mut Vec<Hit>,
) -> Result<()> {
    let key = EpochKey::new(leaf);
    let mut postings: Vec<Posting> = Vec::new();
    for i in 0..entries {
        let Some(value) = state.lookup(&key.label(i)) else {
            break;
        };
        key.open_block(i, value, &mut postings)?;
    }
    out.extend(
        postings
            .into_iter()
            .map(|(record, op)| Hit { epoch, record, op }),
    );
    Ok(())
}
