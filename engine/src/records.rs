//! Stored records: the types whose serialised bytes are the file format (docs/STORAGE.md),
//! private and apart from the public API types they are converted from and to. A public type
//! can gain a field without changing a byte on disk; a stored record changes only with the
//! format version.
//!
//! Two encodings live here: the catalog (`meta/catalog`, JSON) and documents (`docs`, bincode 2
//! standard configuration, fields in declaration order, no names). Keep every field's name,
//! order and type: `engine/tests/all/fixture_store.rs` opens a store written by an earlier build
//! and fails if they move.

use crate::catalog::{Catalog, GraphEntry, IngestRecord};
use crate::model::ModelInfo;
use crate::model::{ModelArchitecture, ModelConfig};
use crate::types::{
    Architecture, DictionaryInfo, Document, GraphInfo, LogitInfo, NodeKind, VocabularyInfo,
};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// `docs` value: bincode 2 (standard: varint integers, length-prefixed strings and vectors,
/// `Option` as a 0/1 byte) of these fields in this order.
#[derive(Serialize, Deserialize)]
struct StoredDocument {
    doc: u32,
    tokens: Vec<String>,
    token_ids: Vec<u32>,
    text: Option<String>,
    source: Option<String>,
}

pub(crate) fn encode_document(d: &Document) -> Result<Vec<u8>> {
    let stored = StoredDocument {
        doc: d.doc,
        tokens: d.tokens.clone(),
        token_ids: d.token_ids.clone(),
        text: d.text.clone(),
        source: d.source.clone(),
    };
    bincode::serde::encode_to_vec(&stored, bincode::config::standard())
        .map_err(|e| Error::Corrupt(format!("encoding document {}: {e}", d.doc)))
}

pub(crate) fn decode_document(bytes: &[u8], doc: u32) -> Result<Document> {
    let (d, used): (StoredDocument, usize) =
        bincode::serde::decode_from_slice(bytes, bincode::config::standard())
            .map_err(|e| Error::Corrupt(format!("document {doc}: {e}")))?;
    if used != bytes.len() {
        return Err(Error::Corrupt(format!(
            "document {doc}: {} trailing bytes",
            bytes.len() - used
        )));
    }
    Ok(Document {
        doc: d.doc,
        tokens: d.tokens,
        token_ids: d.token_ids,
        text: d.text,
        source: d.source,
    })
}

/// `meta/catalog` value: a JSON object with these fields.
#[derive(Serialize, Deserialize)]
struct StoredCatalog {
    next_dict_id: u32,
    next_graph_id: u32,
    dictionaries: Vec<StoredDictionary>,
    vocabulary: Option<StoredVocabulary>,
    graphs: Vec<StoredGraph>,
    ingests: Vec<StoredIngest>,
    documents: u64,
    tokens: u64,
    /// Absent in catalogs written before models could be registered: read as none.
    #[serde(default)]
    models: Vec<StoredModel>,
}

/// A registered model: where its files are and their content hashes at registration, and its
/// parsed configuration (never the weights).
#[derive(Serialize, Deserialize)]
struct StoredModel {
    name: String,
    path: String,
    content_hash: String,
    tokenizer: String,
    tokenizer_hash: String,
    config: StoredModelConfig,
}

