//! Chain search and total influence on an attribution graph (DESIGN.md, "Chains: one precise
//! definition").
//!
//! - Normalisation: `a(s→t) = |w(s→t)| / Σ_s' |w(s'→t)|` over every input edge of `t` in the
//!   graph (never only the edges the options allow). A node whose inputs all weigh 0 gives its
//!   input edges `a = 0`.
//! - A chain is a path from a node with no inputs (or from FROM) to the target; score = product of
//!   `a` along the path (multiplied from the source towards the target), sign = product of the
//!   signs of `w` (a zero weight counts as +1). A path of zero edges exists only when the start is
//!   the target itself, with score 1.
//! - FROM, THROUGH, MIN LENGTH, MAX LENGTH (edges) and EXCLUDE ERRORS select paths.
//! - Order: score descending, then the node-id sequence compared lexicographically (ids compared
//!   as strings, element by element; a proper prefix sorts first).
//!
//! The k best paths come from one DP over the nodes in topological order. The state of a partial
//! path is (node, length bucket, passed-THROUGH flag); each state keeps its k best partial paths as
//! parent pointers into an arena, built by a k-way merge of the predecessors' sorted lists. Length
//! buckets are exact lengths `0..=max` when MAX LENGTH is given, else `min(length, MIN LENGTH)`
//! (lengths at or over the minimum are interchangeable). Two
//! partial paths that end at the same node are never prefixes of one another, so their order is the
//! order of every extension of them: keeping the k best per state is exact.

use super::model::{Csr, Graph};
use super::{Chain, ChainQuery, NodeInfluence, NodeKind};
use crate::{Error, Result};
use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// The largest LIMIT a chain search accepts.
pub const MAX_CHAIN_LIMIT: usize = 10_000;
/// The largest LIMIT an influence ranking accepts.
pub const MAX_INFLUENCE_LIMIT: usize = 1_000_000;

const NONE: u32 = u32::MAX;

/// The graph's adjacency in CSR form with every edge's normalised weight `a` and sign, and a
/// topological order. Build it once to run many searches on one graph.
pub struct Prepared<'g> {
    /// Borrowed for one-off searches, owned when a store caches the prepared graph.
    pub(crate) g: Cow<'g, Graph>,
    pub(crate) out: Csr,
    pub(crate) inc: Csr,
    /// Per edge: normalised weight a.
    pub(crate) a: Vec<f64>,
    /// Per edge: sign of w (+1 / -1).
    pub(crate) sign: Vec<i8>,
    pub(crate) topo: Vec<u32>,
}

impl<'g> Prepared<'g> {
    /// Builds the adjacency; fails if the graph is not a valid DAG.
    pub fn new(g: &'g Graph) -> Result<Prepared<'g>> {
        let n = g.nodes.len();
        for (i, e) in g.edges.iter().enumerate() {
            if e.source as usize >= n || e.target as usize >= n || !e.weight.is_finite() {
                return Err(Error::Corrupt(format!(
                    "graph '{}': edge {i} is invalid",
                    g.name
                )));
            }
        }
        let topo = super::model::topo_order(n, &g.edges).map_err(|v| {
            Error::Corrupt(format!(
                "graph '{}' has a cycle through node '{}'",
                g.name, g.nodes[v as usize].id
            ))
        })?;
        let mut total = vec![0f64; n];
        for e in &g.edges {
            total[e.target as usize] += e.weight.abs();
        }
        let a = g
            .edges
            .iter()
            .map(|e| {
                let t = total[e.target as usize];
                if t > 0.0 {
                    e.weight.abs() / t
                } else {
                    0.0
                }
            })
            .collect();
        let sign = g
            .edges
            .iter()
            .map(|e| if e.weight < 0.0 { -1 } else { 1 })
            .collect();
        Ok(Prepared {
            g: Cow::Borrowed(g),
            out: Csr::outgoing(n, &g.edges),
            inc: Csr::incoming(n, &g.edges),
            a,
            sign,
            topo,
        })
    }

    /// Prepares a graph it then owns, to keep between queries.
    pub fn owned(g: Graph) -> Result<Prepared<'static>> {
        let p = Prepared::new(&g)?;
        let (out, inc, a, sign, topo) = (p.out, p.inc, p.a, p.sign, p.topo);
        Ok(Prepared {
            g: Cow::Owned(g),
            out,
            inc,
            a,
            sign,
            topo,
        })
    }

    /// The graph this was prepared from.
    pub fn graph(&self) -> &Graph {
        &self.g
    }

    fn index(&self, id: &str) -> Result<u32> {
        self.g.node_index(id)
    }

