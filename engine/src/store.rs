//! The store: one RocksDB database in a directory, plus derived index files.
//! Placeholder API surface; implementation is filled in module by module.

use crate::graph::{Chain, ChainQuery, GraphInfo, NodeInfluence};
use crate::types::*;
use crate::{Error, Progress, Result};
use std::path::{Path, PathBuf};

/// A saedb store. `Send + Sync`: share it between threads behind an `Arc`.
pub struct Store {
    path: PathBuf,
}

/// A predicate over activations, used by filtered top-k queries.
pub type ActivationFilter<'a> = &'a (dyn Fn(&TokenActivation) -> bool + Sync);

impl Store {
    /// Opens the store at `path`, creating it if it does not exist.
    pub fn create_or_open(path: impl AsRef<Path>) -> Result<Store> {
        Ok(Store { path: path.as_ref().to_path_buf() })
    }
    /// Opens an existing store; fails if there is none at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        Self::create_or_open(path)
    }
    /// Opens an existing store for reading only (another process may be writing it).
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Store> {
        Self::create_or_open(path)
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn info(&self) -> Result<StoreInfo> {
        Err(Error::NotAvailable("info".into()))
    }
    /// All dictionaries, in the order they were ingested.
    pub fn dictionaries(&self) -> Vec<DictionaryInfo> {
        vec![]
    }
    /// One dictionary by name; `UnknownDictionary` names the ones that exist.
    pub fn dictionary(&self, name: &str) -> Result<DictionaryInfo> {
        Err(Error::UnknownDictionary { name: name.into(), known: vec![] })
    }
    pub fn ingest_dictionary(&self, _name: &str, _path: &Path, _p: &dyn Progress) -> Result<IngestReport> {
        Err(Error::NotAvailable("ingest".into()))
    }
    pub fn ingest_tokens(&self, _path: &Path, _p: &dyn Progress) -> Result<IngestReport> {
        Err(Error::NotAvailable("ingest".into()))
    }
    pub fn ingest_latents(&self, _dict: &str, _path: &Path, _p: &dyn Progress) -> Result<IngestReport> {
        Err(Error::NotAvailable("ingest".into()))
    }
    pub fn ingest_activations(&self, _dict: &str, _path: &Path, _p: &dyn Progress) -> Result<IngestReport> {
        Err(Error::NotAvailable("ingest".into()))
    }
    pub fn ingest_vocab(&self, _path: &Path, _tensor: &str, _vocab: &Path, _p: &dyn Progress) -> Result<IngestReport> {
        Err(Error::NotAvailable("ingest".into()))
    }
    /// Number of documents stored.
    pub fn document_count(&self) -> Result<u64> {
        Ok(0)
    }
    /// One document; `UnknownDocument` if absent.
    pub fn document(&self, doc: u32) -> Result<Document> {
        Err(Error::UnknownDocument { doc: doc as u64 })
    }
    /// The `k` strongest activations of a feature, strongest first (ties: lower (doc, pos) first),
    /// keeping only those the filter accepts. Unfiltered queries with small `k` read the
    /// materialised top list; filtered ones scan this feature's activations only.
    pub fn top_activations(&self, _f: &FeatureRef, _k: usize, _filter: Option<ActivationFilter>) -> Result<Vec<TokenActivation>> {
        Err(Error::NotAvailable("top".into()))
    }
    /// Every stored activation of a feature, in (doc, pos) order.
    pub fn activations_of(&self, _f: &FeatureRef) -> Result<Vec<TokenActivation>> {
        Err(Error::NotAvailable("activations".into()))
    }
    /// Features active at a token, strongest first; all dictionaries unless one is named.
    pub fn features_at(&self, _doc: u32, _pos: u32, _dict: Option<&str>) -> Result<Vec<ActiveFeature>> {
        Err(Error::NotAvailable("features at".into()))
    }
    pub fn feature_stats(&self, _f: &FeatureRef) -> Result<FeatureStats> {
        Err(Error::NotAvailable("stats".into()))
    }
    /// Approximate (HNSW) nearest features by decoder cosine, in `in_dict` (default: the same one).
    pub fn neighbours(&self, _f: &FeatureRef, _in_dict: Option<&str>, _k: usize) -> Result<Vec<Neighbour>> {
        Err(Error::NotAvailable("neighbours".into()))
    }
    /// Exact nearest features by brute force (the reference HNSW recall is measured against).
    pub fn neighbours_exact(&self, _f: &FeatureRef, _in_dict: Option<&str>, _k: usize) -> Result<Vec<Neighbour>> {
        Err(Error::NotAvailable("neighbours".into()))
    }
    pub fn decoder_row(&self, _f: &FeatureRef) -> Result<Vec<f32>> {
        Err(Error::NotAvailable("decoder".into()))
    }
    pub fn token_effects(&self, _f: &FeatureRef, _k: usize) -> Result<TokenEffects> {
        Err(Error::NotAvailable("token effects".into()))
    }
    pub fn set_label(&self, _f: &FeatureRef, _label: &str) -> Result<()> {
        Err(Error::NotAvailable("labels".into()))
    }
    pub fn label(&self, _f: &FeatureRef) -> Result<Option<String>> {
        Ok(None)
    }
    /// Labels containing `text` (case-insensitive), best matches first.
    pub fn search_labels(&self, _text: &str, _limit: usize) -> Result<Vec<(FeatureRef, String)>> {
        Ok(vec![])
    }
    /// Every label, for completion.
    pub fn labels(&self) -> Result<Vec<(FeatureRef, String)>> {
        Ok(vec![])
    }
    pub fn ingest_graph(&self, _name: &str, _path: &Path, _p: &dyn Progress) -> Result<IngestReport> {
        Err(Error::NotAvailable("graphs".into()))
    }
    pub fn graphs(&self) -> Result<Vec<GraphInfo>> {
        Ok(vec![])
    }
    pub fn graph_info(&self, name: &str) -> Result<GraphInfo> {
        Err(Error::UnknownGraph { name: name.into(), known: vec![] })
    }
    pub fn chains(&self, _graph: &str, _q: &ChainQuery) -> Result<Vec<Chain>> {
        Err(Error::NotAvailable("CHAINS".into()))
    }
    /// Total influence of every node on `target`, largest first.
    pub fn influence(&self, _graph: &str, _target: &str, _limit: usize) -> Result<Vec<NodeInfluence>> {
        Err(Error::NotAvailable("influence".into()))
    }
    /// Direct-path attribution of a stored document's token into an output token, stored as a graph.
    pub fn attribute(&self, _doc: u32, _pos: u32, _token: &str, _graph: &str) -> Result<GraphInfo> {
        Err(Error::NotAvailable("ATTRIBUTE".into()))
    }
}

/// Tokens that are not text: BOS/CLS/SEP/PAD and friends. They dominate top activations of many
/// features (attention sinks), so queries can exclude them.
pub fn is_special_token(token: &str) -> bool {
    matches!(
        token,
        "[CLS]" | "[SEP]" | "[PAD]" | "[MASK]" | "[UNK]" | "<bos>" | "<eos>" | "<pad>" | "<s>" | "</s>" | "<unk>" | "<|endoftext|>" | "<|begin_of_text|>" | "<|end_of_text|>"
    )
}
