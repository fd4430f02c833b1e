//! The in-memory store: segments as sorted tables, records as byte vectors.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::{Arc, Mutex, RwLock};

use crate::crypto::merkle::Digest;
use crate::error::Result;
use crate::index::manifest::EpochInfo;
use crate::index::{IndexBatch, Segment};
use crate::keys::identity::{PublicIdentity, VerifyingKey};
use crate::keys::{ProviderId, RecordId};
use crate::store::journal::BrokerEvent;
use crate::store::{
    Coverage, Digesting, LabelCheck, LogTip, RECORD_STORED, RecordInfo, RecordPlaces,
    SegmentSource, Store, View, check_ingest, check_record_batch, lock, merge_groups, read,
    refuse_stored, write,
};

/// Everything in memory; gone when dropped. `Send + Sync`.
#[derive(Default)]
pub struct MemStore {
    index: RwLock<MemIndex>,
    merging: Mutex<()>,
    /// Appends are checked and committed one at a time.
    appending: Mutex<()>,
    records: RwLock<HashMap<(ProviderId, RecordId), StoredRecord>>,
    places: RecordPlaces,
    directory: RwLock<BTreeMap<ProviderId, PublicIdentity>>,
    broker: RwLock<Vec<BrokerEvent>>,
}

#[derive(Default)]
struct MemIndex {
    epochs: BTreeMap<ProviderId, Vec<EpochInfo>>,
    logs: BTreeMap<ProviderId, Arc<LogTip>>,
    segments: Vec<(Arc<Segment>, Coverage)>,
    view: Arc<View>,
}

impl MemIndex {
    fn publish(&mut self) {
        let segments = self
            .segments
            .iter()
            .map(|(s, c)| (s.clone() as Arc<dyn SegmentSource>, c.clone()))
            .collect();
        self.view = Arc::new(View::new(self.epochs.clone(), segments).with_logs(self.logs.clone()));
    }
}

struct StoredRecord {
    bytes: Arc<Vec<u8>>,
    uploaded_at: u64,
}

impl std::fmt::Debug for MemStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let view = self.view();
        write!(
            f,
            "MemStore({} providers, {} segments)",
            view.epochs().len(),
            view.segments().len()
        )
    }
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        MemStore::default()
    }
}

impl Store for MemStore {
    fn view(&self) -> Arc<View> {
        read(&self.index).view.clone()
    }

    fn append(&self, batch: &IndexBatch, key: &VerifyingKey) -> Result<()> {
        let _one_append = lock(&self.appending);
        let tip = check_ingest(&self.view(), &self.places, batch, key, LabelCheck::InView)?;
        let provider = &batch.provider;
        let mut index = write(&self.index);
        index
            .epochs
            .entry(provider.clone())
            .or_default()
            .push(batch.info);
        index.logs.insert(provider.clone(), Arc::new(tip));
        index.segments.push((
            Arc::new(Segment::new(batch.table().clone())),
            Coverage::epoch(provider, batch.epoch),
        ));
        index.publish();
        self.places.add(provider, batch.epoch, &batch.records);
        Ok(())
    }

    fn merge(&self) -> Result<()> {
        let _one_merge = lock(&self.merging);
        let segments = read(&self.index).segments.clone();
        let groups = merge_groups(&segments.iter().map(|(_, c)| c).collect::<Vec<_>>());
        if groups.is_empty() {
            return Ok(());
        }
        // One merged segment per provider, in provider order; segments of providers
        // with only one keep their place after them.
        let mut merged_away = vec![false; segments.len()];
        let mut result = Vec::with_capacity(groups.len());
        for positions in groups.values() {
            let inputs: Vec<&Segment> = positions.iter().map(|&i| segments[i].0.as_ref()).collect();
            let coverage = Coverage::union(positions.iter().map(|&i| &segments[i].1));
            result.push((Arc::new(Segment::merge(&inputs)?), coverage));
            for &i in positions {
                merged_away[i] = true;
            }
        }
        result.extend(
            segments
                .iter()
                .zip(&merged_away)
                .filter(|(_, away)| !**away)
                .map(|(segment, _)| segment.clone()),
        );
        let mut index = write(&self.index);
        // Segments appended while merging stay, after the merged ones.
        let newer = index.segments.split_off(segments.len());
        index.segments = result.into_iter().chain(newer).collect();
        index.publish();
        Ok(())
    }

