//! Grants: a key sealed to the requester, signed by the provider, valid for a time.

use zeroize::Zeroizing;

use crate::crypto::rng;
use crate::error::{Error, Result};
use crate::keys::identity::{Fingerprint, Identity, VerifyingKey};
use crate::keys::{PatientId, PatientKey, ProviderId, RecordId, RecordKey};
use crate::wire::{Reader, put_preamble};

use super::sealing::*;
use super::*;

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
