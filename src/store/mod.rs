//! Where the cloud keeps what it is given: index segments, every provider's epochs, and
//! the sealed records.
//!
//! [`Store`] is the seam between the [`Cloud`](crate::Cloud) (which checks, searches
//! and brokers) and the storage. Two stores come with the crate:
//!
//! - [`MemStore`]: everything in memory, for tests and short-lived clouds.
//! - [`DirStore`]: a directory on one machine — immutable segment files, an atomically
//!   replaced catalog, and one file per sealed record (see its documentation).
//!
//! A distributed store can implement the trait later: labels are uniform, so the index
//! shards by label prefix, and [`View`] only asks a segment for `get` by label.
//!
//! **Concurrency.** Readers take a [`View`], an immutable snapshot: a search runs on one
//! view from start to end, unaffected by ingests and merges that commit meanwhile.
//! Writers (append, merge, record upload) serialize inside the store; a merge builds its
//! output without blocking appends or readers and commits in a moment.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::Arc;

use rayon::prelude::*;

use crate::crypto::merkle::Digest;
use crate::error::{Error, Result};
use crate::index::log::{self, EpochPairs, RecordTable};
use crate::index::manifest::EpochInfo;
use crate::index::{IndexBatch, Label, Segment, Value};
use crate::keys::identity::{PublicIdentity, VerifyingKey};
use crate::keys::{ProviderId, RecordId};
use crate::parallel::{self, Work};

mod catalog;
mod dir;
pub(crate) mod disk;
pub(crate) mod journal;
mod memory;
mod pairs_file;
#[cfg(feature = "postgres")]
mod postgres;
mod record_file;
mod record_pack;
mod segment_file;
mod table_file;

pub use dir::DirStore;
pub use memory::MemStore;
#[cfg(feature = "postgres")]
pub use postgres::{PgStore, SCHEMA_VERSION as PG_SCHEMA_VERSION};
pub use record_pack::MAX_PACK_RECORDS;

#[cfg(feature = "fuzzing")]
pub use journal::parse_for_fuzzing as parse_broker_journal;
#[cfg(feature = "fuzzing")]
pub use pairs_file::parse_for_fuzzing as parse_entry_file;
pub use segment_file::SegmentFile;
#[cfg(feature = "fuzzing")]
pub use table_file::parse_for_fuzzing as parse_record_table;

