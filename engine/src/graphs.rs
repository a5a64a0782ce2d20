//! Attribution graphs in the store: ingest, listing, chain search, direct-path attribution.
//! The graph model, parser and algorithms live in `graph/`; this file only wires them to RocksDB.

use crate::catalog::{GraphEntry, IngestRecord};
use crate::graph::chains::Prepared;
use crate::graph::direct::{direct_path_graph, DirectLayer, DirectSource};
use crate::graph::model::Graph;
use crate::graph::{self, Chain, ChainQuery, GraphInfo, NodeInfluence};
use crate::keys::{Tensor, CF_GRAPHS};
use crate::store::{poisoned, Store};
use crate::types::{FeatureRef, IngestReport};
use crate::util::{hash_path, validate_name};
use crate::{Error, Progress, Result};
use rocksdb::WriteBatch;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// The kinds of ingest that store a graph (`IngestRecord::kind`).
const GRAPH_INGESTS: [&str; 2] = ["graph", "attribute"];

impl Store {
    /// Ingests a circuit-tracer / Neuronpedia attribution graph JSON file under `name`.
    pub fn ingest_graph(
        &self,
        name: &str,
        path: &Path,
        progress: &dyn Progress,
    ) -> Result<IngestReport> {
        self.ensure_writable()?;
        validate_name("graph", name)?;
        let _writer = self.writer.lock().map_err(|_| poisoned())?;
        let started = Instant::now();
        self.refuse_graph_name(name)?;
        progress.start("reading graph", 0);
        let g = graph::json::read_circuit_tracer(path, name)?;
        progress.finish();
        let hash = hash_path(path)?;
        let items = g.nodes.len() as u64;
        self.store_graph(g, "graph", &path.display().to_string(), hash)?;
        Ok(IngestReport {
            kind: "graph".into(),
            path: path.display().to_string(),
            items,
            unit: "nodes".into(),
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    fn refuse_graph_name(&self, name: &str) -> Result<()> {
        if self.catalog().graphs.iter().any(|g| g.info.name == name) {
            return Err(Error::AlreadyExists {
                kind: "graph",
                name: name.into(),
            });
        }
        Ok(())
    }

    /// Validates and commits a graph in one synced batch (with the catalog that lists it).
    fn store_graph(&self, g: Graph, kind: &str, source: &str, hash: String) -> Result<GraphInfo> {
        let ingest_id = self.allocate_ingest_id()?;
        let mut catalog = self.catalog().clone();
        let id = catalog.next_graph_id;
        catalog.next_graph_id += 1;
        let mut batch = WriteBatch::default();
        graph::store::write_graph(&mut batch, self.cf(CF_GRAPHS), id, &g)?;
        let info = g.info();
        catalog.graphs.push(GraphEntry {
            id,
            info: info.clone(),
        });
        catalog.ingests.push(IngestRecord {
            id: ingest_id,
            kind: kind.into(),
            target: Some(g.name.clone()),
            path: source.into(),
            content_hash: hash,
            items: g.nodes.len() as u64,
        });
        self.commit_with_catalog(batch, catalog)?;
        // Validated at write: preparing it cannot fail; keep it for the first search.
        if let Ok(p) = Prepared::owned(g) {
            self.derived.insert(id, Arc::new(p))?;
        }
        Ok(info)
    }

    /// Deletes graph `name`: its records and its catalog entry go in one synced commit (readers
    /// see it entirely or not at all); the name is free again. `UnknownGraph` if there is none.
    pub fn drop_graph(&self, name: &str) -> Result<GraphInfo> {
        self.ensure_writable()?;
        let _writer = self.writer.lock().map_err(|_| poisoned())?;
        let entry = self.graph_entry(name)?;
        let mut catalog = self.catalog().clone();
        catalog.graphs.retain(|g| g.id != entry.id);
        // The ingest that stored it described this graph only.
        catalog.ingests.retain(|r| {
            !(GRAPH_INGESTS.contains(&r.kind.as_str()) && r.target.as_deref() == Some(name))
        });
        let mut batch = WriteBatch::default();
        graph::store::delete_graph(&mut batch, self.cf(CF_GRAPHS), entry.id);
        self.commit_with_catalog(batch, catalog)?;
        self.derived.remove::<Prepared<'static>>(entry.id)?;
        Ok(entry.info)
    }

    /// Every stored graph.
    pub fn graphs(&self) -> Result<Vec<GraphInfo>> {
        Ok(self
            .catalog()
            .graphs
            .iter()
            .map(|g| g.info.clone())
            .collect())
    }

    fn graph_entry(&self, name: &str) -> Result<GraphEntry> {
        let c = self.catalog();
        c.graphs
            .iter()
            .find(|g| g.info.name == name)
            .cloned()
            .ok_or_else(|| Error::UnknownGraph {
                name: name.into(),
                known: c.graphs.iter().map(|g| g.info.name.clone()).collect(),
            })
    }

    /// One graph's summary; `UnknownGraph` names the ones that exist.
    pub fn graph_info(&self, name: &str) -> Result<GraphInfo> {
        Ok(self.graph_entry(name)?.info)
    }

    /// A whole stored graph, read from the store (searches use the cached prepared form).
    pub fn graph(&self, name: &str) -> Result<Graph> {
        let id = self.graph_entry(name)?.id;
        graph::store::read_graph(&self.db, self.cf(CF_GRAPHS), id)
    }

    /// A stored graph prepared for search, built once per process and kept.
    fn prepared(&self, name: &str) -> Result<Arc<Prepared<'static>>> {
        let id = self.graph_entry(name)?.id;
        if let Some(p) = self.derived.get::<Prepared<'static>>(id)? {
            return Ok(p);
        }
        let p = Arc::new(Prepared::owned(self.graph(name)?)?);
        self.derived.insert(id, p.clone())?;
        Ok(p)
    }

    /// The best chains into a node (docs/ATTRIBUTION.md, "Chains: the definition").
    pub fn chains(&self, graph_name: &str, q: &ChainQuery) -> Result<Vec<Chain>> {
        self.prepared(graph_name)?
            .chains(q)
            .map_err(|e| name_graph(e, graph_name))
    }

    /// Total influence of every node on `target`, largest first.
    pub fn influence(
        &self,
        graph_name: &str,
        target: &str,
        limit: usize,
    ) -> Result<Vec<NodeInfluence>> {
        self.prepared(graph_name)?
            .influence(target, limit)
            .map_err(|e| name_graph(e, graph_name))
    }

    /// Direct-path attribution of a stored document's token into an output token, from the
    /// stored dictionaries and vocabulary matrix, stored as graph `name` (see docs/ATTRIBUTION.md).
    pub fn attribute(&self, doc: u32, pos: u32, token: &str, name: &str) -> Result<GraphInfo> {
        self.ensure_writable()?;
        validate_name("graph", name)?;
        let _writer = self.writer.lock().map_err(|_| poisoned())?;
        self.refuse_graph_name(name)?;
        let document = self.document(doc)?;
        if pos as usize >= document.tokens.len() {
            return Err(Error::PositionOutOfRange {
                doc: doc.into(),
                pos: pos.into(),
                len: document.tokens.len(),
            });
        }
        let vocab = self.vocab_matrix()?;
        let t = vocab
            .tokens
            .iter()
            .position(|s| s == token)
            .ok_or_else(|| {
                Error::InvalidArgument(format!("token {token:?} is not in the stored vocabulary"))
            })?;
        let w_u_col = vocab.matrix[t * vocab.d_model..(t + 1) * vocab.d_model].to_vec();
        let mut dicts = self.dictionaries();
        dicts.sort_by_key(|d| (d.layer.unwrap_or(u32::MAX), d.id));
        let active = self.features_at(doc, pos, None)?;
        let mut layers = Vec::new();
        for (i, d) in dicts.iter().enumerate() {
            let here: Vec<(u32, f32)> = active
                .iter()
                .filter(|a| a.feature.dict == d.name)
                .map(|a| (a.feature.index, a.value))
                .collect();
            if here.is_empty() {
                continue;
            }
            let dec = self.decoder(d)?;
            let w_enc = self.read_tensor(d.id, Tensor::WEnc)?;
            let d_in = d.d_in as usize;
            let d_sae = d.d_sae as usize;
            let mut w_dec_rows = Vec::with_capacity(here.len() * d_in);
            for (f, _) in &here {
                w_dec_rows.extend_from_slice(dec.raw_row(*f as usize));
            }
            let mut w_enc_cols = Vec::with_capacity(here.len() * d_in);
            for r in 0..d_in {
                w_enc_cols.extend(here.iter().map(|(f, _)| w_enc[r * d_sae + *f as usize]));
            }
            let labels = here
                .iter()
                .map(|(f, _)| self.label(&FeatureRef::new(&d.name, *f)))
                .collect::<Result<Vec<_>>>()?;
            layers.push(DirectLayer {
                dict: d.name.clone(),
                layer: d.layer.unwrap_or(i as u32),
                d_in,
                active: here,
                w_dec_rows,
                w_enc_cols,
                labels,
            });
        }
        let source = DirectSource {
            doc: doc.into(),
            pos,
            tokens: document.tokens.clone(),
        };
        let g = direct_path_graph(name, &layers, &w_u_col, token, &source)?;
        self.store_graph(
            g,
            "attribute",
            &format!("doc {doc} pos {pos} -> {token:?}"),
            String::new(),
        )
    }
}

/// Graph errors from `graph/` do not know the graph's name; fill it in.
fn name_graph(e: Error, graph: &str) -> Error {
    match e {
        Error::UnknownNode { node, .. } => Error::UnknownNode {
            graph: graph.into(),
            node,
        },
        other => other,
    }
}
