//! The lab module's decryptors (comparison only) on hostile bytes: `openssl enc` files
//! for every cipher, chunked RSA and hybrid RSA files. Property: never a panic; a
//! wrong-length or mangled input is a typed error.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use medvault::lab::{self, LabCipher};

fn key() -> &'static medvault::DecryptionKey {
    static KEY: OnceLock<medvault::DecryptionKey> = OnceLock::new();
    KEY.get_or_init(|| {
        medvault::DecryptionKey::from_pkcs8_pem(include_str!("../../tests/data/keys/provider-a-enc.pem"))
            .unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    match selector % 7 {
        n @ 0..=4 => {
            let cipher = LabCipher::ALL[n as usize];
            if let Ok(plain) = lab::pbe_decrypt(cipher, b"pw", 1, body) {
                // Whatever decrypts re-encrypts under the same salt to the same bytes.
                let salt: [u8; 8] = body[8..16].try_into().unwrap();
                let again = lab::PbeKey::derive(cipher, b"pw", salt, 1)
                    .unwrap()
                    .encrypt(&plain)
                    .unwrap();
                assert_eq!(again, body);
            }
        }
        5 => {
            let _ = lab::rsa_decrypt_chunked(key(), body);
        }
        _ => {
            let _ = lab::hybrid_decrypt(key(), body);
        }
    }
});
