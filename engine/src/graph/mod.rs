//! Attribution graphs: nodes, weighted edges, circuit-tracer JSON ingest, chain search.

use serde::{Deserialize, Serialize};

pub mod chains;
pub mod direct;
pub mod json;
pub mod model;
pub(crate) mod store;

/// The summaries of graphs are plain API data (in `types.rs`, which the store's catalog uses).
pub use crate::types::{GraphInfo, LogitInfo, NodeKind};
pub use chains::{chains, influence, MAX_CHAIN_LIMIT, MAX_INFLUENCE_LIMIT};
pub use direct::{direct_path_graph, DirectLayer, DirectSource};
pub use json::read_circuit_tracer;
pub use model::{Edge, Graph, Node};

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
