//! What the handlers and the pages share: the server's options and limits, and the state every
//! request sees (the store, the options, the console's statement slots). Pages depend on this,
//! not on the HTTP side, so `server` → `pages` → `state` has no cycle.

use saedb_engine::Store;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// How a server runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The address to bind: 127.0.0.1 unless told otherwise.
    pub host: IpAddr,
    /// 0 picks a free port.
    pub port: u16,
    /// Label editing and LABEL statements; the store must then be opened writable.
    pub writable: bool,
    /// The longest a console statement may run before the page answers with an error.
    pub query_timeout: Duration,
    /// The longest any other page may take.
    pub page_timeout: Duration,
    /// Rows shown of one console result (the page says how many were left out).
    pub max_rows: usize,
    /// Console statements running at once; more wait (up to the time limit).
    pub max_running_statements: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 8080,
            writable: false,
            query_timeout: Duration::from_secs(5),
            page_timeout: Duration::from_secs(30),
            max_rows: 1_000,
            max_running_statements: 4,
        }
    }
}

/// The longest statement the console accepts, in bytes.
pub const MAX_STATEMENT_BYTES: usize = 16 * 1024;
/// The largest request body, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What every handler shares.
pub(crate) struct AppState {
    pub(crate) store: Arc<Store>,
    pub(crate) opts: ServeOptions,
    pub(crate) statements: Arc<Semaphore>,
}
