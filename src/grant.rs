//! Access requests and grants: the library's version of the paper's "the key is mailed
//! to the user after the admin accepts the request".
//!
//! 1. A requester makes an [`AccessRequest`] for a patient (or one record) at a provider:
//!    its public keys, a reason and a time, with the patient id (and record id) sealed to
//!    the provider's encryption key so the cloud admin never sees them, all signed with
//!    the requester's signing key.
//! 2. The provider opens it ([`AccessRequest::open`]) and issues a [`Grant`]: the patient
//!    key of a generation (or one record key) sealed with AES-256-EAX under a fresh key,
//!    that key wrapped with RSA-OAEP to the requester's encryption key, the whole grant
//!    signed by the provider's signing key. Only that requester can open it; anyone can
//!    check who issued it.
//! 3. The requester opens it ([`Grant::open`]) against the provider key it pinned,
//!    checks it answers its request ([`OpenedGrant::check_answers`]) and adds the key to
//!    its keyring.
//!
//! Both objects have an ASCII-armored form for mail or copy-paste ([`AccessRequest::to_armor`],
//! [`Grant::to_armor`]). Byte layouts: `FORMAT.md`, "Access request" and "Grant".
//!
//! **Leaks** to whoever carries them (the cloud, a mail server): requester name and keys,
//! provider, whether a patient or one record is asked, the reason, times; for a grant,
//! provider, recipient key fingerprint, scope kind, key generation and validity. Never the
//! patient id, the record id asked for, or any key.

use aes::Aes256Enc;
use cipher::KeyInit;
use pem_rfc7468::LineEnding;
use zeroize::Zeroizing;

use crate::crypto::eax::{Eax, TAG_LEN};
use crate::crypto::rng;
use crate::error::{Error, Result};
use crate::keys::identity::{
    DecryptionKey, EncryptionKey, Fingerprint, Identity, PublicIdentity, VerifyingKey,
};
use crate::keys::{PatientId, PatientKey, ProviderId, RecordId, RecordKey};
use crate::wire::{Reader, put_preamble};

/// Magic bytes of an access request.
pub const REQUEST_MAGIC: &[u8; 4] = b"MVAQ";
/// Magic bytes of a grant.
pub const GRANT_MAGIC: &[u8; 4] = b"MVGT";
/// Version of both formats.
pub const GRANT_VERSION: u8 = 1;
/// RSA-PSS-SHA256 signatures, RSA-OAEP-SHA256 key wrapping, AES-256-EAX sealing.
pub const ALG_RSA_PSS_OAEP_EAX: u8 = 1;
/// Armor label of an access request.
pub const REQUEST_ARMOR_LABEL: &str = "MEDVAULT ACCESS REQUEST";
/// Armor label of a grant.
pub const GRANT_ARMOR_LABEL: &str = "MEDVAULT GRANT";
/// How far in the future a grant's issue time may be, for clock skew.
pub const CLOCK_SKEW_SECS: u64 = 300;
/// Longest reason, in bytes.
pub const MAX_REASON_LEN: usize = 1024;

/// OAEP labels: a wrapped key is only ever unwrapped for the purpose it was made for.
const REQUEST_OAEP_LABEL: &[u8] = b"medvault/v1/access-request";
const GRANT_OAEP_LABEL: &[u8] = b"medvault/v1/grant";

/// What is asked for or granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeKind {
    /// Everything of one patient at one provider (search and read).
    Patient,
    /// One record (read only).
    Record,
}

impl ScopeKind {
    fn code(self) -> u8 {
        match self {
            ScopeKind::Patient => 1,
            ScopeKind::Record => 2,
        }
    }
    fn from_code(code: u8, r: &Reader<'_>) -> Result<Self> {
        match code {
            1 => Ok(ScopeKind::Patient),
            2 => Ok(ScopeKind::Record),
            _ => Err(r.malformed("unknown scope kind")),
        }
    }
}

