//! The cloud's operations as every party reaches them, in one trait: in process
//! ([`Cloud`]) or over the network ([`RemoteCloud`](crate::RemoteCloud), feature
//! `remote`). Code written against [`CloudService`] runs unchanged against either.
//!
//! Everything that crosses it is in the library's own formats (batches, records,
//! queries, responses, requests, grants, re-keying statements), so the checks are the
//! same wherever the cloud runs: the cloud checks signatures when data arrives, and the
//! requester checks the cloud's answers.

use std::io::{Read, Write};

use crate::cloud::Cloud;
use crate::error::Result;
use crate::grant::{AccessRequest, AdminView, Grant};
use crate::index::manifest::Manifest;
use crate::index::query::SearchResponse;
use crate::keys::identity::{Fingerprint, PublicIdentity};
use crate::keys::{ProviderId, RecordId};

/// The cloud's operations. Every call either completes or changes nothing; a remote
/// cloud adds [`Error::Remote`](crate::Error::Remote) for a refusal by the server
/// (authentication, authorization) or a failed connection.
pub trait CloudService: Send + Sync {
    /// Registers a provider's public keys (first come; see [`Cloud::register_provider`]).
    fn register_provider(&self, provider: ProviderId, keys: PublicIdentity) -> Result<()>;
    /// A provider's registered public keys.
    fn provider_keys(&self, provider: &ProviderId) -> Result<Option<PublicIdentity>>;
    /// Replaces a provider's keys with a statement signed by its current key.
    fn rekey_provider(&self, rekey: &[u8]) -> Result<()>;
    /// Ingests a signed index batch (`MVIB`).
    fn ingest_bytes(&self, batch: &[u8]) -> Result<()>;
    /// Stores a sealed record read from `sealed` (its provider and id come from its
    /// header); returns them and its size.
    fn put_record_from(&self, sealed: &mut dyn Read) -> Result<(ProviderId, RecordId, u64)>;
    /// Stores a batch of one provider's sealed records in one commit, all or none (see
    /// [`Cloud::put_records`]); returns each one's provider, id and size, in order.
    fn put_records(&self, sealed: &[&[u8]]) -> Result<Vec<(ProviderId, RecordId, u64)>>;
    /// Copies a stored sealed record to `out`; its size, or `None` if not stored.
    fn record_to(
        &self,
        provider: &ProviderId,
        record: RecordId,
        out: &mut dyn Write,
    ) -> Result<Option<u64>>;
    /// The public metadata tokens are built from.
    fn manifest(&self) -> Result<Manifest>;
    /// Answers a query (`MVQY`).
    fn search_bytes(&self, query: &[u8]) -> Result<SearchResponse>;
    /// Puts a signed access request (`MVAQ`) in the inbox; its id.
    fn submit_request(&self, request: &[u8]) -> Result<[u8; 16]>;
    /// The admin's decision on a pending request.
    fn decide_request(&self, id: [u8; 16], approve: bool) -> Result<()>;
    /// Approved requests waiting for `provider`'s grant.
    fn approved_requests(&self, provider: &ProviderId) -> Result<Vec<AccessRequest>>;
    /// Posts a signed, sealed grant (`MVGT`) to its recipient's mailbox.
    fn post_grant(&self, grant: &[u8]) -> Result<()>;
    /// The grants waiting for the requester whose encryption key has `fingerprint`.
    fn fetch_grants(&self, fingerprint: &Fingerprint) -> Result<Vec<Grant>>;
    /// Everything the cloud admin sees.
    fn admin_view(&self) -> Result<AdminView>;
    /// Merges the index's segments.
    fn merge(&self) -> Result<()>;
}

impl CloudService for Cloud {
    fn register_provider(&self, provider: ProviderId, keys: PublicIdentity) -> Result<()> {
        Cloud::register_provider(self, provider, keys)
    }
    fn provider_keys(&self, provider: &ProviderId) -> Result<Option<PublicIdentity>> {
        Ok(Cloud::provider_keys(self, provider))
    }
    fn rekey_provider(&self, rekey: &[u8]) -> Result<()> {
        Cloud::rekey_provider(self, rekey)
    }
    fn ingest_bytes(&self, batch: &[u8]) -> Result<()> {
        Cloud::ingest_bytes(self, batch)
    }
    fn put_record_from(&self, sealed: &mut dyn Read) -> Result<(ProviderId, RecordId, u64)> {
        Cloud::put_record_from(self, sealed)
    }
    fn put_records(&self, sealed: &[&[u8]]) -> Result<Vec<(ProviderId, RecordId, u64)>> {
        let stored = Cloud::put_records(self, sealed)?;
        Ok(stored
            .into_iter()
            .zip(sealed)
            .map(|((provider, record), bytes)| (provider, record, bytes.len() as u64))
            .collect())
    }

    fn record_to(
        &self,
        provider: &ProviderId,
        record: RecordId,
        out: &mut dyn Write,
    ) -> Result<Option<u64>> {
        match Cloud::record_reader(self, provider, record)? {
            None => Ok(None),
            Some(mut reader) => Ok(Some(std::io::copy(&mut reader, out)?)),
        }
    }
    fn manifest(&self) -> Result<Manifest> {
        Ok(Cloud::manifest(self))
    }
    fn search_bytes(&self, query: &[u8]) -> Result<SearchResponse> {
        Cloud::search_bytes(self, query)
    }
    fn submit_request(&self, request: &[u8]) -> Result<[u8; 16]> {
        Cloud::submit_request(self, request)
    }
    fn decide_request(&self, id: [u8; 16], approve: bool) -> Result<()> {
        Cloud::decide_request(self, id, approve)
    }
    fn approved_requests(&self, provider: &ProviderId) -> Result<Vec<AccessRequest>> {
        Ok(Cloud::approved_requests(self, provider))
    }
    fn post_grant(&self, grant: &[u8]) -> Result<()> {
        Cloud::post_grant(self, grant)
    }
    fn fetch_grants(&self, fingerprint: &Fingerprint) -> Result<Vec<Grant>> {
        Ok(Cloud::fetch_grants(self, fingerprint))
    }
    fn admin_view(&self) -> Result<AdminView> {
        Ok(Cloud::admin_view(self))
    }
    fn merge(&self) -> Result<()> {
        Cloud::merge(self)
    }
}
