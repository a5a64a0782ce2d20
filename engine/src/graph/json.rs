//! circuit-tracer / Neuronpedia graph JSON, read as a stream.
//!
//! The file is never held in memory: a `serde_json::Deserializer` over a `BufReader` drives a
//! seed/visitor that walks the top-level object and the `nodes` / `links` arrays one element at a
//! time, turning each element into a compact [`Node`] or [`Edge`] at once. Memory is the graph
//! itself (about 16 bytes per link plus the nodes) and the node-id table.
//!
//! Accepted, per element:
//! - node: `node_id` (string, or an integer kept as its decimal text), `feature_type`, `ctx_idx`
//!   (required); `layer` (string or integer), `feature` (integer of any size up to 2^63, or null),
//!   `activation`, `influence`, `token_prob`, `is_target_logit`, `clerp` (optional, null allowed).
//! - link: `source`, `target` (node ids), `weight` (a finite number), all required.
//! - `metadata.prompt`, `metadata.prompt_tokens` (optional). Every other field is ignored.
//!
//! The top-level keys may come in any order (links before nodes is fine).

use super::model::{cantor_index, Edge, Graph, Node};
use super::NodeKind;
use crate::{Error, Result};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

/// Reads a circuit-tracer / Neuronpedia graph JSON file into a validated [`Graph`] named `name`
/// with origin `circuit-tracer`. Errors name the file, the element (`nodes[12]`, `links[40]`) and
/// the problem.
pub fn read_circuit_tracer(path: &Path, name: &str) -> Result<Graph> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let reader = BufReader::with_capacity(1 << 16, file);
    let mut st = State::default();
    let mut de = serde_json::Deserializer::from_reader(reader);
    let parsed = TopSeed { st: &mut st }
        .deserialize(&mut de)
        .and_then(|()| de.end());
    if let Err(e) = parsed {
        let msg = match (&st.where_, st.field, e.classify()) {
            (_, _, serde_json::error::Category::Io) => format!("could not be read: {e}"),
            (Some(w), Some(f), _) => format!("{w}, field \"{f}\": {e}"),
            (Some(w), None, _) => format!("{w}: {e}"),
            (None, _, _) => format!("not a circuit-tracer graph JSON: {e}"),
        };
        return Err(Error::bad_input(path, msg));
    }
    st.finish(name).map_err(|m| Error::bad_input(path, m))
}

/// Where the parser is, for error messages.
#[derive(Debug, Clone)]
enum Where {
    Metadata,
    Node(usize),
    Link(usize),
}

impl fmt::Display for Where {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Where::Metadata => write!(f, "in metadata"),
            Where::Node(i) => write!(f, "nodes[{i}]"),
            Where::Link(i) => write!(f, "links[{i}]"),
        }
    }
}

#[derive(Default)]
struct State {
    where_: Option<Where>,
    /// The field of the current element being read.
    field: Option<&'static str>,
    /// node id -> slot, in order of first mention (by a node or a link).
    ids: HashMap<String, u32>,
    /// slot -> its id (for messages).
    names: Vec<String>,
    /// slot -> the node read for it and its position in `nodes`.
    slots: Vec<Option<(usize, Node)>>,
    /// Edges between slots.
    edges: Vec<Edge>,
    nodes_seen: usize,
    have_nodes: bool,
    have_links: bool,
    have_metadata: bool,
    prompt: Option<String>,
    prompt_tokens: Vec<String>,
}

impl State {
    fn slot(&mut self, id: &str) -> u32 {
        if let Some(&s) = self.ids.get(id) {
            return s;
        }
        let s = self.slots.len() as u32;
        self.ids.insert(id.to_string(), s);
        self.names.push(id.to_string());
        self.slots.push(None);
        s
    }

