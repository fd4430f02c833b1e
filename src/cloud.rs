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
//! [`crate::query`]).

use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use rayon::prelude::*;

use crate::broker::{AdminView, Broker, FileDetails};
use crate::error::{Error, Result};
use crate::ggm;
use crate::grant::{AccessRequest, Grant, now_unix};
use crate::identity::{Fingerprint, PublicIdentity};
use crate::index::{ENTRIES_PER_BLOCK, EpochKey, IndexBatch, Posting, Value};
use crate::keys::{ProviderId, RecordId};
use crate::manifest::{EpochInfo, Manifest, ProviderManifest};
use crate::query::{Hit, ProviderResponse, Query, SearchResponse, evaluate};
use crate::seal::RecordHeader;
use crate::store::{DirStore, MemStore, RecordInfo, SegmentSource, Store, View};

/// Batches with at least this many labels are checked for collisions on all cores.
const PARALLEL_CHECK_MIN_LABELS: usize = 4096;

/// The longest sealed-record header (42 bytes and a provider id of up to 64).
const MAX_RECORD_HEADER: usize = 42 + 64;

/// The honest-but-curious cloud server, on any [`Store`].
pub struct Cloud {
    store: Box<dyn Store>,
    /// Ingest checks a batch against the current view, then appends: one at a time.
    ingesting: Mutex<()>,
    broker: RwLock<Broker>,
}

