//! Unit tests of `segment_file`.

use super::*;

fn entries(n: u64, seed: u8) -> Vec<(Label, Value)> {
    let mut out: Vec<(Label, Value)> = (0..n)
        .map(|i| {
            let mut label = [seed; LABEL_LEN];
            let digest =
                <sha2::Sha256 as sha2::Digest>::digest([&i.to_be_bytes()[..], &[seed]].concat());
            label.copy_from_slice(&digest[..LABEL_LEN]);
            (label, [(i % 251) as u8; VALUE_LEN])
        })
        .collect();
    out.sort();
    out
}

fn write(dir: &Path, name: &str, pairs: &[(Label, Value)]) -> SegmentFile {
    let disk = Disk::default();
    let mut w = SegmentWriter::create(&disk, &dir.join(name), pairs.len() as u64).unwrap();
    for (l, v) in pairs {
        w.push(l, v).unwrap();
    }
    w.finish().unwrap()
}

#[test]
fn lookups_find_every_entry_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    for n in [0u64, 1, 127, 128, 129, 1000, 5000] {
        let pairs = entries(n, 1);
        let written = write(dir.path(), &format!("s{n}"), &pairs);
        let reopened = SegmentFile::open(&dir.path().join(format!("s{n}"))).unwrap();
        for file in [&written, &reopened] {
            assert_eq!(file.len(), n);
            for (l, v) in &pairs {
                assert_eq!(file.get(l).unwrap(), Some(*v));
            }
            for (l, _) in entries(200, 2) {
                assert_eq!(file.get(&l).unwrap(), None);
            }
            file.verify().unwrap();
            let scanned: Vec<_> = file.scan().map(|e| e.unwrap()).collect();
            assert_eq!(scanned, pairs);
        }
    }
}

#[test]
fn writer_refuses_collisions_disorder_and_wrong_counts() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Disk::default();
    let pairs = entries(3, 3);
    let mut w = SegmentWriter::create(&disk, &dir.path().join("a"), 3).unwrap();
    w.push(&pairs[1].0, &pairs[1].1).unwrap();
    assert!(matches!(
        w.push(&pairs[1].0, &pairs[1].1),
        Err(Error::LabelCollision)
    ));
    assert!(matches!(
        w.push(&pairs[0].0, &pairs[0].1),
        Err(Error::Corrupt { .. })
    ));
    assert!(matches!(w.finish(), Err(Error::InvalidArgument(_))));
    // An existing file is never overwritten.
    assert!(SegmentWriter::create(&disk, &dir.path().join("a"), 1).is_err());
}

#[test]
fn every_flipped_byte_and_truncation_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = entries(300, 4);
    write(dir.path(), "seg", &pairs);
    let path = dir.path().join("seg");
    let good = std::fs::read(&path).unwrap();
    for at in 0..good.len() {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        std::fs::write(&path, &bad).unwrap();
        let outcome = SegmentFile::open(&path).and_then(|f| f.verify());
        match outcome {
            Err(Error::Corrupt { what }) => assert!(what.contains("seg"), "{what}"),
            Err(Error::UnsupportedVersion { .. } | Error::UnsupportedAlgorithm { .. })
                if at == 4 || at == 5 => {}
            other => panic!("flip at {at}: {other:?}"),
        }
    }
    for len in [0, 10, 63, 64, good.len() / 2, good.len() - 1] {
        std::fs::write(&path, &good[..len]).unwrap();
        assert!(matches!(
            SegmentFile::open(&path),
            Err(Error::Corrupt { .. })
        ));
    }
    std::fs::write(&path, [&good[..], b"x"].concat()).unwrap();
    assert!(matches!(
        SegmentFile::open(&path),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn a_lookup_through_a_damaged_block_is_an_error_not_a_miss() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = entries(500, 5);
    write(dir.path(), "seg", &pairs);
    let path = dir.path().join("seg");
    let mut bytes = std::fs::read(&path).unwrap();
    // The label block and the value record of entry 200.
    bytes[HEADER_LEN as usize + 200 * LABEL_LEN] ^= 0x80;
    std::fs::write(&path, &bytes).unwrap();
    let file = SegmentFile::open(&path).unwrap();
    assert!(matches!(
        file.get(&pairs[200].0),
        Err(Error::Corrupt { .. })
    ));
    assert_eq!(file.get(&pairs[10].0).unwrap(), Some(pairs[10].1));
    let layout = Layout::new(500).unwrap();
    bytes[HEADER_LEN as usize + 200 * LABEL_LEN] ^= 0x80;
    bytes[(layout.values_at() + 300 * VALUE_RECORD_LEN + 5) as usize] ^= 0x04;
    std::fs::write(&path, &bytes).unwrap();
    let file = SegmentFile::open(&path).unwrap();
    assert!(matches!(
        file.get(&pairs[300].0),
        Err(Error::Corrupt { .. })
    ));
    assert_eq!(file.get(&pairs[200].0).unwrap(), Some(pairs[200].1));
}
