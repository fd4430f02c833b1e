//! Master keys, key files, patient keys and record ids.

use std::ffi::c_char;

use super::bytes::{empty_output, medvault_bytes, put};
use super::status::medvault_status;
use super::{
    FfiError, array, check_out, ffi_status, ffi_value, free_handle, handle, input, into_handle,
    invalid, output, text, write_array,
};
use crate::keys::keyfile::{self, PasswordKdf};
use crate::keys::{MasterKey, PatientId, PatientKey, ProviderId, RecordId};

/// Length of a record id in bytes.
pub const MEDVAULT_RECORD_ID_LEN: usize = 16;
/// Size of the buffer `medvault_record_id_to_hex` needs (32 hex digits and a NUL).
pub const MEDVAULT_RECORD_ID_HEX_LEN: usize = 33;
/// Length of a key fingerprint (SHA-256 of the public key) in bytes.
pub const MEDVAULT_FINGERPRINT_LEN: usize = 32;

/// A provider's 256-bit master key, from which every patient and record key derives.
/// Wiped when freed; never printed. Immutable: may be shared between threads.
pub struct medvault_master_key {
    pub(crate) key: MasterKey,
}

/// The key of one patient at one provider and key generation: seals and opens that
/// patient's records. Wiped when freed. Immutable: may be shared between threads.
pub struct medvault_patient_key {
    pub(crate) key: PatientKey,
}

/// How a key file's password becomes a key.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum medvault_kdf_algorithm {
    /// Argon2id (RFC 9106): `memory_kib` (8 MiB to 1 GiB), `iterations` (1 to 64),
    /// `parallelism` (1 to 64).
    Argon2id = 1,
    /// PBKDF2-HMAC-SHA256: `iterations` (100,000 to 100,000,000); the others are 0.
    Pbkdf2Sha256 = 2,
}

/// Password KDF parameters for `medvault_key_file_lock`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct medvault_password_kdf {
    /// A `medvault_kdf_algorithm` value.
    pub algorithm: u32,
    /// Argon2id memory in KiB.
    pub memory_kib: u32,
    /// Passes (Argon2id) or iterations (PBKDF2).
    pub iterations: u32,
    /// Argon2id lanes.
    pub parallelism: u32,
}

impl medvault_password_kdf {
    fn from_rust(kdf: PasswordKdf) -> Self {
        match kdf {
            PasswordKdf::Argon2id {
                memory_kib,
                iterations,
                parallelism,
            } => medvault_password_kdf {
                algorithm: medvault_kdf_algorithm::Argon2id as u32,
                memory_kib,
                iterations,
                parallelism,
            },
            PasswordKdf::Pbkdf2Sha256 { iterations } => medvault_password_kdf {
                algorithm: medvault_kdf_algorithm::Pbkdf2Sha256 as u32,
                memory_kib: 0,
                iterations,
                parallelism: 0,
            },
        }
    }

    fn to_rust(self) -> Result<PasswordKdf, FfiError> {
        match self.algorithm {
            a if a == medvault_kdf_algorithm::Argon2id as u32 => Ok(PasswordKdf::Argon2id {
                memory_kib: self.memory_kib,
                iterations: self.iterations,
                parallelism: self.parallelism,
            }),
            a if a == medvault_kdf_algorithm::Pbkdf2Sha256 as u32 => {
                Ok(PasswordKdf::Pbkdf2Sha256 {
                    iterations: self.iterations,
                })
            }
            _ => Err(invalid("unknown password KDF algorithm")),
        }
    }
}

/// The recommended password KDF (Argon2id, 19 MiB, 2 passes, 1 lane).
#[unsafe(no_mangle)]
pub extern "C" fn medvault_password_kdf_default() -> medvault_password_kdf {
    medvault_password_kdf::from_rust(PasswordKdf::default())
}

/// Checks a provider id argument (1 to 64 bytes of `[a-z0-9._-]`).
pub(crate) fn parse_provider(value: &str) -> Result<ProviderId, FfiError> {
    Ok(ProviderId::new(value)?)
}

/// A patient id argument (1 to 255 bytes, for example a mobile number).
pub(crate) fn parse_patient(data: &[u8]) -> Result<PatientId, FfiError> {
    Ok(PatientId::new(data)?)
}

/// Writes 16 fresh random bytes, a new record id, to `out`.
///
/// # Safety
/// `out` must be valid for writing `MEDVAULT_RECORD_ID_LEN` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_record_id_generate(out: *mut u8) -> medvault_status {
    ffi_status!({
        check_out(out, "out")?;
        let id = RecordId::generate()?;
        // SAFETY: checked non-NULL; 16 writable bytes (contract).
        unsafe { write_array(out, id.as_bytes()) };
        Ok(())
    })
}

