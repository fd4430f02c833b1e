//! The paper's system end to end, on the embedded directory store: four data owners (a
//! hospital, a lab, a pharmacy and a patient) seal and index their records on their
//! side; the cloud ingests and merges their encrypted indexes without a key; a doctor
//! asks for one patient's records through the cloud, receives sealed grants, and runs
//! one query across every provider; the answer is checked against a plaintext index;
//! then the hospital rotates its keys and the old grant finds none of the new data.
//!
//! ```text
//! cargo run --release --example demo -- [--store DIR] [--seed N] [--patients N]
//!                                       [--query "diabetes AND metformin"] [--epochs N]
//! ```
//!
//! Exits 1 if the doctor's answer differs from the plaintext index in any way.

use std::collections::{BTreeMap, BTreeSet};
use std::error::Error;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use medvault::keyfile::{self, PasswordKdf};
use medvault::keyword::{field, normalize, tokenize};
use medvault::remote::{NewAccount, Role};
use medvault::{
    AccessRequest, Cloud, CloudService, Combine, DecryptionKey, Grant, Identity, MasterKey,
    PatientId, Provider, ProviderId, ProviderState, RecordId, RemoteCloud, Requester, Scope,
    Sealer, SigningKey,
};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

const HELP: &str = "\
medvault demo: the paper's system end to end on a directory store (or PostgreSQL, or a server).

usage: cargo run --release --example demo -- [options]

  --store DIR     keep the cloud's store in DIR (a second run resumes it);
                  default: a fresh temporary directory. With --cloud, DIR keeps
                  only the parties' keys and account passwords
  --store postgres://USER@HOST:PORT/DATABASE
                  keep the cloud's store in a PostgreSQL database instead (built
                  with --features postgres; a Unix socket directory goes in HOST
                  percent-encoded, e.g. postgres://postgres@%2Frun%2Fpostgresql/medvault)
  --keys DIR      where the parties' keys are kept with a PostgreSQL store
                  (default: a fresh temporary directory; a second run on the
                  same database needs the same DIR)
  --cloud URL     run every party against the medvault-server at URL, each with
                  an account of its own (registered on the first run), instead of
                  a store in this process; needs --ca and --admin-password-file
  --ca FILE       the PEM certificate(s) the server's certificate chains to
                  (its --dev-self-signed DIR/cert.pem)
  --admin-password-file FILE
                  the password of the server's admin account
  --seed N        seed of the record generator and of the demo's owner keys (default 1)
  --patients N    patients to generate (default 50)
  --query Q       the doctor's query: keywords joined by AND or by OR
                  (default \"diabetes AND metformin\")
  --epochs N      index batches per provider (default 4)
  --images DIR    where the two DICOM samples are (default: tests/data/dicom of
                  the source tree the demo was built from)
  --help          this text";

const OWNERS: [&str; 4] = [
    "st-mary-hospital",
    "city-lab",
    "corner-pharmacy",
    "patient-maria",
];
const HOSPITAL: usize = 0;
const PATIENT_OWNER: usize = 3;
const DICOM: [&str; 2] = ["SC_rgb_jpeg_dcmd.dcm", "CT_small.dcm"];

struct Args {
    /// A directory, or a PostgreSQL URL.
    store: Option<String>,
    keys: Option<PathBuf>,
    server: Option<ServerArgs>,
    seed: u64,
    patients: usize,
    query: String,
    epochs: u32,
    images: PathBuf,
}

/// `--cloud URL --ca FILE --admin-password-file FILE`.
struct ServerArgs {
    url: String,
    ca: PathBuf,
    admin_password_file: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let (mut url, mut ca, mut admin) = (None, None, None);
    let mut args = Args {
        store: None,
        keys: None,
        server: None,
        seed: 1,
        patients: 50,
        query: "diabetes AND metformin".to_owned(),
        epochs: 4,
        images: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/dicom"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--store" => args.store = Some(value()?),
            "--keys" => args.keys = Some(value()?.into()),
            "--seed" => args.seed = value()?.parse().map_err(|_| "--seed: a number")?,
            "--patients" => args.patients = value()?.parse().map_err(|_| "--patients: a number")?,
            "--query" => args.query = value()?,
            "--epochs" => args.epochs = value()?.parse().map_err(|_| "--epochs: a number")?,
            "--images" => args.images = value()?.into(),
            "--cloud" => url = Some(value()?),
            "--ca" => ca = Some(PathBuf::from(value()?)),
            "--admin-password-file" => admin = Some(PathBuf::from(value()?)),
            "--help" | "-h" => {
                println!("{HELP}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}\n\n{HELP}")),
        }
    }
    if args.patients == 0 || args.epochs == 0 {
        return Err("--patients and --epochs must be at least 1".to_owned());
    }
    args.server = match (url, ca, admin) {
        (None, None, None) => None,
        (Some(url), Some(ca), Some(admin_password_file)) => Some(ServerArgs {
            url,
            ca,
            admin_password_file,
        }),
        _ => return Err("--cloud needs --ca and --admin-password-file".to_owned()),
    };
    Ok(args)
}

