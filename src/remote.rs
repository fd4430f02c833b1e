//! [`RemoteCloud`]: the cloud's operations over HTTPS, against `medvault-server`
//! (`server/`, API in `docs/server-api.md`). Blocking (ureq), TLS by rustls with the
//! server's CA given explicitly: no system trust store is consulted.
//!
//! A `RemoteCloud` logs in once with an account of the paper's kind (provider,
//! requester or admin) and sends its session token with every call. The server's own
//! checks come on top of the library's: a login never replaces a signature, and the
//! requester still verifies every answer.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::grant::{AccessRequest, AdminView, Grant, RequestStatus, RequestSummary, ScopeKind};
use crate::index::manifest::Manifest;
use crate::index::query::SearchResponse;
use crate::keys::identity::{EncryptionKey, Fingerprint, PublicIdentity, VerifyingKey};
use crate::keys::{ProviderId, RecordId};
use crate::service::CloudService;
use crate::store::RecordInfo;

/// What an account may do on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Writes under its own provider id (the account name is the provider id).
    Provider,
    /// Searches, requests access and reads its own grant mailbox.
    Requester,
    /// Sees the admin view, decides requests, merges.
    Admin,
}

/// A new account, as `POST /v1/accounts` takes it.
#[derive(Serialize, Deserialize)]
pub struct NewAccount {
    /// The account name (a provider's is its provider id).
    pub account: String,
    /// The password (at least 12 bytes).
    pub password: String,
    /// Provider or requester (admins are made by the server's operator).
    pub role: Role,
    /// A requester's encryption-key fingerprint (its grant mailbox), 64 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

impl std::fmt::Debug for NewAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "NewAccount({}, {:?}, <password>)",
            self.account, self.role
        )
    }
}

/// `POST /v1/login`.
#[derive(Serialize, Deserialize)]
pub struct Login {
    /// The account.
    pub account: String,
    /// Its password.
    pub password: String,
}

/// The answer to a login.
#[derive(Serialize, Deserialize)]
pub struct Session {
    /// The bearer token (random, 32 bytes in hex).
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Session(<token>, expires in {} s)", self.expires_in)
    }
}

/// A provider's public keys, as the key directory routes carry them.
#[derive(Debug, Serialize, Deserialize)]
pub struct ProviderKeys {
    /// The signing key's SPKI, PEM.
    pub verifying: String,
    /// The encryption key's SPKI, PEM.
    pub encryption: String,
}

impl ProviderKeys {
    /// The PEM form of `keys`.
    pub fn of(keys: &PublicIdentity) -> Self {
        ProviderKeys {
            verifying: keys.verifying.to_spki_pem(),
            encryption: keys.encryption.to_spki_pem(),
        }
    }

    /// The keys.
    pub fn keys(&self) -> Result<PublicIdentity> {
        Ok(PublicIdentity {
            verifying: VerifyingKey::from_spki_pem(&self.verifying)?,
            encryption: EncryptionKey::from_spki_pem(&self.encryption)?,
        })
    }
}

/// A server error body.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A stable code ("unauthorized", "forbidden", "not_authentic", …).
    pub error: String,
    /// What went wrong, for people.
    pub message: String,
    /// For `epoch_out_of_order`: the epoch the cloud expects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<u32>,
    /// For `epoch_out_of_order`: the epoch the batch has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub found: Option<u32>,
}

/// The answer to `POST /v1/records`.
#[derive(Debug, Serialize, Deserialize)]
pub struct StoredRecord {
    /// The provider, from the record's header.
    pub provider: String,
    /// The record id, 32 hex digits.
    pub record: String,
    /// Bytes stored.
    pub size: u64,
}

/// The answer to `POST /v1/records/batch`: each record stored, in the batch's order.
#[derive(Debug, Serialize, Deserialize)]
pub struct StoredRecords {
    /// Every record of the batch.
    pub records: Vec<StoredRecord>,
}

/// The answer to `POST /v1/requests`.
#[derive(Debug, Serialize, Deserialize)]
pub struct RequestId {
    /// The request id, 32 hex digits.
    pub id: String,
}

/// `POST /v1/requests/{id}/decision`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Decision {
    /// Approve or deny.
    pub approve: bool,
}

/// The admin view as JSON.
#[derive(Debug, Serialize, Deserialize)]
pub struct AdminViewBody {
    /// Every request, oldest first.
    pub requests: Vec<RequestSummaryBody>,
    /// Every stored record.
    pub files: Vec<FileBody>,
}

/// One request in the admin view.
#[derive(Debug, Serialize, Deserialize)]
pub struct RequestSummaryBody {
    /// 32 hex digits.
    pub id: String,
    /// The requester's name, as given.
    pub requester_name: String,
    /// The requester's signing-key fingerprint, 64 hex digits.
    pub requester: String,
    /// The provider asked.
    pub provider: String,
    /// "patient" or "record".
    pub scope: String,
    /// The reason given.
    pub reason: String,
    /// Unix seconds.
    pub created_at: u64,
    /// "pending", "approved", "denied" or "granted".
    pub status: String,
}

