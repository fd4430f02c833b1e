//! The PostgreSQL store: the cloud's index entries, logs, sealed records, key
//! directory and broker state in a PostgreSQL (15 or newer) database.
//!
//! - **Entries** are rows of `medvault_entries`, one per label, loaded by binary
//!   `COPY` in the batch's transaction: a batch is all there or not at all, and the
//!   primary key `(label, provider)` refuses a collision or a replay
//!   ([`Error::LabelCollision`]), as the directory store does.
//! - **Searches** look labels up in the database: a probe round is one
//!   `label = ANY($1)` query (`search::probe_in_rounds`), never one query per label.
//! - **Records** stream in and out in rows of at most [`CHUNK`] bytes, each with a
//!   CRC-32, and the whole record's SHA-256 beside them: a 100 MB image never sits in
//!   memory whole, and damage is reported naming the record and the chunk.
//! - **Broker state and the key directory** are tables, each event committed before
//!   the cloud acknowledges it.
//! - **One writer**: the store holds a session-level advisory lock for its lifetime
//!   ([`Error::StoreLocked`] for a second store on the same database), as the
//!   directory store holds its lock file.
//! - **Merging** has nothing to do: the database keeps one B-tree per table.
//!   [`Store::merge`] runs `ANALYZE` on the entries so the planner's statistics follow
//!   the index's growth.
//!
//! Like the directory store, the store keeps every provider's log (record tables and
//! entries with their Merkle trees, about 150 bytes an entry) in memory to prove
//! searches; it reads them back, checked against the signed commitments, when it
//! opens. A commit whose outcome is unknown (the connection dropped while committing)
//! makes the store refuse writes with [`Error::NeedsRecovery`] until it is reopened,
//! which reads what the database committed.

mod pool;
mod schema;
#[cfg(test)]
#[path = "../../../tests/common/postgres.rs"]
pub(crate) mod test_server;

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::Type;
use postgres::{Client, Config};
use sha2::Digest as _;
use uuid::Uuid;

use crate::crypto::merkle::Digest;
use crate::error::{Error, Result};
use crate::index::log::{self, EpochPairs, RecordTable};
use crate::index::manifest::EpochInfo;
use crate::index::{IndexBatch, Label, Table, Value};
use crate::keys::identity::{EncryptionKey, PublicIdentity, VerifyingKey};
use crate::keys::{ProviderId, RecordId};
use crate::store::journal::BrokerEvent;
use crate::store::{
    Coverage, Digesting, LabelCheck, LogTip, RECORD_STORED, RecordInfo, RecordPlaces,
    SegmentSource, Store, View, check_ingest, check_record_batch, lock, read, refuse_stored, write,
};
use pool::{Pool, database, is_unique_violation};
pub use schema::SCHEMA_VERSION;

/// The largest row of a sealed record: large enough that a 100 MB image is 100
/// round trips, small enough to keep both sides' memory bounded.
pub const CHUNK: usize = 1 << 20;

/// The advisory lock key of a medvault store ("medvault" in ASCII).
const LOCK_KEY: i64 = 0x6d65_6476_6175_6c74;

/// A search round's lookup: the values under many labels of one provider.
const LOOKUP: &str =
    "SELECT label, value FROM medvault_entries WHERE provider = $1 AND label = ANY($2)";

/// Labels per lookup query when checking or probing many at once.
const LOOKUP_BATCH: usize = 8192;

/// The cloud's store in a PostgreSQL database. `Send + Sync`.
pub struct PgStore {
    pool: Arc<Pool>,
    /// The connection holding the store's advisory lock.
    lock_holder: Mutex<Client>,
    index: RwLock<PgIndex>,
    appending: Mutex<()>,
    places: RecordPlaces,
    records: RwLock<HashMap<(ProviderId, RecordId), RecordMeta>>,
    directory: RwLock<BTreeMap<ProviderId, PublicIdentity>>,
    broker: RwLock<Vec<BrokerEvent>>,
    /// Set when a commit's outcome is unknown: writes wait for a reopen.
    needs_recovery: AtomicBool,
}

#[derive(Default)]
struct PgIndex {
    epochs: BTreeMap<ProviderId, Vec<EpochInfo>>,
    logs: BTreeMap<ProviderId, Arc<LogTip>>,
    view: Arc<View>,
}

