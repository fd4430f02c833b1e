//! The server under load and under SIGKILL.
//!
//! - 32 clients upload notes and images, ingest and search for a minute (bounded:
//!   `MEDVAULT_LOAD_SECONDS`, default 60): zero errors, every search finds exactly its
//!   batch; after a restart every acknowledged record and grant is there and opens.
//! - The server is killed with SIGKILL at random moments while clients upload records
//!   (one per request, or every other round a batch's notes in one request), ingest
//!   batches and post grants, 20 times (`MEDVAULT_KILLS`): after each restart
//!   nothing acknowledged is lost, and nothing half-written is visible (every file the
//!   admin sees is a whole record some client sent).

mod common;
use common::load::{self, Load};
use common::*;

use std::time::Duration;

use medvault::{CloudService, Grant};

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn thirty_two_clients_upload_and_search_and_everything_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut clients = load::clients(&server, "load", 32);
    let report = load::drive(
        &mut clients,
        &Load {
            duration: Duration::from_secs(env_number("MEDVAULT_LOAD_SECONDS", 60)),
            notes_per_batch: 8,
            image_every: 4,
            image_bytes: 512 << 10,
            search: true,
            notes_together: false,
        },
    );
    assert!(report.errors.is_empty(), "{}", report.errors.join("\n"));
    assert!(
        report.batches >= 32 && report.images >= 32,
        "too little done: {} batches",
        report.batches
    );
    let mut latencies = report.search_latencies.clone();
    println!(
        "load: {} batches, {} notes, {} images, {} searches (p50 {:?}, p99 {:?}), 0 errors",
        report.batches,
        report.notes,
        report.images,
        report.searches,
        load::percentile(&mut latencies, 50),
        load::percentile(&mut latencies, 99)
    );

    // A restart, then every acknowledged record and grant.
    drop(server);
    let server = Server::start(dir.path());
    let problems = load::verify(&server, &clients, &report.acknowledged, 8);
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems[..problems.len().min(20)].join("\n")
    );
    let doctor = server.connect("dr-load", PASSWORD).unwrap();
    let mailbox = doctor
        .fetch_grants(&doctor_identity().public().encryption.fingerprint())
        .unwrap();
    for client in &clients {
        assert!(
            mailbox.contains(&client.grant),
            "client {}'s grant is gone",
            client.index
        );
    }
}

/// xorshift: the kill moments (its seed is printed, to replay a failure).
struct Moments(u64);

impl Moments {
    fn next_millis(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

#[test]
fn sigkill_at_random_moments_loses_nothing_acknowledged_and_shows_nothing_half_written() {
    let dir = tempfile::tempdir().unwrap();
    let kills = env_number("MEDVAULT_KILLS", 20);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("kill moments seed {seed}");
    let mut moments = Moments(seed);
    let mut acknowledged = Vec::new();
    let mut all_clients = Vec::new();
    let mut acknowledged_grants: Vec<Grant> = Vec::new();
    let doctor_keys = doctor_identity();
    for round in 0..kills {
        let mut server = Server::start(dir.path());
        // Fresh clients each round (a client whose batch was cut off mid-ingest would
        // have to reconcile its epoch; that is the demo's job, not this test's).
        let clients = load::clients(&server, &format!("kill{round}"), 4);
        // Each round, a request per client is approved, and its grant posted while
        // the server may be killed.
        let doctor = server.connect("dr-load", PASSWORD).unwrap();
        let admin = server.connect("admin", ADMIN_PASSWORD).unwrap();
        let second_grants: Vec<Grant> = clients
            .iter()
            .map(|c| approved_grant(&doctor, &admin, &c.cloud, &c.provider, &c.patient, 3600).0)
            .collect();
        acknowledged_grants.extend(clients.iter().map(|c| c.grant.clone()));
        // The grants go out on sessions of their own, beside the uploads.
        let posters: Vec<_> = clients
            .iter()
            .map(|c| server.connect(c.provider.id().as_str(), PASSWORD).unwrap())
            .zip(second_grants)
            .collect();
        let mut clients = clients;
        let kill_after = Duration::from_millis(50 + moments.next_millis(700));
        let (report, posted) = std::thread::scope(|scope| {
            let grants = scope.spawn(|| {
                let mut posted = Vec::new();
                for (i, (cloud, grant)) in posters.iter().enumerate() {
                    std::thread::sleep(Duration::from_millis(20 + 37 * i as u64 % 150));
                    if cloud.post_grant(grant.to_bytes()).is_ok() {
                        posted.push(grant.clone());
                    }
                }
                posted
            });
            let uploads = scope.spawn(|| {
                load::drive(
                    &mut clients,
                    &Load {
                        duration: Duration::from_secs(3),
                        notes_per_batch: 4,
                        image_every: 3,
                        image_bytes: 256 << 10,
                        search: false,
                        // Every other round, each batch's notes in one request.
                        notes_together: round % 2 == 1,
                    },
                )
            });
            std::thread::sleep(kill_after);
            server.child.kill().unwrap(); // SIGKILL
            server.child.wait().unwrap();
            (uploads.join().unwrap(), grants.join().unwrap())
        });
        drop(server);
        let offset = all_clients.len();
        acknowledged.extend(report.acknowledged.into_iter().map(|mut ack| {
            ack.client += offset;
            ack
        }));
        acknowledged_grants.extend(posted);
        all_clients.extend(clients);

        // Restart: it opens (verifying every file), and everything acknowledged so far
        // is there.
        let server = Server::start(dir.path());
        let problems = load::verify(&server, &all_clients, &acknowledged, 4);
        assert!(
            problems.is_empty(),
            "round {round} (killed after {kill_after:?}, seed {seed}): {}",
            problems.join("\n")
        );
        let mailbox = server
            .connect("dr-load", PASSWORD)
            .unwrap()
            .fetch_grants(&doctor_keys.public().encryption.fingerprint())
            .unwrap();
        for grant in &acknowledged_grants {
            assert!(
                mailbox.contains(grant),
                "round {round}: an acknowledged grant is gone (seed {seed})"
            );
        }
        // Nothing half-written: every file the admin sees, acknowledged or not, is a
        // whole record of the size listed that opens (authenticated encryption: a torn
        // or mixed file would not).
        let admin = server.connect("admin", ADMIN_PASSWORD).unwrap();
        let doctor = server.connect("dr-load", PASSWORD).unwrap();
        for file in admin.admin_view().unwrap().files {
            let client = all_clients
                .iter()
                .find(|c| c.provider.id() == &file.provider)
                .expect("a file of a provider no client is");
            let mut bytes = Vec::new();
            let size = doctor
                .record_to(&file.provider, file.record, &mut bytes)
                .unwrap();
            assert_eq!(
                size,
                Some(file.size),
                "round {round}: {file:?} (seed {seed})"
            );
            assert!(
                client
                    .doctor
                    .open_record(Some(&client.patient), &bytes)
                    .is_ok(),
                "round {round}: {file:?} does not open (seed {seed})"
            );
        }
        drop(server);
    }
    println!(
        "{kills} kills: {} acknowledged records and {} grants all there after every restart",
        acknowledged.len(),
        acknowledged_grants.len()
    );
}
