//! `saedb.open()` and `saedb.Database`: a store and a query session over it.

use crate::errors::{engine_error, query_error, Error, InputError};
use crate::progress;
use crate::result::QueryResult;
use crate::statement::{self, clause, quote, FeatureArg};
use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;
use saedb_engine::{FeatureRef, OpenOptions, Store};
use saedb_query::Session;
use std::fmt::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// An open store and the session that runs statements on it (USE and SET persist in it).
pub struct OpenStore {
    pub store: Arc<Store>,
    session: Session,
}

/// A saedb store opened from Python. Use it as a context manager, or call `close()`.
///
/// One writer and many readers, as in Rust: a second writable open of the same store (in this
/// process or another) raises `StoreLocked`; `read_only=True` opens always work and see what
/// was committed when they opened.
#[pyclass(module = "saedb", name = "Database", frozen)]
pub struct Database {
    path: PathBuf,
    read_only: bool,
    state: Mutex<Option<OpenStore>>,
}

/// Opens the store at `path` (created if missing, unless `read_only`). Opening a store of an
/// older format upgrades it (unless `read_only`), with a progress bar as ingests draw.
#[pyfunction]
#[pyo3(signature = (path, read_only = false, *, progress = None))]
pub fn open(
    py: Python<'_>,
    path: PathBuf,
    read_only: bool,
    progress: Option<Bound<'_, PyAny>>,
) -> PyResult<Database> {
    let cb = progress::resolve_callback(py, progress)?;
    let options = OpenOptions::new().create(!read_only).read_only(read_only);
    let store = Arc::new(progress::run(py, cb, |p| options.progress(p).open(&path))?);
    let session = Session::new(store.clone());
    Ok(Database {
        path,
        read_only,
        state: Mutex::new(Some(OpenStore { store, session })),
    })
}

fn closed() -> PyErr {
    Error::new_err("this Database is closed")
}

fn bad_argument(message: String) -> PyErr {
    InputError::new_err(message)
}

impl Database {
    fn lock(&self) -> PyResult<MutexGuard<'_, Option<OpenStore>>> {
        self.state.lock().map_err(|_| {
            Error::new_err("an earlier panic left this Database unusable; open it again")
        })
    }

    /// The store, for work that runs without holding the session (ingest, engine calls).
    pub fn store(&self) -> PyResult<Arc<Store>> {
        self.lock()?
            .as_ref()
            .map(|o| o.store.clone())
            .ok_or_else(closed)
    }

    /// Runs `text` in the session with the GIL released; the last statement's result. Ctrl-C
    /// stops it (inside the long reads, and between the statements of a script) and raises
    /// `KeyboardInterrupt`; the session stays usable.
    pub fn run(&self, py: Python<'_>, text: &str) -> PyResult<QueryResult> {
        let cancel = self
            .lock()?
            .as_ref()
            .map(|o| o.session.cancel_handle())
            .ok_or_else(closed)?;
        let (outcome, interrupt) = progress::interruptible(
            py,
            || cancel.cancel(),
            || {
                let mut guard = self.state.lock().map_err(|_| ())?;
                match guard.as_mut() {
                    Some(open) => Ok(open.session.execute(text)),
                    None => Err(()),
                }
            },
        )?;
        match (outcome, interrupt) {
            (Err(()), _) => Err(self.lock().err().unwrap_or_else(closed)),
            (Ok(Err(e)), Some(interrupt)) if e.kind == saedb_query::ErrorKind::Cancelled => {
                Err(interrupt)
            }
            (Ok(Err(e)), _) => Err(query_error(py, &e, text)),
            // Python's interrupt arrived after the last statement had run: say so, since a
            // statement that writes (LABEL, DROP GRAPH) has done it.
            (Ok(Ok(_)), Some(_)) => Err(PyKeyboardInterrupt::new_err(
                "interrupted after the statements had run: any change they made is in the store",
            )),
            (Ok(Ok(mut results)), None) => Ok(results
                .pop()
                .map(QueryResult::new)
                .unwrap_or_else(QueryResult::empty)),
        }
    }

    fn feature(f: &FeatureArg) -> PyResult<String> {
        f.to_statement().map_err(bad_argument)
    }
}

/// `KIND "text" [IN dictionary] LIMIT k`.
fn text_statement(kind: &str, text: &str, dictionary: Option<&str>, k: i64) -> PyResult<String> {
    let mut stmt = format!("{kind} {}", quote(text));
    let dict = dictionary
        .map(|d| statement::name("dictionary", d))
        .transpose();
    clause(&mut stmt, "IN", dict.map_err(bad_argument)?);
    clause(&mut stmt, "LIMIT", Some(positive("k", k)?));
    Ok(stmt)
}

