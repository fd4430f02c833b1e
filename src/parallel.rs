//! The library's one parallelism policy: which work goes to several threads, and which
//! threads.
//!
//! **Which work.** Handing work to a pool and joining costs a few microseconds, so a
//! job is split only when its estimated one-thread cost is at least [`SPLIT_MIN`]
//! ([`worth_splitting`]). Each kind of work has one weight below ([`Work`]); the weights
//! are calibrated so that each kind splits where its criterion bench measured the pool
//! to start paying (the bench is named beside each weight). Small records, short lists
//! and one-result searches therefore never wake a thread.
//!
//! **Which threads.** All parallel work runs in one pool: rayon's global pool by
//! default (sized by `RAYON_NUM_THREADS` or the core count), or the pool the embedding
//! program chose with [`set_threads`](crate::set_threads) (`medvault_set_threads` in
//! C); with one thread everything runs on the caller's thread and no pool is started.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use crate::error::{Error, Result};

/// The estimated one-thread cost, in nanoseconds, from which a job is split.
pub(crate) const SPLIT_MIN: u64 = 30_000;

/// A job's estimated one-thread cost, in nanoseconds, built from the weight of its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Work(u64);

impl Work {
    /// Sealing or opening `bytes` in `chunks` chunks: per byte, plus a per-chunk cost
    /// (a nonce, an OMAC finish, a tag); bench `seal` (`seal_with_chunk_size` rows),
    /// where the pool paid from about 96 KiB of one-thread work.
    pub(crate) fn seal(bytes: usize, chunks: usize) -> Work {
        const PICOS_PER_BYTE: u64 = 306;
        const BYTES_PER_CHUNK: u64 = 256;
        let bytes = (bytes as u64).saturating_add((chunks as u64).saturating_mul(BYTES_PER_CHUNK));
        Work(bytes.saturating_mul(PICOS_PER_BYTE) / 1000)
    }

    /// Expanding and probing `leaves` epochs of a token; bench `index`
    /// (`search/64-epochs`), where splitting paid from 16 leaves.
    pub(crate) fn search_leaves(leaves: u64) -> Work {
        Work(leaves.saturating_mul(1_900))
    }

    /// Reading (cloud) or opening (requester) `records` result records; bench `index`
    /// (`search/.../1000-results`), where the pool paid from 16 records.
    pub(crate) fn records(records: usize) -> Work {
        Work((records as u64).saturating_mul(1_900))
    }

    /// Checking `labels` of an ingested batch against every segment; bench `store`
    /// (`ingest`), where the pool paid from 4,096 labels.
    pub(crate) fn label_checks(labels: usize) -> Work {
        Work((labels as u64).saturating_mul(15) / 2)
    }

    /// Hashing `count` Merkle leaves or nodes (SHA-256 of one or two blocks): an
    /// estimate of 250 ns each, not yet calibrated by a bench of its own; the hashing
    /// runs inside bench `index` (`build` rows) and bench `store` (`ingest`).
    pub(crate) fn hashes(count: usize) -> Work {
        Work((count as u64).saturating_mul(250))
    }

    /// Sorting `labels` of a new batch; bench `index` (`build`), where the parallel sort
    /// paid above 16,384 labels.
    pub(crate) fn label_sort(labels: usize) -> Work {
        Work((labels as u64).saturating_mul(11) / 6)
    }

    /// Merging `entries` of segments by label; bench `index` (`merge`), where the
    /// partitioned merge paid above 65,536 entries.
    pub(crate) fn merge(entries: usize) -> Work {
        Work((entries as u64).saturating_mul(15) / 32)
    }

    /// Building the entries of `lists` posting lists (one KDF and one GGM walk each);
    /// bench `index` (`build`), where the pool paid above 256 lists.
    pub(crate) fn build_lists(lists: usize) -> Work {
        Work((lists as u64).saturating_mul(117))
    }
}

/// The most threads [`set_threads`] starts: more is a mistake, not a configuration.
pub(crate) const MAX_THREADS: usize = 1024;

/// What the embedding program chose. Read on every split decision, so it is an atomic
/// (bench `index`, `search/1024-epochs` rows: a lock read there cost more than the
/// split saves); the pool itself is only touched when work is handed to it.
static MODE: AtomicU8 = AtomicU8::new(DEFAULT_POOL);
const DEFAULT_POOL: u8 = 0;
const SERIAL: u8 = 1;
const OWN_POOL: u8 = 2;

