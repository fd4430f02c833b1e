//! Sealed records: round trips through both paths, and every way of breaking one.

mod common;

use std::io::{Read, Write};

use common::*;
use medvault::{
    CHUNK_OVERHEAD, DEFAULT_CHUNK_SIZE, Error, IncrementalOpener, KeyMismatch, Opener, PatientKey,
    RecordHeader, RecordId, Sealer, open, open_into, opened_len, seal, seal_into,
    seal_with_chunk_size, sealed_len,
};

fn stream_seal(key: &medvault::RecordKey, data: &[u8], chunk: u32, write_size: usize) -> Vec<u8> {
    let mut sealer = Sealer::with_chunk_size(Vec::new(), key, chunk).unwrap();
    for piece in data.chunks(write_size.max(1)) {
        sealer.write_all(piece).unwrap();
    }
    sealer.finish().unwrap()
}

/// Reads an opener to the end; returns what it produced before the first error.
///
/// The same bytes also go through the push opener in 5-byte pieces: it must reach the
/// same verdict, and never hand out more than the pull opener did.
fn stream_open(
    key: &impl medvault::RecordKeySource,
    sealed: &[u8],
) -> (Vec<u8>, Result<(), Error>) {
    let (pulled, pull_result) = pull_open(key, sealed);
    let (pushed, push_result) = push_open(key, sealed, 5);
    match (&pull_result, &push_result) {
        (Ok(()), Ok(())) => assert_eq!(pushed, pulled),
        (Err(a), Err(b)) => {
            assert_eq!(
                std::mem::discriminant(a),
                std::mem::discriminant(b),
                "pull: {a:?}, push: {b:?}"
            );
            assert!(
                pulled.starts_with(&pushed),
                "push handed out more than pull"
            );
        }
        _ => panic!("pull: {pull_result:?}, push: {push_result:?}"),
    }
    (pulled, pull_result)
}

/// Pushes `sealed` through an [`IncrementalOpener`] in pieces of `piece` bytes.
fn push_open(
    key: &impl medvault::RecordKeySource,
    sealed: &[u8],
    piece: usize,
) -> (Vec<u8>, Result<(), Error>) {
    let mut opener = IncrementalOpener::new(key);
    let mut out = Vec::new();
    for part in sealed.chunks(piece) {
        if let Err(e) = opener.update(part, &mut out) {
            return (out, Err(e));
        }
    }
    let result = opener.finish(&mut out);
    (out, result)
}

fn pull_open(key: &impl medvault::RecordKeySource, sealed: &[u8]) -> (Vec<u8>, Result<(), Error>) {
    let mut opener = match Opener::new(sealed, key) {
        Ok(o) => o,
        Err(e) => return (Vec::new(), Err(e)),
    };
    let mut out = Vec::new();
    let mut buf = [0u8; 7]; // odd size: reads straddle chunk boundaries
    loop {
        match opener.read(&mut buf) {
            Ok(0) => return (out, Ok(())),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return (out, Err(Error::from(e))),
        }
    }
}

/// [`open_into`] a buffer with room to spare, checked against [`open`]: the same
/// verdict (the same error kind), nothing written past the plaintext, and on failure
/// nothing of it left in the buffer.
fn open_into_checked(
    key: &impl medvault::RecordKeySource,
    sealed: &[u8],
) -> Result<Vec<u8>, Error> {
    const FILL: u8 = 0xa5;
    const SPARE: usize = 7;
    let by_open = open(key, sealed);
    let Ok(len) = opened_len(sealed) else {
        let err = open_into(key, sealed, &mut [FILL; 64]).expect_err("no length, no open");
        let want = by_open.expect_err("open agrees");
        assert_eq!(std::mem::discriminant(&err), std::mem::discriminant(&want));
        return Err(err);
    };
    let mut buf = vec![FILL; len + SPARE];
    let result = open_into(key, sealed, &mut buf);
    assert!(
        buf[len..].iter().all(|&b| b == FILL),
        "wrote past the plaintext"
    );
    match (result, by_open) {
        (Ok(n), Ok(want)) => {
            assert_eq!(n, len);
            assert_eq!(&buf[..n], &want[..]);
            buf.truncate(n);
            Ok(buf)
        }
        (Err(err), Err(want)) => {
            assert_eq!(
                std::mem::discriminant(&err),
                std::mem::discriminant(&want),
                "open_into: {err:?}, open: {want:?}"
            );
            assert!(buf[..len].iter().all(|&b| b == 0), "plaintext left behind");
            Err(err)
        }
        (got, want) => panic!("open_into: {got:?}, open: {want:?}"),
    }
}

