//! The catalog: the store's table of contents (dictionaries, vocabulary, graphs, committed
//! ingests, counters), one record under `meta/catalog` (its bytes: `records.rs`). Rewriting it
//! is the commit point of every ingest; readers ignore blocks of ingests it does not list.

use crate::model::ModelInfo;
use crate::types::{DictionaryInfo, GraphInfo, VocabularyInfo};
use crate::{Error, Result};
use std::collections::HashSet;

/// The store's table of contents, one JSON value under `meta/catalog`. Rewriting it is the commit
/// point of every ingest.
#[derive(Debug, Clone, Default)]
pub(crate) struct Catalog {
    pub(crate) next_dict_id: u32,
    pub(crate) next_graph_id: u32,
    pub(crate) dictionaries: Vec<DictionaryInfo>,
    pub(crate) vocabulary: Option<VocabularyInfo>,
    pub(crate) graphs: Vec<GraphEntry>,
    pub(crate) ingests: Vec<IngestRecord>,
    pub(crate) documents: u64,
    pub(crate) tokens: u64,
    /// Registered models, in registration order (`models.rs`).
    pub(crate) models: Vec<ModelInfo>,
}

#[derive(Debug, Clone)]
pub(crate) struct GraphEntry {
    pub(crate) id: u32,
    pub(crate) info: GraphInfo,
}

/// The kinds of ingest that store activations (`IngestRecord::kind`).
pub(crate) const ACTIVATION_INGESTS: [&str; 2] = ["latents", "activations"];

/// One committed ingest.
#[derive(Debug, Clone)]
pub(crate) struct IngestRecord {
    pub(crate) id: u32,
    pub(crate) kind: String,
    /// The dictionary / graph it went into, if any.
    pub(crate) target: Option<String>,
    pub(crate) path: String,
    /// xxh3-128 of the file's bytes, hex.
    pub(crate) content_hash: String,
    pub(crate) items: u64,
}

impl Catalog {
    pub(crate) fn committed_ingests(&self) -> HashSet<u32> {
        self.ingests.iter().map(|r| r.id).collect()
    }

    /// The committed ingests that stored activations of dictionary `dict`, in id order: the
    /// ingest ids its feature-major blocks can carry.
    pub(crate) fn ingests_into(&self, dict: u32) -> Vec<u32> {
        let Some(name) = self
            .dictionaries
            .iter()
            .find(|d| d.id == dict)
            .map(|d| &d.name)
        else {
            return Vec::new();
        };
        let mut ids: Vec<u32> = self
            .ingests
            .iter()
            .filter(|r| ACTIVATION_INGESTS.contains(&r.kind.as_str()))
            .filter(|r| r.target.as_ref() == Some(name))
            .map(|r| r.id)
            .collect();
        ids.sort_unstable();
        ids
    }
    pub(crate) fn dict(&self, name: &str) -> Result<&DictionaryInfo> {
        self.dictionaries
            .iter()
            .find(|d| d.name == name)
            .ok_or_else(|| Error::UnknownDictionary {
                name: name.to_string(),
                known: self.dictionaries.iter().map(|d| d.name.clone()).collect(),
            })
    }
}
