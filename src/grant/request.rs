//! Access requests: signed by the requester, with the patient (and record) sealed to
//! the provider.

use crate::crypto::rng;
use crate::error::{Error, Result};
use crate::keys::ProviderId;
use crate::keys::identity::{
    DecryptionKey, EncryptionKey, Fingerprint, Identity, PublicIdentity, VerifyingKey,
};
use crate::wire::{Reader, put_preamble};

use super::sealing::*;
use super::*;

/// A signed access request, as it travels (bytes). Parsing checks structure and the
/// requester's signature; opening the sealed scope needs the provider's key.
///
/// The whole round, the paper's "the key is mailed to the user":
///
/// ```
/// use medvault::{AccessRequest, Cloud, Grant, Identity, MasterKey, PatientId};
/// use medvault::{Provider, ProviderId, Requester, Scope};
///
/// let cloud = Cloud::new();
/// let lab_keys = Identity::generate()?; // RSA-3072 signing and encryption pairs
/// let lab = Provider::new(
///     ProviderId::new("city-lab")?,
///     MasterKey::generate()?,
///     lab_keys.signing.clone(),
/// );
/// cloud.register_provider(lab.id().clone(), lab_keys.public())?;
/// let maria = PatientId::new("+15551000000")?;
///
/// // The doctor asks; the patient id is sealed to the lab, the cloud never sees it.
/// let doctor_keys = Identity::generate()?;
/// let now = 1_790_000_000;
/// let (request, pending) = AccessRequest::create(
///     &doctor_keys, "Dr. Grey", lab.id(), &lab_keys.public().encryption,
///     Scope::Patient(maria.clone()), "follow-up", now,
/// )?;
/// let id = cloud.submit_request(request.to_bytes())?;
/// cloud.decide_request(id, true)?; // the cloud admin approves
///
/// // The lab opens the request and grants the patient's key, sealed to the doctor.
/// for request in cloud.approved_requests(lab.id()) {
///     let opened = request.open(&lab_keys.decryption)?;
///     let key = lab.key_for_scope(&opened.scope, None)?;
///     let grant = Grant::issue(&lab_keys, &opened, key, now, 86_400)?;
///     cloud.post_grant(grant.to_bytes())?;
/// }
///
/// // The doctor checks the lab's signature and opens the grant with her key.
/// let mut doctor = Requester::new();
/// for grant in cloud.fetch_grants(&doctor_keys.public().encryption.fingerprint()) {
///     doctor.accept_grant(&grant, &pending, &lab_keys.public().verifying, &doctor_keys, now)?;
/// }
/// assert_eq!(doctor.providers_for(&maria), [lab.id().clone()]);
/// # Ok::<(), medvault::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRequest {
    bytes: Vec<u8>,
    id: [u8; 16],
    created_at: u64,
    requester_name: String,
    requester: PublicIdentity,
    provider: ProviderId,
    provider_key: Fingerprint,
    kind: ScopeKind,
    reason: String,
    /// Where the sealed scope starts in `bytes` (the associated data is before it).
    sealed_at: usize,
}

/// What the requester keeps of its own request, to check the grant that answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRequest {
    /// The request's id.
    pub id: [u8; 16],
    /// The provider asked.
    pub provider: ProviderId,
    /// What was asked.
    pub scope: Scope,
}

/// A request after the provider opened its sealed scope.
#[derive(Debug, Clone)]
pub struct OpenedRequest {
    /// The request's id.
    pub id: [u8; 16],
    /// The requester's name as it gave it (not verified by medvault).
    pub requester_name: String,
    /// The requester's public keys (the request is signed by `verifying`).
    pub requester: PublicIdentity,
    /// What is asked.
    pub scope: Scope,
    /// The reason given.
    pub reason: String,
    /// When it was made.
    pub created_at: u64,
}