    fn add_node(&mut self, index: usize, raw: RawNode) -> std::result::Result<(), String> {
        let RawNode {
            node_id,
            feature_type,
            ctx_idx,
            layer,
            feature,
            activation,
            influence,
            token_prob,
            is_target_logit,
            clerp,
        } = raw;
        let id = node_id.0;
        if id.is_empty() {
            return Err("node_id is empty".into());
        }
        let kind = kind_of(&feature_type)?;
        let slot = self.slot(&id) as usize;
        if let Some((first, _)) = &self.slots[slot] {
            return Err(format!("duplicate node_id '{id}' (also nodes[{first}])"));
        }
        let (layer, layer_name) = match layer.map(|l| l.0) {
            None => (None, None),
            Some(LayerValue::Int(l)) => (Some(l), None),
            Some(LayerValue::Text(s)) => match s.trim().parse::<i64>() {
                Ok(l) => (Some(l), None),
                Err(_) => (None, Some(s)),
            },
        };
        let feature = feature.and_then(|f| f.0);
        let feature_index = match (kind, feature, layer) {
            (NodeKind::Feature, Some(f), Some(l)) => cantor_index(f, l),
            _ => None,
        };
        let label = clerp.filter(|c| !c.trim().is_empty());
        let token = match kind {
            NodeKind::Logit => label.as_deref().and_then(logit_token_from_clerp),
            _ => None, // embeddings: from metadata.prompt_tokens, once the metadata is known
        };
        let node = Node {
            id,
            kind,
            layer,
            layer_name,
            ctx_idx,
            feature,
            feature_index,
            token,
            activation: finite_opt(activation, "activation")?,
            influence: finite_opt(influence, "influence")?,
            probability: if kind == NodeKind::Logit {
                finite_opt(token_prob, "token_prob")?
            } else {
                None
            },
            is_target: is_target_logit.unwrap_or(false),
            label,
        };
        self.slots[slot] = Some((index, node));
        self.nodes_seen += 1;
        Ok(())
    }

    fn finish(self, name: &str) -> std::result::Result<Graph, String> {
        if !self.have_nodes {
            return Err("no \"nodes\" array: not a circuit-tracer graph JSON".into());
        }
        if !self.have_links {
            return Err("no \"links\" array: not a circuit-tracer graph JSON".into());
        }
        // Dangling references: a slot mentioned by a link but never defined by a node.
        if let Some(s) = self.slots.iter().position(|x| x.is_none()) {
            let link = self
                .edges
                .iter()
                .position(|e| e.source as usize == s || e.target as usize == s);
            let role = link.map(|i| {
                if self.edges[i].source as usize == s {
                    "source"
                } else {
                    "target"
                }
            });
            return Err(match (link, role) {
                (Some(i), Some(r)) => format!(
                    "links[{i}]: {r} '{}' is not a node of the graph",
                    self.names[s]
                ),
                _ => format!("node '{}' is referenced but not defined", self.names[s]),
            });
        }
        // Slots are in order of first mention; nodes go in file order.
        let mut order: Vec<(usize, usize)> = self
            .slots
            .iter()
            .enumerate()
            .map(|(s, x)| (x.as_ref().map(|(i, _)| *i).unwrap_or(usize::MAX), s))
            .collect();
        order.sort_unstable();
        let mut remap = vec![0u32; self.slots.len()];
        for (new, &(_, s)) in order.iter().enumerate() {
            remap[s] = new as u32;
        }
        let mut slots = self.slots;
        let mut nodes = Vec::with_capacity(slots.len());
        for &(_, s) in &order {
            if let Some((_, n)) = slots[s].take() {
                nodes.push(n);
            }
        }
        let mut edges = self.edges;
        for e in &mut edges {
            e.source = remap[e.source as usize];
            e.target = remap[e.target as usize];
        }
        for n in &mut nodes {
            if n.kind == NodeKind::Embedding && n.token.is_none() {
                n.token = self.prompt_tokens.get(n.ctx_idx as usize).cloned();
            }
        }
        let g = Graph {
            name: name.to_string(),
            origin: "circuit-tracer".to_string(),
            prompt: self.prompt,
            prompt_tokens: self.prompt_tokens,
            nodes,
            edges,
        };
        g.check()?;
        Ok(g)
    }
}

fn finite_opt(v: Option<f64>, field: &str) -> std::result::Result<Option<f64>, String> {
    match v {
        Some(x) if !x.is_finite() => Err(format!("{field} is not a finite number")),
        _ => Ok(v),
    }
}

