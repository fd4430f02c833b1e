//! Sealed records: the STREAM construction over AES-256-EAX, one-shot for records that
//! fit in memory ([`seal`](crate::seal), [`open`](crate::open)) and streaming for
//! images ([`Sealer`](crate::Sealer), [`Opener`](crate::Opener)).

pub(crate) mod batch;
mod chunk;
pub(crate) mod header;
pub(crate) mod incremental;
pub(crate) mod seal;
pub(crate) mod stream;
