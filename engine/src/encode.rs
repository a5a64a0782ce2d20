//! Encoding dense activations into sparse SAE codes, exactly per architecture:
//!
//! `pre = (x − b_dec·apply_b_dec_to_input) @ W_enc + b_enc` (one f32 matmul per batch with
//! candle on the CPU), then per row
//! - ReLU: `max(pre, 0)`;
//! - TopK: keep the `k` largest entries of `pre` (ties: lower feature index first), then ReLU;
//! - JumpReLU: `pre` where `pre > threshold[f]`, else 0.
//!
//! Only nonzero entries are returned, sorted by feature.

use crate::formats::sae::Sae;
use crate::types::Architecture;
use crate::{Error, Result};
use candle_core::{Device, Tensor};
use rayon::prelude::*;

/// Upper bound on the `pre` matrix computed by one matmul (in f32 elements, 256 MiB): larger
/// batches are split so memory stays bounded for wide dictionaries.
const MAX_PRE_ELEMS: usize = 64 << 20;

/// An SAE's encoder, with its weights held as candle tensors.
pub struct Encoder {
    architecture: Architecture,
    d_in: usize,
    d_sae: usize,
    k: usize,
    apply_b_dec_to_input: bool,
    w_enc: Tensor,
    b_enc: Tensor,
    b_dec: Tensor,
    threshold: Vec<f32>,
}

fn candle(e: candle_core::Error) -> Error {
    Error::InvalidArgument(format!("encoding failed in the tensor library: {e}"))
}

impl Encoder {
    pub fn new(sae: &Sae) -> Result<Encoder> {
        let (d_in, d_sae) = (sae.d_in, sae.d_sae);
        let check = |name: &str, len: usize, want: usize| {
            if len == want {
                Ok(())
            } else {
                Err(Error::InvalidArgument(format!(
                    "SAE {name} holds {len} values, expected {want} (d_in = {d_in}, d_sae = {d_sae})"
                )))
            }
        };
        check("W_enc", sae.w_enc.len(), d_in * d_sae)?;
        check("b_enc", sae.b_enc.len(), d_sae)?;
        check("b_dec", sae.b_dec.len(), d_in)?;
        let k = match sae.architecture {
            Architecture::TopK => match sae.k {
                Some(k) if k >= 1 => k.min(d_sae),
                _ => {
                    return Err(Error::InvalidArgument(
                        "a TopK SAE needs k >= 1".to_string(),
                    ))
                }
            },
            _ => 0,
        };
        let threshold = match sae.architecture {
            Architecture::JumpRelu => match &sae.threshold {
                Some(t) => {
                    check("threshold", t.len(), d_sae)?;
                    t.clone()
                }
                None => {
                    return Err(Error::InvalidArgument(
                        "a JumpReLU SAE needs a threshold".to_string(),
                    ))
                }
            },
            _ => Vec::new(),
        };
        let dev = Device::Cpu;
        Ok(Encoder {
            architecture: sae.architecture,
            d_in,
            d_sae,
            k,
            apply_b_dec_to_input: sae.apply_b_dec_to_input,
            w_enc: Tensor::from_slice(&sae.w_enc, (d_in, d_sae), &dev).map_err(candle)?,
            b_enc: Tensor::from_slice(&sae.b_enc, (1, d_sae), &dev).map_err(candle)?,
            b_dec: Tensor::from_slice(&sae.b_dec, (1, d_in), &dev).map_err(candle)?,
            threshold,
        })
    }

    pub fn d_in(&self) -> usize {
        self.d_in
    }

    pub fn d_sae(&self) -> usize {
        self.d_sae
    }

    /// The pre-activations `[n, d_sae]` of `n` rows, row-major.
    pub fn pre_activations(&self, x: &[f32], n: usize) -> Result<Vec<f32>> {
        let dev = Device::Cpu;
        let mut t = Tensor::from_slice(x, (n, self.d_in), &dev).map_err(candle)?;
        if self.apply_b_dec_to_input {
            t = t.broadcast_sub(&self.b_dec).map_err(candle)?;
        }
        let pre = t
            .matmul(&self.w_enc)
            .and_then(|p| p.broadcast_add(&self.b_enc))
            .and_then(|p| p.flatten_all())
            .and_then(|p| p.to_vec1::<f32>())
            .map_err(candle)?;
        Ok(pre)
    }

    /// x: n rows of d_in, row-major. Returns per row the nonzero (feature, value) pairs sorted by
    /// feature.
    pub fn encode(&self, x: &[f32], n: usize) -> Result<Vec<Vec<(u32, f32)>>> {
        if n.checked_mul(self.d_in) != Some(x.len()) {
            return Err(Error::InvalidArgument(format!(
                "encode got {} values for {n} rows of d_in = {} (expected {})",
                x.len(),
                self.d_in,
                n.saturating_mul(self.d_in)
            )));
        }
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "input row {} holds a non-finite value at column {}",
                i / self.d_in.max(1),
                i % self.d_in.max(1)
            )));
        }
        if n == 0 {
            return Ok(Vec::new());
        }
        let rows_per_chunk = (MAX_PRE_ELEMS / self.d_sae.max(1)).max(1);
        let mut out = Vec::with_capacity(n);
        for start in (0..n).step_by(rows_per_chunk) {
            let m = rows_per_chunk.min(n - start);
            let xs = &x[start * self.d_in..(start + m) * self.d_in];
            let pre = self.pre_activations(xs, m)?;
            let rows: Vec<Vec<(u32, f32)>> = pre
                .par_chunks_exact(self.d_sae)
                .map_init(Vec::new, |scratch, row| self.select(row, scratch))
                .collect();
            out.extend(rows);
        }
        Ok(out)
    }

    /// The nonzero code of one row of pre-activations.
    fn select(&self, pre: &[f32], scratch: &mut Vec<u32>) -> Vec<(u32, f32)> {
        match self.architecture {
            Architecture::Relu => pre
                .iter()
                .enumerate()
                .filter(|(_, v)| **v > 0.0)
                .map(|(i, v)| (i as u32, *v))
                .collect(),
            Architecture::JumpRelu => pre
                .iter()
                .zip(self.threshold.iter())
                .enumerate()
                .filter(|(_, (v, t))| **v > **t && **v != 0.0)
                .map(|(i, (v, _))| (i as u32, *v))
                .collect(),
            Architecture::TopK => {
                // Only positive entries can survive the ReLU; if there are at most k of them,
                // they are the answer.
                scratch.clear();
                scratch.extend(
                    pre.iter()
                        .enumerate()
                        .filter(|(_, v)| **v > 0.0)
                        .map(|(i, _)| i as u32),
                );
                let k = self.k;
                if scratch.len() > k {
                    let val = |i: u32| pre.get(i as usize).copied().unwrap_or(f32::NEG_INFINITY);
                    scratch.select_nth_unstable_by(k - 1, |&a, &b| {
                        val(b).total_cmp(&val(a)).then(a.cmp(&b))
                    });
                    scratch.truncate(k);
                    scratch.sort_unstable();
                }
                scratch
                    .iter()
                    .map(|&i| (i, pre.get(i as usize).copied().unwrap_or(0.0)))
                    .collect()
            }
        }
    }
}
