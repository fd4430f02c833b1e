//! Status codes, error messages and the library version.

use std::cell::RefCell;
use std::ffi::{CString, c_char};

use super::{FfiError, FfiResult, ffi_value};
use crate::error::Error;

/// The result of every fallible function. The numbers are stable: a number never
/// changes meaning, new ones are only added.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum medvault_status {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL (the message names it).
    NullArgument = 1,
    /// A caller-provided buffer is too small; the function said how large it must be.
    BufferTooSmall = 2,
    /// A bug in medvault was caught at the boundary. The handles used may be in any
    /// state: free them.
    Panic = 3,
    /// An authentication tag did not verify: the data was modified or the key is wrong.
    AuthenticationFailed = 10,
    /// The key is for another provider, record or key generation.
    WrongKey = 11,
    /// The password does not unlock the key file.
    WrongPassword = 12,
    /// The input ends before its format says it should.
    Truncated = 13,
    /// The input is not a well-formed object of the expected format.
    Malformed = 14,
    /// The input declares a format version this build does not read.
    UnsupportedVersion = 15,
    /// The input declares an algorithm this build does not implement.
    UnsupportedAlgorithm = 16,
    /// Stored bytes were damaged (the message names the file and part).
    Corrupt = 17,
    /// Two index entries share a label (a replayed batch or an attack).
    LabelCollision = 18,
    /// An index batch does not continue its provider's epochs.
    EpochOutOfOrder = 19,
    /// A batch's key generation is older than one already used.
    GenerationRegressed = 20,
    /// Something named does not exist (a provider, a record, a key).
    NotFound = 21,
    /// The cloud's response disagrees with the index entries it returned.
    InconsistentResponse = 22,
    /// A signature does not verify under the expected key.
    SignatureInvalid = 23,
    /// A grant or request has expired.
    Expired = 24,
    /// A grant is not valid yet.
    NotYetValid = 25,
    /// A grant is addressed to another requester.
    WrongRecipient = 26,
    /// A grant does not answer the request or scope it is presented for.
    ScopeMismatch = 27,
    /// The store directory is locked by another process.
    StoreLocked = 28,
    /// A store commit failed part way; reopen the store.
    NeedsRecovery = 29,
    /// An argument is out of its documented range (the message says which).
    InvalidArgument = 30,
    /// The operating system's random number generator failed.
    Random = 31,
    /// Reading or writing a file failed.
    Io = 32,
    /// The provider id is already registered with other keys.
    AlreadyRegistered = 33,
    /// A batch, record, log or answer is not provably its provider's.
    NotAuthentic = 34,
    /// The cloud showed a provider's log shorter than one seen before.
    LogRollback = 35,
    /// A remote cloud refused the request or could not be reached.
    Remote = 36,
    /// The PostgreSQL store's database refused or could not finish an operation.
    Database = 37,
}

impl medvault_status {
    fn of(err: &Error) -> Self {
        match err {
            Error::AuthenticationFailed { .. } => Self::AuthenticationFailed,
            Error::WrongKey(_) => Self::WrongKey,
            Error::WrongPassword => Self::WrongPassword,
            Error::Truncated { .. } => Self::Truncated,
            Error::Malformed { .. } => Self::Malformed,
            Error::UnsupportedVersion { .. } => Self::UnsupportedVersion,
            Error::UnsupportedAlgorithm { .. } => Self::UnsupportedAlgorithm,
            Error::Corrupt { .. } => Self::Corrupt,
            Error::LabelCollision => Self::LabelCollision,
            Error::EpochOutOfOrder { .. } => Self::EpochOutOfOrder,
            Error::GenerationRegressed { .. } => Self::GenerationRegressed,
            Error::NotFound(_) => Self::NotFound,
            Error::InconsistentResponse(_) => Self::InconsistentResponse,
            Error::SignatureInvalid => Self::SignatureInvalid,
            Error::Expired { .. } => Self::Expired,
            Error::NotYetValid { .. } => Self::NotYetValid,
            Error::WrongRecipient => Self::WrongRecipient,
            Error::ScopeMismatch => Self::ScopeMismatch,
            Error::StoreLocked => Self::StoreLocked,
            Error::NeedsRecovery(_) => Self::NeedsRecovery,
            Error::InvalidArgument(_) => Self::InvalidArgument,
            Error::Random => Self::Random,
            Error::Io(_) | Error::File { .. } => Self::Io,
            Error::AlreadyRegistered => Self::AlreadyRegistered,
            Error::NotAuthentic { .. } => Self::NotAuthentic,
            Error::LogRollback { .. } => Self::LogRollback,
            Error::Remote { .. } => Self::Remote,
            Error::Database { .. } => Self::Database,
        }
    }

