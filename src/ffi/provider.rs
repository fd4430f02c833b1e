//! A provider (hospital, lab, pharmacy, patient): seals records and builds index
//! batches under its own keys.

use std::ffi::c_char;

use super::bytes::{empty_output, medvault_bytes, put};
use super::identity::medvault_identity;
use super::keys::{medvault_master_key, medvault_patient_key, parse_patient, parse_provider};
use super::status::medvault_status;
use super::stream::{medvault_sealer, sealer_handle};
use super::{
    array, check_out, ffi_status, ffi_value, free_handle, handle, handle_mut, input, into_handle,
    keyword_list, output, text, write_array,
};
use crate::keys::{PatientId, RecordId};
use crate::provider::{Provider, ProviderState};

/// A provider's client: its master key, the pending index postings and its epoch
/// counter. Not thread-safe: one thread at a time (it is mutated by every call).
pub struct medvault_provider {
    pub(crate) provider: Provider,
}

/// A new provider `provider_id` with a copy of `master` (the caller still frees
/// `master`), starting at epoch 0 and key generation 0, signing its batches with the
/// signing key of `identity` (copied; the one registered with the cloud).
///
/// # Safety
/// `provider_id` NUL-terminated; `master` and `identity` live; `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_provider_new(
    provider_id: *const c_char,
    master: *const medvault_master_key,
    identity: *const medvault_identity,
    out: *mut *mut medvault_provider,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (id, master, identity, out) = unsafe {
            (
                text(provider_id, "provider_id")?,
                handle(master, "master")?,
                handle(identity, "identity")?,
                output(out, "out")?,
            )
        };
        let provider = Provider::new(
            parse_provider(id)?,
            master.key.clone(),
            identity.identity.signing.clone(),
        );
        *out = into_handle(medvault_provider { provider });
        Ok(())
    })
}

/// A provider resuming from the state `medvault_provider_state` saved (next epoch, key
/// generation, log chain), so its next batch continues where the last run stopped.
///
/// # Safety
/// `provider_id` NUL-terminated; `master` and `identity` live; `state` `state_len`
/// bytes; `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_provider_resume(
    provider_id: *const c_char,
    master: *const medvault_master_key,
    identity: *const medvault_identity,
    state: *const u8,
    state_len: usize,
    out: *mut *mut medvault_provider,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (id, master, identity, state, out) = unsafe {
            (
                text(provider_id, "provider_id")?,
                handle(master, "master")?,
                handle(identity, "identity")?,
                input(state, state_len, "state")?,
                output(out, "out")?,
            )
        };
        let state = ProviderState::from_bytes(state)?;
        let provider = Provider::resume(
            parse_provider(id)?,
            master.key.clone(),
            identity.identity.signing.clone(),
            state,
        );
        *out = into_handle(medvault_provider { provider });
        Ok(())
    })
}

/// The provider's state (next epoch, key generation) to save between runs. Contains
/// no key.
///
/// # Safety
/// `provider` live; `out` an empty `medvault_bytes`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_provider_state(
    provider: *const medvault_provider,
    out: *mut medvault_bytes,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (provider, out) = unsafe { (handle(provider, "provider")?, empty_output(out, "out")?) };
        put(out, provider.provider.state().to_bytes())
    })
}

/// Seals `plaintext` as a new record of `patient` and queues `keywords`
/// (`keyword_count` NUL-terminated UTF-8 strings) for the next batch. The new id goes to
/// `record_id_out` (16 bytes), the sealed record to `sealed_out` (upload it).
///
/// # Safety
/// `provider` live; `patient` `patient_len` bytes; `plaintext` `plaintext_len` bytes;
/// `keywords` `keyword_count` string pointers; `record_id_out` 16 writable bytes;
/// `sealed_out` an empty `medvault_bytes`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn medvault_provider_add_record(
    provider: *mut medvault_provider,
    patient: *const u8,
    patient_len: usize,
    plaintext: *const u8,
    plaintext_len: usize,
    keywords: *const *const c_char,
    keyword_count: usize,
    record_id_out: *mut u8,
    sealed_out: *mut medvault_bytes,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (provider, patient, plaintext, keywords, sealed_out) = unsafe {
            (
                handle_mut(provider, "provider")?,
                input(patient, patient_len, "patient")?,
                input(plaintext, plaintext_len, "plaintext")?,
                keyword_list(keywords, keyword_count)?,
                empty_output(sealed_out, "sealed_out")?,
            )
        };
        check_out(record_id_out, "record_id_out")?;
        let sealed =
            provider
                .provider
                .add_record(&parse_patient(patient)?, plaintext, &keywords)?;
        // SAFETY: checked non-NULL; 16 writable bytes (contract).
        unsafe { write_array(record_id_out, sealed.id.as_bytes()) };
        put(sealed_out, sealed.bytes)
    })
}

