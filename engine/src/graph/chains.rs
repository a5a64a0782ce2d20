//! Chain search and total influence on an attribution graph (docs/ATTRIBUTION.md, "Chains: the
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
//! The state of a partial path is (node, length bucket, passed-THROUGH flag). Length buckets are
//! exact lengths `0..=max` when MAX LENGTH is given, else `min(length, MIN LENGTH)` (lengths at
//! or over the minimum are interchangeable). Each state has a list of partial paths in the
//! chains' order (parent pointers into an arena), at most k long: the k best of the merge of its
//! predecessors' lists, each extended by its edge. Two partial paths that end at the same node
//! are never prefixes of one another, so their order is the order of every extension of them:
//! keeping the k best per state is exact. The lists are built lazily (see `Search`): one pass
//! in topological order finds every state's best path, and only the paths the target's k best
//! need are built beyond that.

use super::model::{Csr, Graph};
use super::{Chain, ChainQuery, NodeInfluence, NodeKind};
use crate::{Error, Result};
use std::borrow::Cow;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// The largest LIMIT a chain search accepts.
pub const MAX_CHAIN_LIMIT: usize = 10_000;
/// The largest LIMIT an influence ranking accepts.
pub const MAX_INFLUENCE_LIMIT: usize = 1_000_000;

