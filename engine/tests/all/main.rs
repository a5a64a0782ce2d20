//! The engine's integration tests, one binary: each file below was a test binary of its own,
//! and every one linked RocksDB (about a minute each on two cores). Tests that re-run this binary
//! as a child process name themselves by module path (`crash::crash_child`).

mod common;
mod concurrency;
mod crash;
mod explore;
mod fixture_store;
mod formats;
mod graph;
mod graph_fuzz;
mod memory;
mod model;
mod model_store;
mod store;
mod upgrade;
