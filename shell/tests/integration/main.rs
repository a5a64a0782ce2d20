//! The `saedb` binary's integration tests, in one test binary:
//! `cargo test -p saedb-shell --test integration [NAME]`.
//!
//! - `cli`: the command-line contract, ingest of the fixtures, `info`, `query`, `run`, `demo`;
//! - `models`: `ingest model` and the live part of `info`;
//! - `repl`: the shell driven in a real terminal (tmux).

mod cli;
mod common;
mod models;
mod repl;