impl PgIndex {
    /// The view: one segment per provider, covering all its epochs, answered by the
    /// database.
    fn publish(&mut self, pool: &Arc<Pool>) {
        let segments = self
            .epochs
            .iter()
            .filter(|(_, epochs)| !epochs.is_empty())
            .map(|(provider, epochs)| {
                let entries = epochs.iter().map(|e| u64::from(e.entries)).sum();
                let segment = PgSegment {
                    pool: Arc::clone(pool),
                    provider: provider.clone(),
                    entries,
                };
                let all_epochs = std::iter::once(0..epochs.len() as u32).collect();
                let ranges = BTreeMap::from([(provider.clone(), all_epochs)]);
                (
                    Arc::new(segment) as Arc<dyn SegmentSource>,
                    Coverage::from_ranges(ranges),
                )
            })
            .collect();
        self.view = Arc::new(View::new(self.epochs.clone(), segments).with_logs(self.logs.clone()));
    }
}

#[derive(Debug, Clone, Copy)]
struct RecordMeta {
    size: u64,
    uploaded_at: u64,
    chunks: u32,
    digest: Digest,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let view = self.view();
        write!(f, "PgStore({} providers)", view.epochs().len())
    }
}

fn corrupt(what: String) -> Error {
    Error::Corrupt { what }
}

fn digest_of(bytes: &[u8], what: impl Fn() -> String) -> Result<Digest> {
    bytes
        .try_into()
        .map_err(|_| corrupt(format!("{}: not a 32-byte digest", what())))
}

fn provider_of(name: &str, table: &str) -> Result<ProviderId> {
    ProviderId::new(name).map_err(|_| corrupt(format!("{table}: a provider id that is not valid")))
}

fn record_of(bytes: &[u8], table: &str) -> Result<RecordId> {
    let id: [u8; 16] = bytes
        .try_into()
        .map_err(|_| corrupt(format!("{table}: a record id that is not 16 bytes")))?;
    Ok(RecordId::from_bytes(id))
}

fn count(value: i32, what: &str) -> Result<u32> {
    u32::try_from(value).map_err(|_| corrupt(format!("{what}: a negative count")))
}

impl PgStore {
    /// Opens the store in the database at `url` (a libpq connection string or
    /// `postgres://` URL; a Unix socket directory as `host=/run/postgresql`): applies
    /// the schema's migrations, takes the store's lock ([`Error::StoreLocked`] if
    /// another process has it) and reads every provider's log, checked against its
    /// signed commitments ([`Error::Corrupt`] naming the table, provider and epoch).
    pub fn open(url: &str) -> Result<PgStore> {
        let config: Config = url.parse().map_err(|e: postgres::Error| Error::Database {
            action: "parse the connection string",
            code: String::new(),
            message: e.to_string(),
        })?;
        let pool = Arc::new(Pool::new(config));
        let mut lock_holder = pool.connect()?;
        schema::migrate(&mut lock_holder)?;
        take_lock(&mut lock_holder)?;
        let mut client = pool.get()?;
        let directory = load_directory(&mut client)?;
        let (epochs, signatures) = load_epochs(&mut client)?;
        let logs = load_logs(&mut client, &epochs, &signatures)?;
        let records = load_records(&mut client)?;
        let broker = load_broker(&mut client)?;
        drop(client);
        let places = RecordPlaces::from_logs(&logs);
        let mut index = PgIndex {
            epochs,
            logs,
            view: Arc::default(),
        };
        index.publish(&pool);
        Ok(PgStore {
            pool,
            lock_holder: Mutex::new(lock_holder),
            index: RwLock::new(index),
            appending: Mutex::new(()),
            places,
            records: RwLock::new(records),
            directory: RwLock::new(directory),
            broker: RwLock::new(broker),
            needs_recovery: AtomicBool::new(false),
        })
    }

    /// Refuses writes after a commit of unknown outcome, or when the connection that
    /// held the store's lock dropped and another process took the lock meanwhile.
    fn check_writable(&self) -> Result<()> {
        if self.needs_recovery.load(Ordering::SeqCst) {
            return Err(Error::NeedsRecovery(
                "a database commit's outcome is unknown".into(),
            ));
        }
        let mut holder = lock(&self.lock_holder);
        if holder.is_closed() {
            let mut fresh = self.pool.connect()?;
            take_lock(&mut fresh)?;
            *holder = fresh;
        }
        Ok(())
    }

    /// Commits `tx`; an error leaves the outcome unknown, so the store waits for a
    /// reopen before writing again.
    fn commit(&self, tx: postgres::Transaction<'_>, action: &'static str) -> Result<()> {
        tx.commit().map_err(|e| {
            self.needs_recovery.store(true, Ordering::SeqCst);
            database(action, &e)
        })
    }

    /// Reads a whole record through [`PgRecordReader`].
    fn read_record(&self, provider: &ProviderId, record: RecordId) -> Result<Option<Vec<u8>>> {
        let Some(mut reader) = self.reader(provider, record) else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(usize::try_from(reader.remaining).unwrap_or(0));
        reader.read_to_end(&mut out)?;
        Ok(Some(out))
    }

