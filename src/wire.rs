//! Checked big-endian reading and writing shared by every binary format.
//!
//! Parsers read through [`Reader`], which never panics: every short read is a typed
//! [`Error::Truncated`] naming the format, and [`Reader::finish`] rejects trailing bytes.

use crate::error::{Error, Result};

/// A cursor over an input that turns every short read into a typed error.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    format: &'static str,
    /// Bytes at the end (a checksum) that a length check must not count.
    trailer: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8], format: &'static str) -> Self {
        Reader {
            bytes,
            format,
            trailer: 0,
        }
    }

    /// The same reader, told that the input ends in `trailer` bytes of checksum.
    pub(crate) fn with_trailer(self, trailer: usize) -> Self {
        Reader { trailer, ..self }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len()
    }

    /// Bytes left before the trailer.
    pub(crate) fn remaining_before_trailer(&self) -> usize {
        self.bytes.len().saturating_sub(self.trailer)
    }

    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        if self.bytes.len() < n {
            return Err(Error::Truncated {
                format: self.format,
                detail: what,
            });
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    /// A count of items of at least `min_item_len` bytes each; refuses counts the
    /// remaining input cannot hold, so no caller allocates for items that are not there.
    pub(crate) fn count(
        &mut self,
        width: CountWidth,
        min_item_len: usize,
        what: &'static str,
    ) -> Result<usize> {
        let count = match width {
            CountWidth::U8 => usize::from(self.u8(what)?),
            CountWidth::U32 => self.u32(what)? as usize,
        };
        if count.saturating_mul(min_item_len.max(1)) > self.remaining_before_trailer() {
            return Err(Error::Truncated {
                format: self.format,
                detail: what,
            });
        }
        Ok(count)
    }

    /// Checks the magic, version and algorithm bytes every format starts with; returns
    /// the algorithm, which must be one of `algorithms`.
    pub(crate) fn preamble(
        &mut self,
        magic: &[u8; 4],
        version: u8,
        algorithms: &[u8],
    ) -> Result<u8> {
        if self.take(4, "magic")? != magic {
            return Err(self.malformed("wrong magic bytes"));
        }
        let found = self.u8("version")?;
        if found != version {
            return Err(Error::UnsupportedVersion {
                format: self.format,
                version: found,
            });
        }
        let found = self.u8("algorithm")?;
        if !algorithms.contains(&found) {
            return Err(Error::UnsupportedAlgorithm {
                format: self.format,
                algorithm: found,
            });
        }
        Ok(found)
    }

    pub(crate) fn malformed(&self, detail: &'static str) -> Error {
        Error::Malformed {
            format: self.format,
            detail,
        }
    }

    /// Ends parsing: trailing bytes are an error, never ignored.
    pub(crate) fn finish(self) -> Result<()> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(self.malformed("trailing bytes after the end"))
        }
    }
}

/// The width of a count field.
#[derive(Clone, Copy)]
pub(crate) enum CountWidth {
    U8,
    U32,
}

/// Writes the magic, version and algorithm bytes every format starts with.
pub(crate) fn put_preamble(out: &mut Vec<u8>, magic: &[u8; 4], version: u8, algorithm: u8) {
    out.extend_from_slice(magic);
    out.push(version);
    out.push(algorithm);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_reads_are_typed_errors() {
        let mut r = Reader::new(&[1, 2, 3], "test");
        assert!(matches!(r.u32("x"), Err(Error::Truncated { .. })));
        assert_eq!(r.u8("y").unwrap(), 1);
        assert_eq!(r.u8("z").unwrap(), 2);
        assert!(matches!(r.finish(), Err(Error::Malformed { .. })));
    }

    #[test]
    fn preamble_distinguishes_magic_version_algorithm() {
        let mut good = Vec::new();
        put_preamble(&mut good, b"TEST", 1, 7);
        assert!(Reader::new(&good, "t").preamble(b"TEST", 1, &[7]).is_ok());
        assert!(matches!(
            Reader::new(&good, "t").preamble(b"TESS", 1, &[7]),
            Err(Error::Malformed { .. })
        ));
        assert!(matches!(
            Reader::new(&good, "t").preamble(b"TEST", 2, &[7]),
            Err(Error::UnsupportedVersion { version: 1, .. })
        ));
        assert!(matches!(
            Reader::new(&good, "t").preamble(b"TEST", 1, &[8, 9]),
            Err(Error::UnsupportedAlgorithm { algorithm: 7, .. })
        ));
    }
}
