//! medvault demo: a hospital seals a clinical note and a DICOM image on its side, keeps
//! its master key in a password-protected key file, and opens both again; then the
//! hospital and a lab index their records, the cloud merges their encrypted indexes
//! without a key, and a doctor searches both providers with one query.
//!
//! `cargo run --release --example demo`

use std::error::Error;
use std::io::{Read, Write};
use std::time::Instant;

use medvault::keyfile::{self, PasswordKdf};
use medvault::keyword::{field, tokenize};
use medvault::{
    Cloud, Combine, MasterKey, Opener, PatientId, Provider, ProviderId, RecordHeader, RecordId,
    Requester, Sealer, open, seal,
};

const NOTE: &str = "2026-11-02 Endocrinology follow-up. Type 2 diabetes mellitus (SNOMED 44054006).
HbA1c 7.9 % (LOINC 4548-4). Continue metformin 1000 mg twice daily (RxNorm 861004).";

fn main() -> Result<(), Box<dyn Error>> {
    let started = Instant::now();
    let hospital = ProviderId::new("st-mary-hospital")?;
    let patient = PatientId::new("+15550100")?;

    // 1. The provider's master key, kept in a key file under a password.
    let master = MasterKey::generate()?;
    let key_file = keyfile::lock(&master, &hospital, b"demo password", PasswordKdf::default())?;
    let master = keyfile::unlock(&key_file, b"demo password")?.master_key;
    println!(
        "key file: {} bytes (Argon2id, AES-256-EAX), unlocked again",
        key_file.len()
    );

    // 2. Seal a clinical note: one-shot, in memory.
    let patient_key = master.patient_key(&hospital, &patient, 0);
    let note_id = RecordId::generate()?;
    let sealed_note = seal(&patient_key.record_key(note_id), NOTE.as_bytes())?;
    println!(
        "note:  record {note_id}, {} B plaintext -> {} B sealed",
        NOTE.len(),
        sealed_note.len()
    );
    assert!(
        !contains(&sealed_note, b"metformin"),
        "no plaintext in the sealed bytes"
    );

    // 3. Seal a DICOM image: streaming, constant memory.
    let image_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/dicom/SC_rgb_jpeg_dcmd.dcm"
    );
    let image = std::fs::read(image_path)?;
    let image_id = RecordId::generate()?;
    let mut sealer = Sealer::new(Vec::new(), &patient_key.record_key(image_id))?;
    for piece in image.chunks(10_000) {
        sealer.write_all(piece)?;
    }
    let sealed_image = sealer.finish()?;
    let (header, _) = RecordHeader::parse(&sealed_image)?;
    println!(
        "image: record {image_id}, {} B DICOM -> {} B sealed in {} chunks of {} B",
        image.len(),
        sealed_image.len(),
        image.len().div_ceil(header.chunk_size() as usize),
        header.chunk_size()
    );

    // 4. What the cloud can read in a sealed record: only its public header.
    println!(
        "cloud sees: provider {}, record {}, key generation {}, sizes; no patient id, no text",
        header.provider(),
        header.record_id(),
        header.generation()
    );

    // 5. Open both with the patient key.
    let note = open(&patient_key, &sealed_note)?;
    assert_eq!(note, NOTE.as_bytes());
    let mut opened_image = Vec::new();
    Opener::new(&sealed_image[..], &patient_key)?.read_to_end(&mut opened_image)?;
    assert_eq!(opened_image, image);
    println!(
        "opened note ({} B) and image ({} B): identical to the originals",
        note.len(),
        opened_image.len()
    );

    // 6. A changed byte is caught.
    let mut tampered = sealed_note.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    match open(&patient_key, &tampered) {
        Err(err) => println!("tampered note rejected: {err}"),
        Ok(_) => return Err("a tampered record opened".into()),
    }

    search_across_providers(master, &patient)?;
    println!("done in {:.2?}", started.elapsed());
    Ok(())
}

/// Two providers index their records; the cloud merges; a doctor runs one query.
fn search_across_providers(
    hospital_key: MasterKey,
    patient: &PatientId,
) -> Result<(), Box<dyn Error>> {
    let cloud = Cloud::new();
    let mut hospital = Provider::new(ProviderId::new("st-mary-hospital")?, hospital_key);
    let mut lab = Provider::new(ProviderId::new("city-lab")?, MasterKey::generate()?);

    let mut keywords = tokenize(NOTE);
    keywords.push(field("code", "snomed/44054006")?);
    let note = hospital.add_record(patient, NOTE.as_bytes(), &keywords)?;
    let result = "HbA1c 7.9 % (LOINC 4548-4), on metformin; diabetes control suboptimal";
    let lab_result = lab.add_record(patient, result.as_bytes(), &tokenize(result))?;
    let other = lab.add_record(
        &PatientId::new("+15550199")?,
        b"metformin, diabetes",
        &["metformin", "diabetes"],
    )?;
    for record in [note, lab_result, other] {
        cloud.put_record(record.bytes)?;
    }
    cloud.ingest(hospital.finish()?)?;
    cloud.ingest(lab.finish()?)?;
    cloud.merge()?;
    let manifest = cloud.manifest();
    println!(
        "\ncloud: {} providers, {} merged entries, {} records; no key",
        manifest.providers.len(),
        manifest.segments.iter().sum::<u64>(),
        cloud.records().len()
    );

    // The doctor holds this patient's keys at both providers (grants deliver them).
    let mut doctor = Requester::new();
    doctor.add_patient_key(patient.clone(), hospital.patient_key(patient));
    doctor.add_patient_key(patient.clone(), lab.patient_key(patient));
    let query = doctor.query(patient, &["diabetes", "metformin"], Combine::And, &manifest)?;
    let query_bytes = query.query().to_bytes();
    let response = cloud.search_bytes(&query_bytes)?;
    println!(
        "query 'diabetes AND metformin': cloud saw a {} B token, answered {} B; no keyword, no patient id",
        query_bytes.len(),
        response.to_bytes().len()
    );
    let results = doctor.open(&query, &response)?;
    for provider in &results.providers {
        for record in &provider.records {
            println!(
                "  {}: {}",
                provider.provider,
                String::from_utf8_lossy(&record.plaintext)
                    .lines()
                    .next()
                    .unwrap_or("")
            );
        }
    }
    if results.record_count() != 2 {
        return Err(format!("expected 2 records, found {}", results.record_count()).into());
    }
    Ok(())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