/// `diabetes AND metformin` → (keywords, AND).
fn parse_query(query: &str) -> Result<(Vec<String>, Combine), String> {
    let (parts, combine): (Vec<&str>, Combine) = if query.contains(" OR ") {
        if query.contains(" AND ") {
            return Err("a query joins its keywords with AND or with OR, not both".to_owned());
        }
        (query.split(" OR ").collect(), Combine::Or)
    } else {
        (query.split(" AND ").collect(), Combine::And)
    };
    let keywords: Vec<String> = parts.iter().map(|k| normalize(k)).collect();
    if keywords.iter().any(|k| k.is_empty()) {
        return Err(format!("empty keyword in query {query:?}"));
    }
    Ok((keywords, combine))
}

// ------------------------------------------------------------------ the generator

/// Deterministic xorshift, so `--seed` reproduces every record.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A condition: name, SNOMED CT code, drug, RxNorm code, lab test, LOINC code, unit.
type Condition = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);
const CONDITIONS: [Condition; 6] = [
    (
        "diabetes",
        "44054006",
        "metformin",
        "861004",
        "HbA1c",
        "4548-4",
        "%",
    ),
    (
        "hypertension",
        "38341003",
        "lisinopril",
        "314076",
        "potassium",
        "2823-3",
        "mmol/L",
    ),
    (
        "asthma",
        "195967001",
        "albuterol",
        "745679",
        "eosinophils",
        "711-2",
        "10^9/L",
    ),
    (
        "hyperlipidemia",
        "55822004",
        "atorvastatin",
        "617312",
        "LDL cholesterol",
        "13457-7",
        "mg/dL",
    ),
    (
        "depression",
        "35489007",
        "sertraline",
        "312940",
        "TSH",
        "3016-3",
        "mIU/L",
    ),
    (
        "kidney disease",
        "709044004",
        "furosemide",
        "310429",
        "creatinine",
        "2160-0",
        "umol/L",
    ),
];

/// One record as its owner writes it: content, keywords, and which batch it goes in.
struct Record {
    owner: usize,
    patient: usize,
    id: RecordId,
    text: String,
    keywords: Vec<String>,
    epoch: u32,
    /// A DICOM file from the repository's test data, sealed as an image record.
    image: Option<&'static str>,
}

/// The patient's mobile number: the paper identifies patients by it.
fn mobile(patient: usize) -> PatientId {
    PatientId::new(format!(
        "+1555{:07}",
        1_000_000 + patient * 7_919 % 9_000_000
    ))
    .unwrap()
}

fn record_id(seed: u64, owner: usize, n: usize) -> RecordId {
    let digest = Sha256::digest(format!("medvault demo record {seed} {owner} {n}"));
    RecordId::from_bytes(digest[..16].try_into().unwrap())
}

fn keywords_of(text: &str, codes: &[(&str, &str)]) -> Vec<String> {
    let mut keywords = tokenize(text);
    keywords.extend(codes.iter().map(|(f, v)| field(f, v).unwrap()));
    keywords
}

