//! What the fuzz targets share with `examples/fuzz_seeds.rs`: the fixtures' secrets.
#![allow(dead_code)]

use std::sync::LazyLock;

use medvault::{DecryptionKey, Identity, MasterKey, PatientId, PatientKey, ProviderId, SigningKey};

pub const MASTER: [u8; 32] = [0x42; 32];
pub const PROVIDER: &str = "fuzz-lab";
pub const PATIENT: &str = "fuzz-patient";
pub const PASSWORD: &[u8] = b"fuzz";
pub const NOW: u64 = 1_800_000_000;

pub const SEALED_RECORD: &[u8] = include_bytes!("../fixtures/sealed_record.bin");
pub const KEY_FILE: &[u8] = include_bytes!("../fixtures/key_file.bin");
pub const MANIFEST: &[u8] = include_bytes!("../fixtures/manifest.bin");
pub const RESPONSE: &[u8] = include_bytes!("../fixtures/response.bin");
pub const REQUEST: &[u8] = include_bytes!("../fixtures/request.bin");
pub const GRANT: &[u8] = include_bytes!("../fixtures/grant.bin");

/// The only plaintexts ever sealed under the fixtures' keys.
pub const PLAINTEXTS: &[&[u8]] = &[
    b"HbA1c 7.9 % (LOINC 4548-4); continue metformin 500 mg twice daily. Diabetes follow-up in 3 months; check renal function and potassium before the next visit.",
    b"Lipid panel: LDL 3.1 mmol/L; start atorvastatin; diabetes",
];

pub static PATIENT_KEY: LazyLock<PatientKey> = LazyLock::new(|| {
    MasterKey::from_bytes(MASTER).patient_key(
        &ProviderId::new(PROVIDER).unwrap(),
        &PatientId::new(PATIENT).unwrap(),
        0,
    )
});

fn identity(sign: &str, enc: &str) -> Identity {
    Identity::new(SigningKey::from_pkcs8_pem(sign).unwrap(), DecryptionKey::from_pkcs8_pem(enc).unwrap()).unwrap()
}

pub static PROVIDER_KEYS: LazyLock<Identity> = LazyLock::new(|| {
    identity(
        include_str!("../../tests/data/keys/provider-a-sign.pem"),
        include_str!("../../tests/data/keys/provider-a-enc.pem"),
    )
});

pub static DOCTOR: LazyLock<Identity> = LazyLock::new(|| {
    identity(
        include_str!("../../tests/data/keys/doctor-sign.pem"),
        include_str!("../../tests/data/keys/doctor-enc.pem"),
    )
});
