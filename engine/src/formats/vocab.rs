//! A model's embedding or unembedding matrix with its vocabulary, for token effects.
//! The matrix comes from a safetensors file (or an `.npz`); the vocabulary from a `vocab.txt`
//! (one token per line, line number = id) or a Hugging Face `tokenizer.json`.

use super::npy::Npz;
use super::raw::{first_non_finite, shape_str};
use super::st::StFile;
use crate::{Error, Result};
use serde_json::Value;
use std::path::Path;

/// `matrix` is `[n_vocab, d_model]` row-major; `tokens[id]` is the string of token `id`.
#[derive(Debug, Clone, PartialEq)]
pub struct VocabMatrix {
    pub n_vocab: usize,
    pub d_model: usize,
    pub matrix: Vec<f32>,
    pub tokens: Vec<String>,
}

/// Largest vocabulary file accepted.
const MAX_VOCAB_FILE: u64 = 1 << 30;

/// Reads `tensor` from `matrix_path` and the vocabulary from `vocab_path`. The tensor may be
/// `[n_vocab, d_model]` (an embedding, or Hugging Face `lm_head.weight`) or `[d_model, n_vocab]`
/// (TransformerLens `W_U`): the dimension that matches the vocabulary size is the vocabulary
/// one (the first when both do). When the tensor has more rows than the vocabulary has tokens
/// (padding), the extra ids are named `<id N>`.
pub fn read_vocab(matrix_path: &Path, tensor: &str, vocab_path: &Path) -> Result<VocabMatrix> {
    let vocab = read_vocabulary(vocab_path)?;
    let (shape, data) = match matrix_path.extension().and_then(|e| e.to_str()) {
        Some("npz") => {
            let a = Npz::open(matrix_path)?.read_f32(tensor)?;
            (a.shape, a.data)
        }
        _ => StFile::open(matrix_path)?.read_f32(tensor)?,
    };
    let (a, b) = match shape.as_slice() {
        [a, b] => (*a, *b),
        _ => {
            return Err(Error::bad_input(
                matrix_path,
                format!(
                    "tensor '{tensor}' has shape {}, expected a matrix [n_vocab, d_model] or [d_model, n_vocab]",
                    shape_str(&shape)
                ),
            ))
        }
    };
    let v = vocab.len();
    let transposed = if a == v {
        false
    } else if b == v {
        true
    } else if a > v && a >= b {
        false
    } else if b > v && b > a {
        true
    } else {
        return Err(Error::bad_input(
            matrix_path,
            format!(
                "tensor '{tensor}' has shape {}, which matches neither dimension to the vocabulary of {v} tokens in {}",
                shape_str(&shape),
                vocab_path.display()
            ),
        ));
    };
    if let Some((i, x)) = first_non_finite(&data) {
        return Err(Error::bad_input(
            matrix_path,
            format!(
                "tensor '{tensor}' holds {x} at row {}, column {}",
                i / b.max(1),
                i % b.max(1)
            ),
        ));
    }
    let (n_vocab, d_model) = if transposed { (b, a) } else { (a, b) };
    let matrix = if transposed {
        let mut m = vec![0f32; data.len()];
        for (r, row) in data.chunks_exact(b.max(1)).enumerate() {
            for (c, x) in row.iter().enumerate() {
                if let Some(o) = m.get_mut(c * a + r) {
                    *o = *x;
                }
            }
        }
        m
    } else {
        data
    };
    let mut tokens: Vec<String> = vocab
        .into_iter()
        .enumerate()
        .map(|(i, t)| t.unwrap_or_else(|| format!("<id {i}>")))
        .collect();
    for i in tokens.len()..n_vocab {
        tokens.push(format!("<id {i}>"));
    }
    Ok(VocabMatrix {
        n_vocab,
        d_model,
        matrix,
        tokens,
    })
}

/// The vocabulary by id; `None` for ids that a tokenizer.json leaves unassigned.
pub(crate) fn read_vocabulary(path: &Path) -> Result<Vec<Option<String>>> {
    let len = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    if len > MAX_VOCAB_FILE {
        return Err(Error::bad_input(
            path,
            format!("vocabulary file is {len} bytes, more than the limit of 1 GiB"),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if path.extension().and_then(|e| e.to_str()) == Some("json") {
        return read_tokenizer_json(path, &bytes);
    }
    let mut out = Vec::new();
    let mut rest: &[u8] = &bytes;
    let mut line = 0usize;
    while !rest.is_empty() {
        line += 1;
        let (mut l, next) = match rest.iter().position(|&c| c == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &[][..]),
        };
        rest = next;
        if let Some(x) = l.strip_suffix(b"\r") {
            l = x;
        }
        let s = std::str::from_utf8(l).map_err(|e| {
            Error::bad_input(
                path,
                format!("line {line}: invalid UTF-8 at byte {}", e.valid_up_to()),
            )
        })?;
        out.push(Some(s.to_string()));
    }
    if out.is_empty() {
        return Err(Error::bad_input(path, "the vocabulary is empty"));
    }
    Ok(out)
}

fn read_tokenizer_json(path: &Path, bytes: &[u8]) -> Result<Vec<Option<String>>> {
    let bad = |m: String| Error::bad_input(path, m);
    let v: Value = serde_json::from_slice(bytes).map_err(|e| bad(format!("invalid JSON: {e}")))?;
    let mut pairs: Vec<(String, u64)> = Vec::new();
    match v.get("model").and_then(|m| m.get("vocab")) {
        Some(Value::Object(m)) => {
            for (tok, id) in m {
                let id = id.as_u64().ok_or_else(|| {
                    bad(format!(
                        "model.vocab maps {tok:?} to {id}, expected a non-negative integer id"
                    ))
                })?;
                pairs.push((tok.clone(), id));
            }
        }
        // Unigram models: a list of [token, score], id = index.
        Some(Value::Array(list)) => {
            for (i, e) in list.iter().enumerate() {
                let tok = e
                    .get(0)
                    .and_then(|t| t.as_str())
                    .ok_or_else(|| bad(format!("model.vocab[{i}] is not a [token, score] pair")))?;
                pairs.push((tok.to_string(), i as u64));
            }
        }
        _ => {
            return Err(bad(
                "no model.vocab in this tokenizer.json (expected a Hugging Face tokenizers file)"
                    .into(),
            ))
        }
    }
    if let Some(Value::Array(added)) = v.get("added_tokens") {
        for (i, t) in added.iter().enumerate() {
            let id = t.get("id").and_then(|x| x.as_u64());
            let content = t.get("content").and_then(|x| x.as_str());
            match (id, content) {
                (Some(id), Some(c)) => pairs.push((c.to_string(), id)),
                _ => {
                    return Err(bad(format!(
                        "added_tokens[{i}] has no integer 'id' and string 'content'"
                    )))
                }
            }
        }
    }
    let max = pairs.iter().map(|(_, id)| *id).max().unwrap_or(0);
    if pairs.is_empty() {
        return Err(bad("the vocabulary is empty".into()));
    }
    if max >= pairs.len() as u64 + (1 << 20) {
        return Err(bad(format!(
            "token id {max} is implausibly large for a vocabulary of {} tokens",
            pairs.len()
        )));
    }
    let mut out: Vec<Option<String>> = vec![None; max as usize + 1];
    for (tok, id) in pairs {
        if let Some(slot) = out.get_mut(id as usize) {
            // added_tokens come last and win, as in the tokenizers library.
            *slot = Some(tok);
        }
    }
    Ok(out)
}
