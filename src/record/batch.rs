//! A batch of sealed records in one body (`MVRB`, FORMAT.md "Record batch"): what a
//! provider uploads to `POST /v1/records/batch` after each index batch, so that a
//! batch of notes is one request and one commit ([`Cloud::put_records`]).
//!
//! [`Cloud::put_records`]: crate::Cloud::put_records

use crate::cloud::{MAX_BATCH_RECORDS, MAX_BATCHED_RECORD};
use crate::error::{Error, Result};
use crate::wire::{CountWidth, Reader, put_preamble};

/// Magic bytes of a record batch.
pub const RECORD_BATCH_MAGIC: &[u8; 4] = b"MVRB";
/// The record batch format version.
pub const RECORD_BATCH_VERSION: u8 = 1;
const ALGORITHM_NONE: u8 = 0;

/// `records` (sealed, 1 to [`MAX_BATCH_RECORDS`], each at most [`MAX_BATCHED_RECORD`]
/// bytes) as one record batch.
pub fn record_batch_bytes(records: &[impl AsRef<[u8]>]) -> Result<Vec<u8>> {
    if records.is_empty() || records.len() > MAX_BATCH_RECORDS {
        return Err(Error::InvalidArgument(
            "a record batch holds 1 to 4096 records",
        ));
    }
    let total: usize = records.iter().map(|r| r.as_ref().len() + 4).sum();
    let mut out = Vec::with_capacity(10 + total);
    put_preamble(
        &mut out,
        RECORD_BATCH_MAGIC,
        RECORD_BATCH_VERSION,
        ALGORITHM_NONE,
    );
    out.extend_from_slice(&(records.len() as u32).to_be_bytes());
    for record in records {
        let record = record.as_ref();
        if record.len() > MAX_BATCHED_RECORD {
            return Err(Error::InvalidArgument(
                "a record in a batch is at most 1 MiB; upload larger ones alone",
            ));
        }
        out.extend_from_slice(&(record.len() as u32).to_be_bytes());
        out.extend_from_slice(record);
    }
    Ok(out)
}

/// The sealed records of a record batch, in order (each still to be checked, as
/// [`Cloud::put_records`](crate::Cloud::put_records) does).
pub fn parse_record_batch(bytes: &[u8]) -> Result<Vec<&[u8]>> {
    let mut reader = Reader::new(bytes, "record batch");
    reader.preamble(RECORD_BATCH_MAGIC, RECORD_BATCH_VERSION, &[ALGORITHM_NONE])?;
    let count = reader.count(CountWidth::U32, 4, "record count")?;
    if count == 0 || count > MAX_BATCH_RECORDS {
        return Err(reader.malformed("a record batch holds 1 to 4096 records"));
    }
    let mut records = Vec::with_capacity(count);
    for _ in 0..count {
        let len = reader.u32("record length")? as usize;
        if len > MAX_BATCHED_RECORD {
            return Err(reader.malformed("a record longer than 1 MiB"));
        }
        records.push(reader.take(len, "record")?);
    }
    reader.finish()?;
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage_truncation_and_unknown_versions() {
        let records: Vec<Vec<u8>> = vec![b"first".to_vec(), Vec::new(), vec![7; 300]];
        let bytes = record_batch_bytes(&records).unwrap();
        assert_eq!(parse_record_batch(&bytes).unwrap(), records);
        for len in 0..bytes.len() {
            assert!(parse_record_batch(&bytes[..len]).is_err(), "cut at {len}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            parse_record_batch(&longer),
            Err(Error::Malformed { .. })
        ));
        let mut version = bytes.clone();
        version[4] = 2;
        assert!(matches!(
            parse_record_batch(&version),
            Err(Error::UnsupportedVersion { .. })
        ));
        let mut magic = bytes.clone();
        magic[0] ^= 1;
        assert!(matches!(
            parse_record_batch(&magic),
            Err(Error::Malformed { .. })
        ));
        // A count the body cannot hold, a zero count, an oversized length.
        let mut count = bytes.clone();
        count[6..10].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            parse_record_batch(&count),
            Err(Error::Truncated { .. })
        ));
        let mut zero = bytes[..6].to_vec();
        zero.extend_from_slice(&0u32.to_be_bytes());
        assert!(parse_record_batch(&zero).is_err());
        let mut huge = bytes[..6].to_vec();
        huge.extend_from_slice(&1u32.to_be_bytes());
        huge.extend_from_slice(&(MAX_BATCHED_RECORD as u32 + 1).to_be_bytes());
        huge.resize(huge.len() + MAX_BATCHED_RECORD + 1, 0);
        assert!(matches!(
            parse_record_batch(&huge),
            Err(Error::Malformed { .. })
        ));
        assert!(parse_record_batch(b"garbage garbage").is_err());
        let empty: [&[u8]; 0] = [];
        assert!(record_batch_bytes(&empty).is_err());
        assert!(record_batch_bytes(&[vec![0u8; MAX_BATCHED_RECORD + 1]]).is_err());
    }
}
