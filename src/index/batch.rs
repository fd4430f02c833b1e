//! The index batch (`MVIB`, FORMAT.md "Index batch"): one provider's entries for one
//! epoch, sorted by label, with the records uploaded in that epoch and the provider's
//! signature over its log head (`index::log`), as uploaded to the cloud.
//!
//! **Leaks**: a batch reveals its provider, epoch, key generation, entry count and the
//! ids and digests of the records uploaded with it; every value has the same size.
//! Nothing in a batch links entries to each other, to a patient or to a keyword.

use super::entry::{ALG_GGM_AES256_PACKED4, BATCH_MAGIC, INDEX_VERSION, PAIR_LEN};
use std::sync::Arc;

use super::log::{EpochPairs, MAX_SIGNATURE_LEN, RecordTable};
use super::manifest::{EpochInfo, read_signature};
use super::table::Table;
use crate::crypto::merkle::Digest;
use crate::error::Result;
use crate::keys::{ProviderId, RecordId};
use crate::wire::{CountWidth, Reader, put_preamble};

/// An index batch: one provider's entries for one epoch, sorted by label, the records
/// committed with them, and the provider's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexBatch {
    pub(crate) provider: ProviderId,
    pub(crate) epoch: u32,
    /// The entries with their Merkle tree (the cloud keeps it to prove searches).
    pub(crate) pairs: Arc<EpochPairs>,
    pub(crate) records: RecordTable,
    pub(crate) signature: Vec<u8>,
    /// The commitment (key generation included), computed from `table` and `records`
    /// whenever a batch is made.
    pub(crate) info: EpochInfo,
}

impl IndexBatch {
    /// Bytes of one label on the wire.
    pub const LABEL_LEN: usize = super::entry::LABEL_LEN;
    /// Bytes of one label-value entry on the wire (`FORMAT.md`, "Index batch").
    pub const PAIR_LEN: usize = PAIR_LEN;

    /// Assembles a batch and its commitment (the signature is added by the provider).
    pub(crate) fn new(
        provider: ProviderId,
        epoch: u32,
        generation: u32,
        table: Table,
        records: RecordTable,
        signature: Vec<u8>,
    ) -> Self {
        let pairs = EpochPairs::new(table);
        let info = EpochInfo {
            generation,
            entries: pairs.len() as u32,
            pairs_root: pairs.root(),
            records: records.len() as u32,
            records_root: records.root(),
        };
        IndexBatch {
            provider,
            epoch,
            pairs: Arc::new(pairs),
            records,
            signature,
            info,
        }
    }

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
        self.info.generation
    }
    /// Number of label-value entries.
    pub fn len(&self) -> usize {
        self.pairs.table().len()
    }
    /// True for a batch without entries (a provider may upload one to advance its epoch).
    pub fn is_empty(&self) -> bool {
        self.pairs.table().is_empty()
    }
    /// The entries.
    pub fn table(&self) -> &Table {
        self.pairs.table()
    }
    /// The records committed with the batch: `(id, SHA-256 of the sealed record)`, by id.
    pub fn records(&self) -> &[(RecordId, Digest)] {
        self.records.entries()
    }

    /// The wire form (`FORMAT.md`, "Index batch").
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            64 + self.records.len() * 48
                + self.signature.len()
                + self.pairs.table().len() * PAIR_LEN,
        );
        put_preamble(&mut out, BATCH_MAGIC, INDEX_VERSION, ALG_GGM_AES256_PACKED4);
        self.provider.encode_into(&mut out);
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&self.info.generation.to_be_bytes());
        out.extend_from_slice(&(self.records.len() as u32).to_be_bytes());
        for (id, digest) in self.records.entries() {
            out.extend_from_slice(id.as_bytes());
            out.extend_from_slice(digest);
        }
        out.extend_from_slice(&(self.signature.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.signature);
        out.extend_from_slice(&(self.pairs.table().len() as u32).to_be_bytes());
        self.pairs.table().write_pairs(&mut out);
        out
    }

    /// Parses a batch: records sorted by id without repeats, a signature, entries
    /// sorted by label without repeats, nothing trailing. The signature is checked by
    /// the cloud on ingest, against the provider's registered key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "index batch");
        r.preamble(BATCH_MAGIC, INDEX_VERSION, &[ALG_GGM_AES256_PACKED4])?;
        let provider = ProviderId::decode(&mut r)?;
        let epoch = r.u32("epoch")?;
        if epoch == u32::MAX {
            return Err(r.malformed("epoch out of range"));
        }
        let generation = r.u32("key generation")?;
        let record_count = r.count(CountWidth::U32, 48, "record count")?;
        let mut records: Vec<(RecordId, Digest)> = Vec::with_capacity(record_count);
        for _ in 0..record_count {
            let id = RecordId::from_bytes(r.array("record id")?);
            if records.last().is_some_and(|(last, _)| *last >= id) {
                return Err(r.malformed("records not in ascending id order"));
            }
            records.push((id, r.array("record digest")?));
        }
        let signature = read_signature(&mut r)?.to_vec();
        if signature.is_empty() {
            return Err(r.malformed("no signature"));
        }
        debug_assert!(signature.len() <= MAX_SIGNATURE_LEN);
        let count = r.u32("entry count")? as usize;
        let table = Table::read_pairs(&mut r, count)?;
        r.finish()?;
        Ok(IndexBatch::new(
            provider,
            epoch,
            generation,
            table,
            RecordTable::new(records)?,
            signature,
        ))
    }
}

#[cfg(test)]
impl IndexBatch {
    /// A batch of `table` signed with `signing` as epoch `epoch` of a log whose chain
    /// was `previous` (tests that build entries by hand).
    pub(crate) fn signed_for_test(
        provider: ProviderId,
        epoch: u32,
        generation: u32,
        table: Table,
        previous: &Digest,
        signing: &crate::keys::identity::SigningKey,
    ) -> Self {
        Self::signed_with_records_for_test(
            provider,
            epoch,
            generation,
            table,
            Vec::new(),
            previous,
            signing,
        )
    }

    /// [`IndexBatch::signed_for_test`] committing to `records` (id, SHA-256).
    pub(crate) fn signed_with_records_for_test(
        provider: ProviderId,
        epoch: u32,
        generation: u32,
        table: Table,
        records: Vec<(crate::keys::RecordId, Digest)>,
        previous: &Digest,
        signing: &crate::keys::identity::SigningKey,
    ) -> Self {
        let mut batch = IndexBatch::new(
            provider,
            epoch,
            generation,
            table,
            RecordTable::new(records).expect("records in id order"),
            Vec::new(),
        );
        let chain = super::log::next_chain(&batch.provider, epoch, &batch.info, previous);
        batch.signature = signing
            .sign(&super::log::head_message(
                &batch.provider,
                epoch + 1,
                &chain,
            ))
            .expect("signing");
        batch
    }
}
