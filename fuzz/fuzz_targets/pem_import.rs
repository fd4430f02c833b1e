//! PEM and DER key import: private (plain and encrypted) and public keys.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = medvault::VerifyingKey::from_spki_der(data);
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = medvault::SigningKey::from_pkcs8_pem(text);
    let _ = medvault::DecryptionKey::from_pkcs8_encrypted_pem(text, b"pw");
    let _ = medvault::EncryptionKey::from_spki_pem(text);
});
