//! One conformance suite for every store: the same checks run against [`MemStore`],
//! [`DirStore`] and, with the `postgres` feature, [`PgStore`](super::PgStore) on a
//! real server (`tests/common/postgres.rs`). Each check names the store it failed on.
//! The oracle search and concurrent ingest-and-search through a whole cloud are in
//! `tests/store_conformance.rs`.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

use crate::crypto::merkle::Digest;
use crate::error::Error;
use crate::index::log::{self, record_digest};
use crate::index::{IndexBatch, Table, VALUE_LEN};
use crate::keys::identity::SigningKey;
use crate::keys::test_keys::{provider_a, provider_b};
use crate::keys::{ProviderId, RecordId};
use crate::store::journal::BrokerEvent;
use crate::store::{DirStore, MemStore, Store};

/// A store under test, reopened as often as a check asks.
trait Backend {
    fn name(&self) -> &'static str;
    /// The store, opened (again: the previous one must have been dropped).
    fn try_open(&self) -> crate::error::Result<Arc<dyn Store>>;
    fn open(&self) -> Arc<dyn Store> {
        self.try_open()
            .unwrap_or_else(|e| panic!("{}: open: {e}", self.name()))
    }
    /// Damages one stored chunk of `record`'s bytes underneath the store; `false` if
    /// this store keeps nothing outside the process (memory).
    fn damage_record(&self, provider: &ProviderId, record: RecordId) -> bool;
    /// Damages one stored index entry of `provider`'s `epoch`; `false` if not possible.
    fn damage_entry(&self, provider: &ProviderId, epoch: u32) -> bool;
}

struct Memory(Arc<MemStore>);

impl Backend for Memory {
    fn name(&self) -> &'static str {
        "MemStore"
    }
    fn try_open(&self) -> crate::error::Result<Arc<dyn Store>> {
        Ok(self.0.clone())
    }
    fn damage_record(&self, _: &ProviderId, _: RecordId) -> bool {
        false
    }
    fn damage_entry(&self, _: &ProviderId, _: u32) -> bool {
        false
    }
}

struct Directory(tempfile::TempDir);

