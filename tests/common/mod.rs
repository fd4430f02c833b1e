//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod corpus;
pub mod counting_alloc;

use medvault::{MasterKey, PatientId, PatientKey, ProviderId};

/// A fixed master key, so failures reproduce.
pub fn master(seed: u8) -> MasterKey {
    MasterKey::from_bytes([seed; 32])
}

pub fn provider(name: &str) -> ProviderId {
    ProviderId::new(name).unwrap()
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
