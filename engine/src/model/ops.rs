//! The few tensor operations every architecture shares: linear layers, norms, rotary position
//! embeddings, causal and bidirectional attention. All in f32 on the CPU (candle).

use candle_core::{DType, Device, Result, Tensor};

/// A dense layer `y = x·W + b` with `W` as `[in, out]`: for PyTorch's `[out, in]` weights a
/// transposed view (no copy: the GEMM reads either layout, and tied LM heads share the
/// embedding's memory).
pub(crate) struct Linear {
    w_t: Tensor,
    b: Option<Tensor>,
}

impl Linear {
    /// From a weight in the usual `[out, in]` layout (PyTorch `nn.Linear`).
    pub(crate) fn from_out_in(w: Tensor, b: Option<Tensor>) -> Result<Linear> {
        Ok(Linear { w_t: w.t()?, b })
    }

    /// From a weight already in `[in, out]` layout (GPT-2's `Conv1D`).
    pub(crate) fn from_in_out(w: Tensor, b: Option<Tensor>) -> Result<Linear> {
        Ok(Linear {
            w_t: w.contiguous()?,
            b,
        })
    }

    /// `x`: `[T, in]` → `[T, out]`.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.matmul(&self.w_t)?;
        match &self.b {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

/// RMSNorm as in HF Llama: `x / sqrt(mean(x²) + eps) · w`.
pub(crate) fn rms_norm(x: &Tensor, w: &Tensor, eps: f32) -> Result<Tensor> {
    candle_nn::ops::rms_norm(&x.contiguous()?, w, eps)
}

/// LayerNorm: `(x − mean) / sqrt(var + eps) · w + b`.
pub(crate) fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f32) -> Result<Tensor> {
    candle_nn::ops::layer_norm(&x.contiguous()?, w, b, eps)
}

/// GELU as `erf` (BERT's `gelu`).
pub(crate) fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    x.gelu_erf()
}

/// GELU's tanh approximation (`gelu_new`, `gelu_pytorch_tanh`).
pub(crate) fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    x.gelu()
}

/// Cosine and sine tables of rotary position embeddings (`[max_pos, head_dim / 2]`), the
/// rotate-half convention of HF Llama: `inv_freq[i] = theta^(−2i/head_dim)`.
pub(crate) struct Rope {
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    pub(crate) fn new(head_dim: usize, max_pos: usize, theta: f64) -> Result<Rope> {
        let half = head_dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| (1.0 / theta.powf(2.0 * i as f64 / head_dim as f64)) as f32)
            .collect();
        let mut cos = Vec::with_capacity(max_pos * half);
        let mut sin = Vec::with_capacity(max_pos * half);
        for p in 0..max_pos {
            for f in &inv_freq {
                // The angle in f32, as transformers computes it (position · inv_freq in float32).
                let angle = p as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        Ok(Rope {
            cos: Tensor::from_vec(cos, (max_pos, half), &Device::Cpu)?,
            sin: Tensor::from_vec(sin, (max_pos, half), &Device::Cpu)?,
        })
    }

    /// Rotates `x` (`[1, heads, T, head_dim]`) for positions `start..start + T`.
    pub(crate) fn apply(&self, x: &Tensor, start: usize) -> Result<Tensor> {
        let t = x.dim(2)?;
        let cos = self.cos.narrow(0, start, t)?;
        let sin = self.sin.narrow(0, start, t)?;
        candle_nn::rotary_emb::rope(&x.contiguous()?, &cos, &sin)
    }
}

/// `[T, heads · head_dim]` → `[1, heads, T, head_dim]`.
pub(crate) fn split_heads(x: &Tensor, heads: usize, head_dim: usize) -> Result<Tensor> {
    let t = x.dim(0)?;
    x.reshape((1, t, heads, head_dim))?
        .transpose(1, 2)?
        .contiguous()
}

/// How queries may look at keys.
#[derive(Clone, Copy)]
pub(crate) enum Mask {
    /// Every query sees every key (BERT).
    None,
    /// Query at absolute position `p` sees keys `0..=p`; with a window `w`, only keys `> p − w`.
    Causal { window: Option<usize> },
}

/// Scaled dot-product attention with grouped key/value heads.
///
/// `q`: `[1, n_head, T, hd]`, `k`/`v`: `[1, n_kv, S, hd]` where the `T` queries sit at absolute
/// positions `S − T .. S`. Query head `h` reads key/value head `h / (n_head / n_kv)`.
/// `softcap` (Gemma 2): scores become `c · tanh(scores / c)` before the mask.
/// Returns `[T, n_head · hd]`.
pub(crate) fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    mask: Mask,
    softcap: Option<f64>,
) -> Result<Tensor> {
    let (_, n_head, t, hd) = q.dims4()?;
    let (_, n_kv, s, _) = k.dims4()?;
    let n_rep = n_head / n_kv;
    // Heads of one group are consecutive: fold them into the query rows of their kv head.
    let q = q.reshape((n_kv, n_rep * t, hd))?;
    let k = k.reshape((n_kv, s, hd))?;
    let v = v.reshape((n_kv, s, hd))?;
    let mut scores = (q.matmul(&k.t()?)? * scale)?;
    if let Some(c) = softcap {
        scores = ((scores / c)?.tanh()? * c)?;
    }
    let scores = scores.reshape((n_kv, n_rep, t, s))?;
    let scores = match mask {
        Mask::None => scores,
        Mask::Causal { window } => {
            if t == 1 && window.is_none_or(|w| s <= w) {
                scores
            } else {
                scores.broadcast_add(&causal_mask(t, s, window)?)?
            }
        }
    };
    let probs = candle_nn::ops::softmax_last_dim(&scores.contiguous()?)?;
    let out = probs
        .reshape((n_kv, n_rep * t, s))?
        .matmul(&v.contiguous()?)?;
    out.reshape((n_head, t, hd))?
        .transpose(0, 1)?
        .reshape((t, n_head * hd))
}

/// `[T, S]`: 0 where query `i` (absolute position `S − T + i`) may see key `j`, −∞ elsewhere.
fn causal_mask(t: usize, s: usize, window: Option<usize>) -> Result<Tensor> {
    let offset = s - t;
    let mask: Vec<f32> = (0..t)
        .flat_map(|i| {
            let p = offset + i;
            (0..s).map(move |j| {
                let visible = j <= p && window.is_none_or(|w| p - j < w);
                if visible {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            })
        })
        .collect();
    Tensor::from_vec(mask, (t, s), &Device::Cpu)
}

/// Log-softmax of one row of logits (f64 accumulation), so log-probabilities of chosen tokens
/// are exact to f32 precision.
pub(crate) fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| ((l - max) as f64).exp()).sum();
    let log_z = max as f64 + sum.ln();
    logits.iter().map(|&l| (l as f64 - log_z) as f32).collect()
}

/// A tensor's elements as a `Vec<f32>` (row-major).
pub(crate) fn to_vec_f32(t: &Tensor) -> Result<Vec<f32>> {
    t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()
}

/// The last dimension's index of the largest value of a `[n]` slice (first on ties).
pub(crate) fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}
