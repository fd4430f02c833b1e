//! The data owner: a hospital, lab, pharmacy or patient that seals its records and
//! indexes their keywords under its own keys.
//!
//! A [`Provider`] seals records for patients and collects their keywords; [`finish`]
//! turns everything collected into the [`IndexBatch`] of its next epoch. One batch
//! mixes entries of all patients and keywords, so the cloud cannot group uploads by
//! patient.
//!
//! **State that must survive a restart** is small: the next epoch number and the key
//! generation ([`ProviderState`]). Persist [`Provider::state`] (its `to_bytes`) after
//! every [`finish`] and [`rotate`](Provider::rotate), and on start call
//! [`Provider::resume`] with it, reconciled with the cloud's manifest
//! ([`ProviderState::reconcile`]): the manifest knows every epoch the cloud accepted,
//! the local state knows a rotation that no batch has shown yet. Taking the larger of
//! each never reuses an epoch number and never forgets a rotation.
//!
//! [`finish`]: Provider::finish

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::ggm;
use crate::grant::{GrantedKey, Scope};
use crate::index::{
    ENTRIES_PER_BLOCK, EpochKey, IndexBatch, LABEL_LEN, Label, Op, Posting, Table, VALUE_LEN, Value,
};
use crate::keys::{
    KeywordRoots, MasterKey, PatientId, PatientKey, ProviderId, RecordId, RecordKey,
};
use crate::keyword;
use crate::manifest::Manifest;
use crate::queue::Queue;
use crate::seal::seal;
use crate::stream::Sealer;
use crate::wire::{Reader, put_preamble};

/// Magic bytes of a saved provider state.
pub const STATE_MAGIC: &[u8; 4] = b"MVPS";
/// The provider-state format version.
pub const STATE_VERSION: u8 = 1;

/// How a provider builds its index.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexOptions {
    /// Pad every posting list to a power-of-two number of blocks. Hides list lengths
    /// within a batch (up to a factor of two) from whoever sees the index, at up to
    /// twice the entries. The cloud still learns true result counts when it searches;
    /// see SECURITY.md.
    pub pad_to_power_of_two: bool,
}

/// The counters a provider must keep across restarts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProviderState {
    /// The epoch number the next batch gets.
    pub next_epoch: u32,
    /// The key generation new records and batches use.
    pub generation: u32,
}

impl ProviderState {
    /// The wire form (`FORMAT.md`, "Provider state").
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(14);
        put_preamble(&mut out, STATE_MAGIC, STATE_VERSION, 0);
        out.extend_from_slice(&self.next_epoch.to_be_bytes());
        out.extend_from_slice(&self.generation.to_be_bytes());
        out
    }

    /// Parses a saved state.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "provider state");
        r.preamble(STATE_MAGIC, STATE_VERSION, &[0])?;
        let state = ProviderState {
            next_epoch: r.u32("next epoch")?,
            generation: r.u32("generation")?,
        };
        r.finish()?;
        Ok(state)
    }

    /// The larger of this state and what the cloud's manifest shows for `provider`.
    pub fn reconcile(self, manifest: &Manifest, provider: &ProviderId) -> Self {
        match manifest.provider(provider) {
            None => self,
            Some(p) => ProviderState {
                next_epoch: self.next_epoch.max(p.epoch_count()),
                generation: self.generation.max(p.current_generation().unwrap_or(0)),
            },
        }
    }
}

/// A record sealed by a provider, ready to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedRecord {
    /// Its id.
    pub id: RecordId,
    /// The sealed bytes (`FORMAT.md`, "Sealed record").
    pub bytes: Vec<u8>,
}

/// Index blocks of a list of `postings` entries: [`ENTRIES_PER_BLOCK`] per block, the
/// last one padded; with `pad`, padded blocks up to a power of two.
fn blocks_for(postings: usize, pad: bool) -> usize {
    let blocks = postings.div_ceil(ENTRIES_PER_BLOCK);
    if pad {
        blocks.next_power_of_two()
    } else {
        blocks
    }
}

/// Writes the index entries of one posting list in `epoch` into `out` (one per block,
/// [`blocks_for`] of them): its GGM leaf from the keyword's root, then its blocks.
fn fill_list(
    roots: &KeywordRoots,
    keyword: &str,
    postings: &[Posting],
    epoch: u32,
    out: &mut [(Label, Value)],
) {
    let epoch_key = EpochKey::new(&ggm::leaf(&roots.root(keyword), epoch));
    for (i, entry) in out.iter_mut().enumerate() {
        let start = (i * ENTRIES_PER_BLOCK).min(postings.len());
        let end = (start + ENTRIES_PER_BLOCK).min(postings.len());
        // i < 2^32: a list longer than 2^34 postings cannot be queued.
        let index = i as u32;
        *entry = (
            epoch_key.label(index),
            epoch_key.seal_block(index, &postings[start..end]),
        );
    }
}

