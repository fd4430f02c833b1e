//! The data owner: a hospital, lab, pharmacy or patient that seals its records and
//! indexes their keywords under its own keys.
//!
//! A [`Provider`] seals records for patients and collects their keywords; [`finish`]
//! turns everything collected into the [`IndexBatch`] of its next epoch. One batch
//! mixes entries of all patients and keywords, so the cloud cannot group uploads by
//! patient.
//!
//! Every batch is signed with the provider's signing key: it extends the provider's
//! log (`index::log`), whose head the provider signs, so the cloud refuses a batch or
//! record the provider did not make and a requester can check what the cloud returns.
//!
//! **State that must survive a restart** is small: the next epoch number, the key
//! generation and the log's chain value ([`ProviderState`]). Persist
//! [`Provider::state`] (its `to_bytes`) after every [`finish`] and
//! [`rotate`](Provider::rotate), and on start call [`Provider::resume`] with it,
//! reconciled with the cloud's manifest ([`ProviderState::reconcile`]), which adopts
//! the provider's own *signed* log when it is ahead (a lost state) and never an
//! unsigned number. A batch whose upload failed is uploaded again as it is, never
//! rebuilt: rebuilding would reuse its epoch, the index's only nonce.
//!
//! [`finish`]: Provider::finish

use crate::crypto::merkle::Digest;
use crate::error::{Error, Result};
use crate::grant::{GrantedKey, Scope};
use crate::index::build::{self, normalize_all};
use crate::index::log::{self, CHAIN_START, RecordTable};
use crate::index::manifest::Manifest;
use crate::index::queue::Queue;
use crate::index::{IndexBatch, Op};
use crate::keys::identity::{SigningKey, VerifyingKey};
use crate::keys::{MasterKey, PatientId, PatientKey, ProviderId, RecordId, RecordKey};
use crate::record::seal::seal;
use crate::record::stream::Sealer;
use crate::wire::{Reader, put_preamble};

/// Magic bytes of a saved provider state.
pub const STATE_MAGIC: &[u8; 4] = b"MVPS";
/// The provider-state format version.
pub const STATE_VERSION: u8 = 2;

/// How a provider builds its index.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexOptions {
    /// Pad every posting list to a power-of-two number of blocks. Hides list lengths
    /// within a batch (up to a factor of two) from whoever sees the index, at up to
    /// twice the entries. The cloud still learns true result counts when it searches;
    /// see SECURITY.md.
    pub pad_to_power_of_two: bool,
    /// Pad every batch with random entries (a random label and value each, which no
    /// token ever reaches) to at least this many entries, so a batch's size says
    /// nothing about how many postings below it were uploaded. 0: no padding.
    pub min_batch_entries: usize,
}

/// The counters a provider must keep across restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderState {
    /// The epoch number the next batch gets.
    pub next_epoch: u32,
    /// The key generation new records and batches use.
    pub generation: u32,
    /// The generation of the last batch built (0 before the first): a rotation waits
    /// for a batch, since generations rise by at most one per batch.
    pub logged_generation: u32,
    /// The provider's log chain value after its last batch (`index::log`).
    pub chain: Digest,
}

impl Default for ProviderState {
    fn default() -> Self {
        ProviderState {
            next_epoch: 0,
            generation: 0,
            logged_generation: 0,
            chain: CHAIN_START,
        }
    }
}

