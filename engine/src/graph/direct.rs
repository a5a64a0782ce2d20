//! Direct-path attribution from stored dictionaries (docs/ATTRIBUTION.md, "Direct-path attribution").
//!
//! For one token position, with the features active there in each dictionary:
//! - edge (layer l feature f) → (layer l' > l feature g): `a_f · (W_dec_l[f] · W_enc_l'[:, g])`
//! - edge (layer l feature f) → target logit:          `a_f · (W_dec_l[f] · W_U[:, t])`
//!
//! This is a linear, single-position approximation: it ignores attention (other positions),
//! MLP / LayerNorm non-linearities, encoder biases and thresholds, and reconstruction errors.

use super::model::{Edge, Graph, Node};
use super::NodeKind;
use crate::{Error, Result};
use candle_core::{Device, Tensor};

/// The active features of one dictionary at the attributed position, with the weight rows and
/// columns the attribution needs (gathered by the caller from the stored dictionary).
#[derive(Debug, Clone, PartialEq)]
pub struct DirectLayer {
    /// Dictionary name (`L2`): node ids are `{dict}/{feature}`.
    pub dict: String,
    /// The model layer the dictionary reads; edges go from lower to strictly higher layers.
    pub layer: u32,
    /// Width of the residual stream (all layers must agree).
    pub d_in: usize,
    /// The active features and their activations `a_f`, in any order.
    pub active: Vec<(u32, f32)>,
    /// `active.len() × d_in`, row-major: row `i` is `W_dec[active[i].0]`.
    pub w_dec_rows: Vec<f32>,
    /// `d_in × active.len()`, row-major: column `i` is `W_enc[:, active[i].0]` (only the columns of
    /// the active features: edges only go to active features).
    pub w_enc_cols: Vec<f32>,
    /// A label per active feature (same order as `active`), or empty for no labels.
    pub labels: Vec<Option<String>>,
}

/// Where the attributed position comes from.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DirectSource {
    pub doc: u64,
    pub pos: u32,
    /// The document's tokens (may be empty when unknown); the graph's prompt is tokens `0..=pos`.
    pub tokens: Vec<String>,
}

/// The node id of the target logit of a direct-path graph: `logit " Austin"` (the token in
/// double quotes, as written).
pub fn logit_node_id(token: &str) -> String {
    format!("logit \"{token}\"")
}