    /// Every status, for the message table and the tests.
    const ALL: [medvault_status; 32] = [
        Self::Ok,
        Self::NullArgument,
        Self::BufferTooSmall,
        Self::Panic,
        Self::AuthenticationFailed,
        Self::WrongKey,
        Self::WrongPassword,
        Self::Truncated,
        Self::Malformed,
        Self::UnsupportedVersion,
        Self::UnsupportedAlgorithm,
        Self::Corrupt,
        Self::LabelCollision,
        Self::EpochOutOfOrder,
        Self::GenerationRegressed,
        Self::NotFound,
        Self::InconsistentResponse,
        Self::SignatureInvalid,
        Self::Expired,
        Self::NotYetValid,
        Self::WrongRecipient,
        Self::ScopeMismatch,
        Self::StoreLocked,
        Self::NeedsRecovery,
        Self::InvalidArgument,
        Self::Random,
        Self::Io,
        Self::AlreadyRegistered,
        Self::NotAuthentic,
        Self::LogRollback,
        Self::Remote,
        Self::Database,
    ];

    fn message(self) -> &'static std::ffi::CStr {
        match self {
            Self::Ok => c"success",
            Self::NullArgument => c"a required pointer argument was NULL",
            Self::BufferTooSmall => c"the buffer is too small",
            Self::Panic => c"internal error: a panic was caught at the C boundary",
            Self::AuthenticationFailed => {
                c"authentication failed: the data was modified or the key is wrong"
            }
            Self::WrongKey => {
                c"wrong key: the key is for another provider, record or key generation"
            }
            Self::WrongPassword => c"wrong password",
            Self::Truncated => c"truncated input",
            Self::Malformed => c"malformed input",
            Self::UnsupportedVersion => c"unsupported format version",
            Self::UnsupportedAlgorithm => c"unsupported algorithm",
            Self::Corrupt => c"stored data is corrupt",
            Self::LabelCollision => c"label collision: two index entries share a label",
            Self::EpochOutOfOrder => c"index batch epoch out of order",
            Self::GenerationRegressed => c"key generation older than the provider's current one",
            Self::NotFound => c"not found",
            Self::InconsistentResponse => c"the cloud's response is inconsistent",
            Self::SignatureInvalid => c"signature invalid",
            Self::Expired => c"expired",
            Self::NotYetValid => c"not valid yet",
            Self::WrongRecipient => c"the grant is for another requester",
            Self::ScopeMismatch => c"the grant is for another request, patient or record",
            Self::StoreLocked => c"the store directory is locked by another process",
            Self::NeedsRecovery => c"the store must be reopened after a failed commit",
            Self::InvalidArgument => c"invalid argument",
            Self::Random => c"the operating system's random number generator failed",
            Self::Io => c"I/O error",
            Self::AlreadyRegistered => c"the provider is already registered with other keys",
            Self::NotAuthentic => c"not authentic: not what the provider signed",
            Self::LogRollback => c"the cloud rolled a provider's log back",
            Self::Remote => c"the remote cloud refused the request or could not be reached",
            Self::Database => c"the PostgreSQL store's database failed or refused the operation",
        }
    }
}

