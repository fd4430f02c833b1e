//! The cloud as the paper's broker, on the same `medvault_cloud` handle: the providers'
//! key directory, access requests and the admin's decisions, the grant mailbox, and
//! the admin view.

use std::ffi::{CString, c_char};

use super::bytes::{empty_output, medvault_bytes, medvault_list, put};
use super::cloud::medvault_cloud;
use super::identity::{medvault_identity, medvault_public_identity, public_handle};
use super::keys::MEDVAULT_RECORD_ID_LEN;
use super::keys::parse_provider;
use super::status::medvault_status;
use super::{
    array, c_text, ffi_status, ffi_value, free_handle, handle, input, into_handle, invalid, output,
    text, write_array,
};
use crate::grant::{AdminView, RequestStatus};
use crate::grant::{Rekey, ScopeKind};

/// A snapshot of what the cloud admin sees: access requests and stored files. No
/// patient id, no key, no keyword. Read-only: may be shared between threads.
pub struct medvault_admin_view {
    requests: Vec<RequestRow>,
    files: Vec<FileRow>,
}

struct RequestRow {
    id: [u8; 16],
    requester_name: CString,
    provider: CString,
    reason: CString,
    scope_kind: u32,
    created_at: u64,
    status: u32,
}

struct FileRow {
    provider: CString,
    record: [u8; 16],
    size: u64,
    uploaded_at: u64,
}

/// What an access request asks for.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum medvault_scope_kind {
    /// Every record of one patient at one provider (search and read).
    Patient = 1,
    /// One record (read only).
    Record = 2,
}

/// Where an access request stands.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum medvault_request_status {
    /// Waiting for the admin.
    Pending = 1,
    /// Approved; waiting for the provider's grant.
    Approved = 2,
    /// Denied by the admin.
    Denied = 3,
    /// The provider posted a grant.
    Granted = 4,
}

/// One access request as the admin sees it. The strings belong to the view.
#[repr(C)]
#[derive(Debug)]
pub struct medvault_request_summary {
    /// The request's id.
    pub id: [u8; MEDVAULT_RECORD_ID_LEN],
    /// The requester's name as given (NUL-terminated).
    pub requester_name: *const c_char,
    /// The provider asked (NUL-terminated).
    pub provider_id: *const c_char,
    /// The reason given (NUL-terminated).
    pub reason: *const c_char,
    /// A `medvault_scope_kind` (which patient or record is sealed to the provider).
    pub scope_kind: u32,
    /// When it was made (unix seconds).
    pub created_at: u64,
    /// A `medvault_request_status`.
    pub status: u32,
}

/// One stored record as the admin sees it. The string belongs to the view.
#[repr(C)]
#[derive(Debug)]
pub struct medvault_file_details {
    /// The owner (NUL-terminated).
    pub provider_id: *const c_char,
    /// The record's id.
    pub record_id: [u8; MEDVAULT_RECORD_ID_LEN],
    /// Sealed size in bytes.
    pub size: u64,
    /// Upload time (unix seconds).
    pub uploaded_at: u64,
}

pub(crate) fn scope_kind_code(kind: ScopeKind) -> u32 {
    match kind {
        ScopeKind::Patient => medvault_scope_kind::Patient as u32,
        ScopeKind::Record => medvault_scope_kind::Record as u32,
    }
}

/// Publishes `provider_id`'s public keys in the cloud's directory (requesters pin
/// them from there or from an out-of-band copy). First-come: other keys under a
/// registered id are `MEDVAULT_STATUS_ALREADY_REGISTERED` and change nothing; the same
/// keys again are accepted.
///
/// # Safety
/// `cloud` and `keys` live; `provider_id` NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_cloud_register_provider(
    cloud: *const medvault_cloud,
    provider_id: *const c_char,
    keys: *const medvault_public_identity,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (cloud, provider, keys) = unsafe {
            (
                handle(cloud, "cloud")?,
                text(provider_id, "provider_id")?,
                handle(keys, "keys")?,
            )
        };
        cloud
            .cloud
            .register_provider(parse_provider(provider)?, keys.public.clone())?;
        Ok(())
    })
}

