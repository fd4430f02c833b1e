//! Password-protected key files: round trips, wrong passwords, damage, unknown versions.

mod common;

use medvault::Error;
use medvault::keyfile::{self, PasswordKdf};

/// Cheapest parameters the format accepts, to keep the many unlocks below fast.
const FAST_ARGON2: PasswordKdf = PasswordKdf::Argon2id {
    memory_kib: 8 * 1024,
    iterations: 1,
    parallelism: 1,
};
const FAST_PBKDF2: PasswordKdf = PasswordKdf::Pbkdf2Sha256 {
    iterations: 100_000,
};

/// A key file for master key 1 at provider "lab" under password "pw".
fn sample_file(kdf: PasswordKdf) -> Vec<u8> {
    keyfile::lock(&common::master(1), &common::provider("lab"), b"pw", kdf).unwrap()
}

#[test]
fn round_trip_with_default_and_fips_kdfs() {
    let master = common::master(9);
    let provider = common::provider("st-mary-hospital");
    for kdf in [
        PasswordKdf::default(),
        PasswordKdf::PBKDF2_DEFAULT,
        FAST_ARGON2,
        FAST_PBKDF2,
    ] {
        let file = keyfile::lock(&master, &provider, "pässwörd 🔑".as_bytes(), kdf).unwrap();
        let unlocked = keyfile::unlock(&file, "pässwörd 🔑".as_bytes()).unwrap();
        assert_eq!(unlocked.master_key.expose_secret(), master.expose_secret());
        assert_eq!(unlocked.provider, provider);
        assert_eq!(unlocked.kdf, kdf);
        assert_eq!(keyfile::inspect(&file).unwrap(), (provider.clone(), kdf));
        // Fresh salt and nonce every time.
        assert_ne!(
            file,
            keyfile::lock(&master, &provider, "pässwörd 🔑".as_bytes(), kdf).unwrap()
        );
    }
}

#[test]
fn wrong_password_is_wrong_password() {
    let file = keyfile::lock(
        &common::master(1),
        &common::provider("lab"),
        b"hunter2",
        FAST_ARGON2,
    )
    .unwrap();
    for wrong in [&b"hunter3"[..], b"Hunter2", b"hunter2 ", b"", b"h"] {
        assert!(
            matches!(keyfile::unlock(&file, wrong), Err(Error::WrongPassword)),
            "{wrong:?}"
        );
    }
    let file = keyfile::lock(
        &common::master(1),
        &common::provider("lab"),
        b"hunter2",
        FAST_PBKDF2,
    )
    .unwrap();
    assert!(matches!(
        keyfile::unlock(&file, b"hunter3"),
        Err(Error::WrongPassword)
    ));
}

#[test]
fn every_damaged_byte_is_detected() {
    let file = sample_file(FAST_ARGON2);
    for pos in 0..file.len() {
        let mut bad = file.clone();
        bad[pos] ^= 0x01;
        let err = keyfile::unlock(&bad, b"pw").expect_err(&format!("byte {pos}"));
        let ok = match pos {
            0..4 => matches!(err, Error::Malformed { .. }),
            4 => matches!(err, Error::UnsupportedVersion { .. }),
            5 => matches!(err, Error::UnsupportedAlgorithm { .. }),
            _ => matches!(err, Error::Corrupt { .. }),
        };
        assert!(ok, "byte {pos}: {err:?}");
    }
}

#[test]
fn truncation_and_trailing_bytes_are_rejected() {
    let file = sample_file(FAST_PBKDF2);
    for len in 0..file.len() {
        let err = keyfile::unlock(&file[..len], b"pw").expect_err(&format!("len {len}"));
        // Cut inside the preamble or before a checksum's worth of bytes: truncated;
        // otherwise the checksum no longer matches.
        assert!(
            matches!(err, Error::Truncated { .. } | Error::Corrupt { .. }),
            "len {len}: {err:?}"
        );
        assert_eq!(
            matches!(err, Error::Truncated { .. }),
            len < 6 + 32,
            "len {len}: {err:?}"
        );
    }
    let mut long = file.clone();
    long.push(0);
    assert!(matches!(
        keyfile::unlock(&long, b"pw"),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn unknown_version_and_algorithm_are_refused() {
    let file = sample_file(FAST_ARGON2);
    let mut v2 = file.clone();
    v2[4] = 2;
    assert!(matches!(
        keyfile::unlock(&v2, b"pw"),
        Err(Error::UnsupportedVersion { version: 2, .. })
    ));
    let mut alg9 = file.clone();
    alg9[5] = 9;
    assert!(matches!(
        keyfile::unlock(&alg9, b"pw"),
        Err(Error::UnsupportedAlgorithm { algorithm: 9, .. })
    ));
    assert!(keyfile::inspect(b"garbage").is_err());
}

#[test]
fn hostile_parameters_are_refused_before_any_work() {
    // A file whose checksum is right but whose Argon2 memory is 64 GiB: refused, not run.
    use sha2::{Digest, Sha256};
    let file = sample_file(FAST_ARGON2);
    let mut bad = file[..file.len() - 32].to_vec();
    bad[6..10].copy_from_slice(&(64u32 * 1024 * 1024).to_be_bytes());
    assert!(matches!(
        keyfile::unlock(&[&bad[..], &[0; 32]].concat(), b"pw"),
        Err(Error::Corrupt { .. })
    ));
    let sum = Sha256::digest(&bad);
    bad.extend_from_slice(&sum);
    assert!(matches!(
        keyfile::unlock(&bad, b"pw"),
        Err(Error::Malformed { .. })
    ));
}

#[test]
fn weak_or_empty_inputs_are_invalid_arguments() {
    let master = common::master(1);
    let provider = common::provider("lab");
    assert!(matches!(
        keyfile::lock(&master, &provider, b"", FAST_ARGON2),
        Err(Error::InvalidArgument(_))
    ));
    for kdf in [
        PasswordKdf::Pbkdf2Sha256 { iterations: 1000 },
        PasswordKdf::Argon2id {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        PasswordKdf::Argon2id {
            memory_kib: 8192,
            iterations: 0,
            parallelism: 1,
        },
    ] {
        assert!(
            matches!(
                keyfile::lock(&master, &provider, b"pw", kdf),
                Err(Error::InvalidArgument(_))
            ),
            "{kdf:?}"
        );
    }
}
