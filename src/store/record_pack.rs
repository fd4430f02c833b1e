//! The directory store's record pack (`MVRP`, FORMAT.md "Record pack"): a batch of one
//! provider's small sealed records in one file, written whole and fsynced once, so a
//! batch of notes costs one file and two syncs instead of a file and two syncs each
//! (`cargo bench -p medvault-server --bench server -- uploads`). A pack is renamed into place complete: it is there
//! whole or not at all.
//!
//! The index comes first and has its own checksum, so opening the store reads only the
//! index; each record has its own SHA-256 in the index, checked when it is read.

use std::fs::File;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::error::{Error, IoAt, Result};
use crate::keys::RecordId;
use crate::store::disk::{Disk, read_exact_at};

/// Magic bytes of a record pack.
pub const RECORD_PACK_MAGIC: &[u8; 4] = b"MVRP";
/// The record pack format version.
pub const RECORD_PACK_VERSION: u8 = 1;
const ALG_SHA256: u8 = 1;
const HEADER_LEN: u64 = 8 + 4;
/// `record id ‖ uploaded_at ‖ offset ‖ size ‖ SHA-256(sealed)`.
const ENTRY_LEN: u64 = 16 + 8 + 8 + 8 + 32;
const CHECKSUM_LEN: u64 = 32;
/// Most records in one pack.
pub const MAX_PACK_RECORDS: usize = 4096;

/// One record of a pack, as its index lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PackEntry {
    pub(crate) record: RecordId,
    pub(crate) uploaded_at: u64,
    pub(crate) offset: u64,
    pub(crate) size: u64,
    pub(crate) digest: [u8; 32],
}

impl PackEntry {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.record.as_bytes());
        out.extend_from_slice(&self.uploaded_at.to_be_bytes());
        out.extend_from_slice(&self.offset.to_be_bytes());
        out.extend_from_slice(&self.size.to_be_bytes());
        out.extend_from_slice(&self.digest);
    }

    fn decode(bytes: &[u8]) -> PackEntry {
        let word = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_be_bytes(b)
        };
        let mut id = [0u8; 16];
        id.copy_from_slice(&bytes[..16]);
        let mut digest = [0u8; 32];
        digest.copy_from_slice(&bytes[40..72]);
        PackEntry {
            record: RecordId::from_bytes(id),
            uploaded_at: word(16),
            offset: word(24),
            size: word(32),
            digest,
        }
    }
}

fn corrupt(name: &str, what: &str) -> Error {
    Error::Corrupt {
        what: format!("record pack {name}: {what}"),
    }
}

/// The file name of a pack whose first record is `first` (its id is stored once, so
/// the name is unique).
pub(crate) fn file_name(first: RecordId) -> String {
    let hex: String = first
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{hex}.mvrp")
}

/// Writes `records` (id, sealed bytes and their SHA-256, checked by the caller; 1 to
/// [`MAX_PACK_RECORDS`]) uploaded at `uploaded_at` to a new file at `path` and fsyncs
/// it; returns each one's entry. The digests are taken as given: the store has just
/// checked them against the signed batch, and hashing again would double the work.
pub(crate) fn write(
    disk: &Disk,
    path: &Path,
    uploaded_at: u64,
    records: &[(RecordId, &[u8], [u8; 32])],
) -> Result<Vec<PackEntry>> {
    if records.is_empty() || records.len() > MAX_PACK_RECORDS {
        return Err(Error::InvalidArgument(
            "a record pack holds 1 to 4096 records",
        ));
    }
    let index_end = HEADER_LEN + ENTRY_LEN * records.len() as u64 + CHECKSUM_LEN;
    let mut offset = index_end;
    let entries: Vec<PackEntry> = records
        .iter()
        .map(|(record, sealed, digest)| {
            let entry = PackEntry {
                record: *record,
                uploaded_at,
                offset,
                size: sealed.len() as u64,
                digest: *digest,
            };
            offset += entry.size;
            entry
        })
        .collect();
    let mut out = Vec::with_capacity(usize::try_from(offset).unwrap_or(0));
    out.extend_from_slice(RECORD_PACK_MAGIC);
    out.extend_from_slice(&[RECORD_PACK_VERSION, ALG_SHA256, 0, 0]);
    out.extend_from_slice(&(records.len() as u32).to_be_bytes());
    for entry in &entries {
        entry.encode(&mut out);
    }
    let checksum = Sha256::digest(&out);
    out.extend_from_slice(&checksum);
    for (_, sealed, _) in records {
        out.extend_from_slice(sealed);
    }
    let file = disk.create_new(path).at("create", path)?;
    disk.write_at(&file, &out, 0).at("write", path)?;
    disk.sync(&file).at("sync", path)?;
    Ok(entries)
}