/// The node kind of a circuit-tracer `feature_type`. Anything that is not an embedding, a logit
/// or an error node is a feature (circuit-tracer writes "cross layer transcoder"; other producers
/// write "per layer transcoder", "lorsa", ...).
fn kind_of(feature_type: &str) -> std::result::Result<NodeKind, String> {
    let t = feature_type.trim().to_ascii_lowercase();
    if t.is_empty() {
        return Err("feature_type is empty".into());
    }
    Ok(if t.contains("error") {
        NodeKind::Error
    } else if t.contains("embedding") {
        NodeKind::Embedding
    } else if t.contains("logit") {
        NodeKind::Logit
    } else {
        NodeKind::Feature
    })
}

/// The token of a logit clerp `Output " Austin" (p=0.332)`.
pub(crate) fn logit_token_from_clerp(clerp: &str) -> Option<String> {
    let rest = clerp
        .trim()
        .strip_prefix("Output")?
        .trim_start()
        .strip_prefix('"')?;
    let end = rest.rfind("\" (p=").or_else(|| rest.rfind('"'))?;
    Some(rest[..end].to_string())
}

// ---------------------------------------------------------------- top level

struct TopSeed<'a> {
    st: &'a mut State,
}

impl<'de> DeserializeSeed<'de> for TopSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object with \"metadata\", \"nodes\" and \"links\"")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "metadata" => {
                    if self.st.have_metadata {
                        return Err(de::Error::custom("\"metadata\" appears twice"));
                    }
                    self.st.have_metadata = true;
                    self.st.where_ = Some(Where::Metadata);
                    map.next_value_seed(MetaSeed { st: self.st })?;
                }
                "nodes" => {
                    if self.st.have_nodes {
                        return Err(de::Error::custom("\"nodes\" appears twice"));
                    }
                    self.st.have_nodes = true;
                    map.next_value_seed(NodesSeed { st: self.st })?;
                }
                "links" => {
                    if self.st.have_links {
                        return Err(de::Error::custom("\"links\" appears twice"));
                    }
                    self.st.have_links = true;
                    map.next_value_seed(LinksSeed { st: self.st })?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            self.st.where_ = None;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- metadata

struct MetaSeed<'a> {
    st: &'a mut State,
}

impl<'de> DeserializeSeed<'de> for MetaSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MetaSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a metadata object")
    }
    fn visit_unit<E: de::Error>(self) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "prompt" => self.st.prompt = map.next_value::<Option<String>>()?,
                "prompt_tokens" => {
                    self.st.prompt_tokens =
                        map.next_value::<Option<Vec<String>>>()?.unwrap_or_default()
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- nodes

struct NodesSeed<'a> {
    st: &'a mut State,
}

impl<'de> DeserializeSeed<'de> for NodesSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for NodesSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of nodes")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        let mut i = 0usize;
        loop {
            self.st.where_ = Some(Where::Node(i));
            match seq.next_element_seed(NodeSeed { st: &mut *self.st })? {
                Some(raw) => self.st.add_node(i, raw).map_err(de::Error::custom)?,
                None => break,
            }
            i += 1;
        }
        Ok(())
    }
}

/// One node element, as read (before it becomes a [`Node`]).
struct RawNode {
    node_id: NodeId,
    feature_type: String,
    ctx_idx: u32,
    layer: Option<Layer>,
    feature: Option<Feature>,
    activation: Option<f64>,
    influence: Option<f64>,
    token_prob: Option<f64>,
    is_target_logit: Option<bool>,
    clerp: Option<String>,
}

struct NodeSeed<'a> {
    st: &'a mut State,
}

