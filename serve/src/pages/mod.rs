//! One module per page. Each builds its HTML from engine and query calls; none touches HTTP.

pub mod console;
pub mod document;
pub mod feature;
pub mod graph;
pub mod home;
pub mod live;
pub mod map;

use crate::html::{token_text, Esc};
use crate::{PageError, PageResult};
use saedb_engine::{FeatureRef, Store};
use std::collections::HashMap;
use std::fmt::Write;

/// The feature a URL names: `/f/<dict>/<index>`; anything else is a 404.
pub fn parse_feature(dict: &str, index: &str) -> PageResult<FeatureRef> {
    let i = index.parse::<u32>().map_err(|_| {
        PageError::NotFound(format!(
            "'{index}' is not a feature number (a feature page is /f/<dictionary>/<number>)"
        ))
    })?;
    Ok(FeatureRef::new(dict, i))
}

/// Names of features for links: labels, else the most frequent tokens (computed), memoised
/// for one page.
pub(crate) struct Names<'a> {
    store: &'a Store,
    known: HashMap<FeatureRef, Option<String>>,
}

impl<'a> Names<'a> {
    pub(crate) fn new(store: &'a Store) -> Names<'a> {
        Names {
            store,
            known: HashMap::new(),
        }
    }

    pub(crate) fn get(&mut self, f: &FeatureRef) -> Option<String> {
        if let Some(n) = self.known.get(f) {
            return n.clone();
        }
        let n = self.store.display_name(f).ok().flatten();
        self.known.insert(f.clone(), n.clone());
        n
    }

    pub(crate) fn link(&mut self, f: &FeatureRef) -> String {
        let n = self.get(f);
        crate::html::feature_link(f, n.as_deref())
    }
}

/// Tokens `pos - before ..= pos + after` of a document as spans; each token's value of the
/// feature (from `values`) shades it and shows on hover; the centre token is outlined. Tokens
/// read as text: WordPiece words spaced and their `##` pieces glued on, as the shell shows them.
pub(crate) fn context_html(
    tokens: &[String],
    doc: u32,
    pos: u32,
    before: usize,
    after: usize,
    values: &HashMap<(u32, u32), f32>,
    max: f32,
) -> String {
    let p = pos as usize;
    let lo = p.saturating_sub(before);
    let hi = (p + after + 1).min(tokens.len());
    let mut s = String::from("<span class=\"ctx\">");
    let pieces = saedb_query::render::reading_pieces(&tokens[lo..hi]);
    if lo > 0 && pieces.first().is_some_and(|p| p.before.is_empty()) {
        s.push('…');
    }
    for ((i, t), piece) in tokens.iter().enumerate().take(hi).skip(lo).zip(&pieces) {
        s.push_str(piece.before);
        let v = values.get(&(doc, i as u32)).copied().unwrap_or(0.0);
        let alpha = if max > 0.0 {
            (v / max).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let class = if i == p { "tok hit" } else { "tok" };
        let _ = write!(
            s,
            "<span class=\"{class}\" style=\"background:rgba(234,88,12,{alpha:.2})\" \
             title=\"{} · {}\">{}</span>",
            Esc(&format!("{t:?}")),
            crate::html::num(v as f64),
            Esc(&token_text(&piece.text))
        );
    }
    if hi < tokens.len() {
        s.push('…');
    }
    s.push_str("</span>");
    s
}
