//! The HTTP API (`docs/server-api.md`): every cloud operation, binary bodies in the
//! library's own formats, JSON for small metadata, a JSON error naming the problem for
//! every refusal. Each route checks who calls before it touches the cloud: a provider
//! writes only under its own provider id, a requester reads only its own mailbox, the
//! admin's routes are the admin's alone. The cloud's own checks (signatures, epochs,
//! digests) come after and are never replaced by a login.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::TryStreamExt;
use medvault::remote::{
    AdminViewBody, Decision, ErrorBody, Login, NewAccount, ProviderKeys, RequestId, Role, Session,
    StoredRecord, StoredRecords, encode_list, hex, unhex,
};
use medvault::{
    AccessRequest, Cloud, CloudService, Grant, IndexBatch, ProviderId, RecordHeader, RecordId,
    Rekey, parse_record_batch,
};

use crate::accounts::{AccountError, Accounts, Caller};
use crate::metrics::{self, Metrics};
use crate::stall::{self, BodyStalled};

/// Largest body of a non-record request (batches and queries included).
pub const MAX_BODY: usize = 256 << 20;
/// Bytes of a record read before its header must have parsed.
const MAX_HEADER: usize = 4096;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The key-less cloud.
    pub cloud: Arc<Cloud>,
    /// Accounts and sessions.
    pub accounts: Arc<Accounts>,
    /// One permit per record upload that may run at once.
    pub uploads: Arc<tokio::sync::Semaphore>,
    /// Longest wait for the next piece of any request body (`stall.rs`).
    pub piece_timeout: std::time::Duration,
    /// Request counts and latencies, merges.
    pub metrics: Arc<Metrics>,
}

/// A refusal: status and JSON body.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                error: code.to_owned(),
                message: message.into(),
                expected: None,
                found: None,
            },
        }
    }
    fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "log in first (Authorization: Bearer <token>)",
        )
    }
    fn forbidden(what: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", what)
    }
    fn bad(what: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", what)
    }
    fn stalled() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "stalled",
            "the request body stopped arriving",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

impl From<medvault::Error> for ApiError {
    fn from(e: medvault::Error) -> Self {
        use medvault::Error as E;
        let message = e.to_string();
        let (status, code) = match &e {
            E::Truncated { .. } => (StatusCode::BAD_REQUEST, "truncated"),
            E::Malformed { .. } => (StatusCode::BAD_REQUEST, "malformed"),
            E::UnsupportedVersion { .. } => (StatusCode::BAD_REQUEST, "unsupported_version"),
            E::UnsupportedAlgorithm { .. } => (StatusCode::BAD_REQUEST, "unsupported_algorithm"),
            E::InvalidArgument(_) => (StatusCode::BAD_REQUEST, "invalid_argument"),
            E::NotAuthentic { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "not_authentic"),
            E::SignatureInvalid => (StatusCode::UNPROCESSABLE_ENTITY, "signature_invalid"),
            E::Expired { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "expired"),
            E::NotYetValid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "not_yet_valid"),
            E::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            E::AlreadyRegistered => (StatusCode::CONFLICT, "already_registered"),
            E::LabelCollision => (StatusCode::CONFLICT, "label_collision"),
            E::GenerationRegressed { .. } => (StatusCode::CONFLICT, "generation_regressed"),
            E::EpochOutOfOrder { expected, found } => {
                let mut error = ApiError::new(StatusCode::CONFLICT, "epoch_out_of_order", message);
                error.body.expected = Some(*expected);
                error.body.found = Some(*found);
                return error;
            }
            // The store's own faults: the only 5xx the server gives.
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError::new(status, code, message)
    }
}

type ApiResult<T> = Result<T, ApiError>;

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(ApiError::unauthorized)?;
        state
            .accounts
            .caller(token)
            .ok_or_else(ApiError::unauthorized)
    }
}

/// A JSON body; a body that is not the expected JSON is a 4xx with a JSON error, like
/// every other refusal (axum's own rejection is plain text).
pub struct JsonBody<T>(pub T);

