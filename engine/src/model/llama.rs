//! The Llama family (SmolLM2, Llama 2/3, TinyLlama …) as HF transformers computes it:
//! `x += o(attn(rope(q(n1(x))), rope(k(n1(x))), v(n1(x))))`, `x += down(silu(gate(n2(x))) · up(n2(x)))`
//! with RMSNorm, rotate-half RoPE and grouped-query attention; logits `= norm(x)·W_headᵀ`.

use super::config::ModelConfig;
use super::ops::{attention, rms_norm, split_heads, Linear, Mask, Rope};
use super::weights::{Projections, Weights};
use super::{LayerCache, Transformer};
use crate::Result;
use candle_core::Tensor;

struct Block {
    attn_norm: Tensor,
    proj: Projections,
    mlp_norm: Tensor,
}

pub(crate) struct Llama {
    cfg: ModelConfig,
    embed: Tensor,
    blocks: Vec<Block>,
    norm: Tensor,
    head: Linear,
    rope: Rope,
}

impl Llama {
    pub(crate) fn load(cfg: &ModelConfig, w: &mut Weights) -> Result<Llama> {
        let (d, hd) = (cfg.d_model, cfg.head_dim);
        let embed = w.take_shaped("model.embed_tokens.weight", &[cfg.vocab_size, d])?;
        let mut blocks = Vec::with_capacity(cfg.n_layers);
        for l in 0..cfg.n_layers {
            let p = format!("model.layers.{l}");
            blocks.push(Block {
                attn_norm: w.take_shaped(&format!("{p}.input_layernorm.weight"), &[d])?,
                proj: w.projections(&p, cfg)?,
                mlp_norm: w.take_shaped(&format!("{p}.post_attention_layernorm.weight"), &[d])?,
            });
        }
        let head = match w.take_opt("lm_head.weight") {
            Some(h) if !cfg.tied_embeddings => h,
            _ => embed.clone(),
        };
        Ok(Llama {
            cfg: cfg.clone(),
            norm: w.take_shaped("model.norm.weight", &[d])?,
            head: Linear::from_out_in(head, None).map_err(super::tensor_err)?,
            rope: Rope::new(hd, cfg.max_positions, cfg.rope_theta.unwrap_or(10_000.0))
                .map_err(super::tensor_err)?,
            embed,
            blocks,
        })
    }
}

impl Transformer for Llama {
    fn embed(&self, ids: &Tensor, _start: usize) -> candle_core::Result<Tensor> {
        self.embed.embedding(ids)
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
        let h = rms_norm(x, &b.attn_norm, c.norm_eps as f32)?;
        let q = split_heads(&b.proj.q.forward(&h)?, c.n_heads, c.head_dim)?;
        let k = split_heads(&b.proj.k.forward(&h)?, c.n_kv_heads, c.head_dim)?;
        let v = split_heads(&b.proj.v.forward(&h)?, c.n_kv_heads, c.head_dim)?;
        let q = self.rope.apply(&q, start)?;
        let k = self.rope.apply(&k, start)?;
        let (k, v) = cache.append(k, v)?;
        let scale = 1.0 / (c.head_dim as f64).sqrt();
        let a = attention(&q, &k, &v, scale, Mask::Causal { window: None }, None)?;
        let x = (x + b.proj.o.forward(&a)?)?;
        let h = rms_norm(&x, &b.mlp_norm, c.norm_eps as f32)?;
        let m = (b.proj.gate.forward(&h)?.silu()? * b.proj.up.forward(&h)?)?;
        x + b.proj.down.forward(&m)?
    }

    fn logits(&self, x: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let h = rms_norm(x, &self.norm, self.cfg.norm_eps as f32)?;
        Ok(Some(self.head.forward(&h)?))
    }
}