fn generate(seed: u64, patients: usize, epochs: u32) -> Vec<Record> {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut records = Vec::new();
    let mut counters = [0usize; 4];
    let mut push = |records: &mut Vec<Record>,
                    rng: &mut Rng,
                    owner,
                    patient,
                    text: String,
                    keywords,
                    image| {
        counters[owner] += 1;
        records.push(Record {
            owner,
            patient,
            id: record_id(seed, owner, counters[owner]),
            text,
            keywords,
            epoch: rng.below(u64::from(epochs)) as u32,
            image,
        });
    };
    for patient in 0..patients {
        // Patient 0 (Maria, who also uploads her own notes) has diabetes for sure.
        let mut conditions: Vec<usize> = (0..1 + rng.below(3))
            .map(|_| rng.below(6) as usize)
            .collect();
        if patient == 0 {
            conditions.insert(0, 0);
        }
        conditions.sort_unstable();
        conditions.dedup();
        for &c in &conditions {
            let (name, snomed, drug, rxnorm, test, loinc, unit) = CONDITIONS[c];
            let day = 1 + rng.below(28);
            let note = format!(
                "2026-10-{day:02} Clinic visit. Assessment: {name} (SNOMED {snomed}). Plan: start {drug}, review in {} weeks.",
                2 + rng.below(10)
            );
            let kw = keywords_of(&note, &[("snomed", snomed), ("type", "condition")]);
            push(&mut records, &mut rng, HOSPITAL, patient, note, kw, None);
            let value = format!("{}.{}", 1 + rng.below(9), rng.below(10));
            let result = format!(
                "2026-10-{day:02} {test} {value} {unit} (LOINC {loinc}); known {name}, on {drug}."
            );
            let kw = keywords_of(&result, &[("loinc", loinc), ("type", "observation")]);
            push(&mut records, &mut rng, 1, patient, result, kw, None);
            let doses = [
                [500, 1000],
                [10, 20],
                [90, 180],
                [20, 40],
                [50, 100],
                [20, 40],
            ][c];
            let rx = format!(
                "Rx {drug} {} {}, {} daily (RxNorm {rxnorm}). Indication: {name}.",
                doses[rng.below(2) as usize],
                if c == 2 { "mcg" } else { "mg" },
                ["once", "twice"][rng.below(2) as usize]
            );
            let kw = keywords_of(&rx, &[("rxnorm", rxnorm), ("type", "medication")]);
            push(&mut records, &mut rng, 2, patient, rx, kw, None);
        }
    }
    // Maria's own notes, uploaded by her as a data owner.
    for text in [
        "My diabetes diary: fasting sugar 7.8 this morning, took metformin with breakfast.",
        "Felt dizzy after the walk; blood pressure 150/95 at the pharmacy.",
        "Diabetes education class: learned to adjust carbs; metformin upsets my stomach.",
    ] {
        let kw = keywords_of(text, &[]);
        push(
            &mut records,
            &mut rng,
            PATIENT_OWNER,
            0,
            text.to_owned(),
            kw,
            None,
        );
    }
    // Two real DICOM images for Maria, from the hospital's radiology.
    for (file, modality) in DICOM.iter().zip(["OT", "CT"]) {
        let text = format!("DICOM image {file} (modality {modality})");
        let kw = vec![
            "radiology".to_owned(),
            "dicom".to_owned(),
            field("modality", modality).unwrap(),
        ];
        push(&mut records, &mut rng, HOSPITAL, 0, text, kw, Some(*file));
    }
    records
}

/// (owner, patient, keyword) → records that have it: the plaintext index the encrypted
/// answer is checked against.
type PlainIndex = BTreeMap<(usize, usize, String), BTreeSet<RecordId>>;

fn plain_index(records: &[Record]) -> PlainIndex {
    let mut index = PlainIndex::new();
    for r in records {
        for k in &r.keywords {
            index
                .entry((r.owner, r.patient, normalize(k)))
                .or_default()
                .insert(r.id);
        }
    }
    index
}

// ------------------------------------------------------------------ helpers

fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("  {prefix:<34} [{bar:30}] {pos}/{len} {elapsed}")
            .unwrap()
            .progress_chars("=> "),
    );
    bar.set_prefix(what.to_owned());
    bar
}

/// The demo's owner keys come from `--seed` so that a resumed run has them; real
/// owners keep theirs in key files (`medvault::keyfile`), as the hospital shows.
fn owner_key(seed: u64, owner: usize) -> MasterKey {
    let digest = Sha256::digest(format!("medvault demo owner key {seed} {}", OWNERS[owner]));
    MasterKey::from_bytes(digest.into())
}

/// A sealed record waiting for its batch: in memory, or a file for a large image.
enum Sealed {
    Bytes(Vec<u8>),
    File(PathBuf),
}

