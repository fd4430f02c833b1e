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

mod broker;
mod granted;
mod rekey;
mod request;
mod sealing;

pub(crate) use broker::Broker;
pub use broker::{AdminView, RequestStatus, RequestSummary};
pub use granted::{Grant, GrantedKey, OpenedGrant};
pub use rekey::Rekey;
pub use request::{AccessRequest, OpenedRequest, PendingRequest};

use zeroize::Zeroizing;

use crate::error::Result;
use crate::keys::{PatientId, RecordId};
use crate::wire::Reader;

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
