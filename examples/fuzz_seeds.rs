//! Writes the fuzzers' fixtures and seed corpora.
//!
//! `cargo run --features lab --example fuzz_seeds` — writes `fuzz/corpus/<target>/` from the fixtures in
//! `fuzz/fixtures/` (creating the fixtures first if they are missing).
//! `cargo run --features lab --example fuzz_seeds -- --regenerate-fixtures` — makes new fixtures.
//!
//! Fixtures are the valid objects the decryptor targets hold their property against:
//! a mutated fixture must never open unless its bytes equal the fixture's.

use std::fs;
use std::path::{Path, PathBuf};

use medvault::keyfile::{self, PasswordKdf};
use medvault::{
    AccessRequest, Cloud, Combine, DecryptionKey, Grant, Identity, IndexBatch, MasterKey,
    PatientId, Provider, ProviderId, ProviderState, Requester, Scope, SigningKey,
    seal_with_chunk_size,
};

/// The secrets the fuzz targets share with this program (see fuzz/fuzz_targets/common.rs).
const MASTER: [u8; 32] = [0x42; 32];
const PROVIDER: &str = "fuzz-lab";
const PATIENT: &str = "fuzz-patient";
const PASSWORD: &[u8] = b"fuzz";
const NOW: u64 = 1_800_000_000;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn key(name: &str) -> String {
    fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/keys/{name}.pem")),
    )
    .unwrap()
}

fn identity(prefix: &str) -> Identity {
    Identity::new(
        SigningKey::from_pkcs8_pem(&key(&format!("{prefix}-sign"))).unwrap(),
        DecryptionKey::from_pkcs8_pem(&key(&format!("{prefix}-enc"))).unwrap(),
    )
    .unwrap()
}

fn plaintexts() -> Vec<Vec<u8>> {
    vec![
        b"HbA1c 7.9 % (LOINC 4548-4); continue metformin 500 mg twice daily. Diabetes follow-up in 3 months; check renal function and potassium before the next visit.".to_vec(),
        b"Lipid panel: LDL 3.1 mmol/L; start atorvastatin; diabetes".to_vec(),
    ]
}

fn make_fixtures(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    let master = MasterKey::from_bytes(MASTER);
    let provider = ProviderId::new(PROVIDER).unwrap();
    let patient = PatientId::new(PATIENT).unwrap();
    let patient_key = master.patient_key(&provider, &patient, 0);

    let record = patient_key.record_key(medvault::RecordId::from_bytes([7; 16]));
    fs::write(
        dir.join("sealed_record.bin"),
        seal_with_chunk_size(&record, &plaintexts()[0], 64).unwrap(),
    )
    .unwrap();

    let kdf = PasswordKdf::Pbkdf2Sha256 {
        iterations: 100_000,
    };
    fs::write(
        dir.join("key_file.bin"),
        keyfile::lock(&master, &provider, PASSWORD, kdf).unwrap(),
    )
    .unwrap();

    // A cloud with two epochs, one query, its response and the manifest it was built on.
    let cloud = Cloud::new();
    let lab_keys = identity("provider-a");
    cloud
        .register_provider(provider.clone(), lab_keys.public())
        .unwrap();
    let mut lab = Provider::new(provider.clone(), master.clone(), lab_keys.signing.clone());
    for text in plaintexts() {
        let rec = lab.add_record(&patient, &text, &["diabetes"]).unwrap();
        cloud.ingest(lab.finish().unwrap()).unwrap();
        cloud.put_record(rec.bytes).unwrap();
    }
    let manifest = cloud.manifest();
    let mut requester = Requester::new();
    requester
        .trust_provider(provider.clone(), lab_keys.public().verifying)
        .unwrap();
    requester.add_patient_key(patient.clone(), patient_key.clone());
    let query = requester
        .query(&patient, &["diabetes"], Combine::Or, &manifest)
        .unwrap();
    fs::write(dir.join("manifest.bin"), manifest.to_bytes()).unwrap();
    fs::write(
        dir.join("response.bin"),
        cloud.search(query.query()).unwrap().to_bytes(),
    )
    .unwrap();

    let provider_keys = identity("provider-a");
    let doctor = identity("doctor");
    let (request, _) = AccessRequest::create(
        &doctor,
        "Dr. Fuzz",
        &provider,
        &provider_keys.public().encryption,
        Scope::Patient(patient.clone()),
        "fuzzing",
        NOW,
    )
    .unwrap();
    fs::write(dir.join("request.bin"), request.to_bytes()).unwrap();
    let opened = request.open(&provider_keys.decryption).unwrap();
    let key = lab.key_for_scope(&opened.scope, None).unwrap();
    let grant = Grant::issue(&provider_keys, &opened, key, NOW, 86_400).unwrap();
    fs::write(dir.join("grant.bin"), grant.to_bytes()).unwrap();
}

