//! The directory store: the embedded default for a cloud on one machine.
//!
//! ```text
//! <root>/LOCK                          held (flock) by the one process that has it open
//! <root>/CATALOG                       which segments, which epochs, the key directory (MVCT)
//! <root>/BROKER                        access requests, decisions and grants, appended (MVBJ)
//! <root>/segments/seg-<id:016x>.mvsf   immutable sorted segments (MVSF)
//! <root>/records/<provider>/<id>.mvrf  one sealed record per file (MVRF)
//! <root>/records/<provider>/<id>.mvrp  a batch of small records in one file (MVRP),
//!                                      named by its first record's id
//! <root>/log/<provider>/<epoch:08x>.mvrt  the records each batch committed (MVRT)
//! <root>/log/<provider>/<epoch:08x>.mvpt  each batch's entries as signed (MVPT)
//! ```
//!
//! **Crash safety.** A segment file is written, fsynced and its directory fsynced
//! before the catalog names it; the catalog is replaced by writing `CATALOG.tmp`,
//! fsyncing it, renaming it over `CATALOG` and fsyncing the directory. Whatever the
//! catalog does not name is not in the store (a record table beyond a provider's
//! committed epochs included), so a crash at any step leaves the old
//! state or the new one, and the next open deletes the leftovers. A call returns only
//! after its commit is durable: an acknowledged batch survives a crash. Merged-away
//! segments are deleted only after the catalog without them is durable. Records, and
//! record packs, are written to a temporary name and renamed into place the same way.
//!
//! **Directed lookups.** The catalog records which epochs each segment covers, so a
//! search probes, for each epoch, only the segment that holds it: unmerged segments do
//! not slow searches down (they still slow the ingest check, which looks everywhere).
//!
//! **Lookups without loading.** Segment files are read with `pread`, not memory-mapped:
//! a mapped file that shrinks or fails to read kills the process with `SIGBUS`, which a
//! library linked into an EHR system must not do, and mapping needs `unsafe`. Each
//! segment keeps about 1.4 bytes per entry in memory (fences, block checksums, a Bloom
//! filter; 140 MB for 10^8 entries); the operating system's page cache is the cache.
//!
//! **Concurrency.** `DirStore` is `Send + Sync`. Any number of threads search at once,
//! each on an immutable [`View`]; appends, merges and record uploads serialize on short
//! internal locks, and a merge builds its output without holding them. Across
//! processes, one process opens a store at a time ([`Error::StoreLocked`]).
//!
//! **After a failed write.** A failure before the catalog rename leaves the store as
//! it was and usable. A failure at or after the rename leaves the committed state
//! unknown to this process, so the store refuses further writes with
//! [`Error::NeedsRecovery`]; reopening recovers whichever state is durable.

use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use std::collections::BTreeMap;

use crate::crypto::merkle::Digest;
use crate::error::{Error, IoAt, Result};
use crate::index::log::{self, EpochPairs, RecordTable};
use crate::index::{IndexBatch, Table};
use crate::keys::identity::{PublicIdentity, VerifyingKey};
use crate::keys::{ProviderId, RecordId};
use crate::store::catalog::{Catalog, SegmentEntry};
use crate::store::disk::Disk;
use crate::store::journal::{BrokerEvent, Journal};
use crate::store::record_file::{self, RecordFileReader};
use crate::store::record_pack;
use crate::store::segment_file::{SegmentFile, SegmentWriter};
use crate::store::{
    Coverage, Digesting, LabelCheck, LogTip, RECORD_STORED, RecordInfo, RecordPlaces,
    SegmentSource, Store, View, check_ingest, check_record_batch, lock, merge_groups, read,
    refuse_stored, write,
};
use crate::store::{pairs_file, table_file};

const CATALOG: &str = "CATALOG";
const CATALOG_TMP: &str = "CATALOG.tmp";
const LOCK: &str = "LOCK";
const SEGMENTS: &str = "segments";
const RECORDS: &str = "records";
const LOG: &str = "log";
const BROKER: &str = "BROKER";
const TMP_PREFIX: &str = ".tmp-";

