//! GPT-2 as HF transformers computes it, pre-LayerNorm: `x = wte + wpe`, per block
//! `x += c_proj(attn(c_attn(ln_1(x))))`, `x += mlp_proj(gelu_tanh(c_fc(ln_2(x))))`; logits
//! `= ln_f(x)·wteᵀ`. Weights are `Conv1D` (`[in, out]`).

use super::config::ModelConfig;
use super::ops::{attention, gelu_tanh, layer_norm, split_heads, Linear, Mask};
use super::weights::Weights;
use super::{LayerCache, Transformer};
use crate::Result;
use candle_core::Tensor;

struct Norm {
    w: Tensor,
    b: Tensor,
}

struct Block {
    ln_1: Norm,
    c_attn: Linear,
    attn_proj: Linear,
    ln_2: Norm,
    c_fc: Linear,
    mlp_proj: Linear,
}

pub(crate) struct Gpt2 {
    cfg: ModelConfig,
    wte: Tensor,
    wpe: Tensor,
    blocks: Vec<Block>,
    ln_f: Norm,
    head: Linear,
}

impl Gpt2 {
    pub(crate) fn load(cfg: &ModelConfig, w: &mut Weights) -> Result<Gpt2> {
        // GPT2LMHeadModel saves `transformer.h.0…`, GPT2Model `h.0…`.
        let p = if w.has("transformer.wte.weight") {
            "transformer."
        } else {
            ""
        };
        let d = cfg.d_model;
        let conv = |w: &mut Weights, name: String, inp: usize, out: usize| -> Result<Linear> {
            let t = w.take_shaped(&format!("{name}.weight"), &[inp, out])?;
            let b = w.take_shaped(&format!("{name}.bias"), &[out])?;
            Linear::from_in_out(t, Some(b)).map_err(super::tensor_err)
        };
        let norm = |w: &mut Weights, name: String| -> Result<Norm> {
            Ok(Norm {
                w: w.take_shaped(&format!("{name}.weight"), &[d])?,
                b: w.take_shaped(&format!("{name}.bias"), &[d])?,
            })
        };
        let mut blocks = Vec::with_capacity(cfg.n_layers);
        for l in 0..cfg.n_layers {
            let q = format!("{p}h.{l}");
            blocks.push(Block {
                ln_1: norm(w, format!("{q}.ln_1"))?,
                c_attn: conv(w, format!("{q}.attn.c_attn"), d, 3 * d)?,
                attn_proj: conv(w, format!("{q}.attn.c_proj"), d, d)?,
                ln_2: norm(w, format!("{q}.ln_2"))?,
                c_fc: conv(w, format!("{q}.mlp.c_fc"), d, cfg.d_mlp)?,
                mlp_proj: conv(w, format!("{q}.mlp.c_proj"), cfg.d_mlp, d)?,
            });
        }
        let wte = w.take_shaped(&format!("{p}wte.weight"), &[cfg.vocab_size, d])?;
        let head = match w.take_opt("lm_head.weight") {
            Some(h) if !cfg.tied_embeddings => h,
            _ => wte.clone(),
        };
        Ok(Gpt2 {
            cfg: cfg.clone(),
            wpe: w.take_shaped(&format!("{p}wpe.weight"), &[cfg.max_positions, d])?,
            ln_f: norm(w, format!("{p}ln_f"))?,
            head: Linear::from_out_in(head, None).map_err(super::tensor_err)?,
            wte,
            blocks,
        })
    }

    fn norm(&self, x: &Tensor, n: &Norm) -> candle_core::Result<Tensor> {
        layer_norm(x, &n.w, &n.b, self.cfg.norm_eps as f32)
    }
}

impl Transformer for Gpt2 {
    fn embed(&self, ids: &Tensor, start: usize) -> candle_core::Result<Tensor> {
        let t = ids.dim(0)?;
        self.wte
            .embedding(ids)?
            .broadcast_add(&self.wpe.narrow(0, start, t)?)
    }

    fn block(
        &self,
        layer: usize,
        x: &Tensor,
        _start: usize,
        cache: &mut LayerCache,
    ) -> candle_core::Result<Tensor> {
        let b = &self.blocks[layer];
        let c = &self.cfg;
        let d = c.d_model;
        let qkv = b.c_attn.forward(&self.norm(x, &b.ln_1)?)?;
        let q = split_heads(&qkv.narrow(1, 0, d)?, c.n_heads, c.head_dim)?;
        let k = split_heads(&qkv.narrow(1, d, d)?, c.n_heads, c.head_dim)?;
        let v = split_heads(&qkv.narrow(1, 2 * d, d)?, c.n_heads, c.head_dim)?;
        let (k, v) = cache.append(k, v)?;
        let scale = 1.0 / (c.head_dim as f64).sqrt();
        let a = attention(&q, &k, &v, scale, Mask::Causal { window: None }, None)?;
        let x = (x + b.attn_proj.forward(&a)?)?;
        let h = gelu_tanh(&b.c_fc.forward(&self.norm(&x, &b.ln_2)?)?)?;
        x + b.mlp_proj.forward(&h)?
    }

    fn logits(&self, x: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(self.head.forward(&self.norm(x, &self.ln_f)?)?))
    }
}
