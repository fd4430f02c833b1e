//! Streaming sealing and opening of large records (images) in constant memory:
//! `_init`, `_update` any number of times, `_finish`.

use super::bytes::{empty_output, medvault_bytes, put};
use super::keys::medvault_patient_key;
use super::status::medvault_status;
use super::{
    FfiResult, array, ffi_status, ffi_value, free_handle, handle, handle_mut, input, into_handle,
    invalid, output,
};
use crate::keys::{PatientKey, RecordId};
use crate::record::incremental::IncrementalOpener;
use crate::record::stream::Sealer;

/// Seals one record as it is fed. Holds at most 512 KiB of plaintext: a record of up
/// to 256 KiB whole until `_finish` (so `_update` returns no bytes for it), a longer
/// one eight 64 KiB chunks at a time. Not thread-safe: one thread at a time.
pub struct medvault_sealer {
    sealer: Option<Sealer<Vec<u8>>>,
}

/// Opens one sealed record as it is fed, handing out only verified plaintext. Holds
/// one batch of at most eight chunks and 512 KiB (and one byte). Not thread-safe: one
/// thread at a time.
pub struct medvault_opener {
    opener: Option<IncrementalOpener<PatientKey>>,
}

/// Starts sealing record `record_id` (16 bytes) under `key`.
///
/// # Safety
/// `key` live; `record_id` 16 readable bytes; `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_sealer_init(
    key: *const medvault_patient_key,
    record_id: *const u8,
    out: *mut *mut medvault_sealer,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (key, record, out) = unsafe {
            (
                handle(key, "key")?,
                RecordId::from_bytes(array(record_id, "record_id")?),
                output(out, "out")?,
            )
        };
        let sealer = Sealer::new(Vec::new(), &key.key.record_key(record))?;
        *out = into_handle(medvault_sealer {
            sealer: Some(sealer),
        });
        Ok(())
    })
}

/// Wraps an existing Rust sealer (the provider's `start_record`) in a handle.
pub(crate) fn sealer_handle(sealer: Sealer<Vec<u8>>) -> *mut medvault_sealer {
    into_handle(medvault_sealer {
        sealer: Some(sealer),
    })
}

/// Feeds `input` to the sealer; `out` receives the sealed bytes ready so far (possibly
/// none: nothing comes out, not even the header, until the record is longer than
/// 256 KiB). Append them to the file in order.
///
/// # Safety
/// `sealer` live; `input` `input_len` bytes; `out` an empty `medvault_bytes`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_sealer_update(
    sealer: *mut medvault_sealer,
    input_data: *const u8,
    input_len: usize,
    out: *mut medvault_bytes,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (sealer, data, out) = unsafe {
            (
                handle_mut(sealer, "sealer")?,
                input(input_data, input_len, "input")?,
                empty_output(out, "out")?,
            )
        };
        let sealer = active(&mut sealer.sealer)?;
        std::io::Write::write_all(sealer, data).map_err(crate::Error::from)?;
        let ready = sealer.get_mut().map(std::mem::take).unwrap_or_default();
        put(out, ready)
    })
}

/// Seals the final chunk; `out` receives the last sealed bytes. The sealer is spent
/// (free it). A record whose sealer never finished is rejected as truncated.
///
/// # Safety
/// `sealer` live; `out` an empty `medvault_bytes`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_sealer_finish(
    sealer: *mut medvault_sealer,
    out: *mut medvault_bytes,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (sealer, out) = unsafe { (handle_mut(sealer, "sealer")?, empty_output(out, "out")?) };
        active(&mut sealer.sealer)?;
        let rest = sealer
            .sealer
            .take()
            .ok_or_else(|| invalid("the sealer has finished"))?
            .finish_vec()?;
        put(out, rest)
    })
}

/// Frees a sealer (NULL is ignored), wiping buffered plaintext.
///
/// # Safety
/// `sealer` must be NULL or live, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_sealer_free(sealer: *mut medvault_sealer) {
    // SAFETY: NULL or live, freed once (contract).
    ffi_value!((), { unsafe { free_handle(sealer) } })
}

fn active<T>(slot: &mut Option<T>) -> FfiResult<&mut T> {
    slot.as_mut()
        .ok_or_else(|| invalid("the stream has finished or failed; free it"))
}

/// Starts opening a record sealed under `key` (or any record key derived from it).
///
/// # Safety
/// `key` live; `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_opener_init(
    key: *const medvault_patient_key,
    out: *mut *mut medvault_opener,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (key, out) = unsafe { (handle(key, "key")?, output(out, "out")?) };
        *out = into_handle(medvault_opener {
            opener: Some(IncrementalOpener::new(key.key.clone())),
        });
        Ok(())
    })
}

/// Feeds sealed bytes; `out` receives the plaintext of every chunk completed and
/// verified (possibly none). After an error the opener is spent.
///
/// # Safety
/// `opener` live; `sealed` `sealed_len` bytes; `out` an empty `medvault_bytes`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_opener_update(
    opener: *mut medvault_opener,
    sealed: *const u8,
    sealed_len: usize,
    out: *mut medvault_bytes,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (opener, sealed, out) = unsafe {
            (
                handle_mut(opener, "opener")?,
                input(sealed, sealed_len, "sealed")?,
                empty_output(out, "out")?,
            )
        };
        let mut plain = Vec::new();
        let result = active(&mut opener.opener)?.update(sealed, &mut plain);
        if result.is_err() {
            opener.opener = None;
        }
        result?;
        put(out, plain)
    })
}

/// Verifies the final chunk; `out` receives its plaintext. A record that ended early
/// is `MEDVAULT_STATUS_TRUNCATED`. The opener is spent (free it).
///
/// # Safety
/// `opener` live; `out` an empty `medvault_bytes`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_opener_finish(
    opener: *mut medvault_opener,
    out: *mut medvault_bytes,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (opener, out) = unsafe { (handle_mut(opener, "opener")?, empty_output(out, "out")?) };
        let opener = opener
            .opener
            .take()
            .ok_or_else(|| invalid("the stream has finished or failed; free it"))?;
        let mut plain = Vec::new();
        opener.finish(&mut plain)?;
        put(out, plain)
    })
}

/// Frees an opener (NULL is ignored), wiping buffered data.
///
/// # Safety
/// `opener` must be NULL or live, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_opener_free(opener: *mut medvault_opener) {
    // SAFETY: NULL or live, freed once (contract).
    ffi_value!((), { unsafe { free_handle(opener) } })
}
