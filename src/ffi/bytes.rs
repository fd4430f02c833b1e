//! Library-owned buffers: one type for every byte output, freed (and wiped) by one
//! function; and lists of them.

use zeroize::Zeroize;

use super::status::medvault_status;
use super::{FfiResult, ffi_status, ffi_value, free_handle, handle, invalid, output};

/// Bytes the library allocated and the caller owns: a sealed record, a batch, a
/// plaintext. Free with `medvault_bytes_free`, which wipes them first.
///
/// Declare it empty (`medvault_bytes out = {0};`) before passing it as an output: a
/// function refuses to overwrite a non-empty one, so nothing leaks. Text outputs are
/// UTF-8 and not NUL-terminated; use `len`.
#[repr(C)]
#[derive(Debug)]
pub struct medvault_bytes {
    /// The bytes, or NULL when `len` is 0.
    pub data: *mut u8,
    /// Number of bytes.
    pub len: usize,
}

/// Moves `value` into the caller's empty `out`, in an allocation of exactly its length.
/// A vector with spare capacity is copied and then wiped (capacity included), never
/// shrunk in place: a shrinking reallocation may move the bytes and free the old block
/// unwiped, and these bytes may be plaintext.
pub(crate) fn put(out: &mut medvault_bytes, mut value: Vec<u8>) -> FfiResult {
    if !out.data.is_null() {
        return Err(invalid(
            "the output medvault_bytes is not empty; free it or pass an empty one",
        ));
    }
    if value.is_empty() {
        *out = medvault_bytes {
            data: std::ptr::null_mut(),
            len: 0,
        };
        return Ok(());
    }
    let boxed: Box<[u8]> = if value.len() == value.capacity() {
        // Exact already: no reallocation.
        value.into_boxed_slice()
    } else {
        let exact = Box::<[u8]>::from(value.as_slice());
        crate::crypto::wiped::wipe_vec(&mut value);
        exact
    };
    let len = boxed.len();
    *out = medvault_bytes {
        data: Box::into_raw(boxed).cast::<u8>(),
        len,
    };
    Ok(())
}

/// Checks an output `medvault_bytes` pointer and that it is empty, before any work.
///
/// # Safety
/// A non-NULL `out` must be valid for reading and writing a `medvault_bytes`.
pub(crate) unsafe fn empty_output<'a>(
    out: *mut medvault_bytes,
    name: &'static str,
) -> FfiResult<&'a mut medvault_bytes> {
    // SAFETY: forwarded contract.
    let out = unsafe { output(out, name) }?;
    if !out.data.is_null() {
        return Err(invalid(
            "the output medvault_bytes is not empty; free it or pass an empty one",
        ));
    }
    Ok(out)
}

/// Wipes and frees bytes the library returned, and sets `*bytes` to empty. NULL, and an
/// already empty `medvault_bytes`, are accepted and ignored.
///
/// # Safety
/// `bytes` must be NULL or point to a `medvault_bytes` filled by this library and not
/// modified since.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_bytes_free(bytes: *mut medvault_bytes) {
    ffi_value!((), {
        // SAFETY: NULL or a valid `medvault_bytes` (contract above).
        let Some(bytes) = (unsafe { bytes.as_mut() }) else {
            return;
        };
        if !bytes.data.is_null() {
            let slice = std::ptr::slice_from_raw_parts_mut(bytes.data, bytes.len);
            // SAFETY: `data`/`len` came from `Box::into_raw` of a boxed slice in `put`
            // and are unchanged (contract), so this rebuilds that Box exactly once; the
            // pointer is cleared below so a second free is a no-op.
            let mut owned = unsafe { Box::from_raw(slice) };
            // Through the slice: `zeroize`'s bulk path, not `Box`'s byte-at-a-time one
            // (a third of `medvault_seal`'s time at 64 KiB, bench `c_stream`).
            let bytes_of: &mut [u8] = &mut owned;
            bytes_of.zeroize();
        }
        bytes.data = std::ptr::null_mut();
        bytes.len = 0;
    })
}

/// A list of byte strings the library returned (access requests, grants). Read-only:
/// may be shared between threads.
pub struct medvault_list {
    pub(crate) items: Vec<Vec<u8>>,
}

/// Number of items in `list` (0 for NULL).
///
/// # Safety
/// `list` must be NULL or a live list.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_list_len(list: *const medvault_list) -> usize {
    // SAFETY: NULL or live (contract).
    ffi_value!(0, { unsafe { list.as_ref() }.map_or(0, |l| l.items.len()) })
}

/// Borrows item `index` of `list`: `*data` and `*len` stay valid until the list is
/// freed. `MEDVAULT_STATUS_INVALID_ARGUMENT` if `index` is out of range.
///
/// # Safety
/// `list` must be a live list; `data` and `len` valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_list_get(
    list: *const medvault_list,
    index: usize,
    data: *mut *const u8,
    len: *mut usize,
) -> medvault_status {
    ffi_status!({
        // SAFETY: contract above, each checked for NULL.
        let (list, data, len) = unsafe {
            (
                handle(list, "list")?,
                output(data, "data")?,
                output(len, "len")?,
            )
        };
        let item = list
            .items
            .get(index)
            .ok_or_else(|| invalid("list index out of range"))?;
        *data = item.as_ptr();
        *len = item.len();
        Ok(())
    })
}

/// Frees a list (NULL is ignored).
///
/// # Safety
/// `list` must be NULL or a live list, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_list_free(list: *mut medvault_list) {
    // SAFETY: NULL or live, freed once (contract).
    ffi_value!((), { unsafe { free_handle(list) } })
}
