//! Reading a model's weights into f32 tensors by HF name: GGUF files (every tensor dequantized
//! to f32 once, at load) and HF safetensors folders (one or several shards, any float dtype).

use super::config::{ModelArchitecture, ModelConfig};
use super::ops::Linear;
use super::tensor_err;
use crate::{Error, Result};
use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Named f32 tensors of one model, taken out one by one while the forward pass is built.
pub(crate) struct Weights {
    path: PathBuf,
    tensors: HashMap<String, Tensor>,
}

/// The seven bias-free projections of a Llama-style block (Llama, Gemma 2), under HF's names
/// `{prefix}.self_attn.{q,k,v,o}_proj.weight` and `{prefix}.mlp.{gate,up,down}_proj.weight`.
pub(crate) struct Projections {
    pub(crate) q: Linear,
    pub(crate) k: Linear,
    pub(crate) v: Linear,
    pub(crate) o: Linear,
    pub(crate) gate: Linear,
    pub(crate) up: Linear,
    pub(crate) down: Linear,
}

impl Weights {
    /// A bias-free `[out, in]` weight as a [`Linear`], its shape checked.
    pub(crate) fn linear(&mut self, name: &str, out: usize, inp: usize) -> Result<Linear> {
        let t = self.take_shaped(name, &[out, inp])?;
        Linear::from_out_in(t, None).map_err(tensor_err)
    }

    /// The attention and MLP projections of block `prefix` (e.g. `model.layers.3`).
    pub(crate) fn projections(&mut self, prefix: &str, cfg: &ModelConfig) -> Result<Projections> {
        let (d, q, kv) = (
            cfg.d_model,
            cfg.n_heads * cfg.head_dim,
            cfg.n_kv_heads * cfg.head_dim,
        );
        Ok(Projections {
            q: self.linear(&format!("{prefix}.self_attn.q_proj.weight"), q, d)?,
            k: self.linear(&format!("{prefix}.self_attn.k_proj.weight"), kv, d)?,
            v: self.linear(&format!("{prefix}.self_attn.v_proj.weight"), kv, d)?,
            o: self.linear(&format!("{prefix}.self_attn.o_proj.weight"), d, q)?,
            gate: self.linear(&format!("{prefix}.mlp.gate_proj.weight"), cfg.d_mlp, d)?,
            up: self.linear(&format!("{prefix}.mlp.up_proj.weight"), cfg.d_mlp, d)?,
            down: self.linear(&format!("{prefix}.mlp.down_proj.weight"), d, cfg.d_mlp)?,
        })
    }
    /// The tensor `name`, or an error that names the file and the tensor.
    pub(crate) fn take(&mut self, name: &str) -> Result<Tensor> {
        self.tensors.remove(name).ok_or_else(|| {
            Error::bad_input(&self.path, format!("the model has no tensor '{name}'"))
        })
    }

    /// The tensor `name` when present (an optional bias, an untied LM head).
    pub(crate) fn take_opt(&mut self, name: &str) -> Option<Tensor> {
        self.tensors.remove(name)
    }

    /// `take` with an expected shape checked.
    pub(crate) fn take_shaped(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let t = self.take(name)?;
        if t.dims() != shape {
            return Err(Error::bad_input(
                &self.path,
                format!(
                    "tensor '{name}' has shape {:?}, expected {shape:?}",
                    t.dims()
                ),
            ));
        }
        Ok(t)
    }
}

/// A model file or folder: its configuration and its weights.
pub(crate) fn read(path: &Path) -> Result<(ModelConfig, Weights)> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        read_safetensors_dir(path)
    } else if path.extension().is_some_and(|e| e == "gguf") {
        read_gguf(path)
    } else {
        Err(Error::bad_input(
            path,
            "not a model saedb reads: give a .gguf file or a folder with config.json and *.safetensors",
        ))
    }
}

/// Only the configuration (registration parses it without loading weights).
pub(crate) fn read_config(path: &Path) -> Result<ModelConfig> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        hf_config(&path.join("config.json"))
    } else if path.extension().is_some_and(|e| e == "gguf") {
        let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let content = gguf_file::Content::read(&mut file)
            .map_err(|e| Error::bad_input(path, format!("not a readable GGUF file: {e}")))?;
        gguf_config(path, &content)
    } else {
        read(path).map(|(c, _)| c)
    }
}

fn read_gguf(path: &Path) -> Result<(ModelConfig, Weights)> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let content = gguf_file::Content::read(&mut file)
        .map_err(|e| Error::bad_input(path, format!("not a readable GGUF file: {e}")))?;
    let config = gguf_config(path, &content)?;
    let mut tensors = HashMap::new();
    for name in content.tensor_infos.keys() {
        let q = content
            .tensor(&mut file, name, &Device::Cpu)
            .map_err(|e| Error::bad_input(path, format!("tensor '{name}': {e}")))?;
        let t = q
            .dequantize(&Device::Cpu)
            .map_err(|e| Error::bad_input(path, format!("dequantizing '{name}': {e}")))?;
        let (hf_name, t) = gguf_to_hf(name, t, &config).map_err(tensor_err)?;
        tensors.insert(hf_name, t);
    }
    Ok((
        config,
        Weights {
            path: path.to_path_buf(),
            tensors,
        },
    ))
}

