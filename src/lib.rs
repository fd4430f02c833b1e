//! # medvault
//!
//! Client-side encryption of medical records, and searchable encryption across care
//! providers, for a cloud that is not trusted with the data.
//!
//! Providers (a hospital, a lab, a pharmacy, a patient) seal records on their side
//! before upload; the cloud stores sealed bytes and never holds a key. This crate is
//! the library EHR software links, from Rust or through its C ABI.
//!
//! ## Sealing a record
//!
//! ```
//! use medvault::{MasterKey, PatientId, ProviderId, RecordId};
//! let master = MasterKey::generate()?;                       // keep it in a key file
//! let hospital = ProviderId::new("st-mary-hospital")?;
//! let patient = master.patient_key(&hospital, &PatientId::new("+15550100")?, 0);
//! let record = RecordId::generate()?;
//! let sealed = medvault::seal(&patient.record_key(record), b"Type 2 diabetes; metformin 500 mg")?;
//! // `sealed` can go to the cloud. Only a holder of the patient or record key opens it:
//! assert_eq!(medvault::open(&patient, &sealed)?, b"Type 2 diabetes; metformin 500 mg");
//! # Ok::<(), medvault::Error>(())
//! ```
//!
//! Large files (images) stream through [`Sealer`] and [`Opener`] in constant memory.
//! The formats are specified in `FORMAT.md`, what each operation leaks in
//! `SECURITY.md`.
#![deny(unsafe_code)]
#![warn(missing_docs)]
// Bad input gets a typed error, never a panic: library code has no `unwrap`, `expect` or
// `panic!` (an internal invariant that needs one says why where it is allowed).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod cloud;
mod crypto;
mod error;
mod ffi;
#[cfg(test)]
mod format_examples;
mod grant;
mod index;
mod keys;
#[cfg(feature = "lab")]
pub mod lab;
mod parallel;
mod provider;
mod record;
#[cfg(feature = "remote")]
pub mod remote;
mod requester;
mod service;
mod store;
mod wire;

// One path per item: types at the crate root, free functions of a concept in its
// namespace (`keyword`, `keyfile`, `lab`). Everything else is internal.
pub use cloud::{Cloud, MAX_BATCH_RECORDS, MAX_BATCHED_RECORD};
pub use error::{Error, KeyMismatch, Result};
pub use grant::{
    AccessRequest, Grant, GrantedKey, OpenedGrant, OpenedRequest, PendingRequest, Rekey, Scope,
    ScopeKind,
};
pub use grant::{AdminView, RequestStatus, RequestSummary};
pub use index::keyword;
pub use index::manifest::Manifest;
pub use index::query::{Combine, Query, SearchResponse};
pub use index::{IndexBatch, Op};
pub use keys::identity::{
    DecryptionKey, EncryptionKey, Fingerprint, Identity, PublicIdentity, SigningKey, VerifyingKey,
};
pub use keys::keyfile;
pub use keys::{
    MasterKey, PatientId, PatientKey, ProviderId, RecordId, RecordKey, RecordKeySource,
};
pub use parallel::set_threads;
pub use provider::{IndexOptions, Provider, ProviderState, SealedRecord};
pub use record::batch::{
    RECORD_BATCH_MAGIC, RECORD_BATCH_VERSION, parse_record_batch, record_batch_bytes,
};
pub use record::header::{
    CHUNK_OVERHEAD, DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE, RecordHeader,
};
pub use record::incremental::IncrementalOpener;
pub use record::seal::{
    chunk_size_for, open, open_into, opened_len, seal, seal_into, seal_with_chunk_size, sealed_len,
};
pub use record::stream::{Opener, Sealer};
#[cfg(feature = "remote")]
pub use remote::RemoteCloud;
pub use requester::{OpenedRecord, PreparedQuery, ProviderResults, Requester, SearchResults};
pub use service::CloudService;
pub use store::{DirStore, MemStore, RecordInfo};
#[cfg(feature = "postgres")]
pub use store::{PG_SCHEMA_VERSION, PgStore};

/// Internals the fuzz targets (`fuzz/`) drive directly. Not part of the API: only
/// built with the `fuzzing` feature.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::store::SegmentFile;
    pub use crate::store::{parse_broker_journal, parse_entry_file, parse_record_table};
}

/// Compiles and runs the README's code blocks as doctests, so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