/// Issues a re-keying statement: `provider_id`'s keys become `new_keys`, signed by the
/// signing key of `old` (the identity it registered). Hand it to the cloud
/// (`medvault_cloud_rekey_provider`) and to requesters (`medvault_requester_follow_rekey`);
/// then sign batches with the new identity (`medvault_provider_resume`).
///
/// # Safety
/// `provider_id` NUL-terminated; `old` and `new_keys` live; `out` an empty
/// `medvault_bytes`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_rekey_issue(
    provider_id: *const c_char,
    old: *const medvault_identity,
    new_keys: *const medvault_public_identity,
    out: *mut medvault_bytes,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (provider, old, new_keys, out) = unsafe {
            (
                text(provider_id, "provider_id")?,
                handle(old, "old")?,
                handle(new_keys, "new_keys")?,
                empty_output(out, "out")?,
            )
        };
        let rekey = Rekey::issue(
            &parse_provider(provider)?,
            &old.identity.signing,
            &new_keys.public,
        )?;
        put(out, rekey.to_bytes())
    })
}

/// Replaces a registered provider's keys with a re-keying statement signed by its
/// registered signing key (`MEDVAULT_STATUS_SIGNATURE_INVALID`,
/// `MEDVAULT_STATUS_NOT_FOUND`; nothing changes on error).
///
/// # Safety
/// `cloud` live; `rekey` `rekey_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_cloud_rekey_provider(
    cloud: *const medvault_cloud,
    rekey: *const u8,
    rekey_len: usize,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (cloud, rekey) =
            unsafe { (handle(cloud, "cloud")?, input(rekey, rekey_len, "rekey")?) };
        cloud.cloud.rekey_provider(rekey)?;
        Ok(())
    })
}

/// `provider_id`'s public keys from the directory; `MEDVAULT_STATUS_NOT_FOUND` if it
/// is not registered.
///
/// # Safety
/// `cloud` live; `provider_id` NUL-terminated; `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_cloud_provider_keys(
    cloud: *const medvault_cloud,
    provider_id: *const c_char,
    out: *mut *mut medvault_public_identity,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (cloud, provider, out) = unsafe {
            (
                handle(cloud, "cloud")?,
                text(provider_id, "provider_id")?,
                output(out, "out")?,
            )
        };
        let keys = cloud
            .cloud
            .provider_keys(&parse_provider(provider)?)?
            .ok_or(crate::Error::NotFound("a registered provider with that id"))?;
        *out = public_handle(keys);
        Ok(())
    })
}

/// Puts a signed access request in the admin's inbox; its id goes to `request_id_out`
/// (16 bytes, may be NULL).
///
/// # Safety
/// `cloud` live; `request` `request_len` bytes; `request_id_out` NULL or 16 writable
/// bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_cloud_submit_request(
    cloud: *const medvault_cloud,
    request: *const u8,
    request_len: usize,
    request_id_out: *mut u8,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (cloud, request) = unsafe {
            (
                handle(cloud, "cloud")?,
                input(request, request_len, "request")?,
            )
        };
        let id = cloud.cloud.submit_request(request)?;
        if !request_id_out.is_null() {
            // SAFETY: non-NULL; 16 writable bytes (contract).
            unsafe { write_array(request_id_out, &id) };
        }
        Ok(())
    })
}

/// The admin's decision on pending request `request_id` (16 bytes): approve if
/// `approve` is non-zero, deny otherwise.
///
/// # Safety
/// `cloud` live; `request_id` 16 bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_cloud_decide_request(
    cloud: *const medvault_cloud,
    request_id: *const u8,
    approve: bool,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (cloud, id) = unsafe { (handle(cloud, "cloud")?, array(request_id, "request_id")?) };
        cloud.cloud.decide_request(id, approve)?;
        Ok(())
    })
}

/// The approved requests waiting for `provider_id`'s grant, as a list of request
/// bytes (open each with `medvault_access_request_open`).
///
/// # Safety
/// `cloud` live; `provider_id` NUL-terminated; `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_cloud_approved_requests(
    cloud: *const medvault_cloud,
    provider_id: *const c_char,
    out: *mut *mut medvault_list,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (cloud, provider, out) = unsafe {
            (
                handle(cloud, "cloud")?,
                text(provider_id, "provider_id")?,
                output(out, "out")?,
            )
        };
        let items = cloud
            .cloud
            .approved_requests(&parse_provider(provider)?)?
            .iter()
            .map(|r| r.to_bytes().to_vec())
            .collect();
        *out = into_handle(medvault_list { items });
        Ok(())
    })
}

/// Posts a grant to the mailbox. Its signature must verify under the registered
/// provider key and it must answer an approved request.
///
/// # Safety
/// `cloud` live; `grant` `grant_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_cloud_post_grant(
    cloud: *const medvault_cloud,
    grant: *const u8,
    grant_len: usize,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (cloud, grant) =
            unsafe { (handle(cloud, "cloud")?, input(grant, grant_len, "grant")?) };
        cloud.cloud.post_grant(grant)?;
        Ok(())
    })
}

