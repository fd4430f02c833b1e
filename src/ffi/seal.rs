//! One-shot sealing and opening of records that fit in memory.

use super::bytes::{empty_output, medvault_bytes, put};
use super::keys::medvault_patient_key;
use super::status::medvault_status;
use super::{array, ffi_status, handle, input, output, output_buffer};
use crate::keys::RecordId;

/// Seals `plaintext` as record `record_id` (16 bytes, from
/// `medvault_record_id_generate`) under `key`. The sealed bytes go to `out`.
///
/// # Safety
/// `key` live; `record_id` 16 readable bytes; `plaintext` `plaintext_len` bytes; `out`
/// an empty `medvault_bytes`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_seal(
    key: *const medvault_patient_key,
    record_id: *const u8,
    plaintext: *const u8,
    plaintext_len: usize,
    out: *mut medvault_bytes,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (key, record, plaintext, out) = unsafe {
            (
                handle(key, "key")?,
                RecordId::from_bytes(array(record_id, "record_id")?),
                input(plaintext, plaintext_len, "plaintext")?,
                empty_output(out, "out")?,
            )
        };
        put(out, crate::seal(&key.key.record_key(record), plaintext)?)
    })
}

/// Opens a sealed record with the patient key it was sealed under. Any change to the
/// sealed bytes, a truncation or a wrong key is an error and no plaintext is returned.
///
/// # Safety
/// `key` live; `sealed` `sealed_len` bytes; `out` an empty `medvault_bytes`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_open(
    key: *const medvault_patient_key,
    sealed: *const u8,
    sealed_len: usize,
    out: *mut medvault_bytes,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (key, sealed, out) = unsafe {
            (
                handle(key, "key")?,
                input(sealed, sealed_len, "sealed")?,
                empty_output(out, "out")?,
            )
        };
        put(out, crate::open(&key.key, sealed)?)
    })
}

/// Writes to `out_len` the length of the sealed record of `plaintext_len` bytes, as
/// `medvault_seal_into` writes it under `key`: the room its buffer needs.
///
/// # Safety
/// `key` live; `record_id` 16 readable bytes; `out_len` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_sealed_len(
    key: *const medvault_patient_key,
    record_id: *const u8,
    plaintext_len: usize,
    out_len: *mut usize,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (key, record, out_len) = unsafe {
            (
                handle(key, "key")?,
                RecordId::from_bytes(array(record_id, "record_id")?),
                output(out_len, "out_len")?,
            )
        };
        *out_len = crate::sealed_len(&key.key.record_key(record), plaintext_len)?;
        Ok(())
    })
}

/// Seals `plaintext` as record `record_id` into the caller's buffer `out` (`out_capacity`
/// bytes, not overlapping `plaintext`): the same bytes `medvault_seal` returns, with no
/// allocation by the library. `out_len` receives their length. A buffer shorter than
/// `medvault_sealed_len` is `MEDVAULT_STATUS_INVALID_ARGUMENT`, and nothing is written.
///
/// # Safety
/// `key` live; `record_id` 16 readable bytes; `plaintext` `plaintext_len` bytes; `out`
/// `out_capacity` writable bytes; `out_len` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_seal_into(
    key: *const medvault_patient_key,
    record_id: *const u8,
    plaintext: *const u8,
    plaintext_len: usize,
    out: *mut u8,
    out_capacity: usize,
    out_len: *mut usize,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL, the buffers for overlap.
        let (key, record, plaintext, out_len) = unsafe {
            (
                handle(key, "key")?,
                RecordId::from_bytes(array(record_id, "record_id")?),
                input(plaintext, plaintext_len, "plaintext")?,
                output(out_len, "out_len")?,
            )
        };
        // SAFETY: as above.
        let out = unsafe { output_buffer(out, out_capacity, plaintext, "out")? };
        *out_len = crate::seal_into(&key.key.record_key(record), plaintext, out)?;
        Ok(())
    })
}

/// Writes to `out_len` the plaintext length of the sealed record `sealed`, from its
/// header and length: the room `medvault_open_into`'s buffer needs.
///
/// # Safety
/// `sealed` `sealed_len` bytes; `out_len` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_opened_len(
    sealed: *const u8,
    sealed_len: usize,
    out_len: *mut usize,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (sealed, out_len) = unsafe {
            (
                input(sealed, sealed_len, "sealed")?,
                output(out_len, "out_len")?,
            )
        };
        *out_len = crate::opened_len(sealed)?;
        Ok(())
    })
}

/// Opens a sealed record into the caller's buffer `out` (`out_capacity` bytes, not
/// overlapping `sealed`); `out_len` receives the plaintext length. Fails as
/// `medvault_open` does, and with `MEDVAULT_STATUS_INVALID_ARGUMENT` if the buffer is
/// shorter than `medvault_opened_len`; on any failure the part of `out` it wrote is
/// zeroed, so no plaintext of a rejected record is left in it.
///
/// # Safety
/// `key` live; `sealed` `sealed_len` bytes; `out` `out_capacity` writable bytes;
/// `out_len` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_open_into(
    key: *const medvault_patient_key,
    sealed: *const u8,
    sealed_len: usize,
    out: *mut u8,
    out_capacity: usize,
    out_len: *mut usize,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL, the buffers for overlap.
        let (key, sealed, out_len) = unsafe {
            (
                handle(key, "key")?,
                input(sealed, sealed_len, "sealed")?,
                output(out_len, "out_len")?,
            )
        };
        // SAFETY: as above.
        let out = unsafe { output_buffer(out, out_capacity, sealed, "out")? };
        *out_len = crate::open_into(&key.key, sealed, out)?;
        Ok(())
    })
}