impl Default for Cloud {
    fn default() -> Self {
        Cloud::new()
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
    pub fn with_store(store: impl Store + 'static) -> Self {
        Cloud {
            store: Box::new(store),
            ingesting: Mutex::new(()),
            broker: RwLock::new(Broker::default()),
        }
    }

    /// The store under this cloud.
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// Stores a sealed record under the provider and record id of its header.
    /// Records are immutable: storing an id twice is an error.
    pub fn put_record(&self, sealed: Vec<u8>) -> Result<(ProviderId, RecordId)> {
        let (header, _) = RecordHeader::parse(&sealed)?;
        let key = (header.provider().clone(), header.record_id());
        self.store
            .put_record(&key.0, key.1, now_unix(), &mut sealed.as_slice())?;
        Ok(key)
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
        let size = self.store.put_record(
            &provider,
            record,
            now_unix(),
            &mut head.as_slice().chain(sealed),
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
        let files: Vec<FileDetails> = self
            .store
            .records()
            .into_iter()
            .map(|r| FileDetails {
                provider: r.provider,
                record: r.record,
                size: r.size,
                uploaded_at: r.uploaded_at,
            })
            .collect();
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
    /// On a persistent store the batch is durable when this returns.
    pub fn ingest(&self, batch: IndexBatch) -> Result<()> {
        let _one_ingest = self.ingesting.lock().unwrap_or_else(|e| e.into_inner());
        let view = self.store.view();
        crate::store::check_next_epoch(view.epochs(), &batch.provider, batch.epoch)?;
        let epochs = view.epochs().get(&batch.provider);
        if let Some(current) = epochs.and_then(|e| e.last()).map(|e| e.generation)
            && batch.generation < current
        {
            return Err(Error::GenerationRegressed {
                current,
                found: batch.generation,
            });
        }
        // Every label against every segment's Bloom filter (and a block read for the
        // ~1% it does not rule out): large batches use all cores.
        let fresh = |label: &crate::index::Label| match view.lookup(label)? {
            Some(_) => Err(Error::LabelCollision),
            None => Ok(()),
        };
        let labels = batch.table.labels();
        if labels.len() >= PARALLEL_CHECK_MIN_LABELS {
            labels.par_iter().try_for_each(fresh)?;
        } else {
            labels.iter().try_for_each(fresh)?;
        }
        let info = EpochInfo {
            generation: batch.generation,
            entries: batch.table.len() as u32,
        };
        self.store
            .append(&batch.provider, batch.epoch, info, &batch.table)
    }

    /// Merges all segments into one, by label, without any key. Searches keep running
    /// on the old segments meanwhile; batches ingested meanwhile are kept.
    pub fn merge(&self) -> Result<()> {
        self.store.merge()
    }

    /// The segments, oldest first.
    pub fn segments(&self) -> Vec<Arc<dyn SegmentSource>> {
        self.store.view().segments().to_vec()
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
            })
            .collect();
        for (p, count) in records {
            if !view.epochs().contains_key(&p) {
                providers.push(ProviderManifest {
                    provider: p,
                    records: count,
                    epochs: Vec::new(),
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
    /// OR on the record ids, and returns the postings and the sealed records. A token
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
            let mut hits = Vec::with_capacity(tokens.tokens.len());
            for token in &tokens.tokens {
                // Many epochs are probed on all cores; the hits keep epoch order.
                let mut list = Vec::new();
                for node in token {
                    ggm::try_expand(
                        &node.key,
                        node.depth,
                        node.index,
                        epochs.len() as u64,
                        &mut list,
                        &|epoch, leaf, out| {
                            probe(
                                &view,
                                &tokens.provider,
                                epochs[epoch as usize].entries,
                                epoch,
                                leaf,
                                out,
                            )
                        },
                    )?;
                }
                hits.push(list);
            }
            let selected: Vec<RecordId> = evaluate(&hits, query.combine).into_iter().collect();
            // Many records are read on all cores (on the directory store each is a file
            // to open, read and check); the first failure in id order is reported.
            let fetch = |id: &RecordId| self.store.record(&tokens.provider, *id);
            let fetched: Vec<Result<Option<Vec<u8>>>> = if selected.len() >= PARALLEL_MIN_RECORDS {
                selected.par_iter().map(fetch).collect()
            } else {
                selected.iter().map(fetch).collect()
            };
            let mut records = Vec::new();
            let mut missing = Vec::new();
            for (id, record) in selected.into_iter().zip(fetched) {
                match record? {
                    Some(bytes) => records.push((id, bytes)),
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

/// Results with at least this many records have them read on all cores.
const PARALLEL_MIN_RECORDS: usize = 16;

/// Blocks of one list probed one by one before the rest of the list is looked up on
/// all cores: most lists end well before this, and waking the pool for a short list
/// was measured slower (a 250-block list in windows of 64: 322 µs against 200 µs).
const SERIAL_PROBES: u32 = 256;

/// The largest window of blocks looked up on all cores at once (its values are held
/// until the window is decrypted: 4,096 × 68 bytes).
const MAX_PROBE_WINDOW: u32 = 4096;

/// Probes `label_0, label_1, …` of one epoch (in the segments covering it) until a miss
/// (or the epoch's entry count, a bound no honest list exceeds) and appends the
/// decrypted postings, in block order.
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
    leaf: &ggm::NodeKey,
    out: &mut Vec<Hit>,
) -> Result<()> {
    let key = EpochKey::new(leaf);
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
        if !ended && at == SERIAL_PROBES && at < entries && rayon::current_num_threads() < 2 {
            serial_end = entries;
        }
    }
    let mut window = SERIAL_PROBES;
    while !ended && at < entries {
        let end = at.saturating_add(window).min(entries);
        let looked_up: Vec<Result<Option<Value>>> = (at..end).into_par_iter().map(lookup).collect();
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
        let runs: Vec<Result<Vec<Posting>>> = found
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
            .collect();
        for run in runs {
            postings.extend(run?);
        }
        at = end;
        window = (window * 2).min(MAX_PROBE_WINDOW);
    }
    out.extend(
        postings
            .into_iter()
            .map(|(record, op)| Hit { epoch, record, op }),
    );
    Ok(())
}

/// Blocks decrypted in order by one task of a parallel window.
const DECRYPT_RUN: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;
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
        cloud
            .ingest(IndexBatch {
                provider: provider.clone(),
                epoch: 0,
                generation: 0,
                table: Table::from_unsorted(pairs).unwrap(),
            })
            .unwrap();
        World {
            cloud,
            provider,
            entries,
            expected,
        }
    }

    fn run_probe(world: &World, leaf: &ggm::NodeKey) -> Result<Vec<Posting>> {
        let view = world.cloud.store.view();
        let mut hits = Vec::new();
        probe(&view, &world.provider, world.entries, 0, leaf, &mut hits)?;
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
