//! RSA identities: a party's signing and decryption keys, and their public halves.

use std::ffi::c_char;

use super::bytes::{empty_output, medvault_bytes, put};
use super::keys::MEDVAULT_FINGERPRINT_LEN;
use super::status::medvault_status;
use super::{
    check_out, ffi_status, ffi_value, free_handle, handle, input, into_handle, output, text,
    write_array,
};
use crate::keys::identity::{
    DecryptionKey, EncryptionKey, Identity, PublicIdentity, SigningKey, VerifyingKey,
};

/// A party's private keys (RSA-PSS signing, RSA-OAEP decryption). Wiped when freed.
/// Immutable: may be shared between threads.
pub struct medvault_identity {
    pub(crate) identity: Identity,
}

/// The public half of an identity: what others pin and send to. Immutable: may be
/// shared between threads.
pub struct medvault_public_identity {
    pub(crate) public: PublicIdentity,
}

/// Generates an identity of two fresh RSA key pairs of `bits` bits (2048 to 8192;
/// 3072 recommended). Takes about a second per key at 3072 bits.
///
/// # Safety
/// `out` must be writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_identity_generate(
    bits: u32,
    out: *mut *mut medvault_identity,
) -> medvault_status {
    ffi_status!({
        // SAFETY: writable (contract).
        let out = unsafe { output(out, "out") }?;
        let identity = Identity::generate_with_bits(bits as usize)?;
        *out = into_handle(medvault_identity { identity });
        Ok(())
    })
}

/// Imports an identity from two PKCS#8 PEM private keys (NUL-terminated), encrypted
/// under `password` if it is not NULL (`password_len` bytes).
///
/// # Safety
/// The PEMs NUL-terminated; `password` NULL or `password_len` bytes; `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_identity_from_pem(
    signing_pem: *const c_char,
    decryption_pem: *const c_char,
    password: *const u8,
    password_len: usize,
    out: *mut *mut medvault_identity,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (signing, decryption, out) = unsafe {
            (
                text(signing_pem, "signing_pem")?,
                text(decryption_pem, "decryption_pem")?,
                output(out, "out")?,
            )
        };
        let identity = if password.is_null() {
            Identity::new(
                SigningKey::from_pkcs8_pem(signing)?,
                DecryptionKey::from_pkcs8_pem(decryption)?,
            )?
        } else {
            // SAFETY: non-NULL with `password_len` bytes (contract).
            let password = unsafe { input(password, password_len, "password") }?;
            Identity::new(
                SigningKey::from_pkcs8_encrypted_pem(signing, password)?,
                DecryptionKey::from_pkcs8_encrypted_pem(decryption, password)?,
            )?
        };
        *out = into_handle(medvault_identity { identity });
        Ok(())
    })
}

/// Exports the two private keys as PKCS#8 PEM text, encrypted under `password` unless
/// it is NULL. Store them as carefully as a master key.
///
/// # Safety
/// `identity` live; `password` NULL or `password_len` bytes; the outputs empty
/// `medvault_bytes`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_identity_to_pem(
    identity: *const medvault_identity,
    password: *const u8,
    password_len: usize,
    signing_pem: *mut medvault_bytes,
    decryption_pem: *mut medvault_bytes,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (identity, signing_out, decryption_out) = unsafe {
            (
                handle(identity, "identity")?,
                empty_output(signing_pem, "signing_pem")?,
                empty_output(decryption_pem, "decryption_pem")?,
            )
        };
        let identity = &identity.identity;
        let (signing, decryption) = if password.is_null() {
            (
                identity.signing.to_pkcs8_pem()?,
                identity.decryption.to_pkcs8_pem()?,
            )
        } else {
            // SAFETY: non-NULL with `password_len` bytes (contract).
            let password = unsafe { input(password, password_len, "password") }?;
            (
                identity.signing.to_pkcs8_encrypted_pem(password)?,
                identity.decryption.to_pkcs8_encrypted_pem(password)?,
            )
        };
        put(signing_out, signing.as_bytes().to_vec())?;
        put(decryption_out, decryption.as_bytes().to_vec())
    })
}

/// The public half of `identity`.
///
/// # Safety
/// `identity` live; `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_identity_public(
    identity: *const medvault_identity,
    out: *mut *mut medvault_public_identity,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (identity, out) = unsafe { (handle(identity, "identity")?, output(out, "out")?) };
        *out = public_handle(identity.identity.public());
        Ok(())
    })
}

/// Frees (and wipes) an identity. NULL is ignored.
///
/// # Safety
/// `identity` must be NULL or live, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_identity_free(identity: *mut medvault_identity) {
    // SAFETY: NULL or live, freed once (contract).
    ffi_value!((), { unsafe { free_handle(identity) } })
}

pub(crate) fn public_handle(public: PublicIdentity) -> *mut medvault_public_identity {
    into_handle(medvault_public_identity { public })
}

/// Imports a public identity from two SPKI PEM public keys (NUL-terminated).
///
/// # Safety
/// The PEMs NUL-terminated; `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_public_identity_from_pem(
    verifying_pem: *const c_char,
    encryption_pem: *const c_char,
    out: *mut *mut medvault_public_identity,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (verifying, encryption, out) = unsafe {
            (
                text(verifying_pem, "verifying_pem")?,
                text(encryption_pem, "encryption_pem")?,
                output(out, "out")?,
            )
        };
        let public = PublicIdentity {
            verifying: VerifyingKey::from_spki_pem(verifying)?,
            encryption: EncryptionKey::from_spki_pem(encryption)?,
        };
        *out = public_handle(public);
        Ok(())
    })
}

/// Exports the two public keys as SPKI PEM text.
///
/// # Safety
/// `public` live; the outputs empty `medvault_bytes`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_public_identity_to_pem(
    public: *const medvault_public_identity,
    verifying_pem: *mut medvault_bytes,
    encryption_pem: *mut medvault_bytes,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (public, verifying_out, encryption_out) = unsafe {
            (
                handle(public, "public")?,
                empty_output(verifying_pem, "verifying_pem")?,
                empty_output(encryption_pem, "encryption_pem")?,
            )
        };
        put(
            verifying_out,
            public.public.verifying.to_spki_pem().into_bytes(),
        )?;
        put(
            encryption_out,
            public.public.encryption.to_spki_pem().into_bytes(),
        )
    })
}

/// Writes the fingerprint (SHA-256 of the SPKI DER) of the encryption key, the one
/// grants are addressed to, to `out` (`MEDVAULT_FINGERPRINT_LEN` bytes).
///
/// # Safety
/// `public` live; `out` 32 writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_public_identity_fingerprint(
    public: *const medvault_public_identity,
    out: *mut u8,
) -> medvault_status {
    ffi_status!({
        // SAFETY: live or NULL (contract).
        let public = unsafe { handle(public, "public") }?;
        check_out(out, "out")?;
        let fingerprint: [u8; MEDVAULT_FINGERPRINT_LEN] = public.public.encryption.fingerprint();
        // SAFETY: checked non-NULL; 32 writable bytes (contract).
        unsafe { write_array(out, &fingerprint) };
        Ok(())
    })
}

/// Frees a public identity. NULL is ignored.
///
/// # Safety
/// `public` must be NULL or live, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_public_identity_free(public: *mut medvault_public_identity) {
    // SAFETY: NULL or live, freed once (contract).
    ffi_value!((), { unsafe { free_handle(public) } })
}