    fn reader(&self, provider: &ProviderId, record: RecordId) -> Option<PgRecordReader> {
        let meta = *read(&self.records).get(&(provider.clone(), record))?;
        Some(PgRecordReader {
            pool: Arc::clone(&self.pool),
            provider: provider.clone(),
            record,
            meta,
            next_chunk: 0,
            remaining: meta.size,
            chunk: Vec::new(),
            at: 0,
            hasher: sha2::Sha256::new(),
            checked: false,
        })
    }
}

/// Takes the store's advisory lock on `client`'s session. The server releases the lock
/// of a process that died when it notices the connection closed, a moment later: a
/// short retry rides that out; a live owner keeps it ([`Error::StoreLocked`]).
fn take_lock(client: &mut Client) -> Result<()> {
    for attempt in 0..20 {
        let locked: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK_KEY])
            .map_err(|e| database("take the store's lock", &e))?
            .get(0);
        if locked {
            return Ok(());
        }
        if attempt < 19 {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    Err(Error::StoreLocked)
}

fn load_directory(client: &mut Client) -> Result<BTreeMap<ProviderId, PublicIdentity>> {
    let rows = client
        .query(
            "SELECT provider, verifying, encryption FROM medvault_providers",
            &[],
        )
        .map_err(|e| database("read the key directory", &e))?;
    let mut directory = BTreeMap::new();
    for row in rows {
        let provider = provider_of(row.get(0), "medvault_providers")?;
        let keys = PublicIdentity {
            verifying: VerifyingKey::from_spki_der(row.get(1))?,
            encryption: EncryptionKey::from_spki_der(row.get(2))?,
        };
        directory.insert(provider, keys);
    }
    Ok(directory)
}

type Epochs = BTreeMap<ProviderId, Vec<EpochInfo>>;

/// Every provider's epochs (contiguous from 0) and the signature of its last.
fn load_epochs(client: &mut Client) -> Result<(Epochs, BTreeMap<ProviderId, Vec<u8>>)> {
    let rows = client
        .query(
            "SELECT provider, epoch, generation, entries, pairs_root, records, records_root,
                    signature
             FROM medvault_epochs ORDER BY provider, epoch",
            &[],
        )
        .map_err(|e| database("read the providers' epochs", &e))?;
    let mut epochs: Epochs = BTreeMap::new();
    let mut signatures = BTreeMap::new();
    for row in rows {
        let provider = provider_of(row.get(0), "medvault_epochs")?;
        let epoch: i32 = row.get(1);
        let what = || format!("medvault_epochs: provider {provider} epoch {epoch}");
        let list = epochs.entry(provider.clone()).or_default();
        if usize::try_from(epoch).ok() != Some(list.len()) {
            return Err(corrupt(format!("{}: epochs are not contiguous", what())));
        }
        list.push(EpochInfo {
            generation: count(row.get(2), &what())?,
            entries: count(row.get(3), &what())?,
            pairs_root: digest_of(row.get(4), what)?,
            records: count(row.get(5), &what())?,
            records_root: digest_of(row.get(6), what)?,
        });
        signatures.insert(provider, row.get::<_, Vec<u8>>(7));
    }
    for (provider, list) in &epochs {
        log::check_generations(list).map_err(|_| {
            corrupt(format!(
                "medvault_epochs: provider {provider}: key generations out of order"
            ))
        })?;
    }
    Ok((epochs, signatures))
}