fn round_trip(key: &PatientKey, data: &[u8], chunk: u32) {
    let record = key.record_key(RecordId::generate().unwrap());
    let one_shot = seal_with_chunk_size(&record, data, chunk).unwrap();
    let streamed = stream_seal(&record, data, chunk, 4093);
    // Same plaintext, same layout; only the random nonce prefix differs.
    assert_eq!(one_shot.len(), streamed.len());
    // The default one-shot path, chunked by length, also into a caller's buffer: the
    // same layout, and nothing written past it.
    let by_length = seal(&record, data).unwrap();
    let header = RecordHeader::parse(&by_length).unwrap().0;
    // (Which size the length picks is the unit test `the_one_shot_chunk_size_follows_the_length`.)
    assert!(header.chunk_size().is_power_of_two() && header.chunk_size() <= DEFAULT_CHUNK_SIZE);
    let len = sealed_len(&record, data.len()).unwrap();
    assert_eq!(len, by_length.len());
    let mut into = vec![0x5a; len + 3];
    assert_eq!(seal_into(&record, data, &mut into).unwrap(), len);
    assert_eq!(&into[len..], &[0x5a; 3]);
    into.truncate(len);
    assert_eq!(
        RecordHeader::parse(&into).unwrap().0.chunk_size(),
        header.chunk_size()
    );
    for sealed in [&one_shot, &streamed, &by_length, &into] {
        assert_eq!(open(key, sealed).unwrap(), data);
        assert_eq!(open(&record, sealed).unwrap(), data);
        assert_eq!(open_into_checked(key, sealed).unwrap(), data);
        let (out, result) = stream_open(key, sealed);
        result.unwrap();
        assert_eq!(out, data);
    }
    for (sealed, chunk) in [(&one_shot, chunk), (&by_length, header.chunk_size())] {
        let chunks = data.len().div_ceil(chunk as usize).max(1);
        let header_len = RecordHeader::parse(sealed).unwrap().1;
        assert_eq!(
            sealed.len(),
            header_len + data.len() + chunks * CHUNK_OVERHEAD
        );
    }
}

#[test]
fn round_trips_at_chunk_boundaries() {
    let key = patient_key(1, "city-lab", "+15550100", 0);
    let chunk = 64u32;
    for len in [0usize, 1, 63, 64, 65, 127, 128, 129, 1000] {
        round_trip(&key, &noise(len, len as u64), chunk);
    }
    // Small records in tiny chunks stay on the calling thread and larger ones go to all
    // cores (the split counts bytes and chunks): both sides, in 16-byte and 1 KiB chunks.
    for (len, chunk) in [(2000, 16), (8000, 16), (16 << 10, 1024), (128 << 10, 1024)] {
        round_trip(&key, &noise(len, len as u64), chunk);
    }
    let chunk = DEFAULT_CHUNK_SIZE as usize;
    // Both sides of the one-core / all-cores boundary (11 and 12 chunks) too.
    for len in [
        0,
        1,
        chunk - 1,
        chunk,
        chunk + 1,
        3 * chunk,
        11 * chunk,
        11 * chunk + 1,
        16 * chunk + 5,
    ] {
        round_trip(&key, &noise(len, len as u64), DEFAULT_CHUNK_SIZE);
    }
}

#[test]
fn round_trips_100_mb() {
    let key = patient_key(2, "radiology", "MRN-0042", 0);
    let data = noise(100_000_000, 42);
    let record = key.record_key(RecordId::generate().unwrap());
    let sealed = seal(&record, &data).unwrap();
    assert_eq!(open(&key, &sealed).unwrap(), data);
    let streamed = stream_seal(&record, &data, DEFAULT_CHUNK_SIZE, 1 << 20);
    let mut opened = Vec::new();
    Opener::new(&streamed[..], &record)
        .unwrap()
        .read_to_end(&mut opened)
        .unwrap();
    assert!(opened == data);
}

#[test]
fn round_trips_dicom_images_and_clinical_notes() {
    let key = patient_key(3, "st-mary-hospital", "+15550123", 0);
    for name in ["dicom/CT_small.dcm", "dicom/SC_rgb_jpeg_dcmd.dcm"] {
        let image = data_file(name);
        assert!(image.len() > 1000, "{name} present");
        round_trip(&key, &image, DEFAULT_CHUNK_SIZE);
        round_trip(&key, &image, 4096);
    }
    round_trip(&key, &clinical_note(300_000), DEFAULT_CHUNK_SIZE);
}

