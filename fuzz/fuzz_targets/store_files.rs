//! The directory store's own files from hostile bytes. The first input byte picks the
//! file: 0 a segment file (opened, verified, looked up), 1 the catalog, 2 a record
//! file (both through `DirStore::open`, then `verify` and a record read), 3 a record
//! table file, 4 an entry file, 5 a broker journal (parsed, then opened through
//! `DirStore::open`), 6 a record pack (named by the id where its first record's would
//! be, then as 2). Property: never a panic; whatever opens also verifies or fails
//! with a typed error; a table or entry file that parses is its entries and nothing
//! else; a journal's good prefix is within it, and whole unless its end is torn.
#![no_main]
use libfuzzer_sys::fuzz_target;
use medvault::fuzzing::SegmentFile;
use medvault::{Cloud, DirStore};

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("medvault-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("segments")).unwrap();
    match kind % 7 {
        0 => {
            let path = dir.join("segments").join("seg-0000000000000000.mvsf");
            std::fs::write(&path, body).unwrap();
            if let Ok(segment) = SegmentFile::open(&path) {
                let verified = segment.verify();
                let mut label = [0u8; 16];
                for (i, chunk) in body.chunks(16).take(64).enumerate() {
                    label[..chunk.len()].copy_from_slice(chunk);
                    label[0] ^= i as u8;
                    let _ = segment.get(&label);
                }
                if verified.is_ok() {
                    assert_eq!(segment.load().map(|s| s.len() as u64).ok(), Some(segment.len()));
                }
            }
        }
        1 => {
            std::fs::write(dir.join("CATALOG"), body).unwrap();
            if let Ok(store) = DirStore::open(&dir) {
                let _ = store.verify();
            }
        }
        3 => {
            if let Ok((count, _root)) = medvault::fuzzing::parse_record_table(body) {
                assert_eq!(body.len(), 10 + count * 48, "a table is its entries and nothing else");
            }
        }
        5 => {
            if let Ok((_, good)) = medvault::fuzzing::parse_broker_journal(body) {
                assert!(good <= body.len(), "the good prefix is within the journal");
            }
            std::fs::write(dir.join("BROKER"), body).unwrap();
            if let Ok(store) = DirStore::open(&dir) {
                let _ = store.verify();
            }
        }
        4 => {
            if let Ok((count, _root)) = medvault::fuzzing::parse_entry_file(body) {
                let pair = medvault::IndexBatch::PAIR_LEN;
                assert_eq!(body.len(), 10 + count * pair, "entries and nothing else");
            }
        }
        6 => {
            let records = dir.join("records").join("lab");
            std::fs::create_dir_all(&records).unwrap();
            let first: String = body
                .get(12..28)
                .unwrap_or(&[0xab; 16])
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            std::fs::write(records.join(format!("{first}.mvrp")), body).unwrap();
            if let Ok(store) = DirStore::open(&dir) {
                let _ = store.verify();
                let cloud = Cloud::from(store);
                for info in cloud.records() {
                    let _ = cloud.record(&info.provider, info.record);
                }
            }
        }
        _ => {
            let records = dir.join("records").join("lab");
            std::fs::create_dir_all(&records).unwrap();
            std::fs::write(records.join(format!("{}.mvrf", "ab".repeat(16))), body).unwrap();
            if let Ok(store) = DirStore::open(&dir) {
                let _ = store.verify();
                let cloud = Cloud::from(store);
                for info in cloud.records() {
                    let _ = cloud.record(&info.provider, info.record);
                }
            }
        }
    }
});
