//! The directory store's catalog (`MVCT`, FORMAT.md "Store catalog"): which segment
//! files make up the index, in order, and every provider's epochs. It is the one file
//! replaced atomically on every commit; whatever it does not name is not in the store.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};
use crate::index::log::COMMIT_LEN;
use crate::index::manifest::{EpochInfo, read_commit, read_signature};
use crate::keys::ProviderId;
use crate::keys::identity::{EncryptionKey, PublicIdentity, VerifyingKey};
use crate::store::Coverage;
use crate::wire::{CountWidth, Reader, put_preamble};

/// Magic bytes of a store catalog.
pub const CATALOG_MAGIC: &[u8; 4] = b"MVCT";
/// The catalog format version.
pub const CATALOG_VERSION: u8 = 2;
const ALG_INDEX_V1: u8 = crate::index::ALG_GGM_AES256_PACKED4;

/// One segment file named by the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentEntry {
    pub(crate) id: u64,
    pub(crate) entries: u64,
    /// The epochs whose entries it holds.
    pub(crate) coverage: Coverage,
}

/// The committed state of a directory store's index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Catalog {
    /// Incremented by every commit.
    pub(crate) sequence: u64,
    /// The id the next segment file gets; ids are never reused.
    pub(crate) next_segment: u64,
    /// Every provider's epoch commitments, epoch `e` at position `e`.
    pub(crate) epochs: BTreeMap<ProviderId, Vec<EpochInfo>>,
    /// Every provider's signature over its log head (the providers of `epochs`).
    pub(crate) signatures: BTreeMap<ProviderId, Vec<u8>>,
    pub(crate) segments: Vec<SegmentEntry>,
    /// The cloud's provider key directory (first-come), ascending by id.
    pub(crate) directory: BTreeMap<ProviderId, PublicIdentity>,
}

