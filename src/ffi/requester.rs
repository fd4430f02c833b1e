//! A requester (a doctor): accepts grants, builds one query across providers, checks
//! and opens the cloud's response.

use std::ffi::{CString, c_char};

use super::bytes::{empty_output, medvault_bytes, put};
use super::grant::medvault_pending_request;
use super::identity::{medvault_identity, medvault_public_identity};
use super::keys::MEDVAULT_RECORD_ID_LEN;
use super::keys::{parse_patient, parse_provider};
use super::status::medvault_status;
use super::{
    FfiResult, c_text, ffi_status, ffi_value, free_handle, handle, handle_mut, input, into_handle,
    invalid, keyword_list, output, text, text_list,
};
use crate::grant::Grant;
use crate::index::manifest::Manifest;
use crate::index::query::{Combine, SearchResponse};
use crate::requester::{PreparedQuery, Requester, SearchResults};

/// A requester's keys from accepted grants. Adding grants needs exclusive use; queries
/// and opening responses only read it, so after the grants are in, one handle may be
/// shared by threads that only query and open. Wiped when freed.
pub struct medvault_requester {
    requester: Requester,
}

/// A query built by a requester: the bytes to send, and what is needed to check the
/// answer. Immutable: may be shared between threads.
pub struct medvault_prepared_query {
    prepared: PreparedQuery,
}

/// The decrypted answer to a query, provider by provider. Plaintext is wiped when
/// freed. Immutable: may be shared between threads.
pub struct medvault_search_results {
    results: SearchResults,
    provider_ids: Vec<CString>,
}

/// How the keywords of a query combine.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum medvault_combine {
    /// Records that have every keyword.
    And = 1,
    /// Records that have at least one keyword.
    Or = 2,
}

/// One provider's part of the results. The string belongs to the results.
#[repr(C)]
#[derive(Debug)]
pub struct medvault_provider_results {
    /// The provider (NUL-terminated).
    pub provider_id: *const c_char,
    /// Number of decrypted records.
    pub record_count: usize,
    /// Matching records the cloud says it does not hold.
    pub missing_count: usize,
}

/// One decrypted record. The plaintext belongs to the results.
#[repr(C)]
#[derive(Debug)]
pub struct medvault_opened_record {
    /// The record's id.
    pub record_id: [u8; MEDVAULT_RECORD_ID_LEN],
    /// The key generation it was sealed under.
    pub generation: u32,
    /// The plaintext (`plaintext_len` bytes).
    pub plaintext: *const u8,
    /// Length of `plaintext`.
    pub plaintext_len: usize,
}

/// A requester with no keys.
///
/// # Safety
/// `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_requester_new(
    out: *mut *mut medvault_requester,
) -> medvault_status {
    ffi_status!({
        // SAFETY: writable (contract).
        let out = unsafe { output(out, "out") }?;
        *out = into_handle(medvault_requester {
            requester: Requester::new(),
        });
        Ok(())
    })
}

/// Frees a requester, wiping its keys. NULL is ignored.
///
/// # Safety
/// `requester` must be NULL or live, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_requester_free(requester: *mut medvault_requester) {
    // SAFETY: NULL or live, freed once (contract).
    ffi_value!((), { unsafe { free_handle(requester) } })
}

/// Pins `provider`'s public keys (`provider_id` NUL-terminated): its signed log is
/// verified under them before any query reaches it. Pinning other keys for a provider
/// already pinned is `MEDVAULT_STATUS_ALREADY_REGISTERED`.
///
/// # Safety
/// `requester` and `keys` live; `provider_id` NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_requester_trust_provider(
    requester: *mut medvault_requester,
    provider_id: *const c_char,
    keys: *const medvault_public_identity,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (requester, id, keys) = unsafe {
            (
                handle_mut(requester, "requester")?,
                text(provider_id, "provider_id")?,
                handle(keys, "keys")?,
            )
        };
        requester
            .requester
            .trust_provider(parse_provider(id)?, keys.public.verifying.clone())?;
        Ok(())
    })
}

/// Follows a provider's re-keying statement (`medvault_rekey_issue`): it must be signed
/// by the keys pinned for its provider (`MEDVAULT_STATUS_NOT_FOUND` if none,
/// `MEDVAULT_STATUS_SIGNATURE_INVALID`); then the new keys are pinned instead.
///
/// # Safety
/// `requester` live; `rekey` `rekey_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_requester_follow_rekey(
    requester: *mut medvault_requester,
    rekey: *const u8,
    rekey_len: usize,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (requester, rekey) = unsafe {
            (
                handle_mut(requester, "requester")?,
                input(rekey, rekey_len, "rekey")?,
            )
        };
        requester
            .requester
            .follow_rekey(&crate::grant::Rekey::from_bytes(rekey)?)?;
        Ok(())
    })
}

