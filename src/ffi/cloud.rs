//! The cloud over a directory store: records, index batches, merges and queries. The
//! access-request broker on the same handle is `ffi/broker.rs`.

use std::ffi::c_char;

use super::bytes::{empty_output, medvault_bytes, put};
use super::identity::medvault_public_identity;
use super::keys::parse_provider;
use super::status::medvault_status;
use super::{
    array, byte_list, ffi_status, ffi_value, free_handle, handle, input, into_handle, invalid,
    output, text, write_array,
};
use crate::cloud::Cloud;
use crate::error::{IoAt, Result};
use crate::keys::RecordId;
use crate::service::CloudService;

/// The cloud: a store directory plus the request broker (`medvault_cloud_open`), or a
/// `medvault-server` reached over HTTPS (`medvault_cloud_connect`); every function
/// taking a `medvault_cloud*` works on either. Thread-safe: one handle may be used
/// from many threads at once (searches run in parallel with each other, with ingests
/// and with merges). One process opens a store directory at a time.
pub struct medvault_cloud {
    pub(super) cloud: Box<dyn CloudService>,
}

/// Opens (or creates) the cloud's store in directory `dir`, verifying every file.
///
/// # Safety
/// `dir` NUL-terminated; `out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_cloud_open(
    dir: *const c_char,
    out: *mut *mut medvault_cloud,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (dir, out) = unsafe { (text(dir, "dir")?, output(out, "out")?) };
        *out = into_handle(medvault_cloud {
            cloud: Box::new(Cloud::open(dir)?),
        });
        Ok(())
    })
}

/// Logs in to the `medvault-server` at `url` (`https://host:port`) as `account`,
/// trusting only the CA certificates in `ca_pem` (PEM, `ca_pem_len` bytes). The handle
/// works with every `medvault_cloud_*` and broker function; the server checks what the
/// account may do (`MEDVAULT_STATUS_REMOTE` with the server's message when it refuses
/// or cannot be reached). `MEDVAULT_STATUS_INVALID_ARGUMENT` in a build without the
/// `remote` feature.
///
/// # Safety
/// `url`, `account`, `password` NUL-terminated; `ca_pem` `ca_pem_len` bytes; `out`
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_cloud_connect(
    url: *const c_char,
    ca_pem: *const u8,
    ca_pem_len: usize,
    account: *const c_char,
    password: *const c_char,
    out: *mut *mut medvault_cloud,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (url, ca_pem, account, password, out) = unsafe {
            (
                text(url, "url")?,
                input(ca_pem, ca_pem_len, "ca_pem")?,
                text(account, "account")?,
                text(password, "password")?,
                output(out, "out")?,
            )
        };
        *out = into_handle(medvault_cloud {
            cloud: connect(url, ca_pem, account, password)?,
        });
        Ok(())
    })
}

#[cfg(feature = "remote")]
fn connect(url: &str, ca: &[u8], account: &str, password: &str) -> Result<Box<dyn CloudService>> {
    Ok(Box::new(crate::remote::RemoteCloud::connect(
        url, ca, account, password,
    )?))
}

#[cfg(not(feature = "remote"))]
fn connect(_: &str, _: &[u8], _: &str, _: &str) -> Result<Box<dyn CloudService>> {
    Err(crate::Error::InvalidArgument(
        "this build of medvault has no remote client (feature `remote`)",
    ))
}

/// What an account on `medvault-server` may do (`medvault_account_register`). Admin
/// accounts are made by the server's operator, not through the API.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum medvault_role {
    /// Writes under its own provider id: the account name is the provider id.
    Provider = 1,
    /// Searches, requests access and reads its own grant mailbox.
    Requester = 2,
}

