//! The C ABI (`include/medvault.h`), one module per C concept, mirroring the Rust API.
//!
//! Rules every export follows, as rustls-ffi and libsodium do:
//! - every fallible function returns a [`medvault_status`] and writes its outputs
//!   through pointers; library-owned buffers are one type, [`medvault_bytes`], freed by
//!   [`medvault_bytes_free`];
//! - the body runs inside [`ffi_status!`] (or [`ffi_value!`]), which turns a panic into
//!   `MEDVAULT_STATUS_PANIC` so no unwinding reaches C, and records the error's message
//!   for `medvault_last_error`;
//! - pointers are checked by the helpers below: NULL gives `MEDVAULT_STATUS_NULL_ARGUMENT`
//!   naming the argument. Dangling or misaligned pointers cannot be detected; the header
//!   says what must stay valid.
//!
//! This is the only module where `unsafe` is allowed; each use says why it is sound.
#![allow(unsafe_code)]
// The standard above, enforced: clippy fails CI on an `unsafe` block without its reason.
#![deny(clippy::undocumented_unsafe_blocks)]
// The C names (`medvault_cloud`, `medvault_status`) are the API.
#![allow(non_camel_case_types)]

pub mod broker;
pub mod bytes;
pub mod cloud;
pub mod config;
pub mod grant;
pub mod identity;
pub mod keys;
pub mod provider;
pub mod requester;
pub mod seal;
pub mod status;
pub mod stream;

use std::ffi::{CStr, c_char};

use crate::error::Error;

/// Why an exported function failed: a library error, or a misuse of the C ABI itself.
pub(crate) enum FfiError {
    /// A required pointer argument was NULL.
    Null(&'static str),
    /// A caller's buffer is too small; `needed` bytes are required.
    BufferTooSmall { needed: usize },
    /// An error of the Rust API.
    Library(Error),
}

impl From<Error> for FfiError {
    fn from(err: Error) -> Self {
        FfiError::Library(err)
    }
}

pub(crate) type FfiResult<T = ()> = std::result::Result<T, FfiError>;

/// An `InvalidArgument` error, for checks made at the boundary.
pub(crate) fn invalid(what: &'static str) -> FfiError {
    FfiError::Library(Error::InvalidArgument(what))
}

/// Runs an export's body: panics become `MEDVAULT_STATUS_PANIC`, errors become their
/// status, and the message of either is kept for `medvault_last_error`.
macro_rules! ffi_status {
    ($body:block) => {{
        let outcome = ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(
            || -> $crate::ffi::FfiResult { $body },
        ));
        $crate::ffi::status::finish(outcome)
    }};
}
pub(crate) use ffi_status;

/// Like [`ffi_status!`] for the few exports that return a value instead of a status
/// (lengths, borrowed strings, `free`): `$fallback` on error or panic.
macro_rules! ffi_value {
    ($fallback:expr, $body:block) => {{
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| $body)) {
            Ok(value) => value,
            Err(_) => {
                $crate::ffi::status::set_last_error("a panic was caught at the C boundary");
                $fallback
            }
        }
    }};
}
pub(crate) use ffi_value;

/// A caller's input buffer. `len == 0` accepts NULL.
///
/// # Safety
/// A non-NULL `data` must point to `len` readable bytes that stay valid and unchanged
/// for `'a`.
pub(crate) unsafe fn input<'a>(
    data: *const u8,
    len: usize,
    name: &'static str,
) -> FfiResult<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if data.is_null() {
        return Err(FfiError::Null(name));
    }
    if len > isize::MAX as usize {
        return Err(invalid("a buffer length is larger than memory"));
    }
    // SAFETY: non-NULL, and the caller guarantees `len` readable bytes (documented in
    // the header); the length fits `isize` as `from_raw_parts` requires.
    Ok(unsafe { std::slice::from_raw_parts(data, len) })
}

/// A writable byte buffer of the caller's, `capacity` bytes at `data`, that must not
/// overlap `input` (a Rust `&[u8]` and `&mut [u8]` over the same bytes would be
/// undefined behaviour, so an overlap is refused).
///
/// # Safety
/// A non-NULL `data` must point to `capacity` writable bytes, valid and not otherwise
/// accessed for `'a`.
pub(crate) unsafe fn output_buffer<'a>(
    data: *mut u8,
    capacity: usize,
    input: &[u8],
    name: &'static str,
) -> FfiResult<&'a mut [u8]> {
    if capacity == 0 {
        return Ok(&mut []);
    }
    if data.is_null() {
        return Err(FfiError::Null(name));
    }
    if capacity > isize::MAX as usize {
        return Err(invalid("a buffer length is larger than memory"));
    }
    let (start, end) = (data as usize, data as usize + capacity);
    let (in_start, in_end) = (
        input.as_ptr() as usize,
        input.as_ptr() as usize + input.len(),
    );
    if !input.is_empty() && start < in_end && in_start < end {
        return Err(invalid("the output buffer overlaps the input"));
    }
    // SAFETY: non-NULL, `capacity` writable bytes by the caller's contract, the length
    // fits `isize`, and the range does not overlap `input` (checked above).
    Ok(unsafe { std::slice::from_raw_parts_mut(data, capacity) })
}

