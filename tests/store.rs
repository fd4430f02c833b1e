//! The directory store: the same answers as the in-memory cloud, persistence across
//! reopen, damage detected in every file, searches that stay correct during a merge,
//! and consistency after the writing process is killed at random moments.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::corpus::{ABSENT, Corpus, Rng, check_query, patient_id, vocabulary};
use medvault::{
    Cloud, Combine, DirStore, Error, MasterKey, PatientId, Provider, ProviderId, ProviderState,
    RecordId, Requester,
};

const PROVIDERS: &[&str] = &["st-mary-hospital", "city-lab", "corner-pharmacy"];

/// A cloud on the store in `dir`, knowing every provider these tests use.
fn open(dir: impl AsRef<Path>) -> Cloud {
    common::open_cloud(
        dir,
        &[
            "st-mary-hospital",
            "city-lab",
            "corner-pharmacy",
            "late-clinic",
            "ward-7",
        ],
    )
}

/// `cloud` knowing every provider these tests use.
fn known(cloud: Cloud) -> Cloud {
    for name in ["city-lab", "late-clinic", "ward-7"] {
        common::register(&cloud, name);
    }
    cloud
}

/// Queries for `patients` patients: every keyword alone, and random AND / OR pairs.
fn queries(corpus: &Corpus, seed: u64) -> Vec<(usize, Vec<&'static str>, Combine)> {
    let mut rng = Rng::new(seed);
    let mut words: Vec<&'static str> = vocabulary();
    words.extend(ABSENT);
    let mut out = Vec::new();
    for patient in 0..corpus.patients {
        for w in &words {
            out.push((patient, vec![*w], Combine::And));
        }
        for _ in 0..4 {
            let pick = vec![words[rng.below(words.len())], words[rng.below(words.len())]];
            out.push((patient, pick.clone(), Combine::And));
            out.push((patient, pick, Combine::Or));
        }
    }
    out
}

/// The cloud's serialized answer to each query (what goes over the wire).
fn answers(cloud: &Cloud, corpus: &Corpus, requester: &Requester) -> Vec<Vec<u8>> {
    let manifest = cloud.manifest();
    queries(corpus, 5)
        .iter()
        .map(|(patient, words, combine)| {
            let prepared = requester
                .query(&patient_id(*patient), words, *combine, &manifest)
                .unwrap();
            cloud.search(prepared.query()).unwrap().to_bytes()
        })
        .collect()
}

#[test]
fn a_directory_cloud_answers_exactly_like_the_in_memory_one_and_the_plaintext_index() {
    let dir = tempfile::tempdir().unwrap();
    let memory = Cloud::new();
    let disk = open(dir.path());
    let corpus = Corpus::build_into(&[&memory, &disk], 21, PROVIDERS, 12, 10, 150);
    let requester = corpus.requester_with_all_keys();
    let reference = answers(&memory, &corpus, &requester);
    assert_eq!(answers(&disk, &corpus, &requester), reference);
    let mut opened = 0;
    for (patient, words, combine) in queries(&corpus, 5) {
        opened += check_query(&disk, &corpus, &requester, patient, &words, combine);
    }
    assert!(
        opened > 1_000,
        "the oracle comparison found {opened} records"
    );

    disk.merge().unwrap();
    memory.merge().unwrap();
    assert_eq!(disk.manifest(), memory.manifest());
    assert_eq!(
        disk.manifest().segments.len(),
        PROVIDERS.len(),
        "one per provider"
    );
    assert_eq!(answers(&disk, &corpus, &requester), reference);

    // Everything survives a restart, and the store keeps growing after it.
    drop(disk);
    let disk = open(dir.path());
    assert_eq!(disk.manifest(), memory.manifest());
    assert_eq!(answers(&disk, &corpus, &requester), reference);
    for (patient, words, combine) in queries(&corpus, 6).into_iter().take(200) {
        check_query(&disk, &corpus, &requester, patient, &words, combine);
    }
}