    /// The k best chains, see [`chains`].
    pub fn chains(&self, q: &ChainQuery) -> Result<Vec<Chain>> {
        let g: &Graph = &self.g;
        let n = g.nodes.len();
        if q.limit == 0 || q.limit > MAX_CHAIN_LIMIT {
            return Err(Error::InvalidArgument(format!(
                "chain LIMIT must be between 1 and {MAX_CHAIN_LIMIT}, not {}",
                q.limit
            )));
        }
        if let (Some(lo), Some(hi)) = (q.min_length, q.max_length) {
            if lo > hi {
                return Err(Error::InvalidArgument(format!(
                    "MIN LENGTH {lo} is greater than MAX LENGTH {hi}"
                )));
            }
        }
        let k = q.limit;
        let target = self.index(&q.to)?;
        let from = q.from.as_deref().map(|f| self.index(f)).transpose()?;
        let through = q.through.as_deref().map(|f| self.index(f)).transpose()?;
        let is_err = |v: u32| g.nodes[v as usize].kind == NodeKind::Error;

        // Relevant nodes: reach the target, are reachable from FROM (if any), are not excluded.
        let mut allowed = vec![true; n];
        if q.exclude_errors {
            for (v, node) in g.nodes.iter().enumerate() {
                if node.kind == NodeKind::Error {
                    allowed[v] = false;
                }
            }
        }
        let mut rel = reach(&self.inc, target, &allowed);
        if let Some(f) = from {
            let fwd = reach(&self.out, f, &allowed);
            for v in 0..n {
                rel[v] &= fwd[v];
            }
        }
        if let Some(t) = through {
            let up = reach(&self.inc, t, &allowed);
            let down = reach(&self.out, t, &allowed);
            for v in 0..n {
                rel[v] &= up[v] || down[v];
            }
        }
        let starts: Vec<u32> = match from {
            Some(f) => vec![f],
            None => (0..n as u32)
                .filter(|&v| self.inc.row(v as usize).is_empty())
                .collect(),
        };
        if !rel[target as usize]
            || starts.iter().all(|&s| !rel[s as usize])
            || (q.exclude_errors && is_err(target))
        {
            return Ok(Vec::new());
        }

        // Longest relevant path length (edges) into each node, to bound the length buckets.
        let mut depth = vec![-1i64; n];
        for &s in &starts {
            if rel[s as usize] {
                depth[s as usize] = 0;
            }
        }
        for &u in &self.topo {
            let du = depth[u as usize];
            if du < 0 || !rel[u as usize] {
                continue;
            }
            for &(v, _) in self.out.row(u as usize) {
                if rel[v as usize] && depth[v as usize] < du + 1 {
                    depth[v as usize] = du + 1;
                }
            }
        }
        let longest = depth[target as usize].max(0) as usize;
        let min_len = q.min_length.unwrap_or(0);
        if min_len > longest {
            return Ok(Vec::new());
        }
        // Buckets: exact lengths 0..=max when MAX is given, else min(len, min_len).
        let (n_buckets, exact) = match q.max_length {
            Some(hi) => (hi.min(longest) + 1, true),
            None => (min_len + 1, false),
        };
        let flags = if through.is_some() { 2 } else { 1 };
        let state_of = |bucket: usize, flag: bool| bucket * flags + flag as usize;
        let next_bucket = |b: usize| -> Option<usize> {
            if exact {
                (b + 1 < n_buckets).then_some(b + 1)
            } else {
                Some((b + 1).min(min_len))
            }
        };

        let is_start = {
            let mut v = vec![false; n];
            for &s in &starts {
                v[s as usize] = true;
            }
            v
        };
        let final_ok = |s: usize| {
            let (b, f) = (s / flags, s % flags == 1);
            let len_ok = if exact { b >= min_len } else { b == min_len };
            len_ok && (through.is_none() || f)
        };

        // The DP, "pull" form: at node v (topological order) the k best partial paths of each
        // state come from a k-way merge of its predecessors' lists (each sorted by score, scaled
        // by the edge's a > 0 so still sorted). Finished lists live in `arena`; `ranges[v]`
        // holds (state, start, end) of v's lists.
        let mut arena: Vec<Entry> = Vec::new();
        let mut ranges: Vec<Vec<(u32, u32, u32)>> = vec![Vec::new(); n];
        let mut streams: Vec<Stream> = Vec::new();
        let mut heap: BinaryHeap<Head> = BinaryHeap::new();
        let mut picked: Vec<Entry> = Vec::new();
        let mut sa = Vec::new();
        let mut sb = Vec::new();
        let mut results: Vec<u32> = Vec::new(); // arena indices of complete paths
        for &v in &self.topo {
            let vi = v as usize;
            if !rel[vi] {
                continue;
            }
            let v_is_through = Some(v) == through;
            if is_start[vi] {
                // A start has no relevant predecessor (FROM's predecessors cannot be reached from it).
                let s = state_of(0, v_is_through);
                arena.push(Entry {
                    node: v,
                    parent: NONE,
                    score: 1.0,
                    sign: 1,
                });
                let i = arena.len() as u32 - 1;
                if v == target {
                    if final_ok(s) {
                        results.push(i);
                    }
                } else {
                    ranges[vi].push((s as u32, i, i + 1));
                }
                continue;
            }
            streams.clear();
            for &(u, e) in self.inc.row(vi) {
                if !rel[u as usize] {
                    continue;
                }
                for &(s, lo, hi) in &ranges[u as usize] {
                    let (b, f) = (s as usize / flags, s as usize % flags == 1);
                    let Some(nb) = next_bucket(b) else { continue };
                    let ns = state_of(nb, f || v_is_through);
                    if v == target && !final_ok(ns) {
                        continue;
                    }
                    let group = if v == target { 0 } else { ns };
                    streams.push(Stream {
                        group: group as u32,
                        pos: lo,
                        end: hi,
                        a: self.a[e as usize],
                        sign: self.sign[e as usize],
                    });
                }
            }
            if streams.is_empty() {
                continue;
            }
            streams.sort_unstable_by_key(|x| x.group);
            let mut g0 = 0;
            while g0 < streams.len() {
                let group = streams[g0].group;
                let g1 = g0 + streams[g0..].partition_point(|x| x.group == group);
                // k-way merge by score; keep every entry tied with the k-th.
                heap.clear();
                picked.clear();
                for (si, st) in streams[g0..g1].iter().enumerate() {
                    let score = arena[st.pos as usize].score * st.a;
                    heap.push(Head {
                        score,
                        stream: (g0 + si) as u32,
                    });
                }
                while let Some(&Head { score, stream }) = heap.peek() {
                    if picked.len() >= k && score < picked[k - 1].score {
                        break;
                    }
                    heap.pop();
                    let st = &mut streams[stream as usize];
                    let p = arena[st.pos as usize];
                    picked.push(Entry {
                        node: v,
                        parent: st.pos,
                        score,
                        sign: p.sign * st.sign,
                    });
                    st.pos += 1;
                    if st.pos < st.end {
                        let next = arena[st.pos as usize].score * st.a;
                        heap.push(Head {
                            score: next,
                            stream,
                        });
                    }
                }
                if picked.len() > k || has_tie(&picked) {
                    picked.sort_by(|x, y| {
                        y.score.total_cmp(&x.score).then_with(|| {
                            path_into(&arena, x.parent, &mut sa);
                            path_into(&arena, y.parent, &mut sb);
                            sa.push(v);
                            sb.push(v);
                            cmp_ids(g, &sa, &sb)
                        })
                    });
                    picked.truncate(k);
                }
                let lo = arena.len() as u32;
                arena.extend_from_slice(&picked);
                if arena.len() >= NONE as usize {
                    return Err(Error::InvalidArgument(
                        "chain search too large: reduce LIMIT or MAX LENGTH".into(),
                    ));
                }
                let hi = arena.len() as u32;
                if v == target {
                    results.extend(lo..hi);
                } else {
                    ranges[vi].push((group, lo, hi));
                }
                g0 = g1;
            }
            if v == target {
                break;
            }
        }
        // `results` holds one merged, sorted list (or the zero-edge path when the target is the
        // start).

        let mut out = Vec::with_capacity(results.len());
        let mut path = Vec::new();
        for (rank, &i) in results.iter().enumerate() {
            let c = arena[i as usize];
            path_into(&arena, i, &mut path);
            out.push(Chain {
                rank: rank + 1,
                score: c.score,
                sign: c.sign,
                nodes: path
                    .iter()
                    .map(|&v| g.nodes[v as usize].id.clone())
                    .collect(),
                labels: path
                    .iter()
                    .map(|&v| g.nodes[v as usize].display_label())
                    .collect(),
            });
        }
        Ok(out)
    }

