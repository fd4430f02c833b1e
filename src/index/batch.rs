//! The index batch (`MVIB`, FORMAT.md "Index batch"): one provider's entries for one
//! epoch, sorted by label, as uploaded to the cloud.
//!
//! **Leaks**: a batch reveals its provider, epoch, key generation and entry count; every
//! value has the same size. Nothing in a batch links entries to each other, to a patient
//! or to a keyword.

use super::entry::{ALG_GGM_AES256_PACKED4, BATCH_MAGIC, INDEX_VERSION, PAIR_LEN};
use super::table::Table;
use crate::error::Result;
use crate::keys::ProviderId;
use crate::wire::{Reader, put_preamble};

/// An index batch: one provider's entries for one epoch, sorted by label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexBatch {
    pub(crate) provider: ProviderId,
    pub(crate) epoch: u32,
    pub(crate) generation: u32,
    pub(crate) table: Table,
}

impl IndexBatch {
    /// Bytes of one label on the wire.
    pub const LABEL_LEN: usize = super::entry::LABEL_LEN;
    /// Bytes of one label-value entry on the wire (`FORMAT.md`, "Index batch").
    pub const PAIR_LEN: usize = PAIR_LEN;

    /// The provider that built the batch.
    pub fn provider(&self) -> &ProviderId {
        &self.provider
    }
    /// The batch's epoch at its provider.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }
    /// The key generation its entries were made under.
    pub fn generation(&self) -> u32 {
        self.generation
    }
    /// Number of label-value entries.
    pub fn len(&self) -> usize {
        self.table.len()
    }
    /// True for a batch without entries (a provider may upload one to advance its epoch).
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
    /// The entries.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// The wire form (`FORMAT.md`, "Index batch").
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.table.len() * PAIR_LEN);
        put_preamble(&mut out, BATCH_MAGIC, INDEX_VERSION, ALG_GGM_AES256_PACKED4);
        self.provider.encode_into(&mut out);
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&self.generation.to_be_bytes());
        out.extend_from_slice(&(self.table.len() as u32).to_be_bytes());
        self.table.write_pairs(&mut out);
        out
    }

    /// Parses and checks a batch: sorted, no repeated label, nothing trailing.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "index batch");
        r.preamble(BATCH_MAGIC, INDEX_VERSION, &[ALG_GGM_AES256_PACKED4])?;
        let provider = ProviderId::decode(&mut r)?;
        let epoch = r.u32("epoch")?;
        if epoch == u32::MAX {
            return Err(r.malformed("epoch out of range"));
        }
        let generation = r.u32("key generation")?;
        let count = r.u32("entry count")? as usize;
        let table = Table::read_pairs(&mut r, count)?;
        r.finish()?;
        Ok(IndexBatch {
            provider,
            epoch,
            generation,
            table,
        })
    }
}