/// Starts sealing a large record (an image) of `patient` as a stream: feed it with
/// `medvault_sealer_update`, end with `medvault_sealer_finish`, then index it with
/// `medvault_provider_index` under the id written to `record_id_out` (16 bytes).
///
/// # Safety
/// `provider` live; `patient` `patient_len` bytes; `record_id_out` 16 writable bytes;
/// `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_provider_sealer_init(
    provider: *const medvault_provider,
    patient: *const u8,
    patient_len: usize,
    record_id_out: *mut u8,
    out: *mut *mut medvault_sealer,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (provider, patient, out) = unsafe {
            (
                handle(provider, "provider")?,
                input(patient, patient_len, "patient")?,
                output(out, "out")?,
            )
        };
        check_out(record_id_out, "record_id_out")?;
        let (id, sealer) = provider
            .provider
            .start_record(&parse_patient(patient)?, Vec::new())?;
        // SAFETY: checked non-NULL; 16 writable bytes (contract).
        unsafe { write_array(record_id_out, id.as_bytes()) };
        *out = sealer_handle(sealer);
        Ok(())
    })
}

/// Commits the sealed record `record_id` (16 bytes) stored in the file at `path`
/// (NUL-terminated) to the next batch, as a streamed record needs before the cloud
/// accepts it: upload the batch first, then the record.
///
/// # Safety
/// `provider` live; `record_id` 16 bytes; `path` NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_provider_commit_record_file(
    provider: *mut medvault_provider,
    record_id: *const u8,
    path: *const c_char,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (provider, record, path) = unsafe {
            (
                handle_mut(provider, "provider")?,
                array::<16>(record_id, "record_id")?,
                text(path, "path")?,
            )
        };
        let path = std::path::Path::new(path);
        let file = std::fs::File::open(path).map_err(|source| crate::Error::File {
            action: "open",
            path: path.to_owned(),
            source,
        })?;
        provider
            .provider
            .commit_record(RecordId::from_bytes(record), std::io::BufReader::new(file))?;
        Ok(())
    })
}

/// Queues `keywords` of an existing record `record_id` (16 bytes) of `patient`.
///
/// # Safety
/// `provider` live; `patient` `patient_len` bytes; `record_id` 16 bytes; `keywords`
/// `keyword_count` string pointers.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_provider_index(
    provider: *mut medvault_provider,
    patient: *const u8,
    patient_len: usize,
    record_id: *const u8,
    keywords: *const *const c_char,
    keyword_count: usize,
) -> medvault_status {
    // SAFETY: forwarded contract.
    unsafe {
        queue(
            provider,
            (patient, patient_len),
            record_id,
            (keywords, keyword_count),
            |p, patient, record, words| p.index(patient, record, words),
        )
    }
}

/// Queues the removal of `keywords` from record `record_id`: from the next epoch on,
/// searches for them no longer return it.
///
/// # Safety
/// As `medvault_provider_index`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_provider_delete(
    provider: *mut medvault_provider,
    patient: *const u8,
    patient_len: usize,
    record_id: *const u8,
    keywords: *const *const c_char,
    keyword_count: usize,
) -> medvault_status {
    // SAFETY: forwarded contract.
    unsafe {
        queue(
            provider,
            (patient, patient_len),
            record_id,
            (keywords, keyword_count),
            |p, patient, record, words| p.delete(patient, record, words),
        )
    }
}

