//! Record table files (`MVRT`, FORMAT.md "Record table file"): the records one batch
//! committed, `record id ‖ SHA-256 of the sealed record` in id order, one immutable
//! file per epoch that has any. The catalog's commitment of the epoch (its
//! `records_root` and count) is what authenticates a file when the store opens it.

use std::path::Path;

use crate::crypto::merkle::Digest;
use crate::error::{Error, IoAt, Result};
use crate::index::log::RecordTable;
use crate::index::manifest::EpochInfo;
use crate::keys::RecordId;
use crate::store::disk::Disk;
use crate::wire::{CountWidth, Reader, put_preamble};

/// Magic bytes of a record table file.
pub const TABLE_MAGIC: &[u8; 4] = b"MVRT";
/// The record table file format version.
pub const TABLE_VERSION: u8 = 1;

/// Writes `table` to `path` and syncs it (the caller syncs the directory).
pub(crate) fn write(disk: &Disk, path: &Path, table: &RecordTable) -> Result<()> {
    let mut out = Vec::with_capacity(10 + table.len() * 48);
    put_preamble(&mut out, TABLE_MAGIC, TABLE_VERSION, 0);
    out.extend_from_slice(&(table.len() as u32).to_be_bytes());
    for (id, digest) in table.entries() {
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(digest);
    }
    let file = disk.create_truncate(path).at("create", path)?;
    disk.write_at(&file, &out, 0).at("write", path)?;
    disk.sync(&file).at("sync", path)
}

/// Reads the table at `path` and checks it against the epoch's commitment `info`
/// ([`Error::Corrupt`] naming `name` otherwise).
pub(crate) fn read(path: &Path, name: &str, info: &EpochInfo) -> Result<RecordTable> {
    let corrupt = |detail: &str| Error::Corrupt {
        what: format!("record table {name}: {detail}"),
    };
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(corrupt("missing")),
        Err(e) => return Err(e).at("read", path),
    };
    let parsed = parse(&bytes).map_err(|e| corrupt(&e.to_string()))?;
    if parsed.len() != info.records as usize || parsed.root() != info.records_root {
        return Err(corrupt("differs from the catalog's commitment"));
    }
    Ok(parsed)
}

/// Parses a record table file's bytes (no check against a commitment).
pub(crate) fn parse(bytes: &[u8]) -> Result<RecordTable> {
    let mut r = Reader::new(bytes, "record table file");
    r.preamble(TABLE_MAGIC, TABLE_VERSION, &[0])?;
    let count = r.count(CountWidth::U32, 48, "record count")?;
    let mut entries: Vec<(RecordId, Digest)> = Vec::with_capacity(count);
    for _ in 0..count {
        entries.push((
            RecordId::from_bytes(r.array("record id")?),
            r.array("digest")?,
        ));
    }
    r.finish()?;
    RecordTable::new(entries)
}

/// For the fuzz target: parses a record table file; its entry count and root.
#[cfg(feature = "fuzzing")]
pub fn parse_for_fuzzing(bytes: &[u8]) -> Result<(usize, Digest)> {
    parse(bytes).map(|t| (t.len(), t.root()))
}