fn gguf_config(path: &Path, content: &gguf_file::Content) -> Result<ModelConfig> {
    let md = &content.metadata;
    let arch = md
        .get("general.architecture")
        .and_then(|v| v.to_string().ok())
        .ok_or_else(|| Error::bad_input(path, "the GGUF has no general.architecture"))?;
    if arch != "llama" {
        return Err(Error::bad_input(
            path,
            format!(
                "unknown architecture '{arch}': saedb runs {}",
                ModelArchitecture::SUPPORTED
            ),
        ));
    }
    let get = |key: &str| -> Result<&gguf_file::Value> {
        md.get(&format!("llama.{key}"))
            .ok_or_else(|| Error::bad_input(path, format!("the GGUF has no llama.{key}")))
    };
    let int = |key: &str| -> Result<usize> {
        let v = get(key)?;
        v.to_u32()
            .map(|n| n as usize)
            .or_else(|_| v.to_u64().map(|n| n as usize))
            .map_err(|e| Error::bad_input(path, format!("llama.{key}: {e}")))
    };
    let float = |key: &str| -> Result<f64> {
        get(key)?
            .to_f32()
            .map(f64::from)
            .map_err(|e| Error::bad_input(path, format!("llama.{key}: {e}")))
    };
    let d_model = int("embedding_length")?;
    let n_heads = int("attention.head_count")?;
    let vocab_size = content
        .tensor_infos
        .get("token_embd.weight")
        .map(|t| t.shape.dims()[0])
        .ok_or_else(|| Error::bad_input(path, "the GGUF has no token_embd.weight"))?;
    let token = |key: &str| md.get(key).and_then(|v| v.to_u32().ok());
    Ok(ModelConfig {
        architecture: ModelArchitecture::Llama,
        n_layers: int("block_count")?,
        d_model,
        d_mlp: int("feed_forward_length")?,
        n_heads,
        n_kv_heads: int("attention.head_count_kv").unwrap_or(n_heads),
        head_dim: d_model / n_heads,
        vocab_size,
        max_positions: int("context_length")?,
        norm_eps: float("attention.layer_norm_rms_epsilon")?,
        rope_theta: Some(float("rope.freq_base").unwrap_or(10_000.0)),
        tied_embeddings: !content.tensor_infos.contains_key("output.weight"),
        attn_softcap: None,
        final_softcap: None,
        sliding_window: None,
        query_pre_attn_scalar: None,
        bos_token_id: token("tokenizer.ggml.bos_token_id"),
        eos_token_id: token("tokenizer.ggml.eos_token_id"),
    })
}

/// A GGUF tensor under its HF Llama name. llama.cpp's converter permutes the rows of `attn_q` and
/// `attn_k` per head for its interleaved RoPE: undone here, so one rotate-half RoPE serves GGUF
/// and safetensors alike.
fn gguf_to_hf(name: &str, t: Tensor, c: &ModelConfig) -> candle_core::Result<(String, Tensor)> {
    match name {
        "token_embd.weight" => return Ok(("model.embed_tokens.weight".into(), t)),
        "output_norm.weight" => return Ok(("model.norm.weight".into(), t)),
        "output.weight" => return Ok(("lm_head.weight".into(), t)),
        _ => {}
    }
    let Some(rest) = name.strip_prefix("blk.") else {
        return Ok((name.to_string(), t));
    };
    let Some((layer, part)) = rest.split_once('.') else {
        return Ok((name.to_string(), t));
    };
    let hf = match part {
        "attn_norm.weight" => "input_layernorm.weight",
        "ffn_norm.weight" => "post_attention_layernorm.weight",
        "attn_q.weight" => "self_attn.q_proj.weight",
        "attn_k.weight" => "self_attn.k_proj.weight",
        "attn_v.weight" => "self_attn.v_proj.weight",
        "attn_output.weight" => "self_attn.o_proj.weight",
        "ffn_gate.weight" => "mlp.gate_proj.weight",
        "ffn_up.weight" => "mlp.up_proj.weight",
        "ffn_down.weight" => "mlp.down_proj.weight",
        _ => return Ok((name.to_string(), t)),
    };
    let t = match part {
        "attn_q.weight" => unpermute(&t, c.n_heads, c.head_dim)?,
        "attn_k.weight" => unpermute(&t, c.n_kv_heads, c.head_dim)?,
        _ => t,
    };
    Ok((format!("model.layers.{layer}.{hf}"), t))
}