/// Writes a record id as 32 lowercase hex digits and a NUL into `buffer`
/// (`capacity` ≥ `MEDVAULT_RECORD_ID_HEX_LEN`, else `MEDVAULT_STATUS_BUFFER_TOO_SMALL`).
///
/// # Safety
/// `id` must point to 16 readable bytes; `buffer` to `capacity` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_record_id_to_hex(
    id: *const u8,
    buffer: *mut c_char,
    capacity: usize,
) -> medvault_status {
    ffi_status!({
        // SAFETY: 16 readable bytes (contract).
        let id = RecordId::from_bytes(unsafe { array(id, "id") }?);
        check_out(buffer.cast(), "buffer")?;
        if capacity < MEDVAULT_RECORD_ID_HEX_LEN {
            return Err(FfiError::BufferTooSmall {
                needed: MEDVAULT_RECORD_ID_HEX_LEN,
            });
        }
        let mut hex = id.to_string().into_bytes();
        hex.push(0);
        // SAFETY: non-NULL with `capacity >= 33` writable bytes; `hex` is 33 bytes.
        unsafe { std::ptr::copy_nonoverlapping(hex.as_ptr().cast(), buffer, hex.len()) };
        Ok(())
    })
}

/// Generates a new master key from the operating system's random number generator.
///
/// # Safety
/// `out` must be valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_master_key_generate(
    out: *mut *mut medvault_master_key,
) -> medvault_status {
    ffi_status!({
        // SAFETY: writable (contract).
        let out = unsafe { output(out, "out") }?;
        *out = into_handle(medvault_master_key {
            key: MasterKey::generate()?,
        });
        Ok(())
    })
}

/// Frees (and wipes) a master key. NULL is ignored.
///
/// # Safety
/// `key` must be NULL or a live master key, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_master_key_free(key: *mut medvault_master_key) {
    // SAFETY: NULL or live, freed once (contract).
    ffi_value!((), { unsafe { free_handle(key) } })
}

/// Writes `key` into a new key file protected by `password` (at least one byte) for
/// `provider_id`. `kdf` NULL means `medvault_password_kdf_default()`.
///
/// # Safety
/// Pointers valid as documented: `provider_id` NUL-terminated; `password` has
/// `password_len` bytes; `kdf` NULL or readable; `out` an empty `medvault_bytes`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_key_file_lock(
    key: *const medvault_master_key,
    provider_id: *const c_char,
    password: *const u8,
    password_len: usize,
    kdf: *const medvault_password_kdf,
    out: *mut medvault_bytes,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (key, provider, password, kdf, out) = unsafe {
            (
                handle(key, "key")?,
                text(provider_id, "provider_id")?,
                input(password, password_len, "password")?,
                kdf.as_ref().copied(),
                empty_output(out, "out")?,
            )
        };
        let kdf = match kdf {
            Some(kdf) => kdf.to_rust()?,
            None => PasswordKdf::default(),
        };
        let file = keyfile::lock(&key.key, &parse_provider(provider)?, password, kdf)?;
        put(out, file)
    })
}

/// Unlocks a key file with `password`. `provider_id_out`, if not NULL, receives the
/// provider id the file belongs to (UTF-8 text in an empty `medvault_bytes`).
///
/// # Safety
/// `file` has `file_len` bytes, `password` `password_len` bytes; `out` is writable;
/// `provider_id_out` NULL or an empty `medvault_bytes`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_key_file_unlock(
    file: *const u8,
    file_len: usize,
    password: *const u8,
    password_len: usize,
    out: *mut *mut medvault_master_key,
    provider_id_out: *mut medvault_bytes,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (file, password, out) = unsafe {
            (
                input(file, file_len, "file")?,
                input(password, password_len, "password")?,
                output(out, "out")?,
            )
        };
        let provider_out = if provider_id_out.is_null() {
            None
        } else {
            // SAFETY: non-NULL and a `medvault_bytes` (contract).
            Some(unsafe { empty_output(provider_id_out, "provider_id_out") }?)
        };
        let unlocked = keyfile::unlock(file, password)?;
        if let Some(provider_out) = provider_out {
            put(provider_out, unlocked.provider.as_str().as_bytes().to_vec())?;
        }
        *out = into_handle(medvault_master_key {
            key: unlocked.master_key,
        });
        Ok(())
    })
}

/// Derives the key of patient `patient` (`patient_len` bytes, for example a mobile
/// number) at `provider_id` in key generation `generation`.
///
/// # Safety
/// `master` live; `provider_id` NUL-terminated; `patient` has `patient_len` bytes;
/// `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_patient_key_derive(
    master: *const medvault_master_key,
    provider_id: *const c_char,
    patient: *const u8,
    patient_len: usize,
    generation: u32,
    out: *mut *mut medvault_patient_key,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (master, provider, patient, out) = unsafe {
            (
                handle(master, "master")?,
                text(provider_id, "provider_id")?,
                input(patient, patient_len, "patient")?,
                output(out, "out")?,
            )
        };
        let key = master.key.patient_key(
            &parse_provider(provider)?,
            &parse_patient(patient)?,
            generation,
        );
        *out = into_handle(medvault_patient_key { key });
        Ok(())
    })
}

/// Frees (and wipes) a patient key. NULL is ignored.
///
/// # Safety
/// `key` must be NULL or a live patient key, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_patient_key_free(key: *mut medvault_patient_key) {
    // SAFETY: NULL or live, freed once (contract).
    ffi_value!((), { unsafe { free_handle(key) } })
}
