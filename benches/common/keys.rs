//! The benches' fixed provider identity (`tests/data/keys`): generating RSA keys per
//! bench would dominate the set-up.
#![allow(dead_code)]

use std::sync::OnceLock;

use medvault::{Cloud, DecryptionKey, Identity, ProviderId, Requester, SigningKey};

pub fn identity() -> &'static Identity {
    static ID: OnceLock<Identity> = OnceLock::new();
    ID.get_or_init(|| {
        Identity::new(
            SigningKey::from_pkcs8_pem(include_str!("../../tests/data/keys/provider-a-sign.pem"))
                .unwrap(),
            DecryptionKey::from_pkcs8_pem(include_str!("../../tests/data/keys/provider-a-enc.pem"))
                .unwrap(),
        )
        .unwrap()
    })
}

pub fn signing() -> SigningKey {
    identity().signing.clone()
}

/// Registers `name` under the bench identity (idempotent).
pub fn register(cloud: &Cloud, name: &str) {
    cloud
        .register_provider(ProviderId::new(name).unwrap(), identity().public())
        .unwrap();
}

/// Pins the bench identity for `name`.
pub fn trust(requester: &mut Requester, name: &str) {
    requester
        .trust_provider(
            ProviderId::new(name).unwrap(),
            identity().public().verifying,
        )
        .unwrap();
}