impl ProviderState {
    /// The wire form (`FORMAT.md`, "Provider state").
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(50);
        put_preamble(&mut out, STATE_MAGIC, STATE_VERSION, 0);
        out.extend_from_slice(&self.next_epoch.to_be_bytes());
        out.extend_from_slice(&self.generation.to_be_bytes());
        out.extend_from_slice(&self.logged_generation.to_be_bytes());
        out.extend_from_slice(&self.chain);
        out
    }

    /// Parses a saved state.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "provider state");
        r.preamble(STATE_MAGIC, STATE_VERSION, &[0])?;
        let state = ProviderState {
            next_epoch: r.u32("next epoch")?,
            generation: r.u32("generation")?,
            logged_generation: r.u32("logged generation")?,
            chain: r.array("chain")?,
        };
        r.finish()?;
        if state.logged_generation > state.generation
            || (state.next_epoch == 0) != (state.chain == CHAIN_START)
        {
            return Err(Error::Malformed {
                format: "provider state",
                detail: "generations or chain inconsistent",
            });
        }
        Ok(state)
    }

    /// This state reconciled with the provider's log in the cloud's `manifest`, checked
    /// under the provider's own verifying key `own_key`: a signed log ahead of this
    /// state (the state was lost or is stale) is adopted; one behind it is ignored (the
    /// cloud lost or hides epochs: the next upload will say so); one of the same length
    /// must be this very log ([`Error::NotAuthentic`] otherwise). A rotation the local
    /// state knows and no batch has shown yet is kept. Nothing unsigned is adopted.
    ///
    /// Limit: a provider that lost its state *and* meets a cloud that shows an older
    /// signed head would rebuild the epochs after it; keep the state (SECURITY.md).
    pub fn reconcile(
        self,
        manifest: &Manifest,
        provider: &ProviderId,
        own_key: &VerifyingKey,
    ) -> Result<Self> {
        let Some(entry) = manifest.provider(provider) else {
            return Ok(self);
        };
        let signed = log::verify(provider, &entry.epochs, &entry.signature, own_key, None)?;
        let count = signed.epoch_count();
        if count < self.next_epoch {
            return Ok(self);
        }
        if count == self.next_epoch {
            if signed.chain != self.chain {
                return Err(Error::NotAuthentic {
                    provider: provider.to_string(),
                    what: "log (it differs from the provider's own state)",
                });
            }
            return Ok(self);
        }
        let logged = signed.epochs.last().map_or(0, |e| e.generation);
        Ok(ProviderState {
            next_epoch: count,
            generation: self.generation.max(logged),
            logged_generation: logged,
            chain: signed.chain,
        })
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
/// use medvault::{Identity, MasterKey, PatientId, Provider, ProviderId};
///
/// let keys = Identity::generate_with_bits(2048)?; // registered with the cloud
/// let mut hospital = Provider::new(
///     ProviderId::new("st-mary")?,
///     MasterKey::generate()?,
///     keys.signing.clone(),
/// );
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
    signing: SigningKey,
    state: ProviderState,
    options: IndexOptions,
    /// Postings waiting for the next batch.
    pending: Queue,
    /// Records (id, digest of the sealed bytes) waiting for the next batch.
    pending_records: Vec<(RecordId, Digest)>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("id", &self.id)
            .field("state", &self.state)
            .field("pending_lists", &self.pending.list_count())
            .field("pending_records", &self.pending_records.len())
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// A provider starting at epoch 0, generation 0, signing its batches with
    /// `signing` (its identity's signing key, registered with the cloud).
    pub fn new(id: ProviderId, master: MasterKey, signing: SigningKey) -> Self {
        Self::resume(id, master, signing, ProviderState::default())
    }

    /// A provider continuing from a saved state.
    pub fn resume(
        id: ProviderId,
        master: MasterKey,
        signing: SigningKey,
        state: ProviderState,
    ) -> Self {
        Provider {
            id,
            master,
            signing,
            state,
            options: IndexOptions::default(),
            pending: Queue::default(),
            pending_records: Vec::new(),
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
        self.pending_records.push((id, log::record_digest(&bytes)));
        Ok(SealedRecord { id, bytes })
    }

    /// Commits a record sealed outside [`add_record`](Provider::add_record) (with
    /// [`start_record`](Provider::start_record)) to the next batch: reads the sealed
    /// bytes from `sealed` and queues their digest. The cloud stores a record only
    /// after a batch of its provider committed it, so upload the batch first.
    pub fn commit_record(
        &mut self,
        record: RecordId,
        mut sealed: impl std::io::Read,
    ) -> Result<()> {
        use sha2::Digest as _;
        let mut hasher = sha2::Sha256::new();
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            match sealed.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => hasher.update(&buffer[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.pending_records
            .push((record, hasher.finalize().into()));
        Ok(())
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

    /// Builds and signs the batch of the next epoch from everything queued, and
    /// advances the epoch. An empty batch is valid (it moves the epoch on). Upload the
    /// batch before the records it commits; if the upload fails, upload the same batch
    /// again.
    pub fn finish(&mut self) -> Result<IndexBatch> {
        let epoch = self.state.next_epoch;
        if epoch == u32::MAX - 1 {
            return Err(Error::InvalidArgument(
                "the provider has used every epoch number",
            ));
        }
        let generation = self.state.generation;
        let mut table = build::entries(
            &self.master,
            &self.id,
            &self.pending,
            epoch,
            generation,
            self.options.pad_to_power_of_two,
        )?;
        if table.len() < self.options.min_batch_entries {
            table = build::with_random_entries(table, self.options.min_batch_entries)?;
        }
        let mut records = self.pending_records.clone();
        records.sort_unstable_by_key(|(id, _)| *id);
        let records = RecordTable::new(records)
            .map_err(|_| Error::InvalidArgument("a record was committed twice"))?;
        let mut batch = IndexBatch::new(
            self.id.clone(),
            epoch,
            generation,
            table,
            records,
            Vec::new(),
        );
        let chain = log::next_chain(&self.id, epoch, &batch.info, &self.state.chain);
        batch.signature = self
            .signing
            .sign(&log::head_message(&self.id, epoch + 1, &chain))?;
        // Only now is the queue spent (a failed build keeps it).
        self.pending = Queue::default();
        self.pending_records.clear();
        self.state.next_epoch = epoch + 1;
        self.state.logged_generation = generation;
        self.state.chain = chain;
        Ok(batch)
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
    /// resuming from its saved state or from its own signed log
    /// ([`ProviderState::reconcile`]), never by adopting an unsigned number.
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
    /// of older generations open nothing new. Finish the pending batch first; a second
    /// rotation waits for a batch of the new generation (generations rise by at most one
    /// per signed batch).
    pub fn rotate(&mut self) -> Result<u32> {
        if !self.pending.is_empty() || !self.pending_records.is_empty() {
            return Err(Error::InvalidArgument(
                "finish the pending batch before rotating keys",
            ));
        }
        if self.state.generation > self.state.logged_generation {
            return Err(Error::InvalidArgument(
                "finish a batch of the new generation before rotating again",
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