/// One stored record in the admin view.
#[derive(Debug, Serialize, Deserialize)]
pub struct FileBody {
    /// The provider.
    pub provider: String,
    /// 32 hex digits.
    pub record: String,
    /// Bytes.
    pub size: u64,
    /// Unix seconds.
    pub uploaded_at: u64,
}

impl AdminViewBody {
    /// The JSON form of `view`.
    pub fn of(view: &AdminView) -> Self {
        AdminViewBody {
            requests: view
                .requests
                .iter()
                .map(|r| RequestSummaryBody {
                    id: hex(&r.id),
                    requester_name: r.requester_name.clone(),
                    requester: hex(&r.requester),
                    provider: r.provider.to_string(),
                    scope: match r.scope {
                        ScopeKind::Patient => "patient",
                        ScopeKind::Record => "record",
                    }
                    .to_owned(),
                    reason: r.reason.clone(),
                    created_at: r.created_at,
                    status: match r.status {
                        RequestStatus::Pending => "pending",
                        RequestStatus::Approved => "approved",
                        RequestStatus::Denied => "denied",
                        RequestStatus::Granted => "granted",
                    }
                    .to_owned(),
                })
                .collect(),
            files: view
                .files
                .iter()
                .map(|f| FileBody {
                    provider: f.provider.to_string(),
                    record: hex(f.record.as_bytes()),
                    size: f.size,
                    uploaded_at: f.uploaded_at,
                })
                .collect(),
        }
    }

    fn view(self) -> Result<AdminView> {
        let bad = |what| Error::Malformed {
            format: "admin view",
            detail: what,
        };
        let requests = self
            .requests
            .into_iter()
            .map(|r| {
                Ok(RequestSummary {
                    id: unhex(&r.id).ok_or_else(|| bad("request id"))?,
                    requester_name: r.requester_name,
                    requester: unhex(&r.requester).ok_or_else(|| bad("fingerprint"))?,
                    provider: ProviderId::new(&r.provider)?,
                    scope: match r.scope.as_str() {
                        "patient" => ScopeKind::Patient,
                        "record" => ScopeKind::Record,
                        _ => return Err(bad("scope")),
                    },
                    reason: r.reason,
                    created_at: r.created_at,
                    status: match r.status.as_str() {
                        "pending" => RequestStatus::Pending,
                        "approved" => RequestStatus::Approved,
                        "denied" => RequestStatus::Denied,
                        "granted" => RequestStatus::Granted,
                        _ => return Err(bad("status")),
                    },
                })
            })
            .collect::<Result<_>>()?;
        let files = self
            .files
            .into_iter()
            .map(|f| {
                Ok(RecordInfo {
                    provider: ProviderId::new(&f.provider)?,
                    record: RecordId::from_bytes(unhex(&f.record).ok_or_else(|| bad("record"))?),
                    size: f.size,
                    uploaded_at: f.uploaded_at,
                })
            })
            .collect::<Result<_>>()?;
        Ok(AdminView { requests, files })
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Exactly `N` bytes from hex, or `None`.
pub fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Objects of a list body: each `[len]₃₂ ‖ bytes`.
pub fn encode_list<'a>(items: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for item in items {
        out.extend_from_slice(&(item.len() as u32).to_be_bytes());
        out.extend_from_slice(item);
    }
    out
}

fn decode_list(mut bytes: &[u8]) -> Result<Vec<&[u8]>> {
    let truncated = || Error::Truncated {
        format: "list body",
        detail: "item",
    };
    let mut items = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes.split_first_chunk::<4>().ok_or_else(truncated)?;
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() < len {
            return Err(truncated());
        }
        items.push(&rest[..len]);
        bytes = &rest[len..];
    }
    Ok(items)
}

/// Most bytes of a non-record answer read into memory (search responses included).
const MAX_ANSWER: u64 = 1 << 30;

/// A cloud behind `medvault-server`, logged in as one account.
pub struct RemoteCloud {
    agent: ureq::Agent,
    base: String,
    token: Zeroizing<String>,
}

impl std::fmt::Debug for RemoteCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RemoteCloud({}, <session>)", self.base)
    }
}

fn agent(ca_pem: &[u8]) -> Result<ureq::Agent> {
    let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(ca_pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(cert)) => Some(cert),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(Error::InvalidArgument("no certificate in the CA PEM"));
    }
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)))
        .build();
    Ok(ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(10)))
        .https_only(true)
        .build()
        .new_agent())
}

fn transport(e: ureq::Error) -> Error {
    Error::Remote {
        status: 0,
        code: "transport".to_owned(),
        message: e.to_string(),
    }
}