impl Catalog {
    /// Checks that the catalog agrees with itself: its epochs hold as many entries as
    /// its segments, and every provider's epochs are covered by exactly one segment
    /// each (`Corrupt` naming the catalog otherwise). The segment files themselves are
    /// checked against it by the directory store.
    pub(crate) fn check_consistency(&self) -> Result<()> {
        let in_epochs: u64 = self
            .epochs
            .values()
            .flatten()
            .map(|e| u64::from(e.entries))
            .sum();
        let in_segments: u64 = self.segments.iter().map(|s| s.entries).sum();
        if in_epochs != in_segments {
            return Err(Error::Corrupt {
                what: "store catalog CATALOG: epoch and segment entry counts differ".to_owned(),
            });
        }
        // Every epoch is covered by exactly one segment.
        let covered = Coverage::union(self.segments.iter().map(|s| &s.coverage));
        let pieces: usize = self
            .segments
            .iter()
            .flat_map(|s| s.coverage.ranges().values())
            .flatten()
            .map(|r| (r.end - r.start) as usize)
            .sum();
        let expected: usize = self.epochs.values().map(Vec::len).sum();
        let tiles = self.epochs.iter().all(|(p, e)| {
            let whole = 0..e.len() as u32;
            e.is_empty()
                || covered
                    .ranges()
                    .get(p)
                    .is_some_and(|r| r.len() == 1 && r[0] == whole)
        }) && covered.ranges().keys().all(|p| self.epochs.contains_key(p));
        // Each segment holds one provider's entries (the index's provenance).
        let one_provider_each = self.segments.iter().all(|s| s.coverage.ranges().len() == 1);
        if pieces != expected || !tiles || !one_provider_each {
            return Err(Error::Corrupt {
                what: "store catalog CATALOG: segment coverage does not match the epochs"
                    .to_owned(),
            });
        }
        Ok(())
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_preamble(&mut out, CATALOG_MAGIC, CATALOG_VERSION, ALG_INDEX_V1);
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.next_segment.to_be_bytes());
        out.extend_from_slice(&(self.epochs.len() as u32).to_be_bytes());
        for (provider, epochs) in &self.epochs {
            provider.encode_into(&mut out);
            out.extend_from_slice(&(epochs.len() as u32).to_be_bytes());
            for e in epochs {
                crate::index::log::encode_commit(e, &mut out);
            }
            let signature = self.signatures.get(provider).map_or(&[][..], Vec::as_slice);
            out.extend_from_slice(&(signature.len() as u16).to_be_bytes());
            out.extend_from_slice(signature);
        }
        out.extend_from_slice(&(self.segments.len() as u32).to_be_bytes());
        for s in &self.segments {
            out.extend_from_slice(&s.id.to_be_bytes());
            out.extend_from_slice(&s.entries.to_be_bytes());
            let ranges = s.coverage.ranges();
            out.extend_from_slice(&(ranges.len() as u32).to_be_bytes());
            for (provider, list) in ranges {
                provider.encode_into(&mut out);
                out.extend_from_slice(&(list.len() as u32).to_be_bytes());
                for r in list {
                    out.extend_from_slice(&r.start.to_be_bytes());
                    out.extend_from_slice(&r.end.to_be_bytes());
                }
            }
        }
        out.extend_from_slice(&(self.directory.len() as u32).to_be_bytes());
        for (provider, keys) in &self.directory {
            provider.encode_into(&mut out);
            for der in [keys.verifying.to_spki_der(), keys.encryption.to_spki_der()] {
                out.extend_from_slice(&(der.len() as u16).to_be_bytes());
                out.extend_from_slice(&der);
            }
        }
        let sum = Sha256::digest(&out);
        out.extend_from_slice(&sum);
        out
    }

    /// Parses a catalog; a checksum mismatch is [`Error::Corrupt`].
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "store catalog");
        r.preamble(CATALOG_MAGIC, CATALOG_VERSION, &[ALG_INDEX_V1])?;
        let body = bytes.len().checked_sub(32).ok_or(Error::Truncated {
            format: "store catalog",
            detail: "shorter than its checksum",
        })?;
        if !bool::from(
            Sha256::digest(&bytes[..body])
                .as_slice()
                .ct_eq(&bytes[body..]),
        ) {
            return Err(Error::Corrupt {
                what: "store catalog CATALOG: checksum".to_owned(),
            });
        }
        let mut r = r.with_trailer(32);
        let sequence = r.u64("sequence")?;
        let next_segment = r.u64("next segment id")?;
        let providers = r.count(CountWidth::U32, 2 + 4, "provider count")?;
        let mut epochs: BTreeMap<ProviderId, Vec<EpochInfo>> = BTreeMap::new();
        let mut signatures: BTreeMap<ProviderId, Vec<u8>> = BTreeMap::new();
        let mut last: Option<ProviderId> = None;
        for _ in 0..providers {
            let provider = ProviderId::decode(&mut r)?;
            if last.as_ref().is_some_and(|l| *l >= provider) {
                return Err(r.malformed("providers not in ascending order"));
            }
            let count = r.count(CountWidth::U32, COMMIT_LEN, "epoch count")?;
            let mut list: Vec<EpochInfo> = Vec::with_capacity(count);
            for _ in 0..count {
                let info = read_commit(&mut r)?;
                if list.last().is_some_and(|e| e.generation > info.generation) {
                    return Err(r.malformed("key generation goes back"));
                }
                list.push(info);
            }
            let signature = read_signature(&mut r)?.to_vec();
            if signature.is_empty() != list.is_empty() {
                return Err(r.malformed("a signature exactly when there are epochs"));
            }
            last = Some(provider.clone());
            if !signature.is_empty() {
                signatures.insert(provider.clone(), signature);
            }
            epochs.insert(provider, list);
        }
        let count = r.count(CountWidth::U32, 20, "segment count")?;
        let mut segments: Vec<SegmentEntry> = Vec::with_capacity(count);
        for _ in 0..count {
            let id = r.u64("segment id")?;
            if id >= next_segment || segments.iter().any(|s| s.id == id) {
                return Err(r.malformed("segment id repeated or not yet issued"));
            }
            let entries = r.u64("segment entries")?;
            let providers = r.count(CountWidth::U32, 2 + 4, "covered provider count")?;
            let mut coverage = BTreeMap::new();
            for _ in 0..providers {
                let provider = ProviderId::decode(&mut r)?;
                let ranges = r.count(CountWidth::U32, 8, "epoch range count")?;
                let mut list: Vec<std::ops::Range<u32>> = Vec::with_capacity(ranges);
                for _ in 0..ranges {
                    let (start, end) = (r.u32("first epoch")?, r.u32("end epoch")?);
                    if start >= end || list.last().is_some_and(|l| l.end > start) {
                        return Err(r.malformed("epoch ranges empty or out of order"));
                    }
                    list.push(start..end);
                }
                if coverage.insert(provider, list).is_some() {
                    return Err(r.malformed("a provider covered twice"));
                }
            }
            segments.push(SegmentEntry {
                id,
                entries,
                coverage: Coverage::from_ranges(coverage),
            });
        }
        let count = r.count(CountWidth::U32, 2 + 4, "directory entry count")?;
        let mut directory = BTreeMap::new();
        for _ in 0..count {
            let provider = ProviderId::decode(&mut r)?;
            if directory
                .last_key_value()
                .is_some_and(|(last, _): (&ProviderId, _)| *last >= provider)
            {
                return Err(r.malformed("directory not in ascending order"));
            }
            let verifying = VerifyingKey::from_spki_der(read_der(&mut r, "verifying key")?)?;
            let encryption = EncryptionKey::from_spki_der(read_der(&mut r, "encryption key")?)?;
            directory.insert(
                provider,
                PublicIdentity {
                    verifying,
                    encryption,
                },
            );
        }
        r.take(32, "checksum")?;
        r.finish()?;
        Ok(Catalog {
            sequence,
            next_segment,
            epochs,
            signatures,
            segments,
            directory,
        })
    }
}