/// The pool of medvault's own, when `MODE` is `OWN_POOL`, and its thread count.
static POOL: RwLock<Option<Arc<rayon::ThreadPool>>> = RwLock::new(None);
static POOL_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Chooses the threads medvault's parallel work runs on: `0` for rayon's global pool
/// (the default), `1` for the caller's thread only, `n` for a pool of `n` threads of
/// medvault's own (at most 1,024). Work already running keeps the threads it started
/// on. Small records and small searches never leave the caller's thread, whatever the
/// choice. Called from inside a rayon pool of the program's own, medvault's parallel
/// work runs in that pool.
///
/// ```
/// // An EHR server that keeps one core for itself on a four-core machine:
/// medvault::set_threads(3)?;
/// # medvault::set_threads(0)?;
/// assert!(medvault::set_threads(100_000).is_err());
/// # Ok::<(), medvault::Error>(())
/// ```
pub fn set_threads(threads: usize) -> Result<()> {
    if threads > MAX_THREADS {
        return Err(Error::InvalidArgument("more than 1,024 threads"));
    }
    let mut pool = POOL.write().unwrap_or_else(|e| e.into_inner());
    match threads {
        0 | 1 => {
            MODE.store(
                if threads == 0 { DEFAULT_POOL } else { SERIAL },
                Ordering::Release,
            );
            *pool = None;
        }
        n => {
            let built = rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .thread_name(|i| format!("medvault-{i}"))
                .build()
                .map_err(|_| Error::InvalidArgument("the thread pool could not be started"))?;
            *pool = Some(Arc::new(built));
            POOL_THREADS.store(n, Ordering::Release);
            MODE.store(OWN_POOL, Ordering::Release);
        }
    }
    Ok(())
}

/// Threads available to parallel work (1 when the caller chose serial work).
pub(crate) fn threads() -> usize {
    match MODE.load(Ordering::Acquire) {
        SERIAL => 1,
        OWN_POOL if rayon::current_thread_index().is_none() => POOL_THREADS.load(Ordering::Acquire),
        _ => rayon::current_num_threads(),
    }
}

/// Whether `work` is worth handing to the pool: enough of it, and more than one thread.
/// (The thread count is asked last: asking starts rayon's global pool.)
pub(crate) fn worth_splitting(work: Work) -> bool {
    work.0 >= SPLIT_MIN && threads() > 1
}

/// Runs `job` (which uses rayon's parallel iterators or `join`) in the chosen pool.
/// Called from a thread of a pool (medvault's own, or the program's), it runs there.
pub(crate) fn run<R: Send>(job: impl FnOnce() -> R + Send) -> R {
    if MODE.load(Ordering::Acquire) != OWN_POOL || rayon::current_thread_index().is_some() {
        return job();
    }
    let pool = POOL.read().unwrap_or_else(|e| e.into_inner()).clone();
    match pool {
        Some(pool) => pool.install(job),
        None => job(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_jobs_never_split_and_the_weights_keep_their_break_even_points() {
        // Each kind splits where its bench measured the pool to start paying.
        let splits = |w: Work| w.0 >= SPLIT_MIN;
        assert!(!splits(Work::search_leaves(15)) && splits(Work::search_leaves(16)));
        assert!(!splits(Work::records(15)) && splits(Work::records(16)));
        assert!(!splits(Work::label_checks(3900)) && splits(Work::label_checks(4096)));
        assert!(!splits(Work::label_sort(16_000)) && splits(Work::label_sort(16_500)));
        assert!(!splits(Work::merge(60_000)) && splits(Work::merge(66_000)));
        assert!(!splits(Work::build_lists(256)) && splits(Work::build_lists(257)));
        assert!(!splits(Work::seal(95 << 10, 0)) && splits(Work::seal(96 << 10, 0)));
        // No overflow at the extremes.
        assert!(splits(Work::seal(usize::MAX, usize::MAX)));
        assert!(splits(Work::records(usize::MAX)));
    }

    #[test]
    fn the_chosen_pool_runs_the_work() {
        // One test changes the process-wide choice, and puts the default back.
        set_threads(3).unwrap();
        assert_eq!(threads(), 3);
        let inside = run(rayon::current_num_threads);
        assert_eq!(inside, 3);
        assert!(set_threads(MAX_THREADS + 1).is_err());
        set_threads(1).unwrap();
        assert_eq!(threads(), 1);
        assert!(!worth_splitting(Work::records(1_000_000)));
        set_threads(0).unwrap();
        assert_eq!(threads(), rayon::current_num_threads());
    }
}