#[test]
fn streaming_is_independent_of_write_and_read_sizes() {
    let key = patient_key(4, "pharmacy", "p", 0);
    let record = key.record_key(RecordId::generate().unwrap());
    let data = noise(5000, 9);
    for write_size in [1, 2, 15, 16, 17, 100, 5000] {
        let sealed = stream_seal(&record, &data, 16, write_size);
        assert_eq!(
            open(&record, &sealed).unwrap(),
            data,
            "write size {write_size}"
        );
        let (out, result) = push_open(&record, &sealed, write_size);
        result.unwrap();
        assert_eq!(out, data, "push size {write_size}");
    }
}

#[test]
fn the_push_opener_is_spent_after_an_error_and_rejects_trailing_bytes() {
    let s = sample();
    // Long enough that `update` completes a batch of chunks (eight), so the damage is
    // found there rather than at `finish`.
    let long =
        seal_with_chunk_size(&s.record, &clinical_note(20 * s.chunk + 5), s.chunk as u32).unwrap();
    let mut bad = long.clone();
    bad[s.header_len + 3] ^= 1;
    let mut opener = IncrementalOpener::new(&s.record);
    let mut out = Vec::new();
    assert!(matches!(
        opener.update(&bad, &mut out),
        Err(Error::AuthenticationFailed { .. })
    ));
    assert!(out.is_empty());
    assert!(matches!(
        opener.update(&s.sealed[..1], &mut out),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        opener.finish(&mut out),
        Err(Error::InvalidArgument(_))
    ));
    // A header alone, or nothing at all, is a truncated record.
    let (_, result) = push_open(&s.record, &s.sealed[..s.header_len], 1000);
    assert!(matches!(result, Err(Error::Truncated { .. })));
    let (_, result) = push_open(&s.record, &[], 1000);
    assert!(matches!(result, Err(Error::Truncated { .. })));
}

/// A record of several small chunks, and where its parts are.
struct Sample {
    key: PatientKey,
    record: medvault::RecordKey,
    data: Vec<u8>,
    sealed: Vec<u8>,
    header_len: usize,
    chunk: usize,
}

fn sample() -> Sample {
    sample_of(5 * 16 + 5) // 6 chunks, the last one short
}

/// Records of one chunk, short and exactly full: `seal` and `open` take their one-pass
/// path (the header's MAC beside the chunk's), which must refuse exactly as the
/// many-chunk path does.
fn lone_chunk_samples() -> [Sample; 2] {
    [sample_of(11), sample_of(16)]
}

fn sample_of(len: usize) -> Sample {
    let key = patient_key(5, "lab", "+15550100", 7);
    let record = key.record_key(RecordId::from_bytes([0x11; 16]));
    let chunk = 16;
    let data = clinical_note(len);
    let sealed = seal_with_chunk_size(&record, &data, chunk as u32).unwrap();
    let header_len = RecordHeader::parse(&sealed).unwrap().1;
    Sample {
        key,
        record,
        data,
        sealed,
        header_len,
        chunk,
    }
}

impl Sample {
    fn stride(&self) -> usize {
        self.chunk + CHUNK_OVERHEAD
    }
    fn chunks(&self) -> Vec<Vec<u8>> {
        self.sealed[self.header_len..]
            .chunks(self.stride())
            .map(<[u8]>::to_vec)
            .collect()
    }
    fn with_chunks(&self, chunks: &[Vec<u8>]) -> Vec<u8> {
        let mut out = self.sealed[..self.header_len].to_vec();
        for c in chunks {
            out.extend_from_slice(c);
        }
        out
    }
    /// Streaming output must be a prefix of the plaintext that ends before `bad_chunk`.
    fn assert_no_unverified_plaintext(&self, out: &[u8], bad_chunk: usize, what: &str) {
        assert!(
            out.len() <= bad_chunk * self.chunk,
            "{what}: plaintext of a failed chunk escaped"
        );
        assert_eq!(
            out,
            &self.data[..out.len()],
            "{what}: output is not the plaintext"
        );
    }
}