/// `clamp=` / `steer=`: a mapping or pairs of feature → finite number, as statement text.
fn feature_values(what: &str, arg: Option<Bound<'_, PyAny>>) -> PyResult<Vec<(String, f64)>> {
    let Some(arg) = arg.filter(|a| !a.is_none()) else {
        return Ok(Vec::new());
    };
    let pairs = match arg.cast::<pyo3::types::PyDict>() {
        Ok(d) => d.items().into_any(),
        Err(_) => arg,
    };
    let mut out = Vec::new();
    for item in pairs
        .try_iter()
        .map_err(|_| bad_argument(format!("{what}= takes a dict or pairs of feature → number")))?
    {
        let (f, v): (FeatureArg, f64) = item?.extract().map_err(|_| {
            bad_argument(format!(
                "{what}= takes a dict or pairs of feature → number (a feature is \"L2/123\" or (\"L2\", 123))"
            ))
        })?;
        if !v.is_finite() {
            return Err(bad_argument(format!(
                "{what}= values must be finite, not {v}"
            )));
        }
        out.push((f.to_statement().map_err(bad_argument)?, v));
    }
    Ok(out)
}

fn positive(what: &str, n: i64) -> PyResult<i64> {
    if n < 1 {
        Err(bad_argument(format!("{what} must be at least 1, not {n}")))
    } else {
        Ok(n)
    }
}

#[pymethods]
impl Database {
    /// The store's directory.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    #[getter]
    fn read_only(&self) -> bool {
        self.read_only
    }

    #[getter]
    fn closed(&self) -> PyResult<bool> {
        Ok(self.lock()?.is_none())
    }

