//! The directory store's record file (`MVRF`, FORMAT.md "Record file"): one sealed
//! record, its upload time and length, and a SHA-256 over all of it, so that damage on
//! disk is reported by the store (naming the file) before a reader tries to open the
//! record. The trailer comes last so a large record streams to disk in one pass.

use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Error, IoAt, Result};
use crate::store::disk::{Disk, read_exact_at};

/// Magic bytes of a record file.
pub const RECORD_FILE_MAGIC: &[u8; 4] = b"MVRF";
/// The record file format version.
pub const RECORD_FILE_VERSION: u8 = 1;
const ALG_SHA256: u8 = 1;
const HEADER_LEN: u64 = 8;
const TRAILER_LEN: u64 = 8 + 8 + 32;
const COPY_BUFFER: usize = 1 << 20;
/// The largest read buffer of a record file reader.
const READ_BUFFER: usize = 256 * 1024;

fn header() -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..4].copy_from_slice(RECORD_FILE_MAGIC);
    h[4] = RECORD_FILE_VERSION;
    h[5] = ALG_SHA256;
    h
}

fn corrupt(name: &str, what: &str) -> Error {
    Error::Corrupt {
        what: format!("record file {name}: {what}"),
    }
}

/// Streams `sealed` into a new file at `path` and fsyncs it; returns the record's size.
pub(crate) fn write(
    disk: &Disk,
    path: &Path,
    uploaded_at: u64,
    sealed: &mut dyn Read,
) -> Result<u64> {
    let file = disk.create_truncate(path).at("create", path)?;
    let mut hasher = Sha256::new();
    let head = header();
    hasher.update(head);
    disk.write_at(&file, &head, 0).at("write", path)?;
    let mut at = HEADER_LEN;
    let mut buf = vec![0u8; COPY_BUFFER];
    loop {
        let n = match sealed.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        hasher.update(&buf[..n]);
        disk.write_at(&file, &buf[..n], at).at("write", path)?;
        at += n as u64;
    }
    let size = at - HEADER_LEN;
    let mut trailer = Vec::with_capacity(TRAILER_LEN as usize);
    trailer.extend_from_slice(&uploaded_at.to_be_bytes());
    trailer.extend_from_slice(&size.to_be_bytes());
    hasher.update(&trailer);
    trailer.extend_from_slice(&hasher.finalize());
    disk.write_at(&file, &trailer, at).at("write", path)?;
    disk.sync(&file).at("sync", path)?;
    Ok(size)
}

/// The size and upload time of a record file, from its header and trailer (the
/// checksum is checked when the record is read).
pub(crate) fn stat(path: &Path, name: &str) -> Result<(u64, u64)> {
    stat_open(&File::open(path).at("open", path)?, name)
}

/// [`stat`] of a file already open.
fn stat_open(file: &File, name: &str) -> Result<(u64, u64)> {
    let len = file.metadata()?.len();
    if len < HEADER_LEN + TRAILER_LEN {
        return Err(corrupt(name, "shorter than its header and trailer"));
    }
    let mut head = [0u8; HEADER_LEN as usize];
    read_exact_at(file, &mut head, 0)?;
    check_header(&head, name)?;
    let mut tail = [0u8; 16];
    read_exact_at(file, &mut tail, len - TRAILER_LEN)?;
    let uploaded_at = u64::from_be_bytes(tail[..8].try_into().unwrap_or_default());
    let size = u64::from_be_bytes(tail[8..].try_into().unwrap_or_default());
    if size != len - HEADER_LEN - TRAILER_LEN {
        return Err(corrupt(
            name,
            "length does not match the file (torn or truncated)",
        ));
    }
    Ok((size, uploaded_at))
}

fn check_header(head: &[u8], name: &str) -> Result<()> {
    if &head[..4] != RECORD_FILE_MAGIC {
        return Err(corrupt(name, "wrong magic bytes"));
    }
    if head[4] != RECORD_FILE_VERSION {
        return Err(Error::UnsupportedVersion {
            format: "record file",
            version: head[4],
        });
    }
    if head[5] != ALG_SHA256 || head[6..] != [0, 0] {
        return Err(corrupt(name, "header fields"));
    }
    Ok(())
}