/// Accepts a grant answering `pending`: verifies it against `issuer` (the provider's
/// public keys the requester pinned), checks it is addressed to `me`, valid at `now`
/// (unix seconds) and answers exactly that request; then adds its key and pins
/// `issuer` for the grant's provider.
///
/// # Safety
/// Handles live; `grant` `grant_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_requester_accept_grant(
    requester: *mut medvault_requester,
    grant: *const u8,
    grant_len: usize,
    pending: *const medvault_pending_request,
    issuer: *const medvault_public_identity,
    me: *const medvault_identity,
    now: u64,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (requester, grant, pending, issuer, me) = unsafe {
            (
                handle_mut(requester, "requester")?,
                input(grant, grant_len, "grant")?,
                handle(pending, "pending")?,
                handle(issuer, "issuer")?,
                handle(me, "me")?,
            )
        };
        let grant = Grant::from_bytes(grant)?;
        requester.requester.accept_grant(
            &grant,
            &pending.pending,
            &issuer.public.verifying,
            &me.identity,
            now,
        )?;
        Ok(())
    })
}

/// Builds one query for `patient` and `keywords` (1 to 16, NUL-terminated UTF-8),
/// combined by `combine` (a `medvault_combine`), across every provider the requester
/// holds keys for and `manifest` (from `medvault_cloud_manifest`) lists.
///
/// # Safety
/// `requester` live; `patient` `patient_len` bytes; `keywords` `keyword_count` string
/// pointers; `manifest` `manifest_len` bytes; `out` writable.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn medvault_requester_query(
    requester: *const medvault_requester,
    patient: *const u8,
    patient_len: usize,
    keywords: *const *const c_char,
    keyword_count: usize,
    combine: u32,
    manifest: *const u8,
    manifest_len: usize,
    out: *mut *mut medvault_prepared_query,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (requester, patient, keywords, manifest, out) = unsafe {
            (
                handle(requester, "requester")?,
                input(patient, patient_len, "patient")?,
                keyword_list(keywords, keyword_count)?,
                input(manifest, manifest_len, "manifest")?,
                output(out, "out")?,
            )
        };
        let combine = combine_of(combine)?;
        let manifest = Manifest::from_bytes(manifest)?;
        let prepared =
            requester
                .requester
                .query(&parse_patient(patient)?, &keywords, combine, &manifest)?;
        *out = into_handle(medvault_prepared_query { prepared });
        Ok(())
    })
}

/// As `medvault_requester_query`, but only the `provider_count` providers named in
/// `providers` (NUL-terminated ids, each once) receive tokens and are searched: a
/// provider the doctor does not trust with the keyword is left out, and nothing it
/// planted can answer. `MEDVAULT_STATUS_NOT_FOUND` if one named is not in `manifest` or
/// holds no key the requester was granted for `patient`.
///
/// # Safety
/// As `medvault_requester_query`; `providers` `provider_count` string pointers.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn medvault_requester_query_at(
    requester: *const medvault_requester,
    patient: *const u8,
    patient_len: usize,
    keywords: *const *const c_char,
    keyword_count: usize,
    combine: u32,
    manifest: *const u8,
    manifest_len: usize,
    providers: *const *const c_char,
    provider_count: usize,
    out: *mut *mut medvault_prepared_query,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (requester, patient, keywords, manifest, providers, out) = unsafe {
            (
                handle(requester, "requester")?,
                input(patient, patient_len, "patient")?,
                keyword_list(keywords, keyword_count)?,
                input(manifest, manifest_len, "manifest")?,
                text_list(providers, provider_count, "providers", "a provider id")?,
                output(out, "out")?,
            )
        };
        let combine = combine_of(combine)?;
        let providers = providers
            .into_iter()
            .map(parse_provider)
            .collect::<Result<Vec<_>, _>>()?;
        let manifest = Manifest::from_bytes(manifest)?;
        let prepared = requester.requester.query_at(
            &parse_patient(patient)?,
            &keywords,
            combine,
            &manifest,
            &providers,
        )?;
        *out = into_handle(medvault_prepared_query { prepared });
        Ok(())
    })
}

/// A `medvault_combine` value.
fn combine_of(combine: u32) -> FfiResult<Combine> {
    match combine {
        c if c == medvault_combine::And as u32 => Ok(Combine::And),
        c if c == medvault_combine::Or as u32 => Ok(Combine::Or),
        _ => Err(invalid("unknown keyword combination")),
    }
}

