//! The query crate's integration tests, in one test binary (each binary links RocksDB, which is
//! slow on two cores): `cargo test -p saedb-query --test integration [NAME]`.
//!
//! - `golden`: the scripts of fixtures/queries against their expected output;
//! - `model`: FEATURES OF TEXT, TOP FEATURES OF TEXT, ACTIVATION OF … ON TEXT, GENERATE;
//! - `docs`: every example of docs/QUERY.md;
//! - `exec`: the executor against brute force over the fixtures;
//! - `where_props`: WHERE filters against a brute-force evaluation (proptest);
//! - `parser_props`: the parser never panics; the lexer agrees with the grammar;
//!   splitting a script and joining it again.

mod common;
mod docs;
mod exec;
mod golden;
mod model;
mod parser_props;
mod where_props;