// Every state change in the stores is a single assignment after all checks, so a lock
// poisoned by a panic elsewhere guards a consistent state and is safe to use.
pub(crate) fn read<T>(lock: &std::sync::RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn write<T>(lock: &std::sync::RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every check an ingest passes, against the store's current `view`, made by each
/// store's `append` under its own writer lock (so no caller can skip or race it): the
/// batch is the provider's next epoch ([`Error::EpochOutOfOrder`]); its signature
/// verifies under `key` over the provider's log extended by it
/// ([`Error::NotAuthentic`]); its generation does not go back
/// ([`Error::GenerationRegressed`]) nor rise by more than one; none of its records was committed before; and none of
/// its labels exists yet ([`Error::LabelCollision`]). Returns the provider's log after
/// the batch, for the store to commit.
pub(crate) fn check_ingest(
    view: &View,
    places: &RecordPlaces,
    batch: &IndexBatch,
    key: &VerifyingKey,
    labels: LabelCheck,
) -> Result<LogTip> {
    let provider = &batch.provider;
    let epochs = view.epochs().get(provider);
    let expected = epochs.map_or(0, |e| e.len() as u32);
    if batch.epoch != expected {
        return Err(Error::EpochOutOfOrder {
            expected,
            found: batch.epoch,
        });
    }
    let tip = view.logs.get(provider);
    let previous = tip.map_or(log::CHAIN_START, |t| t.chain);
    let chain = log::next_chain(provider, batch.epoch, &batch.info, &previous);
    key.verify(
        &log::head_message(provider, batch.epoch + 1, &chain),
        &batch.signature,
    )
    .map_err(|_| Error::NotAuthentic {
        provider: provider.to_string(),
        what: "index batch",
    })?;
    let current = epochs.and_then(|e| e.last()).map_or(0, |e| e.generation);
    let generation = batch.info.generation;
    if generation < current {
        return Err(Error::GenerationRegressed {
            current,
            found: generation,
        });
    }
    if generation - current > 1 {
        return Err(Error::InvalidArgument(
            "a batch's key generation rises by at most one",
        ));
    }
    if batch
        .records
        .entries()
        .iter()
        .any(|(id, _)| places.get(provider, *id).is_some())
    {
        return Err(Error::InvalidArgument(
            "a record id of the batch was committed in an earlier batch",
        ));
    }
    // Every label against the Bloom filter of every segment of this provider (and a
    // block read for the ~1 % it does not rule out). Only its own: labels are unique
    // per provider, so another provider holding a grant cannot block this one's next
    // labels by uploading them first, and lookups never read across providers.
    let fresh = |label: &Label| match view.lookup_for(provider, label)? {
        Some(_) => Err(Error::LabelCollision),
        None => Ok(()),
    };
    let batch_labels = batch.table().labels();
    match labels {
        LabelCheck::ByStore => {}
        LabelCheck::InView if parallel::worth_splitting(Work::label_checks(batch_labels.len())) => {
            parallel::run(|| batch_labels.par_iter().try_for_each(fresh))?;
        }
        LabelCheck::InView => batch_labels.iter().try_for_each(fresh)?,
    }
    let mut tables = tip.map(|t| t.tables.clone()).unwrap_or_default();
    tables.push(Arc::new(batch.records.clone()));
    let mut pairs = tip.map(|t| t.pairs.clone()).unwrap_or_default();
    pairs.push(Arc::clone(&batch.pairs));
    Ok(LogTip {
        chain,
        signature: batch.signature.clone(),
        tables,
        pairs,
    })
}

/// Who refuses a batch label that the provider already used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LabelCheck {
    /// [`check_ingest`] looks every label up in the view first.
    InView,
    /// The store's commit refuses it ([`Error::LabelCollision`], nothing committed):
    /// the PostgreSQL store's primary key, checked by the database in the batch's own
    /// transaction instead of one lookup per label beforehand.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    ByStore,
}

/// The end of a provider's log as the store keeps it: the chain value, the provider's
/// signature over its head, and each epoch's record table and entries with their
/// trees (the cloud proves searches with them, so they are in memory: about 150 bytes
/// per index entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTip {
    pub(crate) chain: Digest,
    pub(crate) signature: Vec<u8>,
    pub(crate) tables: Vec<Arc<RecordTable>>,
    pub(crate) pairs: Vec<Arc<EpochPairs>>,
}

impl LogTip {
    /// The digest of the record at `place` (epoch, position), if this tip has that
    /// epoch: what an upload is checked against (no proof needed).
    pub(crate) fn record_digest(&self, (epoch, at): (u32, u32)) -> Option<Digest> {
        let table = self.tables.get(epoch as usize)?;
        table.entries().get(at as usize).map(|(_, digest)| *digest)
    }

    /// The digest and inclusion proof of the record at `place` (epoch, position), if
    /// this tip has that epoch.
    pub(crate) fn record_at(&self, (epoch, at): (u32, u32)) -> Option<(Digest, Vec<Digest>)> {
        let table = self.tables.get(epoch as usize)?;
        let (_, digest) = table.entries().get(at as usize)?;
        Some((*digest, table.path(at as usize)?))
    }
}

/// A record's place in its provider's log: (epoch, position in that epoch's table).
type Place = (u32, u32);

/// Where each committed record is in its provider's log. One map beside the views,
/// appended under the store's writer lock after each commit, so finding a record costs
/// one lookup instead of a binary search in every epoch's table: the ingest check does
/// it for every record of a batch, a search for every record it returns.
#[derive(Debug, Default)]
pub(crate) struct RecordPlaces(std::sync::RwLock<HashMap<ProviderId, HashMap<RecordId, Place>>>);

impl RecordPlaces {
    /// The places of every record in `logs`.
    pub(crate) fn from_logs(logs: &BTreeMap<ProviderId, Arc<LogTip>>) -> Self {
        let places = RecordPlaces::default();
        for (provider, tip) in logs {
            for (epoch, table) in tip.tables.iter().enumerate() {
                places.add(provider, epoch as u32, table);
            }
        }
        places
    }

    pub(crate) fn get(&self, provider: &ProviderId, record: RecordId) -> Option<Place> {
        read(&self.0).get(provider)?.get(&record).copied()
    }