/// Creates an account on the `medvault-server` at `url`, trusting only the CA
/// certificates in `ca_pem`, as the paper's parties register themselves. `role` is a
/// `medvault_role`. A provider's account name is its provider id and `requester_keys`
/// must be NULL; a requester gives its public identity (`requester_keys`), whose
/// encryption-key fingerprint names the grant mailbox only this account may read.
/// Passwords have at least 12 bytes. `MEDVAULT_STATUS_REMOTE` with the server's reason
/// when it refuses (a taken name: code `account_exists`).
///
/// # Safety
/// `url`, `account`, `password` NUL-terminated; `ca_pem` `ca_pem_len` bytes;
/// `requester_keys` NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_account_register(
    url: *const c_char,
    ca_pem: *const u8,
    ca_pem_len: usize,
    account: *const c_char,
    password: *const c_char,
    role: u32,
    requester_keys: *const medvault_public_identity,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL (`requester_keys` may be).
        let (url, ca_pem, account, password, requester_keys) = unsafe {
            (
                text(url, "url")?,
                input(ca_pem, ca_pem_len, "ca_pem")?,
                text(account, "account")?,
                text(password, "password")?,
                requester_keys.as_ref(),
            )
        };
        let role = match (role, requester_keys) {
            (r, None) if r == medvault_role::Provider as u32 => medvault_role::Provider,
            (r, Some(_)) if r == medvault_role::Requester as u32 => medvault_role::Requester,
            (r, _) if r == medvault_role::Provider as u32 => {
                return Err(invalid("a provider account takes no requester_keys"));
            }
            (r, _) if r == medvault_role::Requester as u32 => {
                return Err(invalid("a requester account needs requester_keys"));
            }
            _ => return Err(invalid("unknown role")),
        };
        Ok(register(
            url,
            ca_pem,
            account,
            password,
            role,
            requester_keys,
        )?)
    })
}

#[cfg(feature = "remote")]
fn register(
    url: &str,
    ca: &[u8],
    account: &str,
    password: &str,
    role: medvault_role,
    requester_keys: Option<&medvault_public_identity>,
) -> Result<()> {
    use crate::remote::{NewAccount, RemoteCloud, Role, hex};
    let mut new = NewAccount {
        account: account.to_owned(),
        password: password.to_owned(),
        role: match role {
            medvault_role::Provider => Role::Provider,
            medvault_role::Requester => Role::Requester,
        },
        fingerprint: requester_keys.map(|keys| hex(&keys.public.encryption.fingerprint())),
    };
    let registered = RemoteCloud::register_account(url, ca, &new);
    zeroize::Zeroize::zeroize(&mut new.password);
    registered
}

#[cfg(not(feature = "remote"))]
fn register(
    _: &str,
    _: &[u8],
    _: &str,
    _: &str,
    _: medvault_role,
    _: Option<&medvault_public_identity>,
) -> Result<()> {
    Err(crate::Error::InvalidArgument(
        "this build of medvault has no remote client (feature `remote`)",
    ))
}

/// Closes the cloud (releasing the directory's lock). NULL is ignored.
///
/// # Safety
/// `cloud` must be NULL or live, not used afterwards by any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_cloud_free(cloud: *mut medvault_cloud) {
    // SAFETY: NULL or live, freed once (contract).
    ffi_value!((), { unsafe { free_handle(cloud) } })
}

/// Stores a sealed record under the provider and id of its header; the id goes to
/// `record_id_out` (16 bytes, may be NULL). Durable when this returns.
///
/// # Safety
/// `cloud` live; `sealed` `sealed_len` bytes; `record_id_out` NULL or 16 writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_cloud_put_record(
    cloud: *const medvault_cloud,
    sealed: *const u8,
    sealed_len: usize,
    record_id_out: *mut u8,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (cloud, sealed) = unsafe {
            (
                handle(cloud, "cloud")?,
                input(sealed, sealed_len, "sealed")?,
            )
        };
        let (_, record, _) = cloud.cloud.put_record_from(&mut &sealed[..])?;
        if !record_id_out.is_null() {
            // SAFETY: non-NULL; 16 writable bytes (contract).
            unsafe { write_array(record_id_out, record.as_bytes()) };
        }
        Ok(())
    })
}

