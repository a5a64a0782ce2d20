//! Summaries of one feature's activations that a reader looks at beside its top list: where it
//! fires by document source, and the tokens it fires on most often (what stands in for a label
//! the feature does not have). Computed from the stored activations, never stored: per feature
//! on each call, and for the names of many features at once (pages list dozens) from one summary
//! of the whole dictionary kept in memory until the dictionary's activations change.

use crate::store::Store;
use crate::types::{Document, FeatureRef};
use crate::Result;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// Tokens a feature's computed name lists.
pub const NAME_TOKENS: usize = 3;

/// The name under which activations in documents without a `source` are counted.
pub const NO_SOURCE: &str = "(no source)";

/// How often a feature fires in the documents of one source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceCount {
    /// The documents' `source` field, or [`NO_SOURCE`].
    pub source: String,
    /// Activations in documents of this source.
    pub count: u64,
    /// Documents of this source in which the feature fires at least once.
    pub documents: u64,
    /// The largest activation in this source.
    pub max: f32,
    /// `count` over all of the feature's activations.
    pub share: f64,
}

/// A token a feature fires on, with how often.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCount {
    pub token: String,
    pub count: u64,
}

impl Store {
    /// Where a feature fires, grouped by the `source` of each document: most activations
    /// first (ties: by source name). Every stored activation of the feature is counted.
    pub fn activations_by_source(&self, f: &FeatureRef) -> Result<Vec<SourceCount>> {
        let acts = self.activations_of(f)?;
        let total = acts.len() as f64;
        let mut by_source: HashMap<String, (u64, Vec<u32>, f32)> = HashMap::new();
        let mut doc: Option<(u32, String)> = None;
        for a in &acts {
            // Activations come in (doc, pos) order: one document lookup per run.
            if doc.as_ref().is_none_or(|d| d.0 != a.doc) {
                let source = self
                    .stored_document(a.doc)?
                    .and_then(|d| d.source.clone())
                    .unwrap_or_else(|| NO_SOURCE.to_string());
                doc = Some((a.doc, source));
            }
            let source = &doc.as_ref().expect("set above").1;
            let e = by_source
                .entry(source.clone())
                .or_insert((0, Vec::new(), 0.0));
            e.0 += 1;
            if e.1.last() != Some(&a.doc) {
                e.1.push(a.doc);
            }
            e.2 = e.2.max(a.value);
        }
        let mut out: Vec<SourceCount> = by_source
            .into_iter()
            .map(|(source, (count, docs, max))| SourceCount {
                source,
                count,
                documents: docs.len() as u64,
                max,
                share: count as f64 / total,
            })
            .collect();
        out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.source.cmp(&b.source)));
        Ok(out)
    }

    /// The `k` tokens a feature fires on most often, most frequent first (ties: by token), over
    /// every stored activation. Tokens are compared as stored (` the` and `the` differ).
    pub fn frequent_tokens(&self, f: &FeatureRef, k: usize) -> Result<Vec<TokenCount>> {
        crate::util::check_limit(k)?;
        self.consistent(|| {
            let info = self.resolve(f)?;
            self.top_tokens_of(info.id, f.index, k)
        })
    }

    /// A feature's [`NAME_TOKENS`] most frequent tokens (as [`Store::frequent_tokens`] gives
    /// them), from the dictionary's summary: instant once the summary is computed.
    pub fn name_tokens(&self, f: &FeatureRef) -> Result<Vec<TokenCount>> {
        self.resolve(f)?;
        Ok(self.frequent_tokens_summary(&f.dict)?.top[f.index as usize].clone())
    }

    /// What names a feature on a page: its label, or else its [`NAME_TOKENS`] most frequent
    /// tokens written as `“ the” “ a” “ an”` (computed, not stored), or `None` for a feature
    /// that never fired. The tokens come from the dictionary's summary
    /// ([`Store::frequent_tokens_summary`]), so naming many features costs one scan in all.
    pub fn display_name(&self, f: &FeatureRef) -> Result<Option<String>> {
        if let Some(l) = self.label(f)? {
            return Ok(Some(l));
        }
        let tokens = self.name_tokens(f)?;
        if tokens.is_empty() {
            return Ok(None);
        }
        Ok(Some(
            tokens
                .iter()
                .map(|t| format!("“{}”", t.token))
                .collect::<Vec<_>>()
                .join(" "),
        ))
    }
}

/// Every feature's [`NAME_TOKENS`] most frequent tokens in one dictionary (the same order as
/// [`Store::frequent_tokens`]), as of the dictionary's activations when it was computed.
pub(crate) struct FrequentTokens {
    /// The committed ingests into the dictionary it was computed from.
    ingests: Vec<u32>,
    /// By feature index.
    top: Vec<Vec<TokenCount>>,
}

impl Store {
    /// The dictionary's summary of frequent tokens: from memory when its activations have not
    /// changed since it was computed, else one parallel pass over every feature's blocks
    /// (about a second for minilm-dev's 4,096 features and 1.6M activations).
    pub(crate) fn frequent_tokens_summary(&self, dict: &str) -> Result<Arc<FrequentTokens>> {
        let info = self.dictionary(dict)?;
        let ingests = self.catalog().ingests_into(info.id);
        if let Some(s) = self.derived.get::<FrequentTokens>(info.id)? {
            if s.ingests == ingests {
                return Ok(s);
            }
        }
        let summary = self.consistent(|| {
            let ingests = self.catalog().ingests_into(info.id);
            let top = (0..info.d_sae)
                .into_par_iter()
                .map(|f| self.top_tokens_of(info.id, f, NAME_TOKENS))
                .collect::<Result<Vec<_>>>()?;
            Ok(Arc::new(FrequentTokens { ingests, top }))
        })?;
        self.derived.insert(info.id, summary.clone())?;
        Ok(summary)
    }

    /// Computes the summary of every dictionary now (a server does this at start, so that its
    /// first pages need not).
    pub fn prepare_names(&self) -> Result<()> {
        for d in self.dictionaries() {
            self.frequent_tokens_summary(&d.name)?;
        }
        Ok(())
    }

    /// One feature's `k` most frequent tokens, from its raw blocks (tokens as
    /// [`Store::activations_of`] gives them: empty when the store has no documents).
    fn top_tokens_of(&self, dict: u32, feature: u32, k: usize) -> Result<Vec<TokenCount>> {
        let mut entries = self.feature_entries(dict, feature)?;
        entries.sort_unstable_by_key(|e| (e.0, e.1));
        // One document lookup per run of entries in the same document.
        let mut docs: Vec<(u32, Option<Arc<Document>>)> = Vec::new();
        for &(doc, _, _) in &entries {
            if docs.last().is_none_or(|d| d.0 != doc) {
                docs.push((doc, self.stored_document(doc)?));
            }
        }
        let mut counts: HashMap<&str, u64> = HashMap::new();
        let mut at = 0;
        for &(doc, pos, _) in &entries {
            while docs[at].0 != doc {
                at += 1;
            }
            let token = docs[at]
                .1
                .as_ref()
                .and_then(|d| d.tokens.get(pos as usize))
                .map_or("", String::as_str);
            *counts.entry(token).or_insert(0) += 1;
        }
        let mut out: Vec<TokenCount> = counts
            .into_iter()
            .map(|(token, count)| TokenCount {
                token: token.to_string(),
                count,
            })
            .collect();
        out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.token.cmp(&b.token)));
        out.truncate(k);
        Ok(out)
    }
}
