//! The ingest methods of `saedb.Database`: from files (every format the CLI takes) and from
//! memory (numpy arrays, Python lists). Each runs off the GIL on a worker thread (progress.rs),
//! commits all or nothing, and is cancelled by Ctrl-C or by an exception of its progress callback.

use crate::arrays::{f32s, shape, slice, u32s};
use crate::database::Database;
use crate::errors::InputError;
use crate::progress::{self, resolve_callback};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use saedb_engine::{
    Architecture, DenseActivations, DictionaryWeights, Document, IndexBuild, IngestReport,
    SparseActivations,
};
use std::path::PathBuf;

/// The source name recorded for (and named by errors about) in-memory ingests.
const ARRAYS: &str = "<arrays>";
const DOCUMENTS: &str = "<documents>";

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

/// A path argument: `str` or `os.PathLike`; `None` when the argument is something else.
fn as_path(obj: &Bound<'_, PyAny>) -> Option<PathBuf> {
    if obj.is_instance_of::<PyString>() || obj.hasattr("__fspath__").unwrap_or(false) {
        obj.extract::<PathBuf>().ok()
    } else {
        None
    }
}

fn index_build(defer: bool) -> IndexBuild {
    if defer {
        IndexBuild::OnFirstUse
    } else {
        IndexBuild::AtIngest
    }
}

fn architecture(name: &str) -> PyResult<Architecture> {
    match name.to_ascii_lowercase().as_str() {
        "relu" | "standard" => Ok(Architecture::Relu),
        "topk" => Ok(Architecture::TopK),
        "jumprelu" => Ok(Architecture::JumpRelu),
        other => Err(InputError::new_err(format!(
            "unknown architecture '{other}' (expected 'relu', 'topk' or 'jumprelu')"
        ))),
    }
}

/// One document given from Python: a dict in the JSON-lines shape, or a list of token strings
/// (then its id is its index in the list).
fn document(i: usize, obj: &Bound<'_, PyAny>) -> PyResult<Document> {
    let bad = |what: String| InputError::new_err(format!("document {i}: {what}"));
    if let Ok(d) = obj.cast::<PyDict>() {
        let get = |k: &str| d.get_item(k);
        let doc: u32 = get("doc")?
            .ok_or_else(|| bad("has no 'doc'".into()))?
            .extract()
            .map_err(|_| bad("'doc' must be an integer in 0..2^32".into()))?;
        let tokens: Vec<String> = get("tokens")?
            .ok_or_else(|| bad("has no 'tokens'".into()))?
            .extract()
            .map_err(|_| bad("'tokens' must be a list of strings".into()))?;
        let token_ids: Vec<u32> = match get("token_ids")? {
            Some(v) if !v.is_none() => v
                .extract()
                .map_err(|_| bad("'token_ids' must be a list of integers in 0..2^32".into()))?,
            _ => Vec::new(),
        };
        let text = |k: &str| -> PyResult<Option<String>> {
            match get(k)? {
                Some(v) if !v.is_none() => Ok(Some(
                    v.extract()
                        .map_err(|_| bad(format!("'{k}' must be a string")))?,
                )),
                _ => Ok(None),
            }
        };
        Ok(Document {
            doc,
            tokens,
            token_ids,
            text: text("text")?,
            source: text("source")?,
        })
    } else {
        let tokens: Vec<String> = obj.extract().map_err(|_| {
            bad("must be a dict {'doc', 'tokens', ...} or a list of token strings".into())
        })?;
        let doc = u32::try_from(i).map_err(|_| bad("too many documents".into()))?;
        Ok(Document {
            doc,
            tokens,
            token_ids: Vec::new(),
            text: None,
            source: None,
        })
    }
}