    /// Closes the store (flushing it, releasing the writer's lock). Results already returned
    /// stay usable; calls on this Database raise `saedb.Error`. Closing twice is harmless.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let open = self.lock()?.take();
        // Dropping the store flushes RocksDB's memtables: no GIL needed for that.
        py.detach(move || drop(open));
        Ok(())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let state = match self.lock().map(|g| g.is_some()) {
            Ok(true) if self.read_only => "read-only",
            Ok(true) => "open",
            _ => "closed",
        };
        format!("<saedb.Database {} ({state})>", self.path.display())
    }

    /// Runs a statement or a script (`;`-separated; the final `;` optional) and returns the
    /// result of its last statement. Statements before an error have run. USE and SET persist
    /// in this Database's session. Raises `QueryError` with the position of the error.
    fn sql(&self, py: Python<'_>, text: &str) -> PyResult<QueryResult> {
        self.run(py, text)
    }

    /// `TOP k ACTIVATIONS OF feature CONTEXT context [WHERE where] [EXCLUDE SPECIAL]`.
    #[pyo3(signature = (feature, k = 20, context = 8, r#where = None, exclude_special = false))]
    fn top_activations(
        &self,
        py: Python<'_>,
        feature: FeatureArg,
        k: i64,
        context: i64,
        r#where: Option<&str>,
        exclude_special: bool,
    ) -> PyResult<QueryResult> {
        let k = positive("k", k)?;
        if context < 0 {
            return Err(bad_argument(format!(
                "context must be 0 or more, not {context}"
            )));
        }
        let mut text = format!(
            "TOP {k} ACTIVATIONS OF {} CONTEXT {context}",
            Self::feature(&feature)?
        );
        if let Some(w) = r#where {
            text.push_str(" WHERE ");
            text.push_str(w);
        }
        if exclude_special {
            text.push_str(" EXCLUDE SPECIAL");
        }
        // A WHERE text must not smuggle in a second statement.
        if saedb_query::split_statements(&text).len() != 1 {
            return Err(bad_argument(format!(
                "where= must be one condition, not statements: {:?}",
                r#where.unwrap_or_default()
            )));
        }
        self.run(py, &text)
    }

    /// `FEATURES AT DOC doc POS pos [IN dictionary] [LIMIT limit]`.
    #[pyo3(signature = (doc, pos, dictionary = None, limit = None))]
    fn features_at(
        &self,
        py: Python<'_>,
        doc: u32,
        pos: u32,
        dictionary: Option<&str>,
        limit: Option<i64>,
    ) -> PyResult<QueryResult> {
        let mut text = format!("FEATURES AT DOC {doc} POS {pos}");
        let dict = dictionary
            .map(|d| statement::name("dictionary", d))
            .transpose();
        clause(&mut text, "IN", dict.map_err(bad_argument)?);
        clause(
            &mut text,
            "LIMIT",
            limit.map(|l| positive("limit", l)).transpose()?,
        );
        self.run(py, &text)
    }

    /// `NEIGHBOURS OF feature [IN dictionary] [EXACT] LIMIT k`: nearest features by decoder
    /// cosine (approximate through the HNSW index unless `exact`).
    #[pyo3(signature = (feature, dictionary = None, k = 10, exact = false))]
    fn neighbours(
        &self,
        py: Python<'_>,
        feature: FeatureArg,
        dictionary: Option<&str>,
        k: i64,
        exact: bool,
    ) -> PyResult<QueryResult> {
        let mut text = format!("NEIGHBOURS OF {}", Self::feature(&feature)?);
        let dict = dictionary
            .map(|d| statement::name("dictionary", d))
            .transpose();
        clause(&mut text, "IN", dict.map_err(bad_argument)?);
        if exact {
            text.push_str(" EXACT");
        }
        clause(&mut text, "LIMIT", Some(positive("k", k)?));
        self.run(py, &text)
    }

    /// `DESCRIBE feature`: count, frequency, max, mean, label and histogram.
    fn describe(&self, py: Python<'_>, feature: FeatureArg) -> PyResult<QueryResult> {
        self.run(py, &format!("DESCRIBE {}", Self::feature(&feature)?))
    }

    /// `TOKEN EFFECTS OF feature LIMIT k`: the k most promoted, then the k most suppressed tokens.
    #[pyo3(signature = (feature, k = 10))]
    fn token_effects(&self, py: Python<'_>, feature: FeatureArg, k: i64) -> PyResult<QueryResult> {
        let text = format!(
            "TOKEN EFFECTS OF {} LIMIT {}",
            Self::feature(&feature)?,
            positive("k", k)?
        );
        self.run(py, &text)
    }

    /// `CHAINS TO "target" IN GRAPH graph [FROM ..] [THROUGH ..] [MIN/MAX LENGTH ..]
    /// [EXCLUDE ERRORS] LIMIT limit`: the strongest attribution paths into a node.
    #[pyo3(signature = (target, graph, *, source = None, through = None, min_length = None,
                        max_length = None, exclude_errors = false, limit = 10))]
    #[allow(clippy::too_many_arguments)]
    fn chains(
        &self,
        py: Python<'_>,
        target: &str,
        graph: &str,
        source: Option<&str>,
        through: Option<&str>,
        min_length: Option<i64>,
        max_length: Option<i64>,
        exclude_errors: bool,
        limit: i64,
    ) -> PyResult<QueryResult> {
        let graph = statement::name("graph", graph).map_err(bad_argument)?;
        let mut text = format!("CHAINS TO {} IN GRAPH {graph}", quote(target));
        clause(&mut text, "FROM", source.map(quote));
        clause(&mut text, "THROUGH", through.map(quote));
        clause(
            &mut text,
            "MIN LENGTH",
            min_length.map(|n| positive("min_length", n)).transpose()?,
        );
        clause(
            &mut text,
            "MAX LENGTH",
            max_length.map(|n| positive("max_length", n)).transpose()?,
        );
        if exclude_errors {
            text.push_str(" EXCLUDE ERRORS");
        }
        clause(&mut text, "LIMIT", Some(positive("limit", limit)?));
        self.run(py, &text)
    }

    /// `LABEL feature AS "text"`: sets (or replaces) a feature's label.
    fn label(&self, py: Python<'_>, feature: FeatureArg, text: &str) -> PyResult<QueryResult> {
        let stmt = format!("LABEL {} AS {}", Self::feature(&feature)?, quote(text));
        self.run(py, &stmt)
    }

    /// `SEARCH LABELS "text" LIMIT limit`: labels containing the text, best matches first.
    #[pyo3(signature = (text, limit = 20))]
    fn search_labels(&self, py: Python<'_>, text: &str, limit: i64) -> PyResult<QueryResult> {
        let stmt = format!(
            "SEARCH LABELS {} LIMIT {}",
            quote(text),
            positive("limit", limit)?
        );
        self.run(py, &stmt)
    }

    /// `FEATURES OF TEXT "text" [IN dictionary] LIMIT k`: the text run through the model the
    /// dictionary reads (registered with `ingest_model`), each token's `k` strongest features.
    #[pyo3(signature = (text, dictionary = None, k = 10))]
    fn features_of_text(
        &self,
        py: Python<'_>,
        text: &str,
        dictionary: Option<&str>,
        k: i64,
    ) -> PyResult<QueryResult> {
        self.run(
            py,
            &text_statement("FEATURES OF TEXT", text, dictionary, k)?,
        )
    }

    /// `TOP FEATURES OF TEXT "text" [IN dictionary] LIMIT k`: features ranked by their maximum
    /// over the text, with the token where it is reached.
    #[pyo3(signature = (text, dictionary = None, k = 10))]
    fn top_features_of_text(
        &self,
        py: Python<'_>,
        text: &str,
        dictionary: Option<&str>,
        k: i64,
    ) -> PyResult<QueryResult> {
        self.run(
            py,
            &text_statement("TOP FEATURES OF TEXT", text, dictionary, k)?,
        )
    }

    /// `ACTIVATION OF feature ON TEXT "text"`: one feature's value at every token, and as a
    /// fraction of its largest stored activation.
    fn activation_on_text(
        &self,
        py: Python<'_>,
        feature: FeatureArg,
        text: &str,
    ) -> PyResult<QueryResult> {
        let stmt = format!(
            "ACTIVATION OF {} ON TEXT {}",
            Self::feature(&feature)?,
            quote(text)
        );
        self.run(py, &stmt)
    }

    /// `GENERATE "prompt" [MAX TOKENS n] [CLAMP f TO v [TIMES MAX]] ... [STEER f BY a] ...
    /// [TEMPERATURE t SEED s]`: the default continuation, then (with edits) the intervened one.
    /// `clamp` and `steer` map features to values (a dict, or pairs); `times_max` gives every
    /// clamp value in multiples of the feature's largest stored activation.
    #[pyo3(signature = (prompt, *, max_tokens = None, clamp = None, steer = None,
                        times_max = false, temperature = None, seed = None))]
    #[allow(clippy::too_many_arguments)]
    fn generate(
        &self,
        py: Python<'_>,
        prompt: &str,
        max_tokens: Option<i64>,
        clamp: Option<Bound<'_, PyAny>>,
        steer: Option<Bound<'_, PyAny>>,
        times_max: bool,
        temperature: Option<f64>,
        seed: Option<u64>,
    ) -> PyResult<QueryResult> {
        let mut text = format!("GENERATE {}", quote(prompt));
        clause(
            &mut text,
            "MAX TOKENS",
            max_tokens.map(|n| positive("max_tokens", n)).transpose()?,
        );
        for (f, v) in feature_values("clamp", clamp)? {
            let _ = write!(text, " CLAMP {f} TO {v}");
            if times_max {
                text.push_str(" TIMES MAX");
            }
        }
        for (f, a) in feature_values("steer", steer)? {
            let _ = write!(text, " STEER {f} BY {a}");
        }
        match (temperature, seed) {
            (None, None) => {}
            (Some(t), s) if t.is_finite() && t >= 0.0 => {
                let _ = write!(text, " TEMPERATURE {t}");
                if let Some(s) = s {
                    let _ = write!(text, " SEED {s}");
                }
            }
            (Some(t), _) => {
                return Err(bad_argument(format!(
                    "temperature must be a finite number >= 0, not {t}"
                )))
            }
            (None, Some(_)) => {
                return Err(bad_argument(
                    "seed= needs temperature= (greedy decoding uses no seed)".to_string(),
                ))
            }
        }
        self.run(py, &text)
    }

    /// What `saedb info` shows, as a dict (documents, tokens, dictionaries, vocabulary, graphs...).
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let store = self.store()?;
        let info = py
            .detach(|| store.info())
            .map_err(|e| engine_error(py, e))?;
        json_to_py(py, &info)
    }

    /// A stored document: `{"doc", "tokens", "token_ids", "text", "source"}`.
    fn document<'py>(&self, py: Python<'py>, doc: u32) -> PyResult<Bound<'py, PyAny>> {
        let store = self.store()?;
        let d = py
            .detach(|| store.document(doc))
            .map_err(|e| engine_error(py, e))?;
        json_to_py(py, &d)
    }
}