#[derive(Serialize, Deserialize)]
struct StoredModelConfig {
    architecture: StoredModelArchitecture,
    n_layers: u64,
    d_model: u64,
    d_mlp: u64,
    n_heads: u64,
    n_kv_heads: u64,
    head_dim: u64,
    vocab_size: u64,
    max_positions: u64,
    norm_eps: f64,
    rope_theta: Option<f64>,
    tied_embeddings: bool,
    attn_softcap: Option<f64>,
    final_softcap: Option<f64>,
    sliding_window: Option<u64>,
    query_pre_attn_scalar: Option<f64>,
    bos_token_id: Option<u32>,
    eos_token_id: Option<u32>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum StoredModelArchitecture {
    Llama,
    Bert,
    Gemma2,
    Gpt2,
}

#[derive(Serialize, Deserialize)]
struct StoredDictionary {
    name: String,
    id: u32,
    d_in: u32,
    d_sae: u32,
    architecture: StoredArchitecture,
    k: Option<u32>,
    apply_b_dec_to_input: bool,
    hook: Option<String>,
    layer: Option<u32>,
    model: Option<String>,
    source_format: String,
    source_path: String,
    tokens_encoded: u64,
    nonzeros: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum StoredArchitecture {
    Relu,
    TopK,
    JumpRelu,
    GroupMax,
}

#[derive(Serialize, Deserialize)]
struct StoredVocabulary {
    tensor: String,
    source_path: String,
    n_vocab: u32,
    d_model: u32,
}

#[derive(Serialize, Deserialize)]
struct StoredGraph {
    id: u32,
    info: StoredGraphInfo,
}

#[derive(Serialize, Deserialize)]
struct StoredGraphInfo {
    name: String,
    prompt: Option<String>,
    prompt_tokens: Vec<String>,
    nodes: u64,
    edges: u64,
    nodes_by_kind: Vec<(StoredNodeKind, u64)>,
    edges_by_kind: Vec<(StoredNodeKind, StoredNodeKind, u64)>,
    logits: Vec<StoredLogit>,
    origin: String,
}

#[derive(Serialize, Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum StoredNodeKind {
    Embedding,
    Feature,
    Error,
    Logit,
}

#[derive(Serialize, Deserialize)]
struct StoredLogit {
    node: String,
    token: Option<String>,
    probability: Option<f64>,
    is_target: bool,
}

#[derive(Serialize, Deserialize)]
struct StoredIngest {
    id: u32,
    kind: String,
    target: Option<String>,
    path: String,
    content_hash: String,
    items: u64,
}

pub(crate) fn encode_catalog(c: &Catalog) -> Result<Vec<u8>> {
    let stored = StoredCatalog {
        next_dict_id: c.next_dict_id,
        next_graph_id: c.next_graph_id,
        dictionaries: c.dictionaries.iter().map(stored_dictionary).collect(),
        vocabulary: c.vocabulary.as_ref().map(|v| StoredVocabulary {
            tensor: v.tensor.clone(),
            source_path: v.source_path.clone(),
            n_vocab: v.n_vocab,
            d_model: v.d_model,
        }),
        graphs: c
            .graphs
            .iter()
            .map(|g| StoredGraph {
                id: g.id,
                info: stored_graph(&g.info),
            })
            .collect(),
        ingests: c
            .ingests
            .iter()
            .map(|r| StoredIngest {
                id: r.id,
                kind: r.kind.clone(),
                target: r.target.clone(),
                path: r.path.clone(),
                content_hash: r.content_hash.clone(),
                items: r.items,
            })
            .collect(),
        documents: c.documents,
        tokens: c.tokens,
        models: c.models.iter().map(stored_model).collect(),
    };
    serde_json::to_vec(&stored).map_err(|e| Error::Corrupt(format!("catalog: {e}")))
}

pub(crate) fn decode_catalog(bytes: &[u8]) -> Result<Catalog> {
    let c: StoredCatalog =
        serde_json::from_slice(bytes).map_err(|e| Error::Corrupt(format!("catalog: {e}")))?;
    Ok(Catalog {
        next_dict_id: c.next_dict_id,
        next_graph_id: c.next_graph_id,
        dictionaries: c.dictionaries.into_iter().map(dictionary_info).collect(),
        vocabulary: c.vocabulary.map(|v| VocabularyInfo {
            tensor: v.tensor,
            source_path: v.source_path,
            n_vocab: v.n_vocab,
            d_model: v.d_model,
        }),
        graphs: c
            .graphs
            .into_iter()
            .map(|g| GraphEntry {
                id: g.id,
                info: graph_info(g.info),
            })
            .collect(),
        ingests: c
            .ingests
            .into_iter()
            .map(|r| IngestRecord {
                id: r.id,
                kind: r.kind,
                target: r.target,
                path: r.path,
                content_hash: r.content_hash,
                items: r.items,
            })
            .collect(),
        documents: c.documents,
        tokens: c.tokens,
        models: c.models.into_iter().map(model_info).collect(),
    })
}

fn stored_model(m: &ModelInfo) -> StoredModel {
    let c = &m.config;
    StoredModel {
        name: m.name.clone(),
        path: m.path.clone(),
        content_hash: m.content_hash.clone(),
        tokenizer: m.tokenizer.clone(),
        tokenizer_hash: m.tokenizer_hash.clone(),
        config: StoredModelConfig {
            architecture: match c.architecture {
                ModelArchitecture::Llama => StoredModelArchitecture::Llama,
                ModelArchitecture::Bert => StoredModelArchitecture::Bert,
                ModelArchitecture::Gemma2 => StoredModelArchitecture::Gemma2,
                ModelArchitecture::Gpt2 => StoredModelArchitecture::Gpt2,
            },
            n_layers: c.n_layers as u64,
            d_model: c.d_model as u64,
            d_mlp: c.d_mlp as u64,
            n_heads: c.n_heads as u64,
            n_kv_heads: c.n_kv_heads as u64,
            head_dim: c.head_dim as u64,
            vocab_size: c.vocab_size as u64,
            max_positions: c.max_positions as u64,
            norm_eps: c.norm_eps,
            rope_theta: c.rope_theta,
            tied_embeddings: c.tied_embeddings,
            attn_softcap: c.attn_softcap,
            final_softcap: c.final_softcap,
            sliding_window: c.sliding_window.map(|w| w as u64),
            query_pre_attn_scalar: c.query_pre_attn_scalar,
            bos_token_id: c.bos_token_id,
            eos_token_id: c.eos_token_id,
        },
    }
}

fn model_info(m: StoredModel) -> ModelInfo {
    let c = m.config;
    ModelInfo {
        name: m.name,
        path: m.path,
        content_hash: m.content_hash,
        tokenizer: m.tokenizer,
        tokenizer_hash: m.tokenizer_hash,
        config: ModelConfig {
            architecture: match c.architecture {
                StoredModelArchitecture::Llama => ModelArchitecture::Llama,
                StoredModelArchitecture::Bert => ModelArchitecture::Bert,
                StoredModelArchitecture::Gemma2 => ModelArchitecture::Gemma2,
                StoredModelArchitecture::Gpt2 => ModelArchitecture::Gpt2,
            },
            n_layers: c.n_layers as usize,
            d_model: c.d_model as usize,
            d_mlp: c.d_mlp as usize,
            n_heads: c.n_heads as usize,
            n_kv_heads: c.n_kv_heads as usize,
            head_dim: c.head_dim as usize,
            vocab_size: c.vocab_size as usize,
            max_positions: c.max_positions as usize,
            norm_eps: c.norm_eps,
            rope_theta: c.rope_theta,
            tied_embeddings: c.tied_embeddings,
            attn_softcap: c.attn_softcap,
            final_softcap: c.final_softcap,
            sliding_window: c.sliding_window.map(|w| w as usize),
            query_pre_attn_scalar: c.query_pre_attn_scalar,
            bos_token_id: c.bos_token_id,
            eos_token_id: c.eos_token_id,
        },
    }
}

fn stored_dictionary(d: &DictionaryInfo) -> StoredDictionary {
    StoredDictionary {
        name: d.name.clone(),
        id: d.id,
        d_in: d.d_in,
        d_sae: d.d_sae,
        architecture: match d.architecture {
            Architecture::Relu => StoredArchitecture::Relu,
            Architecture::TopK => StoredArchitecture::TopK,
            Architecture::JumpRelu => StoredArchitecture::JumpRelu,
            Architecture::GroupMax => StoredArchitecture::GroupMax,
        },
        k: d.k,
        apply_b_dec_to_input: d.apply_b_dec_to_input,
        hook: d.hook.clone(),
        layer: d.layer,
        model: d.model.clone(),
        source_format: d.source_format.clone(),
        source_path: d.source_path.clone(),
        tokens_encoded: d.tokens_encoded,
        nonzeros: d.nonzeros,
    }
}

fn dictionary_info(d: StoredDictionary) -> DictionaryInfo {
    DictionaryInfo {
        name: d.name,
        id: d.id,
        d_in: d.d_in,
        d_sae: d.d_sae,
        architecture: match d.architecture {
            StoredArchitecture::Relu => Architecture::Relu,
            StoredArchitecture::TopK => Architecture::TopK,
            StoredArchitecture::JumpRelu => Architecture::JumpRelu,
            StoredArchitecture::GroupMax => Architecture::GroupMax,
        },
        k: d.k,
        apply_b_dec_to_input: d.apply_b_dec_to_input,
        hook: d.hook,
        layer: d.layer,
        model: d.model,
        source_format: d.source_format,
        source_path: d.source_path,
        tokens_encoded: d.tokens_encoded,
        nonzeros: d.nonzeros,
    }
}

fn stored_kind(k: NodeKind) -> StoredNodeKind {
    match k {
        NodeKind::Embedding => StoredNodeKind::Embedding,
        NodeKind::Feature => StoredNodeKind::Feature,
        NodeKind::Error => StoredNodeKind::Error,
        NodeKind::Logit => StoredNodeKind::Logit,
    }
}

fn node_kind(k: StoredNodeKind) -> NodeKind {
    match k {
        StoredNodeKind::Embedding => NodeKind::Embedding,
        StoredNodeKind::Feature => NodeKind::Feature,
        StoredNodeKind::Error => NodeKind::Error,
        StoredNodeKind::Logit => NodeKind::Logit,
    }
}

fn stored_graph(g: &GraphInfo) -> StoredGraphInfo {
    StoredGraphInfo {
        name: g.name.clone(),
        prompt: g.prompt.clone(),
        prompt_tokens: g.prompt_tokens.clone(),
        nodes: g.nodes,
        edges: g.edges,
        nodes_by_kind: g
            .nodes_by_kind
            .iter()
            .map(|&(k, n)| (stored_kind(k), n))
            .collect(),
        edges_by_kind: g
            .edges_by_kind
            .iter()
            .map(|&(a, b, n)| (stored_kind(a), stored_kind(b), n))
            .collect(),
        logits: g
            .logits
            .iter()
            .map(|l| StoredLogit {
                node: l.node.clone(),
                token: l.token.clone(),
                probability: l.probability,
                is_target: l.is_target,
            })
            .collect(),
        origin: g.origin.clone(),
    }
}

fn graph_info(g: StoredGraphInfo) -> GraphInfo {
    GraphInfo {
        name: g.name,
        prompt: g.prompt,
        prompt_tokens: g.prompt_tokens,
        nodes: g.nodes,
        edges: g.edges,
        nodes_by_kind: g
            .nodes_by_kind
            .into_iter()
            .map(|(k, n)| (node_kind(k), n))
            .collect(),
        edges_by_kind: g
            .edges_by_kind
            .into_iter()
            .map(|(a, b, n)| (node_kind(a), node_kind(b), n))
            .collect(),
        logits: g
            .logits
            .into_iter()
            .map(|l| LogitInfo {
                node: l.node,
                token: l.token,
                probability: l.probability,
                is_target: l.is_target,
            })
            .collect(),
        origin: g.origin,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes of a document, worked out by hand from bincode's standard configuration:
    /// varint integers (< 251: one byte), strings and vectors prefixed by their length.
    #[test]
    fn a_document_is_stored_byte_for_byte() {
        let d = Document {
            doc: 7,
            tokens: vec!["a".into(), "bc".into()],
            token_ids: vec![300, 2],
            text: Some("abc".into()),
            source: None,
        };
        let bytes = encode_document(&d).unwrap();
        let want = [
            7, // doc
            2, 1, b'a', 2, b'b', b'c', // tokens
            2, 251, 0x2C, 0x01, 2, // token_ids: 300 is 251 then u16 LE
            1, 3, b'a', b'b', b'c', // text: Some
            0,    // source: None
        ];
        assert_eq!(bytes, want);
        assert_eq!(decode_document(&bytes, 7).unwrap(), d);
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_document(&longer, 7).is_err());
    }

    /// The catalog's JSON field names, as stores on disk have them.
    #[test]
    fn the_catalog_keeps_its_field_names() {
        let json = br#"{"next_dict_id":1,"next_graph_id":0,"dictionaries":[{"name":"L2","id":0,
            "d_in":4,"d_sae":8,"architecture":"topk","k":2,"apply_b_dec_to_input":true,
            "hook":null,"layer":2,"model":null,"source_format":"saelens","source_path":"x",
            "tokens_encoded":3,"nonzeros":5}],"vocabulary":null,"graphs":[],"ingests":[{"id":1,
            "kind":"dictionary","target":"L2","path":"x","content_hash":"00","items":8}],
            "documents":0,"tokens":0}"#;
        let c = decode_catalog(json).unwrap();
        assert_eq!(c.dictionaries[0].architecture, Architecture::TopK);
        assert_eq!(c.dictionaries[0].k, Some(2));
        assert!(c.models.is_empty(), "a catalog from before models has none");
        let mut again: serde_json::Value =
            serde_json::from_slice(&encode_catalog(&c).unwrap()).unwrap();
        assert_eq!(again["models"], serde_json::json!([]));
        again.as_object_mut().unwrap().remove("models");
        let orig: serde_json::Value = serde_json::from_slice(json).unwrap();
        assert_eq!(again, orig);
    }

    /// A registered model's record, field by field as docs/STORAGE.md gives it.
    #[test]
    fn a_model_is_stored_with_its_configuration() {
        let json = br#"{"next_dict_id":0,"next_graph_id":0,"dictionaries":[],"vocabulary":null,
            "graphs":[],"ingests":[],"documents":0,"tokens":0,"models":[{"name":"m",
            "path":"/m.gguf","content_hash":"ab","tokenizer":"/t.json","tokenizer_hash":"cd",
            "config":{"architecture":"gemma2","n_layers":3,"d_model":32,"d_mlp":48,"n_heads":4,
            "n_kv_heads":2,"head_dim":16,"vocab_size":128,"max_positions":64,"norm_eps":1e-6,
            "rope_theta":10000.0,"tied_embeddings":true,"attn_softcap":50.0,
            "final_softcap":30.0,"sliding_window":8,"query_pre_attn_scalar":24.0,
            "bos_token_id":2,"eos_token_id":null}}]}"#;
        let c = decode_catalog(json).unwrap();
        let m = &c.models[0];
        assert_eq!(m.config.architecture, ModelArchitecture::Gemma2);
        assert_eq!(m.config.sliding_window, Some(8));
        assert_eq!(m.config.eos_token_id, None);
        assert_eq!(m.tokenizer_hash, "cd");
        let again: serde_json::Value =
            serde_json::from_slice(&encode_catalog(&c).unwrap()).unwrap();
        let orig: serde_json::Value = serde_json::from_slice(json).unwrap();
        assert_eq!(again, orig);
    }
}