/// The sealed part of a request: who and what exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// All of a patient's records at the provider.
    Patient(PatientId),
    /// One record of a patient.
    Record(PatientId, RecordId),
}

impl Scope {
    /// Patient or record.
    pub fn kind(&self) -> ScopeKind {
        match self {
            Scope::Patient(_) => ScopeKind::Patient,
            Scope::Record(..) => ScopeKind::Record,
        }
    }

    /// The patient concerned.
    pub fn patient(&self) -> &PatientId {
        match self {
            Scope::Patient(p) | Scope::Record(p, _) => p,
        }
    }

    fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(1 + 255 + 16));
        let patient = self.patient().as_bytes();
        out.push(patient.len() as u8);
        out.extend_from_slice(patient);
        let record = match self {
            Scope::Patient(_) => [0u8; 16],
            Scope::Record(_, id) => *id.as_bytes(),
        };
        out.extend_from_slice(&record);
        out
    }

    fn decode(kind: ScopeKind, r: &mut Reader<'_>) -> Result<Self> {
        let len = usize::from(r.u8("patient id length")?);
        let patient = PatientId::new(r.take(len, "patient id")?)
            .map_err(|_| r.malformed("invalid patient id"))?;
        let record = RecordId::from_bytes(r.array("record id")?);
        Ok(match kind {
            ScopeKind::Patient => Scope::Patient(patient),
            ScopeKind::Record => Scope::Record(patient, record),
        })
    }
}

// ---------------------------------------------------------------------------------------
// Sealing to a public key: RSA-OAEP wraps a fresh AES key, EAX seals the payload.

struct Sealed<'a> {
    wrapped: &'a [u8],
    nonce: &'a [u8],
    ciphertext: &'a [u8],
    tag: &'a [u8],
}

fn put_u16_bytes(out: &mut Vec<u8>, bytes: &[u8]) -> Result<()> {
    let len = u16::try_from(bytes.len())
        .map_err(|_| Error::InvalidArgument("a field is longer than 65535 bytes"))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

fn take_u16_bytes<'a>(r: &mut Reader<'a>, what: &'static str) -> Result<&'a [u8]> {
    let len = usize::from(u16::from_be_bytes(r.array(what)?));
    r.take(len, what)
}

/// Appends `wrapped key ‖ nonce ‖ ciphertext ‖ tag`, authenticating everything already
/// in `out` (and the nonce) as associated data.
fn seal_to(out: &mut Vec<u8>, to: &EncryptionKey, label: &[u8], payload: &[u8]) -> Result<()> {
    let key = Zeroizing::new(rng::array::<32>()?);
    put_u16_bytes(out, &to.wrap(label, &key[..])?)?;
    let nonce: [u8; 16] = rng::array()?;
    out.extend_from_slice(&nonce);
    let mut body = Zeroizing::new(payload.to_vec());
    let eax = Eax::new(Aes256Enc::new((&*key).into()));
    let tag = eax.seal_detached(&nonce, out, &mut body);
    put_u16_bytes(out, &body)?;
    out.extend_from_slice(&tag);
    Ok(())
}

fn read_sealed<'a>(r: &mut Reader<'a>) -> Result<Sealed<'a>> {
    Ok(Sealed {
        wrapped: take_u16_bytes(r, "wrapped key")?,
        nonce: r.take(16, "nonce")?,
        ciphertext: take_u16_bytes(r, "sealed payload")?,
        tag: r.take(TAG_LEN, "tag")?,
    })
}

/// Opens what [`seal_to`] wrote; `associated` is every byte before the wrapped key,
/// then the wrapped key and nonce fields as they appear.
fn open_sealed(
    sealed: &Sealed<'_>,
    associated: &[u8],
    with: &DecryptionKey,
    label: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let key = with.unwrap(label, sealed.wrapped)?;
    if key.len() != 32 {
        return Err(Error::AuthenticationFailed {
            what: "wrapped key",
        });
    }
    let key: Zeroizing<[u8; 32]> = Zeroizing::new(key[..].try_into().unwrap_or([0; 32]));
    let eax = Eax::new(Aes256Enc::new((&*key).into()));
    let mut body = Zeroizing::new(sealed.ciphertext.to_vec());
    if !eax.open_detached(sealed.nonce, associated, &mut body, sealed.tag) {
        return Err(Error::AuthenticationFailed {
            what: "sealed payload",
        });
    }
    Ok(body)
}