/// What flipping a bit at `pos` must produce, by the field the byte belongs to.
fn expected_for_flip(s: &Sample, pos: usize, err: &Error) -> bool {
    let provider_end = 7 + "lab".len();
    match pos {
        0..4 => matches!(err, Error::Malformed { .. }),
        4 => matches!(err, Error::UnsupportedVersion { .. }),
        5 => matches!(err, Error::UnsupportedAlgorithm { .. }),
        // The provider id's length or bytes: unparsable, or a different provider.
        6 => matches!(
            err,
            Error::Malformed { .. }
                | Error::Truncated { .. }
                | Error::WrongKey(KeyMismatch::Provider)
        ),
        p if p < provider_end => matches!(
            err,
            Error::Malformed { .. } | Error::WrongKey(KeyMismatch::Provider)
        ),
        p if p < provider_end + 16 => matches!(err, Error::WrongKey(KeyMismatch::Record)),
        p if p < provider_end + 20 => matches!(err, Error::WrongKey(KeyMismatch::Generation)),
        // Chunk size: out of range, or the chunks no longer authenticate.
        p if p < provider_end + 24 => matches!(
            err,
            Error::Malformed { .. } | Error::AuthenticationFailed { .. }
        ),
        p if p < s.header_len => matches!(err, Error::AuthenticationFailed { .. }),
        _ => matches!(err, Error::AuthenticationFailed { .. }),
    }
}

#[test]
fn every_flipped_bit_is_rejected_with_the_right_error() {
    for s in [sample()].into_iter().chain(lone_chunk_samples()) {
        every_flipped_bit_of(&s);
    }
}

fn every_flipped_bit_of(s: &Sample) {
    assert_eq!(s.header_len, 7 + 3 + 16 + 4 + 4 + 11);
    for pos in 0..s.sealed.len() {
        for bit in 0..8 {
            let mut bad = s.sealed.clone();
            bad[pos] ^= 1 << bit;
            let what = format!("byte {pos} bit {bit}");
            let err = open(&s.record, &bad).expect_err(&what);
            assert!(expected_for_flip(s, pos, &err), "{what}: {err:?}");
            open_into_checked(&s.record, &bad).expect_err(&what);
            let (out, result) = stream_open(&s.record, &bad);
            let err = result.expect_err(&what);
            assert!(expected_for_flip(s, pos, &err), "{what} (stream): {err:?}");
            let bad_chunk = pos.saturating_sub(s.header_len) / s.stride();
            let bad_chunk = if pos < s.header_len { 0 } else { bad_chunk };
            s.assert_no_unverified_plaintext(&out, bad_chunk, &what);
            // With the patient key the record id is an input to key derivation, so a
            // changed id fails authentication instead of the scope check.
            assert!(open(&s.key, &bad).is_err(), "{what} (patient key)");
        }
    }
}

#[test]
fn truncation_at_every_byte_is_rejected() {
    for s in [sample()].into_iter().chain(lone_chunk_samples()) {
        truncation_at_every_byte_of(&s);
    }
}

fn truncation_at_every_byte_of(s: &Sample) {
    for len in 0..s.sealed.len() {
        let cut = &s.sealed[..len];
        let what = format!("cut at {len}");
        let err = open(&s.record, cut).expect_err(&what);
        open_into_checked(&s.record, cut).expect_err(&what);
        let (out, result) = stream_open(&s.record, cut);
        let stream_err = result.expect_err(&what);
        let body = len.saturating_sub(s.header_len);
        if len <= s.header_len || body % s.stride() == 0 {
            // Inside the header, or exactly at a chunk boundary: clearly truncated.
            assert!(matches!(err, Error::Truncated { .. }), "{what}: {err:?}");
            assert!(
                matches!(stream_err, Error::Truncated { .. }),
                "{what}: {stream_err:?}"
            );
        } else {
            // Mid-chunk: the cut chunk no longer authenticates.
            assert!(
                matches!(
                    err,
                    Error::AuthenticationFailed { .. } | Error::Truncated { .. }
                ),
                "{what}: {err:?}"
            );
            assert!(
                matches!(
                    stream_err,
                    Error::AuthenticationFailed { .. } | Error::Truncated { .. }
                ),
                "{what}: {stream_err:?}"
            );
        }
        s.assert_no_unverified_plaintext(&out, body / s.stride(), &what);
    }
}

#[test]
fn appended_bytes_are_rejected() {
    let s = sample();
    for extra in [&[0u8][..], &[0; 16], &s.chunks()[0]] {
        let mut bad = s.sealed.clone();
        bad.extend_from_slice(extra);
        assert!(matches!(
            open(&s.record, &bad),
            Err(Error::AuthenticationFailed { .. })
        ));
        assert!(stream_open(&s.record, &bad).1.is_err());
    }
}