    /// Total influence on `target`, see [`influence`].
    pub fn influence(&self, target: &str, limit: usize) -> Result<Vec<NodeInfluence>> {
        if limit == 0 || limit > MAX_INFLUENCE_LIMIT {
            return Err(Error::InvalidArgument(format!(
                "influence LIMIT must be between 1 and {MAX_INFLUENCE_LIMIT}, not {limit}"
            )));
        }
        let g: &Graph = &self.g;
        let t = self.index(target)?;
        let infl = self.influence_vector(t);
        let mut ranked: Vec<u32> = (0..g.nodes.len() as u32)
            .filter(|&v| v != t && infl[v as usize] > 0.0)
            .collect();
        ranked.sort_by(|&x, &y| {
            infl[y as usize]
                .partial_cmp(&infl[x as usize])
                .unwrap_or(Ordering::Equal)
                .then_with(|| g.nodes[x as usize].id.cmp(&g.nodes[y as usize].id))
        });
        ranked.truncate(limit);
        Ok(ranked
            .into_iter()
            .map(|v| {
                let node = &g.nodes[v as usize];
                NodeInfluence {
                    node: node.id.clone(),
                    label: node.display_label(),
                    kind: node.kind,
                    influence: infl[v as usize],
                }
            })
            .collect())
    }