/// A data owner: seals records and builds index batches under its own keys.
pub struct Provider {
    id: ProviderId,
    master: MasterKey,
    state: ProviderState,
    options: IndexOptions,
    /// Postings waiting for the next batch.
    pending: Queue,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("id", &self.id)
            .field("state", &self.state)
            .field("pending_lists", &self.pending.list_count())
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// A provider starting at epoch 0, generation 0.
    pub fn new(id: ProviderId, master: MasterKey) -> Self {
        Self::resume(id, master, ProviderState::default())
    }

    /// A provider continuing from a saved state.
    pub fn resume(id: ProviderId, master: MasterKey, state: ProviderState) -> Self {
        Provider {
            id,
            master,
            state,
            options: IndexOptions::default(),
            pending: Queue::default(),
        }
    }

    /// Sets how batches are built.
    pub fn with_options(mut self, options: IndexOptions) -> Self {
        self.options = options;
        self
    }

    /// The provider's id.
    pub fn id(&self) -> &ProviderId {
        &self.id
    }

    /// The counters to persist.
    pub fn state(&self) -> ProviderState {
        self.state
    }

    /// The patient key of the current generation (what a grant of the patient hands out).
    pub fn patient_key(&self, patient: &PatientId) -> PatientKey {
        self.patient_key_of_generation(patient, self.state.generation)
    }

    /// The patient key of any generation up to the current one.
    pub fn patient_key_of_generation(&self, patient: &PatientId, generation: u32) -> PatientKey {
        self.master.patient_key(&self.id, patient, generation)
    }

    /// Seals `plaintext` as a new record of `patient` and queues its `keywords` for the
    /// next batch. Keywords are normalized; duplicates are indexed once.
    pub fn add_record(
        &mut self,
        patient: &PatientId,
        plaintext: &[u8],
        keywords: &[impl AsRef<str>],
    ) -> Result<SealedRecord> {
        let normalized = normalize_all(keywords)?;
        let id = RecordId::generate()?;
        let bytes = seal(&self.patient_key(patient).record_key(id), plaintext)?;
        self.pending.push(patient, id, &normalized, Op::Add);
        Ok(SealedRecord { id, bytes })
    }

    /// Starts sealing a large record of `patient` into `writer`; index it afterwards with
    /// [`Provider::index`] under the returned id.
    pub fn start_record<W: std::io::Write>(
        &self,
        patient: &PatientId,
        writer: W,
    ) -> Result<(RecordId, Sealer<W>)> {
        let id = RecordId::generate()?;
        let sealer = Sealer::new(writer, &self.record_key(patient, id))?;
        Ok((id, sealer))
    }

    /// The key a grant of `scope` hands out, of key generation `generation` (`None`:
    /// the current one): the patient key, which opens and finds what was sealed and
    /// indexed in that generation; or the key of one record (read its generation from
    /// the record's public header).
    pub fn key_for_scope(&self, scope: &Scope, generation: Option<u32>) -> Result<GrantedKey> {
        let generation = generation.unwrap_or(self.state.generation);
        if generation > self.state.generation {
            return Err(Error::InvalidArgument(
                "that key generation does not exist yet",
            ));
        }
        Ok(match scope {
            Scope::Patient(patient) => GrantedKey::Patient(
                patient.clone(),
                self.patient_key_of_generation(patient, generation),
            ),
            Scope::Record(patient, record) => GrantedKey::Record(
                patient.clone(),
                self.patient_key_of_generation(patient, generation)
                    .record_key(*record),
            ),
        })
    }

    /// The record key of `record` for `patient` in the current generation.
    pub fn record_key(&self, patient: &PatientId, record: RecordId) -> RecordKey {
        self.patient_key(patient).record_key(record)
    }

    /// Queues `keywords` of an existing record for the next batch.
    pub fn index(
        &mut self,
        patient: &PatientId,
        record: RecordId,
        keywords: &[impl AsRef<str>],
    ) -> Result<()> {
        let normalized = normalize_all(keywords)?;
        self.pending.push(patient, record, &normalized, Op::Add);
        Ok(())
    }

    /// Queues the removal of `keywords` from `record`: from the next epoch on, searches
    /// for them no longer return it.
    pub fn delete(
        &mut self,
        patient: &PatientId,
        record: RecordId,
        keywords: &[impl AsRef<str>],
    ) -> Result<()> {
        let normalized = normalize_all(keywords)?;
        self.pending.push(patient, record, &normalized, Op::Delete);
        Ok(())
    }

    /// Number of postings waiting for the next batch.
    pub fn pending_postings(&self) -> usize {
        self.pending.len()
    }