/// The grants waiting for the holder of `recipient`'s encryption key, as a list of
/// grant bytes.
///
/// # Safety
/// `cloud` and `recipient` live; `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_cloud_fetch_grants(
    cloud: *const medvault_cloud,
    recipient: *const medvault_public_identity,
    out: *mut *mut medvault_list,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (cloud, recipient, out) = unsafe {
            (
                handle(cloud, "cloud")?,
                handle(recipient, "recipient")?,
                output(out, "out")?,
            )
        };
        let fingerprint = recipient.public.encryption.fingerprint();
        let items = cloud
            .cloud
            .fetch_grants(&fingerprint)?
            .iter()
            .map(|g| g.to_bytes().to_vec())
            .collect();
        *out = into_handle(medvault_list { items });
        Ok(())
    })
}

/// A snapshot of what the cloud admin sees (requests and files).
///
/// # Safety
/// `cloud` live; `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_cloud_admin_view(
    cloud: *const medvault_cloud,
    out: *mut *mut medvault_admin_view,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (cloud, out) = unsafe { (handle(cloud, "cloud")?, output(out, "out")?) };
        *out = into_handle(admin_view(cloud.cloud.admin_view()?));
        Ok(())
    })
}

fn admin_view(view: AdminView) -> medvault_admin_view {
    let requests = view
        .requests
        .iter()
        .map(|r| RequestRow {
            id: r.id,
            requester_name: c_text(&r.requester_name),
            provider: c_text(r.provider.as_str()),
            reason: c_text(&r.reason),
            scope_kind: scope_kind_code(r.scope),
            created_at: r.created_at,
            status: match r.status {
                RequestStatus::Pending => medvault_request_status::Pending,
                RequestStatus::Approved => medvault_request_status::Approved,
                RequestStatus::Denied => medvault_request_status::Denied,
                RequestStatus::Granted => medvault_request_status::Granted,
            } as u32,
        })
        .collect();
    let files = view
        .files
        .iter()
        .map(|f| FileRow {
            provider: c_text(f.provider.as_str()),
            record: *f.record.as_bytes(),
            size: f.size,
            uploaded_at: f.uploaded_at,
        })
        .collect();
    medvault_admin_view { requests, files }
}

/// Number of requests in the view (0 for NULL).
///
/// # Safety
/// `view` NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_admin_view_request_count(
    view: *const medvault_admin_view,
) -> usize {
    ffi_value!(0, {
        // SAFETY: NULL or live (contract).
        unsafe { view.as_ref() }.map_or(0, |v| v.requests.len())
    })
}

/// Request `index` of the view; its strings stay valid until the view is freed.
///
/// # Safety
/// `view` live; `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_admin_view_request(
    view: *const medvault_admin_view,
    index: usize,
    out: *mut medvault_request_summary,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (view, out) = unsafe { (handle(view, "view")?, output(out, "out")?) };
        let row = view
            .requests
            .get(index)
            .ok_or_else(|| invalid("request index out of range"))?;
        *out = medvault_request_summary {
            id: row.id,
            requester_name: row.requester_name.as_ptr(),
            provider_id: row.provider.as_ptr(),
            reason: row.reason.as_ptr(),
            scope_kind: row.scope_kind,
            created_at: row.created_at,
            status: row.status,
        };
        Ok(())
    })
}

/// Number of stored files in the view (0 for NULL).
///
/// # Safety
/// `view` NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_admin_view_file_count(view: *const medvault_admin_view) -> usize {
    // SAFETY: NULL or live (contract).
    ffi_value!(0, { unsafe { view.as_ref() }.map_or(0, |v| v.files.len()) })
}

/// File `index` of the view; its string stays valid until the view is freed.
///
/// # Safety
/// `view` live; `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_admin_view_file(
    view: *const medvault_admin_view,
    index: usize,
    out: *mut medvault_file_details,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (view, out) = unsafe { (handle(view, "view")?, output(out, "out")?) };
        let row = view
            .files
            .get(index)
            .ok_or_else(|| invalid("file index out of range"))?;
        *out = medvault_file_details {
            provider_id: row.provider.as_ptr(),
            record_id: row.record,
            size: row.size,
            uploaded_at: row.uploaded_at,
        };
        Ok(())
    })
}

/// Frees an admin view. NULL is ignored.
///
/// # Safety
/// `view` must be NULL or live, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_admin_view_free(view: *mut medvault_admin_view) {
    // SAFETY: NULL or live, freed once (contract).
    ffi_value!((), { unsafe { free_handle(view) } })
}
