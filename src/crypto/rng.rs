//! Randomness from the operating system, and nothing else.

use crate::error::{Error, Result};

/// Fills `out` from the OS random number generator.
pub(crate) fn fill(out: &mut [u8]) -> Result<()> {
    getrandom::fill(out).map_err(|_| Error::Random)
}

/// A fresh random array.
pub(crate) fn array<const N: usize>() -> Result<[u8; N]> {
    let mut out = [0u8; N];
    fill(&mut out)?;
    Ok(out)
}
