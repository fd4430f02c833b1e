//! One-shot sealing and opening of records that fit in memory.

use super::bytes::{empty_output, medvault_bytes, put};
use super::keys::medvault_patient_key;
use super::status::medvault_status;
use super::{array, ffi_status, handle, input};
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