/// A store of one provider with two segments and three records; returns its keys.
fn small_store(dir: &Path) -> (Provider, PatientId, Vec<RecordId>) {
    let cloud = open(dir);
    let mut lab = common::new_provider("city-lab", MasterKey::from_bytes([4; 32]));
    let patient = PatientId::new("+15550123").unwrap();
    let mut ids = Vec::new();
    for (i, text) in ["glucose 5.4 mmol/L", "HbA1c 7.9 %", "glucose 9.1 fasting"]
        .iter()
        .enumerate()
    {
        let sealed = lab
            .add_record(
                &patient,
                text.as_bytes(),
                &["glucose", "diabetes"][..1 + i % 2],
            )
            .unwrap();
        ids.push(sealed.id);
        for n in 0..60 {
            let filler =
                RecordId::from_bytes([i as u8, n, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
            lab.index(&patient, filler, &[format!("filler{n}")])
                .unwrap();
        }
        cloud.ingest(lab.finish().unwrap()).unwrap();
        cloud.put_record(sealed.bytes).unwrap();
        if i == 1 {
            cloud.merge().unwrap();
        }
    }
    assert_eq!(cloud.manifest().segments.len(), 2);
    (lab, patient, ids)
}

/// The record ids a search for `keyword` opens, or the error on the way.
fn search(
    cloud: &Cloud,
    lab: &Provider,
    patient: &PatientId,
    keyword: &str,
) -> medvault::Result<BTreeSet<RecordId>> {
    let mut requester = Requester::new();
    common::trust(&mut requester, lab.id().as_str());
    requester.add_patient_key(patient.clone(), lab.patient_key(patient));
    let prepared = requester.query(patient, &[keyword], Combine::And, &cloud.manifest())?;
    let response = cloud.search(prepared.query())?;
    let results = requester.open(&prepared, &response)?;
    Ok(results.providers[0].records.iter().map(|r| r.id).collect())
}

#[test]
fn a_flipped_byte_in_any_store_file_is_detected_never_answered() {
    let dir = tempfile::tempdir().unwrap();
    let (lab, patient, ids) = small_store(dir.path());
    let expected = {
        let cloud = open(dir.path());
        search(&cloud, &lab, &patient, "glucose").unwrap()
    };
    assert_eq!(expected, ids.iter().copied().collect());

    let mut files = vec![dir.path().join("CATALOG")];
    for sub in ["segments", "records/city-lab", "log/city-lab"] {
        for entry in std::fs::read_dir(dir.path().join(sub)).unwrap() {
            files.push(entry.unwrap().path());
        }
    }
    assert_eq!(
        files.len(),
        1 + 2 + 3 + 3 + 3,
        "catalog, segments, records, record tables, entry files"
    );
    let mut flips = 0;
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let stem = name
            .trim_end_matches(".mvsf")
            .trim_end_matches(".mvrf")
            .to_owned();
        let good = std::fs::read(path).unwrap();
        // Every byte of small files; of segments, the header, every 7th byte and the
        // directory (each byte of a segment is covered by the unit tests).
        let positions: Vec<usize> = (0..good.len())
            .filter(|&at| good.len() < 2_000 || at < 64 || at % 7 == 0 || at + 2_000 > good.len())
            .collect();
        for at in positions {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            std::fs::write(path, &bad).unwrap();
            flips += 1;
            let detected = match DirStore::open(dir.path()) {
                Err(Error::Corrupt { what }) => {
                    assert!(what.contains(&stem), "{name}@{at}: {what}");
                    true
                }
                Err(Error::UnsupportedVersion { .. } | Error::UnsupportedAlgorithm { .. }) => {
                    at < 8
                }
                Err(Error::Malformed { .. }) => name == "CATALOG",
                Err(other) => panic!("{name}@{at}: {other:?}"),
                Ok(store) => {
                    // Open checks headers and directories; the rest is checked on read.
                    match store.verify() {
                        Err(Error::Corrupt { what }) => assert!(what.contains(&stem)),
                        other => panic!("{name}@{at}: verify gave {other:?}"),
                    }
                    let cloud = known(Cloud::from(store));
                    if let Ok(found) = search(&cloud, &lab, &patient, "glucose") {
                        assert_eq!(found, expected, "{name}@{at}: a wrong answer");
                    }
                    true
                }
            };
            assert!(detected, "{name}@{at}");
        }
        std::fs::write(path, &good).unwrap();
    }
    assert!(flips > 3_000, "{flips} flips");
    DirStore::open(dir.path()).unwrap().verify().unwrap();
}

#[test]
fn truncated_or_missing_files_are_reported_by_name() {
    let dir = tempfile::tempdir().unwrap();
    small_store(dir.path());
    let segments: Vec<_> = std::fs::read_dir(dir.path().join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let good = std::fs::read(&segments[0]).unwrap();
    std::fs::write(&segments[0], &good[..good.len() - 1]).unwrap();
    let name = segments[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    match DirStore::open(dir.path()) {
        Err(Error::Corrupt { what }) => assert!(what.contains(&name), "{what}"),
        other => panic!("{other:?}"),
    }
    std::fs::remove_file(&segments[0]).unwrap();
    match DirStore::open(dir.path()) {
        Err(Error::Corrupt { what }) => assert!(what.contains("missing"), "{what}"),
        other => panic!("{other:?}"),
    }
    std::fs::write(&segments[0], &good).unwrap();
    let catalog = std::fs::read(dir.path().join("CATALOG")).unwrap();
    let mut future = catalog.clone();
    future[4] = 9;
    std::fs::write(dir.path().join("CATALOG"), &future).unwrap();
    assert!(matches!(
        DirStore::open(dir.path()),
        Err(Error::UnsupportedVersion { version: 9, .. })
    ));
    std::fs::write(dir.path().join("CATALOG"), b"garbage").unwrap();
    assert!(DirStore::open(dir.path()).is_err());
    std::fs::write(dir.path().join("CATALOG"), &catalog).unwrap();
    DirStore::open(dir.path()).unwrap().verify().unwrap();
}

#[test]
fn the_cloud_and_its_stores_are_send_and_sync() {
    fn shared_across_threads<T: Send + Sync>() {}
    shared_across_threads::<Cloud>();
    shared_across_threads::<DirStore>();
    shared_across_threads::<medvault::MemStore>();
}

#[test]
fn searches_during_a_merge_give_the_same_answers_and_ingests_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = open(dir.path());
    let corpus = Corpus::build(&cloud, 31, PROVIDERS, 8, 16, 200);
    assert_eq!(cloud.manifest().segments.len(), 48);
    let requester = corpus.requester_with_all_keys();
    let reference = answers(&cloud, &corpus, &requester);
    let manifest = cloud.manifest();
    let prepared: Vec<_> = queries(&corpus, 5)
        .iter()
        .map(|(patient, words, combine)| {
            requester
                .query(&patient_id(*patient), words, *combine, &manifest)
                .unwrap()
        })
        .collect();
    // A provider the queries do not name keeps uploading during the merge.
    let mut late = common::new_provider("late-clinic", MasterKey::from_bytes([77; 32]));
    let late_batches: Vec<_> = (0..20u8)
        .map(|e| {
            late.index(
                &PatientId::new("+15559999").unwrap(),
                RecordId::from_bytes([e; 16]),
                &["asthma"],
            )
            .unwrap();
            late.finish().unwrap()
        })
        .collect();

    let merging = AtomicBool::new(true);
    let searched = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..2 {
            let (cloud, prepared, reference) = (&cloud, &prepared, &reference);
            let (merging, searched) = (&merging, &searched);
            s.spawn(move || {
                let mut i = t;
                while merging.load(Ordering::SeqCst) || i < prepared.len() {
                    let k = i % prepared.len();
                    let answer = cloud.search(prepared[k].query()).unwrap().to_bytes();
                    assert_eq!(answer, reference[k], "query {k} during the merge");
                    searched.fetch_add(1, Ordering::SeqCst);
                    i += 2;
                }
            });
        }
        let cloud = &cloud;
        let ingester = s.spawn(move || {
            for batch in late_batches {
                cloud.ingest(batch).unwrap();
            }
        });
        cloud.merge().unwrap();
        merging.store(false, Ordering::SeqCst);
        ingester.join().unwrap();
    });
    assert!(searched.load(Ordering::SeqCst) >= prepared.len());
    let manifest = cloud.manifest();
    assert_eq!(
        manifest
            .provider(&ProviderId::new("late-clinic").unwrap())
            .unwrap()
            .epoch_count(),
        20
    );
    assert!(manifest.segments.len() <= PROVIDERS.len() + 20);
    assert_eq!(answers(&cloud, &corpus, &requester), reference);
    drop(cloud);
    let reopened = open(dir.path());
    assert_eq!(reopened.manifest(), manifest);
    reopened.merge().unwrap();
    assert_eq!(answers(&reopened, &corpus, &requester), reference);
}