fn write_corpus(target: &str, seeds: &[Vec<u8>]) {
    let dir = root().join("corpus").join(target);
    fs::create_dir_all(&dir).unwrap();
    for (i, seed) in seeds.iter().enumerate() {
        fs::write(dir.join(format!("seed-{i}")), seed).unwrap();
    }
}

/// A store's segment file, catalog, record file, record table and entry file, each
/// behind the byte that makes the `store_files` target read it as that file.
fn store_file_seeds(batch: &IndexBatch, sealed: &[u8]) -> Vec<Vec<u8>> {
    let (dir, cloud) = store_with(batch);
    cloud.put_record(sealed.to_vec()).unwrap();
    drop(cloud);
    let only_file = |sub: &str| {
        let entry = fs::read_dir(dir.path().join(sub)).unwrap().next().unwrap();
        fs::read(entry.unwrap().path()).unwrap()
    };
    let log_file = |extension: &str| {
        let name = format!("log/{PROVIDER}/00000000.{extension}");
        fs::read(dir.path().join(name)).unwrap()
    };
    vec![
        [vec![0], only_file("segments")].concat(),
        [vec![1], fs::read(dir.path().join("CATALOG")).unwrap()].concat(),
        [vec![2], only_file(&format!("records/{PROVIDER}"))].concat(),
        [vec![3], log_file("mvrt")].concat(),
        [vec![4], log_file("mvpt")].concat(),
        [vec![5], fs::read(dir.path().join("BROKER")).unwrap()].concat(),
        [vec![6], record_pack_of(batch, sealed)].concat(),
    ]
}

/// A directory store (and its directory) that has ingested `batch`.
fn store_with(batch: &IndexBatch) -> (tempfile::TempDir, Cloud) {
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::open(dir.path()).unwrap();
    cloud
        .register_provider(batch.provider().clone(), identity("provider-a").public())
        .unwrap();
    cloud.ingest(batch.clone()).unwrap();
    (dir, cloud)
}

/// The record pack a store writes for `sealed` uploaded as a batch.
fn record_pack_of(batch: &IndexBatch, sealed: &[u8]) -> Vec<u8> {
    let (dir, cloud) = store_with(batch);
    cloud.put_records(&[sealed]).unwrap();
    drop(cloud);
    let records = dir.path().join(format!("records/{PROVIDER}"));
    let entry = fs::read_dir(records).unwrap().next().unwrap();
    fs::read(entry.unwrap().path()).unwrap()
}

/// An `openssl enc` file for each lab cipher (password "pw", one iteration), a chunked
/// and a hybrid RSA file, each behind the byte that selects its decryptor.
fn lab_file_seeds() -> Vec<Vec<u8>> {
    use medvault::lab::{self, LabCipher};
    let public = DecryptionKey::from_pkcs8_pem(
        &fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/keys/provider-a-enc.pem"),
        )
        .unwrap(),
    )
    .unwrap()
    .public_key();
    let mut seeds: Vec<Vec<u8>> = LabCipher::ALL
        .iter()
        .enumerate()
        .map(|(i, c)| {
            [
                vec![i as u8],
                lab::pbe_encrypt(*c, b"pw", 1, b"HbA1c 7.9 %").unwrap(),
            ]
            .concat()
        })
        .collect();
    seeds.push(
        [
            vec![5],
            lab::rsa_encrypt_chunked(&public, b"HbA1c 7.9 %").unwrap(),
        ]
        .concat(),
    );
    seeds.push(
        [
            vec![6],
            lab::hybrid_encrypt(&public, b"HbA1c 7.9 %").unwrap(),
        ]
        .concat(),
    );
    seeds
}