    /// Records the places of `table`, committed as `epoch` of `provider`.
    pub(crate) fn add(&self, provider: &ProviderId, epoch: u32, table: &RecordTable) {
        let mut places = write(&self.0);
        let of_provider = places.entry(provider.clone()).or_default();
        for (at, (record, _)) in table.entries().iter().enumerate() {
            of_provider.insert(*record, (epoch, at as u32));
        }
    }
}

/// A reader that hashes what passes through it, so a store checks an uploaded record
/// against its signed digest before committing it.
pub(crate) struct Digesting<'a> {
    inner: &'a mut dyn Read,
    hasher: sha2::Sha256,
}

impl<'a> Digesting<'a> {
    pub(crate) fn new(inner: &'a mut dyn Read) -> Self {
        use sha2::Digest as _;
        Digesting {
            inner,
            hasher: sha2::Sha256::new(),
        }
    }

    /// The digest of what was read; [`Error::NotAuthentic`] unless it is `expected`.
    pub(crate) fn check(self, provider: &ProviderId, expected: &Digest) -> Result<Digest> {
        use sha2::Digest as _;
        check_commitment(provider, self.hasher.finalize().into(), expected)
    }
}

impl Read for Digesting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use sha2::Digest as _;
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// The error for storing a record id a second time (records are immutable).
pub(crate) const RECORD_STORED: Error =
    Error::InvalidArgument("a record with this id is already stored");

/// [`RECORD_STORED`] if `stored` says any record of the batch is stored already.
pub(crate) fn refuse_stored(
    provider: &ProviderId,
    records: &[(RecordId, &[u8], Digest)],
    stored: impl Fn(&(ProviderId, RecordId)) -> bool,
) -> Result<()> {
    if records
        .iter()
        .any(|(id, _, _)| stored(&(provider.clone(), *id)))
    {
        Err(RECORD_STORED)
    } else {
        Ok(())
    }
}

/// What every store checks of a record batch before it writes anything: 1 to
/// [`MAX_PACK_RECORDS`] records, no id twice, and each one's SHA-256 the digest its
/// provider's signed batch committed ([`Error::NotAuthentic`] otherwise). After it, a
/// record's digest in the batch is the SHA-256 of its bytes.
pub(crate) fn check_record_batch(
    provider: &ProviderId,
    records: &[(RecordId, &[u8], Digest)],
) -> Result<()> {
    if records.is_empty() || records.len() > MAX_PACK_RECORDS {
        return Err(Error::InvalidArgument(
            "a record batch holds 1 to 4096 records",
        ));
    }
    let mut ids: Vec<RecordId> = records.iter().map(|(id, _, _)| *id).collect();
    ids.sort_unstable();
    if ids.windows(2).any(|w| w[0] == w[1]) {
        return Err(Error::InvalidArgument(
            "a record batch holds a record twice",
        ));
    }
    for (_, sealed, expected) in records {
        use sha2::Digest as _;
        check_commitment(provider, sha2::Sha256::digest(sealed).into(), expected)?;
    }
    Ok(())
}

/// `got`, a record's SHA-256, if it is the digest `expected` that its provider's signed
/// batch committed (compared in constant time); [`Error::NotAuthentic`] otherwise.
fn check_commitment(provider: &ProviderId, got: Digest, expected: &Digest) -> Result<Digest> {
    if bool::from(subtle::ConstantTimeEq::ct_eq(&got[..], &expected[..])) {
        Ok(got)
    } else {
        Err(Error::NotAuthentic {
            provider: provider.to_string(),
            what: "record (its digest differs from the signed batch)",
        })
    }
}

/// A sorted, immutable set of index entries the store can look labels up in.
pub trait SegmentSource: Send + Sync + std::fmt::Debug {
    /// Number of entries.
    fn len(&self) -> u64;
    /// The value under `label`, if any. A damaged segment is an error, never a miss.
    fn get(&self, label: &Label) -> Result<Option<Value>>;
    /// The whole segment in memory (the tests compare stores entry by entry).
    #[cfg(test)]
    fn load(&self) -> Result<Segment>;
    /// Its first `limit` labels, in order, without loading the rest.
    fn first_labels(&self, limit: usize) -> Result<Vec<Label>>;
    /// The values under `labels`, in order: one round trip for a segment in a
    /// database server.
    fn get_many(&self, labels: &[Label]) -> Result<Vec<Option<Value>>> {
        labels.iter().map(|label| self.get(label)).collect()
    }
    /// True if every lookup is a round trip to a server, so searches should ask for
    /// many labels at once ([`SegmentSource::get_many`]) rather than one by one.
    fn round_trips(&self) -> bool {
        false
    }
}

