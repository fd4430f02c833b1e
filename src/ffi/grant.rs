//! Access requests and grants: a requester asks a provider, through the cloud, for a
//! patient's records or one record; the provider answers with a signed grant whose key
//! is sealed to the requester (where the paper mails a key).

use std::ffi::{CString, c_char};

use super::broker::{medvault_scope_kind, scope_kind_code};
use super::bytes::{empty_output, medvault_bytes, put};
use super::identity::{medvault_identity, medvault_public_identity};
use super::keys::MEDVAULT_RECORD_ID_LEN;
use super::keys::{parse_patient, parse_provider};
use super::provider::medvault_provider;
use super::status::medvault_status;
use super::{
    c_text, ffi_status, ffi_value, free_handle, handle, input, into_handle, invalid, output, text,
};
use crate::grant::{AccessRequest, Grant, OpenedRequest, PendingRequest, Scope};
use crate::keys::RecordId;

/// What a requester keeps of its own request, to check the grant that answers it.
/// Immutable: may be shared between threads.
pub struct medvault_pending_request {
    pub(crate) pending: PendingRequest,
}

/// A request after the provider opened its sealed scope. Immutable: may be shared
/// between threads.
pub struct medvault_opened_request {
    request: OpenedRequest,
    requester_name: CString,
    reason: CString,
}

/// What an opened request asks for. The pointers belong to the request handle.
#[repr(C)]
#[derive(Debug)]
pub struct medvault_opened_request_info {
    /// The requester's name as it gave it (not verified by medvault; NUL-terminated).
    pub requester_name: *const c_char,
    /// The reason given (NUL-terminated).
    pub reason: *const c_char,
    /// The patient concerned (`patient_len` bytes, not NUL-terminated).
    pub patient: *const u8,
    /// Length of `patient`.
    pub patient_len: usize,
    /// A `medvault_scope_kind`.
    pub scope_kind: u32,
    /// The record asked for (all zero for a patient scope).
    pub record_id: [u8; MEDVAULT_RECORD_ID_LEN],
    /// When it was made (unix seconds).
    pub created_at: u64,
}

/// Makes and signs an access request from `requester` (named `requester_name`) to
/// `provider_id`, whose pinned public keys are `provider_keys`. The scope is
/// `scope_kind`: `MEDVAULT_SCOPE_KIND_PATIENT` (`record_id` NULL) or
/// `MEDVAULT_SCOPE_KIND_RECORD` (`record_id` 16 bytes). The patient id is sealed to the
/// provider: the cloud never sees it. `now` is the current unix time. The request
/// bytes go to `request_out` (submit them with `medvault_cloud_submit_request`); keep
/// `pending_out` to accept the grant.
///
/// # Safety
/// Handles live; strings NUL-terminated; `patient` `patient_len` bytes; `record_id`
/// NULL or 16 bytes; `request_out` an empty `medvault_bytes`; `pending_out` writable.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn medvault_access_request_create(
    requester: *const medvault_identity,
    requester_name: *const c_char,
    provider_id: *const c_char,
    provider_keys: *const medvault_public_identity,
    scope_kind: u32,
    patient: *const u8,
    patient_len: usize,
    record_id: *const u8,
    reason: *const c_char,
    now: u64,
    request_out: *mut medvault_bytes,
    pending_out: *mut *mut medvault_pending_request,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (requester, name, provider, keys, patient, reason, request_out, pending_out) = unsafe {
            (
                handle(requester, "requester")?,
                text(requester_name, "requester_name")?,
                text(provider_id, "provider_id")?,
                handle(provider_keys, "provider_keys")?,
                input(patient, patient_len, "patient")?,
                text(reason, "reason")?,
                empty_output(request_out, "request_out")?,
                output(pending_out, "pending_out")?,
            )
        };
        let patient = parse_patient(patient)?;
        let scope = match scope_kind {
            k if k == medvault_scope_kind::Patient as u32 => {
                if !record_id.is_null() {
                    return Err(invalid("a patient scope takes no record id; pass NULL"));
                }
                Scope::Patient(patient)
            }
            k if k == medvault_scope_kind::Record as u32 => {
                // SAFETY: 16 readable bytes (contract), NULL checked.
                let record = unsafe { super::array(record_id, "record_id") }?;
                Scope::Record(patient, RecordId::from_bytes(record))
            }
            _ => return Err(invalid("unknown scope kind")),
        };
        let (request, pending) = AccessRequest::create(
            &requester.identity,
            name,
            &parse_provider(provider)?,
            &keys.public.encryption,
            scope,
            reason,
            now,
        )?;
        put(request_out, request.to_bytes().to_vec())?;
        *pending_out = into_handle(medvault_pending_request { pending });
        Ok(())
    })
}

