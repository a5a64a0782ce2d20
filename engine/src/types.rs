//! Plain data types that the engine's API takes and returns.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A feature, addressed as `dict/index`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FeatureRef {
    pub dict: String,
    pub index: u32,
}

impl FeatureRef {
    pub fn new(dict: impl Into<String>, index: u32) -> Self {
        FeatureRef {
            dict: dict.into(),
            index,
        }
    }
}

impl fmt::Display for FeatureRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.dict, self.index)
    }
}

/// How a dictionary turns a dense input into a sparse code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Architecture {
    /// `relu(pre)`.
    Relu,
    /// Keep the `k` largest entries of `pre`, then ReLU.
    TopK,
    /// `relu(pre)` where `pre > threshold[f]`, else 0.
    JumpRelu,
    /// sparsify's `groupmax`: the latents split into `k` groups of consecutive latents, each
    /// keeping its largest entry (then ReLU).
    GroupMax,
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Architecture::Relu => "relu",
            Architecture::TopK => "topk",
            Architecture::JumpRelu => "jumprelu",
            Architecture::GroupMax => "groupmax",
        })
    }
}

/// What the store knows about a dictionary (everything but the weights).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DictionaryInfo {
    pub name: String,
    /// Internal id, stable for the life of the store.
    pub id: u32,
    pub d_in: u32,
    pub d_sae: u32,
    pub architecture: Architecture,
    /// `k` for TopK dictionaries; the number of groups for GroupMax ones.
    pub k: Option<u32>,
    /// Whether `b_dec` is subtracted from the input before encoding.
    pub apply_b_dec_to_input: bool,
    /// The hook point, e.g. `blocks.8.hook_resid_post`.
    pub hook: Option<String>,
    pub layer: Option<u32>,
    pub model: Option<String>,
    /// Which on-disk format it came from: `saelens`, `sparsify`, `gemmascope`.
    pub source_format: String,
    /// The path it was ingested from.
    pub source_path: String,
    /// Tokens with at least one stored activation of this dictionary.
    pub tokens_encoded: u64,
    /// Stored nonzero activations of this dictionary.
    pub nonzeros: u64,
}

/// One stored activation of a feature at a token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activation {
    pub doc: u32,
    pub pos: u32,
    pub value: f32,
}

/// An activation together with the token it fired on (what filters look at).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenActivation {
    pub doc: u32,
    pub pos: u32,
    pub value: f32,
    /// The token string at (doc, pos), empty when no tokens were ingested for the document.
    pub token: String,
    pub token_id: Option<u32>,
}

/// A feature active at one token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveFeature {
    pub feature: FeatureRef,
    pub value: f32,
}

/// Number of histogram bins; bin `i` covers `[2^((i - 64)/4), 2^((i - 63)/4))` so that histograms
/// of separate ingests add up without knowing the range in advance. Values below the first edge go
/// to bin 0, above the last to the last bin.
pub const HISTOGRAM_BINS: usize = 128;

/// Statistics of one feature, maintained at ingest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureStats {
    pub feature: FeatureRef,
    /// Nonzero activations.
    pub count: u64,
    /// `count` / tokens encoded by the dictionary (0 when none are).
    pub frequency: f64,
    pub max: f32,
    pub mean: f64,
    /// Log-spaced bins (see [`HISTOGRAM_BINS`]), as `(lower edge, upper edge, count)` for non-empty bins.
    pub histogram: Vec<HistogramBin>,
    pub label: Option<String>,
}

/// One non-empty histogram bin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistogramBin {
    pub lo: f32,
    pub hi: f32,
    pub count: u64,
}

/// A nearest feature by decoder-direction cosine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Neighbour {
    pub feature: FeatureRef,
    pub cosine: f32,
}

/// What a feature's decoder direction does to the output logits: `W_dec[f] · W_U[:, t]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenEffects {
    /// Largest first.
    pub positive: Vec<TokenEffect>,
    /// Most negative first.
    pub negative: Vec<TokenEffect>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenEffect {
    pub token: String,
    pub token_id: u32,
    pub effect: f32,
}

// ---- attribution graphs' summaries (the graph model and algorithms live in `graph/`)

/// What kind of node a graph node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// A token embedding: a source of the graph.
    Embedding,
    /// A (transcoder / SAE) feature.
    Feature,
    /// A reconstruction-error node: a source of the graph.
    Error,
    /// An output logit: a target.
    Logit,
}

impl NodeKind {
    /// The kind's name, as stored and as queries print it (`embedding`, `feature`, `error`,
    /// `logit`).
    pub fn name(self) -> &'static str {
        match self {
            NodeKind::Embedding => "embedding",
            NodeKind::Feature => "feature",
            NodeKind::Error => "error",
            NodeKind::Logit => "logit",
        }
    }
}

/// Summary of one stored graph, for `SHOW GRAPHS` / `DESCRIBE GRAPH`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphInfo {
    pub name: String,
    pub prompt: Option<String>,
    pub prompt_tokens: Vec<String>,
    pub nodes: u64,
    pub edges: u64,
    /// Node counts by kind.
    pub nodes_by_kind: Vec<(NodeKind, u64)>,
    /// Edge counts by (source kind, target kind).
    pub edges_by_kind: Vec<(NodeKind, NodeKind, u64)>,
    /// The logit nodes with their token and probability, target logit(s) first.
    pub logits: Vec<LogitInfo>,
    /// `circuit-tracer` for an ingested file, `direct-path` for one computed by ATTRIBUTE.
    pub origin: String,
}

