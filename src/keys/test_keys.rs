//! Fixed RSA identities for the crate's own tests (`tests/data/keys`, generated once
//! with OpenSSL): generating 3072-bit keys in every test would take seconds each.

use std::sync::OnceLock;

use super::identity::{DecryptionKey, Identity, SigningKey};

fn load(signing: &str, decryption: &str) -> Identity {
    Identity::new(
        SigningKey::from_pkcs8_pem(signing).expect("test signing key"),
        DecryptionKey::from_pkcs8_pem(decryption).expect("test decryption key"),
    )
    .expect("distinct test keys")
}

/// A provider's identity.
pub(crate) fn provider_a() -> &'static Identity {
    static KEY: OnceLock<Identity> = OnceLock::new();
    KEY.get_or_init(|| {
        load(
            include_str!("../../tests/data/keys/provider-a-sign.pem"),
            include_str!("../../tests/data/keys/provider-a-enc.pem"),
        )
    })
}

/// Another provider's identity.
pub(crate) fn provider_b() -> &'static Identity {
    static KEY: OnceLock<Identity> = OnceLock::new();
    KEY.get_or_init(|| {
        load(
            include_str!("../../tests/data/keys/provider-b-sign.pem"),
            include_str!("../../tests/data/keys/provider-b-enc.pem"),
        )
    })
}