/// Reads a whole record file and checks it; returns the sealed record.
pub(crate) fn read(path: &Path, name: &str) -> Result<Vec<u8>> {
    let mut reader = RecordFileReader::open(path, name)?;
    let mut out = Vec::with_capacity(reader.remaining as usize);
    reader.read_to_end(&mut out)?;
    Ok(out)
}

/// Streams a record file's sealed bytes, hashing them; at the end it checks the
/// trailer and fails with [`Error::Corrupt`] (inside the `io::Error`) on a mismatch.
pub(crate) struct RecordFileReader {
    name: String,
    file: io::BufReader<File>,
    remaining: u64,
    hasher: Sha256,
    checked: bool,
}

impl RecordFileReader {
    pub(crate) fn open(path: &Path, name: &str) -> Result<Self> {
        // One open for the checks and the read, and a buffer no larger than the file: a
        // small note then costs no 256 KiB allocation, which the allocator would map
        // and unmap for every record.
        let mut file = File::open(path).at("open", path)?;
        let (size, _) = stat_open(&file, name)?;
        // Positioned reads move the cursor on Windows (not on Unix): start over.
        file.seek(io::SeekFrom::Start(0)).at("read", path)?;
        let whole = size.saturating_add(HEADER_LEN + TRAILER_LEN + 1);
        let capacity = usize::try_from(whole).map_or(READ_BUFFER, |n| n.min(READ_BUFFER));
        let mut file = io::BufReader::with_capacity(capacity, file);
        let mut head = [0u8; HEADER_LEN as usize];
        file.read_exact(&mut head)?;
        check_header(&head, name)?;
        let mut hasher = Sha256::new();
        hasher.update(head);
        Ok(RecordFileReader {
            name: name.to_owned(),
            file,
            remaining: size,
            hasher,
            checked: false,
        })
    }

    fn check_trailer(&mut self) -> Result<()> {
        let mut trailer = [0u8; TRAILER_LEN as usize];
        self.file.read_exact(&mut trailer).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                corrupt(&self.name, "shorter than when it was opened")
            } else {
                e.into()
            }
        })?;
        self.hasher.update(&trailer[..16]);
        let sum = std::mem::take(&mut self.hasher).finalize();
        if sum.as_slice() != &trailer[16..] {
            return Err(corrupt(&self.name, "checksum"));
        }
        let mut extra = [0u8; 1];
        if self.file.read(&mut extra)? != 0 {
            return Err(corrupt(&self.name, "longer than when it was opened"));
        }
        Ok(())
    }
}

impl Read for RecordFileReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            if !self.checked {
                self.check_trailer()?;
                self.checked = true;
            }
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(corrupt(&self.name, "shorter than when it was opened").into());
        }
        self.hasher.update(&buf[..n]);
        self.remaining -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_every_flip_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.mvrf");
        let sealed: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
        let size = write(&Disk::default(), &path, 1_700_000_000, &mut &sealed[..]).unwrap();
        assert_eq!(size, 300);
        assert_eq!(stat(&path, "r").unwrap(), (300, 1_700_000_000));
        assert_eq!(read(&path, "r").unwrap(), sealed);
        let good = std::fs::read(&path).unwrap();
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x20;
            std::fs::write(&path, &bad).unwrap();
            match read(&path, "r") {
                Err(Error::Corrupt { what }) => assert!(what.contains("record file r")),
                Err(Error::UnsupportedVersion { .. }) if at == 4 => {}
                other => panic!("flip at {at}: {other:?}"),
            }
        }
        for len in [0, 7, 8, 55, good.len() - 1] {
            std::fs::write(&path, &good[..len]).unwrap();
            assert!(matches!(read(&path, "r"), Err(Error::Corrupt { .. })));
        }
    }
}
