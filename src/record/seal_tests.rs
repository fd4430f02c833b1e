//! Unit tests of `seal`.

use super::*;

#[test]
fn the_one_shot_chunk_size_follows_the_length() {
    let smallest = SMALLEST_SPLIT_CHUNK_SIZE as usize;
    let default = DEFAULT_CHUNK_SIZE as usize;
    // One chunk up to the smallest split, then at most eight chunks of a power of two
    // up to eight default chunks, then the default.
    assert_eq!(chunk_size_for(0), DEFAULT_CHUNK_SIZE);
    assert_eq!(chunk_size_for(smallest), DEFAULT_CHUNK_SIZE);
    assert_eq!(chunk_size_for(smallest + 1), SMALLEST_SPLIT_CHUNK_SIZE);
    assert_eq!(chunk_size_for(8 * smallest), SMALLEST_SPLIT_CHUNK_SIZE);
    assert_eq!(
        chunk_size_for(8 * smallest + 1),
        2 * SMALLEST_SPLIT_CHUNK_SIZE
    );
    assert_eq!(chunk_size_for(64 << 10), 8 << 10);
    assert_eq!(chunk_size_for(8 * default), DEFAULT_CHUNK_SIZE);
    assert_eq!(chunk_size_for(8 * default + 1), DEFAULT_CHUNK_SIZE);
    assert_eq!(chunk_size_for(usize::MAX), DEFAULT_CHUNK_SIZE);
    let mut previous = 0;
    for len in (0..=9 * default).step_by(997) {
        let chunk = chunk_size_for(len) as usize;
        assert!(chunk.is_power_of_two() && (smallest..=default).contains(&chunk));
        let chunks = len.div_ceil(chunk).max(1);
        if len > smallest && len <= 8 * default {
            assert!(chunks <= 8, "{len} bytes in {chunks} chunks of {chunk}");
            assert!(chunk >= previous, "chunk sizes grow with the length");
            previous = chunk;
        }
        if chunk > smallest && len > smallest && len <= 8 * default {
            // Never needlessly small: half the size would take more than eight.
            assert!(
                len > 4 * chunk,
                "{len} bytes could use chunks of {}",
                chunk / 2
            );
        }
    }
}

fn chunks_for(len: usize, chunk: usize) -> usize {
    len.div_ceil(chunk).max(1)
}

#[test]
fn records_chunked_by_length_split_from_twelve_default_chunks() {
    let default = DEFAULT_CHUNK_SIZE as usize;
    for len in (0..=16 * default)
        .step_by(4099)
        .chain([11 * default, 11 * default + 1])
    {
        let chunks = chunks_for(len, chunk_size_for(len) as usize);
        assert_eq!(
            worth_splitting(len, chunks),
            len > 11 * default,
            "{len} bytes in {chunks} chunks"
        );
    }
}

#[test]
fn small_records_in_tiny_chunks_stay_on_the_calling_thread() {
    // Many chunks, little work: the pool's hand-off would cost more than the work.
    assert!(!worth_splitting(1024, chunks_for(1024, 16)));
    assert!(!worth_splitting(4096, chunks_for(4096, 16)));
    assert!(!worth_splitting(16 << 10, chunks_for(16 << 10, 256)));
    assert!(!worth_splitting(64 << 10, chunks_for(64 << 10, 4096)));
    // Enough work, whether from bytes or from chunks.
    assert!(worth_splitting(16 << 10, chunks_for(16 << 10, 16)));
    assert!(worth_splitting(256 << 10, chunks_for(256 << 10, 1024)));
    // Both halves must get work, however large the chunks.
    assert!(!worth_splitting(11 * MAX_CHUNK_SIZE as usize, 11));
    assert!(worth_splitting(12 * MAX_CHUNK_SIZE as usize, 12));
    // No overflow at the extremes.
    assert!(worth_splitting(usize::MAX, usize::MAX));
    assert!(!worth_splitting(usize::MAX, 1));
}