impl SegmentSource for Segment {
    fn len(&self) -> u64 {
        Segment::len(self) as u64
    }
    fn get(&self, label: &Label) -> Result<Option<Value>> {
        Ok(Segment::get(self, label).copied())
    }
    #[cfg(test)]
    fn load(&self) -> Result<Segment> {
        Ok(self.clone())
    }
    fn first_labels(&self, limit: usize) -> Result<Vec<Label>> {
        Ok(self.table().labels().iter().take(limit).copied().collect())
    }
}

impl SegmentSource for SegmentFile {
    fn len(&self) -> u64 {
        SegmentFile::len(self)
    }
    fn get(&self, label: &Label) -> Result<Option<Value>> {
        SegmentFile::get(self, label)
    }
    #[cfg(test)]
    fn load(&self) -> Result<Segment> {
        SegmentFile::load(self)
    }
    fn first_labels(&self, limit: usize) -> Result<Vec<Label>> {
        self.scan()
            .take(limit)
            .map(|entry| entry.map(|(label, _)| label))
            .collect()
    }
}

/// Which epochs of which providers a segment holds. A search for epoch `e` of provider
/// `p` only looks in the segments that cover it: with unmerged segments that is one
/// segment instead of all of them.
///
/// Every segment the stores write holds one provider's entries: a batch is one
/// provider's, and merges merge each provider's segments separately
/// ([`merge_groups`]). That is the index's provenance: an entry is only ever read for
/// the provider whose signed batches put it there, so another provider that uploads
/// one of this provider's labels (it can compute them with a grant) neither extends
/// this provider's lists, before or after a merge, nor blocks its next batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage(BTreeMap<ProviderId, Vec<std::ops::Range<u32>>>);

impl Coverage {
    /// One epoch of one provider (a segment made from one batch).
    pub fn epoch(provider: &ProviderId, epoch: u32) -> Self {
        let mut map = BTreeMap::new();
        let just_this = epoch..epoch.saturating_add(1);
        map.insert(provider.clone(), Vec::from([just_this]));
        Coverage(map)
    }

    /// Everything `parts` cover (a merged segment); adjacent ranges are joined.
    pub fn union<'a>(parts: impl IntoIterator<Item = &'a Coverage>) -> Self {
        let mut map: BTreeMap<ProviderId, Vec<std::ops::Range<u32>>> = BTreeMap::new();
        for part in parts {
            for (provider, ranges) in &part.0 {
                map.entry(provider.clone())
                    .or_default()
                    .extend(ranges.iter().cloned());
            }
        }
        for ranges in map.values_mut() {
            ranges.sort_by_key(|r| r.start);
            let mut joined: Vec<std::ops::Range<u32>> = Vec::with_capacity(ranges.len());
            for r in ranges.drain(..) {
                match joined.last_mut() {
                    Some(last) if last.end >= r.start => last.end = last.end.max(r.end),
                    _ => joined.push(r),
                }
            }
            *ranges = joined;
        }
        Coverage(map)
    }

    /// True if the segment holds entries of `epoch` of `provider`.
    pub fn contains(&self, provider: &ProviderId, epoch: u32) -> bool {
        self.0
            .get(provider)
            .is_some_and(|ranges| ranges.iter().any(|r| r.contains(&epoch)))
    }

    /// Per provider, the epoch ranges, ascending.
    pub fn ranges(&self) -> &BTreeMap<ProviderId, Vec<std::ops::Range<u32>>> {
        &self.0
    }

    pub(crate) fn from_ranges(map: BTreeMap<ProviderId, Vec<std::ops::Range<u32>>>) -> Self {
        Coverage(map)
    }
}

