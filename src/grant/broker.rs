//! The cloud as the paper's broker — without ever holding a key.
//!
//! Requesters submit signed [`AccessRequest`]s to the cloud's inbox; its admin sees the
//! pending requests (requester, provider, scope kind, reason, time — never the patient,
//! which is sealed to the provider) and the owners' file details, and approves or denies;
//! providers fetch approved requests and post [`Grant`]s; requesters fetch their grants
//! from the mailbox by their key's fingerprint. The broker checks every signature it can
//! (the requester's on requests, the registered provider key on grants) so it never
//! relays forgeries, but it cannot open anything.
//!
//! Providers register their public keys with the broker as a directory. A requester must
//! still pin a provider's keys out of band (compare fingerprints): a malicious directory
//! could otherwise substitute its own.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::grant::{AccessRequest, Grant, ScopeKind};
use crate::keys::ProviderId;
use crate::keys::identity::{Fingerprint, PublicIdentity};
use crate::store::RecordInfo;
use crate::store::journal::BrokerEvent;

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestStatus {
    /// Waiting for the admin.
    Pending,
    /// Approved by the admin; waiting for the provider's grant.
    Approved,
    /// Denied by the admin.
    Denied,
    /// The provider posted a grant.
    Granted,
}

/// One request as the admin sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSummary {
    /// The request's id.
    pub id: [u8; 16],
    /// The requester's name, as given.
    pub requester_name: String,
    /// Fingerprint of the requester's signing key.
    pub requester: Fingerprint,
    /// The provider asked.
    pub provider: ProviderId,
    /// Patient or one record (which one is sealed).
    pub scope: ScopeKind,
    /// The reason given.
    pub reason: String,
    /// When it was made (unix seconds).
    pub created_at: u64,
    /// Where it stands.
    pub status: RequestStatus,
}

/// Everything the cloud admin sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminView {
    /// All requests, oldest first.
    pub requests: Vec<RequestSummary>,
    /// All stored records.
    pub files: Vec<RecordInfo>,
}

#[derive(Default)]
pub(crate) struct Broker {
    directory: BTreeMap<ProviderId, PublicIdentity>,
    requests: Vec<(AccessRequest, RequestStatus)>,
    /// Grants by recipient encryption-key fingerprint, in arrival order.
    mailbox: BTreeMap<Fingerprint, Vec<Grant>>,
}

impl Broker {
    /// A broker whose key directory starts as `directory` (what the store kept).
    pub(crate) fn with_directory(directory: BTreeMap<ProviderId, PublicIdentity>) -> Self {
        Broker {
            directory,
            ..Broker::default()
        }
    }

    /// Checks a re-keying statement against the directory: the provider must be
    /// registered ([`Error::NotFound`]) and the statement signed by its registered
    /// signing key ([`Error::SignatureInvalid`]). Changes nothing.
    pub(crate) fn check_rekey(&self, rekey: &super::Rekey) -> Result<()> {
        let registered = self
            .directory
            .get(rekey.provider())
            .ok_or(Error::NotFound("the provider's keys in the directory"))?;
        rekey.verify(&registered.verifying)
    }

    /// First-come: whether `keys` would be new for `provider` (`false`: the same keys
    /// are registered already), or [`Error::AlreadyRegistered`] for other keys.
    pub(crate) fn check_register(
        &self,
        provider: &ProviderId,
        keys: &PublicIdentity,
    ) -> Result<bool> {
        match self.directory.get(provider) {
            Some(registered) if registered != keys => Err(Error::AlreadyRegistered),
            Some(_) => Ok(false),
            None => Ok(true),
        }
    }

    /// Sets `provider`'s keys, after [`Broker::check_register`] or
    /// [`Broker::check_rekey`] and once the store kept them.
    pub(crate) fn set_keys(&mut self, provider: ProviderId, keys: PublicIdentity) {
        self.directory.insert(provider, keys);
    }

    pub(crate) fn provider_keys(&self, provider: &ProviderId) -> Option<&PublicIdentity> {
        self.directory.get(provider)
    }

