//! The cloud: stores sealed records and index segments, merges segments, answers
//! queries — and never holds a key.
//!
//! The cloud runs on a [`Store`]: [`Cloud::new`] keeps everything in memory,
//! [`Cloud::open`] uses a [`DirStore`] directory that survives restarts and crashes. It
//! is `Send + Sync`: searches run in parallel on consistent snapshots while ingests
//! (one at a time) and merges commit. Every mutating call checks everything before it
//! changes anything: a call that fails leaves the state as it was.
//!
//! **Leaks** (what the cloud and its admin learn): the [`Manifest`] (providers, epochs,
//! generations, entry counts, record counts); each sealed record's header and size; per
//! search, the access pattern, the result count per epoch and the search pattern (see
//! [`crate::index::query`]).

use std::io::Read;
use std::path::Path;
use std::sync::RwLock;

use crate::crypto::merkle::Digest;
use crate::error::{Error, Result};
use crate::grant::{AccessRequest, Grant, Rekey};
use crate::grant::{AdminView, Broker};
use crate::index::IndexBatch;
use crate::index::manifest::{Manifest, ProviderManifest};
use crate::index::query::{ProviderResponse, Query, RecordProof, SearchResponse, evaluate};
use crate::index::search;
use crate::keys::identity::{Fingerprint, PublicIdentity};
use crate::keys::{ProviderId, RecordId};
use crate::record::header::RecordHeader;
use crate::store::journal::BrokerEvent;
use crate::store::{DirStore, MemStore, RecordInfo, Store};

/// A stored record's bytes and its proof in its provider's log.
type ProvenRecord = (Vec<u8>, RecordProof);

/// The longest sealed-record header (42 bytes and a provider id of up to 64).
const MAX_RECORD_HEADER: usize = 42 + 64;

/// Most records in one [`Cloud::put_records`] batch.
pub const MAX_BATCH_RECORDS: usize = crate::store::MAX_PACK_RECORDS;
/// The largest record a [`Cloud::put_records`] batch takes (larger ones are uploaded
/// alone, streamed).
pub const MAX_BATCHED_RECORD: usize = 1 << 20;

/// The key-less cloud server: stores sealed records and index batches, merges them,
/// answers queries, and brokers access requests and grants.
///
/// ```
/// use medvault::{Cloud, Combine, Identity, MasterKey, PatientId, Provider, ProviderId, Requester};
///
/// let cloud = Cloud::new(); // `Cloud::open(dir)` for the crash-safe directory store
/// let keys = Identity::generate_with_bits(2048)?; // the lab's: signs its uploads
/// let id = ProviderId::new("city-lab")?;
/// cloud.register_provider(id.clone(), keys.public())?;
/// let mut lab = Provider::new(id.clone(), MasterKey::generate()?, keys.signing.clone());
/// let alice = PatientId::new("+15550100")?;
/// let record = lab.add_record(&alice, b"K 4.1 mmol/L", &["potassium"])?;
/// cloud.ingest(lab.finish()?)?; // one signed epoch of the lab's encrypted index
/// cloud.put_record(record.bytes)?; // the bytes that epoch committed, nothing else
/// cloud.merge()?; // by label, without any key
///
/// let mut doctor = Requester::new();
/// doctor.trust_provider(id, keys.public().verifying)?;
/// doctor.add_patient_key(alice.clone(), lab.patient_key(&alice));
/// let query = doctor.query(&alice, &["Potassium"], Combine::Or, &cloud.manifest())?;
/// let answer = cloud.search(query.query())?; // the cloud sees no keyword, no patient
/// assert_eq!(doctor.open(&query, &answer)?.record_count(), 1);
/// # Ok::<(), medvault::Error>(())
/// ```
pub struct Cloud {
    store: Box<dyn Store>,
    /// Upload times come from here (unix seconds): the system clock, or a test's.
    clock: Box<dyn Fn() -> u64 + Send + Sync>,
    broker: RwLock<Broker>,
}

impl Default for Cloud {
    fn default() -> Self {
        Cloud::new()
    }
}

impl From<DirStore> for Cloud {
    /// A cloud on a directory store already opened (and perhaps verified).
    fn from(store: DirStore) -> Self {
        Cloud::with_store(store)
    }
}

