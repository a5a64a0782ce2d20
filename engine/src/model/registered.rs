//! What a store remembers of a model it runs (the catalog's `models`): where its files are, their
//! content hashes at registration and its parsed configuration, never its weights. Also which
//! files those are, so that a change to any of them is noticed and nothing else is hashed.

use super::ModelConfig;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A model registered in a store (`saedb ingest model`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    /// The `.gguf` file or the safetensors folder, absolute.
    pub path: String,
    /// xxh3-128 of the files the runtime reads (see [`model_files`]) at registration.
    pub content_hash: String,
    /// The `tokenizer.json` used with it, absolute.
    pub tokenizer: String,
    pub tokenizer_hash: String,
    pub config: ModelConfig,
}

/// Whether a dictionary of the store can run on text now, on which model, and why not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveDictionary {
    pub dictionary: String,
    /// The dictionary's hook point, as its SAE names it.
    pub hook: Option<String>,
    /// The registered model it runs on, when it can run.
    pub model: Option<String>,
    /// The residual-stream site its hook reads: the stream after this many blocks.
    pub site: Option<usize>,
    /// Why it cannot run, when it cannot.
    pub reason: Option<String>,
}

/// The files of the model at `path` that the runtime reads: the `.gguf` file itself, or a
/// folder's `config.json` and `*.safetensors` in name order (a README or an ONNX copy beside
/// them may change freely).
pub(crate) fn model_files(path: &Path) -> Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| Error::io(path, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    if files.is_empty() {
        return Err(Error::bad_input(
            path,
            "the folder holds no *.safetensors file: give a .gguf file or a HF folder with config.json and *.safetensors",
        ));
    }
    files.sort();
    files.insert(0, path.join("config.json"));
    Ok(files)
}

/// The tokenizer of a model: the one given, else `tokenizer.json` in the model's folder or
/// beside its file.
pub(crate) fn find_tokenizer(model: &Path, given: Option<&Path>) -> Result<PathBuf> {
    if let Some(t) = given {
        return if t.is_file() {
            Ok(t.to_path_buf())
        } else {
            Err(Error::bad_input(t, "no such tokenizer file"))
        };
    }
    let beside = if model.is_dir() {
        model.join("tokenizer.json")
    } else {
        model.with_file_name("tokenizer.json")
    };
    if beside.is_file() {
        Ok(beside)
    } else {
        Err(Error::bad_input(
            model,
            "carries no tokenizer saedb reads (no tokenizer.json beside it): give one with --tokenizer tokenizer.json",
        ))
    }
}
