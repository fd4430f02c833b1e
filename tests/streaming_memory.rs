//! Sealing and opening 256 MiB through `Sealer` / `Opener`, and storing and serving it
//! through the directory store, use memory bounded by a few chunks, measured by a
//! counting global allocator. One test per binary: the counter is global.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};

use medvault::{CHUNK_OVERHEAD, DEFAULT_CHUNK_SIZE};
use medvault::{MasterKey, Opener, PatientId, ProviderId, RecordId, Sealer};

mod common;

#[global_allocator]
static ALLOCATOR: common::counting_alloc::Counting = common::counting_alloc::Counting;

const TOTAL: u64 = 256 * 1024 * 1024;

/// An endless deterministic byte stream (xorshift), read in whatever sizes asked.
struct Noise(u64);
impl Read for Noise {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        for word in buf.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            word.copy_from_slice(&self.0.to_le_bytes()[..word.len()]);
        }
        Ok(buf.len())
    }
}

/// Compares everything written to it with a fresh `Noise` stream.
struct Verify {
    expected: Noise,
    scratch: Vec<u8>,
    seen: u64,
}
impl Write for Verify {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Chunk-aligned 8-byte words keep the generator in step with what it produced.
        assert_eq!(self.seen % 8, 0, "reads are multiples of 8 here");
        self.scratch.resize(buf.len(), 0);
        self.expected.read_exact(&mut self.scratch)?;
        assert!(
            self.scratch == buf,
            "opened bytes differ at offset {}",
            self.seen
        );
        self.seen += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn seal_and_open_256_mib_in_bounded_memory() {
    let master = MasterKey::from_bytes([3; 32]);
    let patient = master.patient_key(
        &ProviderId::new("radiology").unwrap(),
        &PatientId::new("MRN-7").unwrap(),
        0,
    );
    let record_id = RecordId::generate().unwrap();
    let record = patient.record_key(record_id);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.sealed");
    let chunk = DEFAULT_CHUNK_SIZE as usize;
    let copy_buf_len = 64 * 1024;

    let ((), seal_peak) = common::counting_alloc::peak_during(|| {
        let out = BufWriter::new(File::create(&path).unwrap());
        let mut sealer = Sealer::new(out, &record).unwrap();
        let mut input = Noise(0x5eed).take(TOTAL);
        let mut buf = vec![0u8; copy_buf_len];
        loop {
            let n = input.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            sealer.write_all(&buf[..n]).unwrap();
        }
        sealer
            .finish()
            .unwrap()
            .into_inner()
            .unwrap()
            .sync_all()
            .unwrap();
    });
    let chunks = TOTAL.div_ceil(chunk as u64);
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        TOTAL + chunks * CHUNK_OVERHEAD as u64 + 7 + "radiology".len() as u64 + 35
    );

    let ((), open_peak) = common::counting_alloc::peak_during(|| {
        let input = BufReader::new(File::open(&path).unwrap());
        let mut opener = Opener::new(input, &patient).unwrap();
        let mut verify = Verify {
            expected: Noise(0x5eed),
            scratch: Vec::new(),
            seen: 0,
        };
        let mut buf = vec![0u8; copy_buf_len];
        loop {
            let n = opener.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            verify.write_all(&buf[..n]).unwrap();
        }
        assert_eq!(verify.seen, TOTAL);
    });

    // Bound: the test's own copy buffers and I/O buffers, plus for the library a batch
    // of eight chunks and, once, as the record proves longer than 256 KiB, the four
    // chunks' worth it held while sizing it. A whole-file implementation would need
    // 256 MiB.
    let limit = 2 * copy_buf_len + 64 * 1024 + 12 * (chunk + CHUNK_OVERHEAD);
    println!("peak heap above baseline: seal {seal_peak} B, open {open_peak} B, limit {limit} B");
    assert!(seal_peak < limit, "sealing peaked at {seal_peak} B");
    assert!(open_peak < limit, "opening peaked at {open_peak} B");

    // The directory store takes the sealed image from the file and serves it back as a
    // stream, neither holding it whole: its copy buffer is 1 MiB, its reader's 256 KiB.
    // The radiology department commits the file's digest in a signed batch first (its
    // own hashing pass reads 64 KiB at a time).
    let cloud = common::open_cloud(dir.path().join("store"), &["radiology"]);
    let mut radiology = common::new_provider("radiology", master.clone());
    radiology
        .commit_record(record_id, File::open(&path).unwrap())
        .unwrap();
    cloud.ingest(radiology.finish().unwrap()).unwrap();
    let (stored, store_peak) = common::counting_alloc::peak_during(|| {
        cloud
            .put_record_from(BufReader::new(File::open(&path).unwrap()))
            .unwrap()
    });
    assert_eq!(stored.2, std::fs::metadata(&path).unwrap().len());
    let ((), serve_peak) = common::counting_alloc::peak_during(|| {
        let stream = cloud.record_reader(&stored.0, stored.1).unwrap().unwrap();
        let mut opener = Opener::new(stream, &patient).unwrap();
        let mut verify = Verify {
            expected: Noise(0x5eed),
            scratch: Vec::new(),
            seen: 0,
        };
        io::copy(&mut opener, &mut verify).unwrap();
        assert_eq!(verify.seen, TOTAL);
    });
    let store_limit = (1 << 20) + 64 * 1024 + 4096;
    let serve_limit = limit + (256 << 10) + 8 * 1024;
    println!(
        "store: upload {store_peak} B (limit {store_limit}), serve and open {serve_peak} B (limit {serve_limit})"
    );
    assert!(
        store_peak < store_limit,
        "the store's upload peaked at {store_peak} B"
    );
    assert!(serve_peak < serve_limit, "serving peaked at {serve_peak} B");
}