#[test]
fn dropped_duplicated_and_swapped_chunks_are_rejected() {
    let s = sample();
    let chunks = s.chunks();
    let n = chunks.len();
    assert_eq!(n, 6);
    let mut cases: Vec<(String, Vec<Vec<u8>>, usize)> = Vec::new();
    for i in 0..n {
        let mut c = chunks.clone();
        c.remove(i);
        cases.push((format!("drop {i}"), c, i));
        let mut c = chunks.clone();
        c.insert(i, chunks[i].clone());
        cases.push((format!("duplicate {i}"), c, i + 1));
        for j in i + 1..n {
            let mut c = chunks.clone();
            c.swap(i, j);
            cases.push((format!("swap {i} {j}"), c, i));
        }
    }
    for (what, c, first_bad) in cases {
        let bad = s.with_chunks(&c);
        let err = open(&s.record, &bad).expect_err(&what);
        if what == format!("drop {}", n - 1) {
            assert!(
                matches!(
                    err,
                    Error::AuthenticationFailed { .. } | Error::Truncated { .. }
                ),
                "{what}: {err:?}"
            );
        } else {
            assert!(
                matches!(err, Error::AuthenticationFailed { .. }),
                "{what}: {err:?}"
            );
        }
        let (out, result) = stream_open(&s.record, &bad);
        result.expect_err(&what);
        s.assert_no_unverified_plaintext(&out, first_bad, &what);
    }
    // Dropping the last full... dropping every chunk after a full one is a clean cut.
    let cut = s.with_chunks(&chunks[..3]);
    assert!(matches!(
        open(&s.record, &cut),
        Err(Error::Truncated { .. })
    ));
}

#[test]
fn wrong_keys_are_rejected() {
    let s = sample();
    // Another patient at the same provider and generation: same scope, other key bytes.
    let other_patient = patient_key(5, "lab", "+15550199", 7);
    assert!(matches!(
        open(&other_patient, &s.sealed),
        Err(Error::AuthenticationFailed { .. })
    ));
    // Another master key.
    let other_master = patient_key(6, "lab", "+15550100", 7);
    assert!(matches!(
        open(&other_master, &s.sealed),
        Err(Error::AuthenticationFailed { .. })
    ));
    // Same patient at another provider, or in another generation.
    let other_provider = patient_key(5, "hospital", "+15550100", 7);
    assert!(matches!(
        open(&other_provider, &s.sealed),
        Err(Error::WrongKey(KeyMismatch::Provider))
    ));
    let rotated = patient_key(5, "lab", "+15550100", 8);
    assert!(matches!(
        open(&rotated, &s.sealed),
        Err(Error::WrongKey(KeyMismatch::Generation))
    ));
    // The record key of another record.
    let other_record = s.key.record_key(RecordId::from_bytes([0x22; 16]));
    assert!(matches!(
        open(&other_record, &s.sealed),
        Err(Error::WrongKey(KeyMismatch::Record))
    ));
    assert!(matches!(
        Opener::new(&s.sealed[..], &other_record),
        Err(Error::WrongKey(KeyMismatch::Record))
    ));
    // The other record's key, relabelled with this record's id, still fails.
    let forged = medvault::RecordKey::from_bytes(
        s.record.provider().clone(),
        7,
        s.record.record_id(),
        *other_record.expose_secret(),
    );
    assert!(matches!(
        open(&forged, &s.sealed),
        Err(Error::AuthenticationFailed { .. })
    ));
    for key in [&other_patient, &other_master, &other_provider, &rotated] {
        open_into_checked(key, &s.sealed).expect_err("wrong key");
    }
    open_into_checked(&other_record, &s.sealed).expect_err("wrong record key");
    open_into_checked(&forged, &s.sealed).expect_err("forged record key");
    let (out, result) = stream_open(&other_patient, &s.sealed);
    assert!(out.is_empty());
    assert!(matches!(result, Err(Error::AuthenticationFailed { .. })));
}

