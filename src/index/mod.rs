//! The searchable index: the scheme in one place.
//!
//! Cash et al.'s packed dictionary (NDSS 2014) made forward-private the way Diana does
//! it (Bost et al., CCS 2017), with symmetric primitives only. A keyword's path, in the
//! order of the modules:
//!
//! * [`keyword`]: what a keyword is (normalization, the clinical tokenizer);
//! * `queue` and `build`: a provider's postings waiting for its next epoch, and the
//!   entries built from them under the epoch's GGM leaf;
//! * `entry`: the label and value PRFs of one leaf (`label_i`, `value_i`);
//! * `batch` and `table`: the batch a provider uploads, and the sorted tables the cloud
//!   keeps and merges by label without any key;
//! * `log`: each provider's signed log, which makes every entry and record
//!   attributable to it;
//! * `manifest`: the public metadata (every provider's epochs) tokens are built from;
//! * `token`: the requester's GGM cover of the epochs that exist;
//! * `search`: the cloud's expansion of a token, its probes and decryptions;
//! * `query`: the query and response formats, and AND / OR on record ids.
//!
//! The GGM tree itself is a primitive (`crypto::ggm`).

mod batch;
pub(crate) mod build;
mod entry;
pub mod keyword;
pub(crate) mod log;
pub(crate) mod manifest;
pub(crate) mod query;
pub(crate) mod queue;
pub(crate) mod search;
mod table;
pub(crate) mod token;

pub use batch::IndexBatch;
pub use entry::Op;
pub(crate) use entry::*;
pub(crate) use table::{Segment, Table};