/// The segments to merge, by provider: for each provider whose entries are in two
/// segments or more, the positions of those segments (oldest first). A provider
/// already in one segment is left alone.
pub(crate) fn merge_groups(coverages: &[&Coverage]) -> BTreeMap<ProviderId, Vec<usize>> {
    let mut groups: BTreeMap<ProviderId, Vec<usize>> = BTreeMap::new();
    for (position, coverage) in coverages.iter().enumerate() {
        for provider in coverage.ranges().keys() {
            groups.entry(provider.clone()).or_default().push(position);
        }
    }
    groups.retain(|_, positions| positions.len() > 1);
    groups
}

/// `(first epoch, end epoch, segment index)`: epochs `first..end` of a provider are in
/// that segment.
type EpochSpan = (u32, u32, usize);

/// A consistent snapshot of the index: every provider's epochs and the segments, oldest
/// first, each with the epochs it covers. Cheap to take (an `Arc`), and never changes
/// once taken.
#[derive(Debug, Clone, Default)]
pub struct View {
    epochs: BTreeMap<ProviderId, Vec<EpochInfo>>,
    segments: Vec<Arc<dyn SegmentSource>>,
    coverage: Vec<Coverage>,
    /// Per provider, every `(first epoch, end epoch, segment index)` some segment
    /// covers, sorted, so a probe finds its segment by binary search instead of testing
    /// every segment's coverage (256 segments × 256 epochs made that the cost of a
    /// search). `None` if two segments' ranges overlap, which the stores never produce;
    /// lookups then test every segment.
    epoch_index: BTreeMap<ProviderId, Option<Vec<EpochSpan>>>,
    /// Every provider's log tip (chain, signature, record tables).
    logs: BTreeMap<ProviderId, Arc<LogTip>>,
}

impl View {
    /// A view of `segments` (oldest first, each with what it covers) holding the
    /// entries of `epochs`.
    pub fn new(
        epochs: BTreeMap<ProviderId, Vec<EpochInfo>>,
        segments: Vec<(Arc<dyn SegmentSource>, Coverage)>,
    ) -> Self {
        let (segments, coverage): (Vec<_>, Vec<Coverage>) = segments.into_iter().unzip();
        let mut index: BTreeMap<ProviderId, Vec<EpochSpan>> = BTreeMap::new();
        for (position, cover) in coverage.iter().enumerate() {
            for (provider, ranges) in cover.ranges() {
                let entry = index.entry(provider.clone()).or_default();
                entry.extend(ranges.iter().map(|r| (r.start, r.end, position)));
            }
        }
        let epoch_index = index
            .into_iter()
            .map(|(provider, mut ranges)| {
                ranges.sort_unstable();
                let disjoint = ranges.windows(2).all(|w| w[0].1 <= w[1].0);
                (provider, disjoint.then_some(ranges))
            })
            .collect();
        View {
            epochs,
            segments,
            coverage,
            epoch_index,
            logs: BTreeMap::new(),
        }
    }

    /// The same view with the providers' log tips.
    pub(crate) fn with_logs(mut self, logs: BTreeMap<ProviderId, Arc<LogTip>>) -> Self {
        self.logs = logs;
        self
    }

    /// Every provider's log tip.
    pub(crate) fn logs(&self) -> &BTreeMap<ProviderId, Arc<LogTip>> {
        &self.logs
    }

    /// Every provider's epochs, epoch `e` at position `e`.
    pub fn epochs(&self) -> &BTreeMap<ProviderId, Vec<EpochInfo>> {
        &self.epochs
    }

    /// The segments, oldest first.
    pub fn segments(&self) -> &[Arc<dyn SegmentSource>] {
        &self.segments
    }

    /// The value under `label` in any segment of `provider` (each segment holds one
    /// provider's entries, and a provider's labels are unique).
    pub fn lookup_for(&self, provider: &ProviderId, label: &Label) -> Result<Option<Value>> {
        for (segment, coverage) in self.segments.iter().zip(&self.coverage).rev() {
            if coverage.ranges().contains_key(provider)
                && let Some(value) = segment.get(label)?
            {
                return Ok(Some(value));
            }
        }
        Ok(None)
    }