#[test]
fn garbage_and_bad_arguments_get_typed_errors() {
    let key = patient_key(1, "lab", "p", 0);
    for garbage in [
        &b""[..],
        b"M",
        b"MVRC",
        b"MVRC\x01",
        b"not a record at all, just text",
        &[0xff; 200],
    ] {
        assert!(open(&key, garbage).is_err());
        assert!(open_into_checked(&key, garbage).is_err());
        assert!(stream_open(&key, garbage).1.is_err());
    }
    let mut future = sample().sealed;
    future[4] = 2;
    assert!(matches!(
        open(&key, &future),
        Err(Error::UnsupportedVersion { version: 2, .. })
    ));
    let record = key.record_key(RecordId::generate().unwrap());
    for bad_chunk in [0, 15, 16 * 1024 * 1024 + 1, u32::MAX] {
        assert!(matches!(
            seal_with_chunk_size(&record, b"x", bad_chunk),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            Sealer::with_chunk_size(Vec::new(), &record, bad_chunk),
            Err(Error::InvalidArgument(_))
        ));
    }
}

#[test]
fn buffers_too_short_are_refused_untouched() {
    let key = patient_key(1, "lab", "p", 0);
    let record = key.record_key(RecordId::generate().unwrap());
    // Large enough to take the all-cores path, which must refuse just as early.
    for data in [
        noise(100, 1),
        noise(40 * DEFAULT_CHUNK_SIZE as usize + 9, 2),
    ] {
        let len = sealed_len(&record, data.len()).unwrap();
        let mut short = vec![0x77; len - 1];
        assert!(matches!(
            seal_into(&record, &data, &mut short),
            Err(Error::InvalidArgument(_))
        ));
        assert!(short.iter().all(|&b| b == 0x77), "a refused seal wrote");
        let sealed = seal(&record, &data).unwrap();
        let mut short = vec![0x77; data.len() - 1];
        assert!(matches!(
            open_into(&record, &sealed, &mut short),
            Err(Error::InvalidArgument(_))
        ));
        assert!(short.iter().all(|&b| b == 0x77), "a refused open wrote");
        // A tampered large record: the chunks that verified before the bad one were
        // decrypted into the buffer, and are wiped again.
        let mut bad = sealed.clone();
        let at = bad.len() * 3 / 4;
        bad[at] ^= 1;
        assert!(matches!(
            open_into_checked(&record, &bad),
            Err(Error::AuthenticationFailed { .. })
        ));
    }
}

#[test]
fn a_sealer_dropped_without_finish_leaves_a_truncated_record() {
    let key = patient_key(1, "lab", "p", 0);
    let record = key.record_key(RecordId::generate().unwrap());
    let mut out = Vec::new();
    {
        let mut sealer = Sealer::with_chunk_size(&mut out, &record, 16).unwrap();
        sealer.write_all(&[7u8; 100]).unwrap();
    }
    assert!(matches!(open(&record, &out), Err(Error::Truncated { .. })));
}

#[test]
fn a_huge_declared_chunk_size_does_not_allocate_it() {
    // Header declaring the largest chunk size, then 20 bytes: the opener must fail on
    // what it has, not reserve 16 MiB first. (Allocation itself is measured in
    // tests/streaming_memory.rs.)
    let key = patient_key(1, "lab", "p", 0);
    let record = key.record_key(RecordId::generate().unwrap());
    let sealed = seal_with_chunk_size(&record, &[1u8; 4], 16 * 1024 * 1024).unwrap();
    assert_eq!(open(&record, &sealed).unwrap(), vec![1u8; 4]);
    let header_len = RecordHeader::parse(&sealed).unwrap().1;
    let short = &sealed[..header_len + 10];
    assert!(matches!(open(&record, short), Err(Error::Truncated { .. })));
    assert!(matches!(
        stream_open(&record, short).1,
        Err(Error::Truncated { .. })
    ));
}

#[test]
fn records_round_trip_on_both_sides_of_every_chunking_boundary() {
    // The boundaries of the length-based chunk size (unit test
    // `the_one_shot_chunk_size_follows_the_length`): one chunk up to 1 KiB, at most eight
    // chunks of a power of two up to eight default chunks, then the default.
    let (smallest, default) = (1024, DEFAULT_CHUNK_SIZE as usize);
    let key = patient_key(9, "city-lab", "+15550100", 0);
    for len in [
        smallest - 1,
        smallest,
        smallest + 1,
        8 * smallest,
        8 * smallest + 1,
        (64 << 10) - 1,
        64 << 10,
        (64 << 10) + 17,
        8 * default,
        8 * default + 1,
    ] {
        round_trip(&key, &noise(len, len as u64), 4096);
    }
}
