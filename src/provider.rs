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

use crate::error::{Error, Result};
use crate::grant::{GrantedKey, Scope};
use crate::index::build::{self, normalize_all};
use crate::index::manifest::Manifest;
use crate::index::queue::Queue;
use crate::index::{IndexBatch, Op};
use crate::keys::{MasterKey, PatientId, PatientKey, ProviderId, RecordId, RecordKey};
use crate::record::seal::seal;
use crate::record::stream::Sealer;
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

/// A data owner: seals records and builds index batches under its own keys.
///
/// ```
/// use medvault::{MasterKey, PatientId, Provider, ProviderId};
///
/// let mut hospital = Provider::new(ProviderId::new("st-mary")?, MasterKey::generate()?);
/// let maria = PatientId::new("+15551000000")?;
/// let note = hospital.add_record(&maria, b"Clinic visit: diabetes, metformin", &["diabetes"])?;
/// hospital.index(&maria, note.id, &["metformin"])?; // more keywords, same epoch
/// let batch = hospital.finish()?; // epoch 0, every queued posting
/// assert_eq!((batch.epoch(), batch.generation()), (0, 0));
/// // Persist this after every finish and rotate; resume from it after a restart.
/// let saved = hospital.state().to_bytes();
/// assert_eq!(hospital.rotate()?, 1); // revocation: new data under generation 1
/// # let _ = saved;
/// # Ok::<(), medvault::Error>(())
/// ```
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
        let table = build::entries(
            &self.master,
            &self.id,
            &self.pending,
            epoch,
            generation,
            self.options.pad_to_power_of_two,
        )?;
        // Only now is the queue spent (a failed build keeps it).
        self.pending = Queue::default();
        self.state.next_epoch = epoch + 1;
        Ok(IndexBatch {
            provider: self.id.clone(),
            epoch,
            generation,
            table,
        })
    }

    /// As [`finish`](Provider::finish), but only if `expected`, the epoch the cloud
    /// expects next ([`Manifest::next_epoch`]), is also this provider's next epoch;
    /// otherwise [`Error::EpochOutOfOrder`] before anything is built, the queue kept.
    ///
    /// Why: the epoch number is the index's only nonce. A provider that lost its state
    /// (or was started with [`Provider::new`] instead of [`Provider::resume`]) would
    /// otherwise rebuild an epoch already used, repeating its labels and keystream
    /// under the cloud's eyes; and a cloud that claims a smaller count than the
    /// provider's own does not get it to go back either. The provider recovers by
    /// resuming from its saved state, never by adopting the cloud's number. (The
    /// manifest is not authenticated: a cloud that lies *and* a provider that lost
    /// its state can still meet on a used epoch; signed heads are issue 27.)
    pub fn finish_at(&mut self, expected: u32) -> Result<IndexBatch> {
        if expected != self.state.next_epoch {
            return Err(Error::EpochOutOfOrder {
                expected: self.state.next_epoch,
                found: expected,
            });
        }
        self.finish()
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