    /// Per node, the sum over all its paths into `target` of the product of normalised weights
    /// (1 for the target itself): one backward pass in reverse topological order.
    pub fn influence_vector(&self, target: u32) -> Vec<f64> {
        let mut infl = vec![0f64; self.g.nodes.len()];
        infl[target as usize] = 1.0;
        for &u in self.topo.iter().rev() {
            if u == target {
                continue;
            }
            let mut sum = 0.0;
            for &(v, e) in self.out.row(u as usize) {
                sum += self.a[e as usize] * infl[v as usize];
            }
            infl[u as usize] = sum;
        }
        infl
    }

    /// Like [`Prepared::influence_vector`] with signed weights `w / Σ|w|` (positive: the node
    /// pushes the target up).
    pub fn signed_influence_vector(&self, target: u32) -> Vec<f64> {
        let mut infl = vec![0f64; self.g.nodes.len()];
        infl[target as usize] = 1.0;
        for &u in self.topo.iter().rev() {
            if u == target {
                continue;
            }
            let mut sum = 0.0;
            for &(v, e) in self.out.row(u as usize) {
                sum += self.sign[e as usize] as f64 * self.a[e as usize] * infl[v as usize];
            }
            infl[u as usize] = sum;
        }
        infl
    }
}

/// The `k` best chains into `q.to` (see the module docs for the exact definition and order).
/// `q.limit` must be in 1..=[`MAX_CHAIN_LIMIT`]; unknown node ids give [`Error::UnknownNode`].
pub fn chains(g: &Graph, q: &ChainQuery) -> Result<Vec<Chain>> {
    Prepared::new(g)?.chains(q)
}

/// Every node's total influence on `target` — the sum over all its paths into the target of the
/// product of normalised weights, i.e. the `(I − A)⁻¹` series — highest first (ties by node id),
/// without the target itself and without nodes of influence 0; at most `limit` (1..=1,000,000).
pub fn influence(g: &Graph, target: &str, limit: usize) -> Result<Vec<NodeInfluence>> {
    Prepared::new(g)?.influence(target, limit)
}

/// A finished partial path: its last node, the arena index of its predecessor entry, its score
/// and sign.
#[derive(Clone, Copy)]
struct Entry {
    node: u32,
    parent: u32,
    score: f64,
    sign: i8,
}

/// One predecessor list feeding a merge: entries `pos..end` of the arena, scaled by `a`.
struct Stream {
    group: u32,
    pos: u32,
    end: u32,
    a: f64,
    sign: i8,
}

/// The current head of a stream in the merge heap (max-heap by score).
struct Head {
    score: f64,
    stream: u32,
}

impl PartialEq for Head {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Head {
    fn cmp(&self, o: &Self) -> Ordering {
        self.score
            .total_cmp(&o.score)
            .then_with(|| o.stream.cmp(&self.stream))
    }
}

/// Whether two neighbours of a score-sorted list have the same score.
fn has_tie(list: &[Entry]) -> bool {
    list.windows(2).any(|w| w[0].score == w[1].score)
}

/// Nodes marked true by a walk from `start` along `csr` through `allowed` nodes.
fn reach(csr: &Csr, start: u32, allowed: &[bool]) -> Vec<bool> {
    let mut seen = vec![false; allowed.len()];
    if !allowed[start as usize] {
        return seen;
    }
    seen[start as usize] = true;
    let mut stack = vec![start];
    while let Some(u) = stack.pop() {
        for &(v, _) in csr.row(u as usize) {
            if allowed[v as usize] && !seen[v as usize] {
                seen[v as usize] = true;
                stack.push(v);
            }
        }
    }
    seen
}

/// The node sequence (source first) of the path whose last entry is `idx`.
fn path_into(arena: &[Entry], mut idx: u32, out: &mut Vec<u32>) {
    out.clear();
    while idx != NONE {
        let e = arena[idx as usize];
        out.push(e.node);
        idx = e.parent;
    }
    out.reverse();
}

fn cmp_ids(g: &Graph, a: &[u32], b: &[u32]) -> Ordering {
    for (&x, &y) in a.iter().zip(b) {
        let o = g.nodes[x as usize].id.cmp(&g.nodes[y as usize].id);
        if o != Ordering::Equal {
            return o;
        }
    }
    a.len().cmp(&b.len())
}