fn main() {
    let fixtures = root().join("fixtures");
    if std::env::args().any(|a| a == "--regenerate-fixtures")
        || !fixtures.join("grant.bin").exists()
    {
        make_fixtures(&fixtures);
    }
    let fixture = |name: &str| fs::read(fixtures.join(name)).unwrap();
    let cloud = Cloud::new();
    let lab_keys = identity("provider-a");
    cloud
        .register_provider(ProviderId::new(PROVIDER).unwrap(), lab_keys.public())
        .unwrap();
    let mut lab = Provider::new(
        ProviderId::new(PROVIDER).unwrap(),
        MasterKey::from_bytes(MASTER),
        lab_keys.signing.clone(),
    );
    let patient = PatientId::new(PATIENT).unwrap();
    lab.add_record(&patient, b"x", &["a1", "b2", "c3", "d4", "e5"])
        .unwrap();
    // The batch also commits the fixture's sealed record, so a store takes it.
    lab.commit_record(
        medvault::RecordId::from_bytes([7; 16]),
        &fixture("sealed_record.bin")[..],
    )
    .unwrap();
    let batch: IndexBatch = lab.finish().unwrap();
    let batch_bytes = batch.to_bytes();
    cloud.ingest(batch.clone()).unwrap();
    let manifest = medvault::Manifest::from_bytes(&fixture("manifest.bin")).unwrap();
    let mut requester = Requester::new();
    requester
        .trust_provider(
            ProviderId::new(PROVIDER).unwrap(),
            lab_keys.public().verifying,
        )
        .unwrap();
    requester.add_patient_key(patient.clone(), lab.patient_key(&patient));
    let query = requester
        .query(&patient, &["diabetes", "insulin"], Combine::And, &manifest)
        .unwrap();
    let request = fixture("request.bin");
    let grant = fixture("grant.bin");

    // The stream target reads its first byte as a read size, the seal target its first
    // two bytes as split points: prefix the fixture accordingly.
    let mut stream_seed = vec![7u8];
    stream_seed.extend(fixture("sealed_record.bin"));
    write_corpus("sealed_record", &[fixture("sealed_record.bin")]);
    write_corpus("sealed_stream", &[stream_seed]);
    write_corpus(
        "seal_stream_roundtrip",
        &[
            vec![3, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
            plaintexts()[0].clone(),
        ],
    );
    write_corpus("key_file", &[fixture("key_file.bin")]);
    write_corpus("index_batch", &[batch_bytes]);
    write_corpus("manifest", &[fixture("manifest.bin")]);
    write_corpus(
        "store_files",
        &store_file_seeds(&batch, &fixture("sealed_record.bin")),
    );
    write_corpus("lab_files", &lab_file_seeds());
    write_corpus(
        "record_batch",
        &[medvault::record_batch_bytes(&[&fixture("sealed_record.bin")[..], b"note"]).unwrap()],
    );
    write_corpus("query", &[query.query().to_bytes()]);
    write_corpus("search_response", &[fixture("response.bin")]);
    write_corpus(
        "provider_state",
        &[lab.state().to_bytes(), ProviderState::default().to_bytes()],
    );
    write_corpus("access_request", std::slice::from_ref(&request));
    write_corpus("grant", std::slice::from_ref(&grant));
    write_corpus(
        "armor",
        &[
            AccessRequest::from_bytes(&request)
                .unwrap()
                .to_armor()
                .into_bytes(),
            Grant::from_bytes(&grant).unwrap().to_armor().into_bytes(),
        ],
    );
    write_corpus(
        "pem_import",
        &[
            key("doctor-sign").into_bytes(),
            identity("doctor")
                .public()
                .verifying
                .to_spki_pem()
                .into_bytes(),
        ],
    );
    println!(
        "fixtures in {}, corpora in {}",
        fixtures.display(),
        root().join("corpus").display()
    );
}
