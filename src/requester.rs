//! The data user (a doctor): holds the keys it was granted, builds one query for a
//! patient across every provider it holds keys for, and opens the cloud's answer.
//!
//! Nothing the cloud says is taken on trust. Tokens are built from each provider's
//! signed log, verified under the provider key the requester pinned
//! ([`Requester::trust_provider`], or the issuer of an accepted grant); the highest log
//! seen per provider is remembered and a shorter or different one refused
//! ([`Error::LogRollback`], [`Error::NotAuthentic`]). Opening a response checks every
//! record against the digest its provider signed, re-evaluates the postings and checks
//! that the records sent are exactly the ones they select
//! ([`Error::InconsistentResponse`] otherwise), then opens each record.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::grant::{Grant, GrantedKey, OpenedGrant, PendingRequest, Rekey};
use crate::index::keyword;
use crate::index::log::{self, VerifiedLog};
use crate::index::manifest::Manifest;
use crate::index::query::{
    Combine, Hit, MAX_KEYWORDS, MAX_PROVIDERS, ProviderTokens, Query, SearchResponse,
};
use crate::index::token;
use crate::keys::identity::{Identity, VerifyingKey};
use crate::keys::{PatientId, PatientKey, ProviderId, RecordId, RecordKey};
use crate::parallel::{self, Work};
use crate::record::header::RecordHeader;
use crate::record::seal::open;

/// A query together with what only the requester knows about it.
#[derive(Debug)]
pub struct PreparedQuery {
    query: Query,
    patient: PatientId,
    keywords: Vec<String>,
    /// The verified log each provider's tokens were built from, in query order.
    logs: Vec<Arc<VerifiedLog>>,
}

impl PreparedQuery {
    /// The part sent to the cloud.
    pub fn query(&self) -> &Query {
        &self.query
    }

    /// The normalized keywords searched.
    pub fn keywords(&self) -> &[String] {
        &self.keywords
    }
}

/// One decrypted record.
#[derive(Debug)]
pub struct OpenedRecord {
    /// The record's id.
    pub id: RecordId,
    /// The key generation it was sealed under.
    pub generation: u32,
    /// Its plaintext, wiped on drop.
    pub plaintext: Zeroizing<Vec<u8>>,
}

/// What one provider returned, decrypted.
#[derive(Debug)]
pub struct ProviderResults {
    /// The provider.
    pub provider: ProviderId,
    /// Per keyword (in query order), the postings of every searched epoch, each proven
    /// to be the provider's, in epoch order (deletions included).
    pub postings: Vec<Vec<Hit>>,
    /// The matching records, by id.
    pub records: Vec<OpenedRecord>,
    /// Matching records the cloud says it does not hold.
    pub missing: Vec<RecordId>,
}

/// The decrypted answer to a query.
#[derive(Debug)]
pub struct SearchResults {
    /// Per provider, in query order.
    pub providers: Vec<ProviderResults>,
}

impl SearchResults {
    /// Total matching records opened.
    pub fn record_count(&self) -> usize {
        self.providers.iter().map(|p| p.records.len()).sum()
    }
}

/// A requester's keyring and query builder.
///
/// One query covers one patient at every provider the requester holds keys for; the
/// answer is checked against the postings before any record is opened.
///
/// ```
/// use medvault::{Cloud, Combine, Identity, MasterKey, PatientId, Provider, ProviderId, Requester};
///
/// let cloud = Cloud::new();
/// let maria = PatientId::new("+15551000000")?;
/// let mut doctor = Requester::new();
/// for name in ["st-mary", "city-lab"] {
///     let (id, keys) = (ProviderId::new(name)?, Identity::generate_with_bits(2048)?);
///     cloud.register_provider(id.clone(), keys.public())?;
///     let mut provider = Provider::new(id.clone(), MasterKey::generate()?, keys.signing.clone());
///     let note = format!("{name}: HbA1c 7.9 %, on metformin");
///     let record = provider.add_record(&maria, note.as_bytes(), &["metformin"])?;
///     cloud.ingest(provider.finish()?)?;
///     cloud.put_record(record.bytes)?;
///     // In practice the key arrives in a grant (`accept_grant`), which also pins the
///     // provider's keys.
///     doctor.trust_provider(id, keys.public().verifying)?;
///     doctor.add_patient_key(maria.clone(), provider.patient_key(&maria));
/// }
/// let query = doctor.query(&maria, &["metformin"], Combine::And, &cloud.manifest())?;
/// let results = doctor.open(&query, &cloud.search(query.query())?)?;
/// assert_eq!(results.providers.len(), 2);
/// assert_eq!(results.record_count(), 2);
/// # Ok::<(), medvault::Error>(())
/// ```
#[derive(Default)]
pub struct Requester {
    /// Patient keys by provider and patient, then by generation.
    keys: HashMap<(ProviderId, PatientId), BTreeMap<u32, PatientKey>>,
    /// Keys of single records.
    record_keys: HashMap<(ProviderId, RecordId), RecordKey>,
    /// The verifying key pinned for each provider.
    pinned: HashMap<ProviderId, VerifyingKey>,
    /// The highest log verified per provider (rollback refusal, and the head cache).
    seen: Mutex<HashMap<ProviderId, Arc<VerifiedLog>>>,
}

