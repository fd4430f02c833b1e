//! The cloud's manifest: public metadata only — providers, their epochs with the key
//! generation and entry count of each, how many records they stored, and the segments.
//! It is what the paper's cloud admin sees of the index, and what a requester needs to
//! build tokens (how many epochs each provider has, in which generation).
//!
//! Since version 2 each provider's epochs come with their commitments and the
//! provider's signature over its log head (`index::log`): a requester builds tokens
//! only from a log it verified, so a cloud that inflates, shortens or rewrites the
//! epochs is caught before any token exists.

use crate::crypto::merkle::Digest;
use crate::error::Result;
use crate::index::log::MAX_SIGNATURE_LEN;
use crate::keys::ProviderId;
use crate::wire::{CountWidth, Reader, put_preamble};

/// Magic bytes of a manifest.
pub const MANIFEST_MAGIC: &[u8; 4] = b"MVMF";
/// The manifest format version.
pub const MANIFEST_VERSION: u8 = 2;
const ALG_INDEX_V1: u8 = crate::index::ALG_GGM_AES256_PACKED4;

/// One epoch of a provider: its batch's commitment, as the provider signed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochInfo {
    /// The key generation the epoch's entries were made under.
    pub generation: u32,
    /// How many label-value entries the epoch's batch had.
    pub entries: u32,
    /// The Merkle root over the batch's entries.
    pub pairs_root: Digest,
    /// How many records the batch committed to.
    pub records: u32,
    /// The Merkle root over the batch's `record id ‖ digest` table.
    pub records_root: Digest,
}

/// What the cloud knows of one provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderManifest {
    /// The provider.
    pub provider: ProviderId,
    /// Sealed records stored for it.
    pub records: u64,
    /// Its epochs, epoch `e` at position `e`.
    pub epochs: Vec<EpochInfo>,
    /// The provider's signature over the head of `epochs` (empty when there are none).
    pub signature: Vec<u8>,
}

impl ProviderManifest {
    /// Number of epochs ingested (the next epoch the cloud expects).
    pub fn epoch_count(&self) -> u32 {
        self.epochs.len() as u32
    }

    /// The newest key generation used, if any epoch exists.
    pub fn current_generation(&self) -> Option<u32> {
        self.epochs.last().map(|e| e.generation)
    }

    /// The epochs `[first, end)` made under `generation` (contiguous, since generations
    /// never go back), or `None` if there are none.
    pub fn generation_epochs(&self, generation: u32) -> Option<(u32, u32)> {
        generation_epochs(&self.epochs, generation)
    }
}

/// The epochs `[first, end)` of `epochs` made under `generation`, if any.
pub(crate) fn generation_epochs(epochs: &[EpochInfo], generation: u32) -> Option<(u32, u32)> {
    let first = epochs.iter().position(|e| e.generation == generation)?;
    let len = epochs[first..]
        .iter()
        .take_while(|e| e.generation == generation)
        .count();
    Some((first as u32, (first + len) as u32))
}

/// The cloud's public metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// Providers, sorted by id.
    pub providers: Vec<ProviderManifest>,
    /// Entry count of each segment the cloud holds.
    pub segments: Vec<u64>,
}

impl Manifest {
    /// The entry for `provider`.
    pub fn provider(&self, provider: &ProviderId) -> Option<&ProviderManifest> {
        self.providers
            .binary_search_by(|p| p.provider.cmp(provider))
            .ok()
            .map(|i| &self.providers[i])
    }

    /// The epoch the cloud expects next from `provider` (0 for a provider it does not
    /// list): what [`Provider::finish_at`](crate::Provider::finish_at) takes.
    pub fn next_epoch(&self, provider: &ProviderId) -> u32 {
        self.provider(provider)
            .map_or(0, ProviderManifest::epoch_count)
    }

    /// The wire form (`FORMAT.md`, "Manifest").
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_preamble(&mut out, MANIFEST_MAGIC, MANIFEST_VERSION, ALG_INDEX_V1);
        out.extend_from_slice(&(self.providers.len() as u32).to_be_bytes());
        for p in &self.providers {
            p.provider.encode_into(&mut out);
            out.extend_from_slice(&p.records.to_be_bytes());
            out.extend_from_slice(&p.epoch_count().to_be_bytes());
            for e in &p.epochs {
                crate::index::log::encode_commit(e, &mut out);
            }
            out.extend_from_slice(&(p.signature.len() as u16).to_be_bytes());
            out.extend_from_slice(&p.signature);
        }
        out.extend_from_slice(&(self.segments.len() as u32).to_be_bytes());
        for s in &self.segments {
            out.extend_from_slice(&s.to_be_bytes());
        }
        out
    }

    /// Parses a manifest: providers strictly sorted, generations never decreasing, a
    /// signature exactly when a provider has epochs. Nothing in it is trusted until a
    /// requester verified the provider's signature (`index::log::verify`).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "manifest");
        r.preamble(MANIFEST_MAGIC, MANIFEST_VERSION, &[ALG_INDEX_V1])?;
        let provider_count = r.count(CountWidth::U32, 2 + 8 + 4, "provider count")?;
        let mut providers: Vec<ProviderManifest> = Vec::with_capacity(provider_count);
        for _ in 0..provider_count {
            let provider = ProviderId::decode(&mut r)?;
            if providers.last().is_some_and(|p| p.provider >= provider) {
                return Err(r.malformed("providers not in ascending order"));
            }
            let records = r.u64("record count")?;
            let epoch_count = r.count(CountWidth::U32, COMMIT_LEN, "epoch count")?;
            let mut epochs: Vec<EpochInfo> = Vec::with_capacity(epoch_count);
            for _ in 0..epoch_count {
                let info = read_commit(&mut r)?;
                if epochs
                    .last()
                    .is_some_and(|e| e.generation > info.generation)
                {
                    return Err(r.malformed("key generation goes back"));
                }
                epochs.push(info);
            }
            let signature = read_signature(&mut r)?.to_vec();
            if signature.is_empty() != epochs.is_empty() {
                return Err(r.malformed("a signature exactly when there are epochs"));
            }
            providers.push(ProviderManifest {
                provider,
                records,
                epochs,
                signature,
            });
        }
        let segment_count = r.count(CountWidth::U32, 8, "segment count")?;
        let segments = (0..segment_count)
            .map(|_| r.u64("segment entries"))
            .collect::<Result<_>>()?;
        r.finish()?;
        Ok(Manifest {
            providers,
            segments,
        })
    }
}

use crate::index::log::COMMIT_LEN;

/// One epoch commitment (`index::log::encode_commit`).
pub(crate) fn read_commit(r: &mut Reader<'_>) -> Result<EpochInfo> {
    Ok(EpochInfo {
        generation: r.u32("generation")?,
        entries: r.u32("entry count")?,
        pairs_root: r.array("pairs root")?,
        records: r.u32("record count")?,
        records_root: r.array("records root")?,
    })
}

/// A head signature: its length (two bytes, at most [`MAX_SIGNATURE_LEN`]) and bytes.
pub(crate) fn read_signature<'a>(r: &mut Reader<'a>) -> Result<&'a [u8]> {
    let len = usize::from(u16::from_be_bytes(r.array("signature length")?));
    if len > MAX_SIGNATURE_LEN {
        return Err(r.malformed("signature too long"));
    }
    r.take(len, "signature")
}
