//! The one error type of the engine. Every variant names the input it is about.

use std::path::PathBuf;

/// Result alias used throughout the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the engine. Messages are complete sentences a user can act on.
///
/// New variants may be added in any release (`#[non_exhaustive]`): match the ones you handle and
/// keep a fallback arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An input was rejected before anything was written: a malformed file, or in-memory data
    /// (then `path` is the source name the caller gave) that is inconsistent, out of range or
    /// overlaps what the store holds. The store is exactly as it was.
    #[error("{}: {message}", path.display())]
    BadInput { path: PathBuf, message: String },

    /// A delphi cache names the tokens it was computed on, but the store holds no documents to
    /// compare them with: its activations could later be attached to other text. Nothing was
    /// written.
    #[error(
        "{}: the store holds no documents to check this cache's tokens against; ingest the \
         documents it was computed on first (they are then compared), or take the documents \
         from the cache's tokens",
        path.display()
    )]
    UncheckedCacheTokens { path: PathBuf },

    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A dictionary name that the store does not hold.
    #[error("unknown dictionary '{name}'{}", known_hint(known))]
    UnknownDictionary { name: String, known: Vec<String> },

    /// A feature index past the end of its dictionary.
    #[error("feature {index} is out of range for dictionary '{dict}' (it has {d_sae} features, 0..{d_sae})")]
    FeatureOutOfRange {
        dict: String,
        index: u64,
        d_sae: u32,
    },

    /// A document id that the store does not hold.
    #[error("unknown document {doc}")]
    UnknownDocument { doc: u64 },

    /// A position past the end of its document.
    #[error("position {pos} is out of range for document {doc} ({len} tokens)")]
    PositionOutOfRange { doc: u64, pos: u64, len: usize },

    /// A graph name that the store does not hold.
    #[error("unknown graph '{name}'{}", known_hint(known))]
    UnknownGraph { name: String, known: Vec<String> },

    /// A node id that the graph does not hold.
    #[error("unknown node '{node}' in graph '{graph}'")]
    UnknownNode { graph: String, node: String },

    /// A name (dictionary, graph) that is already taken.
    #[error("{kind} '{name}' already exists in this store")]
    AlreadyExists { kind: &'static str, name: String },

    /// The same file was ingested before: ingests are never double-counted.
    #[error("{}: already ingested into this store ({what}); nothing was changed", path.display())]
    AlreadyIngested { path: PathBuf, what: String },

    /// Two inputs that must agree do not (d_in of a dictionary and an activation file, ...).
    #[error("{0}")]
    Mismatch(String),

    /// A caller passed an argument that makes no sense (k = 0, a limit too large, ...).
    #[error("{0}")]
    InvalidArgument(String),

    /// The store needs something that was never ingested (a vocabulary matrix, tokens, ...).
    #[error("{0}")]
    Missing(String),

    /// A capability that is planned but not built yet. Never a fake answer.
    #[error("not available yet: {0}")]
    NotAvailable(String),

    /// The directory is not a saedb store (missing, a file, an empty or foreign directory), or
    /// one of a format version this build cannot read.
    #[error("{}: {message}", path.display())]
    Store { path: PathBuf, message: String },

    /// Another process (or another handle in this one) has the store open for writing. A
    /// read-only open ([`crate::OpenOptions::read_only`]) still works and sees what it committed.
    #[error("{}: the store is in use by another saedb process (close it first, or open it read-only)", path.display())]
    Locked { path: PathBuf },

    /// An earlier panic inside this handle left its state unusable; drop the handle and open the
    /// store again (what was committed is intact on disk).
    #[error("an earlier panic left this store handle unusable; open the store again")]
    Poisoned,

    /// The operation was cancelled through its [`crate::Progress`]; nothing of it is visible.
    #[error("cancelled; nothing was changed")]
    Cancelled,

    /// The store's data disagrees with itself (found by reads or by `check`).
    #[error("store is corrupt: {0}")]
    Corrupt(String),

    /// RocksDB reported an error; `kind` is RocksDB's own classification of it.
    #[error("storage error: {message}")]
    Storage {
        kind: StorageErrorKind,
        message: String,
    },
}

/// RocksDB's classification of a storage error (its `Status` code), so that callers can tell a
/// full disk or an I/O failure (`Io`) from damaged files (`Corruption`) without reading messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageErrorKind {
    NotFound,
    Corruption,
    NotSupported,
    InvalidArgument,
    Io,
    Busy,
    TimedOut,
    Aborted,
    TryAgain,
    Incomplete,
    ShutdownInProgress,
    Other,
}

impl From<rocksdb::ErrorKind> for StorageErrorKind {
    fn from(k: rocksdb::ErrorKind) -> Self {
        use rocksdb::ErrorKind as K;
        match k {
            K::NotFound => StorageErrorKind::NotFound,
            K::Corruption => StorageErrorKind::Corruption,
            K::NotSupported => StorageErrorKind::NotSupported,
            K::InvalidArgument => StorageErrorKind::InvalidArgument,
            K::IOError => StorageErrorKind::Io,
            K::Busy => StorageErrorKind::Busy,
            K::TimedOut => StorageErrorKind::TimedOut,
            K::Aborted => StorageErrorKind::Aborted,
            K::TryAgain => StorageErrorKind::TryAgain,
            K::Incomplete => StorageErrorKind::Incomplete,
            K::ShutdownInProgress => StorageErrorKind::ShutdownInProgress,
            _ => StorageErrorKind::Other,
        }
    }
}

fn known_hint(known: &[String]) -> String {
    if known.is_empty() {
        " (the store holds none)".to_string()
    } else {
        format!(" (the store holds: {})", known.join(", "))
    }
}

impl From<rocksdb::Error> for Error {
    fn from(e: rocksdb::Error) -> Self {
        Error::Storage {
            kind: e.kind().into(),
            message: e.into_string(),
        }
    }
}

/// Whether RocksDB refused to open a database because another handle holds its lock file.
/// RocksDB reports it as an I/O error whose message names the LOCK file and the `flock` failure;
/// there is no code of its own.
pub(crate) fn is_lock_held(e: &rocksdb::Error) -> bool {
    let m = e.as_ref().to_ascii_lowercase();
    e.kind() == rocksdb::ErrorKind::IOError
        && m.contains("lock")
        && (m.contains("temporarily unavailable")
            || m.contains("resource busy")
            || m.contains("lock hold by current process"))
}

impl Error {
    /// Shorthand for a [`Error::BadInput`] about `path`.
    pub fn bad_input(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::BadInput {
            path: path.into(),
            message: message.into(),
        }
    }

    /// A storage error that RocksDB did not classify (the HNSW index files, ...).
    pub(crate) fn storage(message: impl Into<String>) -> Self {
        Error::Storage {
            kind: StorageErrorKind::Other,
            message: message.into(),
        }
    }

    /// Shorthand for an [`Error::Io`] about `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
