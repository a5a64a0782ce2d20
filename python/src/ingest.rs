//! The ingest methods of `saedb.Database`: from files (every format the CLI takes) and from
//! memory (numpy arrays, Python lists). Each runs off the GIL on a worker thread (progress.rs),
//! commits all or nothing, and is cancelled by Ctrl-C or by an exception of its progress callback.

use crate::database::Database;
use crate::progress::{self, resolve_callback};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use saedb_engine::{IndexBuild, IngestReport, NoProgress};
use std::path::PathBuf;

/// An ingest's report as a dict: `{"kind", "path", "items", "unit", "seconds"}`.
fn report<'py>(py: Python<'py>, r: &IngestReport) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("kind", &r.kind)?;
    d.set_item("path", &r.path)?;
    d.set_item("items", r.items)?;
    d.set_item("unit", &r.unit)?;
    d.set_item("seconds", r.seconds)?;
    Ok(d)
}

#[pymethods]
impl Database {
    /// Ingests an SAE dictionary under `name` from a SAELens or sparsify folder, or a Gemma Scope
    /// params.npz / safetensors file, and builds its neighbour index (unless `defer_index`).
    #[pyo3(signature = (name, path, *, defer_index = false, progress = None))]
    fn ingest_dictionary<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        path: PathBuf,
        defer_index: bool,
        progress: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let store = self.store()?;
        let cb = resolve_callback(py, progress)?;
        let index = if defer_index {
            IndexBuild::OnFirstUse
        } else {
            IndexBuild::AtIngest
        };
        let r = progress::run(py, cb, |p| {
            store.ingest_dictionary_with(name, &path, index, p)
        })?;
        report(py, &r)
    }

    /// Ingests documents of tokens from a JSON-lines file (docs/FORMATS.md).
    #[pyo3(signature = (path_or_docs, *, progress = None))]
    fn ingest_tokens<'py>(
        &self,
        py: Python<'py>,
        path_or_docs: PathBuf,
        progress: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let store = self.store()?;
        let cb = resolve_callback(py, progress)?;
        let r = progress::run(py, cb, |p| store.ingest_tokens(&path_or_docs, p))?;
        report(py, &r)
    }

    /// Ingests pre-encoded sparse latents (delphi's cache: a split folder or a safetensors file)
    /// as activations of `dictionary`.
    #[pyo3(signature = (dictionary, path, *, progress = None))]
    fn ingest_latents<'py>(
        &self,
        py: Python<'py>,
        dictionary: &str,
        path: PathBuf,
        progress: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let store = self.store()?;
        let cb = resolve_callback(py, progress)?;
        let r = progress::run(py, cb, |p| store.ingest_latents(dictionary, &path, p))?;
        report(py, &r)
    }

    /// Encodes dense activations with `dictionary` and stores the sparse codes: from a file
    /// (`activations` [n, d_in] + `doc_pos` [n, 2] in safetensors / npz / npy).
    #[pyo3(signature = (dictionary, activations, doc_pos = None, *, progress = None))]
    fn ingest_dense<'py>(
        &self,
        py: Python<'py>,
        dictionary: &str,
        activations: PathBuf,
        doc_pos: Option<Bound<'py, PyAny>>,
        progress: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        if doc_pos.is_some() {
            return Err(crate::errors::InputError::new_err(
                "doc_pos= goes with activations given as an array; a file holds its own doc_pos",
            ));
        }
        let store = self.store()?;
        let cb = resolve_callback(py, progress)?;
        let r = progress::run(py, cb, |p| {
            store.ingest_activations(dictionary, &activations, p)
        })?;
        report(py, &r)
    }

    /// Ingests a model's embedding or unembedding matrix (`tensor` of a safetensors / npz file)
    /// with its vocabulary (vocab.txt or tokenizer.json), for token effects.
    #[pyo3(signature = (path, tensor, vocab, *, progress = None))]
    fn ingest_vocab<'py>(
        &self,
        py: Python<'py>,
        path: PathBuf,
        tensor: &str,
        vocab: PathBuf,
        progress: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let store = self.store()?;
        let cb = resolve_callback(py, progress)?;
        let r = progress::run(py, cb, |p| store.ingest_vocab(&path, tensor, &vocab, p))?;
        report(py, &r)
    }

    /// Ingests a circuit-tracer attribution graph (JSON) under `name`.
    #[pyo3(signature = (name, path, *, progress = None))]
    fn ingest_graph<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        path: PathBuf,
        progress: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let store = self.store()?;
        let cb = resolve_callback(py, progress)?;
        let r = progress::run(py, cb, |p| store.ingest_graph(name, &path, p))?;
        report(py, &r)
    }
}

#[allow(dead_code)]
fn _no_progress() -> NoProgress {
    NoProgress
}
