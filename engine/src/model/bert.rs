//! BERT encoders (all-MiniLM-L6-v2 …) as HF transformers computes them, post-LayerNorm:
//! `x = LN(word + position + type₀)`, then per layer `x = LN₁(x + o(attn(x)))`,
//! `x = LN₂(x + out(gelu(inter(x))))`. Attention is bidirectional; there is no LM head.

use super::config::ModelConfig;
use super::ops::{attention, gelu_erf, layer_norm, split_heads, Linear, Mask};
use super::weights::Weights;
use super::{LayerCache, Transformer};
use crate::Result;
use candle_core::Tensor;

struct Norm {
    w: Tensor,
    b: Tensor,
}

struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    attn_out: Linear,
    attn_norm: Norm,
    inter: Linear,
    out: Linear,
    out_norm: Norm,
}

pub(crate) struct Bert {
    cfg: ModelConfig,
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    embed_norm: Norm,
    layers: Vec<Layer>,
}

/// Checkpoints saved from `BertModel` name tensors `embeddings.…`; from `BertFor…` classes,
/// `bert.embeddings.…`.
fn prefix(w: &Weights) -> &'static str {
    if w.has("bert.embeddings.word_embeddings.weight") {
        "bert."
    } else {
        ""
    }
}

impl Bert {
    pub(crate) fn load(cfg: &ModelConfig, w: &mut Weights) -> Result<Bert> {
        let p = prefix(w);
        let d = cfg.d_model;
        let lin = |w: &mut Weights, name: String, out: usize, inp: usize| -> Result<Linear> {
            let t = w.take_shaped(&format!("{name}.weight"), &[out, inp])?;
            let b = w.take_shaped(&format!("{name}.bias"), &[out])?;
            Linear::from_out_in(t, Some(b)).map_err(super::tensor_err)
        };
        let norm = |w: &mut Weights, name: String| -> Result<Norm> {
            Ok(Norm {
                w: w.take_shaped(&format!("{name}.weight"), &[d])?,
                b: w.take_shaped(&format!("{name}.bias"), &[d])?,
            })
        };
        let mut layers = Vec::with_capacity(cfg.n_layers);
        for l in 0..cfg.n_layers {
            let q = format!("{p}encoder.layer.{l}");
            layers.push(Layer {
                q: lin(w, format!("{q}.attention.self.query"), d, d)?,
                k: lin(w, format!("{q}.attention.self.key"), d, d)?,
                v: lin(w, format!("{q}.attention.self.value"), d, d)?,
                attn_out: lin(w, format!("{q}.attention.output.dense"), d, d)?,
                attn_norm: norm(w, format!("{q}.attention.output.LayerNorm"))?,
                inter: lin(w, format!("{q}.intermediate.dense"), cfg.d_mlp, d)?,
                out: lin(w, format!("{q}.output.dense"), d, cfg.d_mlp)?,
                out_norm: norm(w, format!("{q}.output.LayerNorm"))?,
            });
        }
        Ok(Bert {
            cfg: cfg.clone(),
            word: w.take_shaped(
                &format!("{p}embeddings.word_embeddings.weight"),
                &[cfg.vocab_size, d],
            )?,
            position: w.take_shaped(
                &format!("{p}embeddings.position_embeddings.weight"),
                &[cfg.max_positions, d],
            )?,
            token_type: w.take(&format!("{p}embeddings.token_type_embeddings.weight"))?,
            embed_norm: norm(w, format!("{p}embeddings.LayerNorm"))?,
            layers,
        })
    }

    fn norm(&self, x: &Tensor, n: &Norm) -> candle_core::Result<Tensor> {
        layer_norm(x, &n.w, &n.b, self.cfg.norm_eps as f32)
    }
}

impl Transformer for Bert {
    fn embed(&self, ids: &Tensor, start: usize) -> candle_core::Result<Tensor> {
        let t = ids.dim(0)?;
        let x = self.word.embedding(ids)?;
        let x = x.broadcast_add(&self.position.narrow(0, start, t)?)?;
        let x = x.broadcast_add(&self.token_type.narrow(0, 0, 1)?)?;
        self.norm(&x, &self.embed_norm)
    }

    fn block(
        &self,
        layer: usize,
        x: &Tensor,
        _start: usize,
        _cache: &mut LayerCache,
    ) -> candle_core::Result<Tensor> {
        let l = &self.layers[layer];
        let c = &self.cfg;
        let q = split_heads(&l.q.forward(x)?, c.n_heads, c.head_dim)?;
        let k = split_heads(&l.k.forward(x)?, c.n_heads, c.head_dim)?;
        let v = split_heads(&l.v.forward(x)?, c.n_heads, c.head_dim)?;
        let scale = 1.0 / (c.head_dim as f64).sqrt();
        let a = attention(&q, &k, &v, scale, Mask::None, None)?;
        let x = self.norm(&(x + l.attn_out.forward(&a)?)?, &l.attn_norm)?;
        let h = gelu_erf(&l.inter.forward(&x)?)?;
        self.norm(&(x + l.out.forward(&h)?)?, &l.out_norm)
    }

    fn logits(&self, _x: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(None)
    }
}