/// A cloud's store in a directory (see the module documentation).
pub struct DirStore {
    root: PathBuf,
    disk: Disk,
    _lock: File,
    index: RwLock<DirIndex>,
    commit: Mutex<()>,
    merging: Mutex<()>,
    next_segment: AtomicU64,
    next_tmp: AtomicU64,
    records: RwLock<HashMap<(ProviderId, RecordId), RecordMeta>>,
    places: RecordPlaces,
    failed: Mutex<Option<String>>,
    journal: Journal,
    /// Every event in the journal, in order.
    broker: RwLock<Vec<BrokerEvent>>,
}

struct DirIndex {
    catalog: Catalog,
    files: Vec<Arc<SegmentFile>>,
    logs: BTreeMap<ProviderId, Arc<LogTip>>,
    view: Arc<View>,
}

impl DirIndex {
    fn new(
        catalog: Catalog,
        files: Vec<Arc<SegmentFile>>,
        logs: BTreeMap<ProviderId, Arc<LogTip>>,
    ) -> Self {
        let segments = files
            .iter()
            .zip(&catalog.segments)
            .map(|(f, entry)| (f.clone() as Arc<dyn SegmentSource>, entry.coverage.clone()))
            .collect();
        let view = Arc::new(View::new(catalog.epochs.clone(), segments).with_logs(logs.clone()));
        DirIndex {
            catalog,
            files,
            logs,
            view,
        }
    }
}

fn table_name(provider: &ProviderId, epoch: u32) -> String {
    format!("{}/{epoch:08x}.mvrt", provider.as_str())
}

fn pairs_name(provider: &ProviderId, epoch: u32) -> String {
    format!("{}/{epoch:08x}.mvpt", provider.as_str())
}

/// Every provider's log tip from the catalog and the record table files, each table
/// checked against its epoch's commitment; table files past the committed epochs
/// (left by a crash) are deleted.
fn load_logs(root: &Path, catalog: &Catalog) -> Result<BTreeMap<ProviderId, Arc<LogTip>>> {
    let mut logs = BTreeMap::new();
    for (provider, epochs) in &catalog.epochs {
        let mut tables = Vec::with_capacity(epochs.len());
        let mut pairs = Vec::with_capacity(epochs.len());
        for (epoch, info) in epochs.iter().enumerate() {
            tables.push(Arc::new(if info.records == 0 {
                RecordTable::new(Vec::new())?
            } else {
                let name = table_name(provider, epoch as u32);
                table_file::read(&root.join(LOG).join(&name), &name, info)?
            }));
            pairs.push(Arc::new(if info.entries == 0 {
                EpochPairs::new(Table::default())
            } else {
                let name = pairs_name(provider, epoch as u32);
                pairs_file::read(&root.join(LOG).join(&name), &name, info)?
            }));
        }
        if epochs.is_empty() {
            continue;
        }
        let tip = LogTip {
            chain: log::chain_of(provider, epochs),
            signature: catalog
                .signatures
                .get(provider)
                .cloned()
                .unwrap_or_default(),
            tables,
            pairs,
        };
        logs.insert(provider.clone(), Arc::new(tip));
    }
    let log_dir = root.join(LOG);
    for provider_dir in std::fs::read_dir(&log_dir).at("list", &log_dir)? {
        let provider_dir = provider_dir.at("list", &log_dir)?;
        let Ok(provider) = ProviderId::new(&provider_dir.file_name().to_string_lossy()) else {
            continue;
        };
        let committed = catalog.epochs.get(&provider).map_or(0, Vec::len);
        for entry in std::fs::read_dir(provider_dir.path()).at("list", &provider_dir.path())? {
            let entry = entry.at("list", &provider_dir.path())?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let epoch = (name.strip_suffix(".mvrt"))
                .or_else(|| name.strip_suffix(".mvpt"))
                .filter(|hex| hex.len() == 8)
                .and_then(|hex| u32::from_str_radix(hex, 16).ok());
            if epoch.is_some_and(|e| e as usize >= committed) {
                std::fs::remove_file(entry.path()).at("remove a leftover", &entry.path())?;
            }
        }
    }
    Ok(logs)
}