fn put_text(out: &mut Vec<u8>, text: &str, max: usize, what: &'static str) -> Result<()> {
    if text.len() > max {
        return Err(Error::InvalidArgument(what));
    }
    put_u16_bytes(out, text.as_bytes())
}

fn take_text(r: &mut Reader<'_>, max: usize, what: &'static str) -> Result<String> {
    let bytes = take_u16_bytes(r, what)?;
    if bytes.len() > max {
        return Err(r.malformed("text field too long"));
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| r.malformed("text field is not UTF-8"))
}

fn armor(label: &str, bytes: &[u8]) -> String {
    // Encoding to a String cannot fail for a valid label and in-memory bytes.
    pem_rfc7468::encode_string(label, LineEnding::LF, bytes).unwrap_or_default()
}

fn dearmor(label: &'static str, text: &str) -> Result<Vec<u8>> {
    let (found, bytes) =
        pem_rfc7468::decode_vec(text.trim().as_bytes()).map_err(|_| Error::Malformed {
            format: "ASCII armor",
            detail: "not a well-formed armored block",
        })?;
    if found != label {
        return Err(Error::Malformed {
            format: "ASCII armor",
            detail: "armored block of another kind",
        });
    }
    Ok(bytes)
}

// ---------------------------------------------------------------------------------------
// Access requests

/// A signed access request, as it travels (bytes). Parsing checks structure and the
/// requester's signature; opening the sealed scope needs the provider's key.
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

// ---------------------------------------------------------------------------------------
// Grants

/// The key a grant carries.
#[derive(Debug, Clone)]
pub enum GrantedKey {
    /// A patient key: search and read everything of the patient in that generation.
    Patient(PatientId, PatientKey),
    /// One record's key.
    Record(PatientId, RecordKey),
}

/// A signed, sealed grant as it travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    bytes: Vec<u8>,
    id: [u8; 16],
    request_id: [u8; 16],
    provider: ProviderId,
    provider_key: Fingerprint,
    recipient: Fingerprint,
    kind: ScopeKind,
    generation: u32,
    issued_at: u64,
    expires_at: u64,
    sealed_at: usize,
    signed_len: usize,
}

/// A grant after the requester verified and opened it.
#[derive(Debug, Clone)]
pub struct OpenedGrant {
    /// The grant's id.
    pub id: [u8; 16],
    /// The request it answers.
    pub request_id: [u8; 16],
    /// The issuing provider.
    pub provider: ProviderId,
    /// When it was issued and until when it may be accepted (unix seconds).
    pub issued_at: u64,
    /// Expiry (unix seconds).
    pub expires_at: u64,
    /// The key.
    pub key: GrantedKey,
}

impl OpenedGrant {
    /// Checks that this grant answers `pending` (same request, provider and scope):
    /// [`Error::ScopeMismatch`] otherwise, so a grant cannot be replayed for another
    /// request, patient or record.
    pub fn check_answers(&self, pending: &PendingRequest) -> Result<()> {
        let same_scope = match (&self.key, &pending.scope) {
            (GrantedKey::Patient(p, _), Scope::Patient(q)) => p == q,
            (GrantedKey::Record(p, key), Scope::Record(q, id)) => p == q && key.record_id() == *id,
            _ => false,
        };
        if self.request_id != pending.id || self.provider != pending.provider || !same_scope {
            return Err(Error::ScopeMismatch);
        }
        Ok(())
    }
}

