//! The PostgreSQL store under faults, on real servers: backends killed (what
//! `pg_terminate_backend` or a crashed backend does to a client) and, separately, the
//! whole cluster restarted as after a crash, each at least 20 times in the middle of
//! ingests and record uploads. Nothing acknowledged is lost, no partial batch is ever
//! visible (a store opens only if every epoch matches its signed commitment), and the
//! reopened store answers every acknowledged keyword with its record.
//!
//! `MEDVAULT_PG_FAULTS` sets the number of faults (default 20).

mod common;
#[path = "common/postgres.rs"]
mod pg;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::corpus::Rng;
use medvault::{Cloud, Error, MasterKey, PatientId, PgStore, ProviderId, RecordId, Requester};

fn faults() -> usize {
    std::env::var("MEDVAULT_PG_FAULTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20)
}

/// A cloud on `database`, retried while the server restarts (up to 60 s).
fn open(database: &str) -> Cloud {
    let started = Instant::now();
    loop {
        match PgStore::open(database) {
            Ok(store) => {
                let cloud = Cloud::from(store);
                match cloud
                    .register_provider(common::provider("city-lab"), common::identity().public())
                {
                    Ok(()) => return cloud,
                    Err(Error::Database { .. } | Error::NeedsRecovery(_)) => {}
                    Err(e) => panic!("register: {e}"),
                }
            }
            // The server is restarting, or the lock of the store just dropped is not
            // released yet.
            Err(Error::Database { .. } | Error::StoreLocked) => {}
            Err(e) => panic!("the store did not reopen: {e}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the store did not reopen in 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Errors a fault may cause; anything else fails the test.
fn fault_error(e: &Error) -> bool {
    matches!(
        e,
        Error::Database { .. } | Error::NeedsRecovery(_) | Error::StoreLocked
    )
}

/// Ingests batch after batch (each: one record with keyword `visit-N` and 300 filler
/// entries, every fifth record 3 MiB so its upload spans several rows) until `strike`
/// has struck `faults()` times, retrying each step through the faults on a reopened
/// store; then checks everything acknowledged.
fn ingest_through_faults(database: &str, strike: impl Fn(&mut Rng) -> bool + Sync) {
    let target = faults();
    let struck = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    let patient = PatientId::new("+15550100").unwrap();
    let mut lab = common::new_provider("city-lab", MasterKey::from_bytes([42; 32]));
    let mut acknowledged: Vec<(u32, RecordId, Vec<u8>)> = Vec::new();
    let mut retries = 0usize;
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut rng = Rng::new(7);
            while !done.load(Ordering::SeqCst) && struck.load(Ordering::SeqCst) < target {
                std::thread::sleep(Duration::from_millis(20 + rng.below(80) as u64));
                if strike(&mut rng) {
                    struck.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        let mut cloud = Some(open(database));
        let mut n = 0u32;
        while struck.load(Ordering::SeqCst) < target {
            let size = if n % 5 == 4 { 3 << 20 } else { 2048 };
            let note = common::noise(size, u64::from(n));
            let sealed = lab
                .add_record(&patient, &note, &[&format!("visit-{n}")])
                .unwrap();
            for k in 0..300u32 {
                let mut id = [0u8; 16];
                id[..4].copy_from_slice(&n.to_be_bytes());
                id[4..8].copy_from_slice(&k.to_be_bytes());
                id[8] = 1;
                lab.index(&patient, RecordId::from_bytes(id), &["routine"])
                    .unwrap();
            }
            let batch = lab.finish().unwrap();
            let epoch = n;
            // The batch: acknowledged, or found committed by a retry.
            loop {
                let result = cloud.as_ref().unwrap().ingest(batch.clone());
                match result {
                    Ok(()) => break,
                    Err(Error::EpochOutOfOrder { expected, found }) if expected > found => break,
                    Err(e) if fault_error(&e) => {
                        retries += 1;
                        drop(cloud.take());
                        cloud = Some(open(database));
                    }
                    Err(e) => panic!("ingest of epoch {epoch}: {e}"),
                }
            }
            loop {
                match cloud.as_ref().unwrap().put_record(sealed.bytes.clone()) {
                    Ok(_) => break,
                    // Committed before the connection dropped.
                    Err(Error::InvalidArgument(m)) if m.contains("already stored") => break,
                    Err(e) if fault_error(&e) => {
                        retries += 1;
                        drop(cloud.take());
                        cloud = Some(open(database));
                    }
                    Err(e) => panic!("upload of record {n}: {e}"),
                }
            }
            acknowledged.push((n, sealed.id, sealed.bytes.clone()));
            n += 1;
        }
        done.store(true, Ordering::SeqCst);
    });
    println!(
        "{} faults, {} batches and records acknowledged, {retries} retries",
        struck.load(Ordering::SeqCst),
        acknowledged.len()
    );
    assert!(
        retries > 0,
        "no fault reached the store: the test tested nothing"
    );

    // Reopened: every epoch matched its commitment (or it would not open).
    let cloud = open(database);
    let provider = ProviderId::new("city-lab").unwrap();
    let manifest = cloud.manifest();
    assert_eq!(
        manifest.provider(&provider).unwrap().epoch_count() as usize,
        acknowledged.len(),
        "every acknowledged batch, and none that was not (each was retried until acknowledged)"
    );
    let listed = cloud.admin_view().files;
    assert_eq!(listed.len(), acknowledged.len(), "records stored");
    let mut doctor = Requester::new();
    common::trust(&mut doctor, "city-lab");
    doctor.add_patient_key(patient.clone(), lab.patient_key(&patient));
    for (n, id, bytes) in &acknowledged {
        assert_eq!(
            cloud.record(&provider, *id).unwrap().as_ref(),
            Some(bytes),
            "record {n}"
        );
        assert_eq!(
            common::records_found(&doctor, &cloud, &patient, &format!("visit-{n}")),
            1,
            "keyword of batch {n}"
        );
    }
}

#[test]
fn killed_backends_during_ingests_and_uploads_lose_nothing_acknowledged() {
    let server = pg::shared();
    let database = server.fresh_database();
    ingest_through_faults(&database, |_| server.kill_backends(&database) > 0);
}

#[test]
fn a_cluster_restarted_mid_ingest_loses_nothing_acknowledged() {
    let server = pg::private_cluster();
    let database = server.fresh_database();
    ingest_through_faults(&database, |rng| {
        std::thread::sleep(Duration::from_millis(rng.below(300) as u64));
        server.restart();
        true
    });
    server.stop();
}

/// `key` of a libpq connection string `conninfo` ("host=… port=… user=…").
fn conninfo_part<'a>(conninfo: &'a str, key: &str) -> &'a str {
    conninfo
        .split_whitespace()
        .find_map(|part| part.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("{key} in {conninfo}"))
}

/// PostgreSQL's own partitioning past one machine: `medvault_entries` hash-partitioned
/// by label across three servers through `postgres_fdw` (docs/postgres.md), with
/// `PgStore` unchanged on top. The same hospital's index answers exactly as on one
/// server, and the labels spread evenly over the shards.
#[test]
fn three_shards_answer_exactly_like_one_server() {
    use common::corpus::{Corpus, check_query, patient_id};
    use medvault::Combine;
    const PROVIDERS: &[&str] = &["st-mary-hospital", "city-lab", "corner-pharmacy"];

    let shards: Vec<pg::TestServer> = (0..3).map(|_| pg::private_cluster()).collect();
    let coordinator = pg::shared().fresh_database();
    let mut admin = postgres::Client::connect(&coordinator, postgres::NoTls).unwrap();
    admin
        .batch_execute(
            "CREATE EXTENSION postgres_fdw;
             CREATE TABLE medvault_entries (
                 label uuid NOT NULL, provider text NOT NULL,
                 epoch integer NOT NULL, value bytea NOT NULL
             ) PARTITION BY HASH (label);",
        )
        .unwrap();
    for (i, shard) in shards.iter().enumerate() {
        let database = shard.fresh_database();
        postgres::Client::connect(&database, postgres::NoTls)
            .unwrap()
            .batch_execute(
                "CREATE TABLE medvault_entries_shard (
                     label uuid NOT NULL, provider text NOT NULL,
                     epoch integer NOT NULL, value bytea NOT NULL,
                     PRIMARY KEY (label, provider)
                 )",
            )
            .unwrap();
        admin
            .batch_execute(&format!(
                "CREATE SERVER shard_{i} FOREIGN DATA WRAPPER postgres_fdw
                     OPTIONS (host '{}', port '{}', dbname '{}');
                 CREATE USER MAPPING FOR CURRENT_USER SERVER shard_{i} OPTIONS (user 'postgres');
                 CREATE FOREIGN TABLE medvault_entries_{i} PARTITION OF medvault_entries
                     FOR VALUES WITH (MODULUS 3, REMAINDER {i})
                     SERVER shard_{i} OPTIONS (table_name 'medvault_entries_shard');",
                conninfo_part(&shard.conninfo, "host"),
                conninfo_part(&shard.conninfo, "port"),
                conninfo_part(&database, "dbname"),
            ))
            .unwrap();
    }

    let open = |database: &str| {
        let cloud = Cloud::from(PgStore::open(database).unwrap());
        for name in PROVIDERS {
            common::register(&cloud, name);
        }
        cloud
    };
    let one_server = open(&pg::shared().fresh_database());
    let sharded = open(&coordinator);
    let started = Instant::now();
    let corpus = Corpus::build_into(&[&one_server, &sharded], 41, PROVIDERS, 8, 6, 150);
    println!("corpus built in {:?}", started.elapsed());
    let requester = corpus.requester_with_all_keys();
    let manifest = sharded.manifest();
    assert_eq!(manifest, one_server.manifest());
    let words = common::corpus::vocabulary();
    let mut opened = 0;
    for patient in 0..corpus.patients {
        for word in &words {
            let prepared = requester
                .query(&patient_id(patient), &[*word], Combine::Or, &manifest)
                .unwrap();
            assert!(
                sharded.search(prepared.query()).unwrap().to_bytes()
                    == one_server.search(prepared.query()).unwrap().to_bytes(),
                "patient {patient}, {word}: the shards answer otherwise"
            );
            opened += check_query(
                &sharded,
                &corpus,
                &requester,
                patient,
                &[*word],
                Combine::Or,
            );
        }
    }
    assert!(opened > 200, "the oracle comparison found {opened} records");
    println!("searched in {:?}", started.elapsed());

    // Every shard holds its share of the labels (uniform: about a third each).
    let total: i64 = admin
        .query_one("SELECT count(*) FROM medvault_entries", &[])
        .unwrap()
        .get(0);
    for i in 0..3 {
        let rows: i64 = admin
            .query_one(&format!("SELECT count(*) FROM medvault_entries_{i}"), &[])
            .unwrap()
            .get(0);
        assert!(
            rows * 4 > total && rows * 2 < total,
            "shard {i} holds {rows} of {total} entries"
        );
    }
    // A label stored again is refused by its shard's own primary key, through the
    // coordinator, with the SQLSTATE PgStore reports as a label collision.
    let again =
        admin.batch_execute("INSERT INTO medvault_entries SELECT * FROM medvault_entries LIMIT 1");
    assert_eq!(
        again.unwrap_err().code(),
        Some(&postgres::error::SqlState::UNIQUE_VIOLATION)
    );
    drop(sharded);
    let sharded = open(&coordinator);
    assert_eq!(sharded.manifest(), manifest);
    for shard in &shards {
        shard.stop();
    }
}