#[derive(Debug, Clone, Copy)]
struct RecordMeta {
    size: u64,
    uploaded_at: u64,
    /// In a pack (named by its first record), at this place of its index; in a file of
    /// its own when `None`.
    packed: Option<(RecordId, u32)>,
}

impl std::fmt::Debug for DirStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let index = read(&self.index);
        write!(
            f,
            "DirStore({}, {} segments, {} records)",
            self.root.display(),
            index.files.len(),
            read(&self.records).len()
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_record_name(name: &str) -> Option<RecordId> {
    let hex = name.strip_suffix(".mvrf")?;
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut id = [0u8; 16];
    for (i, byte) in id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(RecordId::from_bytes(id))
}

fn segment_name(id: u64) -> String {
    format!("seg-{id:016x}.mvsf")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("seg-")?.strip_suffix(".mvsf")?;
    (hex.len() == 16)
        .then(|| u64::from_str_radix(hex, 16).ok())
        .flatten()
}

impl DirStore {
    /// Opens the store in `root`, creating it if the directory is empty or missing.
    ///
    /// Checks the catalog, the header, length and directory checksum of every segment
    /// it names, and the header and length of every record file ([`Error::Corrupt`]
    /// naming the file otherwise); then deletes what a crash left behind (temporary
    /// files, segments no catalog names).
    pub fn open(root: impl AsRef<Path>) -> Result<DirStore> {
        DirStore::open_with(root.as_ref(), Disk::default())
    }

    pub(crate) fn open_with(root: &Path, disk: Disk) -> Result<DirStore> {
        for dir in [root.join(SEGMENTS), root.join(RECORDS), root.join(LOG)] {
            std::fs::create_dir_all(&dir).at("create the store directory", &dir)?;
        }
        let lock_path = root.join(LOCK);
        let lock_file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .at("open the lock file", &lock_path)?;
        lock_exclusively(&lock_file, &lock_path)?;
        let catalog_path = root.join(CATALOG);
        let catalog = match std::fs::read(&catalog_path) {
            Ok(bytes) => Catalog::from_bytes(&bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Catalog::default(),
            Err(e) => return Err(e).at("read the catalog", &catalog_path),
        };
        let segments_dir = root.join(SEGMENTS);
        let mut files = Vec::with_capacity(catalog.segments.len());
        for entry in &catalog.segments {
            let path = segments_dir.join(segment_name(entry.id));
            if !path.exists() {
                return Err(Error::Corrupt {
                    what: format!("segment file {}: missing", segment_name(entry.id)),
                });
            }
            let file = SegmentFile::open(&path)?;
            if file.len() != entry.entries {
                return Err(Error::Corrupt {
                    what: format!(
                        "segment file {}: entry count differs from the catalog",
                        file.name()
                    ),
                });
            }
            files.push(Arc::new(file));
        }
        catalog.check_consistency()?;
        // Leftovers of interrupted writes: never named by the catalog, safe to delete.
        let _ = std::fs::remove_file(root.join(CATALOG_TMP));
        for entry in std::fs::read_dir(&segments_dir).at("list", &segments_dir)? {
            let entry = entry.at("list", &segments_dir)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let named = parse_segment_name(&name)
                .is_some_and(|id| catalog.segments.iter().any(|s| s.id == id));
            if !named && (parse_segment_name(&name).is_some() || name.starts_with(TMP_PREFIX)) {
                std::fs::remove_file(entry.path()).at("remove a leftover", &entry.path())?;
            }
        }
        let logs = load_logs(root, &catalog)?;
        let places = RecordPlaces::from_logs(&logs);
        let records = scan_records(&root.join(RECORDS))?;
        let next_segment = catalog.next_segment;
        let (journal, broker) = Journal::open(&disk, &root.join(BROKER))?;
        Ok(DirStore {
            root: root.to_owned(),
            disk,
            _lock: lock_file,
            index: RwLock::new(DirIndex::new(catalog, files, logs)),
            commit: Mutex::new(()),
            merging: Mutex::new(()),
            next_segment: AtomicU64::new(next_segment),
            next_tmp: AtomicU64::new(0),
            records: RwLock::new(records),
            places,
            failed: Mutex::new(None),
            journal,
            broker: RwLock::new(broker),
        })
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Reads everything and checks every checksum: each segment's blocks, values,
    /// order, fences and Bloom filter, and each record file. Opening checks only
    /// headers and directories; lookups check what they read.
    pub fn verify(&self) -> Result<()> {
        let files = read(&self.index).files.clone();
        for file in files {
            file.verify()?;
        }
        let keys: Vec<_> = read(&self.records).keys().cloned().collect();
        for (provider, record) in keys {
            self.record(&provider, record)?;
        }
        Ok(())
    }

    fn segment_path(&self, id: u64) -> PathBuf {
        self.root.join(SEGMENTS).join(segment_name(id))
    }

    /// A record's path, and its name in errors (`provider/id`).
    fn record_file(&self, provider: &ProviderId, record: RecordId) -> (PathBuf, String) {
        let id = hex(record.as_bytes());
        let path = self
            .root
            .join(RECORDS)
            .join(provider.as_str())
            .join(format!("{id}.mvrf"));
        (path, format!("{}/{id}", provider.as_str()))
    }

    fn open_record_file(
        &self,
        provider: &ProviderId,
        record: RecordId,
    ) -> Result<RecordFileReader> {
        let (path, name) = self.record_file(provider, record);
        RecordFileReader::open(&path, &name)
    }

    /// A pack's path, and its name in errors (`provider/first-id`).
    fn pack_file(&self, provider: &ProviderId, first: RecordId) -> (PathBuf, String) {
        let file = record_pack::file_name(first);
        let name = format!("{}/{}", provider.as_str(), file.trim_end_matches(".mvrp"));
        (
            self.root.join(RECORDS).join(provider.as_str()).join(file),
            name,
        )
    }

    /// `provider`'s records directory, created (and made durable) if missing.
    fn provider_records_dir(&self, provider: &ProviderId) -> Result<PathBuf> {
        let dir = self.root.join(RECORDS).join(provider.as_str());
        if !dir.is_dir() {
            match std::fs::create_dir(&dir) {
                Ok(()) => {
                    let records = self.root.join(RECORDS);
                    self.disk.sync_dir(&records).at("sync", &records)?
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e).at("create", &dir),
            }
        }
        Ok(dir)
    }

    /// A unique temporary name in `dir` for `name`: uploads run in parallel; only the
    /// rename serializes.
    fn temporary(&self, dir: &Path, name: &str) -> PathBuf {
        dir.join(format!(
            "{TMP_PREFIX}{name}-{}",
            self.next_tmp.fetch_add(1, Ordering::SeqCst)
        ))
    }

    fn check_writable(&self) -> Result<()> {
        match lock(&self.failed).as_ref() {
            Some(reason) => Err(Error::NeedsRecovery(reason.clone())),
            None => Ok(()),
        }
    }

    /// Records that a write failed past its point of no return.
    fn poison(&self, action: &'static str, path: &Path, e: std::io::Error) -> Error {
        let error = Error::File {
            action,
            path: path.to_owned(),
            source: e,
        };
        *lock(&self.failed) = Some(error.to_string());
        error
    }

    fn is_poisoned(&self) -> bool {
        lock(&self.failed).is_some()
    }

    /// Replaces the catalog atomically and durably.
    fn commit_catalog(&self, catalog: &Catalog) -> Result<()> {
        let tmp = self.root.join(CATALOG_TMP);
        let file = self.disk.create_truncate(&tmp).at("create", &tmp)?;
        self.disk
            .write_at(&file, &catalog.to_bytes(), 0)
            .at("write", &tmp)?;
        self.disk.sync(&file).at("sync", &tmp)?;
        drop(file);
        self.disk
            .rename(&tmp, &self.root.join(CATALOG))
            .map_err(|e| self.poison("rename into place", &tmp, e))?;
        self.disk
            .sync_dir(&self.root)
            .map_err(|e| self.poison("sync", &self.root, e))?;
        Ok(())
    }

    /// Writes a segment file from sorted entries and makes its name durable; on error
    /// removes what it wrote.
    fn write_segment(
        &self,
        id: u64,
        entries: u64,
        fill: impl FnOnce(&mut SegmentWriter<'_>) -> Result<()>,
    ) -> Result<SegmentFile> {
        let path = self.segment_path(id);
        let written = (|| {
            let mut writer = SegmentWriter::create(&self.disk, &path, entries)?;
            fill(&mut writer)?;
            let file = writer.finish()?;
            let segments = self.root.join(SEGMENTS);
            self.disk.sync_dir(&segments).at("sync", &segments)?;
            Ok(file)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&path);
        }
        written
    }

    /// Commits `next` and publishes `files` and `logs` with it; if the commit fails
    /// before its point of no return, removes the new segments `new_segments`.
    fn commit(
        &self,
        next: Catalog,
        files: Vec<Arc<SegmentFile>>,
        logs: BTreeMap<ProviderId, Arc<LogTip>>,
        new_segments: &[u64],
    ) -> Result<()> {
        if let Err(e) = self.commit_catalog(&next) {
            if !self.is_poisoned() {
                for id in new_segments {
                    let _ = std::fs::remove_file(self.segment_path(*id));
                }
            }
            return Err(e);
        }
        *write(&self.index) = DirIndex::new(next, files, logs);
        Ok(())
    }

    /// Writes the log files of `batch` (its record table if it has records, its
    /// entries if it has any) and makes their names durable; on failure, removes what
    /// it wrote.
    fn write_log_files(&self, batch: &IndexBatch) -> Result<()> {
        let (provider, epoch) = (&batch.provider, batch.epoch);
        let dir = self.root.join(LOG).join(provider.as_str());
        if !dir.is_dir() {
            std::fs::create_dir_all(&dir).at("create", &dir)?;
            let log_dir = self.root.join(LOG);
            self.disk.sync_dir(&log_dir).at("sync", &log_dir)?;
        }
        let table_path = self.root.join(LOG).join(table_name(provider, epoch));
        let pairs_path = self.root.join(LOG).join(pairs_name(provider, epoch));
        let written = (|| {
            if batch.records.len() > 0 {
                table_file::write(&self.disk, &table_path, &batch.records)?;
            }
            if !batch.pairs.table().is_empty() {
                pairs_file::write(&self.disk, &pairs_path, &batch.pairs)?;
            }
            self.disk.sync_dir(&dir).at("sync", &dir)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&table_path);
            let _ = std::fs::remove_file(&pairs_path);
        }
        written
    }
}

/// Takes the store's lock. A process that forks holds a copy of the descriptor (and
/// so the lock) until it execs; a short retry rides that out, a real owner does not
/// let go.
fn lock_exclusively(file: &File, path: &Path) -> Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(std::fs::TryLockError::WouldBlock) => return Err(Error::StoreLocked),
            Err(std::fs::TryLockError::Error(e)) => return Err(e).at("lock", path),
        }
    }
}

/// A record found in two places on disk (a file and a pack, or two packs): which one
/// is right cannot be told, so the store says so by name.
fn stored_twice(provider: &ProviderId, record: RecordId) -> Error {
    Error::Corrupt {
        what: format!(
            "records: {}/{} is stored twice",
            provider.as_str(),
            hex(record.as_bytes())
        ),
    }
}

fn scan_records(dir: &Path) -> Result<HashMap<(ProviderId, RecordId), RecordMeta>> {
    let mut records = HashMap::new();
    for provider_dir in std::fs::read_dir(dir).at("list", dir)? {
        let provider_dir = provider_dir.at("list", dir)?;
        let Ok(provider) = ProviderId::new(&provider_dir.file_name().to_string_lossy()) else {
            continue;
        };
        if !provider_dir
            .file_type()
            .at("inspect", &provider_dir.path())?
            .is_dir()
        {
            continue;
        }
        for entry in std::fs::read_dir(provider_dir.path()).at("list", &provider_dir.path())? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(TMP_PREFIX) {
                std::fs::remove_file(entry.path())?;
                continue;
            }
            if let Some(hex) = name.strip_suffix(".mvrp") {
                let label = format!("{}/{hex}", provider.as_str());
                let entries = record_pack::index(&entry.path(), &label)?;
                if record_pack::file_name(entries[0].record) != name {
                    return Err(Error::Corrupt {
                        what: format!("record pack {label}: not named by its first record"),
                    });
                }
                for (at, packed) in entries.iter().enumerate() {
                    let meta = RecordMeta {
                        size: packed.size,
                        uploaded_at: packed.uploaded_at,
                        packed: Some((entries[0].record, at as u32)),
                    };
                    if records
                        .insert((provider.clone(), packed.record), meta)
                        .is_some()
                    {
                        return Err(stored_twice(&provider, packed.record));
                    }
                }
                continue;
            }
            let Some(record) = parse_record_name(&name) else {
                continue;
            };
            let label = format!("{}/{}", provider.as_str(), name.trim_end_matches(".mvrf"));
            let (size, uploaded_at) = record_file::stat(&entry.path(), &label)?;
            let meta = RecordMeta {
                size,
                uploaded_at,
                packed: None,
            };
            if records.insert((provider.clone(), record), meta).is_some() {
                return Err(stored_twice(&provider, record));
            }
        }
    }
    Ok(records)
}