impl std::fmt::Debug for Requester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Requester({} patient keys)",
            self.keys.values().map(BTreeMap::len).sum::<usize>()
        )
    }
}

impl Requester {
    /// A requester with no keys.
    pub fn new() -> Self {
        Requester::default()
    }

    /// Adds the key of `patient` at the key's provider and generation (what a grant of
    /// the patient delivers).
    pub fn add_patient_key(&mut self, patient: PatientId, key: PatientKey) {
        self.keys
            .entry((key.provider().clone(), patient))
            .or_default()
            .insert(key.generation(), key);
    }

    /// Pins `key` as `provider`'s verifying key: its signed log is checked under it
    /// before any token for the provider is built. Pinning another key for a provider
    /// already pinned is [`Error::AlreadyRegistered`].
    pub fn trust_provider(&mut self, provider: ProviderId, key: VerifyingKey) -> Result<()> {
        match self.pinned.get(&provider) {
            Some(pinned) if *pinned != key => Err(Error::AlreadyRegistered),
            Some(_) => Ok(()),
            None => {
                self.pinned.insert(provider, key);
                Ok(())
            }
        }
    }

    /// Follows a provider's re-keying: `rekey` must be signed by the key pinned for its
    /// provider ([`Error::NotFound`] if none is pinned, [`Error::SignatureInvalid`]);
    /// then its new verifying key is pinned instead. The log seen so far stays: its
    /// chain does not depend on the key, so rollback protection carries over.
    pub fn follow_rekey(&mut self, rekey: &Rekey) -> Result<()> {
        let pinned = self
            .pinned
            .get(rekey.provider())
            .ok_or(Error::NotFound("a pinned key for the provider"))?;
        rekey.verify(pinned)?;
        self.pinned
            .insert(rekey.provider().clone(), rekey.new_keys().verifying.clone());
        Ok(())
    }

    /// Adds the key of one record (what a grant of one record delivers).
    pub fn add_record_key(&mut self, key: RecordKey) {
        self.record_keys
            .insert((key.provider().clone(), key.record_id()), key);
    }

    /// Adds the key an opened grant carries.
    pub fn add_grant(&mut self, grant: OpenedGrant) {
        match grant.key {
            GrantedKey::Patient(patient, key) => self.add_patient_key(patient, key),
            GrantedKey::Record(_, key) => self.add_record_key(key),
        }
    }

    /// Opens a grant received for `pending`: verifies it against the provider key the
    /// requester pinned (`issuer`), checks it is for this requester, not expired, and
    /// answers exactly that request; then adds its key and pins `issuer` for the
    /// grant's provider ([`Requester::trust_provider`]).
    pub fn accept_grant(
        &mut self,
        grant: &Grant,
        pending: &PendingRequest,
        issuer: &VerifyingKey,
        me: &Identity,
        now: u64,
    ) -> Result<()> {
        let opened = grant.open(issuer, me, now)?;
        opened.check_answers(pending)?;
        let provider = match &opened.key {
            GrantedKey::Patient(_, key) => key.provider().clone(),
            GrantedKey::Record(_, key) => key.provider().clone(),
        };
        self.trust_provider(provider, issuer.clone())?;
        self.add_grant(opened);
        Ok(())
    }

