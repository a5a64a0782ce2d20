//! The in-memory attribution graph: nodes, weighted edges, validation, summary.

use super::{GraphInfo, LogitInfo, NodeKind};
use crate::{Error, Result};
use std::collections::{HashMap, HashSet};

/// One node of an attribution graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The node id exactly as the producer named it (an opaque key).
    pub id: String,
    pub kind: NodeKind,
    /// The layer as an integer, when the producer gave one (an integer or an integer string).
    pub layer: Option<i64>,
    /// The layer as written, when it was a string that is not an integer (circuit-tracer writes
    /// `"E"` for embeddings).
    pub layer_name: Option<String>,
    /// Token position in the prompt.
    pub ctx_idx: u32,
    /// The producer's feature number, as written (circuit-tracer: a Cantor pairing of (layer,
    /// index) that exceeds 2^32; `-1` on error nodes; the token id on logits). May be absent.
    pub feature: Option<i64>,
    /// The feature's index inside its layer / dictionary, when known (decoded from the Cantor
    /// pairing for circuit-tracer graphs, the dictionary index for direct-path graphs).
    pub feature_index: Option<u64>,
    /// The token of an embedding or logit node.
    pub token: Option<String>,
    pub activation: Option<f64>,
    /// circuit-tracer's cumulative influence share at the node's rank (lower = more important).
    pub influence: Option<f64>,
    /// The output probability of a logit node.
    pub probability: Option<f64>,
    /// Whether this is a target logit.
    pub is_target: bool,
    /// A human label (circuit-tracer's `clerp` when non-empty).
    pub label: Option<String>,
}

impl Node {
    /// A node of `kind` with id `id` and every optional field empty.
    pub fn new(id: impl Into<String>, kind: NodeKind) -> Node {
        Node {
            id: id.into(),
            kind,
            layer: None,
            layer_name: None,
            ctx_idx: 0,
            feature: None,
            feature_index: None,
            token: None,
            activation: None,
            influence: None,
            probability: None,
            is_target: false,
            label: None,
        }
    }

    /// A readable description built from kind, layer, feature, token and position:
    /// `emb " Dallas"@6`, `L12 f5312 @6`, `error L3 @2`, `logit " Austin"`.
    pub fn description(&self) -> String {
        let layer = match (&self.layer, &self.layer_name) {
            (Some(l), _) => format!("L{l}"),
            (None, Some(s)) => format!("L{s}"),
            (None, None) => String::new(),
        };
        match self.kind {
            NodeKind::Embedding => match &self.token {
                Some(t) => format!("emb \"{t}\"@{}", self.ctx_idx),
                None => format!("emb @{}", self.ctx_idx),
            },
            NodeKind::Logit => match &self.token {
                Some(t) => format!("logit \"{t}\""),
                None => format!("logit {}", self.id),
            },
            NodeKind::Error => {
                if layer.is_empty() {
                    format!("error @{}", self.ctx_idx)
                } else {
                    format!("error {layer} @{}", self.ctx_idx)
                }
            }
            NodeKind::Feature => {
                let f = match (self.feature_index, self.feature) {
                    (Some(i), _) => format!("f{i}"),
                    (None, Some(f)) => format!("f{f}"),
                    (None, None) => self.id.clone(),
                };
                if layer.is_empty() {
                    format!("{f} @{}", self.ctx_idx)
                } else {
                    format!("{layer} {f} @{}", self.ctx_idx)
                }
            }
        }
    }

    /// The stored label when non-empty, else [`Node::description`].
    pub fn display_label(&self) -> String {
        match &self.label {
            Some(l) if !l.trim().is_empty() => l.clone(),
            _ => self.description(),
        }
    }
}

/// One weighted edge `source → target` between node indices of the same graph.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Edge {
    pub source: u32,
    pub target: u32,
    pub weight: f64,
}

/// An attribution graph held in memory.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Graph {
    pub name: String,
    /// `circuit-tracer` for an ingested file, `direct-path` for one computed by ATTRIBUTE.
    pub origin: String,
    pub prompt: Option<String>,
    pub prompt_tokens: Vec<String>,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

/// Numeric order of the node kinds, used for stable summaries and the on-disk encoding.
pub(crate) const KINDS: [NodeKind; 4] = [
    NodeKind::Embedding,
    NodeKind::Feature,
    NodeKind::Error,
    NodeKind::Logit,
];

pub(crate) fn kind_code(k: NodeKind) -> u8 {
    match k {
        NodeKind::Embedding => 0,
        NodeKind::Feature => 1,
        NodeKind::Error => 2,
        NodeKind::Logit => 3,
    }
}

pub(crate) fn kind_from_code(c: u8) -> Option<NodeKind> {
    KINDS.get(c as usize).copied()
}

impl Graph {
    /// The index of the node named `id`, by a linear scan (use [`Graph::id_index`] for many lookups).
    pub fn find(&self, id: &str) -> Option<u32> {
        self.nodes.iter().position(|n| n.id == id).map(|i| i as u32)
    }