    fn put_record(
        &self,
        provider: &ProviderId,
        record: RecordId,
        uploaded_at: u64,
        sealed: &mut dyn Read,
        expected: &Digest,
    ) -> Result<u64> {
        let key = (provider.clone(), record);
        if read(&self.records).contains_key(&key) {
            return Err(RECORD_STORED);
        }
        let mut bytes = Vec::new();
        let mut digesting = Digesting::new(sealed);
        digesting.read_to_end(&mut bytes)?;
        digesting.check(provider, expected)?;
        let size = bytes.len() as u64;
        let mut records = write(&self.records);
        if records.contains_key(&key) {
            return Err(RECORD_STORED);
        }
        records.insert(
            key,
            StoredRecord {
                bytes: Arc::new(bytes),
                uploaded_at,
            },
        );
        Ok(size)
    }

    fn put_records(
        &self,
        provider: &ProviderId,
        uploaded_at: u64,
        records: &[(RecordId, &[u8], Digest)],
    ) -> Result<()> {
        check_record_batch(provider, records)?;
        let mut stored = write(&self.records);
        refuse_stored(provider, records, |key| stored.contains_key(key))?;
        for (id, sealed, _) in records {
            stored.insert(
                (provider.clone(), *id),
                StoredRecord {
                    bytes: Arc::new(sealed.to_vec()),
                    uploaded_at,
                },
            );
        }
        Ok(())
    }

    fn record(&self, provider: &ProviderId, record: RecordId) -> Result<Option<Vec<u8>>> {
        Ok(read(&self.records)
            .get(&(provider.clone(), record))
            .map(|stored| stored.bytes.as_ref().clone()))
    }

    fn record_reader(
        &self,
        provider: &ProviderId,
        record: RecordId,
    ) -> Result<Option<Box<dyn Read + Send>>> {
        Ok(read(&self.records)
            .get(&(provider.clone(), record))
            .map(|stored| {
                Box::new(std::io::Cursor::new(SharedBytes(stored.bytes.clone())))
                    as Box<dyn Read + Send>
            }))
    }

    fn record_place(&self, provider: &ProviderId, record: RecordId) -> Option<(u32, u32)> {
        self.places.get(provider, record)
    }

    fn directory(&self) -> BTreeMap<ProviderId, PublicIdentity> {
        read(&self.directory).clone()
    }

    fn put_provider_keys(&self, provider: &ProviderId, keys: &PublicIdentity) -> Result<()> {
        write(&self.directory).insert(provider.clone(), keys.clone());
        Ok(())
    }

    fn broker_events(&self) -> Vec<BrokerEvent> {
        read(&self.broker).clone()
    }

    fn put_broker_event(&self, event: &BrokerEvent) -> Result<()> {
        write(&self.broker).push(event.clone());
        Ok(())
    }

    fn records(&self) -> Vec<RecordInfo> {
        let mut list: Vec<RecordInfo> = read(&self.records)
            .iter()
            .map(|((provider, record), stored)| RecordInfo {
                provider: provider.clone(),
                record: *record,
                size: stored.bytes.len() as u64,
                uploaded_at: stored.uploaded_at,
            })
            .collect();
        list.sort_by(|a, b| (&a.provider, a.record).cmp(&(&b.provider, b.record)));
        list
    }
}

/// Shared bytes readable through a `Cursor` without copying them.
struct SharedBytes(Arc<Vec<u8>>);

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}
