//! Result sets built from the engine's plain data, shared by the statements that show them and by
//! the store summaries ([`crate::render::render_info`]), so both list the same columns.

use crate::render::context_text;
use crate::result::{ResultKind, ResultSet, Value};
use saedb_engine::{DictionaryInfo, Document, ModelInfo};

/// SHOW DICTIONARIES: one row per dictionary.
pub fn dictionaries(dicts: &[DictionaryInfo]) -> ResultSet {
    let mut rs = ResultSet::new(
        ResultKind::Dictionaries,
        &[
            "name",
            "architecture",
            "d_in",
            "d_sae",
            "k",
            "layer",
            "hook",
            "model",
            "tokens_encoded",
            "nonzeros",
        ],
    );
    for d in dicts {
        rs.rows.push(vec![
            Value::str(&d.name),
            Value::str(d.architecture.to_string()),
            Value::Int(d.d_in.into()),
            Value::Int(d.d_sae.into()),
            d.k.map(|k| Value::Int(k.into())).unwrap_or(Value::Null),
            d.layer.map(|k| Value::Int(k.into())).unwrap_or(Value::Null),
            Value::opt_str(d.hook.clone()),
            Value::opt_str(d.model.clone()),
            Value::Int(d.tokens_encoded as i64),
            Value::Int(d.nonzeros as i64),
        ]);
    }
    rs
}

/// The registered models: one row per model, with the configuration that says what it can run.
pub fn models(models: &[ModelInfo]) -> ResultSet {
    let mut rs = ResultSet::new(
        ResultKind::Models,
        &[
            "name",
            "architecture",
            "blocks",
            "d_model",
            "vocab",
            "context",
            "path",
        ],
    );
    let int = |n: usize| Value::Int(i64::try_from(n).unwrap_or(i64::MAX));
    for m in models {
        let c = &m.config;
        rs.rows.push(vec![
            Value::str(&m.name),
            Value::str(c.architecture.to_string()),
            int(c.n_layers),
            int(c.d_model),
            int(c.vocab_size),
            int(c.max_positions),
            Value::str(&m.path),
        ]);
    }
    rs
}

fn document_title(d: &Document) -> String {
    match &d.source {
        Some(s) => format!("DOC {} ({s})", d.doc),
        None => format!("DOC {}", d.doc),
    }
}

/// SHOW DOC: the document as text — its tokens read as text (WordPiece pieces joined, what the
/// positions index), and the original text when the tokens file carried one.
pub fn document_text(d: &Document) -> ResultSet {
    let mut rs = ResultSet::new(
        ResultKind::DocumentText,
        &["doc", "source", "positions", "text", "original"],
    );
    rs.title = Some(document_title(d));
    rs.rows.push(vec![
        Value::Int(d.doc.into()),
        Value::opt_str(d.source.clone()),
        Value::Int(d.tokens.len() as i64),
        Value::Str(context_text(&d.tokens, None, "", "")),
        Value::opt_str(d.text.clone()),
    ]);
    rs
}

/// SHOW DOC … POSITIONS: one row per token.
pub fn document_positions(d: &Document) -> ResultSet {
    let mut rs = ResultSet::new(ResultKind::Document, &["pos", "token", "token_id"]);
    rs.title = Some(document_title(d));
    for (i, t) in d.tokens.iter().enumerate() {
        let id = d
            .token_ids
            .get(i)
            .map(|&i| Value::Int(i.into()))
            .unwrap_or(Value::Null);
        rs.rows.push(vec![Value::Int(i as i64), Value::str(t), id]);
    }
    rs
}
