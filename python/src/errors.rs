//! The exceptions of the `saedb` package and the mapping of engine and query errors onto them.
//!
//! `Error` is the base of all; `QueryError` carries the position of the offending text,
//! `StoreLocked` the store's path, `InputError` the input that was rejected (nothing was written).
//! A cancelled operation becomes Python's own `KeyboardInterrupt`.

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyKeyboardInterrupt};
use pyo3::prelude::*;
use saedb_engine::Error as EngineError;
use saedb_query::QueryError as LangError;

create_exception!(
    saedb,
    Error,
    PyException,
    "Base class of every error saedb raises."
);
create_exception!(
    saedb,
    QueryError,
    Error,
    "A statement failed: `line` and `column` (1-based) locate the offending text, `hint` may say \
     what to write instead, `kind` is one of 'syntax', 'invalid', 'not_found', 'unavailable', \
     'engine'. str() is the message with the source line and a caret under the text."
);
create_exception!(
    saedb,
    StoreLocked,
    Error,
    "The store is open for writing elsewhere (another process or another Database): `path` names \
     it. Close the other handle, or open this one with read_only=True."
);
create_exception!(
    saedb,
    InputError,
    Error,
    "An input was rejected before anything was written (a malformed file, arrays that disagree, \
     a name already taken): the store is exactly as it was. `path` names the input when there is \
     one."
);

/// An engine error as the Python exception a user can catch by meaning.
pub fn engine_error(py: Python<'_>, e: EngineError) -> PyErr {
    let message = e.to_string();
    let path = match &e {
        EngineError::Locked { path }
        | EngineError::BadInput { path, .. }
        | EngineError::AlreadyIngested { path, .. } => Some(path.display().to_string()),
        _ => None,
    };
    let err = match e {
        EngineError::Cancelled => return PyKeyboardInterrupt::new_err(message),
        EngineError::Locked { .. } => StoreLocked::new_err(message),
        EngineError::BadInput { .. }
        | EngineError::AlreadyIngested { .. }
        | EngineError::AlreadyExists { .. }
        | EngineError::Mismatch(_)
        | EngineError::InvalidArgument(_) => InputError::new_err(message),
        _ => return Error::new_err(message),
    };
    with_attrs(py, err, |v| v.setattr("path", path))
}

/// A query error: str() is the compiler-style message with the source line and caret.
pub fn query_error(py: Python<'_>, e: &LangError, source: &str) -> PyErr {
    let rendered = e.render(source, "query");
    let kind = match e.kind {
        saedb_query::ErrorKind::Syntax => "syntax",
        saedb_query::ErrorKind::Invalid => "invalid",
        saedb_query::ErrorKind::NotFound => "not_found",
        saedb_query::ErrorKind::Unavailable => "unavailable",
        _ => "engine",
    };
    let err = QueryError::new_err(rendered.trim_end().to_string());
    with_attrs(py, err, |v| {
        v.setattr("line", e.line)?;
        v.setattr("column", e.column)?;
        v.setattr("message", &e.message)?;
        v.setattr("hint", e.hint.as_deref())?;
        v.setattr("kind", kind)
    })
}

/// `err` with attributes set on its value (or the error that setting them raised).
fn with_attrs(
    py: Python<'_>,
    err: PyErr,
    set: impl FnOnce(&Bound<'_, pyo3::exceptions::PyBaseException>) -> PyResult<()>,
) -> PyErr {
    match set(err.value(py)) {
        Ok(()) => err,
        Err(e) => e,
    }
}