const NONE: u32 = u32::MAX;
/// Below every score.
const NO_SCORE: f64 = -1.0;

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
    /// `inc`'s rows again, each sorted by `a` descending (so a search can stop early in a row),
    /// with every edge's `a` and sign inline: a search reads incoming edges row after row, and
    /// looking `a` and the sign up by edge index cost a cache miss per edge.
    in_edges: Vec<InEdge>,
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
        let a: Vec<f64> = g
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
            .collect::<Vec<i8>>();
        let inc = Csr::incoming(n, &g.edges);
        let mut in_edges: Vec<InEdge> = inc
            .items
            .iter()
            .map(|&(src, e)| InEdge {
                src,
                sign: sign[e as usize],
                a: a[e as usize],
            })
            .collect();
        // Largest a first, so that a search can stop early in a row (see `Search::best_into`).
        for w in inc.offsets.windows(2) {
            in_edges[w[0] as usize..w[1] as usize].sort_unstable_by(|x, y| y.a.total_cmp(&x.a));
        }
        Ok(Prepared {
            g: Cow::Borrowed(g),
            out: Csr::outgoing(n, &g.edges),
            inc,
            a,
            sign,
            in_edges,
            topo,
        })
    }

    /// Prepares a graph it then owns, to keep between queries.
    pub fn owned(g: Graph) -> Result<Prepared<'static>> {
        let Prepared {
            out,
            inc,
            a,
            sign,
            in_edges,
            topo,
            ..
        } = Prepared::new(&g)?;
        Ok(Prepared {
            g: Cow::Owned(g),
            out,
            inc,
            a,
            sign,
            in_edges,
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
        check_query(q)?;
        let target = self.index(&q.to)?;
        let from = q.from.as_deref().map(|f| self.index(f)).transpose()?;
        let through = q.through.as_deref().map(|f| self.index(f)).transpose()?;
        let Some(plan) = self.plan(q, target, from, through) else {
            return Ok(Vec::new());
        };
        let mut search = Search::new(self, &plan, q.limit);
        let results = search.run()?;
        Ok(self.to_chains(&search.arena, &results))
    }

    /// The incoming edges of `v` with their `a` and sign.
    fn in_row(&self, v: usize) -> &[InEdge] {
        let o = &self.inc.offsets;
        &self.in_edges[o[v] as usize..o[v + 1] as usize]
    }

    /// What a query searches, or `None` when it can find no chain.
    fn plan(
        &self,
        q: &ChainQuery,
        target: u32,
        from: Option<u32>,
        through: Option<u32>,
    ) -> Option<Plan> {
        let g: &Graph = &self.g;
        let n = g.nodes.len();
        let rel = self.relevant(q, target, from, through);
        let starts: Vec<u32> = match from {
            Some(f) => vec![f],
            None => (0..n as u32)
                .filter(|&v| self.inc.row(v as usize).is_empty())
                .collect(),
        };
        if !rel[target as usize]
            || starts.iter().all(|&s| !rel[s as usize])
            || (q.exclude_errors && g.nodes[target as usize].kind == NodeKind::Error)
        {
            return None;
        }
        // The longest path only bounds the length buckets: without length options there is one.
        let longest = match (q.min_length, q.max_length) {
            (None, None) => 0,
            _ => self.longest(&rel, &starts, target),
        };
        let min_len = q.min_length.unwrap_or(0);
        if min_len > longest {
            return None;
        }
        // Buckets: exact lengths 0..=max when MAX is given, else min(len, min_len).
        let (n_buckets, exact) = match q.max_length {
            Some(hi) => (hi.min(longest) + 1, true),
            None => (min_len + 1, false),
        };
        let mut is_start = vec![false; n];
        for &s in &starts {
            is_start[s as usize] = true;
        }
        Some(Plan {
            rel,
            is_start,
            target,
            states: States {
                n_buckets,
                exact,
                min_len,
                flags: if through.is_some() { 2 } else { 1 },
                through,
            },
        })
    }

    /// Relevant nodes: reach the target, are reachable from FROM (if any), lie on a path through
    /// THROUGH (if any), are not excluded.
    fn relevant(
        &self,
        q: &ChainQuery,
        target: u32,
        from: Option<u32>,
        through: Option<u32>,
    ) -> Vec<bool> {
        let g: &Graph = &self.g;
        let allowed: Vec<bool> = g
            .nodes
            .iter()
            .map(|node| !(q.exclude_errors && node.kind == NodeKind::Error))
            .collect();
        let mut rel = reach(&self.inc, target, &allowed);
        if let Some(f) = from {
            let fwd = reach(&self.out, f, &allowed);
            for (r, f) in rel.iter_mut().zip(fwd) {
                *r &= f;
            }
        }
        if let Some(t) = through {
            let up = reach(&self.inc, t, &allowed);
            let down = reach(&self.out, t, &allowed);
            for ((r, u), d) in rel.iter_mut().zip(up).zip(down) {
                *r &= u || d;
            }
        }
        rel
    }

    /// The longest relevant path (edges) from a start into `target`.
    fn longest(&self, rel: &[bool], starts: &[u32], target: u32) -> usize {
        let mut depth = vec![-1i64; rel.len()];
        for &s in starts {
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
        depth[target as usize].max(0) as usize
    }

    /// The chains whose last arena entries are `results`, in that order.
    fn to_chains(&self, arena: &[Entry], results: &[u32]) -> Vec<Chain> {
        let g: &Graph = &self.g;
        let mut out = Vec::with_capacity(results.len());
        let mut path = Vec::new();
        for (rank, &i) in results.iter().enumerate() {
            let c = arena[i as usize];
            path_into(arena, i, &mut path);
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
        out
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

/// Rejects a LIMIT out of range and MIN LENGTH > MAX LENGTH.
fn check_query(q: &ChainQuery) -> Result<()> {
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
    Ok(())
}

/// One incoming edge as a search reads it.
#[derive(Clone, Copy)]
struct InEdge {
    src: u32,
    sign: i8,
    a: f64,
}

/// What one query searches.
struct Plan {
    /// Nodes on some allowed path from a start into the target.
    rel: Vec<bool>,
    is_start: Vec<bool>,
    target: u32,
    states: States,
}

/// The states of partial paths at a node, numbered `bucket * flags + passed-THROUGH flag`.
struct States {
    n_buckets: usize,
    /// Buckets are exact lengths (MAX LENGTH given), else `min(length, min_len)`.
    exact: bool,
    min_len: usize,
    flags: usize,
    through: Option<u32>,
}

impl States {
    fn of(&self, bucket: usize, flag: bool) -> u32 {
        (bucket * self.flags + flag as usize) as u32
    }

    fn count(&self) -> usize {
        self.n_buckets * self.flags
    }

    /// The state of the zero-edge path at start `v`.
    fn start(&self, v: u32) -> u32 {
        self.of(0, Some(v) == self.through)
    }

    /// The state after one more edge, into `v`; `None` past MAX LENGTH.
    fn next(&self, s: u32, v: u32) -> Option<u32> {
        let (b, f) = (s as usize / self.flags, s as usize % self.flags == 1);
        let nb = if self.exact {
            (b + 1 < self.n_buckets).then_some(b + 1)?
        } else {
            (b + 1).min(self.min_len)
        };
        Some(self.of(nb, f || Some(v) == self.through))
    }

    /// Whether a path in state `s` at the target is a chain.
    fn is_final(&self, s: u32) -> bool {
        let (b, f) = (s as usize / self.flags, s as usize % self.flags == 1);
        let len_ok = if self.exact {
            b >= self.min_len
        } else {
            b == self.min_len
        };
        len_ok && (self.through.is_none() || f)
    }
}

/// The k-best search of one query, best first and lazy (the "recursive enumeration algorithm"
/// of Jiménez and Marzal, on the DAG of states). One pass in topological order finds each
/// state's best partial path; a state's further paths are merged from its predecessors' lists
/// only when asked for, and only the target asks (for k). Building the k best of every state
/// of every node instead was the search's whole cost: about k entries per node, each a cache
/// miss, where the target's k best need about k × (path length).
///
/// A list is ordered by score descending, then by node-id sequence, and is the merge of its
/// predecessors' lists ("streams"), each extended by its edge. Scaling by the edge keeps a
/// stream's order, except where distinct scores round to the same scaled score (always when
/// `a` = 0): such a block of a stream is put in the merge whole before any of it is taken
/// (`block_end`), so that ties are ranked by id as the definition says.
struct Search<'a, 'g> {
    p: &'a Prepared<'g>,
    plan: &'a Plan,
    k: usize,
    /// Every partial path built.
    arena: Vec<Entry>,
    /// One list per state reached at a node, node after node; `node_lists[v]` is v's range.
    lists: Vec<List>,
    node_lists: Vec<(u32, u32)>,
    /// The merges of the lists asked for more than their best path.
    more: Vec<More>,
    // Scratch.
    best: Vec<Option<Cand>>,
    second: Vec<f64>,
    tied: Vec<(u32, Cand)>,
    groups: Vec<u32>,
    bar: Bar,
    asks: Vec<(u32, u32)>,
    asks_for: u32,
    paths: (Vec<u32>, Vec<u32>),
}

impl<'a, 'g> Search<'a, 'g> {
    fn new(p: &'a Prepared<'g>, plan: &'a Plan, k: usize) -> Self {
        Search {
            p,
            plan,
            k,
            arena: Vec::new(),
            lists: Vec::new(),
            node_lists: vec![(0, 0); plan.rel.len()],
            more: Vec::new(),
            best: vec![None; plan.states.count().max(1)],
            second: vec![NO_SCORE; plan.states.count().max(1)],
            tied: Vec::new(),
            groups: Vec::new(),
            bar: Bar::new(k),
            asks: Vec::new(),
            asks_for: 0,
            paths: (Vec::new(), Vec::new()),
        }
    }

    /// Runs the search; returns the arena indices of the chains, best first.
    fn run(&mut self) -> Result<Vec<u32>> {
        let (p, plan) = (self.p, self.plan);
        for &v in &p.topo {
            let vi = v as usize;
            if !plan.rel[vi] {
                continue;
            }
            let first = self.lists.len() as u32;
            if plan.is_start[vi] {
                self.seed(v)?;
            } else {
                self.best_into(v)?;
            }
            self.node_lists[vi] = (first, self.lists.len() as u32);
            if v == plan.target {
                break;
            }
        }
        // The target has at most one list: its final states merged, or its zero-edge path.
        let (l, end) = self.node_lists[plan.target as usize];
        let mut out = Vec::new();
        if l < end {
            for j in 0..self.k as u32 {
                match self.entry(l, j)? {
                    Some(e) => out.push(e),
                    None => break,
                }
            }
        }
        Ok(out)
    }

    /// The zero-edge path at a start (which has no relevant predecessor: FROM's predecessors
    /// cannot be reached from it).
    fn seed(&mut self, v: u32) -> Result<()> {
        let s = self.plan.states.start(v);
        if v == self.plan.target && !self.plan.states.is_final(s) {
            return Ok(());
        }
        let first = self.push_entry(Entry {
            node: v,
            parent: NONE,
            score: 1.0,
            sign: 1,
        })?;
        self.push_list(s, first, NO_SCORE);
        Ok(())
    }

    /// The group a predecessor's list in state `s` feeds at `v`: the next state, or at the
    /// target 0 (every final state merged); `None` when it feeds nothing.
    fn group(&self, s: u32, v: u32) -> Option<u32> {
        let states = &self.plan.states;
        let ns = states.next(s, v)?;
        if v != self.plan.target {
            Some(ns)
        } else {
            states.is_final(ns).then_some(0)
        }
    }

    /// The best partial path of each group at `v`: one pass over its inputs. With a single
    /// group, the pass stops once an input's `a` is below the best score so far: the row is
    /// sorted by `a` descending, and a score is never above the edge's `a` (scores are at most
    /// 1).
    fn best_into(&mut self, v: u32) -> Result<()> {
        let (p, plan) = (self.p, self.plan);
        let single = v == plan.target || plan.states.count() == 1;
        for e in p.in_row(v as usize) {
            if single && self.best[0].is_some_and(|b| e.a < b.score) {
                // The heads left unread score at most `a`.
                self.second[0] = self.second[0].max(e.a);
                break;
            }
            let (l0, l1) = self.node_lists[e.src as usize];
            for li in l0..l1 {
                let l = self.lists[li as usize];
                let Some(group) = self.group(l.state, v) else {
                    continue;
                };
                self.offer_best(v, group, Cand::head(li, &l, e));
            }
        }
        for i in 0..self.groups.len() {
            let group = self.groups[i];
            if let Some(c) = self.best[group as usize].take() {
                let w = self.settle_best(v, group, c)?;
                // Every other entry is another stream's head, or a later entry of the winner's
                // stream (when the winner is not its stream's head, that head ties it).
                let own = match w.j {
                    0 => self.lists[w.list as usize].rest * w.a,
                    _ => w.score,
                };
                let rest = self.second[group as usize].max(own);
                let first = self.push_entry(w.extend(v))?;
                self.push_list(group, first, rest);
            }
        }
        self.groups.clear();
        self.tied.clear();
        Ok(())
    }

    /// Offers a stream's head as the best of its group, keeping the best score of the other
    /// heads in `second`; a head scoring the same as the best so far is kept in `tied` too,
    /// for `settle_best`.
    fn offer_best(&mut self, v: u32, group: u32, c: Cand) {
        let g: &Graph = &self.p.g;
        let gi = group as usize;
        let Some(b) = self.best[gi] else {
            self.groups.push(group);
            self.best[gi] = Some(c);
            self.second[gi] = NO_SCORE;
            return;
        };
        if c.score < b.score {
            self.second[gi] = self.second[gi].max(c.score);
            return;
        }
        self.second[gi] = b.score;
        if c.score > b.score {
            self.best[gi] = Some(c);
            return;
        }
        let (won, lost) = if better(g, &self.arena, v, &c, &b, &mut self.paths) {
            (c, b)
        } else {
            (b, c)
        };
        self.best[gi] = Some(won);
        self.tied.push((group, lost));
    }

    /// The best of a group whose best head is `w`: the smallest id sequence among the heads
    /// tied with `w` and the further entries of their streams that score the same once scaled
    /// (see `block_end`).
    fn settle_best(&mut self, v: u32, group: u32, w: Cand) -> Result<Cand> {
        let mut best = self.settle_block(v, w, w)?;
        for i in 0..self.tied.len() {
            let (gr, c) = self.tied[i];
            if gr == group && c.score == w.score {
                best = self.settle_block(v, c, best)?;
            }
        }
        Ok(best)
    }

    /// The best of `w` and the block of `head`'s stream.
    fn settle_block(&mut self, v: u32, head: Cand, mut w: Cand) -> Result<Cand> {
        let g: &Graph = &self.p.g;
        let last = self.block_end(head, true)?.expect("built on demand");
        for j in head.j..=last {
            let c = self.member(head, j);
            // (An entry reaches v by one edge: the same entry is the same candidate.)
            if c.entry != w.entry && better(g, &self.arena, v, &c, &w, &mut self.paths) {
                w = c;
            }
        }
        Ok(w)
    }

    fn push_entry(&mut self, e: Entry) -> Result<u32> {
        if self.arena.len() >= NONE as usize - 1 {
            return Err(Error::InvalidArgument(
                "chain search too large: reduce LIMIT or MAX LENGTH".into(),
            ));
        }
        self.arena.push(e);
        Ok(self.arena.len() as u32 - 1)
    }

    fn push_list(&mut self, state: u32, first: u32, rest: f64) {
        let e = self.arena[first as usize];
        self.lists.push(List {
            state,
            first,
            more: NONE,
            sign: e.sign,
            top: e.score,
            rest,
        });
    }

    /// Entry `j` of list `l` (an arena index), built on demand; `None` when the list has
    /// fewer. Iterative: a path may be thousands of nodes long.
    fn entry(&mut self, l: u32, j: u32) -> Result<Option<u32>> {
        self.asks.clear();
        self.asks.push((l, j));
        while let Some(&(al, aj)) = self.asks.last() {
            match self.advance(al, aj)? {
                Some(ask) => self.asks.push(ask),
                None => {
                    self.asks.pop();
                }
            }
        }
        Ok(self.known(l, j))
    }

    fn known(&self, l: u32, j: u32) -> Option<u32> {
        let list = &self.lists[l as usize];
        match j {
            0 => Some(list.first),
            _ if list.more == NONE => None,
            _ => self.more[list.more as usize]
                .entries
                .get(j as usize)
                .copied(),
        }
    }

    /// Whether list `l` is known to have no entry `j`.
    fn lacks(&self, l: u32, j: u32) -> bool {
        let list = &self.lists[l as usize];
        list.more != NONE && {
            let m = &self.more[list.more as usize];
            m.heap.is_empty() && m.pending.is_none() && m.entries.len() <= j as usize
        }
    }

    /// Builds list `l` up to entry `j`, or until it runs out. Returns the predecessor entry it
    /// needs first, if any.
    fn advance(&mut self, l: u32, j: u32) -> Result<Option<(u32, u32)>> {
        if self.lists[l as usize].more == NONE {
            self.open(l);
        }
        let m = self.lists[l as usize].more as usize;
        while self.more[m].entries.len() <= j as usize {
            // The stream that gave the last entry moves on to its next entry first (lazily:
            // the last entry asked for never makes a predecessor build one more).
            if let Some(c) = self.more[m].pending {
                if let Some(ask) = self.move_on(m, c) {
                    return Ok(Some(ask));
                }
                self.more[m].pending = None;
            }
            let Some(&top) = self.more[m].heap.first() else {
                break;
            };
            if !top.checked {
                if let Some(ask) = self.check_top(m, top)? {
                    return Ok(Some(ask));
                }
                continue;
            }
            let c = self.heap_pop(m).expect("the heap has a top");
            self.emit(l, m, c)?;
        }
        Ok(None)
    }

    /// Puts the next entry of stream `c` in the heap of `more[m]`, unless the stream has run
    /// out; returns the predecessor entry it needs first, if any.
    fn move_on(&mut self, m: usize, c: Cand) -> Option<(u32, u32)> {
        let next = c.j + 1;
        if next as usize >= self.k {
            return None;
        }
        match self.known(c.list, next) {
            Some(_) => {
                let moved = self.member(c, next);
                self.heap_push(m, moved);
                None
            }
            None if self.lacks(c.list, next) => None,
            None => Some((c.list, next)),
        }
    }

    /// Checks the heap's unchecked top: puts in the heap the further entries of its stream
    /// that score the same once scaled (see `block_end`), so that ties are ranked by id among
    /// all of them. Returns the predecessor entry it needs first, if any.
    fn check_top(&mut self, m: usize, top: Cand) -> Result<Option<(u32, u32)>> {
        let Some(last) = self.block_end(top, false)? else {
            return Ok(Some((top.list, self.asks_for)));
        };
        let more = &mut self.more[m];
        more.heap[0].checked = true;
        more.heap[0].carries = last == top.j;
        self.heap_sift_top(m);
        for j in top.j + 1..=last {
            let mut c = self.member(top, j);
            c.checked = true;
            c.carries = j == last;
            self.heap_push(m, c);
        }
        Ok(None)
    }

    /// The last index of the block of `c`'s stream that starts at `c`: the entries after it
    /// that score the same as `c` once scaled by the edge. A lower predecessor score can round
    /// to the same score (always when `a` = 0): then the stream's order, by predecessor score,
    /// need not be the order by id among equal scores. A bound on the later entries' scores
    /// rules that out without reading them, but for such near ties. `None` when an entry of
    /// the predecessor's list must be built first (its index then in `asks_for`), unless
    /// `build`, which builds it here.
    fn block_end(&mut self, c: Cand, build: bool) -> Result<Option<u32>> {
        let mut last = c.j;
        let later = match c.j {
            0 => self.lists[c.list as usize].rest,
            _ => below(self.arena[c.entry as usize].score),
        };
        if later * c.a < c.score {
            return Ok(Some(last));
        }
        while ((last + 1) as usize) < self.k {
            let next = last + 1;
            let e = match self.known(c.list, next) {
                Some(e) => e,
                None if self.lacks(c.list, next) => break,
                None if build => match self.entry(c.list, next)? {
                    Some(e) => e,
                    None => break,
                },
                None => {
                    self.asks_for = next;
                    return Ok(None);
                }
            };
            if self.arena[e as usize].score * c.a != c.score {
                break;
            }
            last = next;
        }
        Ok(Some(last))
    }

    /// Entry `j` (already built) of `c`'s stream, as a candidate.
    fn member(&self, c: Cand, j: u32) -> Cand {
        let e = self.known(c.list, j).expect("a built entry");
        c.moved(j, &self.arena[e as usize], e)
    }

    /// Appends the merge's next entry to list `l` (the list's best path, built by `best_into`,
    /// when it is the first).
    fn emit(&mut self, l: u32, m: usize, c: Cand) -> Result<()> {
        let e = if self.more[m].entries.is_empty() {
            let first = self.lists[l as usize].first;
            debug_assert_eq!(self.arena[first as usize].parent, c.entry);
            first
        } else {
            self.push_entry(c.extend(self.more[m].v))?
        };
        let more = &mut self.more[m];
        more.entries.push(e);
        more.pending = c.carries.then_some(c);
        Ok(())
    }

    /// Starts list `l`'s merge: a heap of its feeding streams (each predecessor list feeding
    /// its state, extended by the edge), less those that cannot reach its k best.
    fn open(&mut self, l: u32) {
        let list = self.lists[l as usize];
        let v = self.arena[list.first as usize].node;
        let mut heap = Vec::new();
        if self.arena[list.first as usize].parent != NONE {
            self.collect(v, list.state, &mut heap);
        }
        let g: &Graph = &self.p.g;
        heapify(&mut heap, &mut |x, y| {
            better(g, &self.arena, v, x, y, &mut self.paths)
        });
        self.more.push(More {
            v,
            entries: Vec::new(),
            heap,
            pending: None,
        });
        self.lists[l as usize].more = self.more.len() as u32 - 1;
    }

    /// The streams into group `state` at `v` whose heads reach the k best heads (a stream's
    /// later entries never beat its head, and the list needs only k). As in `best_into`, a
    /// row sorted by `a` descending ends early.
    fn collect(&mut self, v: u32, state: u32, heap: &mut Vec<Cand>) {
        let p = self.p;
        self.bar.clear();
        for e in p.in_row(v as usize) {
            if e.a < self.bar.get() {
                break;
            }
            let (l0, l1) = self.node_lists[e.src as usize];
            for li in l0..l1 {
                let l = self.lists[li as usize];
                if self.group(l.state, v) != Some(state) {
                    continue;
                }
                let c = Cand::head(li, &l, e);
                if c.score >= self.bar.get() {
                    self.bar.offer(c.score);
                    heap.push(c);
                }
            }
        }
    }

    fn heap_push(&mut self, m: usize, c: Cand) {
        let g: &Graph = &self.p.g;
        let more = &mut self.more[m];
        let v = more.v;
        more.heap.push(c);
        let last = more.heap.len() - 1;
        sift_up(&mut more.heap, last, &mut |x, y| {
            better(g, &self.arena, v, x, y, &mut self.paths)
        });
    }

    /// Restores the heap of `more[m]` after its top changed.
    fn heap_sift_top(&mut self, m: usize) {
        let g: &Graph = &self.p.g;
        let more = &mut self.more[m];
        let v = more.v;
        sift_down(&mut more.heap, 0, &mut |x, y| {
            better(g, &self.arena, v, x, y, &mut self.paths)
        });
    }

    fn heap_pop(&mut self, m: usize) -> Option<Cand> {
        let g: &Graph = &self.p.g;
        let more = &mut self.more[m];
        let v = more.v;
        if more.heap.is_empty() {
            return None;
        }
        let top = more.heap.swap_remove(0);
        sift_down(&mut more.heap, 0, &mut |x, y| {
            better(g, &self.arena, v, x, y, &mut self.paths)
        });
        Some(top)
    }
}

/// The growing part of a list: its entries so far (arena indices, best first), a max-heap of
/// the heads of its feeding streams, and the stream that gave the last entry, not yet moved on.
struct More {
    v: u32,
    entries: Vec<u32>,
    heap: Vec<Cand>,
    pending: Option<Cand>,
}

/// A candidate partial path into a node: entry `j` (arena index `entry`) of predecessor list
/// `list`, extended by an edge of weight `a`.
#[derive(Clone, Copy)]
struct Cand {
    score: f64,
    a: f64,
    entry: u32,
    list: u32,
    j: u32,
    /// The candidate's sign, and the edge's.
    sign: i8,
    edge_sign: i8,
    /// Whether the rest of its block is in the heap (see `Search::block_end`).
    checked: bool,
    /// Whether its stream moves on after it (the last of its block does).
    carries: bool,
}

impl Cand {
    /// The head of a stream: list `li`'s best path extended by `e`.
    fn head(li: u32, l: &List, e: &InEdge) -> Cand {
        Cand {
            score: l.top * e.a,
            a: e.a,
            entry: l.first,
            list: li,
            j: 0,
            sign: l.sign * e.sign,
            edge_sign: e.sign,
            checked: false,
            carries: true,
        }
    }

    /// The same stream at its predecessor's entry `j` (`pred`, arena index `entry`).
    fn moved(&self, j: u32, pred: &Entry, entry: u32) -> Cand {
        Cand {
            score: pred.score * self.a,
            entry,
            j,
            sign: pred.sign * self.edge_sign,
            checked: false,
            carries: true,
            ..*self
        }
    }

    /// The partial path it stands for, ending at `v`.
    fn extend(&self, v: u32) -> Entry {
        Entry {
            node: v,
            parent: self.entry,
            score: self.score,
            sign: self.sign,
        }
    }
}

/// Whether candidate `x` ranks before `y` at `v`: a higher score, or the same score and a
/// smaller node-id sequence (rebuilt only on such a tie). In a merge, unchecked candidates
/// come first among equal scores, so that all of a score's candidates are in the heap before
/// one of them is taken.
fn better(
    g: &Graph,
    arena: &[Entry],
    v: u32,
    x: &Cand,
    y: &Cand,
    (sa, sb): &mut (Vec<u32>, Vec<u32>),
) -> bool {
    match x.score.total_cmp(&y.score) {
        Ordering::Greater => true,
        Ordering::Less => false,
        Ordering::Equal if x.checked != y.checked => !x.checked,
        Ordering::Equal => {
            path_into(arena, x.entry, sa);
            path_into(arena, y.entry, sb);
            sa.push(v);
            sb.push(v);
            cmp_ids(g, sa, sb) == Ordering::Less
        }
    }
}

/// The largest score below `p` (scores are at least 0).
fn below(p: f64) -> f64 {
    if p > 0.0 {
        f64::from_bits(p.to_bits() - 1)
    } else {
        NO_SCORE
    }
}

// A binary max-heap under `better`, a strict total order that needs the arena on ties (which
// `BinaryHeap`'s `Ord` could not reach).

fn heapify(h: &mut [Cand], better: &mut impl FnMut(&Cand, &Cand) -> bool) {
    for i in (0..h.len() / 2).rev() {
        sift_down(h, i, better);
    }
}

fn sift_down(h: &mut [Cand], mut i: usize, better: &mut impl FnMut(&Cand, &Cand) -> bool) {
    loop {
        let (l, r) = (2 * i + 1, 2 * i + 2);
        let mut top = i;
        if l < h.len() && better(&h[l], &h[top]) {
            top = l;
        }
        if r < h.len() && better(&h[r], &h[top]) {
            top = r;
        }
        if top == i {
            return;
        }
        h.swap(i, top);
        i = top;
    }
}

fn sift_up(h: &mut [Cand], mut i: usize, better: &mut impl FnMut(&Cand, &Cand) -> bool) {
    while i > 0 {
        let parent = (i - 1) / 2;
        if !better(&h[i], &h[parent]) {
            return;
        }
        h.swap(i, parent);
        i = parent;
    }
}

/// The k best stream heads offered at one node; below the k-th (the bar) a stream cannot reach
/// the node's k best entries.
struct Bar {
    k: usize,
    /// A min-heap of the heads' bits: scores are at least +0.0, whose bits order as the numbers.
    heads: BinaryHeap<Reverse<u64>>,
}

impl Bar {
    fn new(k: usize) -> Self {
        Bar {
            k,
            heads: BinaryHeap::with_capacity(k),
        }
    }

    fn clear(&mut self) {
        self.heads.clear();
    }

    /// The k-th best head offered, or -inf before k were.
    fn get(&self) -> f64 {
        match self.heads.peek() {
            Some(&Reverse(bits)) if self.heads.len() == self.k => f64::from_bits(bits),
            _ => f64::NEG_INFINITY,
        }
    }

    fn offer(&mut self, head: f64) {
        let bits = head.to_bits();
        if self.heads.len() < self.k {
            self.heads.push(Reverse(bits));
        } else if let Some(mut low) = self.heads.peek_mut() {
            if bits > low.0 {
                *low = Reverse(bits);
            }
        }
    }
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

/// The list of one state at one node: its best partial path `first` (whose score and sign
/// `top` and `sign` repeat, so that a merge ranks the list without reading the arena), `rest`
/// at least the score of every later entry (a bound, from the best pass), and, once asked for
/// more, `more` (an index into `Search::more`).
#[derive(Clone, Copy)]
struct List {
    state: u32,
    first: u32,
    more: u32,
    sign: i8,
    top: f64,
    rest: f64,
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