/// The typed error of a refused call.
fn refused(status: u16, body: &[u8]) -> Error {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody {
            error,
            expected: Some(expected),
            found: Some(found),
            ..
        }) if error == "epoch_out_of_order" => Error::EpochOutOfOrder { expected, found },
        Ok(body) => Error::Remote {
            status,
            code: body.error,
            message: body.message,
        },
        Err(_) => Error::Remote {
            status,
            code: "http".to_owned(),
            message: format!("HTTP {status} without an error body"),
        },
    }
}

fn read_all(response: ureq::http::Response<ureq::Body>) -> Result<(u16, Vec<u8>)> {
    let status = response.status().as_u16();
    let mut body = Vec::new();
    response
        .into_body()
        .into_reader()
        .take(MAX_ANSWER)
        .read_to_end(&mut body)?;
    Ok((status, body))
}

fn ok_body(response: ureq::http::Response<ureq::Body>) -> Result<Vec<u8>> {
    let (status, body) = read_all(response)?;
    if (200..300).contains(&status) {
        Ok(body)
    } else {
        Err(refused(status, &body))
    }
}

impl RemoteCloud {
    /// Creates an account on the server at `url` (`https://host:port`), trusting only
    /// the CA certificates in `ca_pem`. Providers and requesters register themselves,
    /// as in the paper; a requester gives its encryption-key fingerprint (its mailbox).
    pub fn register_account(url: &str, ca_pem: &[u8], account: &NewAccount) -> Result<()> {
        let agent = agent(ca_pem)?;
        let body = serde_json::to_vec(account).map_err(|_| Error::InvalidArgument("account"))?;
        let response = agent
            .post(format!("{}/v1/accounts", url.trim_end_matches('/')))
            .header("content-type", "application/json")
            .send(&body[..])
            .map_err(transport)?;
        ok_body(response).map(|_| ())
    }

    /// Logs in to the server at `url` as `account`.
    pub fn connect(url: &str, ca_pem: &[u8], account: &str, password: &str) -> Result<Self> {
        let agent = agent(ca_pem)?;
        let base = url.trim_end_matches('/').to_owned();
        let login = Zeroizing::new(
            serde_json::to_vec(&Login {
                account: account.to_owned(),
                password: password.to_owned(),
            })
            .map_err(|_| Error::InvalidArgument("login"))?,
        );
        let response = agent
            .post(format!("{base}/v1/login"))
            .header("content-type", "application/json")
            .send(&login[..])
            .map_err(transport)?;
        let body = Zeroizing::new(ok_body(response)?);
        let session: Session = serde_json::from_slice(&body).map_err(|_| Error::Malformed {
            format: "login answer",
            detail: "not a session",
        })?;
        Ok(RemoteCloud {
            agent,
            base,
            token: Zeroizing::new(session.token),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.token.as_str())
    }

    fn get(&self, path: &str) -> Result<ureq::http::Response<ureq::Body>> {
        self.agent
            .get(self.url(path))
            .header("authorization", self.bearer())
            .call()
            .map_err(transport)
    }

    fn post(&self, path: &str, kind: &str, body: &[u8]) -> Result<Vec<u8>> {
        let response = self
            .agent
            .post(self.url(path))
            .header("authorization", self.bearer())
            .header("content-type", kind)
            .send(body)
            .map_err(transport)?;
        ok_body(response)
    }

    fn post_binary(&self, path: &str, body: &[u8]) -> Result<Vec<u8>> {
        self.post(path, "application/octet-stream", body)
    }

    fn json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
        serde_json::to_vec(value).map_err(|_| Error::InvalidArgument("JSON body"))
    }

    fn parse_json<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &'static str) -> Result<T> {
        serde_json::from_slice(bytes).map_err(|_| Error::Malformed {
            format: what,
            detail: "unexpected JSON",
        })
    }

    /// Ends the session (the token stops working at once).
    pub fn logout(self) -> Result<()> {
        self.post("/v1/logout", "application/json", b"{}")
            .map(|_| ())
    }
}

impl CloudService for RemoteCloud {
    fn register_provider(&self, provider: ProviderId, keys: PublicIdentity) -> Result<()> {
        let body = Self::json(&ProviderKeys::of(&keys))?;
        let path = format!("/v1/providers/{}/keys", provider.as_str());
        self.post(&path, "application/json", &body).map(|_| ())
    }

    fn provider_keys(&self, provider: &ProviderId) -> Result<Option<PublicIdentity>> {
        let response = self.get(&format!("/v1/providers/{}/keys", provider.as_str()))?;
        if response.status().as_u16() == 404 {
            return Ok(None);
        }
        let body = ok_body(response)?;
        Self::parse_json::<ProviderKeys>(&body, "provider keys")?
            .keys()
            .map(Some)
    }