impl Store for DirStore {
    fn view(&self) -> Arc<View> {
        read(&self.index).view.clone()
    }

    fn append(&self, batch: &IndexBatch, key: &VerifyingKey) -> Result<()> {
        let _commit = lock(&self.commit);
        self.check_writable()?;
        let tip = check_ingest(&self.view(), &self.places, batch, key, LabelCheck::InView)?;
        let (provider, epoch, table) = (&batch.provider, batch.epoch, batch.table());
        let (mut next, mut files, mut logs) = {
            let index = read(&self.index);
            (
                index.catalog.clone(),
                index.files.clone(),
                index.logs.clone(),
            )
        };
        self.write_log_files(batch)?;
        let id = self.next_segment.fetch_add(1, Ordering::SeqCst);
        let file = self.write_segment(id, table.len() as u64, |writer| {
            for (i, label) in table.labels().iter().enumerate() {
                writer.push(label, table.value(i))?;
            }
            Ok(())
        })?;
        next.sequence += 1;
        next.next_segment = self.next_segment.load(Ordering::SeqCst);
        next.epochs
            .entry(provider.clone())
            .or_default()
            .push(batch.info);
        next.signatures
            .insert(provider.clone(), batch.signature.clone());
        next.segments.push(SegmentEntry {
            id,
            entries: file.len(),
            coverage: Coverage::epoch(provider, epoch),
        });
        files.push(Arc::new(file));
        logs.insert(provider.clone(), Arc::new(tip));
        self.commit(next, files, logs, &[id])?;
        self.places.add(provider, epoch, &batch.records);
        Ok(())
    }