impl Grant {
    /// Issues a grant answering `request`: signed with `provider_identity.signing`, its
    /// key sealed to the requester's encryption key, valid from `now` for
    /// `lifetime_secs`. `key` must match the request's scope.
    pub fn issue(
        provider_identity: &Identity,
        request: &OpenedRequest,
        key: GrantedKey,
        now: u64,
        lifetime_secs: u64,
    ) -> Result<Grant> {
        let (patient, kind, provider, generation, key_bytes, record) = match &key {
            GrantedKey::Patient(p, k) => (
                p,
                ScopeKind::Patient,
                k.provider(),
                k.generation(),
                *k.expose_secret(),
                [0u8; 16],
            ),
            GrantedKey::Record(p, k) => (
                p,
                ScopeKind::Record,
                k.provider(),
                k.generation(),
                *k.expose_secret(),
                *k.record_id().as_bytes(),
            ),
        };
        let key_bytes = Zeroizing::new(key_bytes);
        let matches = match (&request.scope, &key) {
            (Scope::Patient(q), GrantedKey::Patient(..)) => q == patient,
            (Scope::Record(q, id), GrantedKey::Record(_, k)) => {
                q == patient && *id == k.record_id()
            }
            _ => false,
        };
        if !matches {
            return Err(Error::ScopeMismatch);
        }
        if lifetime_secs == 0 {
            return Err(Error::InvalidArgument(
                "a grant's lifetime must be positive",
            ));
        }
        let expires_at = now
            .checked_add(lifetime_secs)
            .ok_or(Error::InvalidArgument("lifetime too long"))?;
        let mut out = Vec::with_capacity(1024);
        put_preamble(&mut out, GRANT_MAGIC, GRANT_VERSION, ALG_RSA_PSS_OAEP_EAX);
        out.extend_from_slice(&rng::array::<16>()?);
        out.extend_from_slice(&request.id);
        provider.encode_into(&mut out);
        out.extend_from_slice(&provider_identity.signing.public_key().fingerprint());
        out.extend_from_slice(&request.requester.encryption.fingerprint());
        out.push(kind.code());
        out.extend_from_slice(&generation.to_be_bytes());
        out.extend_from_slice(&now.to_be_bytes());
        out.extend_from_slice(&expires_at.to_be_bytes());
        let mut payload = Zeroizing::new(Vec::with_capacity(1 + 255 + 16 + 32));
        payload.push(patient.as_bytes().len() as u8);
        payload.extend_from_slice(patient.as_bytes());
        payload.extend_from_slice(&record);
        payload.extend_from_slice(&key_bytes[..]);
        seal_to(
            &mut out,
            &request.requester.encryption,
            GRANT_OAEP_LABEL,
            &payload,
        )?;
        let signature = provider_identity.signing.sign(&out)?;
        put_u16_bytes(&mut out, &signature)?;
        Grant::from_bytes(&out)
    }

