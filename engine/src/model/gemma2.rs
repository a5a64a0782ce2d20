//! Gemma 2 as HF transformers computes it: embeddings scaled by `√d_model`; per block
//! `x += post_attn_norm(attn(input_norm(x)))`, `x += post_ffw_norm(mlp(pre_ffw_norm(x)))` with
//! Gemma's RMSNorm `x / rms(x) · (1 + w)`, a GELU-tanh gated MLP, attention scaled by
//! `query_pre_attn_scalar^−½` and soft-capped, a sliding window on the local layers, and
//! soft-capped final logits.

use super::config::ModelConfig;
use super::ops::{attention, gelu_tanh, rms_norm, split_heads, Linear, Mask, Rope};
use super::weights::{Projections, Weights};
use super::{LayerCache, Transformer};
use crate::Result;
use candle_core::Tensor;

struct Block {
    input_norm: Tensor,
    proj: Projections,
    post_attn_norm: Tensor,
    pre_ffw_norm: Tensor,
    post_ffw_norm: Tensor,
    sliding: bool,
}

pub(crate) struct Gemma2 {
    cfg: ModelConfig,
    embed: Tensor,
    blocks: Vec<Block>,
    norm: Tensor,
    head: Linear,
    rope: Rope,
}

impl Gemma2 {
    pub(crate) fn load(cfg: &ModelConfig, w: &mut Weights) -> Result<Gemma2> {
        let (d, hd) = (cfg.d_model, cfg.head_dim);
        let embed = w.take_shaped("model.embed_tokens.weight", &[cfg.vocab_size, d])?;
        // Gemma's norms multiply by (1 + w): stored once as such.
        let norm = |w: &mut Weights, name: String| -> Result<Tensor> {
            (w.take_shaped(&name, &[d])? + 1.0).map_err(super::tensor_err)
        };
        let mut blocks = Vec::with_capacity(cfg.n_layers);
        for l in 0..cfg.n_layers {
            let p = format!("model.layers.{l}");
            blocks.push(Block {
                input_norm: norm(w, format!("{p}.input_layernorm.weight"))?,
                proj: w.projections(&p, cfg)?,
                post_attn_norm: norm(w, format!("{p}.post_attention_layernorm.weight"))?,
                pre_ffw_norm: norm(w, format!("{p}.pre_feedforward_layernorm.weight"))?,
                post_ffw_norm: norm(w, format!("{p}.post_feedforward_layernorm.weight"))?,
                // Gemma 2 alternates local (sliding-window) and global layers, local first.
                sliding: l % 2 == 0,
            });
        }
        let head = match w.take_opt("lm_head.weight") {
            Some(h) if !cfg.tied_embeddings => h,
            _ => embed.clone(),
        };
        Ok(Gemma2 {
            cfg: cfg.clone(),
            norm: norm(w, "model.norm.weight".to_string())?,
            head: Linear::from_out_in(head, None).map_err(super::tensor_err)?,
            rope: Rope::new(hd, cfg.max_positions, cfg.rope_theta.unwrap_or(10_000.0))
                .map_err(super::tensor_err)?,
            embed,
            blocks,
        })
    }

    fn norm(&self, x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
        rms_norm(x, w, self.cfg.norm_eps as f32)
    }
}

impl Transformer for Gemma2 {
    fn embed(&self, ids: &Tensor, _start: usize) -> candle_core::Result<Tensor> {
        // transformers rounds the normalizer to the model's dtype: f32 here.
        let normalizer = (self.cfg.d_model as f32).sqrt() as f64;
        self.embed.embedding(ids)? * normalizer
    }

    fn block(
        &self,
        layer: usize,
        x: &Tensor,
        start: usize,
        cache: &mut LayerCache,
    ) -> candle_core::Result<Tensor> {
        let b = &self.blocks[layer];
        let c = &self.cfg;
        let h = self.norm(x, &b.input_norm)?;
        let q = split_heads(&b.proj.q.forward(&h)?, c.n_heads, c.head_dim)?;
        let k = split_heads(&b.proj.k.forward(&h)?, c.n_kv_heads, c.head_dim)?;
        let v = split_heads(&b.proj.v.forward(&h)?, c.n_kv_heads, c.head_dim)?;
        let q = self.rope.apply(&q, start)?;
        let k = self.rope.apply(&k, start)?;
        let (k, v) = cache.append(k, v)?;
        let scale = c
            .query_pre_attn_scalar
            .unwrap_or(c.head_dim as f64)
            .powf(-0.5);
        let window = if b.sliding { c.sliding_window } else { None };
        let a = attention(&q, &k, &v, scale, Mask::Causal { window }, c.attn_softcap)?;
        let x = (x + self.norm(&b.proj.o.forward(&a)?, &b.post_attn_norm)?)?;
        let h = self.norm(&x, &b.pre_ffw_norm)?;
        let m = (gelu_tanh(&b.proj.gate.forward(&h)?)? * b.proj.up.forward(&h)?)?;
        x + self.norm(&b.proj.down.forward(&m)?, &b.post_ffw_norm)?
    }

    fn logits(&self, x: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let h = self.norm(x, &self.norm)?;
        let logits = self.head.forward(&h)?;
        Ok(Some(match self.cfg.final_softcap {
            Some(cap) => ((logits / cap)?.tanh()? * cap)?,
            None => logits,
        }))
    }
}