/// Per head, rows ordered (head_dim/2, 2) → (2, head_dim/2).
fn unpermute(w: &Tensor, heads: usize, head_dim: usize) -> candle_core::Result<Tensor> {
    let d_in = w.dim(1)?;
    w.reshape((heads, head_dim / 2, 2, d_in))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((heads * head_dim, d_in))
}

fn read_safetensors_dir(dir: &Path) -> Result<(ModelConfig, Weights)> {
    let config = hf_config(&dir.join("config.json"))?;
    let mut shards: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    shards.sort();
    if shards.is_empty() {
        return Err(Error::bad_input(
            dir,
            "the folder holds no *.safetensors file",
        ));
    }
    let mut tensors = HashMap::new();
    for shard in &shards {
        let loaded = candle_core::safetensors::load(shard, &Device::Cpu).map_err(|e| {
            Error::bad_input(shard, format!("not a readable safetensors file: {e}"))
        })?;
        for (name, t) in loaded {
            if !t.dtype().is_float() {
                continue; // position_ids and other integer buffers
            }
            let t = t.to_dtype(DType::F32).map_err(tensor_err)?;
            // Some checkpoints prefix every name with the model class (bert., transformer.).
            tensors.insert(name, t);
        }
    }
    Ok((
        config,
        Weights {
            path: dir.to_path_buf(),
            tensors,
        },
    ))
}

/// A HF `config.json`.
fn hf_config(path: &Path) -> Result<ModelConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| Error::bad_input(path, format!("not valid JSON: {e}")))?;
    let model_type = v
        .get("model_type")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::bad_input(path, "config.json has no model_type"))?;
    let architecture = ModelArchitecture::from_name(model_type).ok_or_else(|| {
        Error::bad_input(
            path,
            format!(
                "unknown architecture '{model_type}': saedb runs {}",
                ModelArchitecture::SUPPORTED
            ),
        )
    })?;
    let int = |keys: &[&str]| -> Result<usize> {
        keys.iter()
            .find_map(|k| v.get(*k).and_then(Value::as_u64))
            .map(|n| n as usize)
            .ok_or_else(|| Error::bad_input(path, format!("config.json has no {}", keys[0])))
    };
    let opt_int = |key: &str| v.get(key).and_then(Value::as_u64).map(|n| n as usize);
    let opt_float = |key: &str| v.get(key).and_then(Value::as_f64);
    let d_model = int(&["hidden_size", "n_embd"])?;
    let n_heads = int(&["num_attention_heads", "n_head"])?;
    let head_dim = opt_int("head_dim").unwrap_or(d_model / n_heads);
    let d_mlp = match architecture {
        ModelArchitecture::Gpt2 => opt_int("n_inner").unwrap_or(4 * d_model),
        _ => int(&["intermediate_size"])?,
    };
    let norm_eps = match architecture {
        ModelArchitecture::Bert => opt_float("layer_norm_eps").unwrap_or(1e-12),
        ModelArchitecture::Gpt2 => opt_float("layer_norm_epsilon").unwrap_or(1e-5),
        _ => opt_float("rms_norm_eps").unwrap_or(1e-6),
    };
    let token = |key: &str| v.get(key).and_then(Value::as_u64).map(|n| n as u32);
    Ok(ModelConfig {
        architecture,
        n_layers: int(&["num_hidden_layers", "n_layer"])?,
        d_model,
        d_mlp,
        n_heads,
        n_kv_heads: opt_int("num_key_value_heads").unwrap_or(n_heads),
        head_dim,
        vocab_size: int(&["vocab_size"])?,
        max_positions: int(&["max_position_embeddings", "n_positions"])?,
        norm_eps,
        rope_theta: match architecture {
            ModelArchitecture::Llama | ModelArchitecture::Gemma2 => Some(
                opt_float("rope_theta")
                    .or_else(|| {
                        // transformers 5 nests it: "rope_parameters": {"rope_theta": …}
                        v.get("rope_parameters")
                            .and_then(|r| r.get("rope_theta"))
                            .and_then(Value::as_f64)
                    })
                    .unwrap_or(10_000.0),
            ),
            _ => None,
        },
        tied_embeddings: v
            .get("tie_word_embeddings")
            .and_then(Value::as_bool)
            .unwrap_or(architecture != ModelArchitecture::Llama),
        attn_softcap: opt_float("attn_logit_softcapping"),
        final_softcap: opt_float("final_logit_softcapping"),
        sliding_window: opt_int("sliding_window"),
        query_pre_attn_scalar: opt_float("query_pre_attn_scalar"),
        bos_token_id: token("bos_token_id"),
        eos_token_id: token("eos_token_id"),
    })
}

impl Weights {
    pub(crate) fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}
