//! A byte buffer wiped when it is dropped, at memory speed.
//!
//! `Zeroizing<Vec<u8>>` wipes through `Vec`'s generic `Zeroize`, one volatile byte
//! store at a time over the length and again over the spare capacity: about 10 µs per
//! 64 KiB, as long as sealing the chunk it held (bench `seal`, `stream-*` rows). Slices
//! (and spare capacity as `MaybeUninit` bytes) have `zeroize`'s bulk path instead.

use std::ops::{Deref, DerefMut};

use zeroize::Zeroize;

/// A `Vec<u8>` that holds plaintext or key material: wiped on drop, length and spare
/// capacity alike. Growing it past its capacity moves the bytes and frees the old
/// buffer unwiped, so callers size it up front or grow it through [`WipedVec::grow`].
#[derive(Default)]
pub(crate) struct WipedVec(Vec<u8>);

impl WipedVec {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        WipedVec(Vec::with_capacity(capacity))
    }

    /// Makes room for at least `capacity` bytes in all: a new buffer, the bytes copied,
    /// the old one wiped before it is freed.
    pub(crate) fn grow(&mut self, capacity: usize) {
        if capacity > self.0.capacity() {
            let mut grown = Vec::with_capacity(capacity);
            grown.extend_from_slice(&self.0);
            *self = WipedVec(grown);
        }
    }

    /// Wipes and empties the buffer, keeping its capacity.
    pub(crate) fn wipe(&mut self) {
        wipe_vec(&mut self.0);
    }
}

/// Wipes and empties `bytes`, length and spare capacity, keeping its capacity.
pub(crate) fn wipe_vec(bytes: &mut Vec<u8>) {
    bytes.spare_capacity_mut().zeroize();
    bytes.as_mut_slice().zeroize();
    bytes.clear();
}

impl Drop for WipedVec {
    fn drop(&mut self) {
        self.wipe();
    }
}

impl Deref for WipedVec {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl DerefMut for WipedVec {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wipe empties the buffer and keeps its room, so a batch buffer is reused. (That
    /// the bytes are zeroed is `zeroize`'s bulk path, tested there; safe code cannot
    /// read spare capacity back.)
    #[test]
    fn wipe_empties_and_keeps_the_capacity() {
        let mut buffer = WipedVec::with_capacity(64);
        buffer.extend_from_slice(&[0xA5; 64]);
        buffer.truncate(16);
        buffer.wipe();
        assert!(buffer.is_empty());
        assert_eq!(buffer.capacity(), 64);
    }

    /// Growing keeps the bytes.
    #[test]
    fn grow_keeps_the_bytes() {
        let mut buffer = WipedVec::with_capacity(4);
        buffer.extend_from_slice(b"abcd");
        buffer.grow(1024);
        assert!(buffer.capacity() >= 1024);
        assert_eq!(&buffer[..], b"abcd");
    }
}
