//! The paper's two flowcharts, step by step — the place to start reading medvault code.
//!
//! **DataOwner**: enters a mobile number (the patient) and a keyword, and uploads one
//! text file, encrypted on her side. **DataUser**: enters the owner's mobile number and
//! the keyword, sees only ciphertext, requests access, receives a grant (where the paper
//! mails a key), then opens the file and saves it.
//!
//! ```text
//! cargo run --example owner_and_user -- [--mobile +15550100] [--keyword diabetes]
//!                                       [--file notes.txt] [--save-to DIR]
//! ```

use std::error::Error;
use std::path::PathBuf;

use medvault::{
    AccessRequest, Cloud, Combine, Grant, Identity, MasterKey, PatientId, Provider, ProviderId,
    Requester, Scope,
};

const SAMPLE: &str = "2026-11-02 Endocrinology follow-up.\n\
Type 2 diabetes, HbA1c 7.9 %. Continue metformin 1000 mg twice daily.\n";

fn main() -> Result<(), Box<dyn Error>> {
    let mut mobile = "+15550100".to_owned();
    let mut keyword = "diabetes".to_owned();
    let mut file: Option<PathBuf> = None;
    let mut save_to: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--mobile" => mobile = value,
            "--keyword" => keyword = value,
            "--file" => file = Some(value.into()),
            "--save-to" => save_to = Some(value.into()),
            _ => return Err(format!("unknown argument {flag}").into()),
        }
    }
    let content = match &file {
        Some(path) => std::fs::read(path)?,
        None => SAMPLE.as_bytes().to_vec(),
    };
    let workspace = tempfile::tempdir()?;
    let save_to = save_to.unwrap_or_else(|| workspace.path().join("downloads"));

    // The cloud: a directory store. It will hold ciphertext and encrypted indexes only.
    let cloud = Cloud::open(workspace.path().join("cloud"))?;

    // ---------------------------------------------------------------- DataOwner
    // 1. Register: a master key for records (kept in a key file in real use) and an
    //    RSA identity that signs her uploads and answers access requests, published in
    //    the cloud directory.
    let owner_identity = Identity::generate()?;
    let mut owner = Provider::new(
        ProviderId::new("data-owner")?,
        MasterKey::generate()?,
        owner_identity.signing.clone(),
    );
    cloud.register_provider(owner.id().clone(), owner_identity.public())?;
    println!(
        "DataOwner 1. registered as {:?} with the cloud",
        owner.id().as_str()
    );

    // 2. Enter the mobile number and the keyword.
    let patient = PatientId::new(&mobile)?;
    println!("DataOwner 2. mobile number {mobile}, keyword {keyword:?}");

    // 3. Encrypt the file on her side and upload it with its encrypted index entry: the
    //    signed batch first (it commits to the record), then the record.
    let record = owner.add_record(&patient, &content, &[&keyword])?;
    let record_id = record.id;
    cloud.ingest(owner.finish_at(cloud.manifest().next_epoch(owner.id()))?)?;
    cloud.put_record(record.bytes)?;
    println!(
        "DataOwner 3. uploaded {} B of text as an encrypted record {record_id} and one index entry",
        content.len()
    );

    // ---------------------------------------------------------------- DataUser
    // 1. Register: an RSA identity (the grant will be sealed to it).
    let user_identity = Identity::generate()?;
    let mut user = Requester::new();
    println!("DataUser  1. registered (RSA-3072 key pair)");

    // 2. Enter the owner's mobile number and the keyword. Without a grant there is no
    //    key to search with, and what the cloud holds is ciphertext.
    let sealed = cloud
        .record(owner.id(), record_id)?
        .ok_or("the cloud lost the record")?;
    let preview: String = sealed
        .iter()
        .skip(60)
        .take(24)
        .map(|b| format!("{b:02x}"))
        .collect();
    println!(
        "DataUser  2. looks for {mobile} / {keyword:?}: no key yet; the cloud's file is {} B of ciphertext ({preview}…)",
        sealed.len()
    );
    match user.open_record(Some(&patient), &sealed) {
        Err(e) => println!("             opening it fails: {e}"),
        Ok(_) => return Err("opened without a grant".into()),
    }

    // 3. Request access, signed, with the mobile number sealed to the owner.
    let now = now_unix();
    let owner_keys = cloud
        .provider_keys(owner.id())
        .ok_or("owner not in the directory")?;
    let (request, pending) = AccessRequest::create(
        &user_identity,
        "DataUser",
        owner.id(),
        &owner_keys.encryption,
        Scope::Patient(patient.clone()),
        "follow-up consultation",
        now,
    )?;
    let request_id = cloud.submit_request(request.to_bytes())?;
    println!("DataUser  3. sent an access request through the cloud");

    // The cloud admin approves (seeing no mobile number), the owner grants.
    cloud.decide_request(request_id, true)?;
    for request in cloud.approved_requests(owner.id()) {
        let opened = request.open(&owner_identity.decryption)?;
        println!(
            "DataOwner 4. request from {:?} for {} approved; granting",
            opened.requester_name,
            opened.scope.patient().as_bytes().escape_ascii()
        );
        let key = owner.key_for_scope(&opened.scope, None)?;
        let grant = Grant::issue(&owner_identity, &opened, key, now, 30 * 86_400)?;
        cloud.post_grant(grant.to_bytes())?;
    }

    // 4. The grant arrives (the paper mails the key): checked, opened with her key.
    for grant in cloud.fetch_grants(&user_identity.public().encryption.fingerprint()) {
        user.accept_grant(&grant, &pending, &owner_keys.verifying, &user_identity, now)?;
    }
    println!("DataUser  4. received and opened the sealed grant");

    // 5. Search with the keyword, decrypt, save.
    let query = user.query(&patient, &[&keyword], Combine::And, &cloud.manifest())?;
    let results = user.open(&query, &cloud.search(query.query())?)?;
    std::fs::create_dir_all(&save_to)?;
    for provider in &results.providers {
        for found in &provider.records {
            let path = save_to.join(format!("{}.txt", found.id));
            std::fs::write(&path, &found.plaintext)?;
            println!(
                "DataUser  5. found and decrypted {} B, saved to {}",
                found.plaintext.len(),
                path.display()
            );
            if found.plaintext.as_slice() != content.as_slice() {
                return Err("the saved file differs from the uploaded one".into());
            }
        }
    }
    if results.record_count() != 1 {
        return Err(format!("expected one file, found {}", results.record_count()).into());
    }
    println!("The saved file is identical to the one the DataOwner uploaded.");
    Ok(())
}

/// The system clock in unix seconds.
fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}