impl Backend for Directory {
    fn name(&self) -> &'static str {
        "DirStore"
    }
    fn try_open(&self) -> crate::error::Result<Arc<dyn Store>> {
        Ok(Arc::new(DirStore::open(self.0.path())?))
    }
    fn damage_record(&self, _: &ProviderId, record: RecordId) -> bool {
        let dir = self.0.path().join("records");
        let path = walk(&dir)
            .into_iter()
            .find(|p| p.to_string_lossy().contains(&record.to_string()))
            .expect("the record's file");
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        true
    }
    fn damage_entry(&self, provider: &ProviderId, epoch: u32) -> bool {
        let path = self
            .0
            .path()
            .join("log")
            .join(provider.as_str())
            .join(format!("{epoch:08x}.mvpt"));
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 40;
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        true
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[cfg(feature = "postgres")]
struct Postgres(String);

#[cfg(feature = "postgres")]
impl Postgres {
    fn new() -> Self {
        Postgres(super::postgres::test_server::shared().fresh_database())
    }
    fn execute(&self, sql: &str, params: &[&(dyn ::postgres::types::ToSql + Sync)]) -> u64 {
        ::postgres::Client::connect(&self.0, ::postgres::NoTls)
            .unwrap()
            .execute(sql, params)
            .unwrap()
    }
}

#[cfg(feature = "postgres")]
impl Backend for Postgres {
    fn name(&self) -> &'static str {
        "PgStore"
    }
    fn try_open(&self) -> crate::error::Result<Arc<dyn Store>> {
        Ok(Arc::new(super::PgStore::open(&self.0)?))
    }
    fn damage_record(&self, provider: &ProviderId, record: RecordId) -> bool {
        let changed = self.execute(
            "UPDATE medvault_record_chunks
             SET bytes = set_byte(bytes, 3, get_byte(bytes, 3) # 1)
             WHERE provider = $1 AND record = $2 AND chunk = 0",
            &[&provider.as_str(), &&record.as_bytes()[..]],
        );
        assert_eq!(changed, 1);
        true
    }
    fn damage_entry(&self, provider: &ProviderId, epoch: u32) -> bool {
        let changed = self.execute(
            "UPDATE medvault_entries SET value = set_byte(value, 4, get_byte(value, 4) # 1)
             WHERE label = (SELECT label FROM medvault_entries
                            WHERE provider = $1 AND epoch = $2 ORDER BY label LIMIT 1)",
            &[&provider.as_str(), &(epoch as i32)],
        );
        assert_eq!(changed, 1);
        true
    }
}

/// Runs `check` against every store.
fn for_every_store(check: impl Fn(&dyn Backend)) {
    check(&Memory(Arc::new(MemStore::new())));
    check(&Directory(tempfile::tempdir().unwrap()));
    #[cfg(feature = "postgres")]
    check(&Postgres::new());
}

fn lab() -> ProviderId {
    ProviderId::new("lab").unwrap()
}

/// A batch of `labels` (each value `[label; VALUE_LEN]`), committing `records`, signed
/// by `signer` as epoch `epoch` after the chain `previous`.
fn batch(
    epoch: u32,
    generation: u32,
    labels: &[u8],
    records: Vec<(RecordId, Digest)>,
    previous: &Digest,
    signer: &SigningKey,
) -> IndexBatch {
    let table =
        Table::from_unsorted(labels.iter().map(|&l| ([l; 16], [l; VALUE_LEN])).collect()).unwrap();
    IndexBatch::signed_with_records_for_test(
        lab(),
        epoch,
        generation,
        table,
        records,
        previous,
        signer,
    )
}

/// Each of the lab's records `ids` reads back as `contents`, whole and streamed.
fn reads_back(store: &dyn Store, name: &str, ids: &[RecordId], contents: &[Vec<u8>]) {
    for (id, bytes) in ids.iter().zip(contents) {
        assert_eq!(
            store.record(&lab(), *id).unwrap().as_ref(),
            Some(bytes),
            "{name}"
        );
        let mut streamed = Vec::new();
        store
            .record_reader(&lab(), *id)
            .unwrap()
            .unwrap()
            .read_to_end(&mut streamed)
            .unwrap();
        assert_eq!(&streamed, bytes, "{name}: streamed");
    }
}

fn chain_of(store: &dyn Store) -> Digest {
    store
        .view()
        .logs()
        .get(&lab())
        .map_or(log::CHAIN_START, |tip| tip.chain)
}

#[test]
fn every_store_refuses_forged_replayed_colliding_and_regressing_batches_and_changes_nothing() {
    for_every_store(|backend| {
        let name = backend.name();
        let store = backend.open();
        let key = provider_a().public().verifying;
        let a = &provider_a().signing;
        let by_b = batch(
            0,
            0,
            &[1, 2],
            vec![],
            &log::CHAIN_START,
            &provider_b().signing,
        );
        assert!(
            matches!(store.append(&by_b, &key), Err(Error::NotAuthentic { .. })),
            "{name}: a batch signed by another key"
        );
        let elsewhere = batch(0, 0, &[1, 2], vec![], &[9; 32], a);
        assert!(
            matches!(
                store.append(&elsewhere, &key),
                Err(Error::NotAuthentic { .. })
            ),
            "{name}: a batch signed over another history"
        );
        assert!(store.view().epochs().is_empty(), "{name}");
        let b0 = batch(0, 0, &[1, 2], vec![], &log::CHAIN_START, a);
        store.append(&b0, &key).unwrap();
        let chain = chain_of(store.as_ref());
        let collision = batch(1, 0, &[2, 3], vec![], &chain, a);
        assert!(
            matches!(store.append(&collision, &key), Err(Error::LabelCollision)),
            "{name}: a label the provider used"
        );
        let jump = batch(1, 2, &[4], vec![], &chain, a);
        assert!(
            matches!(store.append(&jump, &key), Err(Error::InvalidArgument(_))),
            "{name}: a generation that jumps"
        );
        assert!(
            matches!(
                store.append(&b0, &key),
                Err(Error::EpochOutOfOrder {
                    expected: 1,
                    found: 0
                })
            ),
            "{name}: a replay"
        );
        // Nothing of the refused batches is there; the next good batch goes in.
        let view = store.view();
        assert_eq!(view.epochs()[&lab()].len(), 1, "{name}");
        assert_eq!(
            view.lookup_for(&lab(), &[3; 16]).unwrap(),
            None,
            "{name}: an entry of the collided batch"
        );
        let b1 = batch(1, 1, &[3], vec![], &chain, a);
        store.append(&b1, &key).unwrap();
        let chain = chain_of(store.as_ref());
        let back = batch(2, 0, &[5], vec![], &chain, a);
        assert!(
            matches!(
                store.append(&back, &key),
                Err(Error::GenerationRegressed {
                    current: 1,
                    found: 0
                })
            ),
            "{name}: a generation going back"
        );
        // Another provider may use the same labels: labels are unique per provider.
        let other = IndexBatch::signed_for_test(
            ProviderId::new("other").unwrap(),
            0,
            0,
            Table::from_unsorted(vec![([3; 16], [9; VALUE_LEN])]).unwrap(),
            &log::CHAIN_START,
            &provider_b().signing,
        );
        store
            .append(&other, &provider_b().public().verifying)
            .unwrap();
        let view = store.view();
        assert_eq!(
            view.lookup_in_epoch(&lab(), 1, &[3; 16]).unwrap(),
            Some([3; VALUE_LEN]),
            "{name}"
        );
        assert_eq!(
            view.lookup_in_epoch(&ProviderId::new("other").unwrap(), 0, &[3; 16])
                .unwrap(),
            Some([9; VALUE_LEN]),
            "{name}"
        );
        let found = view
            .lookup_many(
                &lab(),
                &[(0, [1; 16]), (0, [7; 16]), (1, [3; 16]), (0, [2; 16])],
            )
            .unwrap();
        assert_eq!(
            found,
            vec![
                Some([1; VALUE_LEN]),
                None,
                Some([3; VALUE_LEN]),
                Some([2; VALUE_LEN])
            ],
            "{name}"
        );
    });
}

#[test]
fn every_store_keeps_records_logs_keys_and_broker_events_across_a_reopen() {
    for_every_store(|backend| {
        let name = backend.name();
        let store = backend.open();
        let key = provider_a().public().verifying;
        // A note, an empty record and one of several database rows (3.5 MiB).
        let contents: Vec<Vec<u8>> = vec![
            b"glucose 5.4 mmol/L".to_vec(),
            Vec::new(),
            (0..3_670_016u32).map(|i| (i * 7 + i / 251) as u8).collect(),
        ];
        let ids: Vec<RecordId> = (1..=3u8).map(|i| RecordId::from_bytes([i; 16])).collect();
        let records: Vec<(RecordId, Digest)> = ids
            .iter()
            .zip(&contents)
            .map(|(id, bytes)| (*id, record_digest(bytes)))
            .collect();
        let b0 = batch(
            0,
            0,
            &[1, 2, 3],
            records.clone(),
            &log::CHAIN_START,
            &provider_a().signing,
        );
        store.append(&b0, &key).unwrap();
        for ((id, digest), bytes) in records.iter().zip(&contents) {
            let size = store
                .put_record(&lab(), *id, 1_700_000_000, &mut bytes.as_slice(), digest)
                .unwrap();
            assert_eq!(size, bytes.len() as u64, "{name}");
        }
        // Stored once; a digest that differs stores nothing.
        let again = store.put_record(&lab(), ids[0], 1, &mut &contents[0][..], &records[0].1);
        assert!(
            matches!(again, Err(Error::InvalidArgument(_))),
            "{name}: stored twice"
        );
        let stranger = RecordId::from_bytes([9; 16]);
        let forged = store.put_record(&lab(), stranger, 1, &mut &b"forged"[..], &records[0].1);
        assert!(
            matches!(forged, Err(Error::NotAuthentic { .. })),
            "{name}: forged bytes"
        );
        assert_eq!(store.record(&lab(), stranger).unwrap(), None, "{name}");
        let keys = provider_b().public();
        store.put_provider_keys(&lab(), &keys).unwrap();
        let (request, _) = crate::grant::AccessRequest::create(
            provider_b(),
            "Dr. Grey",
            &lab(),
            &provider_a().public().encryption,
            crate::grant::Scope::Patient(crate::keys::PatientId::new("+15550123").unwrap()),
            "follow-up",
            1_700_000_000,
        )
        .unwrap();
        let events = vec![
            BrokerEvent::Request(request.to_bytes().to_vec()),
            BrokerEvent::Decision {
                id: [4; 16],
                approve: true,
            },
        ];
        for event in &events {
            store.put_broker_event(event).unwrap();
        }
        let view = store.view();
        let (epochs, logs) = (view.epochs().clone(), view.logs().clone());
        drop((view, store));

        let store = backend.open();
        let view = store.view();
        assert_eq!(view.epochs(), &epochs, "{name}: epochs after a reopen");
        assert_eq!(view.logs(), &logs, "{name}: logs after a reopen");
        assert_eq!(
            view.lookup_in_epoch(&lab(), 0, &[2; 16]).unwrap(),
            Some([2; VALUE_LEN]),
            "{name}"
        );
        reads_back(store.as_ref(), name, &ids, &contents);
        // Read together as a search reads them, with one that is not stored.
        let mut asked = ids.clone();
        asked.insert(1, RecordId::from_bytes([9; 16]));
        let together: Vec<Option<Vec<u8>>> = store
            .records_whole(&lab(), &asked)
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        let mut expected: Vec<Option<Vec<u8>>> = contents.iter().cloned().map(Some).collect();
        expected.insert(1, None);
        assert_eq!(together, expected, "{name}: records read together");
        assert_eq!(
            store
                .records()
                .iter()
                .map(|r| (r.record, r.size))
                .collect::<Vec<_>>(),
            ids.iter()
                .zip(&contents)
                .map(|(id, bytes)| (*id, bytes.len() as u64))
                .collect::<Vec<_>>(),
            "{name}: the record list"
        );
        for (at, (id, _)) in records.iter().enumerate() {
            assert_eq!(
                store.record_place(&lab(), *id),
                Some((0, at as u32)),
                "{name}"
            );
        }
        assert_eq!(store.directory(), BTreeMap::from([(lab(), keys)]), "{name}");
        assert_eq!(store.broker_events(), events, "{name}");
        // The log goes on where it was.
        let chain = chain_of(store.as_ref());
        store
            .append(
                &batch(1, 0, &[4], vec![], &chain, &provider_a().signing),
                &provider_a().public().verifying,
            )
            .unwrap();
        store.merge().unwrap();
        assert_eq!(
            store.view().lookup_in_epoch(&lab(), 1, &[4; 16]).unwrap(),
            Some([4; VALUE_LEN]),
            "{name}: after a merge"
        );
    });
}

#[test]
fn every_store_keeps_a_record_batch_whole_or_not_at_all() {
    for_every_store(|backend| {
        let name = backend.name();
        let store = backend.open();
        let contents: Vec<Vec<u8>> = (0..6u8)
            .map(|i| vec![i; 100 + usize::from(i) * 37])
            .collect();
        let ids: Vec<RecordId> = (1..=6u8).map(|i| RecordId::from_bytes([i; 16])).collect();
        let committed: Vec<(RecordId, Digest)> = ids
            .iter()
            .zip(&contents)
            .map(|(id, bytes)| (*id, record_digest(bytes)))
            .collect();
        let b0 = batch(
            0,
            0,
            &[1],
            committed.clone(),
            &log::CHAIN_START,
            &provider_a().signing,
        );
        store.append(&b0, &provider_a().public().verifying).unwrap();
        let entry = |i: usize| (ids[i], &contents[i][..], committed[i].1);
        let refused = |batch: &[(RecordId, &[u8], Digest)]| {
            let outcome = store.put_records(&lab(), 7, batch);
            assert!(outcome.is_err(), "{name}: {batch:?} was taken");
            assert!(
                store.records().is_empty(),
                "{name}: a refused batch left records"
            );
            outcome.unwrap_err()
        };
        // A forged record refuses the whole batch, and so does an id given twice.
        let mut forged = entry(1);
        forged.1 = b"forged";
        assert!(matches!(
            refused(&[entry(0), forged, entry(2)]),
            Error::NotAuthentic { .. }
        ));
        assert!(matches!(
            refused(&[entry(0), entry(1), entry(0)]),
            Error::InvalidArgument(_)
        ));
        assert!(matches!(refused(&[]), Error::InvalidArgument(_)));
        // Three in one batch, then one of them again beside new ones: refused whole.
        store
            .put_records(&lab(), 1_700_000_000, &[entry(0), entry(1), entry(2)])
            .unwrap();
        let again = store.put_records(&lab(), 1, &[entry(3), entry(2)]);
        assert!(matches!(again, Err(Error::InvalidArgument(_))), "{name}");
        assert_eq!(store.record(&lab(), ids[3]).unwrap(), None, "{name}");
        // Single uploads and batches mix.
        store
            .put_record(&lab(), ids[3], 5, &mut &contents[3][..], &committed[3].1)
            .unwrap();
        store.put_records(&lab(), 9, &[entry(5), entry(4)]).unwrap();
        drop(store);
        let store = backend.open();
        let listed: Vec<(RecordId, u64, u64)> = store
            .records()
            .iter()
            .map(|r| (r.record, r.size, r.uploaded_at))
            .collect();
        let times = [1_700_000_000, 1_700_000_000, 1_700_000_000, 5, 9, 9];
        let expected: Vec<(RecordId, u64, u64)> = (0..6)
            .map(|i| (ids[i], contents[i].len() as u64, times[i]))
            .collect();
        assert_eq!(listed, expected, "{name}: after a reopen");
        reads_back(store.as_ref(), name, &ids, &contents);
        let together: Vec<Option<Vec<u8>>> = store
            .records_whole(&lab(), &ids)
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(
            together,
            contents.iter().cloned().map(Some).collect::<Vec<_>>(),
            "{name}: read together"
        );
    });
}

#[test]
fn every_store_reports_damaged_data_by_name_never_as_an_answer() {
    for_every_store(|backend| {
        let name = backend.name();
        let store = backend.open();
        let bytes: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let id = RecordId::from_bytes([1; 16]);
        let digest = record_digest(&bytes);
        let b0 = batch(
            0,
            0,
            &[1, 2, 3],
            vec![(id, digest)],
            &log::CHAIN_START,
            &provider_a().signing,
        );
        store.append(&b0, &provider_a().public().verifying).unwrap();
        store
            .put_record(&lab(), id, 1, &mut bytes.as_slice(), &digest)
            .unwrap();
        drop(store);
        if !backend.damage_record(&lab(), id) {
            return;
        }
        let store = backend.open();
        match store.record(&lab(), id) {
            Err(Error::Corrupt { what }) => {
                assert!(what.contains(&id.to_string()), "{name}: {what}")
            }
            other => panic!("{name}: a damaged record gave {other:?}"),
        }
        assert!(
            matches!(
                store.records_whole(&lab(), &[id]).pop(),
                Some(Err(Error::Corrupt { .. }))
            ),
            "{name}: a damaged record read as a search reads it"
        );
        let mut streamed = Vec::new();
        let read = store
            .record_reader(&lab(), id)
            .unwrap()
            .unwrap()
            .read_to_end(&mut streamed);
        assert!(
            matches!(read.map_err(Error::from), Err(Error::Corrupt { .. })),
            "{name}: a damaged record streamed"
        );
        drop(store);
        assert!(backend.damage_entry(&lab(), 0), "{name}");
        match backend.try_open() {
            Err(Error::Corrupt { what }) => {
                assert!(what.contains("lab"), "{name}: {what} names the provider")
            }
            other => panic!(
                "{name}: a store with a damaged entry opened: {:?}",
                other.map(|_| ())
            ),
        }
    });
}