/// A NUL-terminated UTF-8 string argument.
///
/// # Safety
/// A non-NULL `text` must point to a NUL-terminated string valid for `'a`.
pub(crate) unsafe fn text<'a>(text: *const c_char, name: &'static str) -> FfiResult<&'a str> {
    if text.is_null() {
        return Err(FfiError::Null(name));
    }
    // SAFETY: non-NULL and NUL-terminated, as the header requires of string arguments.
    let c = unsafe { CStr::from_ptr(text) };
    c.to_str()
        .map_err(|_| invalid("a string argument is not valid UTF-8"))
}

/// A fixed-size array argument (a record id, a fingerprint).
///
/// # Safety
/// A non-NULL `data` must point to `N` readable bytes.
pub(crate) unsafe fn array<const N: usize>(
    data: *const u8,
    name: &'static str,
) -> FfiResult<[u8; N]> {
    if data.is_null() {
        return Err(FfiError::Null(name));
    }
    let mut out = [0u8; N];
    // SAFETY: non-NULL, `N` readable bytes per the header; `out` is a distinct local.
    unsafe { std::ptr::copy_nonoverlapping(data, out.as_mut_ptr(), N) };
    Ok(out)
}

/// A borrowed handle.
///
/// # Safety
/// A non-NULL `handle` must come from the matching `_new` and not be freed.
pub(crate) unsafe fn handle<'a, T>(handle: *const T, name: &'static str) -> FfiResult<&'a T> {
    // SAFETY: the caller's contract; NULL is the one invalid value we can detect.
    unsafe { handle.as_ref() }.ok_or(FfiError::Null(name))
}

/// A mutably borrowed handle.
///
/// # Safety
/// As [`handle`], and no other thread uses the handle meanwhile (the header says which
/// handles may be shared).
pub(crate) unsafe fn handle_mut<'a, T>(handle: *mut T, name: &'static str) -> FfiResult<&'a mut T> {
    // SAFETY: the caller's contract; NULL is the one invalid value we can detect.
    unsafe { handle.as_mut() }.ok_or(FfiError::Null(name))
}

/// An output location.
///
/// # Safety
/// A non-NULL `out` must be valid for writing a `T`.
pub(crate) unsafe fn output<'a, T>(out: *mut T, name: &'static str) -> FfiResult<&'a mut T> {
    // SAFETY: the caller's contract; NULL is the one invalid value we can detect.
    unsafe { out.as_mut() }.ok_or(FfiError::Null(name))
}

/// Writes a fixed-size array to the caller's `N` bytes at `out`.
///
/// # Safety
/// A non-NULL `out` must be valid for writing `N` bytes.
pub(crate) unsafe fn write_array<const N: usize>(out: *mut u8, value: &[u8; N]) {
    // SAFETY: checked non-NULL by the caller of this helper before any work was done;
    // `N` writable bytes per the header.
    unsafe { std::ptr::copy_nonoverlapping(value.as_ptr(), out, N) };
}

/// Checks an output array pointer before the work starts, so a NULL one fails early.
pub(crate) fn check_out(out: *mut u8, name: &'static str) -> FfiResult {
    if out.is_null() {
        Err(FfiError::Null(name))
    } else {
        Ok(())
    }
}

/// Text for C: interior NULs (which would cut the string short there) become spaces.
pub(crate) fn c_text(value: &str) -> std::ffi::CString {
    std::ffi::CString::new(value.replace('\0', " ")).unwrap_or_default()
}

/// Hands a new handle to C.
pub(crate) fn into_handle<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Takes back and drops a handle; NULL is accepted and ignored.
///
/// # Safety
/// A non-NULL `handle` must come from [`into_handle`] for the same `T` and not be freed
/// already.
pub(crate) unsafe fn free_handle<T>(handle: *mut T) {
    if !handle.is_null() {
        // SAFETY: made by `Box::into_raw` in `into_handle` and not freed (caller's
        // contract), so ownership returns to a Box exactly once.
        drop(unsafe { Box::from_raw(handle) });
    }
}

/// The keyword array argument (`keywords[0..count]`, each NUL-terminated UTF-8).
///
/// # Safety
/// A non-NULL `keywords` must point to `count` valid string pointers.
pub(crate) unsafe fn keyword_list<'a>(
    keywords: *const *const c_char,
    count: usize,
) -> FfiResult<Vec<&'a str>> {
    // SAFETY: forwarded contract.
    unsafe { text_list(keywords, count, "keywords", "a keyword") }
}