/// Every provider's log tip: each epoch's record table and entries read back and
/// checked against the epoch's signed commitment.
fn load_logs(
    client: &mut Client,
    epochs: &Epochs,
    signatures: &BTreeMap<ProviderId, Vec<u8>>,
) -> Result<BTreeMap<ProviderId, Arc<LogTip>>> {
    let mut logs = BTreeMap::new();
    for (provider, infos) in epochs {
        let mut tables: Vec<Vec<(u32, RecordId, Digest)>> = vec![Vec::new(); infos.len()];
        let rows = client
            .query(
                "SELECT epoch, place, record, digest FROM medvault_committed WHERE provider = $1",
                &[&provider.as_str()],
            )
            .map_err(|e| database("read the record tables", &e))?;
        for row in rows {
            let epoch: i32 = row.get(0);
            let what = || format!("medvault_committed: provider {provider} epoch {epoch}");
            let slot = usize::try_from(epoch)
                .ok()
                .and_then(|e| tables.get_mut(e))
                .ok_or_else(|| corrupt(format!("{}: no such epoch", what())))?;
            slot.push((
                count(row.get(1), &what())?,
                record_of(row.get(2), "medvault_committed")?,
                digest_of(row.get(3), what)?,
            ));
        }
        let mut pairs: Vec<Vec<(Label, Value)>> = vec![Vec::new(); infos.len()];
        let mut rows = client
            .query_raw(
                "SELECT epoch, label, value FROM medvault_entries WHERE provider = $1",
                [provider.as_str()],
            )
            .map_err(|e| database("read the index entries", &e))?;
        while let Some(row) = rows
            .next()
            .map_err(|e| database("read the index entries", &e))?
        {
            let epoch: i32 = row.get(0);
            let bad = || {
                corrupt(format!(
                    "medvault_entries: provider {provider} epoch {epoch}"
                ))
            };
            let slot = usize::try_from(epoch)
                .ok()
                .and_then(|e| pairs.get_mut(e))
                .ok_or_else(bad)?;
            let label: Label = row.get::<_, Uuid>(1).into_bytes();
            let value: Value = row.get::<_, &[u8]>(2).try_into().map_err(|_| bad())?;
            slot.push((label, value));
        }
        let mut tip_tables = Vec::with_capacity(infos.len());
        let mut tip_pairs = Vec::with_capacity(infos.len());
        for (epoch, ((mut table, entries), info)) in
            tables.into_iter().zip(pairs).zip(infos).enumerate()
        {
            table.sort_unstable_by_key(|(place, _, _)| *place);
            let in_order = table
                .iter()
                .enumerate()
                .all(|(i, (place, _, _))| *place as usize == i);
            let table = RecordTable::new(table.into_iter().map(|(_, id, d)| (id, d)).collect())
                .ok()
                .filter(|t| in_order && t.len() == info.records as usize && t.root() == info.records_root)
                .ok_or_else(|| {
                    corrupt(format!(
                        "medvault_committed: provider {provider} epoch {epoch}: differs from the signed commitment"
                    ))
                })?;
            let entries = Table::from_unsorted(entries)
                .ok()
                .map(EpochPairs::new)
                .filter(|p| p.len() == info.entries as usize && p.root() == info.pairs_root)
                .ok_or_else(|| {
                    corrupt(format!(
                        "medvault_entries: provider {provider} epoch {epoch}: differs from the signed commitment"
                    ))
                })?;
            tip_tables.push(Arc::new(table));
            tip_pairs.push(Arc::new(entries));
        }
        if infos.is_empty() {
            continue;
        }
        let tip = LogTip {
            chain: log::chain_of(provider, infos),
            signature: signatures.get(provider).cloned().unwrap_or_default(),
            tables: tip_tables,
            pairs: tip_pairs,
        };
        logs.insert(provider.clone(), Arc::new(tip));
    }
    Ok(logs)
}

fn load_records(client: &mut Client) -> Result<HashMap<(ProviderId, RecordId), RecordMeta>> {
    let rows = client
        .query(
            "SELECT provider, record, size, uploaded_at, chunks, digest FROM medvault_records",
            &[],
        )
        .map_err(|e| database("read the record list", &e))?;
    let mut records = HashMap::with_capacity(rows.len());
    for row in rows {
        let provider = provider_of(row.get(0), "medvault_records")?;
        let record = record_of(row.get(1), "medvault_records")?;
        let what = || format!("medvault_records: record {record}");
        let size: i64 = row.get(2);
        let uploaded_at: i64 = row.get(3);
        let chunks: i32 = row.get(4);
        let meta = RecordMeta {
            size: u64::try_from(size).map_err(|_| corrupt(what()))?,
            uploaded_at: u64::try_from(uploaded_at).map_err(|_| corrupt(what()))?,
            chunks: count(chunks, &what())?,
            digest: digest_of(row.get(5), what)?,
        };
        if meta.size.div_ceil(CHUNK as u64) != u64::from(meta.chunks) {
            return Err(corrupt(format!("{}: size and chunk count differ", what())));
        }
        records.insert((provider, record), meta);
    }
    Ok(records)
}

fn load_broker(client: &mut Client) -> Result<Vec<BrokerEvent>> {
    let rows = client
        .query(
            "SELECT seq, kind, payload FROM medvault_broker ORDER BY seq",
            &[],
        )
        .map_err(|e| database("read the broker's events", &e))?;
    rows.iter()
        .map(|row| {
            let kind: i16 = row.get(1);
            u8::try_from(kind)
                .ok()
                .and_then(|kind| BrokerEvent::decode(kind, row.get(2)))
                .filter(BrokerEvent::parses)
                .ok_or_else(|| corrupt(format!("medvault_broker: event {}", row.get::<_, i64>(0))))
        })
        .collect()
}

/// One provider's entries in the database, as a segment of the view.
struct PgSegment {
    pool: Arc<Pool>,
    provider: ProviderId,
    entries: u64,
}

impl std::fmt::Debug for PgSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgSegment({}, {} entries)", self.provider, self.entries)
    }
}

