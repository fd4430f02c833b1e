//! medvault demo: a provider seals a clinical note and a DICOM image on its side,
//! keeps its master key in a password-protected key file, and opens both again.
//!
//! `cargo run --release --example demo`

use std::error::Error;
use std::io::{Read, Write};
use std::time::Instant;

use medvault::keyfile::{self, PasswordKdf};
use medvault::{
    MasterKey, Opener, PatientId, ProviderId, RecordHeader, RecordId, Sealer, open, seal,
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
    println!("done in {:.2?}", started.elapsed());
    Ok(())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