    /// The value under `label`, looking only in the segments that cover `epoch` of
    /// `provider` (where an entry of that epoch can be).
    pub fn lookup_in_epoch(
        &self,
        provider: &ProviderId,
        epoch: u32,
        label: &Label,
    ) -> Result<Option<Value>> {
        match self.epoch_index.get(provider) {
            None => return Ok(None),
            Some(Some(ranges)) => {
                let after = ranges.partition_point(|&(first, _, _)| first <= epoch);
                return match after.checked_sub(1).map(|i| ranges[i]) {
                    Some((_, end, segment)) if epoch < end => self.segments[segment].get(label),
                    _ => Ok(None),
                };
            }
            Some(None) => {}
        }
        for (segment, coverage) in self.segments.iter().zip(&self.coverage).rev() {
            if coverage.contains(provider, epoch)
                && let Some(value) = segment.get(label)?
            {
                return Ok(Some(value));
            }
        }
        Ok(None)
    }
}

impl View {
    /// True if the segments answer over a network (the PostgreSQL store): a search
    /// then looks labels up in rounds ([`View::lookup_many_in_epoch`]).
    pub(crate) fn lookups_round_trip(&self) -> bool {
        self.segments.iter().any(|segment| segment.round_trips())
    }

    /// The value under each `(epoch, label)` of `provider`, in order, looked up in
    /// the segment covering its epoch: one [`SegmentSource::get_many`] per segment
    /// involved (one for the PostgreSQL store, whose segment is the provider's table).
    pub(crate) fn lookup_many(
        &self,
        provider: &ProviderId,
        asked: &[(u32, Label)],
    ) -> Result<Vec<Option<Value>>> {
        let mut out = vec![None; asked.len()];
        let Some(Some(ranges)) = self.epoch_index.get(provider) else {
            for (slot, (epoch, label)) in out.iter_mut().zip(asked) {
                *slot = self.lookup_in_epoch(provider, *epoch, label)?;
            }
            return Ok(out);
        };
        // Positions in `asked`, by segment.
        let mut by_segment: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (at, (epoch, _)) in asked.iter().enumerate() {
            let after = ranges.partition_point(|&(first, _, _)| first <= *epoch);
            if let Some((_, end, segment)) = after.checked_sub(1).map(|i| ranges[i])
                && *epoch < end
            {
                by_segment.entry(segment).or_default().push(at);
            }
        }
        for (segment, positions) in by_segment {
            let labels: Vec<Label> = positions.iter().map(|&at| asked[at].1).collect();
            let values = self.segments[segment].get_many(&labels)?;
            for (at, value) in positions.into_iter().zip(values) {
                out[at] = value;
            }
        }
        Ok(out)
    }
}

/// What the store knows of a stored sealed record (no content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordInfo {
    /// The provider that uploaded it.
    pub provider: ProviderId,
    /// Its id.
    pub record: RecordId,
    /// Its size in bytes.
    pub size: u64,
    /// When it was stored (Unix seconds).
    pub uploaded_at: u64,
}

/// Storage for a [`Cloud`](crate::Cloud). Implementations are `Send + Sync`: many
/// readers, and writers serialized inside the store. Every writing call either commits
/// entirely (durably, for a persistent store) or changes nothing.
pub trait Store: Send + Sync {
    /// The current snapshot.
    fn view(&self) -> Arc<View>;

    /// Commits `batch` as a new segment and the next epoch of its provider's log, after
    /// [`check_ingest`] (with the provider's registered `key`) against the current view
    /// under the store's own writer lock: the store, not its caller, owns the ingest
    /// invariants.
    fn append(&self, batch: &IndexBatch, key: &VerifyingKey) -> Result<()>;

    /// Merges the segments present when it starts into one. Appends committed while it
    /// runs are kept, after the merged segment.
    fn merge(&self) -> Result<()>;

    /// Stores a sealed record read from `sealed` if its SHA-256 is `expected` (the
    /// digest its provider's signed batch committed; [`Error::NotAuthentic`] and
    /// nothing stored otherwise); returns its size. A record id is stored once: storing
    /// it again is an error.
    fn put_record(
        &self,
        provider: &ProviderId,
        record: RecordId,
        uploaded_at: u64,
        sealed: &mut dyn Read,
        expected: &Digest,
    ) -> Result<u64>;

    /// Stores `records` of `provider` (each its id, its sealed bytes and the digest its
    /// provider's signed batch committed), uploaded at `uploaded_at`, all of them or
    /// none: one commit for the lot, where [`Store::put_record`] makes one for each.
    /// [`check_record_batch`] first; any id already stored refuses the whole batch.
    fn put_records(
        &self,
        provider: &ProviderId,
        uploaded_at: u64,
        records: &[(RecordId, &[u8], Digest)],
    ) -> Result<()>;