impl From<MemStore> for Cloud {
    fn from(store: MemStore) -> Self {
        Cloud::with_store(store)
    }
}

impl std::fmt::Debug for Cloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let view = self.store.view();
        write!(
            f,
            "Cloud({} providers, {} segments, {} records)",
            view.epochs().len(),
            view.segments().len(),
            self.store.records().len()
        )
    }
}

impl Cloud {
    /// An empty cloud in memory ([`MemStore`]).
    pub fn new() -> Self {
        Cloud::with_store(MemStore::new())
    }

    /// A cloud on the directory store in `dir` ([`DirStore`]), created if missing and
    /// resumed if not.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Ok(Cloud::with_store(DirStore::open(dir)?))
    }

    /// A cloud on `store`.
    pub(crate) fn with_store(store: impl Store + 'static) -> Self {
        let mut broker = Broker::with_directory(store.directory());
        for event in store.broker_events() {
            broker.replay(&event);
        }
        Cloud {
            store: Box::new(store),
            clock: Box::new(system_clock),
            broker: RwLock::new(broker),
        }
    }

    /// The same cloud, with upload times taken from `clock` (unix seconds) instead of
    /// the system clock: for tests, and for deployments with a trusted time source.
    pub fn with_clock(mut self, clock: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        self.clock = Box::new(clock);
        self
    }

    /// The store under this cloud.
    #[cfg(test)]
    pub(crate) fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// The digest the provider's signed log commits for `record`, or
    /// [`Error::NotAuthentic`]: a record no signed batch committed is refused.
    fn committed_digest(&self, provider: &ProviderId, record: RecordId) -> Result<Digest> {
        let view = self.store.view();
        self.store
            .record_place(provider, record)
            .and_then(|place| view.logs().get(provider)?.record_digest(place))
            .ok_or_else(|| Error::NotAuthentic {
                provider: provider.to_string(),
                what: "record (no signed batch commits it)",
            })
    }

    /// Stores a sealed record under the provider and record id of its header, if a
    /// batch its provider signed (ingested before) committed exactly these bytes
    /// ([`Error::NotAuthentic`] and nothing stored otherwise). Records are immutable:
    /// storing an id twice is an error.
    pub fn put_record(&self, sealed: Vec<u8>) -> Result<(ProviderId, RecordId)> {
        let (header, _) = RecordHeader::parse(&sealed)?;
        let key = (header.provider().clone(), header.record_id());
        let expected = self.committed_digest(&key.0, key.1)?;
        self.store.put_record(
            &key.0,
            key.1,
            (self.clock)(),
            &mut sealed.as_slice(),
            &expected,
        )?;
        Ok(key)
    }

    /// Stores a batch of one provider's sealed records (1 to [`MAX_BATCH_RECORDS`], each
    /// of at most [`MAX_BATCHED_RECORD`] bytes) in one commit: all of them, or none if
    /// any is refused. Each is checked as [`Cloud::put_record`] checks it. What a
    /// provider uploads after each index batch: a directory store writes them to one
    /// file with one fsync, where single uploads cost a file and two fsyncs each
    /// (`cargo bench -p medvault-server --bench server -- uploads`). Returns each one's
    /// id, in order.
    pub fn put_records(&self, sealed: &[impl AsRef<[u8]>]) -> Result<Vec<(ProviderId, RecordId)>> {
        if sealed.is_empty() || sealed.len() > MAX_BATCH_RECORDS {
            return Err(Error::InvalidArgument(
                "a record batch holds 1 to 4096 records",
            ));
        }
        let mut provider: Option<ProviderId> = None;
        let mut checked = Vec::with_capacity(sealed.len());
        for bytes in sealed {
            let bytes = bytes.as_ref();
            if bytes.len() > MAX_BATCHED_RECORD {
                return Err(Error::InvalidArgument(
                    "a record in a batch is at most 1 MiB; upload larger ones alone",
                ));
            }
            let (header, _) = RecordHeader::parse(bytes)?;
            match &provider {
                None => provider = Some(header.provider().clone()),
                Some(p) if p == header.provider() => {}
                Some(_) => {
                    return Err(Error::InvalidArgument(
                        "a record batch holds one provider's records",
                    ));
                }
            }
            let expected = self.committed_digest(header.provider(), header.record_id())?;
            checked.push((header.record_id(), bytes, expected));
        }
        let provider = provider.ok_or(Error::InvalidArgument(
            "a record batch holds 1 to 4096 records",
        ))?;
        self.store
            .put_records(&provider, (self.clock)(), &checked)?;
        Ok(checked
            .iter()
            .map(|(id, _, _)| (provider.clone(), *id))
            .collect())
    }

    /// Stores a sealed record read from `sealed` without holding it in memory (for
    /// large images with a persistent store); returns its provider, id and size.
    pub fn put_record_from(&self, mut sealed: impl Read) -> Result<(ProviderId, RecordId, u64)> {
        let mut head = Vec::with_capacity(MAX_RECORD_HEADER);
        (&mut sealed)
            .take(MAX_RECORD_HEADER as u64)
            .read_to_end(&mut head)?;
        let (header, _) = RecordHeader::parse(&head)?;
        let (provider, record) = (header.provider().clone(), header.record_id());
        let expected = self.committed_digest(&provider, record)?;
        let size = self.store.put_record(
            &provider,
            record,
            (self.clock)(),
            &mut head.as_slice().chain(sealed),
            &expected,
        )?;
        Ok((provider, record, size))
    }

    /// The sealed record `record` of `provider`.
    pub fn record(&self, provider: &ProviderId, record: RecordId) -> Result<Option<Vec<u8>>> {
        self.store.record(provider, record)
    }

    /// The sealed record `record` of `provider` as a stream, for large records.
    pub fn record_reader(
        &self,
        provider: &ProviderId,
        record: RecordId,
    ) -> Result<Option<Box<dyn Read + Send>>> {
        self.store.record_reader(provider, record)
    }

    /// Every stored record's provider, id, size and upload time (what the admin sees
    /// of files), sorted.
    pub fn records(&self) -> Vec<RecordInfo> {
        self.store.records()
    }

    fn broker_read(&self) -> std::sync::RwLockReadGuard<'_, Broker> {
        self.broker.read().unwrap_or_else(|e| e.into_inner())
    }

    fn broker_write(&self) -> std::sync::RwLockWriteGuard<'_, Broker> {
        self.broker.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes a provider's public keys in the cloud's directory. A convenience, not
    /// a trust anchor: requesters pin provider keys (SECURITY.md, "Access requests and
    /// grants").
    ///
    /// First-come: once a provider id has keys, registering other keys under it is
    /// [`Error::AlreadyRegistered`] and changes nothing (the same keys again are
    /// accepted); a provider changes its keys with [`Cloud::rekey_provider`].
    ///
    /// The directory is kept by the store: on a [`DirStore`] a registration is durable
    /// when this returns, so a restarted cloud does not give the id to whoever registers
    /// first after the restart.
    pub fn register_provider(&self, provider: ProviderId, keys: PublicIdentity) -> Result<()> {
        let mut broker = self.broker_write();
        if broker.check_register(&provider, &keys)? {
            self.store.put_provider_keys(&provider, &keys)?;
            broker.set_keys(provider, keys);
        }
        Ok(())
    }

    /// Replaces a registered provider's keys with a [`Rekey`] statement signed by its
    /// registered signing key ([`Error::SignatureInvalid`], [`Error::NotFound`]; nothing
    /// changes on error). Its next batches are verified under the new key.
    pub fn rekey_provider(&self, rekey: &[u8]) -> Result<()> {
        let rekey = Rekey::from_bytes(rekey)?;
        let mut broker = self.broker_write();
        broker.check_rekey(&rekey)?;
        self.store
            .put_provider_keys(rekey.provider(), rekey.new_keys())?;
        broker.set_keys(rekey.provider().clone(), rekey.new_keys().clone());
        Ok(())
    }

    /// A provider's public keys from the directory.
    pub fn provider_keys(&self, provider: &ProviderId) -> Option<PublicIdentity> {
        self.broker_read().provider_keys(provider).cloned()
    }

    /// Puts a signed access request in the inbox (its signature is checked on parse).
    /// Kept by the store before this returns (durable on a [`DirStore`]).
    pub fn submit_request(&self, request: &[u8]) -> Result<[u8; 16]> {
        let parsed = AccessRequest::from_bytes(request)?;
        let mut broker = self.broker_write();
        broker.check_submit(&parsed)?;
        self.store
            .put_broker_event(&BrokerEvent::Request(request.to_vec()))?;
        let id = parsed.id();
        broker.apply_submit(parsed);
        Ok(id)
    }

    /// What the cloud admin sees: requests and stored files. No patient id, no key.
    pub fn admin_view(&self) -> AdminView {
        AdminView {
            requests: self.broker_read().summaries(),
            files: self.store.records(),
        }
    }

    /// The admin's decision on a pending request (kept by the store before this
    /// returns).
    pub fn decide_request(&self, id: [u8; 16], approve: bool) -> Result<()> {
        let mut broker = self.broker_write();
        broker.check_decide(id)?;
        self.store
            .put_broker_event(&BrokerEvent::Decision { id, approve })?;
        broker.apply_decide(id, approve);
        Ok(())
    }

    /// Approved requests waiting for `provider`'s grant.
    pub fn approved_requests(&self, provider: &ProviderId) -> Vec<AccessRequest> {
        self.broker_read().approved_for(provider)
    }

    /// Posts a grant to the mailbox: its signature must verify under the registered
    /// provider key, and it must answer an approved request of its recipient.
    /// Kept by the store before this returns.
    pub fn post_grant(&self, grant: &[u8]) -> Result<()> {
        let parsed = Grant::from_bytes(grant)?;
        let mut broker = self.broker_write();
        broker.check_grant(&parsed)?;
        self.store
            .put_broker_event(&BrokerEvent::Grant(grant.to_vec()))?;
        broker.apply_grant(parsed);
        Ok(())
    }

    /// The grants waiting for the holder of the encryption key with `fingerprint`.
    pub fn fetch_grants(&self, fingerprint: &Fingerprint) -> Vec<Grant> {
        self.broker_read().grants_for(fingerprint)
    }

    /// Parses and ingests an index batch (see [`Cloud::ingest`]).
    pub fn ingest_bytes(&self, batch: &[u8]) -> Result<()> {
        self.ingest(IndexBatch::from_bytes(batch)?)
    }

    /// Ingests a provider's batch as a new segment and the next epoch of its log. The
    /// provider must be registered ([`Error::NotFound`]) and the batch signed by its
    /// registered key over its log extended by the batch ([`Error::NotAuthentic`]); it
    /// must be the provider's next epoch ([`Error::EpochOutOfOrder`]), its generation
    /// must not go back nor rise by more than one, none of its records may have been
    /// committed before, and none of its labels may already exist
    /// ([`Error::LabelCollision`]). A refused batch changes nothing. On a persistent
    /// store the batch is durable when this returns.
    pub fn ingest(&self, batch: IndexBatch) -> Result<()> {
        let key = self
            .broker_read()
            .provider_keys(&batch.provider)
            .map(|keys| keys.verifying.clone())
            .ok_or(Error::NotFound("the provider's keys in the directory"))?;
        // The store checks the batch against its current state under its own lock.
        self.store.append(&batch, &key)
    }

    /// Merges all segments into one, by label, without any key. Searches keep running
    /// on the old segments meanwhile; batches ingested meanwhile are kept.
    pub fn merge(&self) -> Result<()> {
        self.store.merge()
    }

    /// Up to `limit` index labels of the oldest segment, in label order: what the
    /// cloud's disk holds of the index, for its admin or an auditor to look at. Only
    /// those labels are read, however large the segment.
    pub fn index_labels(&self, limit: usize) -> Result<Vec<[u8; 16]>> {
        match self.store.view().segments().first() {
            Some(segment) => segment.first_labels(limit),
            None => Ok(Vec::new()),
        }
    }

    /// The public metadata.
    pub fn manifest(&self) -> Manifest {
        let view = self.store.view();
        let mut records: std::collections::BTreeMap<ProviderId, u64> = Default::default();
        for r in self.store.records() {
            *records.entry(r.provider).or_default() += 1;
        }
        let mut providers: Vec<ProviderManifest> = view
            .epochs()
            .iter()
            .map(|(p, epochs)| ProviderManifest {
                provider: p.clone(),
                records: records.get(p).copied().unwrap_or(0),
                epochs: epochs.clone(),
                signature: view
                    .logs()
                    .get(p)
                    .map(|tip| tip.signature.clone())
                    .unwrap_or_default(),
            })
            .collect();
        for (p, count) in records {
            if !view.epochs().contains_key(&p) {
                providers.push(ProviderManifest {
                    provider: p,
                    records: count,
                    epochs: Vec::new(),
                    signature: Vec::new(),
                });
            }
        }
        providers.sort_by(|a, b| a.provider.cmp(&b.provider));
        Manifest {
            providers,
            segments: view.segments().iter().map(|s| s.len()).collect(),
        }
    }

    /// Parses and answers a query (see [`Cloud::search`]).
    pub fn search_bytes(&self, query: &[u8]) -> Result<SearchResponse> {
        self.search(&Query::from_bytes(query)?)
    }

    /// Answers a query in one call: for every provider and keyword, expands the token
    /// to the epochs that exist, probes and decrypts the matching blocks, evaluates AND /
    /// OR on the record ids, and returns, per epoch, the blocks found with the proof of
    /// them and of where each list ends, and the sealed records with theirs. A token
    /// covering 16 epochs or more is expanded and probed on all cores, so is a list
    /// longer than 256 blocks, and 16 records or more are read on all cores; the answer
    /// is the same, in the same order, and so is the error if one occurs.
    pub fn search(&self, query: &Query) -> Result<SearchResponse> {
        let view = self.store.view();
        let mut providers = Vec::with_capacity(query.providers.len());
        for tokens in &query.providers {
            let epochs = view
                .epochs()
                .get(&tokens.provider)
                .ok_or(Error::NotFound("a provider named in the query"))?;
            let search::Found { hits, lists } = search::postings(&view, tokens, epochs)?;
            let selected: Vec<RecordId> = evaluate(&hits, query.combine).into_iter().collect();
            // Every stored record was committed by a signed batch (`put_record`); one
            // committed after this search's snapshot cannot be proven in it and is
            // listed as missing, as it would have been a moment earlier. The store reads
            // the others (on all cores, or in one round trip); the first failure in id
            // order is reported.
            let tip = view.logs().get(&tokens.provider);
            let proven: Vec<Option<RecordProof>> = selected
                .iter()
                .map(|id| {
                    let place = self.store.record_place(&tokens.provider, *id)?;
                    let (_, path) = tip?.record_at(place)?;
                    Some(RecordProof {
                        epoch: place.0,
                        index: place.1,
                        path,
                    })
                })
                .collect();
            let wanted: Vec<RecordId> = selected
                .iter()
                .zip(&proven)
                .filter(|(_, proof)| proof.is_some())
                .map(|(id, _)| *id)
                .collect();
            let mut read = self
                .store
                .records_whole(&tokens.provider, &wanted)
                .into_iter();
            let fetched: Vec<Result<Option<ProvenRecord>>> = proven
                .into_iter()
                .map(|proof| match proof {
                    None => Ok(None),
                    Some(proof) => Ok(read
                        .next()
                        .ok_or_else(|| Error::Corrupt {
                            what: "store: fewer records read than asked".into(),
                        })??
                        .map(|bytes| (bytes, proof))),
                })
                .collect();
            let mut records = Vec::new();
            let mut proofs = Vec::new();
            let mut missing = Vec::new();
            for (id, fetched) in selected.into_iter().zip(fetched) {
                match fetched? {
                    Some((bytes, proof)) => {
                        records.push((id, bytes));
                        proofs.push(proof);
                    }
                    None => missing.push(id),
                }
            }
            providers.push(ProviderResponse {
                provider: tokens.provider.clone(),
                lists,
                records,
                proofs,
                missing,
            });
        }
        Ok(SearchResponse { providers })
    }
}

/// The system clock in unix seconds (0 before 1970, which no honest clock reports).
fn system_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
#[path = "cloud_tests.rs"]
mod tests;