const KILL_DIR: &str = "MEDVAULT_KILL_TEST_DIR";

fn kill_test_provider(state: ProviderState) -> Provider {
    Provider::resume(
        ProviderId::new("ward-7").unwrap(),
        MasterKey::from_bytes([42; 32]),
        common::identity().signing.clone(),
        state,
    )
}

/// The writer the kill test runs in a child process: one record and one batch per
/// epoch, a merge every seventh epoch, an `acked` line after each ingest returns.
#[test]
#[ignore = "run by `ingest_survives_sigkill_at_random_moments` in a child process"]
fn kill_test_child() {
    let dir = std::env::var(KILL_DIR).expect("the kill test sets the store directory");
    let cloud = open(&dir);
    let id = ProviderId::new("ward-7").unwrap();
    let state = ProviderState::default()
        .reconcile(
            &cloud.manifest(),
            &id,
            &common::identity().public().verifying,
        )
        .unwrap();
    let mut ward = kill_test_provider(state);
    let patient = PatientId::new("+15550777").unwrap();
    for _ in 0..100_000 {
        let epoch = ward.state().next_epoch;
        let text = format!("observation of epoch {epoch}");
        let sealed = ward
            .add_record(
                &patient,
                text.as_bytes(),
                &["vitals", &format!("epoch{epoch}")],
            )
            .unwrap();
        // The batch commits the record, so it goes first; a kill between the two
        // leaves that one record missing, never a record without its batch.
        cloud.ingest(ward.finish().unwrap()).unwrap();
        cloud.put_record(sealed.bytes).unwrap();
        println!("acked {epoch} {}", hex::encode(sealed.id.as_bytes()));
        if epoch % 7 == 6 {
            cloud.merge().unwrap();
            println!("merged {epoch}");
        }
    }
}