    fn rekey_provider(&self, rekey: &[u8]) -> Result<()> {
        self.post_binary("/v1/rekey", rekey).map(|_| ())
    }

    fn ingest_bytes(&self, batch: &[u8]) -> Result<()> {
        self.post_binary("/v1/batches", batch).map(|_| ())
    }

    fn put_record_from(&self, sealed: &mut dyn Read) -> Result<(ProviderId, RecordId, u64)> {
        let response = self
            .agent
            .post(self.url("/v1/records"))
            .header("authorization", self.bearer())
            .header("content-type", "application/octet-stream")
            .send(ureq::SendBody::from_reader(sealed))
            .map_err(transport)?;
        let body = ok_body(response)?;
        let stored: StoredRecord = Self::parse_json(&body, "record upload answer")?;
        let record = unhex(&stored.record).ok_or(Error::Malformed {
            format: "record upload answer",
            detail: "record id",
        })?;
        Ok((
            ProviderId::new(&stored.provider)?,
            RecordId::from_bytes(record),
            stored.size,
        ))
    }

    fn put_records(&self, sealed: &[&[u8]]) -> Result<Vec<(ProviderId, RecordId, u64)>> {
        let body = crate::record_batch_bytes(sealed)?;
        let response = self
            .agent
            .post(self.url("/v1/records/batch"))
            .header("authorization", self.bearer())
            .header("content-type", "application/octet-stream")
            .send(&body[..])
            .map_err(transport)?;
        let body = ok_body(response)?;
        let stored: StoredRecords = Self::parse_json(&body, "record batch answer")?;
        if stored.records.len() != sealed.len() {
            return Err(Error::Malformed {
                format: "record batch answer",
                detail: "not one entry per record",
            });
        }
        stored
            .records
            .iter()
            .map(|entry| {
                let record = unhex(&entry.record).ok_or(Error::Malformed {
                    format: "record batch answer",
                    detail: "record id",
                })?;
                Ok((
                    ProviderId::new(&entry.provider)?,
                    RecordId::from_bytes(record),
                    entry.size,
                ))
            })
            .collect()
    }

    fn record_to(
        &self,
        provider: &ProviderId,
        record: RecordId,
        out: &mut dyn Write,
    ) -> Result<Option<u64>> {
        let path = format!(
            "/v1/records/{}/{}",
            provider.as_str(),
            hex(record.as_bytes())
        );
        let response = self.get(&path)?;
        match response.status().as_u16() {
            404 => Ok(None),
            200 => {
                let mut reader = response.into_body().into_reader();
                Ok(Some(std::io::copy(&mut reader, out)?))
            }
            _ => Err({
                let (status, body) = read_all(response)?;
                refused(status, &body)
            }),
        }
    }

    fn manifest(&self) -> Result<Manifest> {
        Manifest::from_bytes(&ok_body(self.get("/v1/manifest")?)?)
    }

    fn search_bytes(&self, query: &[u8]) -> Result<SearchResponse> {
        SearchResponse::from_bytes(&self.post_binary("/v1/search", query)?)
    }

    fn submit_request(&self, request: &[u8]) -> Result<[u8; 16]> {
        let body = self.post_binary("/v1/requests", request)?;
        let id: RequestId = Self::parse_json(&body, "request answer")?;
        unhex(&id.id).ok_or(Error::Malformed {
            format: "request answer",
            detail: "request id",
        })
    }

    fn decide_request(&self, id: [u8; 16], approve: bool) -> Result<()> {
        let body = Self::json(&Decision { approve })?;
        let path = format!("/v1/requests/{}/decision", hex(&id));
        self.post(&path, "application/json", &body).map(|_| ())
    }

    fn approved_requests(&self, provider: &ProviderId) -> Result<Vec<AccessRequest>> {
        let body = ok_body(self.get(&format!("/v1/providers/{}/approved", provider.as_str()))?)?;
        decode_list(&body)?
            .into_iter()
            .map(AccessRequest::from_bytes)
            .collect()
    }

    fn post_grant(&self, grant: &[u8]) -> Result<()> {
        self.post_binary("/v1/grants", grant).map(|_| ())
    }

    fn fetch_grants(&self, fingerprint: &Fingerprint) -> Result<Vec<Grant>> {
        let body = ok_body(self.get(&format!("/v1/grants/{}", hex(fingerprint)))?)?;
        decode_list(&body)?
            .into_iter()
            .map(Grant::from_bytes)
            .collect()
    }

    fn admin_view(&self) -> Result<AdminView> {
        let body = ok_body(self.get("/v1/admin/view")?)?;
        Self::parse_json::<AdminViewBody>(&body, "admin view")?.view()
    }

    fn merge(&self) -> Result<()> {
        self.post("/v1/admin/merge", "application/json", b"{}")
            .map(|_| ())
    }
}