impl AccessRequest {
    /// Makes and signs a request for `scope` at `provider`, whose encryption key
    /// (`provider_key`, pinned by the requester) seals the scope.
    pub fn create(
        requester: &Identity,
        requester_name: &str,
        provider: &ProviderId,
        provider_key: &EncryptionKey,
        scope: Scope,
        reason: &str,
        now: u64,
    ) -> Result<(AccessRequest, PendingRequest)> {
        if requester_name.is_empty() || requester_name.len() > 255 {
            return Err(Error::InvalidArgument("a requester name is 1 to 255 bytes"));
        }
        let id: [u8; 16] = rng::array()?;
        let public = requester.public();
        let mut out = Vec::with_capacity(2048);
        put_preamble(&mut out, REQUEST_MAGIC, GRANT_VERSION, ALG_RSA_PSS_OAEP_EAX);
        out.extend_from_slice(&id);
        out.extend_from_slice(&now.to_be_bytes());
        put_text(
            &mut out,
            requester_name,
            255,
            "a requester name is 1 to 255 bytes",
        )?;
        put_u16_bytes(&mut out, &public.verifying.to_spki_der())?;
        put_u16_bytes(&mut out, &public.encryption.to_spki_der())?;
        provider.encode_into(&mut out);
        out.extend_from_slice(&provider_key.fingerprint());
        out.push(scope.kind().code());
        put_text(
            &mut out,
            reason,
            MAX_REASON_LEN,
            "a reason is at most 1024 bytes",
        )?;
        seal_to(&mut out, provider_key, REQUEST_OAEP_LABEL, &scope.encode())?;
        let signature = requester.signing.sign(&out)?;
        put_u16_bytes(&mut out, &signature)?;
        let request = AccessRequest::from_bytes(&out)?;
        let pending = PendingRequest {
            id,
            provider: provider.clone(),
            scope,
        };
        Ok((request, pending))
    }

    /// Parses a request and verifies the requester's signature over it.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "access request");
        r.preamble(REQUEST_MAGIC, GRANT_VERSION, &[ALG_RSA_PSS_OAEP_EAX])?;
        let id = r.array("request id")?;
        let created_at = r.u64("creation time")?;
        let requester_name = take_text(&mut r, 255, "requester name")?;
        if requester_name.is_empty() {
            return Err(r.malformed("empty requester name"));
        }
        let verifying =
            VerifyingKey::from_spki_der(take_u16_bytes(&mut r, "requester verifying key")?)?;
        let encryption =
            EncryptionKey::from_spki_der(take_u16_bytes(&mut r, "requester encryption key")?)?;
        let provider = ProviderId::decode(&mut r)?;
        let provider_key = r.array("provider key fingerprint")?;
        let kind = ScopeKind::from_code(r.u8("scope kind")?, &r)?;
        let reason = take_text(&mut r, MAX_REASON_LEN, "reason")?;
        let sealed_at = bytes.len() - r.remaining();
        read_sealed(&mut r)?;
        let signed_len = bytes.len() - r.remaining();
        let signature = take_u16_bytes(&mut r, "signature")?;
        r.finish()?;
        verifying.verify(&bytes[..signed_len], signature)?;
        Ok(AccessRequest {
            bytes: bytes.to_vec(),
            id,
            created_at,
            requester_name,
            requester: PublicIdentity {
                verifying,
                encryption,
            },
            provider,
            provider_key,
            kind,
            reason,
            sealed_at,
        })
    }

    /// The wire form.
    pub fn to_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The armored form: `-----BEGIN MEDVAULT ACCESS REQUEST-----`, base64, footer.
    pub fn to_armor(&self) -> String {
        armor(REQUEST_ARMOR_LABEL, &self.bytes)
    }

    /// Parses the armored form (and verifies the signature).
    pub fn from_armor(text: &str) -> Result<Self> {
        Self::from_bytes(&dearmor(REQUEST_ARMOR_LABEL, text)?)
    }

    /// The request's id.
    pub fn id(&self) -> [u8; 16] {
        self.id
    }
    /// When it was made (unix seconds).
    pub fn created_at(&self) -> u64 {
        self.created_at
    }
    /// The requester's name, as given.
    pub fn requester_name(&self) -> &str {
        &self.requester_name
    }
    /// The requester's public keys.
    pub fn requester(&self) -> &PublicIdentity {
        &self.requester
    }
    /// The provider asked.
    pub fn provider(&self) -> &ProviderId {
        &self.provider
    }
    /// Patient or record.
    pub fn scope_kind(&self) -> ScopeKind {
        self.kind
    }
    /// The reason given (visible to whoever carries the request).
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// Opens the sealed scope with the provider's decryption key.
    pub fn open(&self, provider: &DecryptionKey) -> Result<OpenedRequest> {
        if provider.public_key().fingerprint() != self.provider_key {
            return Err(Error::WrongRecipient);
        }
        let mut r = Reader::new(&self.bytes[self.sealed_at..], "access request");
        let sealed = read_sealed(&mut r)?;
        let associated_len = self.sealed_at + 2 + sealed.wrapped.len() + 16;
        let payload = open_sealed(
            &sealed,
            &self.bytes[..associated_len],
            provider,
            REQUEST_OAEP_LABEL,
        )?;
        let mut p = Reader::new(&payload, "access request scope");
        let scope = Scope::decode(self.kind, &mut p)?;
        p.finish()?;
        Ok(OpenedRequest {
            id: self.id,
            requester_name: self.requester_name.clone(),
            requester: self.requester.clone(),
            scope,
            reason: self.reason.clone(),
            created_at: self.created_at,
        })
    }
}