    /// A stored record, whole.
    fn record(&self, provider: &ProviderId, record: RecordId) -> Result<Option<Vec<u8>>>;

    /// Stored records of `provider`, whole, in the order of `ids` (`None` where one is
    /// not stored): what a search returns. Many are read on all cores; a store whose
    /// reads are round trips to a server reads them in one.
    fn records_whole(
        &self,
        provider: &ProviderId,
        ids: &[RecordId],
    ) -> Vec<Result<Option<Vec<u8>>>> {
        let read = |id: &RecordId| self.record(provider, *id);
        if parallel::worth_splitting(Work::records(ids.len())) {
            parallel::run(|| ids.par_iter().map(read).collect())
        } else {
            ids.iter().map(read).collect()
        }
    }

    /// A stored record as a stream (for large records); damage is reported as an error
    /// from `read`, at the latest when the end is reached.
    fn record_reader(
        &self,
        provider: &ProviderId,
        record: RecordId,
    ) -> Result<Option<Box<dyn Read + Send>>>;

    /// Every stored record's provider, id, size and upload time, sorted.
    fn records(&self) -> Vec<RecordInfo>;

    /// Where `record` of `provider` was committed: (epoch, position in that epoch's
    /// record table), if a batch committed it.
    fn record_place(&self, provider: &ProviderId, record: RecordId) -> Option<(u32, u32)>;

    /// The provider key directory the store keeps (the cloud's first-come directory).
    fn directory(&self) -> BTreeMap<ProviderId, PublicIdentity>;

    /// Keeps `keys` as `provider`'s in the directory (durably when this returns, on a
    /// persistent store). The cloud checks first-come and re-keying before calling it.
    fn put_provider_keys(&self, provider: &ProviderId, keys: &PublicIdentity) -> Result<()>;

    /// The broker's acknowledged events (access requests, decisions, grants), in
    /// order: what a cloud opening this store replays into its inbox and mailbox.
    fn broker_events(&self) -> Vec<journal::BrokerEvent>;

    /// Keeps a broker event before the cloud acknowledges it: on a [`DirStore`] it is
    /// durable when this returns (the `BROKER` journal, fsynced).
    fn put_broker_event(&self, event: &journal::BrokerEvent) -> Result<()>;
}