/// The index of the pack at `path` (named `name` in errors), checked: its checksum, and
/// every record inside the file, after the index, without overlap.
pub(crate) fn index(path: &Path, name: &str) -> Result<Vec<PackEntry>> {
    let file = File::open(path).at("open", path)?;
    let len = file.metadata().at("inspect", path)?.len();
    if len < HEADER_LEN + CHECKSUM_LEN {
        return Err(corrupt(name, "shorter than its header"));
    }
    let mut head = [0u8; HEADER_LEN as usize];
    read_exact_at(&file, &mut head, 0).at("read", path)?;
    if &head[..4] != RECORD_PACK_MAGIC {
        return Err(corrupt(name, "wrong magic bytes"));
    }
    if head[4] != RECORD_PACK_VERSION {
        return Err(Error::UnsupportedVersion {
            format: "record pack",
            version: head[4],
        });
    }
    if head[5] != ALG_SHA256 || head[6..8] != [0, 0] {
        return Err(corrupt(name, "header fields"));
    }
    let count = u32::from_be_bytes([head[8], head[9], head[10], head[11]]) as u64;
    if count == 0 || count > MAX_PACK_RECORDS as u64 {
        return Err(corrupt(name, "record count"));
    }
    let index_end = HEADER_LEN + ENTRY_LEN * count + CHECKSUM_LEN;
    if len < index_end {
        return Err(corrupt(name, "shorter than its index"));
    }
    let mut index = vec![0u8; (index_end - HEADER_LEN) as usize];
    read_exact_at(&file, &mut index, HEADER_LEN).at("read", path)?;
    let (entries_bytes, checksum) = index.split_at(index.len() - CHECKSUM_LEN as usize);
    let mut hasher = Sha256::new();
    hasher.update(head);
    hasher.update(entries_bytes);
    if hasher.finalize().as_slice() != checksum {
        return Err(corrupt(name, "index checksum"));
    }
    let entries: Vec<PackEntry> = entries_bytes
        .chunks_exact(ENTRY_LEN as usize)
        .map(PackEntry::decode)
        .collect();
    let mut next = index_end;
    for entry in &entries {
        if entry.offset != next {
            return Err(corrupt(name, "records out of place"));
        }
        next = entry
            .offset
            .checked_add(entry.size)
            .ok_or_else(|| corrupt(name, "record size"))?;
    }
    if next != len {
        return Err(corrupt(
            name,
            "length does not match its index (torn or truncated)",
        ));
    }
    Ok(entries)
}

/// Reads record `at` (its place in the index) of the pack at `path`, which must be
/// `record` of `size` bytes, and checks it against its SHA-256.
pub(crate) fn read(
    path: &Path,
    name: &str,
    at: u32,
    record: RecordId,
    size: u64,
) -> Result<Vec<u8>> {
    let file = File::open(path).at("open", path)?;
    let mut raw = [0u8; ENTRY_LEN as usize];
    read_exact_at(&file, &mut raw, HEADER_LEN + ENTRY_LEN * u64::from(at))
        .map_err(|_| corrupt(name, "shorter than when it was opened"))?;
    let entry = PackEntry::decode(&raw);
    if entry.record != record || entry.size != size {
        return Err(corrupt(name, "index changed since it was opened"));
    }
    let mut sealed = vec![0u8; usize::try_from(size).map_err(|_| corrupt(name, "record size"))?];
    read_exact_at(&file, &mut sealed, entry.offset)
        .map_err(|_| corrupt(name, "shorter than when it was opened"))?;
    if Sha256::digest(&sealed).as_slice() != entry.digest {
        return Err(corrupt(name, "record checksum"));
    }
    Ok(sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> RecordId {
        RecordId::from_bytes([n; 16])
    }

    #[test]
    fn round_trips_and_detects_every_flip_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.mvrp");
        let a: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
        let b: Vec<u8> = (0..45u32).map(|i| (i * 3) as u8).collect();
        let records = [
            (id(1), &a[..], Sha256::digest(&a).into()),
            (id(2), &b[..], Sha256::digest(&b).into()),
        ];
        let written = write(&Disk::default(), &path, 1_700_000_000, &records).unwrap();
        assert_eq!(index(&path, "p").unwrap(), written);
        assert_eq!(written[1].uploaded_at, 1_700_000_000);
        assert_eq!(read(&path, "p", 0, id(1), 300).unwrap(), a);
        assert_eq!(read(&path, "p", 1, id(2), 45).unwrap(), b);
        // Asked for the wrong record or size, it says so rather than hand out bytes.
        assert!(matches!(
            read(&path, "p", 1, id(1), 45),
            Err(Error::Corrupt { .. })
        ));
        // A pack is never overwritten.
        assert!(write(&Disk::default(), &path, 1, &records).is_err());
        let good = std::fs::read(&path).unwrap();
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x20;
            std::fs::write(&path, &bad).unwrap();
            // Every flip is caught when the index is read or when a record is.
            let caught = match index(&path, "p") {
                Err(Error::Corrupt { what }) => {
                    assert!(what.contains("record pack p"), "{what}");
                    true
                }
                Err(Error::UnsupportedVersion { .. }) => at == 4,
                Err(e) => panic!("flip at {at}: {e:?}"),
                Ok(_) => {
                    read(&path, "p", 0, id(1), 300).is_err()
                        || read(&path, "p", 1, id(2), 45).is_err()
                }
            };
            assert!(caught, "flip at {at} went unnoticed");
        }
        for len in [0, 7, 12, 100, good.len() - 46, good.len() - 1] {
            std::fs::write(&path, &good[..len]).unwrap();
            assert!(matches!(index(&path, "p"), Err(Error::Corrupt { .. })));
        }
        let mut longer = good.clone();
        longer.push(0);
        std::fs::write(&path, &longer).unwrap();
        assert!(matches!(index(&path, "p"), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn empty_and_oversized_packs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.mvrp");
        assert!(matches!(
            write(&Disk::default(), &path, 1, &[]),
            Err(Error::InvalidArgument(_))
        ));
        let many: Vec<(RecordId, &[u8], [u8; 32])> = (0..=MAX_PACK_RECORDS)
            .map(|i| {
                (
                    RecordId::from_bytes([(i % 251) as u8; 16]),
                    &b"x"[..],
                    [0; 32],
                )
            })
            .collect();
        assert!(matches!(
            write(&Disk::default(), &path, 1, &many),
            Err(Error::InvalidArgument(_))
        ));
        assert!(!path.exists());
    }
}
