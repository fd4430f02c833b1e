//! Process-wide settings of the library: which threads its parallel work runs on.

use super::ffi_status;
use super::status::medvault_status;

/// The largest thread count [`medvault_set_threads`] accepts.
pub const MEDVAULT_MAX_THREADS: usize = 1024;
const _: () = assert!(MEDVAULT_MAX_THREADS == crate::parallel::MAX_THREADS);

/// Chooses the threads medvault's parallel work (sealing large records, large searches,
/// index builds, merges) runs on: `0` for the default pool (sized by
/// `RAYON_NUM_THREADS` or the core count), `1` for the calling thread only (no thread is
/// ever started), `n` for a pool of `n` threads of medvault's own (at most `MEDVAULT_MAX_THREADS`). Calls already running
/// keep the threads they started on. Small records and small searches never use other
/// threads whatever this says. Thread-safe; `MEDVAULT_STATUS_INVALID_ARGUMENT` if the
/// pool cannot be started.
#[unsafe(no_mangle)]
pub extern "C" fn medvault_set_threads(threads: usize) -> medvault_status {
    ffi_status!({ Ok(crate::parallel::set_threads(threads)?) })
}