type QueueOp = fn(&mut Provider, &PatientId, RecordId, &[&str]) -> crate::Result<()>;

/// The body of `medvault_provider_index` and `_delete`, which differ only in `op`.
///
/// # Safety
/// As `medvault_provider_index`.
unsafe fn queue(
    provider: *mut medvault_provider,
    (patient, patient_len): (*const u8, usize),
    record_id: *const u8,
    (keywords, keyword_count): (*const *const c_char, usize),
    op: QueueOp,
) -> medvault_status {
    ffi_status!({
        // SAFETY: the callers' contract; each pointer checked for NULL.
        let (provider, patient, record, keywords) = unsafe {
            (
                handle_mut(provider, "provider")?,
                input(patient, patient_len, "patient")?,
                RecordId::from_bytes(array(record_id, "record_id")?),
                keyword_list(keywords, keyword_count)?,
            )
        };
        op(
            &mut provider.provider,
            &parse_patient(patient)?,
            record,
            &keywords,
        )?;
        Ok(())
    })
}

/// Builds the encrypted index batch of the next epoch from everything queued (an
/// empty batch is valid) and advances the epoch. Upload it with
/// `medvault_cloud_ingest`.
///
/// # Safety
/// `provider` live; `out` an empty `medvault_bytes`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_provider_finish_batch(
    provider: *mut medvault_provider,
    out: *mut medvault_bytes,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (provider, out) =
            unsafe { (handle_mut(provider, "provider")?, empty_output(out, "out")?) };
        put(out, provider.provider.finish()?.to_bytes())
    })
}

/// As `medvault_provider_finish_batch`, but only if `expected_epoch` (the cloud's, from
/// `medvault_cloud_next_epoch`) is also the provider's next epoch; otherwise
/// `MEDVAULT_STATUS_EPOCH_OUT_OF_ORDER` before anything is built, the queue kept. A
/// provider that lost its state then never rebuilds an epoch already used: resume it
/// from its saved state instead.
///
/// # Safety
/// `provider` live; `out` an empty `medvault_bytes`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_provider_finish_batch_at(
    provider: *mut medvault_provider,
    expected_epoch: u32,
    out: *mut medvault_bytes,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (provider, out) =
            unsafe { (handle_mut(provider, "provider")?, empty_output(out, "out")?) };
        put(out, provider.provider.finish_at(expected_epoch)?.to_bytes())
    })
}

/// Moves to a new key generation (revocation: older grants find and open nothing
/// new). Finish the pending batch first. The new generation goes to
/// `generation_out` (may be NULL).
///
/// # Safety
/// `provider` live; `generation_out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_provider_rotate(
    provider: *mut medvault_provider,
    generation_out: *mut u32,
) -> medvault_status {
    ffi_status!({
        // SAFETY: live or NULL (contract).
        let provider = unsafe { handle_mut(provider, "provider") }?;
        let generation = provider.provider.rotate()?;
        // SAFETY: NULL or writable (contract).
        if let Some(out) = unsafe { generation_out.as_mut() } {
            *out = generation;
        }
        Ok(())
    })
}

/// The current-generation key of `patient` at this provider.
///
/// # Safety
/// `provider` live; `patient` `patient_len` bytes; `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_provider_patient_key(
    provider: *const medvault_provider,
    patient: *const u8,
    patient_len: usize,
    out: *mut *mut medvault_patient_key,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (provider, patient, out) = unsafe {
            (
                handle(provider, "provider")?,
                input(patient, patient_len, "patient")?,
                output(out, "out")?,
            )
        };
        let key = provider.provider.patient_key(&parse_patient(patient)?);
        *out = into_handle(medvault_patient_key { key });
        Ok(())
    })
}

/// Frees a provider (wiping its master key). NULL is ignored.
///
/// # Safety
/// `provider` must be NULL or live, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_provider_free(provider: *mut medvault_provider) {
    // SAFETY: NULL or live, freed once (contract).
    ffi_value!((), { unsafe { free_handle(provider) } })
}