/// Builds the direct-path graph `name` (origin `direct-path`) into the output token
/// `target_token`, whose unembedding column `W_U[:, t]` is `w_u_col` (length d_in).
/// Feature nodes are `{dict}/{feature}`, the target is [`logit_node_id`]. Edges of weight exactly
/// 0 are left out.
pub fn direct_path_graph(
    name: &str,
    layers: &[DirectLayer],
    w_u_col: &[f32],
    target_token: &str,
    source: &DirectSource,
) -> Result<Graph> {
    let d = match layers.first() {
        Some(l) => l.d_in,
        None => w_u_col.len(),
    };
    if w_u_col.len() != d {
        return Err(Error::Mismatch(format!(
            "the unembedding column of {target_token:?} has {} values, the dictionaries read d_in = {d}",
            w_u_col.len()
        )));
    }
    for l in layers {
        let n = l.active.len();
        if l.d_in != d {
            return Err(Error::Mismatch(format!(
                "dictionary '{}' has d_in {}, others {d}",
                l.dict, l.d_in
            )));
        }
        if l.w_dec_rows.len() != n * d {
            return Err(Error::Mismatch(format!(
                "dictionary '{}': {} decoder values given, {n} active features × d_in {d} = {} expected",
                l.dict,
                l.w_dec_rows.len(),
                n * d
            )));
        }
        if l.w_enc_cols.len() != n * d {
            return Err(Error::Mismatch(format!(
                "dictionary '{}': {} encoder values given, d_in {d} × {n} active features = {} expected",
                l.dict,
                l.w_enc_cols.len(),
                n * d
            )));
        }
        if !l.labels.is_empty() && l.labels.len() != n {
            return Err(Error::Mismatch(format!(
                "dictionary '{}': {} labels for {n} active features",
                l.dict,
                l.labels.len()
            )));
        }
        if let Some(&(f, a)) = l.active.iter().find(|(_, a)| !a.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "{}/{f} has a non-finite activation {a}",
                l.dict
            )));
        }
    }
    let (prompt, prompt_tokens) = if source.tokens.is_empty() {
        (None, Vec::new())
    } else {
        let len = source.tokens.len();
        if source.pos as usize >= len {
            return Err(Error::PositionOutOfRange {
                doc: source.doc,
                pos: source.pos as u64,
                len,
            });
        }
        let toks = source.tokens[..=source.pos as usize].to_vec();
        (Some(toks.concat()), toks)
    };

    // Nodes: every active feature, then the target logit.
    let mut nodes = Vec::new();
    let mut first = Vec::with_capacity(layers.len()); // index of each layer's first node
    for l in layers {
        first.push(nodes.len() as u32);
        for (i, &(f, a)) in l.active.iter().enumerate() {
            let mut n = Node::new(format!("{}/{f}", l.dict), NodeKind::Feature);
            n.layer = Some(l.layer as i64);
            n.ctx_idx = source.pos;
            n.feature = Some(f as i64);
            n.feature_index = Some(f as u64);
            n.activation = Some(a as f64);
            n.label = l
                .labels
                .get(i)
                .cloned()
                .flatten()
                .filter(|s| !s.trim().is_empty());
            nodes.push(n);
        }
    }
    let target = nodes.len() as u32;
    let mut t = Node::new(logit_node_id(target_token), NodeKind::Logit);
    t.layer = Some(layers.iter().map(|l| l.layer as i64 + 1).max().unwrap_or(0));
    t.ctx_idx = source.pos;
    t.token = Some(target_token.to_string());
    t.is_target = true;
    nodes.push(t);

    let dev = Device::Cpu;
    let cerr = |e: candle_core::Error| {
        Error::InvalidArgument(format!(
            "direct-path attribution: matrix product failed: {e}"
        ))
    };
    let decs: Vec<Option<Tensor>> = layers
        .iter()
        .map(|l| {
            if l.active.is_empty() || d == 0 {
                Ok(None)
            } else {
                Tensor::from_slice(&l.w_dec_rows, (l.active.len(), d), &dev).map(Some)
            }
        })
        .collect::<std::result::Result<_, _>>()
        .map_err(cerr)?;
    let mut edges = Vec::new();
    let wu = Tensor::from_slice(w_u_col, (d, 1), &dev).map_err(cerr)?;
    for (li, l) in layers.iter().enumerate() {
        let Some(dec) = &decs[li] else { continue };
        // Into every later layer's active features.
        for (mi, m) in layers.iter().enumerate() {
            if m.layer <= l.layer || m.active.is_empty() {
                continue;
            }
            let enc = Tensor::from_slice(&m.w_enc_cols, (d, m.active.len()), &dev).map_err(cerr)?;
            let prod: Vec<Vec<f32>> = dec.matmul(&enc).and_then(|p| p.to_vec2()).map_err(cerr)?;
            for (i, row) in prod.iter().enumerate() {
                let a = l.active[i].1 as f64;
                for (j, &dot) in row.iter().enumerate() {
                    let w = a * dot as f64;
                    if w != 0.0 {
                        edges.push(Edge {
                            source: first[li] + i as u32,
                            target: first[mi] + j as u32,
                            weight: w,
                        });
                    }
                }
            }
        }
        // Into the target logit.
        let prod: Vec<Vec<f32>> = dec.matmul(&wu).and_then(|p| p.to_vec2()).map_err(cerr)?;
        for (i, row) in prod.iter().enumerate() {
            let w = l.active[i].1 as f64 * row[0] as f64;
            if w != 0.0 {
                edges.push(Edge {
                    source: first[li] + i as u32,
                    target,
                    weight: w,
                });
            }
        }
    }
    let g = Graph {
        name: name.to_string(),
        origin: "direct-path".to_string(),
        prompt,
        prompt_tokens,
        nodes,
        edges,
    };
    g.check()
        .map_err(|m| Error::InvalidArgument(format!("direct-path graph '{name}': {m}")))?;
    Ok(g)
}
