//! # saedb-query
//!
//! The saedb query language: the pest grammar (`grammars/saedb.pest`), its AST, a planner/executor
//! over [`saedb_engine::Store`], and renderers of typed result sets as tables, JSON or CSV.
//! docs/QUERY.md is the language reference.
//!
//! ```no_run
//! use saedb_query::{render, Format, Session};
//! use std::sync::Arc;
//! let store = Arc::new(saedb_engine::Store::open("my.saedb")?);
//! let mut session = Session::new(store);
//! for rs in session.execute("SHOW DICTIONARIES; TOP 5 ACTIVATIONS OF L2/7 CONTEXT 3;").unwrap() {
//!     print!("{}", render(&rs, Format::Table));
//! }
//! # Ok::<(), saedb_engine::Error>(())
//! ```

pub mod ast;
pub mod error;
pub mod exec;
pub mod lexer;
pub mod parser;
pub mod render;
pub mod result;
pub mod tables;

pub use error::{ErrorKind, QueryError};
pub use exec::Session;
pub use lexer::{is_blank, is_complete, quote, split_statements, KEYWORDS};
pub use parser::parse;
pub use render::{render, render_table, Format};
pub use result::{ResultKind, ResultSet, Value};
