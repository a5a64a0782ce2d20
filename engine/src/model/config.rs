//! A model's parsed configuration: what the runtime needs to build its forward pass, stored in
//! the catalog when a model is registered (no weights).

use serde::{Deserialize, Serialize};
use std::fmt;

/// The architectures saedb runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelArchitecture {
    /// Llama family (SmolLM2, Llama 2/3, TinyLlama …): RMSNorm, RoPE, gated SiLU MLP, GQA.
    Llama,
    /// BERT encoders (all-MiniLM …): post-LayerNorm, learned positions, bidirectional attention.
    Bert,
    /// Gemma 2: four RMSNorms a block, GELU-tanh gated MLP, soft-capping, sliding window.
    Gemma2,
    /// GPT-2: pre-LayerNorm, learned positions, fused QKV (`Conv1D`), GELU-tanh MLP.
    Gpt2,
}

impl ModelArchitecture {
    /// The names accepted in a HF `config.json`'s `model_type` or a GGUF's
    /// `general.architecture`.
    pub fn from_name(name: &str) -> Option<ModelArchitecture> {
        match name {
            "llama" => Some(ModelArchitecture::Llama),
            "bert" => Some(ModelArchitecture::Bert),
            "gemma2" => Some(ModelArchitecture::Gemma2),
            "gpt2" => Some(ModelArchitecture::Gpt2),
            _ => None,
        }
    }

    pub const SUPPORTED: &'static str =
        "llama (GGUF or safetensors), bert, gemma2, gpt2 (safetensors)";

    /// Whether the model predicts the next token (GENERATE, logits) or only encodes text.
    pub fn is_causal(self) -> bool {
        !matches!(self, ModelArchitecture::Bert)
    }
}

impl fmt::Display for ModelArchitecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ModelArchitecture::Llama => "llama",
            ModelArchitecture::Bert => "bert",
            ModelArchitecture::Gemma2 => "gemma2",
            ModelArchitecture::Gpt2 => "gpt2",
        })
    }
}

/// Everything the forward pass needs besides the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub architecture: ModelArchitecture,
    /// Transformer blocks.
    pub n_layers: usize,
    /// Width of the residual stream.
    pub d_model: usize,
    /// Hidden width of the MLP.
    pub d_mlp: usize,
    pub n_heads: usize,
    /// Key/value heads (grouped-query attention); `n_heads` when not grouped.
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub vocab_size: usize,
    /// Longest sequence the model accepts (positions).
    pub max_positions: usize,
    /// RMSNorm / LayerNorm epsilon.
    pub norm_eps: f64,
    /// RoPE base (Llama, Gemma 2).
    #[serde(default)]
    pub rope_theta: Option<f64>,
    /// The LM head is the token embedding.
    #[serde(default)]
    pub tied_embeddings: bool,
    /// Gemma 2: attention scores `c · tanh(s / c)`.
    #[serde(default)]
    pub attn_softcap: Option<f64>,
    /// Gemma 2: logits `c · tanh(l / c)`.
    #[serde(default)]
    pub final_softcap: Option<f64>,
    /// Gemma 2: window of the local-attention layers (every even layer).
    #[serde(default)]
    pub sliding_window: Option<usize>,
    /// Gemma 2: attention scale is `query_pre_attn_scalar^−½` instead of `head_dim^−½`.
    #[serde(default)]
    pub query_pre_attn_scalar: Option<f64>,
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    #[serde(default)]
    pub eos_token_id: Option<u32>,
}