impl<'de> DeserializeSeed<'de> for NodeSeed<'_> {
    type Value = RawNode;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<RawNode, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for NodeSeed<'_> {
    type Value = RawNode;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a node object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<RawNode, A::Error> {
        let (mut node_id, mut feature_type, mut ctx_idx) = (None, None, None);
        let (mut layer, mut feature, mut activation, mut influence) = (None, None, None, None);
        let (mut token_prob, mut is_target_logit, mut clerp) = (None, None, None);
        while let Some(key) = map.next_key::<NodeKey>()? {
            self.st.field = Some(key.name());
            match key {
                NodeKey::NodeId => node_id = Some(map.next_value::<NodeId>()?),
                NodeKey::FeatureType => feature_type = Some(map.next_value::<String>()?),
                NodeKey::CtxIdx => ctx_idx = Some(map.next_value::<u32>()?),
                NodeKey::Layer => layer = map.next_value::<Option<Layer>>()?,
                NodeKey::Feature => feature = map.next_value::<Option<Feature>>()?,
                NodeKey::Activation => activation = map.next_value::<Option<f64>>()?,
                NodeKey::Influence => influence = map.next_value::<Option<f64>>()?,
                NodeKey::TokenProb => token_prob = map.next_value::<Option<f64>>()?,
                NodeKey::IsTargetLogit => is_target_logit = map.next_value::<Option<bool>>()?,
                NodeKey::Clerp => clerp = map.next_value::<Option<String>>()?,
                NodeKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            self.st.field = None;
        }
        Ok(RawNode {
            node_id: node_id.ok_or_else(|| de::Error::missing_field("node_id"))?,
            feature_type: feature_type.ok_or_else(|| de::Error::missing_field("feature_type"))?,
            ctx_idx: ctx_idx.ok_or_else(|| de::Error::missing_field("ctx_idx"))?,
            layer,
            feature,
            activation,
            influence,
            token_prob,
            is_target_logit,
            clerp,
        })
    }
}

#[derive(Clone, Copy)]
enum NodeKey {
    NodeId,
    FeatureType,
    CtxIdx,
    Layer,
    Feature,
    Activation,
    Influence,
    TokenProb,
    IsTargetLogit,
    Clerp,
    Other,
}

impl NodeKey {
    fn name(self) -> &'static str {
        match self {
            NodeKey::NodeId => "node_id",
            NodeKey::FeatureType => "feature_type",
            NodeKey::CtxIdx => "ctx_idx",
            NodeKey::Layer => "layer",
            NodeKey::Feature => "feature",
            NodeKey::Activation => "activation",
            NodeKey::Influence => "influence",
            NodeKey::TokenProb => "token_prob",
            NodeKey::IsTargetLogit => "is_target_logit",
            NodeKey::Clerp => "clerp",
            NodeKey::Other => "(ignored)",
        }
    }
}