/// A logit node of a graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogitInfo {
    pub node: String,
    pub token: Option<String>,
    pub probability: Option<f64>,
    pub is_target: bool,
}

/// A document of tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    pub doc: u32,
    pub tokens: Vec<String>,
    pub token_ids: Vec<u32>,
    pub text: Option<String>,
    pub source: Option<String>,
}

/// When a dictionary's neighbour (HNSW) index is built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum IndexBuild {
    /// During the dictionary's ingest (the default), so the first NEIGHBOURS is fast. It is
    /// most of a dictionary ingest, growing a little faster than the number of features
    /// (docs/BENCHMARKS.md has measured times).
    #[default]
    AtIngest,
    /// By the first NEIGHBOURS query of the dictionary (which waits for it) or by `check`'s
    /// repair: for stores that are loaded now and searched later, or never.
    OnFirstUse,
}

/// What an ingest did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestReport {
    pub kind: String,
    pub path: String,
    /// Rows / documents / nonzeros / nodes: the main unit of this kind of ingest.
    pub items: u64,
    pub unit: String,
    pub seconds: f64,
}

/// A summary of the whole store, for `saedb info`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreInfo {
    pub path: String,
    /// The format version the store is in (an older one when opened read-only, before the
    /// first writable open upgrades it).
    pub format_version: u32,
    pub documents: u64,
    pub tokens: u64,
    pub dictionaries: Vec<DictionaryInfo>,
    pub vocabulary: Option<VocabularyInfo>,
    pub graphs: Vec<String>,
    pub labels: u64,
    pub bytes_on_disk: u64,
}

/// The model's embedding / unembedding matrix held for token effects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VocabularyInfo {
    pub tensor: String,
    pub source_path: String,
    pub n_vocab: u32,
    pub d_model: u32,
}

/// Which activations [`crate::Store::sample_quantile`] picks: `k` of quantile `quantile` (1 the
/// weakest, `of` the strongest) of `of`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuantileQuery {
    pub k: usize,
    pub quantile: usize,
    pub of: usize,
}

/// What [`crate::Store::sample_quantile`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantileSample {
    /// The picks, strongest first (ties: lower (doc, pos) first).
    pub picks: Vec<TokenActivation>,
    /// The smallest and largest value in the quantile (0 when it is empty).
    pub lo: f32,
    pub hi: f32,
    /// How many activations the quantile holds.
    pub size: usize,
    /// How many activations (that the filter accepted) there are in all.
    pub total: usize,
}

/// Sparse activations in memory, in coordinate form: entry `i` is feature `feature[i]` firing
/// with `value[i]` at token `pos[i]` of document `doc[i]`. The four slices have one length; the
/// order of entries does not matter. What [`crate::Store::ingest_sparse`] stores.
#[derive(Debug, Clone, Copy)]
pub struct SparseActivations<'a> {
    pub doc: &'a [u32],
    pub pos: &'a [u32],
    pub feature: &'a [u32],
    pub value: &'a [f32],
}

/// Dense activations in memory: `values` is `[n, d_in]` row-major, row `i` taken at token
/// `pos[i]` of document `doc[i]`. What [`crate::Store::ingest_dense`] encodes with a dictionary.
#[derive(Debug, Clone, Copy)]
pub struct DenseActivations<'a> {
    pub values: &'a [f32],
    pub d_in: usize,
    pub doc: &'a [u32],
    pub pos: &'a [u32],
}

/// A dictionary's weights in memory (row-major float32), for
/// [`crate::Store::ingest_dictionary_weights`]. `encode(x) = act(W_encᵀ (x − b_dec·a) + b_enc)`
/// with `a` = `apply_b_dec_to_input`, and `act` per `architecture`.
#[derive(Debug, Clone, Copy)]
pub struct DictionaryWeights<'a> {
    pub architecture: Architecture,
    pub d_in: usize,
    pub d_sae: usize,
    /// `[d_in, d_sae]`.
    pub w_enc: &'a [f32],
    /// `[d_sae]`.
    pub b_enc: &'a [f32],
    /// `[d_sae, d_in]`.
    pub w_dec: &'a [f32],
    /// `[d_in]`.
    pub b_dec: &'a [f32],
    /// `k` of a TopK dictionary (1..=d_sae), the number of groups of a GroupMax one (dividing
    /// d_sae); none for the others.
    pub k: Option<usize>,
    /// `[d_sae]`, a JumpReLU dictionary's thresholds; none for the others.
    pub threshold: Option<&'a [f32]>,
    pub apply_b_dec_to_input: bool,
    /// Where it reads the model: the hook point, the layer, the model's name (for `info`).
    pub hook: Option<&'a str>,
    pub layer: Option<u32>,
    pub model: Option<&'a str>,
}

/// Tokens that are not text: BOS/CLS/SEP/PAD and friends. They dominate the top activations of
/// many features (attention sinks), so queries can exclude them.
pub fn is_special_token(token: &str) -> bool {
    matches!(
        token,
        "[CLS]"
            | "[SEP]"
            | "[PAD]"
            | "[MASK]"
            | "[UNK]"
            | "<bos>"
            | "<eos>"
            | "<pad>"
            | "<s>"
            | "</s>"
            | "<unk>"
            | "<|endoftext|>"
            | "<|begin_of_text|>"
            | "<|end_of_text|>"
    )
}
