//! Attribution graphs: nodes, weighted edges, circuit-tracer JSON ingest, chain search.

use serde::{Deserialize, Serialize};

pub mod chains;
pub mod direct;
pub mod json;
pub mod model;
// Called by the Store (engine/src/graphs.rs); allowed to be unused until it is wired up.
#[allow(dead_code)]
pub(crate) mod store;

pub use chains::{chains, influence, MAX_CHAIN_LIMIT, MAX_INFLUENCE_LIMIT};
pub use direct::{direct_path_graph, DirectLayer, DirectSource};
pub use json::read_circuit_tracer;
pub use model::{Edge, Graph, Node};

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

/// A chain search request (docs/ATTRIBUTION.md, "Chains: the definition").
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChainQuery {
    /// The target node id.
    pub to: String,
    /// Only paths starting at this node (otherwise: from any node with no inputs).
    pub from: Option<String>,
    /// Only paths passing through this node.
    pub through: Option<String>,
    /// Minimum path length in edges.
    pub min_length: Option<usize>,
    /// Maximum path length in edges.
    pub max_length: Option<usize>,
    /// No error node anywhere on the path.
    pub exclude_errors: bool,
    /// How many chains to return.
    pub limit: usize,
}

/// One chain: a path from a source to the target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chain {
    /// 1-based rank.
    pub rank: usize,
    /// Product of normalised absolute edge weights along the path.
    pub score: f64,
    /// Product of the signs of the edge weights: +1 or -1.
    pub sign: i8,
    /// Node ids from source to target, exactly as the graph names them.
    pub nodes: Vec<String>,
    /// A display label per node: its stored label, else a description built from kind/layer/token.
    pub labels: Vec<String>,
}

/// Total influence of one node on a target: the sum over all paths (the (I − A)⁻¹ series).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfluence {
    pub node: String,
    pub label: String,
    pub kind: NodeKind,
    pub influence: f64,
}
