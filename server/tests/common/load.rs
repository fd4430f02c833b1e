//! Many clients at once against one server: the load test, the SIGKILL test and the
//! server bench share this. Each client is a provider of its own (an account, a
//! provider id, a patient) that seals, indexes, uploads and searches; one doctor holds
//! a grant from each, so what a client uploaded is checked by searching and opening it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use medvault::remote::Role;
use medvault::{
    CloudService, Combine, Grant, MasterKey, PatientId, Provider, ProviderId, RemoteCloud,
    Requester,
};
use sha2::{Digest, Sha256};

pub use super::now;
use super::{ADMIN_PASSWORD, PASSWORD, Server, approved_grant, doctor_identity, hex, lab_identity};

/// A record the server acknowledged: it must be there, byte for byte, ever after.
#[derive(Clone, Debug)]
pub struct Acknowledged {
    pub client: usize,
    pub provider: ProviderId,
    pub record: medvault::RecordId,
    pub sealed_sha256: [u8; 32],
    pub plaintext_sha256: [u8; 32],
}

/// One client: its provider (keys and index state), its session, and the doctor's
/// requester holding this provider's grant.
pub struct Client {
    pub index: usize,
    pub provider: Provider,
    pub patient: PatientId,
    pub cloud: RemoteCloud,
    pub doctor_cloud: RemoteCloud,
    pub doctor: Requester,
    pub grant: Grant,
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Registers `count` provider clients named `{prefix}-{i}` and the doctor (once per
/// server), and has each provider grant the doctor its patient.
pub fn clients(server: &Server, prefix: &str, count: usize) -> Vec<Client> {
    let lab_keys = lab_identity();
    let doctor_keys = doctor_identity();
    let fingerprint = doctor_keys.public().encryption.fingerprint();
    let _ = medvault::RemoteCloud::register_account(
        &server.url,
        &server.ca,
        &medvault::remote::NewAccount {
            account: "dr-load".to_owned(),
            password: PASSWORD.to_owned(),
            role: Role::Requester,
            fingerprint: Some(hex(&fingerprint)),
        },
    );
    let admin = server.connect("admin", ADMIN_PASSWORD).unwrap();
    (0..count)
        .map(|index| {
            let name = format!("{prefix}-{index}");
            server.register(&name, Role::Provider, None);
            let id = ProviderId::new(&name).unwrap();
            let cloud = server.connect(&name, PASSWORD).unwrap();
            cloud
                .register_provider(id.clone(), lab_keys.public())
                .unwrap();
            let mut seed = [0u8; 32];
            seed[..name.len().min(32)].copy_from_slice(&name.as_bytes()[..name.len().min(32)]);
            let provider = Provider::new(
                id.clone(),
                MasterKey::from_bytes(seed),
                lab_keys.signing.clone(),
            );
            let patient = PatientId::new(format!("+1555{index:07}")).unwrap();
            let doctor_cloud = server.connect("dr-load", PASSWORD).unwrap();
            let (grant, pending) =
                approved_grant(&doctor_cloud, &admin, &cloud, &provider, &patient, 86_400);
            cloud.post_grant(grant.to_bytes()).unwrap();
            let mut doctor = Requester::new();
            doctor
                .trust_provider(id, lab_keys.public().verifying.clone())
                .unwrap();
            doctor
                .accept_grant(
                    &grant,
                    &pending,
                    &lab_keys.public().verifying,
                    &doctor_keys,
                    now(),
                )
                .unwrap();
            Client {
                index,
                provider,
                patient,
                cloud,
                doctor_cloud,
                doctor,
                grant,
            }
        })
        .collect()
}

/// A 1 KiB clinical note, different for every (client, batch, n).
pub fn note(client: usize, batch: u64, n: usize) -> Vec<u8> {
    let mut text = format!(
        "client {client} batch {batch} note {n}: type 2 diabetes, HbA1c 7.{n} %, metformin 500 mg. "
    )
    .into_bytes();
    while text.len() < 1024 {
        text.extend_from_slice(b"Follow-up in three months; diet and exercise counselling given. ");
    }
    text.truncate(1024);
    text
}

/// An image-sized record: `len` pseudo-random bytes (a DICOM body compresses no
/// better).
pub fn image(client: usize, batch: u64, len: usize) -> Vec<u8> {
    let mut state = (client as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ batch;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// What a run of [`drive`] did.
#[derive(Default)]
pub struct Report {
    pub notes: u64,
    pub images: u64,
    pub batches: u64,
    pub searches: u64,
    pub search_latencies: Vec<Duration>,
    pub errors: Vec<String>,
    pub acknowledged: Vec<Acknowledged>,
}

/// Settings of [`drive`].
pub struct Load {
    pub duration: Duration,
    pub notes_per_batch: usize,
    /// Every how many batches a client adds an image (0: never).
    pub image_every: u64,
    pub image_bytes: usize,
    /// Whether each batch is followed by a search that must find exactly its notes.
    pub search: bool,
    /// Whether a batch's notes go up in one request (`POST /v1/records/batch`) rather
    /// than one request each.
    pub notes_together: bool,
}

/// Runs every client in its own thread for `load.duration`: batches of notes (and now
/// and then an image), each ingested then uploaded, then searched for and opened.
pub fn drive(clients: &mut [Client], load: &Load) -> Report {
    let report = Mutex::new(Report::default());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for client in clients.iter_mut() {
            let report = &report;
            scope.spawn(move || {
                let mut batch: u64 = 0;
                while started.elapsed() < load.duration {
                    let outcome = one_batch(client, batch, load);
                    let mut report = report.lock().unwrap();
                    match outcome {
                        Ok(done) => {
                            report.batches += 1;
                            report.notes += done.notes;
                            report.images += done.images;
                            report.acknowledged.extend(done.acknowledged);
                            if let Some(latency) = done.search {
                                report.searches += 1;
                                report.search_latencies.push(latency);
                            }
                        }
                        Err(e) => {
                            report
                                .errors
                                .push(format!("client {}: batch {batch}: {e}", client.index));
                            return;
                        }
                    }
                    batch += 1;
                }
            });
        }
    });
    report.into_inner().unwrap()
}

struct Done {
    notes: u64,
    images: u64,
    acknowledged: Vec<Acknowledged>,
    search: Option<Duration>,
}

fn one_batch(client: &mut Client, batch: u64, load: &Load) -> Result<Done, String> {
    let marker = format!("batch{batch}");
    let mut sealed = Vec::new();
    for n in 0..load.notes_per_batch {
        let text = note(client.index, batch, n);
        let record = client
            .provider
            .add_record(&client.patient, &text, &["diabetes", &marker])
            .map_err(|e| e.to_string())?;
        sealed.push((record, sha256(&text)));
    }
    let with_image = load.image_every > 0 && batch.is_multiple_of(load.image_every);
    if with_image {
        let bytes = image(client.index, batch, load.image_bytes);
        let record = client
            .provider
            .add_record(&client.patient, &bytes, &["dicom"])
            .map_err(|e| e.to_string())?;
        sealed.push((record, sha256(&bytes)));
    }
    let signed = client.provider.finish().map_err(|e| e.to_string())?;
    client
        .cloud
        .ingest_bytes(&signed.to_bytes())
        .map_err(|e| format!("ingest: {e}"))?;
    let mut acknowledged = Vec::new();
    let mut one_by_one = &sealed[..];
    if load.notes_together && load.notes_per_batch > 0 {
        let (notes, rest) = sealed.split_at(load.notes_per_batch);
        let bytes: Vec<&[u8]> = notes.iter().map(|(r, _)| &r.bytes[..]).collect();
        client
            .cloud
            .put_records(&bytes)
            .map_err(|e| format!("upload of {} notes: {e}", bytes.len()))?;
        acknowledged.extend(notes.iter().map(|(record, plaintext_sha256)| Acknowledged {
            client: client.index,
            provider: client.provider.id().clone(),
            record: record.id,
            sealed_sha256: sha256(&record.bytes),
            plaintext_sha256: *plaintext_sha256,
        }));
        one_by_one = rest;
    }
    for (record, plaintext_sha256) in one_by_one {
        client
            .cloud
            .put_record_from(&mut &record.bytes[..])
            .map_err(|e| format!("upload: {e}"))?;
        acknowledged.push(Acknowledged {
            client: client.index,
            provider: client.provider.id().clone(),
            record: record.id,
            sealed_sha256: sha256(&record.bytes),
            plaintext_sha256: *plaintext_sha256,
        });
    }
    let search = if load.search {
        let started = Instant::now();
        let manifest = client.doctor_cloud.manifest().map_err(|e| e.to_string())?;
        let query = client
            .doctor
            .query(&client.patient, &[marker.as_str()], Combine::Or, &manifest)
            .map_err(|e| e.to_string())?;
        let response = client
            .doctor_cloud
            .search_bytes(&query.query().to_bytes())
            .map_err(|e| format!("search: {e}"))?;
        let results = client
            .doctor
            .open(&query, &response)
            .map_err(|e| format!("open: {e}"))?;
        let latency = started.elapsed();
        let mut found: Vec<[u8; 32]> = results
            .providers
            .iter()
            .flat_map(|p| &p.records)
            .map(|r| sha256(&r.plaintext))
            .collect();
        let mut expected: Vec<[u8; 32]> = sealed
            .iter()
            .take(load.notes_per_batch)
            .map(|(_, digest)| *digest)
            .collect();
        found.sort();
        expected.sort();
        if found != expected {
            return Err(format!(
                "search for {marker} found {} of {} notes",
                found.len(),
                expected.len()
            ));
        }
        Some(latency)
    } else {
        None
    };
    Ok(Done {
        notes: load.notes_per_batch as u64,
        images: with_image as u64,
        acknowledged,
        search,
    })
}

/// Checks that every acknowledged record is stored byte for byte and opens for the
/// doctor (through `clients[i].doctor`), using `threads` sessions at once; the
/// problems found.
pub fn verify(
    server: &Server,
    clients: &[Client],
    acknowledged: &[Acknowledged],
    threads: usize,
) -> Vec<String> {
    let problems = Mutex::new(Vec::new());
    let chunk = acknowledged.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        for part in acknowledged.chunks(chunk) {
            let problems = &problems;
            scope.spawn(move || {
                let cloud = server.connect("dr-load", PASSWORD).unwrap();
                for ack in part {
                    let client = &clients[ack.client];
                    let mut bytes = Vec::new();
                    let problem = match cloud.record_to(&ack.provider, ack.record, &mut bytes) {
                        Ok(Some(_)) if sha256(&bytes) != ack.sealed_sha256 => {
                            Some("differs".to_owned())
                        }
                        Ok(Some(_)) => {
                            match client.doctor.open_record(Some(&client.patient), &bytes) {
                                Ok(plain) if sha256(&plain) == ack.plaintext_sha256 => None,
                                Ok(_) => Some("opens to other bytes".to_owned()),
                                Err(e) => Some(format!("does not open: {e}")),
                            }
                        }
                        Ok(None) => Some("missing".to_owned()),
                        Err(e) => Some(format!("download: {e}")),
                    };
                    if let Some(problem) = problem {
                        problems.lock().unwrap().push(format!(
                            "{} {}: {problem}",
                            ack.provider.as_str(),
                            ack.record
                        ));
                    }
                }
            });
        }
    });
    problems.into_inner().unwrap()
}

/// The `p`-th percentile (0..=100) of `latencies`.
pub fn percentile(latencies: &mut [Duration], p: usize) -> Duration {
    latencies.sort();
    if latencies.is_empty() {
        return Duration::ZERO;
    }
    latencies[(latencies.len() - 1) * p / 100]
}
