//! Graph records inside the `graphs` column family (docs/STORAGE.md, "Graph records"; the keys
//! are built in `keys.rs`).
//!
//! Values are little-endian: integers fixed width, `f64` as IEEE-754 bits, strings as
//! `u32 length | UTF-8 bytes`, optional values as `u8 0` (absent) or `u8 1 | value`.
//!
//! Graph format 1 also wrote one key per edge and direction (`'i'` and `'o'`, 42 bytes an edge
//! beside its 16 in a chunk) for per-node scans that nothing read: searches load the whole graph
//! once. Format 2 writes only the header, the nodes and the edge chunks; a format 1 graph reads
//! the same (its extra keys are ignored, and deleted with the graph).

use super::model::{kind_code, kind_from_code, Edge, Graph, Node};
use crate::keys::{graph_key, graph_range, GraphTag};
use crate::{Error, Result};
use rocksdb::{ColumnFamily, Direction, IteratorMode, ReadOptions, WriteBatch, DB};

/// Version byte at the start of every header value written now.
pub(crate) const GRAPH_FORMAT: u8 = 2;
/// Graph formats this build reads: 1 (with per-edge adjacency keys, ignored) and 2.
const READABLE_GRAPH_FORMATS: [u8; 2] = [1, 2];
/// Edges per `'e'` chunk value (16 bytes each: 1 MiB per chunk).
pub(crate) const EDGES_PER_CHUNK: usize = 65_536;

/// Puts graph `g` under id `graph_id` into `batch`. The graph is validated first: on error nothing
/// is added to the batch.
pub(crate) fn write_graph(
    batch: &mut WriteBatch,
    cf: &ColumnFamily,
    graph_id: u32,
    g: &Graph,
) -> Result<()> {
    g.validate()?;
    let mut h = Enc::default();
    h.u8(GRAPH_FORMAT);
    h.str(&g.name);
    h.str(&g.origin);
    h.opt_str(g.prompt.as_deref());
    h.u32(g.prompt_tokens.len() as u32);
    for t in &g.prompt_tokens {
        h.str(t);
    }
    h.u32(g.nodes.len() as u32);
    h.u64(g.edges.len() as u64);
    h.u32(EDGES_PER_CHUNK as u32);
    batch.put_cf(cf, graph_key(graph_id, GraphTag::Header, None), h.0);

    for (i, n) in g.nodes.iter().enumerate() {
        batch.put_cf(
            cf,
            graph_key(graph_id, GraphTag::Node, Some(i as u32)),
            encode_node(n),
        );
    }
    for (c, chunk) in g.edges.chunks(EDGES_PER_CHUNK).enumerate() {
        let mut v = Vec::with_capacity(chunk.len() * 16);
        for e in chunk {
            v.extend_from_slice(&e.source.to_le_bytes());
            v.extend_from_slice(&e.target.to_le_bytes());
            v.extend_from_slice(&e.weight.to_le_bytes());
        }
        batch.put_cf(cf, graph_key(graph_id, GraphTag::Edges, Some(c as u32)), v);
    }
    Ok(())
}

/// Reads graph `graph_id` back: header, nodes and edges (edges in their original order).
pub(crate) fn read_graph(db: &DB, cf: &ColumnFamily, graph_id: u32) -> Result<Graph> {
    let hk = graph_key(graph_id, GraphTag::Header, None);
    let hv = db
        .get_cf(cf, &hk)?
        .ok_or_else(|| Error::Corrupt(format!("graph {graph_id} has no header")))?;
    let what = format!("graph {graph_id} header");
    let mut d = Dec::new(&hv, &what);
    let version = d.u8()?;
    if !READABLE_GRAPH_FORMATS.contains(&version) {
        return Err(Error::Corrupt(format!(
            "graph {graph_id} has format {version}, this build reads {READABLE_GRAPH_FORMATS:?}"
        )));
    }
    let name = d.str()?;
    let origin = d.str()?;
    let prompt = d.opt_str()?;
    let n_tokens = d.u32()? as usize;
    let mut prompt_tokens = Vec::with_capacity(n_tokens.min(1 << 16));
    for _ in 0..n_tokens {
        prompt_tokens.push(d.str()?);
    }
    let n_nodes = d.u32()? as usize;
    let n_edges = d.u64()? as usize;
    let _per_chunk = d.u32()?;
    d.end()?;

    let mut nodes = Vec::with_capacity(n_nodes.min(1 << 24));
    scan(
        db,
        cf,
        &graph_key(graph_id, GraphTag::Node, None),
        |k, v| {
            let idx = be_u32(&k[5..])?;
            if idx as usize != nodes.len() {
                return Err(Error::Corrupt(format!(
                    "graph {graph_id}: node {} is missing",
                    nodes.len()
                )));
            }
            nodes.push(decode_node(v, graph_id, idx)?);
            Ok(())
        },
    )?;
    if nodes.len() != n_nodes {
        return Err(Error::Corrupt(format!(
            "graph {graph_id}: {} nodes stored, header says {n_nodes}",
            nodes.len()
        )));
    }
    let mut edges = Vec::with_capacity(n_edges.min(1 << 28));
    scan(
        db,
        cf,
        &graph_key(graph_id, GraphTag::Edges, None),
        |_, v| {
            if v.len() % 16 != 0 {
                return Err(Error::Corrupt(format!(
                    "graph {graph_id}: an edge chunk has {} bytes",
                    v.len()
                )));
            }
            for r in v.chunks_exact(16) {
                edges.push(Edge {
                    source: le_u32(&r[0..4]),
                    target: le_u32(&r[4..8]),
                    weight: le_f64(&r[8..16]),
                });
            }
            Ok(())
        },
    )?;
    if edges.len() != n_edges {
        return Err(Error::Corrupt(format!(
            "graph {graph_id}: {} edges stored, header says {n_edges}",
            edges.len()
        )));
    }
    if edges
        .iter()
        .any(|e| e.source as usize >= n_nodes || e.target as usize >= n_nodes)
    {
        return Err(Error::Corrupt(format!(
            "graph {graph_id}: an edge refers to a node that is not stored"
        )));
    }
    Ok(Graph {
        name,
        origin,
        prompt,
        prompt_tokens,
        nodes,
        edges,
    })
}