impl PgSegment {
    /// One round trip: the values under `labels` of this provider, in order. A
    /// connection that dropped (a backend killed, a server restart) is retried once on
    /// a fresh one: a lookup changes nothing, so repeating it is safe.
    fn lookup(&self, labels: &[Label]) -> Result<Vec<Option<Value>>> {
        let mut out = vec![None; labels.len()];
        for part in (0..labels.len()).step_by(LOOKUP_BATCH) {
            let end = (part + LOOKUP_BATCH).min(labels.len());
            let keys: Vec<Uuid> = labels[part..end]
                .iter()
                .map(|l| Uuid::from_bytes(*l))
                .collect();
            let rows = self.pool.reading("look labels up", |connection| {
                let statement = connection.prepared(LOOKUP)?;
                connection.query(&statement, &[&self.provider.as_str(), &keys])
            })?;
            let positions: HashMap<Uuid, usize> = keys
                .iter()
                .enumerate()
                .map(|(i, k)| (*k, part + i))
                .collect();
            for row in rows {
                let bad = || corrupt(format!("medvault_entries: provider {}", self.provider));
                let label: Uuid = row.get(0);
                let at = *positions.get(&label).ok_or_else(bad)?;
                let value: Value = row.get::<_, &[u8]>(1).try_into().map_err(|_| bad())?;
                out[at] = Some(value);
            }
        }
        Ok(out)
    }
}

impl SegmentSource for PgSegment {
    fn len(&self) -> u64 {
        self.entries
    }
    fn get(&self, label: &Label) -> Result<Option<Value>> {
        Ok(self.lookup(std::slice::from_ref(label))?.pop().flatten())
    }
    fn get_many(&self, labels: &[Label]) -> Result<Vec<Option<Value>>> {
        self.lookup(labels)
    }
    fn round_trips(&self) -> bool {
        true
    }
    #[cfg(test)]
    fn load(&self) -> Result<crate::index::Segment> {
        let rows = self
            .pool
            .get()?
            .query(
                "SELECT label, value FROM medvault_entries WHERE provider = $1",
                &[&self.provider.as_str()],
            )
            .map_err(|e| database("read the index entries", &e))?;
        let pairs = rows
            .iter()
            .map(|row| {
                let label: Label = row.get::<_, Uuid>(0).into_bytes();
                let value: Value = row.get::<_, &[u8]>(1).try_into().expect("value");
                (label, value)
            })
            .collect();
        Ok(crate::index::Segment::new(Table::from_unsorted(pairs)?))
    }
    fn first_labels(&self, limit: usize) -> Result<Vec<Label>> {
        let rows = self
            .pool
            .get()?
            .query(
                "SELECT label FROM medvault_entries WHERE provider = $1 ORDER BY label LIMIT $2",
                &[&self.provider.as_str(), &(limit as i64)],
            )
            .map_err(|e| database("read the index entries", &e))?;
        Ok(rows
            .iter()
            .map(|row| row.get::<_, Uuid>(0).into_bytes())
            .collect())
    }
}

/// A database error while storing a record: an id stored before is [`RECORD_STORED`].
fn record_error(e: postgres::Error) -> Error {
    if is_unique_violation(&e) {
        RECORD_STORED
    } else {
        database("store a record", &e)
    }
}

