//! `saedb._saedb`: the Python binding of the saedb engine and query language.
//!
//! The binding is thin: every call wraps one `saedb_engine::Store` method or one statement of
//! `saedb_query::Session` (docs/PYTHON.md has the table). What it adds is only what crossing into
//! Python needs: numpy and Arrow conversions, exceptions, releasing the GIL during long work, and
//! turning Ctrl-C and a `progress=` callback into the engine's cancellation.

mod arrays;
mod arrow;
mod database;
mod errors;
mod ingest;
mod progress;
mod result;
mod statement;
mod values;

use pyo3::prelude::*;

/// The native part of the `saedb` package; import `saedb`, not this module.
#[pymodule]
fn _saedb(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<database::Database>()?;
    m.add_class::<result::QueryResult>()?;
    m.add_function(wrap_pyfunction!(database::open, m)?)?;
    m.add("Error", py.get_type::<errors::Error>())?;
    m.add("QueryError", py.get_type::<errors::QueryError>())?;
    m.add("StoreLocked", py.get_type::<errors::StoreLocked>())?;
    m.add("InputError", py.get_type::<errors::InputError>())?;
    m.add("FORMAT_VERSION", saedb_engine::FORMAT_VERSION)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(database::_time_rust_statement, m)?)?;
    m.add_function(wrap_pyfunction!(models_dir, m)?)?;
    Ok(())
}

/// Where saedb looks for downloaded model files (the tests, the demo and CI unpack the model
/// wheels there): `$SAEDB_MODELS`, else `$XDG_CACHE_HOME/saedb/models`, else
/// `~/.cache/saedb/models`.
#[pyfunction]
fn models_dir() -> std::path::PathBuf {
    saedb_engine::model::models_dir()
}