/// Deletes every key of graph `graph_id`, format 1's adjacency keys included (one range
/// delete: `gid | 0x00` up to `gid | 0xFF`).
pub(crate) fn delete_graph(batch: &mut WriteBatch, cf: &ColumnFamily, graph_id: u32) {
    let (from, to) = graph_range(graph_id);
    batch.delete_range_cf(cf, from, to);
}

/// Calls `f` for every key starting with `prefix`, in key order.
fn scan(
    db: &DB,
    cf: &ColumnFamily,
    prefix: &[u8],
    mut f: impl FnMut(&[u8], &[u8]) -> Result<()>,
) -> Result<()> {
    let mut opts = ReadOptions::default();
    if let Some(upper) = successor(prefix) {
        opts.set_iterate_upper_bound(upper);
    }
    for item in db.iterator_cf_opt(cf, opts, IteratorMode::From(prefix, Direction::Forward)) {
        let (k, v) = item?;
        if !k.starts_with(prefix) {
            break;
        }
        f(&k, &v)?;
    }
    Ok(())
}

/// The smallest key greater than every key with this prefix (None if the prefix is all 0xFF).
fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut s = prefix.to_vec();
    while let Some(last) = s.pop() {
        if last < 0xFF {
            s.push(last + 1);
            return Some(s);
        }
    }
    None
}

fn be_u32(b: &[u8]) -> Result<u32> {
    b.get(..4)
        .map(|x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]))
        .ok_or_else(|| Error::Corrupt("a graph key is too short".into()))
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn le_f64(b: &[u8]) -> f64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    f64::from_le_bytes(a)
}

fn encode_node(n: &Node) -> Vec<u8> {
    let mut e = Enc::default();
    e.str(&n.id);
    e.u8(kind_code(n.kind));
    e.opt_i64(n.layer);
    e.opt_str(n.layer_name.as_deref());
    e.u32(n.ctx_idx);
    e.opt_i64(n.feature);
    e.opt_u64(n.feature_index);
    e.opt_str(n.token.as_deref());
    e.opt_f64(n.activation);
    e.opt_f64(n.influence);
    e.opt_f64(n.probability);
    e.u8(n.is_target as u8);
    e.opt_str(n.label.as_deref());
    e.0
}

fn decode_node(v: &[u8], graph_id: u32, idx: u32) -> Result<Node> {
    let what = format!("graph {graph_id} node {idx}");
    let mut d = Dec::new(v, &what);
    let id = d.str()?;
    let code = d.u8()?;
    let kind = kind_from_code(code)
        .ok_or_else(|| Error::Corrupt(format!("{what}: unknown kind {code}")))?;
    let node = Node {
        id,
        kind,
        layer: d.opt_i64()?,
        layer_name: d.opt_str()?,
        ctx_idx: d.u32()?,
        feature: d.opt_i64()?,
        feature_index: d.opt_u64()?,
        token: d.opt_str()?,
        activation: d.opt_f64()?,
        influence: d.opt_f64()?,
        probability: d.opt_f64()?,
        is_target: d.u8()? != 0,
        label: d.opt_str()?,
    };
    d.end()?;
    Ok(node)
}

#[derive(Default)]
struct Enc(Vec<u8>);