#[cfg(test)]
mod conformance_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_joins_adjacent_epochs_and_answers_membership() {
        let (a, b) = (ProviderId::new("a").unwrap(), ProviderId::new("b").unwrap());
        let parts = [
            Coverage::epoch(&a, 0),
            Coverage::epoch(&b, 0),
            Coverage::epoch(&a, 2),
            Coverage::epoch(&a, 1),
            Coverage::epoch(&a, 5),
        ];
        let union = Coverage::union(&parts);
        assert_eq!(union.ranges()[&a], vec![0..3, 5..6]);
        assert_eq!(union.ranges()[&b], vec![0..1]);
        for (epoch, inside) in [
            (0, true),
            (2, true),
            (3, false),
            (4, false),
            (5, true),
            (6, false),
        ] {
            assert_eq!(union.contains(&a, epoch), inside, "epoch {epoch}");
        }
        assert!(!union.contains(&b, 1));
        assert!(!union.contains(&ProviderId::new("c").unwrap(), 0));
        assert_eq!(
            Coverage::union([&union, &Coverage::epoch(&a, 3)]).ranges()[&a],
            vec![0..4, 5..6]
        );
    }

    /// A batch of `labels` (values all 7s) signed by `signer` as epoch `epoch` after
    /// the chain `previous`.
    fn signed(
        epoch: u32,
        generation: u32,
        labels: &[u8],
        previous: &Digest,
        signer: &crate::keys::identity::SigningKey,
    ) -> IndexBatch {
        let table = crate::index::Table::from_unsorted(
            labels
                .iter()
                .map(|&l| ([l; 16], [7; crate::index::VALUE_LEN]))
                .collect(),
        )
        .unwrap();
        IndexBatch::signed_for_test(
            ProviderId::new("lab").unwrap(),
            epoch,
            generation,
            table,
            previous,
            signer,
        )
    }

    #[test]
    fn ingest_checks_signature_epoch_generation_and_labels_before_changing_anything() {
        use crate::keys::test_keys::{provider_a, provider_b};
        let store = MemStore::new();
        let key = provider_a().public().verifying;
        let a = &provider_a().signing;
        let b0 = signed(0, 0, &[1, 2], &log::CHAIN_START, a);
        // Signed by someone else: refused.
        let by_b = signed(0, 0, &[1, 2], &log::CHAIN_START, &provider_b().signing);
        assert!(matches!(
            store.append(&by_b, &key),
            Err(Error::NotAuthentic { .. })
        ));
        // Signed over another history (a previous chain the store does not have).
        let elsewhere = signed(0, 0, &[1, 2], &[9; 32], a);
        assert!(matches!(
            store.append(&elsewhere, &key),
            Err(Error::NotAuthentic { .. })
        ));
        assert!(store.view().epochs().is_empty());
        store.append(&b0, &key).unwrap();
        let chain = store.view().logs()[b0.provider()].chain;
        assert_eq!(chain, log::chain_of(b0.provider(), &[b0.info]));
        // Signed, but a generation that jumps, and a label that exists already.
        let jump = signed(1, 2, &[3], &chain, a);
        assert!(matches!(
            store.append(&jump, &key),
            Err(Error::InvalidArgument(_))
        ));
        let collision = signed(1, 0, &[2, 3], &chain, a);
        assert!(matches!(
            store.append(&collision, &key),
            Err(Error::LabelCollision)
        ));
        let before = store.view();
        assert_eq!(before.epochs()[b0.provider()].len(), 1);
        let b1 = signed(1, 1, &[3], &chain, a);
        store.append(&b1, &key).unwrap();
        let chain = store.view().logs()[b0.provider()].chain;
        let back = signed(2, 0, &[4], &chain, a);
        assert!(matches!(
            store.append(&back, &key),
            Err(Error::GenerationRegressed {
                current: 1,
                found: 0
            })
        ));
        // A replay is out of order before anything else.
        assert!(matches!(
            store.append(&b0, &key),
            Err(Error::EpochOutOfOrder {
                expected: 2,
                found: 0
            })
        ));
    }

    /// A segment holding one entry, `label → [tag; VALUE_LEN]`.
    fn one_entry(label: u8, tag: u8) -> Arc<dyn SegmentSource> {
        let table =
            crate::index::Table::from_unsorted(vec![([label; 16], [tag; crate::index::VALUE_LEN])])
                .unwrap();
        Arc::new(Segment::new(table))
    }

    #[test]
    fn epoch_lookups_find_the_covering_segment_and_only_it() {
        let (a, b) = (ProviderId::new("a").unwrap(), ProviderId::new("b").unwrap());
        let merged = Coverage::union(&[Coverage::epoch(&a, 0), Coverage::epoch(&a, 1)]);
        let view = View::new(
            BTreeMap::new(),
            vec![
                (one_entry(1, 10), merged),
                (one_entry(2, 20), Coverage::epoch(&b, 0)),
                (one_entry(3, 30), Coverage::epoch(&a, 2)),
            ],
        );
        let found = |p: &ProviderId, epoch, label| {
            view.lookup_in_epoch(p, epoch, &[label; 16])
                .unwrap()
                .map(|v| v[0])
        };
        assert_eq!(found(&a, 0, 1), Some(10));
        assert_eq!(found(&a, 1, 1), Some(10));
        assert_eq!(found(&a, 2, 3), Some(30));
        assert_eq!(found(&a, 2, 1), None, "label of another segment");
        assert_eq!(found(&a, 3, 3), None, "epoch no segment covers");
        assert_eq!(found(&b, 0, 2), Some(20));
        assert_eq!(found(&b, 0, 1), None);
        assert_eq!(found(&ProviderId::new("c").unwrap(), 0, 1), None);
        // Overlapping coverage (never written by the stores) falls back to a scan.
        let overlapping = View::new(
            BTreeMap::new(),
            vec![
                (one_entry(1, 10), Coverage::epoch(&a, 0)),
                (one_entry(2, 20), Coverage::epoch(&a, 0)),
            ],
        );
        for (label, tag) in [(1, 10), (2, 20)] {
            let value = overlapping.lookup_in_epoch(&a, 0, &[label; 16]).unwrap();
            assert_eq!(value.map(|v| v[0]), Some(tag));
        }
    }
}