#[test]
fn ingest_survives_sigkill_at_random_moments() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("seed {seed}");
    let mut rng = Rng::new(seed);
    let started = Instant::now();
    let mut acked: Vec<(u32, RecordId)> = Vec::new();
    let mut kills = 0;
    let mut merges = 0;
    let mut checked = 0;
    while kills < 24 && started.elapsed() < Duration::from_secs(120) {
        let mut child = Command::new(&exe)
            .args(["kill_test_child", "--exact", "--ignored", "--nocapture"])
            .env(KILL_DIR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(|l| l.ok())
                .collect::<Vec<String>>()
        });
        std::thread::sleep(Duration::from_millis(20 + rng.below(300) as u64));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        kills += 1;
        for line in reader.join().unwrap() {
            let mut parts = line.split(' ');
            match parts.next() {
                Some("acked") => {
                    let epoch: u32 = parts.next().unwrap().parse().unwrap();
                    let id: [u8; 16] = hex::decode(parts.next().unwrap())
                        .unwrap()
                        .try_into()
                        .unwrap();
                    acked.push((epoch, RecordId::from_bytes(id)));
                }
                Some("merged") => merges += 1,
                _ => {}
            }
        }

        // Every reopen is consistent and holds every acknowledged batch and record.
        let store = DirStore::open(dir.path()).unwrap();
        store.verify().unwrap();
        let cloud = known(Cloud::from(store));
        let manifest = cloud.manifest();
        let epochs = manifest
            .provider(&ProviderId::new("ward-7").unwrap())
            .map_or(0, |p| p.epoch_count());
        assert!(
            acked.iter().all(|(e, _)| *e < epochs),
            "round {kills}: {epochs} epochs, acked up to {:?}",
            acked.last()
        );
        if epochs == 0 {
            // Killed before its first ingest returned (a slow start on a busy machine):
            // the provider is not in the manifest yet, and there is nothing to find.
            continue;
        }
        let ward = kill_test_provider(ProviderState::default());
        let patient = PatientId::new("+15550777").unwrap();
        let found = search(&cloud, &ward, &patient, "vitals").unwrap();
        // One record per epoch, except where a kill came between a batch and its
        // record's upload (the cloud lists those as missing); every acknowledged one
        // is there (checked below).
        assert!(
            found.len() as u32 <= epochs,
            "{} records for {epochs} epochs",
            found.len()
        );
        for (epoch, id) in &acked {
            assert!(
                found.contains(id),
                "round {kills}: acked epoch {epoch} lost"
            );
        }
        // Each batch indexes its own record: check this round's by their epoch keyword.
        for (epoch, id) in &acked[checked..] {
            let just = search(&cloud, &ward, &patient, &format!("epoch{epoch}")).unwrap();
            assert_eq!(just, [*id].into_iter().collect());
        }
        checked = acked.len();
    }
    println!(
        "{kills} kills, {} acknowledged batches, {merges} merges",
        acked.len()
    );
    assert!(kills >= 20, "only {kills} kills in the time allowed");
    assert!(
        acked.len() >= kills,
        "the child made too little progress to test anything"
    );
}

