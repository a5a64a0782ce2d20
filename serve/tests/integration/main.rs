//! The serve crate's integration tests, one binary (each links RocksDB): every route over HTTP
//! (`http`), a real browser (`browser`), and the load test (`load`, ignored: run by hand).

mod browser;
mod common;
mod http;
mod live;
mod load;