    /// Builds the batch of the next epoch from everything queued, and advances the
    /// epoch. An empty batch is valid (it moves the epoch on).
    pub fn finish(&mut self) -> Result<IndexBatch> {
        let epoch = self.state.next_epoch;
        if epoch == u32::MAX - 1 {
            return Err(Error::InvalidArgument(
                "the provider has used every epoch number",
            ));
        }
        let generation = self.state.generation;
        let pad = self.options.pad_to_power_of_two;
        // One keyed KDF per patient, then one GGM walk per (patient, keyword) list: both
        // are independent, so they run on all cores.
        let queue = &self.pending;
        let parallel = queue.list_count() > PARALLEL_MIN_LISTS;
        let roots_of = |patient: &PatientId| {
            self.master
                .patient_key(&self.id, patient, generation)
                .search_key()
                .keyword_roots()
        };
        let roots: Vec<KeywordRoots> = if parallel {
            queue.patients().par_iter().map(roots_of).collect()
        } else {
            queue.patients().iter().map(roots_of).collect()
        };
        let grouped = queue.grouped();
        // Every list's entries go straight to their place in one preallocated vector
        // (collecting a parallel iterator would grow and copy it).
        let entries = queue
            .lists(&grouped)
            .map(|list| blocks_for(list.postings.len(), pad))
            .sum();
        let mut pairs = vec![([0u8; LABEL_LEN], [0u8; VALUE_LEN]); entries];
        let mut slots: Vec<&mut [(Label, Value)]> = Vec::with_capacity(queue.list_count());
        let mut rest = &mut pairs[..];
        for list in queue.lists(&grouped) {
            let blocks = blocks_for(list.postings.len(), pad);
            let (slot, tail) = core::mem::take(&mut rest).split_at_mut(blocks);
            slots.push(slot);
            rest = tail;
        }
        let fill = |i: usize, slot: &mut [(Label, Value)]| {
            let list = queue.list(&grouped, i);
            fill_list(
                &roots[list.patient],
                list.keyword,
                list.postings,
                epoch,
                slot,
            );
        };
        if parallel {
            slots
                .par_iter_mut()
                .enumerate()
                .for_each(|(i, slot)| fill(i, slot));
        } else {
            for (i, slot) in slots.iter_mut().enumerate() {
                fill(i, slot);
            }
        }
        drop(slots);
        let table = Table::from_unsorted(pairs)?;
        // Only now is the queue spent (a failed build keeps it).
        drop(grouped);
        self.pending = Queue::default();
        self.state.next_epoch = epoch + 1;
        Ok(IndexBatch {
            provider: self.id.clone(),
            epoch,
            generation,
            table,
        })
    }

    /// Moves to a new key generation: records and batches from now on use it, so grants
    /// of older generations open nothing new. Finish the pending batch first.
    pub fn rotate(&mut self) -> Result<u32> {
        if !self.pending.is_empty() {
            return Err(Error::InvalidArgument(
                "finish the pending batch before rotating keys",
            ));
        }
        self.state.generation = self
            .state
            .generation
            .checked_add(1)
            .ok_or(Error::InvalidArgument("no key generation left"))?;
        Ok(self.state.generation)
    }
}

/// Batches with more (patient, keyword) lists than this are built on all cores.
const PARALLEL_MIN_LISTS: usize = 256;

/// Normalized keywords, duplicates dropped, first occurrence kept. Up to 16 keywords
/// (most records) are deduplicated by comparing each with those kept so far, which
/// costs no hashing and no copies; a note can carry hundreds of tokens, so more are
/// deduplicated through a hash set rather than quadratically.
fn normalize_all(keywords: &[impl AsRef<str>]) -> Result<Vec<String>> {
    const LINEAR_DEDUPE_MAX: usize = 16;
    let mut out: Vec<String> = Vec::with_capacity(keywords.len());
    if keywords.len() <= LINEAR_DEDUPE_MAX {
        for k in keywords {
            let k = keyword::checked(k.as_ref())?;
            if !out.contains(&k) {
                out.push(k);
            }
        }
        return Ok(out);
    }
    let mut seen = std::collections::HashSet::with_capacity(keywords.len());
    for k in keywords {
        let k = keyword::checked(k.as_ref())?;
        if seen.insert(k.clone()) {
            out.push(k);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_normalized_and_deduplicated_in_order_at_every_count() {
        assert_eq!(
            normalize_all(&["Asthma", " asthma ", "ASTHMA", "b"]).unwrap(),
            ["asthma", "b"]
        );
        assert!(normalize_all(&["ok", "  "]).is_err());
        assert!(normalize_all(&[] as &[&str]).unwrap().is_empty());
        // Below, at and above the count where the dedupe switches to hashing: the same
        // first occurrences, in the same order.
        for n in [1usize, 15, 16, 17, 40, 200] {
            let keywords: Vec<String> = (0..n)
                .map(|i| format!("{} W{}", if i % 2 == 0 { "Term" } else { "TERM" }, i % 7))
                .collect();
            let want: Vec<String> = (0..n.min(7)).map(|i| format!("term w{i}")).collect();
            assert_eq!(normalize_all(&keywords).unwrap(), want, "{n} keywords");
        }
    }
}