/// Frees a pending request. NULL is ignored.
///
/// # Safety
/// `pending` must be NULL or live, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_pending_request_free(pending: *mut medvault_pending_request) {
    // SAFETY: NULL or live, freed once (contract).
    ffi_value!((), { unsafe { free_handle(pending) } })
}

/// The provider's side: checks the request's signature and opens its sealed scope
/// with the provider's identity.
///
/// # Safety
/// `request` `request_len` bytes; `provider_identity` live; `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_access_request_open(
    request: *const u8,
    request_len: usize,
    provider_identity: *const medvault_identity,
    out: *mut *mut medvault_opened_request,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (request, identity, out) = unsafe {
            (
                input(request, request_len, "request")?,
                handle(provider_identity, "provider_identity")?,
                output(out, "out")?,
            )
        };
        let opened = AccessRequest::from_bytes(request)?.open(&identity.identity.decryption)?;
        *out = into_handle(medvault_opened_request {
            requester_name: c_text(&opened.requester_name),
            reason: c_text(&opened.reason),
            request: opened,
        });
        Ok(())
    })
}

/// What an opened request asks for; the pointers stay valid until it is freed.
///
/// # Safety
/// `request` live; `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_opened_request_get_info(
    request: *const medvault_opened_request,
    out: *mut medvault_opened_request_info,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (request, out) = unsafe { (handle(request, "request")?, output(out, "out")?) };
        let scope = &request.request.scope;
        let patient = scope.patient().as_bytes();
        let record_id = match scope {
            Scope::Record(_, id) => *id.as_bytes(),
            Scope::Patient(_) => [0; 16],
        };
        *out = medvault_opened_request_info {
            requester_name: request.requester_name.as_ptr(),
            reason: request.reason.as_ptr(),
            patient: patient.as_ptr(),
            patient_len: patient.len(),
            scope_kind: scope_kind_code(scope.kind()),
            record_id,
            created_at: request.request.created_at,
        };
        Ok(())
    })
}

/// Frees an opened request. NULL is ignored.
///
/// # Safety
/// `request` must be NULL or live, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_opened_request_free(request: *mut medvault_opened_request) {
    // SAFETY: NULL or live, freed once (contract).
    ffi_value!((), { unsafe { free_handle(request) } })
}

/// Issues a grant answering `request`: the key of its scope from `provider` (of key
/// generation `generation`, or the current one if `generation` is negative), sealed to
/// the requester, signed with `provider_identity`, valid from `now` for
/// `lifetime_secs`. The grant bytes go to `out` (post them with
/// `medvault_cloud_post_grant`).
///
/// # Safety
/// Handles live; `out` an empty `medvault_bytes`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_grant_issue(
    provider: *const medvault_provider,
    provider_identity: *const medvault_identity,
    request: *const medvault_opened_request,
    generation: i64,
    now: u64,
    lifetime_secs: u64,
    out: *mut medvault_bytes,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (provider, identity, request, out) = unsafe {
            (
                handle(provider, "provider")?,
                handle(provider_identity, "provider_identity")?,
                handle(request, "request")?,
                empty_output(out, "out")?,
            )
        };
        let generation = match generation {
            g if g < 0 => None,
            g => Some(u32::try_from(g).map_err(|_| invalid("key generation out of range"))?),
        };
        let key = provider
            .provider
            .key_for_scope(&request.request.scope, generation)?;
        let grant = Grant::issue(
            &identity.identity,
            &request.request,
            key,
            now,
            lifetime_secs,
        )?;
        put(out, grant.to_bytes().to_vec())
    })
}