    /// Opens one sealed record with a record key or a patient key held for `patient`.
    pub fn open_record(
        &self,
        patient: Option<&PatientId>,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let (header, _) = RecordHeader::parse(sealed)?;
        if let Some(key) = self
            .record_keys
            .get(&(header.provider().clone(), header.record_id()))
        {
            return open(key, sealed).map(Zeroizing::new);
        }
        let generations = patient
            .and_then(|p| self.keys.get(&(header.provider().clone(), p.clone())))
            .ok_or(Error::NotFound("a key for this record"))?;
        let key = generations
            .get(&header.generation())
            .ok_or(Error::WrongKey(crate::KeyMismatch::Generation))?;
        open(key, sealed).map(Zeroizing::new)
    }

    /// The providers this requester holds keys for `patient` at, sorted.
    pub fn providers_for(&self, patient: &PatientId) -> Vec<ProviderId> {
        let mut out: Vec<_> = self
            .keys
            .keys()
            .filter(|(_, p)| p == patient)
            .map(|(provider, _)| provider.clone())
            .collect();
        out.sort();
        out
    }

    /// Builds one query for `patient` and `keywords` (1 to 16, combined by `combine`)
    /// across every provider the requester holds keys for and the manifest lists.
    ///
    /// Each provider's log in the manifest is verified first under its pinned key
    /// ([`Error::NotFound`] if none is pinned; [`Error::NotAuthentic`],
    /// [`Error::LogRollback`]). Each token covers exactly the signed epochs in the
    /// generations the requester holds keys for, so it cannot find anything uploaded
    /// later (forward privacy) nor under a newer generation (revocation).
    ///
    /// Every provider asked receives a token for each keyword: a provider that colludes
    /// with the cloud learns the keyword from its own records in the answer (file
    /// injection, SECURITY.md). [`Requester::query_at`] asks only the providers named.
    pub fn query(
        &self,
        patient: &PatientId,
        keywords: &[impl AsRef<str>],
        combine: Combine,
        manifest: &Manifest,
    ) -> Result<PreparedQuery> {
        let keywords = checked_keywords(keywords)?;
        let asked: Vec<ProviderId> = self
            .providers_for(patient)
            .into_iter()
            .filter(|provider| manifest.provider(provider).is_some())
            .collect();
        if asked.is_empty() {
            return Err(Error::NotFound(
                "keys for this patient at any provider in the manifest",
            ));
        }
        self.query_providers(patient, keywords, combine, manifest, &asked)
    }

    /// As [`Requester::query`], but only `providers` (1 to 255, each once) receive
    /// tokens and are searched: a doctor who does not trust a provider with the
    /// keyword leaves it out, and nothing it planted can answer. Each one named must be
    /// in the manifest and hold keys the requester was granted for `patient`
    /// ([`Error::NotFound`] otherwise, naming neither).
    pub fn query_at(
        &self,
        patient: &PatientId,
        keywords: &[impl AsRef<str>],
        combine: Combine,
        manifest: &Manifest,
        providers: &[ProviderId],
    ) -> Result<PreparedQuery> {
        let keywords = checked_keywords(keywords)?;
        if providers.is_empty() || providers.len() > MAX_PROVIDERS {
            return Err(Error::InvalidArgument("a query names 1 to 255 providers"));
        }
        let mut asked = providers.to_vec();
        asked.sort();
        asked.dedup();
        if asked.len() != providers.len() {
            return Err(Error::InvalidArgument("a provider named twice in a query"));
        }
        for provider in &asked {
            if !self.keys.contains_key(&(provider.clone(), patient.clone())) {
                return Err(Error::NotFound(
                    "keys for this patient at a provider the query names",
                ));
            }
            if manifest.provider(provider).is_none() {
                return Err(Error::NotFound(
                    "a provider the query names, in the manifest",
                ));
            }
        }
        self.query_providers(patient, keywords, combine, manifest, &asked)
    }

    /// The query for checked `keywords` at `providers` (sorted, each once).
    fn query_providers(
        &self,
        patient: &PatientId,
        keywords: Vec<String>,
        combine: Combine,
        manifest: &Manifest,
        providers: &[ProviderId],
    ) -> Result<PreparedQuery> {
        if providers.len() > MAX_PROVIDERS {
            return Err(Error::InvalidArgument(
                "a query spans at most 255 providers",
            ));
        }
        let mut tokens_at = Vec::with_capacity(providers.len());
        let mut logs = Vec::with_capacity(providers.len());
        for provider in providers {
            let info = manifest.provider(provider).ok_or(Error::NotFound(
                "a provider the query names, in the manifest",
            ))?;
            let log = self.verified_log(provider, info)?;
            let generations =
                self.keys
                    .get(&(provider.clone(), patient.clone()))
                    .ok_or(Error::NotFound(
                        "keys for this patient at a provider the query names",
                    ))?;
            let tokens = keywords
                .iter()
                .map(|keyword| token::build(generations, &log, keyword))
                .collect::<Result<Vec<_>>>()?;
            tokens_at.push(ProviderTokens {
                provider: provider.clone(),
                tokens,
            });
            logs.push(log);
        }
        Ok(PreparedQuery {
            query: Query {
                combine,
                keyword_count: keywords.len(),
                providers: tokens_at,
            },
            patient: patient.clone(),
            keywords,
            logs,
        })
    }