    /// Whether `request` may enter the inbox (new id, known provider). Changes nothing.
    pub(crate) fn check_submit(&self, request: &AccessRequest) -> Result<()> {
        if self.requests.iter().any(|(r, _)| r.id() == request.id()) {
            return Err(Error::InvalidArgument("this request was already submitted"));
        }
        if !self.directory.contains_key(request.provider()) {
            return Err(Error::NotFound("the provider named in the request"));
        }
        Ok(())
    }

    /// Puts a checked request in the inbox.
    pub(crate) fn apply_submit(&mut self, request: AccessRequest) {
        self.requests.push((request, RequestStatus::Pending));
    }

    pub(crate) fn summaries(&self) -> Vec<RequestSummary> {
        self.requests
            .iter()
            .map(|(r, status)| RequestSummary {
                id: r.id(),
                requester_name: r.requester_name().to_owned(),
                requester: r.requester().verifying.fingerprint(),
                provider: r.provider().clone(),
                scope: r.scope_kind(),
                reason: r.reason().to_owned(),
                created_at: r.created_at(),
                status: *status,
            })
            .collect()
    }

    /// Whether the request `id` is pending a decision. Changes nothing.
    pub(crate) fn check_decide(&self, id: [u8; 16]) -> Result<()> {
        let (_, status) = self
            .requests
            .iter()
            .find(|(r, _)| r.id() == id)
            .ok_or(Error::NotFound("a request with this id"))?;
        if *status != RequestStatus::Pending {
            return Err(Error::InvalidArgument("the request was already decided"));
        }
        Ok(())
    }

    /// Records a checked decision.
    pub(crate) fn apply_decide(&mut self, id: [u8; 16], approve: bool) {
        if let Some(entry) = self.requests.iter_mut().find(|(r, _)| r.id() == id) {
            entry.1 = if approve {
                RequestStatus::Approved
            } else {
                RequestStatus::Denied
            };
        }
    }

    pub(crate) fn approved_for(&self, provider: &ProviderId) -> Vec<AccessRequest> {
        self.requests
            .iter()
            .filter(|(r, s)| *s == RequestStatus::Approved && r.provider() == provider)
            .map(|(r, _)| r.clone())
            .collect()
    }

    /// Whether `grant` may enter the mailbox: signed by its provider's registered key,
    /// answering an approved request of its recipient at that provider. Changes nothing.
    pub(crate) fn check_grant(&self, grant: &Grant) -> Result<()> {
        let keys = self
            .directory
            .get(grant.provider())
            .ok_or(Error::NotFound("the provider that signed the grant"))?;
        grant.verify(&keys.verifying)?;
        let (request, status) = self
            .requests
            .iter()
            .find(|(r, _)| r.id() == grant.request_id())
            .ok_or(Error::NotFound("the request the grant answers"))?;
        if *status != RequestStatus::Approved {
            return Err(Error::InvalidArgument(
                "the request is not approved (or already granted)",
            ));
        }
        if request.provider() != grant.provider()
            || request.requester().encryption.fingerprint() != grant.recipient()
        {
            return Err(Error::ScopeMismatch);
        }
        Ok(())
    }

    /// Puts a checked grant in its recipient's mailbox and marks its request granted.
    pub(crate) fn apply_grant(&mut self, grant: Grant) {
        if let Some(entry) = self
            .requests
            .iter_mut()
            .find(|(r, _)| r.id() == grant.request_id())
        {
            entry.1 = RequestStatus::Granted;
        }
        self.mailbox
            .entry(grant.recipient())
            .or_default()
            .push(grant);
    }

    /// Replays an event the store kept (checked when it was acknowledged).
    pub(crate) fn replay(&mut self, event: &BrokerEvent) {
        match event {
            BrokerEvent::Request(bytes) => {
                if let Ok(request) = AccessRequest::from_bytes(bytes) {
                    self.apply_submit(request);
                }
            }
            BrokerEvent::Decision { id, approve } => self.apply_decide(*id, *approve),
            BrokerEvent::Grant(bytes) => {
                if let Ok(grant) = Grant::from_bytes(bytes) {
                    self.apply_grant(grant);
                }
            }
        }
    }

    pub(crate) fn grants_for(&self, recipient: &Fingerprint) -> Vec<Grant> {
        self.mailbox.get(recipient).cloned().unwrap_or_default()
    }
}
