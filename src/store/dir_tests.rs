//! Unit tests of `dir`.

use super::*;
use crate::index::manifest::EpochInfo;
use crate::keys::test_keys;
use crate::store::disk::Step;
use crate::store::disk::faults::FaultPlan;
use crate::{Cloud, IndexBatch, MasterKey, PatientId, Provider};
use std::collections::BTreeSet;

type Entries = BTreeSet<(crate::index::Label, Vec<u8>)>;
type Contents = (Vec<(ProviderId, Vec<EpochInfo>)>, Entries, Vec<Vec<u8>>);

/// Four deterministic batches of one provider, and two sealed records.
fn fixtures() -> (Vec<IndexBatch>, Vec<Vec<u8>>) {
    let mut lab = Provider::new(
        ProviderId::new("lab").unwrap(),
        MasterKey::from_bytes([9; 32]),
        test_keys::provider_a().signing.clone(),
    );
    let patient = PatientId::new("+15550100").unwrap();
    let mut batches = Vec::new();
    let mut records = Vec::new();
    // Both records are committed by the first batch.
    for text in ["potassium 4.1", "sodium 139"] {
        records.push(
            lab.add_record(&patient, text.as_bytes(), &["x"])
                .unwrap()
                .bytes,
        );
    }
    for epoch in 0..4u8 {
        for i in 0..20u8 {
            let record = RecordId::from_bytes([epoch, i, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
            lab.index(&patient, record, &["glucose", &format!("w{}", i % 3)])
                .unwrap();
        }
        batches.push(lab.finish().unwrap());
    }
    (batches, records)
}

/// A cloud on `store` that knows the lab's keys (registered in a fresh store; kept by
/// a store that has them, where registering them again changes nothing).
fn lab_cloud(store: DirStore) -> Cloud {
    let cloud = Cloud::with_store(store);
    cloud
        .register_provider(
            ProviderId::new("lab").unwrap(),
            test_keys::provider_a().public(),
        )
        .unwrap();
    cloud
}

/// Everything a store holds: epochs, entries (whatever the segment layout) and
/// records.
fn contents(store: &DirStore) -> Contents {
    let view = store.view();
    let epochs = view
        .epochs()
        .iter()
        .map(|(p, e)| (p.clone(), e.clone()))
        .collect();
    let mut entries = Entries::new();
    for segment in view.segments() {
        let table = segment.load().unwrap();
        for (i, label) in table.table().labels().iter().enumerate() {
            entries.insert((*label, table.table().value(i).to_vec()));
        }
    }
    let records = store
        .records()
        .iter()
        .map(|r| store.record(&r.provider, r.record).unwrap().unwrap())
        .collect();
    (epochs, entries, records)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Files in `segments/` and the record directories, besides the catalog's.
fn stray_files(root: &Path) -> Vec<String> {
    let store = DirStore::open(root).unwrap();
    let named: Vec<String> = read(&store.index)
        .catalog
        .segments
        .iter()
        .map(|s| segment_name(s.id))
        .collect();
    let mut stray = Vec::new();
    for entry in std::fs::read_dir(root.join(SEGMENTS)).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if !named.contains(&name) {
            stray.push(name);
        }
    }
    for dir in std::fs::read_dir(root.join(RECORDS)).unwrap() {
        for entry in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if parse_record_name(&name).is_none() && !name.ends_with(".mvrp") {
                stray.push(name);
            }
        }
    }
    stray
}

/// Runs `operation` on a copy of `base` failing at step 0, 1, 2, … until it runs
/// without reaching the fault. After each failure the reopened store must hold
/// `before` or `after` exactly; after a success, `after`. Returns the steps taken.
fn fail_every_step(base: &Path, operation: impl Fn(&Cloud) -> Result<()>) -> Vec<Step> {
    let before = contents(&DirStore::open(base).unwrap());
    let after = {
        let scratch = tempfile::tempdir().unwrap();
        copy_dir(base, scratch.path());
        operation(&lab_cloud(DirStore::open(scratch.path()).unwrap())).unwrap();
        contents(&DirStore::open(scratch.path()).unwrap())
    };
    for fail_at in 0.. {
        let scratch = tempfile::tempdir().unwrap();
        copy_dir(base, scratch.path());
        let plan = Arc::new(FaultPlan::failing_at(fail_at));
        let disk = Disk {
            faults: Some(plan.clone()),
        };
        let outcome = {
            let cloud = lab_cloud(DirStore::open_with(scratch.path(), disk).unwrap());
            let outcome = operation(&cloud);
            if outcome.is_err() {
                // A failed store never half-applies a later write either.
                let again = operation(&cloud);
                assert!(again.is_err(), "fault at {fail_at}: retry on a faulty disk");
            }
            outcome
        };
        let reopened = contents(&DirStore::open(scratch.path()).unwrap());
        let steps = plan.steps();
        match outcome {
            Ok(()) => {
                assert_eq!(
                    reopened, after,
                    "fault at {fail_at}: acknowledged, then lost"
                );
                assert!(
                    steps.len() as u64 <= fail_at
                        || steps[fail_at as usize..]
                            .iter()
                            .all(|s| *s == Step::Remove || *s == Step::SyncDir)
                );
            }
            Err(ref e) => assert!(
                reopened == before || reopened == after,
                "fault at {fail_at} ({e}): a mix of states"
            ),
        }
        assert_eq!(stray_files(scratch.path()), Vec::<String>::new());
        if steps.len() as u64 <= fail_at {
            return steps;
        }
    }
    unreachable!()
}

fn base_store(batches: &[IndexBatch], records: &[Vec<u8>]) -> tempfile::TempDir {
    let base = tempfile::tempdir().unwrap();
    let cloud = lab_cloud(DirStore::open(base.path()).unwrap());
    for batch in batches {
        cloud.ingest(batch.clone()).unwrap();
    }
    for record in records {
        cloud.put_record(record.clone()).unwrap();
    }
    base
}

/// Each kind of step a commit takes was among those failed.
fn every_kind_failed(steps: &[Step]) {
    for kind in [
        Step::Create,
        Step::Write,
        Step::Sync,
        Step::Rename,
        Step::SyncDir,
    ] {
        assert!(steps.contains(&kind), "{kind:?} never failed: {steps:?}");
    }
}

#[test]
fn every_failing_step_of_an_ingest_leaves_the_old_or_the_new_state() {
    let (batches, records) = fixtures();
    let base = base_store(&batches[..2], &records[..1]);
    let steps = fail_every_step(base.path(), |cloud| cloud.ingest(batches[2].clone()));
    every_kind_failed(&steps);
}

#[test]
fn every_failing_step_of_a_merge_leaves_the_old_or_the_new_state() {
    let (batches, records) = fixtures();
    let base = base_store(&batches[..3], &records[..1]);
    let steps = fail_every_step(base.path(), |cloud| cloud.merge());
    assert!(steps.contains(&Step::Rename) && steps.contains(&Step::Remove));
    let merged = lab_cloud(DirStore::open(base.path()).unwrap());
    merged.merge().unwrap();
    assert_eq!(merged.manifest().segments.len(), 1);
}

#[test]
fn every_failing_step_of_a_record_upload_leaves_the_old_or_the_new_state() {
    let (batches, records) = fixtures();
    let base = base_store(&batches[..1], &records[..1]);
    let steps = fail_every_step(base.path(), |cloud| {
        cloud.put_record(records[1].clone()).map(|_| ())
    });
    assert!(steps.contains(&Step::Rename));
}

/// A batch committing `n` notes of the lab, and the notes.
fn batch_of_notes(n: usize) -> (IndexBatch, Vec<Vec<u8>>) {
    let mut lab = Provider::new(
        ProviderId::new("lab").unwrap(),
        MasterKey::from_bytes([9; 32]),
        test_keys::provider_a().signing.clone(),
    );
    let patient = PatientId::new("+15550100").unwrap();
    let notes = (0..n)
        .map(|i| {
            lab.add_record(&patient, format!("note {i}").as_bytes(), &["x"])
                .unwrap()
                .bytes
        })
        .collect();
    (lab.finish().unwrap(), notes)
}

#[test]
fn every_failing_step_of_a_record_batch_leaves_none_or_all_of_it() {
    let (batch, notes) = batch_of_notes(5);
    let base = base_store(&[batch], &notes[..1]);
    let steps = fail_every_step(base.path(), |cloud| {
        cloud.put_records(&notes[1..]).map(|_| ())
    });
    every_kind_failed(&steps);
}

#[test]
fn a_record_pack_reads_back_after_a_reopen_and_damage_is_reported_by_name() {
    let (batch, notes) = batch_of_notes(4);
    let dir = base_store(&[batch], &[]);
    let cloud = lab_cloud(DirStore::open(dir.path()).unwrap());
    let stored = cloud.put_records(&notes).unwrap();
    let lab = ProviderId::new("lab").unwrap();
    assert!(stored.iter().all(|(provider, _)| provider == &lab));
    drop(cloud);
    let store = DirStore::open(dir.path()).unwrap();
    store.verify().unwrap();
    for ((_, id), note) in stored.iter().zip(&notes) {
        assert_eq!(store.record(&lab, *id).unwrap().as_ref(), Some(note));
        let mut streamed = Vec::new();
        store
            .record_reader(&lab, *id)
            .unwrap()
            .unwrap()
            .read_to_end(&mut streamed)
            .unwrap();
        assert_eq!(&streamed, note);
    }
    assert_eq!(store.records().len(), 4);
    drop(store);
    // One pack, named by its first record.
    let records_dir = dir.path().join(RECORDS).join("lab");
    let packs: Vec<PathBuf> = std::fs::read_dir(&records_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(packs.len(), 1);
    let pack = packs[0].clone();
    assert_eq!(
        pack.file_name().unwrap().to_string_lossy(),
        record_pack::file_name(stored[0].1)
    );
    let good = std::fs::read(&pack).unwrap();
    // A flipped byte in the last record: it, and only it, is reported, by the pack's
    // name; `verify` finds it.
    let mut bad = good.clone();
    let last = bad.len() - 3;
    bad[last] ^= 1;
    std::fs::write(&pack, &bad).unwrap();
    let store = DirStore::open(dir.path()).unwrap();
    let hex_first = hex(stored[0].1.as_bytes());
    match store.record(&lab, stored[3].1) {
        Err(Error::Corrupt { what }) => assert!(what.contains(&hex_first), "{what}"),
        other => panic!("damaged record read as {other:?}"),
    }
    assert_eq!(
        store.record(&lab, stored[0].1).unwrap().as_ref(),
        Some(&notes[0])
    );
    assert!(matches!(store.verify(), Err(Error::Corrupt { .. })));
    drop(store);
    // A flipped byte in the index: the store does not open, and says which pack.
    let mut bad = good.clone();
    bad[20] ^= 1;
    std::fs::write(&pack, &bad).unwrap();
    match DirStore::open(dir.path()) {
        Err(Error::Corrupt { what }) => assert!(what.contains(&hex_first), "{what}"),
        other => panic!("opened over a damaged index: {other:?}"),
    }
    // Cut short: the same.
    std::fs::write(&pack, &good[..good.len() - 1]).unwrap();
    assert!(matches!(
        DirStore::open(dir.path()),
        Err(Error::Corrupt { .. })
    ));
    // The pack restored, and one of its records also in a file of its own: which copy
    // is right cannot be told, and the store says so.
    std::fs::write(&pack, &good).unwrap();
    record_file::write(
        &Disk::default(),
        &records_dir.join(format!("{}.mvrf", hex(stored[2].1.as_bytes()))),
        1,
        &mut &notes[2][..],
    )
    .unwrap();
    match DirStore::open(dir.path()) {
        Err(Error::Corrupt { what }) => assert!(what.contains("stored twice"), "{what}"),
        other => panic!("a record stored twice went unnoticed: {other:?}"),
    }
}

#[test]
fn a_second_process_cannot_open_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let _first = DirStore::open(dir.path()).unwrap();
    assert!(matches!(
        DirStore::open(dir.path()),
        Err(Error::StoreLocked)
    ));
}

#[test]
fn a_failure_after_the_point_of_no_return_refuses_writes_until_reopened() {
    let (batches, _) = fixtures();
    let dir = tempfile::tempdir().unwrap();
    // Count an ingest's steps on a scratch store, then fail its last one: the
    // directory sync after the catalog rename.
    let counting = Arc::new(FaultPlan::failing_at(u64::MAX));
    let scratch = tempfile::tempdir().unwrap();
    let disk = Disk {
        faults: Some(counting.clone()),
    };
    lab_cloud(DirStore::open_with(scratch.path(), disk).unwrap())
        .ingest(batches[0].clone())
        .unwrap();
    let plan = Arc::new(FaultPlan::failing_at(counting.steps().len() as u64 - 1));
    let disk = Disk {
        faults: Some(plan.clone()),
    };
    let cloud = lab_cloud(DirStore::open_with(dir.path(), disk).unwrap());
    let err = cloud.ingest(batches[0].clone()).unwrap_err();
    assert_eq!(
        plan.steps().last(),
        Some(&Step::SyncDir),
        "{:?}",
        plan.steps()
    );
    assert!(
        matches!(&err, Error::File { action: "sync", path, .. } if path == dir.path()),
        "{err}"
    );
    assert!(matches!(
        cloud.ingest(batches[0].clone()),
        Err(Error::NeedsRecovery(_))
    ));
    assert!(matches!(cloud.merge(), Err(Error::NeedsRecovery(_))));
    drop(cloud);
    let reopened = lab_cloud(DirStore::open(dir.path()).unwrap());
    assert_eq!(reopened.manifest().providers[0].epoch_count(), 1);
    reopened.ingest(batches[1].clone()).unwrap();
}