    /// `provider`'s log in the manifest, verified under its pinned key and against the
    /// highest log seen before, which it then replaces.
    fn verified_log(
        &self,
        provider: &ProviderId,
        entry: &crate::index::manifest::ProviderManifest,
    ) -> Result<Arc<VerifiedLog>> {
        let key = self.pinned.get(provider).ok_or(Error::NotFound(
            "a pinned key for the provider (Requester::trust_provider)",
        ))?;
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let log = log::verify(
            provider,
            &entry.epochs,
            &entry.signature,
            key,
            seen.get(provider),
        )?;
        seen.insert(provider.clone(), Arc::clone(&log));
        Ok(log)
    }

    /// Checks the cloud's response against its own postings and opens every record.
    pub fn open(
        &self,
        prepared: &PreparedQuery,
        response: &SearchResponse,
    ) -> Result<SearchResults> {
        let asked = &prepared.query.providers;
        if response.providers.len() != asked.len() {
            return Err(Error::InconsistentResponse(
                "provider count differs from the query",
            ));
        }
        let mut providers = Vec::with_capacity(asked.len());
        for ((tokens, log), answer) in asked.iter().zip(&prepared.logs).zip(&response.providers) {
            token::check_shape(tokens, log, prepared.keywords.len(), answer)?;
            let postings = token::verified_postings(tokens, log, answer)?;
            let keys = self
                .keys
                .get(&(answer.provider.clone(), prepared.patient.clone()))
                .ok_or(Error::NotFound("keys for a provider in the response"))?;
            let open_one = |(id, sealed): &(RecordId, Vec<u8>)| -> Result<OpenedRecord> {
                let (header, _) = RecordHeader::parse(sealed)?;
                if header.record_id() != *id {
                    return Err(Error::InconsistentResponse(
                        "a record's header names another id",
                    ));
                }
                let key = keys
                    .get(&header.generation())
                    .ok_or(Error::WrongKey(crate::KeyMismatch::Generation))?;
                Ok(OpenedRecord {
                    id: *id,
                    generation: header.generation(),
                    plaintext: Zeroizing::new(open(key, sealed)?),
                })
            };
            // One pass over the records, on all cores when there are many: each record's
            // leaf (its digest, for the proof) and its opening, while its bytes are in
            // cache. Nothing opened is returned unless every proof verifies; then the
            // first failure in the answer's order is the one reported, as checking and
            // opening them one by one would report it.
            let leaf_and_open = |record: &(RecordId, Vec<u8>)| {
                (log::record_leaf(record.0, &record.1), open_one(record))
            };
            let done: Vec<(crate::crypto::merkle::Digest, Result<OpenedRecord>)> =
                if parallel::worth_splitting(Work::records(answer.records.len())) {
                    parallel::run(|| answer.records.par_iter().map(leaf_and_open).collect())
                } else {
                    answer.records.iter().map(leaf_and_open).collect()
                };
            let (leaves, opened): (Vec<_>, Vec<_>) = done.into_iter().unzip();
            token::check_contents(log, prepared.query.combine, &postings, answer, &leaves)?;
            let records = opened.into_iter().collect::<Result<Vec<_>>>()?;
            providers.push(ProviderResults {
                provider: answer.provider.clone(),
                postings,
                records,
                missing: answer.missing.clone(),
            });
        }
        Ok(SearchResults { providers })
    }
}

/// 1 to 16 keywords, each normalized ([`keyword::checked`]).
fn checked_keywords(keywords: &[impl AsRef<str>]) -> Result<Vec<String>> {
    if keywords.is_empty() || keywords.len() > MAX_KEYWORDS {
        return Err(Error::InvalidArgument("a query has 1 to 16 keywords"));
    }
    keywords
        .iter()
        .map(|k| keyword::checked(k.as_ref()))
        .collect()
}