impl<T: serde::de::DeserializeOwned> axum::extract::FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &AppState) -> ApiResult<Self> {
        let stalled = req.extensions().get::<BodyStalled>().cloned();
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(JsonBody(value)),
            Err(_) if stalled.is_some_and(|s| s.is_set()) => Err(ApiError::stalled()),
            Err(rejection) => Err(ApiError::new(
                rejection.status(),
                "bad_json",
                rejection.body_text(),
            )),
        }
    }
}

/// A binary body (a batch, query, request, grant or statement), at most [`MAX_BODY`]
/// bytes: a longer one is `413 too_large` with a JSON error.
pub struct BinaryBody(pub Bytes);

impl axum::extract::FromRequest<AppState> for BinaryBody {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &AppState) -> ApiResult<Self> {
        let stalled = req.extensions().get::<BodyStalled>().cloned();
        match Bytes::from_request(req, state).await {
            Ok(bytes) => Ok(BinaryBody(bytes)),
            Err(_) if stalled.is_some_and(|s| s.is_set()) => Err(ApiError::stalled()),
            Err(rejection) => Err(ApiError::new(
                rejection.status(),
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    "too_large"
                } else {
                    "bad_body"
                },
                rejection.body_text(),
            )),
        }
    }
}

fn require(caller: &Caller, role: Role) -> ApiResult<()> {
    if caller.role == role {
        Ok(())
    } else {
        Err(ApiError::forbidden(match role {
            Role::Provider => "a provider account's route",
            Role::Requester => "a requester account's route",
            Role::Admin => "the admin's route",
        }))
    }
}

/// A provider writing under `provider`: only that provider's own account.
fn require_provider(caller: &Caller, provider: &ProviderId) -> ApiResult<()> {
    require(caller, Role::Provider)?;
    if caller.account == provider.as_str() {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "a provider writes only under its own provider id",
        ))
    }
}

/// Runs blocking cloud work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, medvault::Error> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "a worker failed",
            )
        })?
        .map_err(ApiError::from)
}

fn provider_id(text: &str) -> ApiResult<ProviderId> {
    ProviderId::new(text).map_err(|_| ApiError::bad("not a provider id"))
}

async fn health() -> &'static str {
    "ok"
}

async fn register_account(
    State(state): State<AppState>,
    JsonBody(account): JsonBody<NewAccount>,
) -> ApiResult<StatusCode> {
    if account.role == Role::Admin {
        return Err(ApiError::forbidden(
            "admin accounts are made by the server's operator",
        ));
    }
    let accounts = state.accounts.clone();
    tokio::task::spawn_blocking(move || {
        accounts.register(
            &account.account,
            &account.password,
            account.role,
            account.fingerprint.as_deref(),
        )
    })
    .await
    .map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "a worker failed",
        )
    })?
    .map_err(account_error)?;
    Ok(StatusCode::CREATED)
}

fn account_error(e: AccountError) -> ApiError {
    match e {
        AccountError::Exists => ApiError::new(
            StatusCode::CONFLICT,
            "account_exists",
            "the account name is taken",
        ),
        AccountError::Invalid(what) => ApiError::bad(what),
        AccountError::BadLogin => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_login",
            "wrong account or password",
        ),
        AccountError::Limited => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_failures",
            "too many failed logins; wait a minute",
        ),
        AccountError::Io(e) => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        }
    }
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    JsonBody(login): JsonBody<Login>,
) -> ApiResult<Json<Session>> {
    let accounts = state.accounts.clone();
    let (token, ttl) = tokio::task::spawn_blocking(move || {
        accounts.login(&login.account, &login.password, from.ip())
    })
    .await
    .map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "a worker failed",
        )
    })?
    .map_err(account_error)?;
    Ok(Json(Session {
        token,
        expires_in: ttl.as_secs(),
    }))
}

async fn logout(
    State(state): State<AppState>,
    _caller: Caller,
    parts: axum::http::HeaderMap,
) -> StatusCode {
    if let Some(token) = parts
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        state.accounts.logout(token);
    }
    StatusCode::NO_CONTENT
}

async fn put_provider_keys(
    State(state): State<AppState>,
    caller: Caller,
    Path(provider): Path<String>,
    JsonBody(keys): JsonBody<ProviderKeys>,
) -> ApiResult<StatusCode> {
    let provider = provider_id(&provider)?;
    require_provider(&caller, &provider)?;
    let keys = keys.keys().map_err(ApiError::from)?;
    blocking(move || state.cloud.register_provider(provider, keys)).await?;
    Ok(StatusCode::CREATED)
}

