//! Cells of a result as Python objects, in the JSON row shapes of docs/QUERY.md (the same
//! mapping as `saedb_query::render`'s JSON: contexts `{"tokens", "center"}`, histograms
//! `[{"lo", "hi", "count"}]`, NaN as `None`).

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use saedb_query::{ResultSet, Value};

/// One cell as a Python object.
pub fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Int(i) => i.into_pyobject(py)?.into_any(),
        Value::Float(f) if f.is_finite() => f.into_pyobject(py)?.into_any(),
        Value::Float(_) => py.None().into_bound(py),
        Value::Str(s) => s.into_pyobject(py)?.into_any(),
        Value::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
        Value::List(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Context { tokens, center } => {
            let d = PyDict::new(py);
            d.set_item("tokens", tokens)?;
            d.set_item("center", center)?;
            d.into_any()
        }
        Value::Histogram(bins) => {
            let list = PyList::empty(py);
            for (lo, hi, count) in bins {
                let d = PyDict::new(py);
                d.set_item("lo", to_py(py, &Value::from_f32(*lo))?)?;
                d.set_item("hi", to_py(py, &Value::from_f32(*hi))?)?;
                d.set_item("count", count)?;
                list.append(d)?;
            }
            list.into_any()
        }
    })
}

/// Every row as a dict keyed by column name, in column order.
pub fn rows<'py>(py: Python<'py>, rs: &ResultSet) -> PyResult<Bound<'py, PyList>> {
    let keys: Vec<_> = rs
        .columns
        .iter()
        .map(|c| pyo3::types::PyString::new(py, c))
        .collect();
    let out = PyList::empty(py);
    for row in &rs.rows {
        let d = PyDict::new(py);
        for (k, v) in keys.iter().zip(row) {
            d.set_item(k, to_py(py, v)?)?;
        }
        out.append(d)?;
    }
    Ok(out)
}
