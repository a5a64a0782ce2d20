//! The one error type of the engine. Every variant names the input it is about.

use std::path::PathBuf;

/// Result alias used throughout the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the engine. Messages are complete sentences a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An input file is malformed: the message says what is wrong with it.
    #[error("{}: {message}", path.display())]
    BadInput { path: PathBuf, message: String },

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

    /// The directory is not a saedb store, or one of another format version.
    #[error("{}: {message}", path.display())]
    Store { path: PathBuf, message: String },

    /// The store's data disagrees with itself (found by reads or by `check`).
    #[error("store is corrupt: {0}")]
    Corrupt(String),

    /// RocksDB reported an error.
    #[error("storage error: {0}")]
    Storage(String),
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
        Error::Storage(e.into_string())
    }
}

impl Error {
    /// Shorthand for a [`Error::BadInput`] about `path`.
    pub fn bad_input(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::BadInput {
            path: path.into(),
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