async fn get_provider_keys(
    State(state): State<AppState>,
    _caller: Caller,
    Path(provider): Path<String>,
) -> ApiResult<Json<ProviderKeys>> {
    let provider = provider_id(&provider)?;
    match state.cloud.provider_keys(&provider) {
        Some(keys) => Ok(Json(ProviderKeys::of(&keys))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such provider",
        )),
    }
}

async fn rekey(
    State(state): State<AppState>,
    caller: Caller,
    BinaryBody(body): BinaryBody,
) -> ApiResult<StatusCode> {
    require(&caller, Role::Provider)?;
    let statement = Rekey::from_bytes(&body)?;
    require_provider(&caller, statement.provider())?;
    blocking(move || state.cloud.rekey_provider(&body)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn ingest(
    State(state): State<AppState>,
    caller: Caller,
    BinaryBody(body): BinaryBody,
) -> ApiResult<StatusCode> {
    require(&caller, Role::Provider)?;
    let batch = blocking(move || IndexBatch::from_bytes(&body)).await?;
    require_provider(&caller, batch.provider())?;
    blocking(move || state.cloud.ingest(batch)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Pieces of a record upload queued between the network and the store (each up to a
/// TLS record, 16 KiB; a few MiB in all).
const UPLOAD_QUEUE: usize = 256;

/// The blocking store's view of a queued upload.
struct QueueReader {
    queue: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    current: Bytes,
}

impl std::io::Read for QueueReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.queue.blocking_recv() {
                Some(Ok(piece)) => self.current = piece,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// A place among the record uploads allowed at once (`--max-uploads`), held until the
/// upload is stored or refused; `503 busy` when there is none.
fn upload_permit(state: &AppState) -> ApiResult<tokio::sync::OwnedSemaphorePermit> {
    state.uploads.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many record uploads at once; retry later",
        )
    })
}

/// Streams a sealed record in: its header is read first and must name the caller as
/// its provider; the rest goes to the store as it arrives (constant memory).
async fn put_record(
    State(state): State<AppState>,
    caller: Caller,
    stalled: Option<axum::Extension<BodyStalled>>,
    body: Body,
) -> ApiResult<(StatusCode, Json<StoredRecord>)> {
    require(&caller, Role::Provider)?;
    let permit = upload_permit(&state)?;
    // The slow-body guard (`stall.rs`) ends an upload whose next piece does not come
    // in time: a slow client holds no permit and no store file for long, and nothing
    // of its record is stored.
    let mut stream = body.into_data_stream().map_err(std::io::Error::other);
    let mut head: Vec<u8> = Vec::new();
    let provider = loop {
        match RecordHeader::parse(&head) {
            Ok((header, _)) => break header.provider().clone(),
            Err(medvault::Error::Truncated { .. }) if head.len() < MAX_HEADER => {}
            Err(e) => return Err(e.into()),
        }
        match stream.try_next().await {
            Ok(Some(chunk)) => head.extend_from_slice(&chunk),
            Ok(None) => {
                return Err(ApiError::from(RecordHeader::parse(&head).err().unwrap_or(
                    medvault::Error::Truncated {
                        format: "sealed record",
                        detail: "header",
                    },
                )));
            }
            Err(_) if stalled.as_ref().is_some_and(|s| s.0.is_set()) => {
                return Err(ApiError::stalled());
            }
            Err(e) => return Err(ApiError::bad(&format!("upload interrupted: {e}"))),
        }
    };
    require_provider(&caller, &provider)?;
    // The network side keeps receiving while the store hashes and writes: the body is
    // pulled into a bounded queue by a task of its own (a 100 MB upload is otherwise
    // received, then written, piece by piece; the server bench's image upload).
    let (pieces, queue) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(UPLOAD_QUEUE);
    tokio::spawn(async move {
        while let Some(piece) = futures_util::StreamExt::next(&mut stream).await {
            let failed = piece.is_err();
            if pieces.send(piece).await.is_err() || failed {
                break;
            }
        }
    });
    let reader = QueueReader {
        queue,
        current: Bytes::new(),
    };
    let cloud = state.cloud.clone();
    let stored = blocking(move || {
        let _permit = permit;
        let mut whole = std::io::Read::chain(std::io::Cursor::new(head), reader);
        cloud.put_record_from(&mut whole)
    })
    .await;
    let (provider, record, size) = match stored {
        // Cut off mid-record: the client's fault, and nothing was stored.
        Err(_) if stalled.as_ref().is_some_and(|s| s.0.is_set()) => {
            return Err(ApiError::stalled());
        }
        other => other?,
    };
    Ok((
        StatusCode::CREATED,
        Json(StoredRecord {
            provider: provider.to_string(),
            record: hex(record.as_bytes()),
            size,
        }),
    ))
}

/// Stores a batch of sealed records (`MVRB`) in one commit, all or none: every record's
/// header must name the caller's provider. A provider's notes after each index batch
/// are one request and one fsync here, where uploaded one by one they are a request and
/// two fsyncs each (`cargo bench -p medvault-server --bench server -- uploads`).
async fn put_records(
    State(state): State<AppState>,
    caller: Caller,
    BinaryBody(body): BinaryBody,
) -> ApiResult<(StatusCode, Json<StoredRecords>)> {
    require(&caller, Role::Provider)?;
    for record in parse_record_batch(&body)? {
        let (header, _) = RecordHeader::parse(record)?;
        require_provider(&caller, header.provider())?;
    }
    let permit = upload_permit(&state)?;
    let cloud = state.cloud.clone();
    let stored = blocking(move || {
        let _permit = permit;
        let records = parse_record_batch(&body)?;
        CloudService::put_records(cloud.as_ref(), &records)
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(StoredRecords {
            records: stored
                .into_iter()
                .map(|(provider, record, size)| StoredRecord {
                    provider: provider.to_string(),
                    record: hex(record.as_bytes()),
                    size,
                })
                .collect(),
        }),
    ))
}

/// Who may download `provider`'s sealed records: the provider itself, and a requester
/// to whose mailbox that provider has posted a grant. (Records are sealed; this keeps
/// a party with no business there from even collecting the ciphertexts.)
fn may_read_records_of(state: &AppState, caller: &Caller, provider: &ProviderId) -> ApiResult<()> {
    let allowed = match caller.role {
        Role::Provider => caller.account == provider.as_str(),
        Role::Requester => caller.fingerprint.is_some_and(|fingerprint| {
            state
                .cloud
                .fetch_grants(&fingerprint)
                .iter()
                .any(|grant| grant.provider() == provider)
        }),
        Role::Admin => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "records are read by their provider and by requesters it granted",
        ))
    }
}

/// Streams a stored record out in 64 KiB chunks.
async fn get_record(
    State(state): State<AppState>,
    caller: Caller,
    Path((provider, record)): Path<(String, String)>,
) -> ApiResult<Response> {
    let provider = provider_id(&provider)?;
    may_read_records_of(&state, &caller, &provider)?;
    let record = RecordId::from_bytes(
        unhex::<16>(&record).ok_or_else(|| ApiError::bad("record id: 32 hex digits"))?,
    );
    let cloud = state.cloud.clone();
    let reader = blocking(move || cloud.record_reader(&provider, record)).await?;
    let Some(mut reader) = reader else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such record",
        ));
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match std::io::Read::read(&mut reader, &mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if tx
                        .blocking_send(Ok(Bytes::copy_from_slice(&buf[..n])))
                        .is_err()
                    {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from_stream(stream),
    )
        .into_response())
}