/// A key's DER with its two-byte length.
fn read_der<'a>(r: &mut Reader<'a>, what: &'static str) -> Result<&'a [u8]> {
    let len = usize::from(u16::from_be_bytes(r.array(what)?));
    r.take(len, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Catalog {
        let mut epochs = BTreeMap::new();
        epochs.insert(
            ProviderId::new("lab").unwrap(),
            vec![
                EpochInfo {
                    generation: 0,
                    entries: 12,
                    pairs_root: [3; 32],
                    records: 2,
                    records_root: [4; 32],
                },
                EpochInfo {
                    generation: 1,
                    entries: 4,
                    pairs_root: [5; 32],
                    records: 0,
                    records_root: [6; 32],
                },
            ],
        );
        epochs.insert(ProviderId::new("st-mary").unwrap(), vec![]);
        let mut signatures = BTreeMap::new();
        signatures.insert(ProviderId::new("lab").unwrap(), vec![0x5a; 384]);
        let mut directory = BTreeMap::new();
        directory.insert(
            ProviderId::new("lab").unwrap(),
            crate::keys::test_keys::provider_a().public(),
        );
        Catalog {
            sequence: 7,
            next_segment: 9,
            epochs,
            signatures,
            directory,
            segments: vec![
                SegmentEntry {
                    id: 3,
                    entries: 12,
                    coverage: Coverage::epoch(&ProviderId::new("lab").unwrap(), 0),
                },
                SegmentEntry {
                    id: 8,
                    entries: 4,
                    coverage: Coverage::epoch(&ProviderId::new("lab").unwrap(), 1),
                },
            ],
        }
    }

    #[test]
    fn round_trips_and_detects_every_flip_and_truncation() {
        let bytes = sample().to_bytes();
        assert_eq!(Catalog::from_bytes(&bytes).unwrap(), sample());
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x10;
            assert!(Catalog::from_bytes(&bad).is_err(), "flip at {at}");
        }
        for len in 0..bytes.len() {
            assert!(Catalog::from_bytes(&bytes[..len]).is_err(), "length {len}");
        }
        let mut future = bytes.clone();
        future[4] = 3;
        assert!(matches!(
            Catalog::from_bytes(&future),
            Err(Error::UnsupportedVersion { version: 3, .. })
        ));
        let mut old = bytes.clone();
        old[4] = 1;
        assert!(matches!(
            Catalog::from_bytes(&old),
            Err(Error::UnsupportedVersion { version: 1, .. })
        ));
    }
}