    /// A map from node id to node index.
    pub fn id_index(&self) -> HashMap<&str, u32> {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.as_str(), i as u32))
            .collect()
    }

    /// The node index of `id`, or [`Error::UnknownNode`].
    pub fn node_index(&self, id: &str) -> Result<u32> {
        self.find(id).ok_or_else(|| Error::UnknownNode {
            graph: self.name.clone(),
            node: id.to_string(),
        })
    }

    /// Checks the graph; the error says what is wrong and names the node or edge.
    /// Rejected: an empty node id, a duplicate node id, an edge whose end is not a node, a
    /// non-finite edge weight, a duplicate edge (same source and target), and a cycle
    /// (self-loops included).
    pub fn validate(&self) -> Result<()> {
        self.check()
            .map_err(|m| Error::bad_input(format!("graph '{}'", self.name), m))
    }

    /// [`Graph::validate`] with a plain message.
    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        let n = self.nodes.len();
        if n > u32::MAX as usize - 1 {
            return Err(format!("too many nodes ({n})"));
        }
        let mut seen: HashMap<&str, usize> = HashMap::with_capacity(n);
        for (i, node) in self.nodes.iter().enumerate() {
            if node.id.is_empty() {
                return Err(format!("node {i} has an empty node id"));
            }
            if let Some(j) = seen.insert(node.id.as_str(), i) {
                return Err(format!(
                    "duplicate node id '{}' (nodes {j} and {i})",
                    node.id
                ));
            }
        }
        let mut pairs: HashSet<(u32, u32)> = HashSet::with_capacity(self.edges.len());
        for (i, e) in self.edges.iter().enumerate() {
            for end in [e.source, e.target] {
                if end as usize >= n {
                    return Err(format!(
                        "edge {i} refers to node index {end}, but the graph has {n} nodes"
                    ));
                }
            }
            let (s, t) = (
                &self.nodes[e.source as usize].id,
                &self.nodes[e.target as usize].id,
            );
            if !e.weight.is_finite() {
                return Err(format!(
                    "edge {i} ('{s}' -> '{t}') has a non-finite weight ({})",
                    e.weight
                ));
            }
            if !pairs.insert((e.source, e.target)) {
                return Err(format!("duplicate edge {i} ('{s}' -> '{t}')"));
            }
        }
        if let Err(v) = topo_order(n, &self.edges) {
            return Err(format!(
                "the graph has a cycle through node {}",
                cycle_description(self, v)
            ));
        }
        Ok(())
    }

    /// The summary shown by `SHOW GRAPHS` / `DESCRIBE GRAPH`.
    pub fn info(&self) -> GraphInfo {
        let mut by_kind = [0u64; 4];
        for n in &self.nodes {
            by_kind[kind_code(n.kind) as usize] += 1;
        }
        let mut by_pair = [[0u64; 4]; 4];
        for e in &self.edges {
            if let (Some(s), Some(t)) = (
                self.nodes.get(e.source as usize),
                self.nodes.get(e.target as usize),
            ) {
                by_pair[kind_code(s.kind) as usize][kind_code(t.kind) as usize] += 1;
            }
        }
        let nodes_by_kind = KINDS
            .iter()
            .map(|&k| (k, by_kind[kind_code(k) as usize]))
            .filter(|(_, c)| *c > 0)
            .collect();
        let mut edges_by_kind = Vec::new();
        for &s in &KINDS {
            for &t in &KINDS {
                let c = by_pair[kind_code(s) as usize][kind_code(t) as usize];
                if c > 0 {
                    edges_by_kind.push((s, t, c));
                }
            }
        }
        let mut logits: Vec<LogitInfo> = self
            .nodes
            .iter()
            .filter(|n| n.kind == NodeKind::Logit)
            .map(|n| LogitInfo {
                node: n.id.clone(),
                token: n.token.clone(),
                probability: n.probability,
                is_target: n.is_target,
            })
            .collect();
        // Targets first, then by probability (highest first); the sort is stable.
        logits.sort_by(|a, b| {
            b.is_target.cmp(&a.is_target).then_with(|| {
                let (pa, pb) = (
                    a.probability.unwrap_or(f64::NEG_INFINITY),
                    b.probability.unwrap_or(f64::NEG_INFINITY),
                );
                pb.partial_cmp(&pa).unwrap_or(std::cmp::Ordering::Equal)
            })
        });
        GraphInfo {
            name: self.name.clone(),
            prompt: self.prompt.clone(),
            prompt_tokens: self.prompt_tokens.clone(),
            nodes: self.nodes.len() as u64,
            edges: self.edges.len() as u64,
            nodes_by_kind,
            edges_by_kind,
            logits,
            origin: self.origin.clone(),
        }
    }
}