impl Enc {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.u8(0),
            Some(s) => {
                self.u8(1);
                self.str(s)
            }
        }
    }
    fn opt_i64(&mut self, v: Option<i64>) {
        self.opt_u64(v.map(|x| x as u64))
    }
    fn opt_u64(&mut self, v: Option<u64>) {
        match v {
            None => self.u8(0),
            Some(x) => {
                self.u8(1);
                self.u64(x)
            }
        }
    }
    fn opt_f64(&mut self, v: Option<f64>) {
        self.opt_u64(v.map(f64::to_bits))
    }
}

struct Dec<'a> {
    b: &'a [u8],
    at: usize,
    what: &'a str,
}

impl<'a> Dec<'a> {
    fn new(b: &'a [u8], what: &'a str) -> Self {
        Dec { b, at: 0, what }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len());
        match end {
            Some(e) => {
                let s = &self.b[self.at..e];
                self.at = e;
                Ok(s)
            }
            None => Err(Error::Corrupt(format!("{}: value is truncated", self.what))),
        }
    }
    fn end(&self) -> Result<()> {
        if self.at == self.b.len() {
            Ok(())
        } else {
            Err(Error::Corrupt(format!(
                "{}: {} trailing bytes",
                self.what,
                self.b.len() - self.at
            )))
        }
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(le_u32(self.take(4)?))
    }
    fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn str(&mut self) -> Result<String> {
        let n = self.u32()? as usize;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec())
            .map_err(|_| Error::Corrupt(format!("{}: a string is not UTF-8", self.what)))
    }
    fn flag(&mut self) -> Result<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            x => Err(Error::Corrupt(format!(
                "{}: bad option flag {x}",
                self.what
            ))),
        }
    }
    fn opt_str(&mut self) -> Result<Option<String>> {
        if self.flag()? {
            self.str().map(Some)
        } else {
            Ok(None)
        }
    }
    fn opt_u64(&mut self) -> Result<Option<u64>> {
        if self.flag()? {
            self.u64().map(Some)
        } else {
            Ok(None)
        }
    }
    fn opt_i64(&mut self) -> Result<Option<i64>> {
        Ok(self.opt_u64()?.map(|x| x as i64))
    }
    fn opt_f64(&mut self) -> Result<Option<f64>> {
        Ok(self.opt_u64()?.map(f64::from_bits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::NodeKind;
    use rocksdb::{ColumnFamilyDescriptor, Options};

    fn sample() -> Graph {
        let mut a = Node::new("E_1_0", NodeKind::Embedding);
        a.token = Some(" Dallas".into());
        a.layer_name = Some("E".into());
        let mut b = Node::new("3_77_0", NodeKind::Feature);
        b.layer = Some(3);
        b.feature = Some(5_000_000_000);
        b.feature_index = Some(77);
        b.activation = Some(1.5);
        b.label = Some("Texas ✓".into());
        let mut c = Node::new("0_3_0", NodeKind::Error);
        c.layer = Some(3);
        let mut t = Node::new("27_9_0", NodeKind::Logit);
        t.token = Some(" Austin".into());
        t.probability = Some(0.33);
        t.is_target = true;
        Graph {
            name: "g".into(),
            origin: "circuit-tracer".into(),
            prompt: Some("Dallas".into()),
            prompt_tokens: vec!["<bos>".into(), " Dallas".into()],
            nodes: vec![a, b, c, t],
            edges: vec![
                Edge {
                    source: 0,
                    target: 1,
                    weight: 0.5,
                },
                Edge {
                    source: 1,
                    target: 3,
                    weight: -2.0,
                },
                Edge {
                    source: 2,
                    target: 3,
                    weight: 1.0,
                },
                Edge {
                    source: 0,
                    target: 3,
                    weight: 0.25,
                },
            ],
        }
    }

    fn open(dir: &std::path::Path) -> DB {
        let mut o = Options::default();
        o.create_if_missing(true);
        o.create_missing_column_families(true);
        DB::open_cf_descriptors(
            &o,
            dir,
            vec![ColumnFamilyDescriptor::new("graphs", Options::default())],
        )
        .unwrap()
    }

    #[test]
    fn round_trip_scans_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        let cf = db.cf_handle("graphs").unwrap();
        let g = sample();
        let mut other = sample();
        other.name = "other".into();
        let mut batch = WriteBatch::default();
        write_graph(&mut batch, cf, 7, &g).unwrap();
        write_graph(&mut batch, cf, 8, &other).unwrap();
        write_graph(&mut batch, cf, u32::MAX, &other).unwrap();
        db.write(batch).unwrap();
        assert_eq!(read_graph(&db, cf, 7).unwrap(), g);
        assert_eq!(read_graph(&db, cf, u32::MAX).unwrap(), other);
        assert_eq!(
            db.iterator_cf(cf, IteratorMode::Start).count(),
            3 * (1 + 4 + 1),
            "a header, 4 nodes and 1 edge chunk a graph: no adjacency keys"
        );
        let mut batch = WriteBatch::default();
        delete_graph(&mut batch, cf, 7);
        delete_graph(&mut batch, cf, u32::MAX);
        db.write(batch).unwrap();
        assert!(matches!(read_graph(&db, cf, 7), Err(Error::Corrupt(_))));
        assert!(matches!(
            read_graph(&db, cf, u32::MAX),
            Err(Error::Corrupt(_))
        ));
        assert_eq!(read_graph(&db, cf, 8).unwrap(), other);
        let n = db.iterator_cf(cf, IteratorMode::Start).count();
        assert_eq!(n, 1 + 4 + 1, "only graph 8's keys remain");
    }

    #[test]
    fn fixture_and_real_graphs_round_trip() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = vec![root.join("../fixtures/graphs/small.json")];
        let shared = root.join("../../shared/data/attribution-graphs");
        if shared.is_dir() {
            files.push(shared.join("capital-dallas.json"));
            files.push(shared.join("capital-dallas-labelled.json"));
        } else {
            println!("skipping the real graphs: {} is absent", shared.display());
        }
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        let cf = db.cf_handle("graphs").unwrap();
        for (gid, f) in files.iter().enumerate() {
            let g = crate::graph::read_circuit_tracer(f, "g").unwrap();
            let mut batch = WriteBatch::default();
            write_graph(&mut batch, cf, gid as u32, &g).unwrap();
            db.write(batch).unwrap();
            let back = read_graph(&db, cf, gid as u32).unwrap();
            assert_eq!(back, g);
        }
    }

    #[test]
    fn invalid_graph_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        let cf = db.cf_handle("graphs").unwrap();
        let mut g = sample();
        g.edges.push(Edge {
            source: 3,
            target: 0,
            weight: 1.0,
        });
        let mut batch = WriteBatch::default();
        assert!(write_graph(&mut batch, cf, 1, &g).is_err());
        assert_eq!(batch.len(), 0);
    }

    #[test]
    fn many_edges_span_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        let cf = db.cf_handle("graphs").unwrap();
        let n = 700u32;
        let mut g = Graph {
            name: "big".into(),
            origin: "test".into(),
            ..Default::default()
        };
        for i in 0..n {
            g.nodes.push(Node::new(format!("n{i}"), NodeKind::Feature));
        }
        for s in 0..n {
            for t in (s + 1)..n {
                if (s * 31 + t * 17) % 3 == 0 {
                    g.edges.push(Edge {
                        source: s,
                        target: t,
                        weight: (s as f64 - t as f64) / 7.0,
                    });
                }
            }
        }
        assert!(g.edges.len() > EDGES_PER_CHUNK);
        let mut batch = WriteBatch::default();
        write_graph(&mut batch, cf, 3, &g).unwrap();
        db.write(batch).unwrap();
        let back = read_graph(&db, cf, 3).unwrap();
        assert_eq!(back, g);
    }

    /// A format 1 graph (with its per-edge adjacency keys) reads as it was written, and
    /// deleting it removes those keys too.
    #[test]
    fn a_format_1_graph_reads_and_deletes_whole() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        let cf = db.cf_handle("graphs").unwrap();
        let g = sample();
        let mut batch = WriteBatch::default();
        write_graph(&mut batch, cf, 5, &g).unwrap();
        db.write(batch).unwrap();
        // Rewrite the header's version byte and add format 1's keys, as that build wrote them.
        let hk = graph_key(5, GraphTag::Header, None);
        let mut header = db.get_cf(cf, &hk).unwrap().unwrap();
        header[0] = 1;
        let mut batch = WriteBatch::default();
        batch.put_cf(cf, &hk, header);
        for e in &g.edges {
            let w = e.weight.to_le_bytes();
            let mut i = graph_key(5, GraphTag::Node, Some(e.target));
            i[4] = b'i';
            i.extend_from_slice(&e.source.to_be_bytes());
            let mut o = graph_key(5, GraphTag::Node, Some(e.source));
            o[4] = b'o';
            o.extend_from_slice(&e.target.to_be_bytes());
            batch.put_cf(cf, i, w);
            batch.put_cf(cf, o, w);
        }
        db.write(batch).unwrap();
        assert_eq!(read_graph(&db, cf, 5).unwrap(), g);
        let mut batch = WriteBatch::default();
        delete_graph(&mut batch, cf, 5);
        db.write(batch).unwrap();
        assert_eq!(db.iterator_cf(cf, IteratorMode::Start).count(), 0);
    }
}