/// Stores `count` sealed records of one provider (`records[i]` holds `record_lens[i]`
/// bytes; 1 to 4096, each at most 1 MiB) in one commit: all of them, or none if any is
/// refused (the status says why). Durable when this returns. Their ids go to
/// `record_ids_out` (16 bytes each, in order; may be NULL). What a provider uploads
/// after each index batch: far fewer fsyncs than one `medvault_cloud_put_record` each.
///
/// # Safety
/// `cloud` live; `records` and `record_lens` `count` items each, `records[i]`
/// `record_lens[i]` readable bytes; `record_ids_out` NULL or `16 * count` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_cloud_put_records(
    cloud: *const medvault_cloud,
    records: *const *const u8,
    record_lens: *const usize,
    count: usize,
    record_ids_out: *mut u8,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (cloud, records) = unsafe {
            (
                handle(cloud, "cloud")?,
                byte_list(records, record_lens, count)?,
            )
        };
        let stored = cloud.cloud.put_records(&records)?;
        if !record_ids_out.is_null() {
            for (i, (_, record, _)) in stored.iter().enumerate() {
                // SAFETY: non-NULL; 16 writable bytes per record (contract), `i` below
                // `count`, so the 16 bytes at `16 * i` are inside them.
                unsafe { write_array(record_ids_out.add(16 * i), record.as_bytes()) };
            }
        }
        Ok(())
    })
}

/// Stores the sealed record in file `path`, streamed (never whole in memory). The id
/// goes to `record_id_out` (NULL allowed), the size to `size_out` (NULL allowed).
///
/// # Safety
/// `cloud` live; `path` NUL-terminated; outputs NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_cloud_put_record_file(
    cloud: *const medvault_cloud,
    path: *const c_char,
    record_id_out: *mut u8,
    size_out: *mut u64,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (cloud, path) = unsafe { (handle(cloud, "cloud")?, text(path, "path")?) };
        let path = std::path::Path::new(path);
        let file = std::fs::File::open(path).at("open", path)?;
        let (_, record, size) = cloud
            .cloud
            .put_record_from(&mut std::io::BufReader::new(file))?;
        if !record_id_out.is_null() {
            // SAFETY: non-NULL; 16 writable bytes (contract).
            unsafe { write_array(record_id_out, record.as_bytes()) };
        }
        // SAFETY: NULL or writable (contract).
        if let Some(size_out) = unsafe { size_out.as_mut() } {
            *size_out = size;
        }
        Ok(())
    })
}

/// The sealed record `record_id` of `provider_id`, whole, in `out`;
/// `MEDVAULT_STATUS_NOT_FOUND` if the cloud does not hold it.
///
/// # Safety
/// `cloud` live; `provider_id` NUL-terminated; `record_id` 16 bytes; `out` an empty
/// `medvault_bytes`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_cloud_get_record(
    cloud: *const medvault_cloud,
    provider_id: *const c_char,
    record_id: *const u8,
    out: *mut medvault_bytes,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (cloud, provider, record, out) = unsafe {
            (
                handle(cloud, "cloud")?,
                text(provider_id, "provider_id")?,
                RecordId::from_bytes(array(record_id, "record_id")?),
                empty_output(out, "out")?,
            )
        };
        let mut sealed = Vec::new();
        cloud
            .cloud
            .record_to(&parse_provider(provider)?, record, &mut sealed)?
            .ok_or(crate::Error::NotFound("a record with that id"))?;
        put(out, sealed)
    })
}