/// Decodes circuit-tracer's Cantor pairing `feature = (l + i)(l + i + 1)/2 + i` of (layer, index);
/// `Some(index)` only when the decoded layer equals `layer`.
pub(crate) fn cantor_index(feature: i64, layer: i64) -> Option<u64> {
    if feature < 0 || layer < 0 {
        return None;
    }
    let z = feature as u128;
    // w = floor((sqrt(8z + 1) - 1) / 2), corrected for floating point.
    let mut w = ((((8.0 * z as f64) + 1.0).sqrt() - 1.0) / 2.0).floor() as u128;
    while w * (w + 1) / 2 > z {
        w -= 1;
    }
    while (w + 1) * (w + 2) / 2 <= z {
        w += 1;
    }
    let y = z - w * (w + 1) / 2;
    let x = w - y;
    (x == layer as u128).then_some(y as u64)
}

/// Kahn's algorithm over `n` nodes. `Ok(order)`, or `Err(v)` with `v` a node on a cycle.
pub(crate) fn topo_order(n: usize, edges: &[Edge]) -> std::result::Result<Vec<u32>, u32> {
    let csr = Csr::outgoing(n, edges);
    let mut indeg = vec![0u32; n];
    for e in edges {
        indeg[e.target as usize] += 1;
    }
    let mut order: Vec<u32> = (0..n as u32).filter(|&v| indeg[v as usize] == 0).collect();
    let mut head = 0;
    while head < order.len() {
        let u = order[head] as usize;
        head += 1;
        for &(v, _) in csr.row(u) {
            indeg[v as usize] -= 1;
            if indeg[v as usize] == 0 {
                order.push(v);
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    // Every node left has an unprocessed predecessor: walk back until a node repeats.
    let preds = Csr::incoming(n, edges);
    let mut v = (0..n).find(|&v| indeg[v] > 0).unwrap_or(0);
    let mut visited = vec![false; n];
    loop {
        if visited[v] {
            return Err(v as u32);
        }
        visited[v] = true;
        match preds.row(v).iter().find(|&&(p, _)| indeg[p as usize] > 0) {
            Some(&(p, _)) => v = p as usize,
            None => return Err(v as u32),
        }
    }
}

/// `'a' (cycle: 'a' -> 'b' -> 'a')` for the cycle through node `v`.
fn cycle_description(g: &Graph, v: u32) -> String {
    let n = g.nodes.len();
    let out = Csr::outgoing(n, &g.edges);
    // BFS from v back to v, recording parents.
    let mut parent = vec![u32::MAX; n];
    let mut queue = std::collections::VecDeque::from([v]);
    let mut found = false;
    'bfs: while let Some(u) = queue.pop_front() {
        for &(w, _) in out.row(u as usize) {
            if w == v {
                parent[v as usize] = u;
                found = true;
                break 'bfs;
            }
            if parent[w as usize] == u32::MAX {
                parent[w as usize] = u;
                queue.push_back(w);
            }
        }
    }
    let id = |i: u32| g.nodes[i as usize].id.as_str();
    if !found {
        return format!("'{}'", id(v));
    }
    let mut path = vec![v];
    let mut u = parent[v as usize];
    while u != v && path.len() <= n {
        path.push(u);
        u = parent[u as usize];
    }
    path.push(v);
    path.reverse();
    let cycle: Vec<String> = path.iter().map(|&i| format!("'{}'", id(i))).collect();
    format!("'{}' (cycle: {})", id(v), cycle.join(" -> "))
}

/// Compressed sparse rows: for each node, its neighbours and the index of the edge.
pub(crate) struct Csr {
    pub(crate) offsets: Vec<u32>,
    /// (neighbour, edge index)
    pub(crate) items: Vec<(u32, u32)>,
}

impl Csr {
    fn build(n: usize, edges: &[Edge], key: impl Fn(&Edge) -> (u32, u32)) -> Csr {
        let mut offsets = vec![0u32; n + 1];
        for e in edges {
            offsets[key(e).0 as usize + 1] += 1;
        }
        for i in 0..n {
            offsets[i + 1] += offsets[i];
        }
        let mut fill = offsets.clone();
        let mut items = vec![(0u32, 0u32); edges.len()];
        for (i, e) in edges.iter().enumerate() {
            let (row, other) = key(e);
            items[fill[row as usize] as usize] = (other, i as u32);
            fill[row as usize] += 1;
        }
        Csr { offsets, items }
    }
    /// Rows are sources, neighbours targets.
    pub(crate) fn outgoing(n: usize, edges: &[Edge]) -> Csr {
        Csr::build(n, edges, |e| (e.source, e.target))
    }
    /// Rows are targets, neighbours sources.
    pub(crate) fn incoming(n: usize, edges: &[Edge]) -> Csr {
        Csr::build(n, edges, |e| (e.target, e.source))
    }
    pub(crate) fn row(&self, v: usize) -> &[(u32, u32)] {
        &self.items[self.offsets[v] as usize..self.offsets[v + 1] as usize]
    }
}