/// Maps an I/O error to the library's error naming the file.
fn file_error(
    action: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> medvault::Error {
    let path = path.to_owned();
    move |source| medvault::Error::File {
        action,
        path,
        source,
    }
}

/// The owners' and the doctor's RSA-3072 identities (owners first): generated on the
/// first run and kept beside the store (`<store>/demo-identities/`, a demo's
/// convenience; real deployments keep private keys in their own key stores), so that a
/// resumed run signs with the keys its earlier batches were signed with.
fn identities(store: &std::path::Path) -> Result<Vec<Identity>, Box<dyn Error>> {
    let dir = store.join("demo-identities");
    std::fs::create_dir_all(&dir)?;
    let names: Vec<String> = OWNERS
        .iter()
        .map(|o| o.to_string())
        .chain(["doctor".to_owned()])
        .collect();
    names
        .par_iter()
        .map(|name| -> Result<Identity, medvault::Error> {
            let (sign, enc) = (
                dir.join(format!("{name}-sign.pem")),
                dir.join(format!("{name}-enc.pem")),
            );
            if sign.exists() && enc.exists() {
                let read = |path: &PathBuf| {
                    std::fs::read_to_string(path).map_err(file_error("read", path))
                };
                return Identity::new(
                    SigningKey::from_pkcs8_pem(&read(&sign)?)?,
                    DecryptionKey::from_pkcs8_pem(&read(&enc)?)?,
                );
            }
            let identity = Identity::generate()?;
            std::fs::write(&sign, identity.signing.to_pkcs8_pem()?.as_bytes())
                .map_err(file_error("write", &sign))?;
            std::fs::write(&enc, identity.decryption.to_pkcs8_pem()?.as_bytes())
                .map_err(file_error("write", &enc))?;
            Ok(identity)
        })
        .collect::<Result<_, _>>()
        .map_err(Into::into)
}

// ------------------------------------------------------------------ the parties' clouds

/// How each party reaches the cloud: one store in this process that all of them share,
/// or a medvault-server where each owner, the doctor and the admin log in to an account
/// of their own. The story below goes through [`CloudService`] either way.
enum Clouds {
    Local(Cloud),
    Server {
        owners: Vec<RemoteCloud>,
        doctor: RemoteCloud,
        admin: RemoteCloud,
    },
}

impl Clouds {
    fn owner(&self, o: usize) -> &dyn CloudService {
        match self {
            Clouds::Local(cloud) => cloud,
            Clouds::Server { owners, .. } => &owners[o],
        }
    }

    fn doctor(&self) -> &dyn CloudService {
        match self {
            Clouds::Local(cloud) => cloud,
            Clouds::Server { doctor, .. } => doctor,
        }
    }

    fn admin(&self) -> &dyn CloudService {
        match self {
            Clouds::Local(cloud) => cloud,
            Clouds::Server { admin, .. } => admin,
        }
    }

    /// A look at the index on the cloud's disk (only a local store can show it).
    fn index_labels(&self, limit: usize) -> Result<Vec<[u8; 16]>, medvault::Error> {
        match self {
            Clouds::Local(cloud) => cloud.index_labels(limit),
            Clouds::Server { .. } => Ok(Vec::new()),
        }
    }

    /// Logs every party in to the server: owners and the doctor register on the first
    /// run (with random passwords kept in `dir/demo-accounts`), the admin is the
    /// server operator's account.
    fn connect(
        server: &ServerArgs,
        dir: &std::path::Path,
        identities: &[Identity],
    ) -> Result<Clouds, Box<dyn Error>> {
        let ca = std::fs::read(&server.ca).map_err(file_error("read", &server.ca))?;
        let accounts = dir.join("demo-accounts");
        std::fs::create_dir_all(&accounts)?;
        let login = |name: &str, role: Role, fingerprint: Option<String>| {
            let file = accounts.join(format!("{name}.password"));
            if !file.exists() {
                let mut random = [0u8; 16];
                getrandom::fill(&mut random).map_err(|_| "no system randomness")?;
                std::fs::write(&file, hex(&random)).map_err(file_error("write", &file))?;
                let registered = RemoteCloud::register_account(
                    &server.url,
                    &ca,
                    &NewAccount {
                        account: name.to_owned(),
                        password: hex(&random),
                        role,
                        fingerprint,
                    },
                );
                if let Err(e) = registered {
                    let _ = std::fs::remove_file(&file);
                    return Err(format!("registering {name} on {}: {e}", server.url).into());
                }
            }
            let password = std::fs::read_to_string(&file).map_err(file_error("read", &file))?;
            RemoteCloud::connect(&server.url, &ca, name, password.trim())
                .map_err(|e| -> Box<dyn Error> { format!("logging in as {name}: {e}").into() })
        };
        let (doctor_keys, _) = identities.split_last().ok_or("no identities")?;
        let owners = OWNERS
            .iter()
            .map(|name| login(name, Role::Provider, None))
            .collect::<Result<Vec<_>, _>>()?;
        let doctor = login(
            "dr-grey",
            Role::Requester,
            Some(hex(&doctor_keys.public().encryption.fingerprint())),
        )?;
        let admin_password = std::fs::read_to_string(&server.admin_password_file)
            .map_err(file_error("read", &server.admin_password_file))?;
        let admin = RemoteCloud::connect(
            &server.url,
            &ca,
            "admin",
            admin_password.lines().next().unwrap_or_default(),
        )
        .map_err(|e| format!("logging in as admin: {e}"))?;
        Ok(Clouds::Server {
            owners,
            doctor,
            admin,
        })
    }
}

fn is_postgres_url(store: &str) -> bool {
    store.starts_with("postgres://") || store.starts_with("postgresql://")
}

#[cfg(feature = "postgres")]
fn open_postgres(url: &str) -> Result<Cloud, Box<dyn Error>> {
    Ok(Cloud::from(medvault::PgStore::open(url)?))
}

#[cfg(not(feature = "postgres"))]
fn open_postgres(_: &str) -> Result<Cloud, Box<dyn Error>> {
    Err("a PostgreSQL store needs the demo built with --features postgres".into())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

fn main() {
    match run() {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("demo failed: {e}");
            std::process::exit(1);
        }
    }
}

fn run() -> Result<bool, Box<dyn Error>> {
    let args = parse_args()?;
    let (keywords, combine) = parse_query(&args.query)?;
    let started = Instant::now();
    let mut timings: Vec<(&str, Duration)> = Vec::new();
    let mut phase = Instant::now();
    let mut lap = |name: &'static str, timings: &mut Vec<(&str, Duration)>| {
        timings.push((name, phase.elapsed()));
        phase = Instant::now();
    };

    // 1. The cloud: a directory store, a PostgreSQL store, or a medvault-server.
    let scratch;
    let postgres = args.store.as_deref().filter(|s| is_postgres_url(s));
    let store = match (&args.store, postgres, &args.keys) {
        (_, Some(_), Some(keys)) => keys.clone(),
        (Some(dir), None, _) => PathBuf::from(dir),
        _ => {
            scratch = tempfile::tempdir()?;
            scratch.path().to_owned()
        }
    };
    std::fs::create_dir_all(&store).map_err(file_error("create the store directory", &store))?;
    let spinner = ProgressBar::new_spinner();
    spinner.set_message("RSA-3072 identities for the owners and the doctor");
    spinner.enable_steady_tick(Duration::from_millis(120));
    let identities = identities(&store)?;
    spinner.finish_and_clear();
    let (doctor_keys, owner_keys) = identities.split_last().unwrap();
    let clouds = match &args.server {
        None => Clouds::Local(match postgres {
            Some(url) => open_postgres(url)?,
            None => Cloud::open(&store)?,
        }),
        Some(server) => Clouds::connect(server, &store, &identities)?,
    };
    let resumed = !clouds.admin().manifest()?.providers.is_empty();
    match &args.server {
        // The URL is not printed: it may hold a password.
        None if postgres.is_some() => println!(
            "1. The cloud: a PostgreSQL store{}; the parties' keys in {}",
            if resumed { " (resumed)" } else { "" },
            store.display()
        ),
        None => println!(
            "1. The cloud: a directory store in {}{}",
            store.display(),
            if resumed { " (resumed)" } else { "" }
        ),
        Some(server) => println!(
            "1. The cloud: medvault-server at {}{}; the owners, the doctor and the admin each logged in to an account of their own",
            server.url,
            if resumed { " (resumed)" } else { "" }
        ),
    }

    // 2. Four data owners, each with its own keys (a master key, and an RSA identity
    //    that signs its uploads and grants), and the generated records.
    let records = generate(args.seed, args.patients, args.epochs);
    let mut owners: Vec<Provider> = Vec::with_capacity(OWNERS.len());
    for (o, keys) in owner_keys.iter().enumerate() {
        let id = ProviderId::new(OWNERS[o])?;
        // The directory is first-come: each owner registers before anything else.
        let cloud = clouds.owner(o);
        cloud.register_provider(id.clone(), keys.public())?;
        // A resumed run finds its position in its own signed log, never in an
        // unsigned number.
        let state = ProviderState::default().reconcile(
            &cloud.manifest()?,
            &id,
            &keys.public().verifying,
        )?;
        owners.push(Provider::resume(
            id,
            owner_key(args.seed, o),
            keys.signing.clone(),
            state,
        ));
    }
    let key_file = keyfile::lock(
        &owner_key(args.seed, HOSPITAL),
        owners[HOSPITAL].id(),
        b"hospital passphrase",
        PasswordKdf::default(),
    )?;
    keyfile::unlock(&key_file, b"hospital passphrase")?;
    println!(
        "2. Data owners: {} — {} patients identified by mobile number, {} records \
         (notes with SNOMED, lab results with LOINC, prescriptions with RxNorm, 2 DICOM images); \
         the hospital's master key sits in a {}-byte Argon2id key file; each owner signs its uploads with its RSA-3072 identity",
        OWNERS.join(", "),
        args.patients,
        records.len(),
        key_file.len()
    );
    lap("generate", &mut timings);

    // 3. Each owner seals on its side, uploads, and indexes over several epochs; the
    //    cloud ingests every batch and merges the indexes without a key.
    if resumed {
        println!("3. Upload: already in the store, skipped");
    } else {
        let upload = bar(records.len() as u64, "3. sealing and uploading");
        let images = tempfile::tempdir()?;
        for epoch in 0..args.epochs {
            for (o, owner) in owners.iter_mut().enumerate() {
                let batch: Vec<&Record> = records
                    .iter()
                    .filter(|r| r.owner == o && r.epoch == epoch)
                    .collect();
                // Sealing runs in parallel; each sealed record is then committed to the
                // owner's batch, which is signed and uploaded before the records (the
                // cloud stores only records a signed batch committed).
                let sealed: Vec<Sealed> = batch
                    .par_iter()
                    .map(|r| -> Result<Sealed, medvault::Error> {
                        let key = owner.record_key(&mobile(r.patient), r.id);
                        match r.image {
                            None => Ok(Sealed::Bytes(medvault::seal(&key, r.text.as_bytes())?)),
                            Some(file) => {
                                // Large files stream through a Sealer to disk and from
                                // there into the store, never whole in memory.
                                let path = images.path().join(r.id.to_string());
                                let sample = args.images.join(file);
                                // (`--images DIR` says where the samples are.)
                                let mut image = std::fs::File::open(&sample)
                                    .map_err(file_error("open the DICOM sample", &sample))?;
                                let sealed = std::fs::File::create(&path)
                                    .map_err(file_error("create", &path))?;
                                let mut sealer =
                                    Sealer::new(std::io::BufWriter::new(sealed), &key)?;
                                std::io::copy(&mut image, &mut sealer)?;
                                sealer.finish()?.flush()?;
                                Ok(Sealed::File(path))
                            }
                        }
                    })
                    .collect::<Result<_, _>>()?;
                for (r, sealed) in batch.iter().zip(&sealed) {
                    match sealed {
                        Sealed::Bytes(bytes) => owner.commit_record(r.id, bytes.as_slice())?,
                        Sealed::File(path) => owner.commit_record(
                            r.id,
                            std::fs::File::open(path).map_err(file_error("open", path))?,
                        )?,
                    }
                    owner.index(&mobile(r.patient), r.id, &r.keywords)?;
                }
                // Built only for the epoch the cloud expects, and only if the owner's
                // saved state agrees: no epoch is ever built twice.
                let cloud = clouds.owner(o);
                let next = cloud.manifest()?.next_epoch(owner.id());
                cloud.ingest_bytes(&owner.finish_at(next)?.to_bytes())?;
                // Storing runs in parallel (each upload waits for its fsync).
                sealed
                    .into_par_iter()
                    .try_for_each(|sealed| -> Result<(), medvault::Error> {
                        match sealed {
                            Sealed::Bytes(bytes) => {
                                cloud.put_record_from(&mut bytes.as_slice())?;
                            }
                            Sealed::File(path) => {
                                let file = std::fs::File::open(&path)
                                    .map_err(file_error("open", &path))?;
                                cloud.put_record_from(&mut std::io::BufReader::new(file))?;
                            }
                        }
                        upload.inc(1);
                        Ok(())
                    })?;
            }
            clouds.admin().merge()?;
        }
        upload.finish_and_clear();
        println!(
            "3. Each owner sealed its records on its side and uploaded, per epoch, a signed index batch committing to them, then the records ({} epochs); the cloud checked every signature and record digest, ingested and merged them",
            args.epochs
        );
    }
    let manifest = clouds.admin().manifest()?;
    println!(
        "   the cloud holds {} records and {} index entries in {} merged segment(s), from {} batches; it has no key",
        clouds.admin().admin_view()?.files.len(),
        manifest.segments.iter().sum::<u64>(),
        manifest.segments.len(),
        manifest
            .providers
            .iter()
            .map(|p| p.epochs.len())
            .sum::<usize>()
    );
    lap("seal, upload, index, merge", &mut timings);

    // 4. The doctor asks for Maria's records through the cloud; the admin sees the
    //    requests and the files; each owner approves and grants.
    let maria = mobile(0);
    let now = now_unix();
    let mut pending = Vec::new();
    for owner in &owners {
        let directory_key = clouds
            .doctor()
            .provider_keys(owner.id())?
            .ok_or("owner not in the directory")?;
        let (request, p) = AccessRequest::create(
            doctor_keys,
            "Dr. Grey, endocrinology",
            owner.id(),
            &directory_key.encryption,
            Scope::Patient(maria.clone()),
            "diabetes follow-up",
            now,
        )?;
        clouds.doctor().submit_request(request.to_bytes())?;
        pending.push(p);
    }
    let view = clouds.admin().admin_view()?;
    // A kept store also holds the requests of earlier runs (the broker is durable).
    let is_pending = |r: &&medvault::RequestSummary| r.status == medvault::RequestStatus::Pending;
    println!(
        "4. The cloud admin's view: {} pending requests ({} in all), {} files",
        view.requests.iter().filter(is_pending).count(),
        view.requests.len(),
        view.files.len()
    );
    for r in view.requests.iter().filter(is_pending) {
        println!(
            "     request {}… from {:?} to {}: {:?} scope, {:?}",
            &hex(&r.id)[..8],
            r.requester_name,
            r.provider,
            r.scope,
            r.status
        );
    }
    for f in view.files.iter().take(3) {
        println!(
            "     file {} {} {} B, uploaded at {}",
            f.provider, f.record, f.size, f.uploaded_at
        );
    }
    let admin_text = format!("{view:?}");
    if contains(admin_text.as_bytes(), maria.as_bytes()) {
        return Err("the admin view shows a patient id".into());
    }
    for r in view.requests.iter().filter(is_pending) {
        clouds.admin().decide_request(r.id, true)?;
    }
    // The demo's records are of key generation 0; a resumed store may be past it.
    for (o, (owner, keys)) in owners.iter().zip(owner_keys).enumerate() {
        let cloud = clouds.owner(o);
        for request in cloud.approved_requests(owner.id())? {
            let opened = request.open(&keys.decryption)?;
            let key = owner.key_for_scope(&opened.scope, Some(0))?;
            cloud.post_grant(Grant::issue(keys, &opened, key, now, 7 * 86_400)?.to_bytes())?;
        }
    }
    let mut doctor = Requester::new();
    let mut accepted = 0;
    for grant in clouds
        .doctor()
        .fetch_grants(&doctor_keys.public().encryption.fingerprint())?
    {
        // Grants answering an earlier run's requests stay in the mailbox; this run
        // holds the pending state of its own requests only.
        let Some(p) = pending.iter().find(|p| p.id == grant.request_id()) else {
            continue;
        };
        let issuer = owner_keys[OWNERS
            .iter()
            .position(|o| o == &grant.provider().as_str())
            .ok_or("unknown issuer")?]
        .public();
        doctor.accept_grant(&grant, p, &issuer.verifying, doctor_keys, now)?;
        accepted += 1;
    }
    if accepted != OWNERS.len() {
        return Err(format!("{accepted} grants for {} requests", OWNERS.len()).into());
    }
    println!(
        "   every owner approved: the doctor holds {accepted} sealed grants, opened with her key"
    );
    lap("request, approve, grant", &mut timings);

    // 5. One query, every provider, one call.
    let manifest = clouds.doctor().manifest()?;
    let keyword_refs: Vec<&str> = keywords.iter().map(String::as_str).collect();
    let prepared = doctor.query(&maria, &keyword_refs, combine, &manifest)?;
    let query_bytes = prepared.query().to_bytes();
    let search_started = Instant::now();
    let response = clouds.doctor().search_bytes(&query_bytes)?;
    let search_time = search_started.elapsed();
    let response_bytes = response.to_bytes();
    let results = doctor.open(&prepared, &response)?;
    lap("query", &mut timings);

    // 6. Side by side: what the cloud saw, what the doctor sees; then the check.
    println!(
        "5. The doctor's query {:?} for Maria ({}), across {} providers, answered in {:.2?}",
        args.query,
        maria.as_bytes().escape_ascii(),
        OWNERS.len(),
        search_time
    );
    println!("6. What the cloud saw:");
    println!(
        "     a {} B token (starts {}…), no keyword, no phone number",
        query_bytes.len(),
        &hex(&query_bytes[..24.min(query_bytes.len())])
    );
    let (blocks, epochs): (usize, usize) = response
        .providers
        .iter()
        .flat_map(|p| p.lists.iter().flatten())
        .fold((0, 0), |(b, e), epoch| (b + epoch.blocks.len(), e + 1));
    println!(
        "     {blocks} index blocks found and decrypted, proofs for {epochs} epochs, \
         a {} B response of proofs and sealed records",
        response_bytes.len()
    );
    let labels: Vec<String> = clouds
        .index_labels(3)?
        .iter()
        .map(|l| hex(&l[..8]))
        .collect();
    if !labels.is_empty() {
        let entries: u64 = clouds.admin().manifest()?.segments.iter().sum();
        println!(
            "     index labels look like {}… ({entries} entries, all random-looking)",
            labels.join("…, "),
        );
    }
    let mut leaked = keywords
        .iter()
        .any(|k| contains(&query_bytes, k.as_bytes()) || contains(&response_bytes, k.as_bytes()));
    leaked |=
        contains(&query_bytes, maria.as_bytes()) || contains(&response_bytes, maria.as_bytes());
    leaked |= records
        .iter()
        .any(|r| r.image.is_none() && contains(&response_bytes, r.text.as_bytes()));
    if leaked {
        println!("   FAILED: the cloud saw a keyword, the phone number or plaintext");
        return Ok(false);
    }
    println!("   What the doctor sees:");
    let index = plain_index(&records);
    let mut ok = true;
    for provider in &results.providers {
        let owner = OWNERS
            .iter()
            .position(|o| *o == provider.provider.as_str())
            .ok_or("unknown provider")?;
        let sets = keywords.iter().map(|k| {
            index
                .get(&(owner, 0, k.clone()))
                .cloned()
                .unwrap_or_default()
        });
        let expected: BTreeSet<RecordId> = sets
            .reduce(|a, b| match combine {
                Combine::And => a.intersection(&b).copied().collect(),
                Combine::Or => a.union(&b).copied().collect(),
            })
            .unwrap_or_default();
        let got: BTreeSet<RecordId> = provider.records.iter().map(|r| r.id).collect();
        println!("     {} — {} record(s)", provider.provider, got.len());
        for r in &provider.records {
            let text = String::from_utf8_lossy(&r.plaintext);
            let line: String = text.chars().take(110).collect();
            println!("       {line}");
            let original = records.iter().find(|x| x.id == r.id);
            if original
                .is_none_or(|x| x.image.is_none() && x.text.as_bytes() != r.plaintext.as_slice())
            {
                ok = false;
            }
        }
        if got != expected || !provider.missing.is_empty() {
            println!(
                "       MISMATCH: the plaintext index says {} record(s)",
                expected.len()
            );
            ok = false;
        }
    }
    if !ok {
        println!("   FAILED: the answer differs from the plaintext index");
        return Ok(false);
    }
    println!(
        "   checked: every owner's signed log, every posting list proven epoch by epoch against what its owner signed, every record proven to be what its owner committed, exactly the records a plaintext index gives, each opened and identical to what its owner wrote"
    );

    // 7. Revocation: the hospital rotates its keys and uploads a new record; the
    //    doctor's grant (generation 0) finds and opens none of it.
    let hospital = &mut owners[HOSPITAL];
    let generation = hospital.rotate()?;
    let new_id = RecordId::generate()?;
    let text = "2026-11-20 Clinic visit. Assessment: diabetes, metformin stopped, insulin started.";
    let sealed = medvault::seal(&hospital.record_key(&maria, new_id), text.as_bytes())?;
    hospital.commit_record(new_id, sealed.as_slice())?;
    hospital.index(&maria, new_id, &tokenize(text))?;
    let hospital_cloud = clouds.owner(HOSPITAL);
    let next = hospital_cloud.manifest()?.next_epoch(hospital.id());
    hospital_cloud.ingest_bytes(&hospital.finish_at(next)?.to_bytes())?;
    hospital_cloud.put_record_from(&mut sealed.as_slice())?;
    let doctor_cloud = clouds.doctor();
    let prepared = doctor.query(&maria, &keyword_refs, combine, &doctor_cloud.manifest()?)?;
    let after = doctor.open(
        &prepared,
        &doctor_cloud.search_bytes(&prepared.query().to_bytes())?,
    )?;
    let found_new = after
        .providers
        .iter()
        .flat_map(|p| &p.records)
        .any(|r| r.id == new_id);
    let mut sealed_new = Vec::new();
    doctor_cloud
        .record_to(hospital.id(), new_id, &mut sealed_new)?
        .ok_or("the new record is missing")?;
    let opens = doctor.open_record(Some(&maria), &sealed_new).is_ok();
    println!(
        "7. Revocation: the hospital rotated to key generation {generation} and uploaded a new note; \
         the doctor's old grant finds it: {found_new}, opens it: {opens}; still finds the {} older records",
        after.record_count()
    );
    if found_new || opens || after.record_count() != results.record_count() {
        println!("   FAILED: the old grant reaches data sealed after the rotation");
        return Ok(false);
    }
    lap("rotate and re-query", &mut timings);

    let summary: Vec<String> = timings
        .iter()
        .map(|(n, d)| format!("{n} {:.2?}", d))
        .collect();
    println!(
        "Timing: {}; total {:.2?}",
        summary.join(", "),
        started.elapsed()
    );
    Ok(true)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The system clock in unix seconds.
fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}
