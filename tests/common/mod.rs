//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod corpus;
pub mod counting_alloc;

use std::sync::OnceLock;

use medvault::{
    Cloud, Combine, DecryptionKey, Identity, MasterKey, PatientId, PatientKey, Provider,
    ProviderId, Requester, SigningKey,
};

/// A fixed master key, so failures reproduce.
pub fn master(seed: u8) -> MasterKey {
    MasterKey::from_bytes([seed; 32])
}

pub fn provider(name: &str) -> ProviderId {
    ProviderId::new(name).unwrap()
}

fn load_identity(sign: &str, enc: &str) -> Identity {
    Identity::new(
        SigningKey::from_pkcs8_pem(sign).unwrap(),
        DecryptionKey::from_pkcs8_pem(enc).unwrap(),
    )
    .unwrap()
}

/// A fixed provider identity (`tests/data/keys`): generating RSA keys per test would
/// take seconds. Every provider of the tests signs with it unless a test needs two.
pub fn identity() -> &'static Identity {
    static ID: OnceLock<Identity> = OnceLock::new();
    ID.get_or_init(|| {
        load_identity(
            include_str!("../data/keys/provider-a-sign.pem"),
            include_str!("../data/keys/provider-a-enc.pem"),
        )
    })
}

/// A second fixed identity: another provider's, or an attacker's.
pub fn other_identity() -> &'static Identity {
    static ID: OnceLock<Identity> = OnceLock::new();
    ID.get_or_init(|| {
        load_identity(
            include_str!("../data/keys/provider-b-sign.pem"),
            include_str!("../data/keys/provider-b-enc.pem"),
        )
    })
}

/// A provider `name` with `master`, signing with [`identity`].
pub fn new_provider(name: &str, master: MasterKey) -> Provider {
    Provider::new(provider(name), master, identity().signing.clone())
}

/// Registers `name` with [`identity`] in `cloud` (idempotent).
pub fn register(cloud: &Cloud, name: &str) {
    cloud
        .register_provider(provider(name), identity().public())
        .unwrap();
}

/// Pins [`identity`] for `name` in `requester`.
pub fn trust(requester: &mut Requester, name: &str) {
    requester
        .trust_provider(provider(name), identity().public().verifying)
        .unwrap();
}

pub fn patient_key(seed: u8, provider_name: &str, patient: &str, generation: u32) -> PatientKey {
    master(seed).patient_key(
        &provider(provider_name),
        &PatientId::new(patient).unwrap(),
        generation,
    )
}

/// Deterministic pseudo-random bytes (xorshift), for inputs that must not compress.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A clinical note of about `len` bytes, generated (no real patient).
pub fn clinical_note(len: usize) -> Vec<u8> {
    const LINES: &[&str] = &[
        "Patient seen in clinic for follow-up of type 2 diabetes mellitus.",
        "HbA1c 7.9 % (LOINC 4548-4), up from 7.2 % three months ago.",
        "Blood pressure 138/86 mmHg, pulse 78, BMI 31.4.",
        "Continue metformin 1000 mg twice daily (RxNorm 861004).",
        "Start lisinopril 10 mg daily for hypertension (SNOMED 38341003).",
        "Foot exam: monofilament sensation intact bilaterally.",
        "Counselled on diet and exercise; referred to dietitian.",
        "Return in 3 months with fasting lipid panel.",
    ];
    let mut out = String::new();
    let mut i = 0;
    while out.len() < len {
        out.push_str(&format!("[{i:06}] {}\n", LINES[i % LINES.len()]));
        i += 1;
    }
    out.truncate(len);
    out.into_bytes()
}

pub fn data_file(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// A cloud on the directory store in `dir` that knows `names` under [`identity`]
/// (registered on first open, already known, and so accepted again, after that).
pub fn open_cloud(dir: impl AsRef<std::path::Path>, names: &[&str]) -> Cloud {
    let cloud = Cloud::open(dir).unwrap();
    for name in names {
        register(&cloud, name);
    }
    cloud
}

/// How many records `doctor` finds and opens for `keyword` of `patient` at `cloud`, on
/// the cloud's current manifest (every check of the answer included).
pub fn records_found(
    doctor: &Requester,
    cloud: &Cloud,
    patient: &PatientId,
    keyword: &str,
) -> usize {
    let query = doctor
        .query(patient, &[keyword], Combine::Or, &cloud.manifest())
        .unwrap();
    doctor
        .open(&query, &cloud.search(query.query()).unwrap())
        .unwrap()
        .record_count()
}
