//! Entry files (`MVPT`, FORMAT.md "Entry file"): one batch's entries, `label ‖ value`
//! in label order, exactly as the provider signed them, one immutable file per epoch
//! that has any. Segments are the index the cloud searches and merges; these are the
//! log it proves searches from. The catalog's commitment of the epoch (its
//! `pairs_root` and entry count) is what authenticates a file when the store opens it.

use std::path::Path;

use crate::error::{Error, IoAt, Result};
use crate::index::log::EpochPairs;
use crate::index::manifest::EpochInfo;
use crate::index::{ALG_GGM_AES256_PACKED4, PAIR_LEN, Table};
use crate::store::disk::Disk;
use crate::wire::{Reader, put_preamble};

/// Magic bytes of an entry file.
pub const PAIRS_MAGIC: &[u8; 4] = b"MVPT";
/// The entry file format version.
pub const PAIRS_VERSION: u8 = 1;

/// Writes `pairs` to `path` and syncs it (the caller syncs the directory).
pub(crate) fn write(disk: &Disk, path: &Path, pairs: &EpochPairs) -> Result<()> {
    let table = pairs.table();
    let mut out = Vec::with_capacity(10 + table.len() * PAIR_LEN);
    put_preamble(&mut out, PAIRS_MAGIC, PAIRS_VERSION, ALG_GGM_AES256_PACKED4);
    out.extend_from_slice(&(table.len() as u32).to_be_bytes());
    table.write_pairs(&mut out);
    let file = disk.create_truncate(path).at("create", path)?;
    disk.write_at(&file, &out, 0).at("write", path)?;
    disk.sync(&file).at("sync", path)
}

/// Reads the entries at `path` and checks them against the epoch's commitment `info`
/// ([`Error::Corrupt`] naming `name` otherwise).
pub(crate) fn read(path: &Path, name: &str, info: &EpochInfo) -> Result<EpochPairs> {
    let corrupt = |detail: &str| Error::Corrupt {
        what: format!("entry file {name}: {detail}"),
    };
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(corrupt("missing")),
        Err(e) => return Err(e).at("read", path),
    };
    let parsed = parse(&bytes).map_err(|e| corrupt(&e.to_string()))?;
    if parsed.len() != info.entries as usize || parsed.root() != info.pairs_root {
        return Err(corrupt("differs from the catalog's commitment"));
    }
    Ok(parsed)
}

/// Parses an entry file's bytes (no check against a commitment).
pub(crate) fn parse(bytes: &[u8]) -> Result<EpochPairs> {
    let mut r = Reader::new(bytes, "entry file");
    r.preamble(PAIRS_MAGIC, PAIRS_VERSION, &[ALG_GGM_AES256_PACKED4])?;
    let count = r.u32("entry count")? as usize;
    let table = Table::read_pairs(&mut r, count)?;
    r.finish()?;
    Ok(EpochPairs::new(table))
}

/// For the fuzz target: parses an entry file; its entry count and root.
#[cfg(feature = "fuzzing")]
pub fn parse_for_fuzzing(bytes: &[u8]) -> Result<(usize, crate::crypto::merkle::Digest)> {
    parse(bytes).map(|p| (p.len(), p.root()))
}