/// An array argument of `count` NUL-terminated UTF-8 strings, named `what` (and each
/// one `each`) in errors.
///
/// # Safety
/// A non-NULL `list` must point to `count` valid string pointers.
pub(crate) unsafe fn text_list<'a>(
    list: *const *const c_char,
    count: usize,
    what: &'static str,
    each: &'static str,
) -> FfiResult<Vec<&'a str>> {
    let len = count
        .checked_mul(size_of::<*const c_char>())
        .ok_or_else(|| invalid("an array of strings longer than memory"))?;
    // SAFETY: forwarded contract (`count` pointers at `list`), read as the array's
    // `len` bytes.
    let pointers = unsafe { input(list.cast::<u8>(), len, what) }?;
    (0..count)
        .map(|i| {
            // SAFETY: `pointers` holds `count` pointers; read_unaligned copes with any
            // alignment the byte view lost.
            let ptr = unsafe {
                pointers
                    .as_ptr()
                    .cast::<*const c_char>()
                    .add(i)
                    .read_unaligned()
            };
            // SAFETY: each string is NUL-terminated per the header.
            unsafe { text(ptr, each) }
        })
        .collect()
}

/// An array argument of `count` byte buffers: `data[i]` holds `lens[i]` bytes.
///
/// # Safety
/// Non-NULL `data` and `lens` must point to `count` pointers and `count` lengths, each
/// pointer to that many readable bytes (or NULL with length 0).
pub(crate) unsafe fn byte_list<'a>(
    data: *const *const u8,
    lens: *const usize,
    count: usize,
) -> FfiResult<Vec<&'a [u8]>> {
    let too_long = || invalid("an array of buffers longer than memory");
    let pointer_bytes = count
        .checked_mul(size_of::<*const u8>())
        .ok_or_else(too_long)?;
    let len_bytes = count.checked_mul(size_of::<usize>()).ok_or_else(too_long)?;
    // SAFETY: forwarded contract: `count` pointers at `data`, `count` lengths at `lens`,
    // read as the arrays' bytes.
    let (pointers, lengths) = unsafe {
        (
            input(data.cast::<u8>(), pointer_bytes, "records")?,
            input(lens.cast::<u8>(), len_bytes, "lengths")?,
        )
    };
    (0..count)
        .map(|i| {
            // SAFETY: each array holds `count` items; read_unaligned copes with any
            // alignment the byte views lost.
            let (ptr, len) = unsafe {
                (
                    pointers
                        .as_ptr()
                        .cast::<*const u8>()
                        .add(i)
                        .read_unaligned(),
                    lengths.as_ptr().cast::<usize>().add(i).read_unaligned(),
                )
            };
            // SAFETY: `ptr` holds `len` readable bytes (contract).
            unsafe { input(ptr, len, "a record") }
        })
        .collect()
}

/// The unit tests run on an allocator that checks freed blocks for plaintext.
#[cfg(test)]
mod freed_memory;
#[cfg(test)]
#[global_allocator]
static ALLOCATOR: freed_memory::Scanning = freed_memory::Scanning;

#[cfg(test)]
mod tests {
    use super::status::medvault_status;
    use std::ffi::c_char;

    fn last_error() -> String {
        let mut buf = [0 as c_char; 256];
        // SAFETY: `buf` is 256 writable bytes.
        let status = unsafe {
            super::status::medvault_last_error(buf.as_mut_ptr(), buf.len(), std::ptr::null_mut())
        };
        assert_eq!(status, medvault_status::Ok);
        // SAFETY: medvault_last_error wrote a NUL-terminated string into `buf`.
        unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn a_panic_becomes_a_status_and_never_unwinds_into_c() {
        let status = ffi_status!({
            if last_error().len() < usize::MAX {
                panic!("a bug");
            }
            Ok(())
        });
        assert_eq!(status, medvault_status::Panic);
        assert!(last_error().contains("panic was caught"));
        let value: usize = ffi_value!(7, {
            if last_error().len() < usize::MAX {
                panic!("a bug");
            }
            0
        });
        assert_eq!(value, 7);
    }

    #[test]
    fn errors_keep_their_message_and_status() {
        let status = ffi_status!({ Err(crate::Error::NotFound("a record").into()) });
        assert_eq!(status, medvault_status::NotFound);
        assert_eq!(last_error(), "not found: a record");
        let status = ffi_status!({ Err(super::FfiError::Null("cloud")) });
        assert_eq!(status, medvault_status::NullArgument);
        assert_eq!(last_error(), "NULL argument: cloud");
    }
}
