//! # saedb-serve
//!
//! `saedb serve`: a local web server over one store — feature pages, dictionary maps,
//! documents, attribution graphs, label search and a query console — rendered on the server as
//! HTML with inline SVG. Offline (no CDN, no build step: one stylesheet and one small
//! hand-written script, compiled in). Binds 127.0.0.1 unless told otherwise; read-only unless
//! writable. The pages are thin over the engine ([`saedb_engine::Store`]) and the language
//! ([`saedb_query::Session`]): every number on a page is what a statement returns.
//!
//! Robustness: every store text is escaped ([`html::Esc`]); URLs only name things in the store
//! (no path reaches the filesystem); a malformed URL, an unknown feature, document, graph or node
//! gives a 404 page; request bodies, statements and result rows are bounded; statements have a
//! time limit; store work runs off the async workers, and a panic in it becomes a 500 page.

pub mod html;
mod pages;
mod server;
mod state;
pub mod svg;

pub use pages::feature::{feature_page_profiled, feature_page_standalone, Profile};
pub use server::Server;
pub use state::ServeOptions;

use saedb_engine::Error as EngineError;

/// Why a page could not be shown; each maps to an HTTP status and an error page.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// Nothing of that name in the store (or a malformed URL): 404.
    #[error("{0}")]
    NotFound(String),
    /// A request the server will not run (bad parameters, too large): 400.
    #[error("{0}")]
    BadRequest(String),
    /// A request body over the limit: 413.
    #[error("{0}")]
    TooLarge(String),
    /// A write to a read-only server, or a cross-site form: 403.
    #[error("{0}")]
    Forbidden(String),
    /// The work took longer than the time limit: 503.
    #[error("{0}")]
    Timeout(String),
    /// Anything else: 500.
    #[error("{0}")]
    Internal(String),
}

impl From<EngineError> for PageError {
    fn from(e: EngineError) -> PageError {
        match e {
            EngineError::UnknownDictionary { .. }
            | EngineError::FeatureOutOfRange { .. }
            | EngineError::UnknownDocument { .. }
            | EngineError::PositionOutOfRange { .. }
            | EngineError::UnknownGraph { .. }
            | EngineError::UnknownNode { .. } => PageError::NotFound(e.to_string()),
            EngineError::InvalidArgument(_) => PageError::BadRequest(e.to_string()),
            other => PageError::Internal(other.to_string()),
        }
    }
}

pub type PageResult<T = String> = Result<T, PageError>;