/// Any serde value as the Python object `json.loads` makes of it.
pub fn json_to_py<'py>(py: Python<'py>, v: &impl serde::Serialize) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(v).map_err(|e| Error::new_err(e.to_string()))?;
    py.import("json")?.call_method1("loads", (text,))
}

/// Benchmark support (python/bench): runs `text` `n` times in Rust, in this Database's session,
/// and returns each run's seconds; with `feature`, times `Store::top_activations(feature, k)`
/// instead. The baseline a Python call is compared with, measured in the same process.
#[pyfunction]
#[pyo3(signature = (db, text, n, feature = None, k = 20))]
pub fn _time_rust_statement(
    py: Python<'_>,
    db: &Database,
    text: &str,
    n: usize,
    feature: Option<(String, u32)>,
    k: usize,
) -> PyResult<Vec<f64>> {
    let mut guard = db.lock()?;
    let open = guard.as_mut().ok_or_else(closed)?;
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        match &feature {
            Some((d, i)) => {
                let f = FeatureRef::new(d.clone(), *i);
                std::hint::black_box(open.store.top_activations(&f, k, None))
                    .map_err(|e| engine_error(py, e))?;
            }
            None => {
                std::hint::black_box(open.session.execute(text))
                    .map_err(|e| query_error(py, &e, text))?;
            }
        }
        times.push(t.elapsed().as_secs_f64());
    }
    Ok(times)
}