/// Streams `sealed` into the chunks table and adds its row, inside `tx`; checks it
/// against `expected` (the transaction is not committed here).
fn copy_record(
    tx: &mut postgres::Transaction<'_>,
    provider: &ProviderId,
    record: RecordId,
    uploaded_at: u64,
    sealed: &mut dyn Read,
    expected: &Digest,
) -> Result<RecordMeta> {
    let err = record_error;
    // One binary COPY for all the chunks: rows stream to the server while the next
    // chunk is read and hashed, where one INSERT per chunk waited for each
    // (bench `store/record-100MB`).
    let sink = tx
        .copy_in(
            "COPY medvault_record_chunks (provider, record, chunk, crc, bytes)
             FROM STDIN (FORMAT binary)",
        )
        .map_err(err)?;
    let mut writer = BinaryCopyInWriter::new(
        sink,
        &[Type::TEXT, Type::BYTEA, Type::INT4, Type::INT8, Type::BYTEA],
    );
    let mut sealed = Digesting::new(sealed);
    let mut chunk = vec![0u8; CHUNK];
    let (mut size, mut chunks) = (0u64, 0i32);
    loop {
        let mut filled = 0;
        while filled < CHUNK {
            match sealed.read(&mut chunk[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        if filled == 0 {
            break;
        }
        let piece = &chunk[..filled];
        let crc = i64::from(crc32fast::hash(piece));
        writer
            .write(&[
                &provider.as_str(),
                &&record.as_bytes()[..],
                &chunks,
                &crc,
                &piece,
            ])
            .map_err(err)?;
        size += filled as u64;
        chunks = chunks
            .checked_add(1)
            .ok_or(Error::InvalidArgument("a record is at most 2^31 MiB"))?;
        if filled < CHUNK {
            break;
        }
    }
    writer.finish().map_err(err)?;
    let digest = sealed.check(provider, expected)?;
    tx.execute(
        "INSERT INTO medvault_records (provider, record, size, uploaded_at, chunks, digest)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &provider.as_str(),
            &&record.as_bytes()[..],
            &(size as i64),
            &(uploaded_at.min(i64::MAX as u64) as i64),
            &chunks,
            &&digest[..],
        ],
    )
    .map_err(err)?;
    Ok(RecordMeta {
        size,
        uploaded_at,
        chunks: chunks as u32,
        digest,
    })
}

impl Store for PgStore {
    fn view(&self) -> Arc<View> {
        read(&self.index).view.clone()
    }

    fn append(&self, batch: &IndexBatch, key: &VerifyingKey) -> Result<()> {
        let _one_append = lock(&self.appending);
        self.check_writable()?;
        // Labels are checked by the primary key, in the commit itself.
        let tip = check_ingest(&self.view(), &self.places, batch, key, LabelCheck::ByStore)?;
        let (provider, epoch, info) = (&batch.provider, batch.epoch, &batch.info);
        let err = |e: postgres::Error| {
            if is_unique_violation(&e) {
                Error::LabelCollision
            } else {
                database("commit an index batch", &e)
            }
        };
        let mut client = self.pool.get()?;
        let mut tx = client.transaction().map_err(err)?;
        tx.execute(
            "INSERT INTO medvault_epochs (provider, epoch, generation, entries, pairs_root,
                                          records, records_root, signature)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &provider.as_str(),
                &(epoch as i32),
                &(info.generation as i32),
                &(info.entries as i32),
                &&info.pairs_root[..],
                &(info.records as i32),
                &&info.records_root[..],
                &batch.signature,
            ],
        )
        .map_err(|e| {
            if is_unique_violation(&e) {
                // Another writer committed this epoch: the in-memory view is behind
                // the database, which only a reopen repairs.
                self.needs_recovery.store(true, Ordering::SeqCst);
            }
            database("commit an index batch", &e)
        })?;
        if !batch.records.entries().is_empty() {
            let record_err = |e: postgres::Error| {
                if is_unique_violation(&e) {
                    Error::InvalidArgument(
                        "a record id of the batch was committed in an earlier batch",
                    )
                } else {
                    database("commit an index batch", &e)
                }
            };
            let sink = tx
                .copy_in("COPY medvault_committed (provider, record, epoch, place, digest) FROM STDIN (FORMAT binary)")
                .map_err(err)?;
            let mut writer = BinaryCopyInWriter::new(
                sink,
                &[Type::TEXT, Type::BYTEA, Type::INT4, Type::INT4, Type::BYTEA],
            );
            for (place, (id, digest)) in batch.records.entries().iter().enumerate() {
                writer
                    .write(&[
                        &provider.as_str(),
                        &&id.as_bytes()[..],
                        &(epoch as i32),
                        &(place as i32),
                        &&digest[..],
                    ])
                    .map_err(record_err)?;
            }
            writer.finish().map_err(record_err)?;
        }
        let table = batch.table();
        if !table.is_empty() {
            let sink = tx
                .copy_in("COPY medvault_entries (label, provider, epoch, value) FROM STDIN (FORMAT binary)")
                .map_err(err)?;
            let mut writer =
                BinaryCopyInWriter::new(sink, &[Type::UUID, Type::TEXT, Type::INT4, Type::BYTEA]);
            for (label, value) in table.labels().iter().zip(table.values()) {
                let label = Uuid::from_bytes(*label);
                writer
                    .write(&[&label, &provider.as_str(), &(epoch as i32), &&value[..]])
                    .map_err(err)?;
            }
            writer.finish().map_err(err)?;
        }
        self.commit(tx, "commit an index batch")?;
        let mut index = write(&self.index);
        index
            .epochs
            .entry(provider.clone())
            .or_default()
            .push(*info);
        index.logs.insert(provider.clone(), Arc::new(tip));
        index.publish(&self.pool);
        drop(index);
        self.places.add(provider, epoch, &batch.records);
        Ok(())
    }

    fn merge(&self) -> Result<()> {
        self.pool
            .get()?
            .batch_execute("ANALYZE medvault_entries")
            .map_err(|e| database("analyze the index entries", &e))
    }

    fn put_record(
        &self,
        provider: &ProviderId,
        record: RecordId,
        uploaded_at: u64,
        sealed: &mut dyn Read,
        expected: &Digest,
    ) -> Result<u64> {
        self.check_writable()?;
        if read(&self.records).contains_key(&(provider.clone(), record)) {
            return Err(RECORD_STORED);
        }
        let mut client = self.pool.get()?;
        let mut tx = client.transaction().map_err(record_error)?;
        let meta = copy_record(&mut tx, provider, record, uploaded_at, sealed, expected)?;
        self.commit(tx, "store a record")?;
        write(&self.records).insert((provider.clone(), record), meta);
        Ok(meta.size)
    }

    /// One transaction for the lot.
    fn put_records(
        &self,
        provider: &ProviderId,
        uploaded_at: u64,
        records: &[(RecordId, &[u8], Digest)],
    ) -> Result<()> {
        self.check_writable()?;
        check_record_batch(provider, records)?;
        {
            let stored = read(&self.records);
            refuse_stored(provider, records, |key| stored.contains_key(key))?;
        }
        let mut client = self.pool.get()?;
        let mut tx = client.transaction().map_err(record_error)?;
        let mut metas = Vec::with_capacity(records.len());
        for (id, sealed, expected) in records {
            let mut bytes: &[u8] = sealed;
            metas.push(copy_record(
                &mut tx,
                provider,
                *id,
                uploaded_at,
                &mut bytes,
                expected,
            )?);
        }
        self.commit(tx, "store records")?;
        let mut stored = write(&self.records);
        for ((id, _, _), meta) in records.iter().zip(metas) {
            stored.insert((provider.clone(), *id), meta);
        }
        Ok(())
    }

    fn record(&self, provider: &ProviderId, record: RecordId) -> Result<Option<Vec<u8>>> {
        self.read_record(provider, record)
    }

    /// Records of one row (up to [`CHUNK`] bytes: notes, lab results, most
    /// prescriptions) in one query for all of them, each checked as the reader checks
    /// it; larger ones through the reader.
    fn records_whole(
        &self,
        provider: &ProviderId,
        ids: &[RecordId],
    ) -> Vec<Result<Option<Vec<u8>>>> {
        let metas: Vec<Option<RecordMeta>> = {
            let records = read(&self.records);
            ids.iter()
                .map(|id| records.get(&(provider.clone(), *id)).copied())
                .collect()
        };
        let small: Vec<Vec<u8>> = ids
            .iter()
            .zip(&metas)
            .filter(|(_, meta)| meta.is_some_and(|m| m.chunks == 1))
            .map(|(id, _)| id.as_bytes().to_vec())
            .collect();
        let mut rows: HashMap<Vec<u8>, (i64, Vec<u8>)> = HashMap::new();
        if !small.is_empty() {
            let fetched = self.pool.reading("read records", |connection| {
                let statement = connection.prepared(
                    "SELECT record, crc, bytes FROM medvault_record_chunks
                     WHERE provider = $1 AND record = ANY($2) AND chunk = 0",
                )?;
                connection.query(&statement, &[&provider.as_str(), &small])
            });
            match fetched {
                Ok(fetched) => {
                    for row in fetched {
                        rows.insert(row.get(0), (row.get(1), row.get(2)));
                    }
                }
                Err(e) => {
                    let message = e.to_string();
                    return ids
                        .iter()
                        .map(|_| {
                            Err(Error::Database {
                                action: "read records",
                                code: String::new(),
                                message: message.clone(),
                            })
                        })
                        .collect();
                }
            }
        }
        ids.iter()
            .zip(metas)
            .map(|(id, meta)| match meta {
                None => Ok(None),
                Some(meta) if meta.chunks == 1 => {
                    let damaged = |what: &str| {
                        corrupt(format!(
                            "medvault_record_chunks: record {id} of provider {provider}: {what}"
                        ))
                    };
                    let (crc, bytes) = rows
                        .remove(&id.as_bytes()[..])
                        .ok_or_else(|| damaged("chunk 0 is missing"))?;
                    if bytes.len() as u64 != meta.size || i64::from(crc32fast::hash(&bytes)) != crc
                    {
                        return Err(damaged("chunk 0 fails its check"));
                    }
                    let digest: Digest = sha2::Sha256::digest(&bytes).into();
                    if digest != meta.digest {
                        return Err(damaged("its SHA-256 differs"));
                    }
                    Ok(Some(bytes))
                }
                Some(_) => self.read_record(provider, *id),
            })
            .collect()
    }

    fn record_reader(
        &self,
        provider: &ProviderId,
        record: RecordId,
    ) -> Result<Option<Box<dyn Read + Send>>> {
        Ok(self
            .reader(provider, record)
            .map(|r| Box::new(r) as Box<dyn Read + Send>))
    }

    fn records(&self) -> Vec<RecordInfo> {
        let mut list: Vec<RecordInfo> = read(&self.records)
            .iter()
            .map(|((provider, record), meta)| RecordInfo {
                provider: provider.clone(),
                record: *record,
                size: meta.size,
                uploaded_at: meta.uploaded_at,
            })
            .collect();
        list.sort_by(|a, b| (&a.provider, a.record).cmp(&(&b.provider, b.record)));
        list
    }

    fn record_place(&self, provider: &ProviderId, record: RecordId) -> Option<(u32, u32)> {
        self.places.get(provider, record)
    }

    fn directory(&self) -> BTreeMap<ProviderId, PublicIdentity> {
        read(&self.directory).clone()
    }

    fn put_provider_keys(&self, provider: &ProviderId, keys: &PublicIdentity) -> Result<()> {
        self.check_writable()?;
        let err = |e: postgres::Error| database("store a provider's keys", &e);
        let mut client = self.pool.get()?;
        let mut tx = client.transaction().map_err(err)?;
        tx.execute(
            "INSERT INTO medvault_providers (provider, verifying, encryption)
             VALUES ($1, $2, $3)
             ON CONFLICT (provider) DO UPDATE
             SET verifying = EXCLUDED.verifying, encryption = EXCLUDED.encryption",
            &[
                &provider.as_str(),
                &keys.verifying.to_spki_der(),
                &keys.encryption.to_spki_der(),
            ],
        )
        .map_err(err)?;
        self.commit(tx, "store a provider's keys")?;
        write(&self.directory).insert(provider.clone(), keys.clone());
        Ok(())
    }

    fn broker_events(&self) -> Vec<BrokerEvent> {
        read(&self.broker).clone()
    }

    fn put_broker_event(&self, event: &BrokerEvent) -> Result<()> {
        self.check_writable()?;
        let err = |e: postgres::Error| database("store a broker event", &e);
        // One event at a time, under the list's lock: the database's sequence and the
        // list kept in memory are then in the same order.
        let mut broker = write(&self.broker);
        let mut client = self.pool.get()?;
        let mut tx = client.transaction().map_err(err)?;
        tx.execute(
            "INSERT INTO medvault_broker (kind, payload) VALUES ($1, $2)",
            &[&i16::from(event.kind()), &event.payload()],
        )
        .map_err(err)?;
        self.commit(tx, "store a broker event")?;
        broker.push(event.clone());
        Ok(())
    }
}

