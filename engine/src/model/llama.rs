//! The Llama family (SmolLM2, Llama 2/3, TinyLlama …) as HF transformers computes it:
//! `x += o(attn(rope(q(n1(x))), rope(k(n1(x))), v(n1(x))))`, `x += down(silu(gate(n2(x))) · up(n2(x)))`
//! with RMSNorm, rotate-half RoPE and grouped-query attention; logits `= norm(x)·W_headᵀ`.

use super::config::ModelConfig;
use super::ops::{attention, rms_norm, split_heads, Linear, Mask, Rope};
use super::weights::Weights;
use super::{LayerCache, Transformer};
use crate::Result;
use candle_core::Tensor;

struct Block {
    attn_norm: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    mlp_norm: Tensor,
    gate: Linear,
    up: Linear,
    down: Linear,
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
        let lin = |w: &mut Weights, name: String, out: usize, inp: usize| -> Result<Linear> {
            let t = w.take_shaped(&name, &[out, inp])?;
            Linear::from_out_in(t, None).map_err(super::tensor_err)
        };
        let mut blocks = Vec::with_capacity(cfg.n_layers);
        for l in 0..cfg.n_layers {
            let p = format!("model.layers.{l}");
            blocks.push(Block {
                attn_norm: w.take_shaped(&format!("{p}.input_layernorm.weight"), &[d])?,
                q: lin(
                    w,
                    format!("{p}.self_attn.q_proj.weight"),
                    cfg.n_heads * hd,
                    d,
                )?,
                k: lin(
                    w,
                    format!("{p}.self_attn.k_proj.weight"),
                    cfg.n_kv_heads * hd,
                    d,
                )?,
                v: lin(
                    w,
                    format!("{p}.self_attn.v_proj.weight"),
                    cfg.n_kv_heads * hd,
                    d,
                )?,
                o: lin(
                    w,
                    format!("{p}.self_attn.o_proj.weight"),
                    d,
                    cfg.n_heads * hd,
                )?,
                mlp_norm: w.take_shaped(&format!("{p}.post_attention_layernorm.weight"), &[d])?,
                gate: lin(w, format!("{p}.mlp.gate_proj.weight"), cfg.d_mlp, d)?,
                up: lin(w, format!("{p}.mlp.up_proj.weight"), cfg.d_mlp, d)?,
                down: lin(w, format!("{p}.mlp.down_proj.weight"), d, cfg.d_mlp)?,
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
        let q = split_heads(&b.q.forward(&h)?, c.n_heads, c.head_dim)?;
        let k = split_heads(&b.k.forward(&h)?, c.n_kv_heads, c.head_dim)?;
        let v = split_heads(&b.v.forward(&h)?, c.n_kv_heads, c.head_dim)?;
        let q = self.rope.apply(&q, start)?;
        let k = self.rope.apply(&k, start)?;
        let (k, v) = cache.append(k, v)?;
        let scale = 1.0 / (c.head_dim as f64).sqrt();
        let a = attention(&q, &k, &v, scale, Mask::Causal { window: None }, None)?;
        let x = (x + b.o.forward(&a)?)?;
        let h = rms_norm(&x, &b.mlp_norm, c.norm_eps as f32)?;
        let m = (b.gate.forward(&h)?.silu()? * b.up.forward(&h)?)?;
        x + b.down.forward(&m)?
    }

    fn logits(&self, x: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let h = rms_norm(x, &self.norm, self.cfg.norm_eps as f32)?;
        Ok(Some(self.head.forward(&h)?))
    }
}
