//! The statements behind the typed methods (`db.top_activations(...)` is `TOP k ACTIVATIONS OF
//! ...`): the arguments are checked here and written in the language's own syntax, so a typed
//! call and the statement a user would type answer identically, through the same planner.

use pyo3::prelude::*;
use std::fmt::Write;

/// A feature as Python code writes it: `"L2/123"` or `("L2", 123)`.
#[derive(FromPyObject)]
pub enum FeatureArg {
    Text(String),
    Pair(String, i64),
}

impl FeatureArg {
    /// `dict/index`, or a message saying what is wrong with the argument.
    pub fn to_statement(&self) -> Result<String, String> {
        let (dict, index) = match self {
            FeatureArg::Text(s) => {
                let (d, i) = s.rsplit_once('/').ok_or_else(|| not_a_feature(s))?;
                (d, i.parse::<i64>().map_err(|_| not_a_feature(s))?)
            }
            FeatureArg::Pair(d, i) => (d.as_str(), *i),
        };
        if !is_name(dict) {
            return Err(format!(
                "'{dict}' is not a dictionary name (letters, digits, '_', '-', '.', starting with a letter)"
            ));
        }
        if index < 0 {
            return Err(format!("feature index {index} is negative"));
        }
        Ok(format!("{dict}/{index}"))
    }
}

fn not_a_feature(s: &str) -> String {
    format!("'{s}' is not a feature: write \"L2/123\" or (\"L2\", 123)")
}

/// A dictionary or graph name as the grammar reads one.
pub fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// A name argument, checked.
pub fn name(kind: &str, s: &str) -> Result<String, String> {
    if is_name(s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "'{s}' is not a {kind} name (letters, digits, '_', '-', '.', starting with a letter)"
        ))
    }
}

/// A string literal of the language, with its escapes (the lexer's own quoting).
pub use saedb_query::quote;

/// Appends ` KEYWORD value` when there is a value.
pub fn clause(out: &mut String, keyword: &str, value: Option<impl std::fmt::Display>) {
    if let Some(v) = value {
        let _ = write!(out, " {keyword} {v}");
    }
}