impl<'de> Deserialize<'de> for NodeKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = NodeKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<NodeKey, E> {
                Ok(match v {
                    "node_id" => NodeKey::NodeId,
                    "feature_type" => NodeKey::FeatureType,
                    "ctx_idx" => NodeKey::CtxIdx,
                    "layer" => NodeKey::Layer,
                    "feature" => NodeKey::Feature,
                    "activation" => NodeKey::Activation,
                    "influence" => NodeKey::Influence,
                    "token_prob" => NodeKey::TokenProb,
                    "is_target_logit" => NodeKey::IsTargetLogit,
                    "clerp" => NodeKey::Clerp,
                    _ => NodeKey::Other,
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

/// A node id: a string, or an integer kept as its decimal text.
struct NodeId(String);

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = NodeId;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a node id (a string)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<NodeId, E> {
                Ok(NodeId(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<NodeId, E> {
                Ok(NodeId(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<NodeId, E> {
                Ok(NodeId(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<NodeId, E> {
                Ok(NodeId(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

enum LayerValue {
    Int(i64),
    Text(String),
}

/// `layer`: a string (`"12"`, `"E"`) or an integer.
struct Layer(LayerValue);

impl<'de> Deserialize<'de> for Layer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Layer;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a layer (a string or an integer)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Layer, E> {
                Ok(Layer(LayerValue::Text(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Layer, E> {
                Ok(Layer(LayerValue::Int(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Layer, E> {
                i64::try_from(v)
                    .map(|v| Layer(LayerValue::Int(v)))
                    .map_err(|_| E::custom(format!("layer {v} is too large")))
            }
        }
        d.deserialize_any(V)
    }
}

/// `feature`: an integer (up to 2^63 - 1) or null; a float with an integral value is accepted.
struct Feature(Option<i64>);

impl<'de> Deserialize<'de> for Feature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Feature;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a feature number (an integer) or null")
            }
            fn visit_unit<E: de::Error>(self) -> std::result::Result<Feature, E> {
                Ok(Feature(None))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Feature, E> {
                Ok(Feature(Some(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Feature, E> {
                i64::try_from(v)
                    .map(|v| Feature(Some(v)))
                    .map_err(|_| E::custom(format!("feature {v} is too large (at most 2^63 - 1)")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Feature, E> {
                if v.is_finite() && v.fract() == 0.0 && v.abs() < 9.0e15 {
                    Ok(Feature(Some(v as i64)))
                } else {
                    Err(E::custom(format!("feature {v} is not an integer")))
                }
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------- links

struct LinksSeed<'a> {
    st: &'a mut State,
}

impl<'de> DeserializeSeed<'de> for LinksSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for LinksSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of links")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        let mut i = 0usize;
        loop {
            self.st.where_ = Some(Where::Link(i));
            match seq.next_element_seed(LinkSeed { st: self.st })? {
                Some(e) => self.st.edges.push(e),
                None => break,
            }
            i += 1;
        }
        Ok(())
    }
}

struct LinkSeed<'a> {
    st: &'a mut State,
}

impl<'de> DeserializeSeed<'de> for LinkSeed<'_> {
    type Value = Edge;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Edge, D::Error> {
        d.deserialize_map(self)
    }
}

enum LinkKey {
    Source,
    Target,
    Weight,
    Other,
}

impl<'de> Deserialize<'de> for LinkKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = LinkKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<LinkKey, E> {
                Ok(match v {
                    "source" => LinkKey::Source,
                    "target" => LinkKey::Target,
                    "weight" => LinkKey::Weight,
                    _ => LinkKey::Other,
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

impl<'de> Visitor<'de> for LinkSeed<'_> {
    type Value = Edge;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a link object {\"source\", \"target\", \"weight\"}")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Edge, A::Error> {
        let (mut source, mut target, mut weight) = (None, None, None);
        while let Some(key) = map.next_key::<LinkKey>()? {
            self.st.field = match key {
                LinkKey::Source => Some("source"),
                LinkKey::Target => Some("target"),
                LinkKey::Weight => Some("weight"),
                LinkKey::Other => None,
            };
            match key {
                LinkKey::Source => {
                    source = Some(map.next_value_seed(IdSeed { st: &mut *self.st })?)
                }
                LinkKey::Target => {
                    target = Some(map.next_value_seed(IdSeed { st: &mut *self.st })?)
                }
                LinkKey::Weight => weight = Some(map.next_value::<Weight>()?.0),
                LinkKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            self.st.field = None;
        }
        let source = source.ok_or_else(|| de::Error::missing_field("source"))?;
        let target = target.ok_or_else(|| de::Error::missing_field("target"))?;
        let weight = weight.ok_or_else(|| de::Error::missing_field("weight"))?;
        Ok(Edge {
            source,
            target,
            weight,
        })
    }
}

/// A node id in a link, looked up (or given a slot) without allocating when already known.
struct IdSeed<'a> {
    st: &'a mut State,
}

impl<'de> DeserializeSeed<'de> for IdSeed<'_> {
    type Value = u32;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<u32, D::Error> {
        d.deserialize_any(self)
    }
}

impl Visitor<'_> for IdSeed<'_> {
    type Value = u32;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a node id (a string)")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<u32, E> {
        if v.is_empty() {
            return Err(E::custom("empty node id"));
        }
        Ok(self.st.slot(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<u32, E> {
        Ok(self.st.slot(&v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<u32, E> {
        Ok(self.st.slot(&v.to_string()))
    }
}

/// A link weight: a finite number. Strings (`"NaN"`, `"inf"`) are rejected with a clear message.
struct Weight(f64);

impl<'de> Deserialize<'de> for Weight {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Weight;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a finite number")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Weight, E> {
                if v.is_finite() {
                    Ok(Weight(v))
                } else {
                    Err(E::custom(format!("weight {v} is not a finite number")))
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Weight, E> {
                Ok(Weight(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Weight, E> {
                Ok(Weight(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Weight, E> {
                Err(E::custom(format!(
                    "weight is the string {v:?}, not a finite number"
                )))
            }
            fn visit_unit<E: de::Error>(self) -> std::result::Result<Weight, E> {
                Err(E::custom("weight is null, not a finite number"))
            }
        }
        d.deserialize_any(V)
    }
}