/// A search returning many records reads them on all cores: the same records, in id
/// order, as the in-memory cloud; and damage to any of them fails the search naming the
/// first damaged record file in id order.
#[test]
fn many_records_are_read_in_parallel_and_damage_is_reported_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let disk = open(dir.path());
    let memory = known(Cloud::new());
    let mut lab = common::new_provider("city-lab", MasterKey::from_bytes([9; 32]));
    let patient = PatientId::new("patient-many").unwrap();
    let mut records = Vec::new();
    for i in 0..60 {
        let note = format!("glucose panel {i}").repeat(i + 1);
        let record = lab
            .add_record(&patient, note.as_bytes(), &["glucose"])
            .unwrap();
        records.push(record.bytes);
    }
    let batch = lab.finish().unwrap();
    disk.ingest_bytes(&batch.to_bytes()).unwrap();
    memory.ingest(batch).unwrap();
    for record in records {
        disk.put_record(record.clone()).unwrap();
        memory.put_record(record).unwrap();
    }
    let mut doctor = Requester::new();
    common::trust(&mut doctor, lab.id().as_str());
    doctor.add_patient_key(patient.clone(), lab.patient_key(&patient));
    let query = doctor
        .query(&patient, &["glucose"], Combine::Or, &disk.manifest())
        .unwrap();
    let answer = disk.search(query.query()).unwrap();
    assert_eq!(answer, memory.search(query.query()).unwrap());
    let records = &answer.providers[0].records;
    assert_eq!(records.len(), 60);
    assert!(
        records.windows(2).all(|pair| pair[0].0 < pair[1].0),
        "id order"
    );
    assert_eq!(
        doctor.open(&query, &answer).unwrap().providers[0]
            .records
            .len(),
        60
    );

    // Damage the 40th and the 20th record (in id order): the 20th is reported.
    let file_of = |id: &RecordId| {
        let hex: String = id.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
        dir.path()
            .join("records/city-lab")
            .join(format!("{hex}.mvrf"))
    };
    for index in [40, 20] {
        let path = file_of(&records[index].0);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[30] ^= 1;
        std::fs::write(&path, bytes).unwrap();
    }
    let first = file_of(&records[20].0);
    let stem = first.file_stem().unwrap().to_string_lossy().into_owned();
    match disk.search(query.query()) {
        Err(Error::Corrupt { what }) => assert!(what.contains(&stem), "{what}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_provider_that_lost_its_state_never_rebuilds_a_used_epoch() {
    // Epoch reuse repeats labels and keystream under the cloud's eyes, even in a batch
    // the cloud then rejects: `finish_at` refuses before anything is built.
    let cloud = known(Cloud::new());
    let id = ProviderId::new("city-lab").unwrap();
    let master = MasterKey::from_bytes([8; 32]);
    let signing = || common::identity().signing.clone();
    let alice = PatientId::new("+15550100").unwrap();
    let mut lab = Provider::new(id.clone(), master.clone(), signing());
    for epoch in 0..3u32 {
        let rec = lab.add_record(&alice, b"K 4.1", &["potassium"]).unwrap();
        let batch = lab.finish_at(cloud.manifest().next_epoch(&id)).unwrap();
        assert_eq!(batch.epoch(), epoch);
        cloud.ingest(batch).unwrap();
        cloud.put_record(rec.bytes).unwrap();
    }
    // Started with `new` instead of `resume`: its next epoch (0) is not the cloud's (3).
    let mut amnesiac = Provider::new(id.clone(), master.clone(), signing());
    amnesiac
        .index(&alice, RecordId::from_bytes([1; 16]), &["potassium"])
        .unwrap();
    assert!(matches!(
        amnesiac.finish_at(cloud.manifest().next_epoch(&id)),
        Err(Error::EpochOutOfOrder {
            expected: 0,
            found: 3
        })
    ));
    assert_eq!(amnesiac.pending_postings(), 1, "the queue is kept");
    // Nor does a cloud that claims fewer epochs than the provider used get it to go
    // back.
    assert!(matches!(
        lab.finish_at(2),
        Err(Error::EpochOutOfOrder {
            expected: 3,
            found: 2
        })
    ));
    // Its own signed log gives the amnesiac its position back (epoch 3 and the chain),
    // never by rebuilding an old epoch.
    let recovered = amnesiac
        .state()
        .reconcile(
            &cloud.manifest(),
            &id,
            &common::identity().public().verifying,
        )
        .unwrap();
    assert_eq!(recovered, lab.state());
    // Resumed from its saved state, it goes on.
    let mut resumed = Provider::resume(id.clone(), master, signing(), recovered);
    resumed
        .index(&alice, RecordId::from_bytes([2; 16]), &["potassium"])
        .unwrap();
    let batch = resumed.finish_at(cloud.manifest().next_epoch(&id)).unwrap();
    assert_eq!(batch.epoch(), 3);
    cloud.ingest(batch).unwrap();
}

#[test]
fn the_key_directory_survives_a_restart_first_come_and_re_keyed() {
    let dir = tempfile::tempdir().unwrap();
    let (lab_keys, other) = (common::identity(), common::other_identity());
    let id = ProviderId::new("city-lab").unwrap();
    {
        let cloud = Cloud::open(dir.path()).unwrap();
        cloud
            .register_provider(id.clone(), lab_keys.public())
            .unwrap();
    }
    // Reopened: the lab is still registered, so after a restart nobody else can take
    // its id, and its signed batches are accepted without registering again.
    let cloud = Cloud::open(dir.path()).unwrap();
    assert_eq!(cloud.provider_keys(&id).unwrap(), lab_keys.public());
    assert!(matches!(
        cloud.register_provider(id.clone(), other.public()),
        Err(Error::AlreadyRegistered)
    ));
    let mut lab = common::new_provider("city-lab", MasterKey::from_bytes([2; 32]));
    let alice = PatientId::new("+15550100").unwrap();
    let rec = lab.add_record(&alice, b"K 4.1", &["potassium"]).unwrap();
    cloud.ingest(lab.finish().unwrap()).unwrap();
    cloud.put_record(rec.bytes).unwrap();
    // A re-keying is kept too.
    let rekey = medvault::Rekey::issue(&id, &lab_keys.signing, &other.public()).unwrap();
    cloud.rekey_provider(&rekey.to_bytes()).unwrap();
    drop(cloud);
    let cloud = Cloud::open(dir.path()).unwrap();
    assert_eq!(cloud.provider_keys(&id).unwrap(), other.public());
    assert!(matches!(
        cloud.ingest(lab.finish().unwrap()),
        Err(Error::NotAuthentic { .. })
    ));
    drop(cloud);
    DirStore::open(dir.path()).unwrap().verify().unwrap();
}