thread_local! {
    /// The message of this thread's most recent failure.
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Keeps `message` as this thread's last error (interior NULs would truncate it in C,
/// so they are replaced).
pub(crate) fn set_last_error(message: &str) {
    let c = super::c_text(message);
    LAST_ERROR.with(|slot| *slot.borrow_mut() = c);
}

/// Turns an export's outcome into its status, recording the message of a failure.
pub(crate) fn finish(outcome: std::thread::Result<FfiResult>) -> medvault_status {
    let (status, message) = match outcome {
        Ok(Ok(())) => return medvault_status::Ok,
        Ok(Err(FfiError::Null(name))) => (
            medvault_status::NullArgument,
            format!("NULL argument: {name}"),
        ),
        Ok(Err(FfiError::BufferTooSmall { needed })) => (
            medvault_status::BufferTooSmall,
            format!("the buffer is too small: {needed} bytes are needed"),
        ),
        Ok(Err(FfiError::Library(err))) => (medvault_status::of(&err), err.to_string()),
        Err(_) => (
            medvault_status::Panic,
            "internal error: a panic was caught at the C boundary".to_owned(),
        ),
    };
    set_last_error(&message);
    status
}

/// A short, static description of `status` (never NULL; unknown numbers get a generic
/// text). The string is owned by the library.
#[unsafe(no_mangle)]
pub extern "C" fn medvault_status_message(status: u32) -> *const c_char {
    medvault_status::ALL
        .iter()
        .find(|s| **s as u32 == status)
        .map_or(c"unknown status".as_ptr(), |s| s.message().as_ptr())
}

/// Copies the message of the calling thread's most recent failure, NUL-terminated,
/// into `buffer` (`capacity` bytes). Each thread has its own; a success does not clear
/// it. Messages name formats and fields, never keys, passwords or patient data.
///
/// Returns `MEDVAULT_STATUS_BUFFER_TOO_SMALL` if `capacity` is too small; `*needed`
/// (if not NULL) always receives the size required, NUL included.
///
/// # Safety
/// `buffer` must be valid for writing `capacity` bytes (it may be NULL when `capacity`
/// is 0); `needed` must be NULL or valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn medvault_last_error(
    buffer: *mut c_char,
    capacity: usize,
    needed: *mut usize,
) -> medvault_status {
    ffi_value!(medvault_status::Panic, {
        let message = LAST_ERROR.with(|slot| slot.borrow().clone());
        let bytes = message.as_bytes_with_nul();
        // SAFETY: `needed` is NULL or writable (header contract).
        if let Some(needed) = unsafe { needed.as_mut() } {
            *needed = bytes.len();
        }
        if capacity < bytes.len() {
            return medvault_status::BufferTooSmall;
        }
        if buffer.is_null() {
            return medvault_status::NullArgument;
        }
        // SAFETY: `buffer` is non-NULL and has `capacity >= bytes.len()` writable bytes.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr().cast(), buffer, bytes.len()) };
        medvault_status::Ok
    })
}

/// The library's version, for example `"0.1.0"` (static, NUL-terminated).
#[unsafe(no_mangle)]
pub extern "C" fn medvault_version() -> *const c_char {
    const VERSION: &std::ffi::CStr = match std::ffi::CStr::from_bytes_with_nul(
        concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes(),
    ) {
        Ok(v) => v,
        Err(_) => c"unknown",
    };
    VERSION.as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_a_distinct_number_and_a_message() {
        let mut numbers: Vec<u32> = medvault_status::ALL.iter().map(|s| *s as u32).collect();
        numbers.sort();
        numbers.dedup();
        assert_eq!(numbers.len(), medvault_status::ALL.len());
        for s in medvault_status::ALL {
            assert!(!s.message().is_empty());
        }
    }
}