async fn manifest(State(state): State<AppState>, _caller: Caller) -> ApiResult<Vec<u8>> {
    Ok(state.cloud.manifest().to_bytes())
}

async fn search(
    State(state): State<AppState>,
    caller: Caller,
    BinaryBody(body): BinaryBody,
) -> ApiResult<Vec<u8>> {
    require(&caller, Role::Requester)?;
    blocking(move || state.cloud.search_bytes(&body).map(|r| r.to_bytes())).await
}

async fn submit_request(
    State(state): State<AppState>,
    caller: Caller,
    BinaryBody(body): BinaryBody,
) -> ApiResult<(StatusCode, Json<RequestId>)> {
    require(&caller, Role::Requester)?;
    let request = blocking({
        let body = body.clone();
        move || AccessRequest::from_bytes(&body)
    })
    .await?;
    if Some(request.requester().encryption.fingerprint()) != caller.fingerprint {
        return Err(ApiError::forbidden(
            "a requester submits only its own requests",
        ));
    }
    let id = blocking(move || state.cloud.submit_request(&body)).await?;
    Ok((StatusCode::CREATED, Json(RequestId { id: hex(&id) })))
}

async fn decide(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(decision): JsonBody<Decision>,
) -> ApiResult<StatusCode> {
    require(&caller, Role::Admin)?;
    let id = unhex::<16>(&id).ok_or_else(|| ApiError::bad("request id: 32 hex digits"))?;
    blocking(move || state.cloud.decide_request(id, decision.approve)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn approved(
    State(state): State<AppState>,
    caller: Caller,
    Path(provider): Path<String>,
) -> ApiResult<Vec<u8>> {
    let provider = provider_id(&provider)?;
    require_provider(&caller, &provider)?;
    let requests = state.cloud.approved_requests(&provider);
    Ok(encode_list(requests.iter().map(|r| r.to_bytes())))
}

async fn post_grant(
    State(state): State<AppState>,
    caller: Caller,
    BinaryBody(body): BinaryBody,
) -> ApiResult<StatusCode> {
    require(&caller, Role::Provider)?;
    let grant = Grant::from_bytes(&body)?;
    require_provider(&caller, grant.provider())?;
    blocking(move || state.cloud.post_grant(&body)).await?;
    Ok(StatusCode::CREATED)
}

async fn fetch_grants(
    State(state): State<AppState>,
    caller: Caller,
    Path(fingerprint): Path<String>,
) -> ApiResult<Vec<u8>> {
    require(&caller, Role::Requester)?;
    let fingerprint =
        unhex::<32>(&fingerprint).ok_or_else(|| ApiError::bad("fingerprint: 64 hex digits"))?;
    if Some(fingerprint) != caller.fingerprint {
        return Err(ApiError::forbidden(
            "a requester reads only its own mailbox",
        ));
    }
    let grants = state.cloud.fetch_grants(&fingerprint);
    Ok(encode_list(grants.iter().map(|g| g.to_bytes())))
}

async fn admin_view(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<AdminViewBody>> {
    require(&caller, Role::Admin)?;
    Ok(Json(AdminViewBody::of(&state.cloud.admin_view())))
}

async fn merge(State(state): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    require(&caller, Role::Admin)?;
    let cloud = state.cloud.clone();
    let merged = blocking(move || CloudService::merge(&*cloud)).await;
    state.metrics.merged(merged.is_ok());
    merged?;
    Ok(StatusCode::NO_CONTENT)
}

/// Prometheus metrics: open like `/health` (aggregate counts and sizes only; see
/// SECURITY.md).
async fn prometheus(State(state): State<AppState>) -> ApiResult<Response> {
    let text = blocking(move || Ok(state.metrics.render(&state.cloud))).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// This API's OpenAPI 3.1 document (committed as `server/openapi.json`; a test checks
/// it against the routes below).
pub const OPENAPI: &str = include_str!("../openapi.json");

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no_route", "no such route")
}

/// Every route.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/openapi.json", get(openapi))
        .route("/metrics", get(prometheus))
        .route("/v1/accounts", post(register_account))
        .route("/v1/login", post(login))
        .route("/v1/logout", post(logout))
        .route(
            "/v1/providers/{id}/keys",
            post(put_provider_keys).get(get_provider_keys),
        )
        .route("/v1/providers/{id}/approved", get(approved))
        .route("/v1/rekey", post(rekey))
        .route("/v1/batches", post(ingest))
        .route(
            "/v1/records",
            post(put_record).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/records/batch", post(put_records))
        .route("/v1/records/{provider}/{record}", get(get_record))
        .route("/v1/manifest", get(manifest))
        .route("/v1/search", post(search))
        .route("/v1/requests", post(submit_request))
        .route("/v1/requests/{id}/decision", post(decide))
        .route("/v1/grants", post(post_grant))
        .route("/v1/grants/{fingerprint}", get(fetch_grants))
        .route("/v1/admin/view", get(admin_view))
        .route("/v1/admin/merge", post(merge))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(
            state.piece_timeout,
            stall::guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::track,
        ))
        .with_state(state)
}
