//! Unit tests of `stream`.

use super::*;
use crate::keys::{MasterKey, PatientId, ProviderId, RecordId};
use crate::record::incremental::IncrementalOpener;
use crate::record::seal::seal_with_prefix;

/// The key of record `[record; 16]` of patient `patient` at provider "lab".
fn record_key(master: u8, patient: &str, generation: u32, record: u8) -> RecordKey {
    MasterKey::from_bytes([master; 32])
        .patient_key(
            &ProviderId::new("lab").unwrap(),
            &PatientId::new(patient).unwrap(),
            generation,
        )
        .record_key(RecordId::from_bytes([record; 16]))
}

/// The streaming sealer, which seals up to [`stream_lanes`] chunks together, writes
/// exactly the bytes of the one-shot `seal` for the same nonce prefix: whatever the
/// length (empty, around one chunk, around a batch of chunks, many batches) and
/// however the input is split into writes.
#[test]
fn the_sealer_writes_what_seal_writes() {
    let key = record_key(4, "MRN-2", 1, 6);
    let prefix = [9u8; NONCE_PREFIX_LEN];
    for chunk in [16usize, 48] {
        let batch = stream_lanes(chunk) * chunk;
        let lengths = [
            0,
            1,
            chunk - 1,
            chunk,
            chunk + 1,
            batch - 1,
            batch,
            batch + 1,
            3 * batch + 5,
            9 * chunk,
        ];
        for len in lengths {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            let expected = seal_with_prefix(&key, &data, chunk as u32, prefix).unwrap();
            for split in [1, 5, chunk, chunk + 3, len.max(1)] {
                let mut sealer =
                    Sealer::with_prefix(Vec::new(), &key, chunk as u32, prefix).unwrap();
                for piece in data.chunks(split) {
                    sealer.write_all(piece).unwrap();
                }
                let sealed = sealer.finish().unwrap();
                assert!(
                    sealed == expected,
                    "chunk {chunk}, {len} bytes, writes of {split}"
                );
            }
        }
    }
}

/// `Sealer::new`, which learns the record's length as it is written, writes exactly
/// what the one-shot `seal` writes (the same chunk size, so the same bytes for the
/// same nonce prefix) at every length where `chunk_size_for` changes its mind and
/// around the sizing limit, however the input is split; and nothing reaches the inner
/// writer before the record proves longer than the limit.
#[test]
fn the_sizing_sealer_writes_what_seal_writes() {
    assert!(chunk_size_for(SIZING_LIMIT) < DEFAULT_CHUNK_SIZE);
    assert_eq!(chunk_size_for(SIZING_LIMIT + 1), DEFAULT_CHUNK_SIZE);
    let key = record_key(5, "MRN-4", 0, 9);
    let prefix = [3u8; NONCE_PREFIX_LEN];
    let lengths = [
        0,
        1,
        1024,
        1025,
        8 << 10,
        (64 << 10) + 1,
        SIZING_LIMIT - 1,
        SIZING_LIMIT,
        SIZING_LIMIT + 1,
        SIZING_LIMIT + 5 * DEFAULT_CHUNK_SIZE as usize + 3,
        2 * STREAM_BATCH_BYTES + 17,
    ];
    for len in lengths {
        let data: Vec<u8> = (0..len).map(|i| (i * 11 + len) as u8).collect();
        let expected = seal_with_prefix(&key, &data, chunk_size_for(len), prefix).unwrap();
        for split in [4099, 65_536, len.max(1)] {
            let mut sealer = Sealer::sizing_with_prefix(Vec::new(), &key, prefix).unwrap();
            let mut written = 0;
            for piece in data.chunks(split) {
                sealer.write_all(piece).unwrap();
                written += piece.len();
                let out = sealer.get_mut().unwrap().len();
                assert_eq!(
                    out == 0,
                    written <= SIZING_LIMIT,
                    "{len} bytes, writes of {split}: {out} bytes out after {written}"
                );
            }
            let sealed = sealer.finish().unwrap();
            assert!(sealed == expected, "{len} bytes, writes of {split}");
            // The C ABI's ending, which seals a short record straight into its vector.
            let mut sealer = Sealer::sizing_with_prefix(Vec::new(), &key, prefix).unwrap();
            let mut taken = Vec::new();
            for piece in data.chunks(split) {
                sealer.write_all(piece).unwrap();
                taken.extend(sealer.get_mut().map(std::mem::take).unwrap());
            }
            taken.extend(sealer.finish_vec().unwrap());
            assert!(
                taken == expected,
                "finish_vec: {len} bytes, writes of {split}"
            );
        }
    }
}

/// Opens `sealed` with the pull opener reading `read` bytes at a time, and with the
/// push opener fed `piece` bytes at a time.
fn both_openers(
    key: &RecordKey,
    sealed: &[u8],
    read: usize,
    piece: usize,
) -> (Result<Vec<u8>>, Result<Vec<u8>>) {
    let pulled = Opener::new(sealed, key).and_then(|mut opener| {
        let mut out = Vec::new();
        let mut buf = vec![0u8; read];
        loop {
            match opener.read(&mut buf) {
                Ok(0) => return Ok(out),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(err) => return Err(Error::from(err)),
            }
        }
    });
    let mut opener = IncrementalOpener::new(key);
    let mut out = Vec::new();
    let pushed = sealed
        .chunks(piece)
        .try_for_each(|part| opener.update(part, &mut out))
        .and_then(|()| opener.finish(&mut out))
        .map(|()| out);
    (pulled, pushed)
}