/// The bytes of a prepared query, to send to the cloud (`medvault_cloud_search`). They
/// carry search tokens, never a keyword or patient id.
///
/// # Safety
/// `prepared` live; `out` an empty `medvault_bytes`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_prepared_query_bytes(
    prepared: *const medvault_prepared_query,
    out: *mut medvault_bytes,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (prepared, out) = unsafe { (handle(prepared, "prepared")?, empty_output(out, "out")?) };
        put(out, prepared.prepared.query().to_bytes())
    })
}

/// Frees a prepared query. NULL is ignored.
///
/// # Safety
/// `prepared` must be NULL or live, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_prepared_query_free(prepared: *mut medvault_prepared_query) {
    // SAFETY: NULL or live, freed once (contract).
    ffi_value!((), { unsafe { free_handle(prepared) } })
}

/// Checks the cloud's response to `prepared` against its own postings (a cloud that
/// drops, adds or swaps records is caught) and opens every record.
///
/// # Safety
/// Handles live; `response` `response_len` bytes; `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_requester_open_response(
    requester: *const medvault_requester,
    prepared: *const medvault_prepared_query,
    response: *const u8,
    response_len: usize,
    out: *mut *mut medvault_search_results,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (requester, prepared, response, out) = unsafe {
            (
                handle(requester, "requester")?,
                handle(prepared, "prepared")?,
                input(response, response_len, "response")?,
                output(out, "out")?,
            )
        };
        let response = SearchResponse::from_bytes(response)?;
        let results = requester.requester.open(&prepared.prepared, &response)?;
        let provider_ids = results
            .providers
            .iter()
            .map(|p| c_text(p.provider.as_str()))
            .collect();
        *out = into_handle(medvault_search_results {
            results,
            provider_ids,
        });
        Ok(())
    })
}

/// Opens one sealed record with a key the requester holds: a record key, or the key
/// of `patient` (NULL if only a record key is held) at the record's provider.
///
/// # Safety
/// `requester` live; `patient` NULL or `patient_len` bytes; `sealed` `sealed_len`
/// bytes; `out` an empty `medvault_bytes`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_requester_open_record(
    requester: *const medvault_requester,
    patient: *const u8,
    patient_len: usize,
    sealed: *const u8,
    sealed_len: usize,
    out: *mut medvault_bytes,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (requester, sealed, out) = unsafe {
            (
                handle(requester, "requester")?,
                input(sealed, sealed_len, "sealed")?,
                empty_output(out, "out")?,
            )
        };
        let patient = if patient.is_null() {
            None
        } else {
            // SAFETY: non-NULL with `patient_len` bytes (contract).
            Some(parse_patient(unsafe {
                input(patient, patient_len, "patient")
            }?)?)
        };
        let plain = requester.requester.open_record(patient.as_ref(), sealed)?;
        put(out, plain.to_vec())
    })
}

/// Number of providers in the results (0 for NULL).
///
/// # Safety
/// `results` NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_search_results_provider_count(
    results: *const medvault_search_results,
) -> usize {
    ffi_value!(0, {
        // SAFETY: NULL or live (contract).
        unsafe { results.as_ref() }.map_or(0, |r| r.results.providers.len())
    })
}

/// Provider `index` of the results.
///
/// # Safety
/// `results` live; `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_search_results_provider(
    results: *const medvault_search_results,
    index: usize,
    out: *mut medvault_provider_results,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (results, out) = unsafe { (handle(results, "results")?, output(out, "out")?) };
        let provider = results
            .results
            .providers
            .get(index)
            .ok_or_else(|| invalid("provider index out of range"))?;
        *out = medvault_provider_results {
            provider_id: results.provider_ids[index].as_ptr(),
            record_count: provider.records.len(),
            missing_count: provider.missing.len(),
        };
        Ok(())
    })
}

/// Record `record_index` of provider `provider_index` in the results.
///
/// # Safety
/// `results` live; `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_search_results_record(
    results: *const medvault_search_results,
    provider_index: usize,
    record_index: usize,
    out: *mut medvault_opened_record,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (results, out) = unsafe { (handle(results, "results")?, output(out, "out")?) };
        let record = results
            .results
            .providers
            .get(provider_index)
            .and_then(|p| p.records.get(record_index))
            .ok_or_else(|| invalid("provider or record index out of range"))?;
        *out = medvault_opened_record {
            record_id: *record.id.as_bytes(),
            generation: record.generation,
            plaintext: record.plaintext.as_ptr(),
            plaintext_len: record.plaintext.len(),
        };
        Ok(())
    })
}

/// Frees search results, wiping the plaintext. NULL is ignored.
///
/// # Safety
/// `results` must be NULL or live, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_search_results_free(results: *mut medvault_search_results) {
    // SAFETY: NULL or live, freed once (contract).
    ffi_value!((), { unsafe { free_handle(results) } })
}
