//! The PostgreSQL store's schema (FORMAT.md "PostgreSQL store"), versioned, and the
//! migrations that bring a database to the version this build writes. Every table is
//! prefixed `medvault_` so the store can share a database with an application.

use postgres::Client;

use crate::error::{Error, Result};
use crate::store::postgres::pool::database;

/// The schema version this build reads and writes.
pub const SCHEMA_VERSION: i32 = 1;

/// Version 1. Labels are `uuid` values: 16 bytes of fixed width, which the index
/// compares as one memory comparison where `bytea` needs a length-prefixed one (half
/// the time of a search round, bench `store/search-10-results-256-epochs`).
/// `medvault_entries` is created only if missing, so an operator can
/// create it first as a partitioned table (hash on `label`, FORMAT.md and
/// docs/postgres.md) and the store uses it unchanged.
const V1: &str = "
CREATE TABLE medvault_providers (
    provider   text PRIMARY KEY,
    verifying  bytea NOT NULL,
    encryption bytea NOT NULL
);
CREATE TABLE medvault_epochs (
    provider     text    NOT NULL,
    epoch        integer NOT NULL CHECK (epoch >= 0),
    generation   integer NOT NULL,
    entries      integer NOT NULL,
    pairs_root   bytea   NOT NULL,
    records      integer NOT NULL,
    records_root bytea   NOT NULL,
    signature    bytea   NOT NULL,
    PRIMARY KEY (provider, epoch)
);
CREATE TABLE IF NOT EXISTS medvault_entries (
    label    uuid    NOT NULL,
    provider text    NOT NULL,
    epoch    integer NOT NULL,
    value    bytea   NOT NULL,
    PRIMARY KEY (label, provider)
);
CREATE TABLE medvault_committed (
    provider text    NOT NULL,
    record   bytea   NOT NULL,
    epoch    integer NOT NULL,
    place    integer NOT NULL,
    digest   bytea   NOT NULL,
    PRIMARY KEY (provider, record)
);
CREATE TABLE medvault_records (
    provider    text    NOT NULL,
    record      bytea   NOT NULL,
    size        bigint  NOT NULL,
    uploaded_at bigint  NOT NULL,
    chunks      integer NOT NULL,
    digest      bytea   NOT NULL,
    PRIMARY KEY (provider, record)
);
CREATE TABLE medvault_record_chunks (
    provider text    NOT NULL,
    record   bytea   NOT NULL,
    chunk    integer NOT NULL,
    crc      bigint  NOT NULL,
    bytes    bytea   NOT NULL,
    PRIMARY KEY (provider, record, chunk)
);
-- Sealed records are ciphertext: compressing them only costs time.
ALTER TABLE medvault_record_chunks ALTER COLUMN bytes SET STORAGE EXTERNAL;
CREATE TABLE medvault_broker (
    seq     bigserial PRIMARY KEY,
    kind    smallint  NOT NULL,
    payload bytea     NOT NULL
);
";

/// Brings the database to [`SCHEMA_VERSION`] in one transaction (two stores opening
/// a new database at once: one creates, the other waits on the lock, then finds it
/// done). A database written by a newer build is refused.
pub(crate) fn migrate(client: &mut Client) -> Result<()> {
    let err = |e: postgres::Error| database("apply the schema", &e);
    let mut tx = client.transaction().map_err(err)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS medvault_schema (version integer NOT NULL);
         LOCK TABLE medvault_schema IN EXCLUSIVE MODE;",
    )
    .map_err(err)?;
    let version: i32 = tx
        .query_opt("SELECT max(version) FROM medvault_schema", &[])
        .map_err(err)?
        .and_then(|row| row.get::<_, Option<i32>>(0))
        .unwrap_or(0);
    if version > SCHEMA_VERSION {
        return Err(Error::UnsupportedVersion {
            format: "PostgreSQL store schema",
            version: u8::try_from(version).unwrap_or(u8::MAX),
        });
    }
    if version < 1 {
        tx.batch_execute(V1).map_err(err)?;
        tx.execute("INSERT INTO medvault_schema (version) VALUES (1)", &[])
            .map_err(err)?;
    }
    tx.commit().map_err(err)
}
