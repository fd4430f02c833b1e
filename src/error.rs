//! The one error type of the library.
//!
//! Every variant is something a caller can act on. Messages name the format and the
//! field that was wrong, never key bytes, passwords, keywords or patient identifiers.

use std::fmt;

/// Which part of a key did not match the object it was asked to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMismatch {
    /// The key belongs to another provider.
    Provider,
    /// The key belongs to another record.
    Record,
    /// The key is of another key generation (the provider rotated its keys).
    Generation,
}

impl fmt::Display for KeyMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyMismatch::Provider => "provider",
            KeyMismatch::Record => "record",
            KeyMismatch::Generation => "key generation",
        })
    }
}

/// Everything that can go wrong in medvault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An authentication tag did not verify: the data was modified, or the key is wrong.
    /// No plaintext of the failing part is ever returned.
    #[error("authentication failed: the {what} was modified or the key is wrong")]
    AuthenticationFailed {
        /// What failed to authenticate (for example "sealed record chunk").
        what: &'static str,
    },

    /// The key given is for another provider, record or key generation than the object.
    #[error("wrong key: the key is for another {0}")]
    WrongKey(KeyMismatch),

    /// The password does not unlock the key file.
    #[error("wrong password")]
    WrongPassword,

    /// The input ends before the format says it should.
    #[error("truncated {format}: {detail}")]
    Truncated {
        /// The format being parsed.
        format: &'static str,
        /// What was missing.
        detail: &'static str,
    },

    /// The input is not a well-formed object of the expected format.
    #[error("malformed {format}: {detail}")]
    Malformed {
        /// The format being parsed.
        format: &'static str,
        /// What is wrong with it.
        detail: &'static str,
    },

    /// The object declares a format version this build does not read.
    #[error("unsupported {format} version {version}")]
    UnsupportedVersion {
        /// The format being parsed.
        format: &'static str,
        /// The version found in the input.
        version: u8,
    },

    /// The object declares an algorithm this build does not implement.
    #[error("unsupported {format} algorithm {algorithm}")]
    UnsupportedAlgorithm {
        /// The format being parsed.
        format: &'static str,
        /// The algorithm id found in the input.
        algorithm: u8,
    },

    /// Stored bytes were damaged (torn write, bit rot, truncation): a checksum or a
    /// length did not match. `what` names the format or the file, and the part.
    #[error("corrupt {what}")]
    Corrupt {
        /// What is corrupt (a format name or a file name).
        what: String,
    },

    /// Two index entries have the same label. Labels are 128-bit pseudorandom values, so
    /// this means a replayed batch or an attack; nothing was overwritten.
    #[error("label collision: two index entries share a label; nothing was overwritten")]
    LabelCollision,

    /// An index batch does not continue its provider's sequence of epochs.
    #[error("epoch out of order: expected epoch {expected}, got {found}")]
    EpochOutOfOrder {
        /// The next epoch the cloud expects from that provider.
        expected: u32,
        /// The epoch of the batch.
        found: u32,
    },

    /// A batch's key generation is older than one the provider already used.
    #[error("key generation {found} is older than the provider's current generation {current}")]
    GenerationRegressed {
        /// The provider's newest generation so far.
        current: u32,
        /// The generation of the batch.
        found: u32,
    },

    /// Something the request names does not exist (a provider, a record, a key).
    #[error("not found: {0}")]
    NotFound(&'static str),

    /// The cloud's response does not agree with the index entries it returned.
    #[error("inconsistent response: {0}")]
    InconsistentResponse(&'static str),

    /// A signature does not verify under the expected public key: the object was
    /// changed, or someone else signed it.
    #[error("signature invalid: not signed by the expected key, or modified since")]
    SignatureInvalid,

    /// A grant or request is past its expiry time.
    #[error("expired at {expired_at} (unix seconds)")]
    Expired {
        /// When it expired.
        expired_at: u64,
    },

    /// A grant is not valid yet (issued in the future beyond the allowed clock skew).
    #[error("not valid before {valid_from} (unix seconds)")]
    NotYetValid {
        /// When it becomes valid.
        valid_from: u64,
    },

    /// A grant is addressed to another requester's key.
    #[error("wrong recipient: this grant is for another requester's key")]
    WrongRecipient,

    /// A grant does not answer the request or scope it is presented for.
    #[error("scope mismatch: the grant is for another request, patient or record")]
    ScopeMismatch,

    /// The store directory is open in another process (one process writes a store).
    #[error("the store directory is locked by another process")]
    StoreLocked,

    /// An earlier write to the store failed after its point of no return (the rename
    /// of the catalog); the store refuses writes until it is reopened, which recovers
    /// the committed state.
    #[error("the store must be reopened: an earlier commit failed part way ({0})")]
    NeedsRecovery(String),

    /// The provider id is already in the cloud's key directory with other keys: the
    /// directory is first-come, so a later registration cannot take a provider's name.
    #[error("the provider is already registered with other keys")]
    AlreadyRegistered,

    /// Data is not provably its provider's: a batch or record the provider did not sign
    /// (refused by the cloud, which changes nothing), or a log, posting or record in an
    /// answer that does not verify against the provider's signed log (refused by the
    /// requester). Names the provider, never a patient or keyword.
    #[error("not authentic: the {what} of provider {provider} is not what it signed")]
    NotAuthentic {
        /// The provider whose data it claims to be.
        provider: String,
        /// What failed the check.
        what: &'static str,
    },

    /// The cloud showed a provider's log shorter than one this party verified before:
    /// it rolled the provider back (to hide newer epochs, or to replay old ones).
    #[error("log rollback: provider {provider} had {seen} signed epochs, now shown {found}")]
    LogRollback {
        /// The provider.
        provider: String,
        /// Signed epochs verified before.
        seen: u32,
        /// Epochs the log shows now.
        found: u32,
    },

    /// A remote cloud (`medvault-server`) refused a request or could not be reached:
    /// the HTTP status (0 when no answer came), the server's error code and message.
    #[error("remote cloud: {code} ({status}): {message}")]
    Remote {
        /// The HTTP status, or 0 if the connection failed.
        status: u16,
        /// The server's error code (for example "unauthorized", "forbidden").
        code: String,
        /// What went wrong, as the server or the transport said it.
        message: String,
    },

    /// An argument is out of its documented range.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),

    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed")]
    Random,

    /// Reading or writing a stream failed.
    #[error("I/O error: {0}")]
    Io(#[source] std::io::Error),

    /// The PostgreSQL store's database refused or could not finish an operation (the
    /// server is unreachable, the connection dropped, a constraint other than a label
    /// or record collision): what was being done, the server's SQLSTATE ("" when no
    /// answer came) and its message, which names tables and columns but never values.
    #[error("database: could not {action}: {message} (SQLSTATE {code})")]
    Database {
        /// What was being done ("connect", "commit an index batch", ...).
        action: &'static str,
        /// The server's SQLSTATE, or "" when the connection failed.
        code: String,
        /// What the server or the connection said.
        message: String,
    },

    /// An operation on a file or directory failed; says which, and what was being done.
    #[error("could not {action} {}: {source}", path.display())]
    File {
        /// What was being done ("create", "read", "rename", ...).
        action: &'static str,
        /// The file or directory.
        path: std::path::PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// Names the file and the operation of an I/O error: `.at("read", &path)?`.
pub(crate) trait IoAt<T> {
    /// The error as [`Error::File`] for `path` and `action`.
    fn at(self, action: &'static str, path: &std::path::Path) -> Result<T>;
}

impl<T> IoAt<T> for std::io::Result<T> {
    fn at(self, action: &'static str, path: &std::path::Path) -> Result<T> {
        self.map_err(|source| match Error::from(source) {
            Error::Io(source) => Error::File {
                action,
                path: path.to_owned(),
                source,
            },
            ours => ours,
        })
    }
}

/// `Result` with medvault's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<std::io::Error> for Error {
    /// Unwraps a medvault error that travelled through `std::io` (for example out of
    /// [`Opener`](crate::Opener)'s `Read` implementation); wraps any other I/O error.
    fn from(err: std::io::Error) -> Self {
        if !err.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            return Error::Io(err);
        }
        match err.into_inner().map(|inner| inner.downcast::<Error>()) {
            Some(Ok(ours)) => *ours,
            // Unreachable after the check above; a typed fallback rather than a panic.
            _ => Error::Io(std::io::Error::other("medvault error lost in transit")),
        }
    }
}

impl From<Error> for std::io::Error {
    fn from(err: Error) -> Self {
        match err {
            Error::Io(io) => io,
            Error::File { source, .. } if source.get_ref().is_none() => source,
            other => std::io::Error::other(other),
        }
    }
}