#[pymethods]
impl Database {
    /// Ingests an SAE dictionary under `name`: from a SAELens or sparsify folder or a Gemma Scope
    /// file (`path`), or from arrays (`path` None): `W_enc [d_in, d_sae]`, `W_dec [d_sae, d_in]`,
    /// `b_enc [d_sae]`, `b_dec [d_in]`, `architecture` 'relu' | 'topk' (with `k`) | 'jumprelu'
    /// (with `threshold [d_sae]`). Builds the neighbour index unless `defer_index`.
    #[pyo3(signature = (name, path = None, *, W_enc = None, W_dec = None, b_enc = None,
                        b_dec = None, architecture = None, k = None, threshold = None, hook = None,
                        apply_b_dec_to_input = true, layer = None, model = None,
                        defer_index = false, progress = None))]
    #[allow(non_snake_case, clippy::too_many_arguments)]
    fn ingest_dictionary<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        path: Option<PathBuf>,
        W_enc: Option<Bound<'py, PyAny>>,
        W_dec: Option<Bound<'py, PyAny>>,
        b_enc: Option<Bound<'py, PyAny>>,
        b_dec: Option<Bound<'py, PyAny>>,
        architecture: Option<&str>,
        k: Option<usize>,
        threshold: Option<Bound<'py, PyAny>>,
        hook: Option<&str>,
        apply_b_dec_to_input: bool,
        layer: Option<u32>,
        model: Option<&str>,
        defer_index: bool,
        progress: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let store = self.store()?;
        let cb = resolve_callback(py, progress)?;
        let index = index_build(defer_index);
        let arrays = [&W_enc, &W_dec, &b_enc, &b_dec, &threshold];
        if let Some(path) = path {
            if arrays.iter().any(|a| a.is_some()) || architecture.is_some() || k.is_some() {
                return Err(InputError::new_err(
                    "give a dictionary as a path or as arrays (W_enc=, W_dec=, ...), not both",
                ));
            }
            let r = progress::run(py, cb, |p| {
                store.ingest_dictionary_with(name, &path, index, p)
            })?;
            return report(py, &r);
        }
        let need = |a: &Option<Bound<'py, PyAny>>, n: &str| {
            a.clone().ok_or_else(|| {
                InputError::new_err(format!(
                    "a dictionary from arrays needs {n}= (or give a path to a SAELens folder)"
                ))
            })
        };
        let w_enc = f32s(py, "W_enc", &need(&W_enc, "W_enc")?, 2)?;
        let w_dec = f32s(py, "W_dec", &need(&W_dec, "W_dec")?, 2)?;
        let b_enc = f32s(py, "b_enc", &need(&b_enc, "b_enc")?, 1)?;
        let b_dec = f32s(py, "b_dec", &need(&b_dec, "b_dec")?, 1)?;
        let threshold = threshold
            .map(|t| f32s(py, "threshold", &t, 1))
            .transpose()?;
        let arch = self::architecture(architecture.ok_or_else(|| {
            InputError::new_err(
                "a dictionary from arrays needs architecture= ('relu', 'topk' or 'jumprelu')",
            )
        })?)?;
        let (d_in, d_sae) = match shape(&w_enc)[..] {
            [a, b] => (a, b),
            _ => unreachable!("checked to be 2-d"),
        };
        let weights = DictionaryWeights {
            architecture: arch,
            d_in,
            d_sae,
            w_enc: slice(&w_enc),
            b_enc: slice(&b_enc),
            w_dec: slice(&w_dec),
            b_dec: slice(&b_dec),
            k,
            threshold: threshold.as_ref().map(slice),
            apply_b_dec_to_input,
            hook,
            layer,
            model,
        };
        let w_dec_shape = shape(&w_dec);
        if w_dec_shape != [d_sae, d_in] {
            return Err(InputError::new_err(format!(
                "W_dec must be [d_sae, d_in] = [{d_sae}, {d_in}] to match W_enc [{d_in}, {d_sae}], not {w_dec_shape:?}"
            )));
        }
        let r = progress::run(py, cb, |p| {
            store.ingest_dictionary_weights(name, ARRAYS, &weights, index, p)
        })?;
        report(py, &r)
    }

    /// Ingests documents of tokens: from a JSON-lines file (docs/FORMATS.md), or from a list of
    /// documents, each a dict `{"doc", "tokens", "token_ids"?, "text"?, "source"?}` or a list of
    /// token strings (its document id is then its index in the list).
    #[pyo3(signature = (path_or_docs, *, progress = None))]
    fn ingest_tokens<'py>(
        &self,
        py: Python<'py>,
        path_or_docs: Bound<'py, PyAny>,
        progress: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let store = self.store()?;
        let cb = resolve_callback(py, progress)?;
        let r = match as_path(&path_or_docs) {
            Some(path) => progress::run(py, cb, |p| store.ingest_tokens(&path, p))?,
            None => {
                let list = py
                    .get_type::<PyList>()
                    .call1((path_or_docs,))
                    .map_err(|_| {
                        InputError::new_err("ingest_tokens takes a path or a list of documents")
                    })?;
                let docs = list
                    .try_iter()?
                    .enumerate()
                    .map(|(i, d)| document(i, &d?))
                    .collect::<PyResult<Vec<_>>>()?;
                progress::run(py, cb, |p| store.ingest_documents(DOCUMENTS, &docs, p))?
            }
        };
        report(py, &r)
    }

    /// Registers the model at `path` (a `.gguf` file or a HF safetensors folder) as `name`, for
    /// the dictionaries whose hook it has: its path, a hash of its files and its configuration
    /// are stored, never the weights. `tokenizer` is a tokenizer.json where the model carries
    /// none saedb reads. Registering a name again replaces it.
    #[pyo3(signature = (name, path, *, tokenizer = None, progress = None))]
    fn ingest_model<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        path: PathBuf,
        tokenizer: Option<PathBuf>,
        progress: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let store = self.store()?;
        let cb = resolve_callback(py, progress)?;
        let r = progress::run(py, cb, |p| {
            store.ingest_model(name, &path, tokenizer.as_deref(), p)
        })?;
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

    /// Ingests sparse activations of `dictionary` from COO arrays of one length: `doc`, `pos`,
    /// `feature` (integers in 0..2^32) and `value`. C-contiguous uint32 / float32 arrays are
    /// read in place; others are converted first.
    #[pyo3(signature = (dictionary, *, doc, pos, feature, value, progress = None))]
    #[allow(clippy::too_many_arguments)]
    fn ingest_activations<'py>(
        &self,
        py: Python<'py>,
        dictionary: &str,
        doc: Bound<'py, PyAny>,
        pos: Bound<'py, PyAny>,
        feature: Bound<'py, PyAny>,
        value: Bound<'py, PyAny>,
        progress: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let store = self.store()?;
        let cb = resolve_callback(py, progress)?;
        let doc = u32s(py, "doc", &doc, 1)?;
        let pos = u32s(py, "pos", &pos, 1)?;
        let feature = u32s(py, "feature", &feature, 1)?;
        let value = f32s(py, "value", &value, 1)?;
        let sparse = SparseActivations {
            doc: slice(&doc),
            pos: slice(&pos),
            feature: slice(&feature),
            value: slice(&value),
        };
        let r = progress::run(py, cb, |p| {
            store.ingest_sparse(dictionary, ARRAYS, &sparse, p)
        })?;
        report(py, &r)
    }

    /// Encodes dense activations with `dictionary` (exactly per its architecture) and stores
    /// the sparse codes: `activations [n, d_in]` with `doc_pos [n, 2]` (doc, pos) as arrays, or
    /// a file holding both (safetensors / npz / npy, docs/FORMATS.md).
    #[pyo3(signature = (dictionary, activations, doc_pos = None, *, progress = None))]
    fn ingest_dense<'py>(
        &self,
        py: Python<'py>,
        dictionary: &str,
        activations: Bound<'py, PyAny>,
        doc_pos: Option<Bound<'py, PyAny>>,
        progress: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let store = self.store()?;
        let cb = resolve_callback(py, progress)?;
        if let Some(path) = as_path(&activations) {
            if doc_pos.is_some() {
                return Err(InputError::new_err(
                    "doc_pos= goes with activations given as an array; a file holds its own doc_pos",
                ));
            }
            let r = progress::run(py, cb, |p| store.ingest_activations(dictionary, &path, p))?;
            return report(py, &r);
        }
        let doc_pos = doc_pos.ok_or_else(|| {
            InputError::new_err("activations given as an array need doc_pos= ([n, 2]: doc, pos)")
        })?;
        let values = f32s(py, "activations", &activations, 2)?;
        let dp = u32s(py, "doc_pos", &doc_pos, 2)?;
        let (n, d_in) = match shape(&values)[..] {
            [n, d] => (n, d),
            _ => unreachable!("checked to be 2-d"),
        };
        if shape(&dp) != [n, 2] {
            return Err(InputError::new_err(format!(
                "doc_pos must be [n, 2] = [{n}, 2] for {n} rows of activations, not {:?}",
                shape(&dp)
            )));
        }
        // (doc, pos) pairs as two columns: the engine takes them apart.
        let (doc, pos): (Vec<u32>, Vec<u32>) =
            slice(&dp).chunks_exact(2).map(|c| (c[0], c[1])).unzip();
        let dense = DenseActivations {
            values: slice(&values),
            d_in,
            doc: &doc,
            pos: &pos,
        };
        let r = progress::run(py, cb, |p| {
            store.ingest_dense(dictionary, ARRAYS, &dense, p)
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