    /// Parses a grant's structure (the signature is checked by [`Grant::open`], against
    /// a key the caller trusts).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "grant");
        r.preamble(GRANT_MAGIC, GRANT_VERSION, &[ALG_RSA_PSS_OAEP_EAX])?;
        let id = r.array("grant id")?;
        let request_id = r.array("request id")?;
        let provider = ProviderId::decode(&mut r)?;
        let provider_key = r.array("provider key fingerprint")?;
        let recipient = r.array("recipient key fingerprint")?;
        let kind = ScopeKind::from_code(r.u8("scope kind")?, &r)?;
        let generation = r.u32("key generation")?;
        let issued_at = r.u64("issue time")?;
        let expires_at = r.u64("expiry time")?;
        if expires_at <= issued_at {
            return Err(r.malformed("expires before it is issued"));
        }
        let sealed_at = bytes.len() - r.remaining();
        read_sealed(&mut r)?;
        let signed_len = bytes.len() - r.remaining();
        take_u16_bytes(&mut r, "signature")?;
        r.finish()?;
        Ok(Grant {
            bytes: bytes.to_vec(),
            id,
            request_id,
            provider,
            provider_key,
            recipient,
            kind,
            generation,
            issued_at,
            expires_at,
            sealed_at,
            signed_len,
        })
    }

    /// The wire form.
    pub fn to_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The armored form: `-----BEGIN MEDVAULT GRANT-----`, base64, footer.
    pub fn to_armor(&self) -> String {
        armor(GRANT_ARMOR_LABEL, &self.bytes)
    }

    /// Parses the armored form.
    pub fn from_armor(text: &str) -> Result<Self> {
        Self::from_bytes(&dearmor(GRANT_ARMOR_LABEL, text)?)
    }

    /// The grant's id.
    pub fn id(&self) -> [u8; 16] {
        self.id
    }
    /// The request it answers.
    pub fn request_id(&self) -> [u8; 16] {
        self.request_id
    }
    /// The issuing provider (as the grant claims; [`Grant::open`] verifies it).
    pub fn provider(&self) -> &ProviderId {
        &self.provider
    }
    /// Fingerprint of the recipient's encryption key.
    pub fn recipient(&self) -> Fingerprint {
        self.recipient
    }
    /// Patient or record.
    pub fn scope_kind(&self) -> ScopeKind {
        self.kind
    }
    /// Key generation of the granted key.
    pub fn generation(&self) -> u32 {
        self.generation
    }
    /// Expiry (unix seconds).
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// Checks the signature against `issuer` (the provider's verifying key).
    pub fn verify(&self, issuer: &VerifyingKey) -> Result<()> {
        if issuer.fingerprint() != self.provider_key {
            return Err(Error::SignatureInvalid);
        }
        let signature = &self.bytes[self.signed_len + 2..];
        issuer.verify(&self.bytes[..self.signed_len], signature)
    }

    /// Verifies the signature against the provider key the requester pinned, checks
    /// it is addressed to `recipient` and valid at `now`, then unwraps the key.
    pub fn open(
        &self,
        issuer: &VerifyingKey,
        recipient: &Identity,
        now: u64,
    ) -> Result<OpenedGrant> {
        self.verify(issuer)?;
        if recipient.decryption.public_key().fingerprint() != self.recipient {
            return Err(Error::WrongRecipient);
        }
        if now > self.expires_at {
            return Err(Error::Expired {
                expired_at: self.expires_at,
            });
        }
        if self.issued_at > now.saturating_add(CLOCK_SKEW_SECS) {
            return Err(Error::NotYetValid {
                valid_from: self.issued_at,
            });
        }
        let mut r = Reader::new(&self.bytes[self.sealed_at..self.signed_len], "grant");
        let sealed = read_sealed(&mut r)?;
        let associated_len = self.sealed_at + 2 + sealed.wrapped.len() + 16;
        let payload = open_sealed(
            &sealed,
            &self.bytes[..associated_len],
            &recipient.decryption,
            GRANT_OAEP_LABEL,
        )?;
        let mut p = Reader::new(&payload, "grant payload");
        let len = usize::from(p.u8("patient id length")?);
        let patient = PatientId::new(p.take(len, "patient id")?)
            .map_err(|_| p.malformed("invalid patient id"))?;
        let record = RecordId::from_bytes(p.array("record id")?);
        let key = Zeroizing::new(p.array::<32>("key")?);
        p.finish()?;
        let key = match self.kind {
            ScopeKind::Patient => GrantedKey::Patient(
                patient,
                PatientKey::from_bytes(self.provider.clone(), self.generation, *key),
            ),
            ScopeKind::Record => GrantedKey::Record(
                patient,
                RecordKey::from_bytes(self.provider.clone(), self.generation, record, *key),
            ),
        };
        Ok(OpenedGrant {
            id: self.id,
            request_id: self.request_id,
            provider: self.provider.clone(),
            issued_at: self.issued_at,
            expires_at: self.expires_at,
            key,
        })
    }
}