/// The streaming openers, which open [`stream_lanes`] chunks at a time, give back
/// exactly what was sealed: whatever the length (empty, around one chunk, around a
/// batch, several batches, a batch that ends the record exactly) and however the
/// bytes arrive.
#[test]
fn the_openers_open_every_length_and_split() {
    let key = record_key(4, "MRN-2", 1, 6);
    for chunk in [16usize, 48] {
        let batch = stream_lanes(chunk) * chunk;
        let lengths = [
            0,
            1,
            chunk - 1,
            chunk,
            chunk + 1,
            batch - 1,
            batch,
            batch + 1,
            3 * batch,
            3 * batch + 5,
            9 * chunk,
        ];
        for len in lengths {
            let data: Vec<u8> = (0..len).map(|i| (i * 5 + len) as u8).collect();
            let sealed =
                crate::record::seal::seal_with_chunk_size(&key, &data, chunk as u32).unwrap();
            for split in [1, 5, chunk, chunk + 3, sealed.len()] {
                let (pulled, pushed) = both_openers(&key, &sealed, split, split);
                let what = format!("chunk {chunk}, {len} bytes, pieces of {split}");
                assert!(pulled.unwrap() == data, "pull: {what}");
                assert!(pushed.unwrap() == data, "push: {what}");
            }
        }
    }
}

/// Cut at every byte or with any one byte flipped, a record of nineteen chunks (two
/// batches of eight, the end) fails in both openers exactly as the one-shot `open`
/// fails: same error.
#[test]
fn the_openers_fail_as_open_fails() {
    let key = record_key(8, "MRN-3", 0, 2);
    let chunk = 16usize;
    let data: Vec<u8> = (0..18 * chunk + 7).map(|i| i as u8).collect();
    let sealed = crate::record::seal::seal_with_chunk_size(&key, &data, chunk as u32).unwrap();
    let header_len = RecordHeader::parse(&sealed).unwrap().1;
    // Inside the header the readers word a cut their own way: the same kind of
    // error is enough there. In the chunks, the very same error.
    let same = |bad: &[u8], in_header: bool, what: &str| {
        let expected = crate::record::seal::open(&key, bad).expect_err(what);
        for split in [1, 7, sealed.len()] {
            let (pulled, pushed) = both_openers(&key, bad, split, split);
            for (how, got) in [("pull", pulled), ("push", pushed)] {
                let got = got.expect_err(what);
                if in_header {
                    assert_eq!(
                        core::mem::discriminant(&got),
                        core::mem::discriminant(&expected),
                        "{how}: {what}: {got:?} / {expected:?}"
                    );
                } else {
                    assert_eq!(got.to_string(), expected.to_string(), "{how}: {what}");
                }
            }
        }
    };
    for len in 0..sealed.len() {
        same(&sealed[..len], len < header_len, &format!("cut at {len}"));
    }
    for pos in 0..sealed.len() {
        let mut bad = sealed.clone();
        bad[pos] ^= 0x20;
        same(&bad, pos < header_len, &format!("byte {pos} flipped"));
    }
}

/// A read with room for a whole batch decrypts straight into the caller's buffer; when
/// the batch then fails (a flipped tag, a cut final chunk), the error comes with the
/// buffer wiped: no plaintext of the chunks that verified before it is left there.
#[test]
fn a_failed_read_leaves_no_plaintext_in_the_callers_buffer() {
    let key = record_key(6, "MRN-5", 0, 4);
    let data: Vec<u8> = (0..5 * 16 + 3).map(|i| i as u8 | 0x80).collect();
    let sealed = crate::record::seal::seal_with_chunk_size(&key, &data, 16).unwrap();
    let mut flipped = sealed.clone();
    *flipped.last_mut().unwrap() ^= 1;
    let cut = &sealed[..sealed.len() - 1];
    for (bad, what) in [(&flipped[..], "flipped tag"), (cut, "cut final chunk")] {
        let mut opener = Opener::new(bad, &key).unwrap();
        let mut buf = vec![0xEEu8; sealed.len()];
        let err = Error::from(opener.read(&mut buf).expect_err(what));
        assert!(
            matches!(
                err,
                Error::AuthenticationFailed { .. } | Error::Truncated { .. }
            ),
            "{what}: {err:?}"
        );
        assert!(buf.iter().all(|&b| b == 0), "{what}: plaintext left behind");
    }
    // And a good record opens straight into such a buffer, in one read.
    let mut opener = Opener::new(&sealed[..], &key).unwrap();
    let mut buf = vec![0u8; sealed.len()];
    let n = opener.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], &data[..]);
    assert_eq!(opener.read(&mut buf).unwrap(), 0);
}