/// Streams a stored record chunk by chunk, checking each chunk's CRC-32 (naming the
/// record and chunk) and, at the end, the whole record's SHA-256.
struct PgRecordReader {
    pool: Arc<Pool>,
    provider: ProviderId,
    record: RecordId,
    meta: RecordMeta,
    next_chunk: u32,
    remaining: u64,
    chunk: Vec<u8>,
    at: usize,
    hasher: sha2::Sha256,
    checked: bool,
}

impl PgRecordReader {
    fn damaged(&self, what: &str) -> Error {
        corrupt(format!(
            "medvault_record_chunks: record {} of provider {}: {what}",
            self.record, self.provider
        ))
    }

    /// Fetches the next chunk (retried once on a dropped connection: a read changes
    /// nothing).
    fn fetch(&mut self) -> Result<()> {
        let index = self.next_chunk as i32;
        let row = self
            .pool
            .reading("read a record", |connection| {
                let statement = connection.prepared(
                    "SELECT crc, bytes FROM medvault_record_chunks
                     WHERE provider = $1 AND record = $2 AND chunk = $3",
                )?;
                connection.query_opt(
                    &statement,
                    &[
                        &self.provider.as_str(),
                        &&self.record.as_bytes()[..],
                        &index,
                    ],
                )
            })?
            .ok_or_else(|| self.damaged(&format!("chunk {index} is missing")))?;
        let crc: i64 = row.get(0);
        let bytes: Vec<u8> = row.get(1);
        let expected_len = (self.remaining).min(CHUNK as u64);
        if bytes.len() as u64 != expected_len || i64::from(crc32fast::hash(&bytes)) != crc {
            return Err(self.damaged(&format!("chunk {index} fails its check")));
        }
        self.chunk = bytes;
        self.at = 0;
        self.next_chunk += 1;
        Ok(())
    }
}

impl Read for PgRecordReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.chunk.len() {
            if self.remaining == 0 {
                if !self.checked {
                    let digest: Digest = std::mem::take(&mut self.hasher).finalize().into();
                    if digest != self.meta.digest || self.next_chunk != self.meta.chunks {
                        return Err(self.damaged("its SHA-256 differs").into());
                    }
                    self.checked = true;
                }
                return Ok(0);
            }
            self.fetch()?;
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.hasher.update(&buf[..n]);
        self.at += n;
        self.remaining -= n as u64;
        Ok(n)
    }
}

impl From<PgStore> for crate::Cloud {
    fn from(store: PgStore) -> Self {
        crate::Cloud::with_store(store)
    }
}
