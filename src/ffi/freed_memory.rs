//! Tests that plaintext handed to C never stays behind in freed memory.
//!
//! The library's unit-test binary runs on [`Scanning`], an allocator that forwards to
//! the system's and, while a test watches on its thread, looks for a marker in every
//! block it frees. Its `realloc` always moves, so every growth or shrink of a buffer
//! frees the old block through that check: a copy left unwiped is found whatever the
//! system allocator would have done in place.
//!
//! No marker may reach the system allocator's free lists: a block handed to another
//! test's thread (threads share malloc arenas under load) and freed there only partly
//! overwritten would be counted as that test's leak. So the marked plaintext of the
//! tests wipes itself, and a found leak is wiped after it is counted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Sixteen bytes no test writes except as the plaintext under watch.
const MARKER: &[u8; 16] = b"PLAINTEXT-MARKER";

thread_local! {
    /// Whether a test watches this thread's frees.
    static WATCHING: Cell<bool> = const { Cell::new(false) };
    /// Freed blocks that still held the marker while this thread was watched (per
    /// thread, so tests running side by side do not count each other's).
    static FOUND: Cell<usize> = const { Cell::new(0) };
}

pub(crate) struct Scanning;

fn watching() -> bool {
    WATCHING.try_with(Cell::get).unwrap_or(false)
}

// SAFETY: every block comes from and goes back to the system allocator with the caller's
// layout; the scan only reads a block the caller is freeing, before it is freed.
unsafe impl GlobalAlloc for Scanning {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if watching() && layout.size() >= MARKER.len() {
            // SAFETY: `ptr` is a live block of `layout.size()` bytes the caller owns
            // and is freeing; nothing else uses it now.
            let block = unsafe { std::slice::from_raw_parts_mut(ptr, layout.size()) };
            if block.windows(MARKER.len()).any(|w| w == MARKER) {
                let _ = FOUND.try_with(|found| found.set(found.get() + 1));
                block.fill(0);
            }
        }
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Always move, so the old block goes through `dealloc`'s check.
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return std::ptr::null_mut();
        };
        // SAFETY: a valid non-zero layout (the caller's alignment, its new size).
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are live and distinct, each at least this long.
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
            // SAFETY: the caller's block, with its layout, freed once.
            unsafe { self.dealloc(ptr, layout) };
        }
        new
    }
}

/// Runs `f` while watching this thread's frees; returns how many freed blocks still
/// held the marker.
fn leaks_during(f: impl FnOnce()) -> usize {
    let before = FOUND.with(Cell::get);
    WATCHING.with(|w| w.set(true));
    f();
    WATCHING.with(|w| w.set(false));
    FOUND.with(Cell::get) - before
}

/// Plaintext under watch, wiped when dropped (see the module's note).
fn marked(copies: usize) -> zeroize::Zeroizing<Vec<u8>> {
    zeroize::Zeroizing::new(MARKER.repeat(copies))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::bytes::{medvault_bytes, medvault_bytes_free, put};
    use crate::{IncrementalOpener, MasterKey, PatientId, ProviderId, RecordId};

    fn empty() -> medvault_bytes {
        medvault_bytes {
            data: std::ptr::null_mut(),
            len: 0,
        }
    }

    #[test]
    fn the_detector_sees_a_shrink_that_leaves_plaintext_behind() {
        // A control: without it, a detector that finds nothing proves nothing.
        let mut spare = Vec::with_capacity(4096);
        spare.extend_from_slice(&marked(16));
        assert_eq!(leaks_during(|| drop(spare.into_boxed_slice())), 2);
    }

    #[test]
    fn outputs_with_spare_capacity_are_copied_and_wiped() {
        for (len, capacity) in [(16, 16), (256, 4096), (16 * 1000, 16 * 1001)] {
            let mut value = Vec::with_capacity(capacity);
            value.extend_from_slice(&marked(len / 16));
            let mut out = empty();
            let leaks = leaks_during(|| {
                assert!(put(&mut out, value).is_ok());
                assert_eq!(out.len, len);
                // SAFETY: `out` was filled by `put` and not modified.
                unsafe { medvault_bytes_free(&mut out) };
            });
            assert_eq!(leaks, 0, "{len} bytes in a capacity of {capacity}");
        }
    }

    #[test]
    fn streaming_open_as_the_c_abi_does_it_frees_no_plaintext() {
        let master = MasterKey::from_bytes([3; 32]);
        let key = master.patient_key(
            &ProviderId::new("radiology").unwrap(),
            &PatientId::new("MRN-1").unwrap(),
            0,
        );
        let plaintext = marked((1 << 20) / 16); // 16 chunks: batches of 1, 4, 4, 4 and 3
        let sealed =
            crate::seal(&key.record_key(RecordId::from_bytes([1; 16])), &plaintext).unwrap();
        // Pieces that end inside a batch, and the whole record at once (one call then
        // opens several batches into one vector).
        for piece_len in [7001, sealed.len()] {
            let mut opener = IncrementalOpener::new(key.clone());
            let mut opened = 0;
            let leaks = leaks_during(|| {
                // As `medvault_opener_update` and `_finish`: a fresh vector per call, then
                // handed out through `put` and freed through `medvault_bytes_free`.
                for piece in sealed.chunks(piece_len) {
                    let mut plain = Vec::new();
                    opener.update(piece, &mut plain).unwrap();
                    let mut out = empty();
                    assert!(put(&mut out, plain).is_ok());
                    opened += out.len;
                    // SAFETY: filled by `put`, unmodified.
                    unsafe { medvault_bytes_free(&mut out) };
                }
                let mut plain = Vec::new();
                opener.finish(&mut plain).unwrap();
                let mut out = empty();
                assert!(put(&mut out, plain).is_ok());
                opened += out.len;
                // SAFETY: filled by `put`, unmodified.
                unsafe { medvault_bytes_free(&mut out) };
            });
            assert_eq!(opened, plaintext.len());
            assert_eq!(leaks, 0, "pieces of {piece_len} bytes");
        }
    }
}
