//! `saedb.Result`: the answer of one statement, kept as the query crate's typed `ResultSet` and
//! converted only when asked (`rows()`, `df()`, `arrow()`, `pl()`, `column()`).

use crate::arrow::{column_type, float_column, int_column, record_batch, ColumnType};
use crate::values;
use arrow_pyarrow::{IntoPyArrow, Table};
use numpy::PyArray1;
use pyo3::exceptions::{PyImportError, PyKeyError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use saedb_query::{render_table, ResultKind, ResultSet};

/// The result of a statement (the last one of a script). `repr()` is the table the shell prints.
///
/// - `rows()`: a list of dicts, the JSON row shapes of docs/QUERY.md;
/// - `df()`: a pandas DataFrame; `arrow()`: a pyarrow Table; `pl()`: a polars DataFrame;
/// - `column(name)`: one column, numbers as a numpy array;
/// - `columns`, `title`, `note`, `kind`, `len()`.
#[pyclass(module = "saedb", name = "Result", frozen)]
pub struct QueryResult {
    rs: ResultSet,
}

impl QueryResult {
    pub fn new(rs: ResultSet) -> QueryResult {
        QueryResult { rs }
    }

    /// An empty result (a script of comments only).
    pub fn empty() -> QueryResult {
        QueryResult::new(ResultSet::new(ResultKind::Message, &[]))
    }

    fn index(&self, name: &str) -> PyResult<usize> {
        self.rs.column(name).ok_or_else(|| {
            PyKeyError::new_err(format!(
                "no column '{name}' (the columns are: {})",
                self.rs.columns.join(", ")
            ))
        })
    }

    fn column_object<'py>(&self, py: Python<'py>, c: usize) -> PyResult<Bound<'py, PyAny>> {
        match column_type(&self.rs, c) {
            ColumnType::Int => {
                let (v, valid) = int_column(&self.rs, c);
                if valid.iter().all(|x| *x) {
                    return Ok(PyArray1::from_vec(py, v).into_any());
                }
            }
            ColumnType::Float => {
                return Ok(PyArray1::from_vec(py, float_column(&self.rs, c).0).into_any());
            }
            _ => {}
        }
        let list = PyList::empty(py);
        for row in &self.rs.rows {
            list.append(values::to_py(py, &row[c])?)?;
        }
        Ok(list.into_any())
    }
}

fn import<'py>(py: Python<'py>, module: &str, what: &str) -> PyResult<Bound<'py, PyModule>> {
    py.import(module).map_err(|_| {
        PyImportError::new_err(format!(
            "Result.{what}() needs the '{module}' package: pip install {module}"
        ))
    })
}

#[pymethods]
impl QueryResult {
    /// Column names, which are also the keys of `rows()`.
    #[getter]
    fn columns(&self) -> Vec<String> {
        self.rs.columns.clone()
    }

    /// The heading the shell prints above the table (e.g. `TOP 5 ACTIVATIONS OF L2/7`), if any.
    #[getter]
    fn title(&self) -> Option<String> {
        self.rs.title.clone()
    }

    /// The line the shell prints after the rows (what a statement did), if any.
    #[getter]
    fn note(&self) -> Option<String> {
        self.rs.note.clone()
    }

    /// Which statement answered: 'top_activations', 'neighbours', 'describe', 'message', ...
    #[getter]
    fn kind(&self) -> &'static str {
        self.rs.kind.name()
    }

    fn __len__(&self) -> usize {
        self.rs.rows.len()
    }

    fn __repr__(&self) -> String {
        render_table(&self.rs, false).trim_end().to_string()
    }

    fn __str__(&self) -> String {
        self.__repr__()
    }

    /// The rows as a list of dicts keyed by column name (docs/QUERY.md's JSON shapes).
    fn rows<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        values::rows(py, &self.rs)
    }

    /// The result as the CLI's `--format json` prints it.
    fn json(&self) -> String {
        saedb_query::render(&self.rs, saedb_query::Format::Json)
    }

    /// One column: integers (without nulls) and numbers as a numpy array (moved, not copied,
    /// from the result), anything else as a list of the values `rows()` holds.
    fn column<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        let c = self.index(name)?;
        self.column_object(py, c)
    }

    /// A pandas DataFrame: integer columns int64 (pandas' nullable Int64 when some are null),
    /// numbers float64, everything else object (str, dict, list).
    fn df<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let pd = import(py, "pandas", "df")?;
        let data = PyDict::new(py);
        for (c, name) in self.rs.columns.iter().enumerate() {
            let mut col = self.column_object(py, c)?;
            if column_type(&self.rs, c) == ColumnType::Int && col.is_instance_of::<PyList>() {
                col = pd.call_method1("array", (col, "Int64"))?;
            }
            data.set_item(name, col)?;
        }
        let kwargs = PyDict::new(py);
        kwargs.set_item("columns", self.rs.columns.clone())?;
        pd.getattr("DataFrame")?.call((data,), Some(&kwargs))
    }

    /// A pyarrow Table through the Arrow C data interface; the schema's metadata holds
    /// `saedb.kind`, `saedb.title` and `saedb.note`.
    fn arrow<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        import(py, "pyarrow", "arrow")?;
        let batch = record_batch(&self.rs, self.kind())
            .map_err(|e| crate::errors::Error::new_err(format!("building the Arrow table: {e}")))?;
        let schema = batch.schema();
        let table = Table::try_new(vec![batch], schema)
            .map_err(|e| crate::errors::Error::new_err(format!("building the Arrow table: {e}")))?;
        table.into_pyarrow(py)
    }

    /// A polars DataFrame (through `arrow()`, so it needs pyarrow too).
    fn pl<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let pl = import(py, "polars", "pl")?;
        let table = self.arrow(py)?;
        pl.call_method1("from_arrow", (table,))
    }
}