    fn merge(&self) -> Result<()> {
        let _one_merge = lock(&self.merging);
        self.check_writable()?;
        let (inputs, input_entries) = {
            let index = read(&self.index);
            (index.files.clone(), index.catalog.segments.clone())
        };
        let groups = merge_groups(
            &input_entries
                .iter()
                .map(|s| &s.coverage)
                .collect::<Vec<_>>(),
        );
        if groups.is_empty() {
            return Ok(());
        }
        // One merged file per provider with two segments or more (each written and made
        // durable before the catalog names it); on any failure, the new files go.
        let mut merged: Vec<(SegmentEntry, SegmentFile)> = Vec::with_capacity(groups.len());
        let mut merged_away = vec![false; inputs.len()];
        let remove_new = |merged: &[(SegmentEntry, SegmentFile)]| {
            for (entry, _) in merged {
                let _ = std::fs::remove_file(self.segment_path(entry.id));
            }
        };
        for positions in groups.values() {
            let group: Vec<Arc<SegmentFile>> =
                positions.iter().map(|&i| inputs[i].clone()).collect();
            let total: u64 = group.iter().map(|f| f.len()).sum();
            let id = self.next_segment.fetch_add(1, Ordering::SeqCst);
            match self.write_segment(id, total, |writer| merge_into(&group, writer)) {
                Ok(file) => merged.push((
                    SegmentEntry {
                        id,
                        entries: total,
                        coverage: Coverage::union(
                            positions.iter().map(|&i| &input_entries[i].coverage),
                        ),
                    },
                    file,
                )),
                Err(e) => {
                    remove_new(&merged);
                    return Err(e);
                }
            }
            for &i in positions {
                merged_away[i] = true;
            }
        }

        let _commit = lock(&self.commit);
        if let Err(e) = self.check_writable() {
            remove_new(&merged);
            return Err(e);
        }
        let (current, files, logs) = {
            let index = read(&self.index);
            (
                index.catalog.clone(),
                index.files.clone(),
                index.logs.clone(),
            )
        };
        // Only merges remove segments, and they run one at a time: the inputs are
        // still the oldest segments.
        if files.len() < inputs.len() || !files.iter().zip(&inputs).all(|(a, b)| Arc::ptr_eq(a, b))
        {
            remove_new(&merged);
            return Err(Error::InvalidArgument(
                "the store's segments changed under a merge",
            ));
        }
        let new_ids: Vec<u64> = merged.iter().map(|(entry, _)| entry.id).collect();
        let retired: Vec<u64> = current.segments[..inputs.len()]
            .iter()
            .zip(&merged_away)
            .filter(|(_, away)| **away)
            .map(|(s, _)| s.id)
            .collect();
        let kept = || (0..inputs.len()).filter(|&i| !merged_away[i]);
        let mut next = current.clone();
        next.sequence += 1;
        next.next_segment = self.next_segment.load(Ordering::SeqCst);
        let (merged_entries, merged_files): (Vec<SegmentEntry>, Vec<SegmentFile>) =
            merged.into_iter().unzip();
        next.segments = merged_entries
            .into_iter()
            .chain(kept().map(|i| current.segments[i].clone()))
            .chain(current.segments[inputs.len()..].iter().cloned())
            .collect();
        let files = merged_files
            .into_iter()
            .map(Arc::new)
            .chain(kept().map(|i| files[i].clone()))
            .chain(files[inputs.len()..].iter().cloned())
            .collect();
        self.commit(next, files, logs, &new_ids)?;
        // The catalog without them is durable: the old files can go. Readers holding
        // an older view keep their open descriptors. A failure here leaves orphans the
        // next open deletes.
        for old in retired {
            let _ = self.disk.remove(&self.segment_path(old));
        }
        let _ = self.disk.sync_dir(&self.root.join(SEGMENTS));
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
        self.check_writable()?;
        let key = (provider.clone(), record);
        if read(&self.records).contains_key(&key) {
            return Err(RECORD_STORED);
        }
        let dir = self.provider_records_dir(provider)?;
        let tmp = self.temporary(&dir, &hex(record.as_bytes()));
        let mut digesting = Digesting::new(sealed);
        let written = record_file::write(&self.disk, &tmp, uploaded_at, &mut digesting)
            .and_then(|size| digesting.check(provider, expected).map(|_| size));
        let size = match written {
            Ok(size) => size,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let mut records = write(&self.records);
        if records.contains_key(&key) {
            let _ = std::fs::remove_file(&tmp);
            return Err(RECORD_STORED);
        }
        self.check_writable()?;
        self.disk
            .rename(&tmp, &self.record_file(provider, record).0)
            .map_err(|e| self.poison("rename into place", &tmp, e))?;
        self.disk
            .sync_dir(&dir)
            .map_err(|e| self.poison("sync", &dir, e))?;
        records.insert(
            key,
            RecordMeta {
                size,
                uploaded_at,
                packed: None,
            },
        );
        Ok(size)
    }

    /// One pack for the lot: written and fsynced under a temporary name, renamed into
    /// place and its directory fsynced, then visible.
    fn put_records(
        &self,
        provider: &ProviderId,
        uploaded_at: u64,
        batch: &[(RecordId, &[u8], Digest)],
    ) -> Result<()> {
        self.check_writable()?;
        check_record_batch(provider, batch)?;
        {
            let stored = read(&self.records);
            refuse_stored(provider, batch, |key| stored.contains_key(key))?;
        }
        let dir = self.provider_records_dir(provider)?;
        let first = batch[0].0;
        let (path, _) = self.pack_file(provider, first);
        let tmp = self.temporary(&dir, &record_pack::file_name(first));
        let entries = match record_pack::write(&self.disk, &tmp, uploaded_at, batch) {
            Ok(entries) => entries,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let mut records = write(&self.records);
        if let Err(e) = refuse_stored(provider, batch, |key| records.contains_key(key)) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        self.check_writable()?;
        self.disk
            .rename(&tmp, &path)
            .map_err(|e| self.poison("rename into place", &tmp, e))?;
        self.disk
            .sync_dir(&dir)
            .map_err(|e| self.poison("sync", &dir, e))?;
        for (at, entry) in entries.iter().enumerate() {
            records.insert(
                (provider.clone(), entry.record),
                RecordMeta {
                    size: entry.size,
                    uploaded_at,
                    packed: Some((first, at as u32)),
                },
            );
        }
        Ok(())
    }

    fn record(&self, provider: &ProviderId, record: RecordId) -> Result<Option<Vec<u8>>> {
        let Some(meta) = read(&self.records)
            .get(&(provider.clone(), record))
            .copied()
        else {
            return Ok(None);
        };
        if let Some((first, at)) = meta.packed {
            let (path, name) = self.pack_file(provider, first);
            return record_pack::read(&path, &name, at, record, meta.size).map(Some);
        }
        let (path, name) = self.record_file(provider, record);
        Ok(Some(record_file::read(&path, &name)?))
    }

    fn record_reader(
        &self,
        provider: &ProviderId,
        record: RecordId,
    ) -> Result<Option<Box<dyn Read + Send>>> {
        let Some(meta) = read(&self.records)
            .get(&(provider.clone(), record))
            .copied()
        else {
            return Ok(None);
        };
        if meta.packed.is_some() {
            // Packed records are small (a batch is read whole by the cloud as well).
            let whole = self.record(provider, record)?;
            return Ok(whole.map(|bytes| Box::new(std::io::Cursor::new(bytes)) as _));
        }
        Ok(Some(Box::new(self.open_record_file(provider, record)?)))
    }

    fn record_place(&self, provider: &ProviderId, record: RecordId) -> Option<(u32, u32)> {
        self.places.get(provider, record)
    }

    fn directory(&self) -> BTreeMap<ProviderId, PublicIdentity> {
        read(&self.index).catalog.directory.clone()
    }

    fn broker_events(&self) -> Vec<BrokerEvent> {
        read(&self.broker).clone()
    }

    fn put_broker_event(&self, event: &BrokerEvent) -> Result<()> {
        self.check_writable()?;
        let mut events = write(&self.broker);
        self.journal.append(&self.disk, event)?;
        events.push(event.clone());
        Ok(())
    }

    fn put_provider_keys(&self, provider: &ProviderId, keys: &PublicIdentity) -> Result<()> {
        let _commit = lock(&self.commit);
        self.check_writable()?;
        let (mut next, files, logs) = {
            let index = read(&self.index);
            (
                index.catalog.clone(),
                index.files.clone(),
                index.logs.clone(),
            )
        };
        next.sequence += 1;
        next.directory.insert(provider.clone(), keys.clone());
        self.commit(next, files, logs, &[])
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
}

/// k-way merge of segment files into `writer` (a min-heap of the scans' heads); every
/// input block is checksum-checked on the way, and a repeated label is a collision.
fn merge_into(inputs: &[Arc<SegmentFile>], writer: &mut SegmentWriter<'_>) -> Result<()> {
    let mut scans: Vec<_> = inputs.iter().map(|f| f.scan()).collect();
    let mut values = vec![[0u8; crate::index::VALUE_LEN]; scans.len()];
    let mut heap = BinaryHeap::with_capacity(scans.len());
    for (i, scan) in scans.iter_mut().enumerate() {
        if let Some(entry) = scan.next() {
            let (label, value) = entry?;
            values[i] = value;
            heap.push(std::cmp::Reverse((label, i)));
        }
    }
    while let Some(std::cmp::Reverse((label, i))) = heap.pop() {
        writer.push(&label, &values[i])?;
        if let Some(entry) = scans[i].next() {
            let (label, value) = entry?;
            values[i] = value;
            heap.push(std::cmp::Reverse((label, i)));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "dir_tests.rs"]
mod tests;