/// Copies the sealed record `record_id` of `provider_id` to file `path` (created or
/// truncated), streamed; the size goes to `size_out` (NULL allowed).
///
/// # Safety
/// `cloud` live; strings NUL-terminated; `record_id` 16 bytes; `size_out` NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_cloud_get_record_file(
    cloud: *const medvault_cloud,
    provider_id: *const c_char,
    record_id: *const u8,
    path: *const c_char,
    size_out: *mut u64,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (cloud, provider, record, path) = unsafe {
            (
                handle(cloud, "cloud")?,
                text(provider_id, "provider_id")?,
                RecordId::from_bytes(array(record_id, "record_id")?),
                text(path, "path")?,
            )
        };
        let provider = parse_provider(provider)?;
        let path = std::path::Path::new(path);
        let mut file = std::fs::File::create(path).at("create", path)?;
        let copied = cloud.cloud.record_to(&provider, record, &mut file);
        let size = match copied {
            Ok(Some(size)) => size,
            failed => {
                // No file is left behind for a record that did not come.
                drop(file);
                let _ = std::fs::remove_file(path);
                return Err(match failed {
                    Err(e) => e,
                    Ok(_) => crate::Error::NotFound("a record with that id"),
                }
                .into());
            }
        };
        file.sync_all().at("sync", path)?;
        // SAFETY: NULL or writable (contract).
        if let Some(size_out) = unsafe { size_out.as_mut() } {
            *size_out = size;
        }
        Ok(())
    })
}

/// Ingests a provider's index batch (from `medvault_provider_finish_batch`) as a new
/// segment. Durable when this returns.
///
/// # Safety
/// `cloud` live; `batch` `batch_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_cloud_ingest(
    cloud: *const medvault_cloud,
    batch: *const u8,
    batch_len: usize,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (cloud, batch) =
            unsafe { (handle(cloud, "cloud")?, input(batch, batch_len, "batch")?) };
        cloud.cloud.ingest_bytes(batch)?;
        Ok(())
    })
}

/// Merges all segments into one, without any key. Searches keep running meanwhile.
///
/// # Safety
/// `cloud` live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_cloud_merge(cloud: *const medvault_cloud) -> medvault_status {
    ffi_status!({
        // SAFETY: live or NULL (contract).
        unsafe { handle(cloud, "cloud") }?.cloud.merge()?;
        Ok(())
    })
}

/// The manifest (each provider's epochs and key generations) a requester needs to
/// build a query.
///
/// # Safety
/// `cloud` live; `out` an empty `medvault_bytes`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_cloud_manifest(
    cloud: *const medvault_cloud,
    out: *mut medvault_bytes,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (cloud, out) = unsafe { (handle(cloud, "cloud")?, empty_output(out, "out")?) };
        put(out, cloud.cloud.manifest()?.to_bytes())
    })
}

/// The epoch the cloud expects next from `provider_id` (0 for a provider it does not
/// know) into `epoch_out`: what `medvault_provider_finish_batch_at` takes.
///
/// # Safety
/// `cloud` live; `provider_id` NUL-terminated; `epoch_out` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_cloud_next_epoch(
    cloud: *const medvault_cloud,
    provider_id: *const c_char,
    epoch_out: *mut u32,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (cloud, provider, epoch_out) = unsafe {
            (
                handle(cloud, "cloud")?,
                text(provider_id, "provider_id")?,
                output(epoch_out, "epoch_out")?,
            )
        };
        *epoch_out = cloud
            .cloud
            .manifest()?
            .next_epoch(&parse_provider(provider)?);
        Ok(())
    })
}

/// Answers a query (from `medvault_prepared_query_bytes`) across every provider it
/// names, in one call; the response goes to `out` for the requester to open.
///
/// # Safety
/// `cloud` live; `query` `query_len` bytes; `out` an empty `medvault_bytes`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_cloud_search(
    cloud: *const medvault_cloud,
    query: *const u8,
    query_len: usize,
    out: *mut medvault_bytes,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above; each pointer checked for NULL.
        let (cloud, query, out) = unsafe {
            (
                handle(cloud, "cloud")?,
                input(query, query_len, "query")?,
                empty_output(out, "out")?,
            )
        };
        put(out, cloud.cloud.search_bytes(query)?.to_bytes())
    })
}
