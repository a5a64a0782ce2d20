//! Encoding dense activations into sparse SAE codes, exactly per architecture:
//!
//! `pre = (x − b_dec·apply_b_dec_to_input) @ W_enc + b_enc` (one f32 matmul per block of rows
//! with candle on the CPU), then per row
//! - ReLU: `max(pre, 0)`;
//! - TopK: keep the `k` largest entries of `pre` (ties: lower feature index first), then ReLU;
//! - JumpReLU: `relu(pre)` where `pre > threshold[f]`, else 0 (SAELens's and Gemma Scope's
//!   definition: a negative threshold does not let negative values through);
//! - GroupMax (sparsify's `groupmax`): `pre` split into `k` groups of `d_sae / k` consecutive
//!   features; each group keeps its largest entry (ties: lower index), then ReLU.
//!
//! Only nonzero entries are returned, sorted by feature.
//!
//! The matmul is the only pass candle makes. The bias add, the activation and the extraction of
//! the nonzeros are fused into one parallel pass over candle's output buffer (read in place, no
//! copy), block by block, so each block's `pre` is still warm in cache and never materialised
//! twice. Every value is the same f32 operation the unfused `matmul + b_enc` performs, so codes
//! are bit-identical to it.

use crate::formats::sae::Sae;
use crate::types::Architecture;
use crate::{Error, Result};
use candle_core::{Device, Storage, Tensor};
use rayon::prelude::*;
use std::cmp::Ordering;

/// Preferred size of one block's `pre` matrix (f32 elements, 16 MiB): small enough that the
/// fused pass reads it back from the last-level cache and the allocator reuses the buffer
/// instead of faulting fresh pages in.
const BLOCK_PRE_ELEMS: usize = 4 << 20;

/// Fewest rows per matmul: every matmul re-packs all of `W_enc`, which 512 rows amortise (at 128
/// rows the re-packing cost a quarter of the GEMM time on the small bench).
const MIN_BLOCK_ROWS: usize = 512;

/// Upper bound on one block's `pre` matrix (f32 elements, 256 MiB), so memory stays bounded for
/// wide dictionaries.
const MAX_PRE_ELEMS: usize = 64 << 20;

/// An SAE's encoder: `W_enc` as a candle tensor, the per-feature vectors as plain slices for the
/// fused pass.
pub struct Encoder {
    architecture: Architecture,
    d_in: usize,
    d_sae: usize,
    k: usize,
    apply_b_dec_to_input: bool,
    w_enc: Tensor,
    b_enc: Vec<f32>,
    b_dec: Vec<f32>,
    threshold: Vec<f32>,
}

/// Per-thread buffers of the fused pass, reused across rows.
#[derive(Default)]
struct Scratch {
    /// ReLU / JumpReLU: every entry written, the count advanced only for survivors (branch-free).
    hits: Vec<(u32, f32)>,
    /// TopK: the candidates above the running threshold, as (value, feature).
    cand: Vec<(f32, u32)>,
}

fn candle(e: candle_core::Error) -> Error {
    Error::InvalidArgument(format!("encoding failed in the tensor library: {e}"))
}

/// TopK order: larger value first, then lower feature index (a strict total order).
fn topk_order(a: &(f32, u32), b: &(f32, u32)) -> Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
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
            Architecture::GroupMax => match sae.k {
                Some(k) if k >= 1 && d_sae % k == 0 => k,
                k => {
                    return Err(Error::InvalidArgument(format!(
                        "a GroupMax SAE needs k >= 1 groups dividing d_sae = {d_sae} (k = {k:?})"
                    )))
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
        Ok(Encoder {
            architecture: sae.architecture,
            d_in,
            d_sae,
            k,
            apply_b_dec_to_input: sae.apply_b_dec_to_input,
            w_enc: Tensor::from_slice(&sae.w_enc, (d_in, d_sae), &Device::Cpu).map_err(candle)?,
            b_enc: sae.b_enc.clone(),
            b_dec: sae.b_dec.clone(),
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
        let prod = self.matmul(x, n)?;
        let mut pre = with_f32_slice(&prod, <[f32]>::to_vec)?;
        for row in pre.chunks_exact_mut(self.d_sae) {
            row.iter_mut().zip(&self.b_enc).for_each(|(p, b)| *p += b);
        }
        Ok(pre)
    }

    /// `(x − b_dec) @ W_enc` (or `x @ W_enc`) of `n` rows, without `b_enc`: the fused pass adds it.
    fn matmul(&self, x: &[f32], n: usize) -> Result<Tensor> {
        let x = if self.apply_b_dec_to_input {
            let centred: Vec<f32> = x
                .chunks_exact(self.d_in)
                .flat_map(|row| row.iter().zip(&self.b_dec).map(|(v, b)| v - b))
                .collect();
            Tensor::from_vec(centred, (n, self.d_in), &Device::Cpu)
        } else {
            Tensor::from_slice(x, (n, self.d_in), &Device::Cpu)
        };
        x.and_then(|x| x.matmul(&self.w_enc)).map_err(candle)
    }

    /// x: n rows of d_in, row-major. Returns per row the nonzero (feature, value) pairs sorted by
    /// feature.
    pub fn encode(&self, x: &[f32], n: usize) -> Result<Vec<Vec<(u32, f32)>>> {
        self.check_input(x, n)?;
        let rows_per_block = self.rows_per_block();
        let mut out = Vec::with_capacity(n);
        for start in (0..n).step_by(rows_per_block) {
            let m = rows_per_block.min(n - start);
            let prod = self.matmul(&x[start * self.d_in..(start + m) * self.d_in], m)?;
            with_f32_slice(&prod, |pre| {
                out.par_extend(
                    pre.par_chunks_exact(self.d_sae)
                        .map_init(Scratch::default, |s, row| self.code(row, s)),
                )
            })?;
        }
        Ok(out)
    }

    fn rows_per_block(&self) -> usize {
        let d_sae = self.d_sae.max(1);
        (BLOCK_PRE_ELEMS / d_sae)
            .max(MIN_BLOCK_ROWS)
            .min(MAX_PRE_ELEMS / d_sae)
            .max(1)
    }

    fn check_input(&self, x: &[f32], n: usize) -> Result<()> {
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
        Ok(())
    }

    /// The nonzero code of one row of `x @ W_enc` (bias not yet added).
    fn code(&self, prod: &[f32], s: &mut Scratch) -> Vec<(u32, f32)> {
        match self.architecture {
            Architecture::Relu => self.keep_where(prod, s, |_, v| v > 0.0),
            Architecture::JumpRelu => {
                let t = &self.threshold;
                self.keep_where(prod, s, |f, v| v > t[f] && v > 0.0)
            }
            Architecture::TopK => self.top_k(prod, s),
            Architecture::GroupMax => self.group_max(prod),
        }
    }

    /// Per group of `d_sae / k` consecutive features, its largest entry of `pre = prod + b_enc`
    /// (the first on ties, as torch's `max`), kept when positive. sparsify takes the maximum of
    /// `relu(pre)`: an all-negative group gives 0 there, which is not stored.
    fn group_max(&self, prod: &[f32]) -> Vec<(u32, f32)> {
        let size = self.d_sae / self.k;
        let mut out = Vec::with_capacity(self.k);
        for (g, (p, b)) in prod
            .chunks_exact(size)
            .zip(self.b_enc.chunks_exact(size))
            .enumerate()
        {
            let mut best = (0usize, 0.0f32);
            for (i, (p, b)) in p.iter().zip(b).enumerate() {
                let v = p + b;
                if v > best.1 {
                    best = (i, v);
                }
            }
            if best.1 > 0.0 {
                out.push(((g * size + best.0) as u32, best.1));
            }
        }
        out
    }

    /// The entries of `pre = prod + b_enc` for which `keep(feature, pre)` holds. Roughly half of
    /// a ReLU row survives, so a data-dependent branch per entry would mispredict constantly:
    /// every entry is written and only the count depends on `keep`.
    fn keep_where(
        &self,
        prod: &[f32],
        s: &mut Scratch,
        keep: impl Fn(usize, f32) -> bool,
    ) -> Vec<(u32, f32)> {
        s.hits.resize(prod.len(), (0, 0.0));
        let mut n = 0;
        for (f, (p, b)) in prod.iter().zip(&self.b_enc).enumerate() {
            let v = p + b;
            s.hits[n] = (f as u32, v);
            n += usize::from(keep(f, v));
        }
        s.hits[..n].to_vec()
    }

    /// The `k` largest positive entries of `pre = prod + b_enc`, sorted by feature.
    ///
    /// One streaming pass with a running threshold: candidates above it are buffered; when the
    /// buffer fills, it is cut to its best `k` and the threshold becomes the `k`-th value. The
    /// cut is exact: a later entry (higher index) that does not exceed the `k`-th value loses to
    /// all `k` kept entries under the (value, lower index) order, and so does anything cut. The
    /// threshold starts at 0 because only positive entries survive the ReLU.
    fn top_k(&self, prod: &[f32], s: &mut Scratch) -> Vec<(u32, f32)> {
        let k = self.k;
        let cap = (4 * k).max(64);
        s.cand.clear();
        let mut thr = 0.0f32;
        for (f, (p, b)) in prod.iter().zip(&self.b_enc).enumerate() {
            let v = p + b;
            if v > thr {
                s.cand.push((v, f as u32));
                if s.cand.len() == cap {
                    thr = cut_to_best(&mut s.cand, k);
                }
            }
        }
        if s.cand.len() > k {
            cut_to_best(&mut s.cand, k);
        }
        s.cand.sort_unstable_by_key(|c| c.1);
        s.cand.iter().map(|&(v, f)| (f, v)).collect()
    }
}

/// Keeps the best `k` of `cand` (`k < cand.len()`) under [`topk_order`]; returns the `k`-th value.
fn cut_to_best(cand: &mut Vec<(f32, u32)>, k: usize) -> f32 {
    cand.select_nth_unstable_by(k - 1, topk_order);
    cand.truncate(k);
    cand[k - 1].0
}

/// Runs `f` on a contiguous f32 CPU tensor's elements in place (no copy out of candle).
fn with_f32_slice<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    let (Storage::Cpu(cpu), Some((lo, hi))) = (&*storage, layout.contiguous_offsets()) else {
        return Err(Error::InvalidArgument(
            "encoding expected a contiguous CPU tensor from the tensor library".to_string(),
        ));
    };
    Ok(f(&cpu.as_slice::<f32>().map_err(candle)?[lo..hi]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` values in [-2, 2) on a grid of `steps` points: with 16 steps (a 1/4 grid) products
    /// are exact and pre-activations tie often; with a prime count they round like real data.
    fn values(n: usize, seed: u64, steps: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s % steps) as f32 * 4.0 / steps as f32 - 2.0
            })
            .collect()
    }

    fn grid(n: usize, seed: u64) -> Vec<f32> {
        values(n, seed, 16)
    }

    fn sae(architecture: Architecture, k: usize, apply: bool, d_in: usize, d_sae: usize) -> Sae {
        Sae {
            architecture,
            d_in,
            d_sae,
            k: Some(k),
            apply_b_dec_to_input: apply,
            hook: None,
            layer: None,
            model: None,
            source_format: "saelens",
            w_enc: grid(d_in * d_sae, 2),
            b_enc: grid(d_sae, 3),
            w_dec: Vec::new(),
            b_dec: grid(d_in, 4),
            threshold: Some(grid(d_sae, 5).iter().map(|v| v.abs()).collect()),
        }
    }

    /// The unfused definition: one matmul over all rows, bias added, then per row a filter or a
    /// full sort by (value desc, index asc).
    fn unfused(enc: &Encoder, x: &[f32], n: usize) -> Vec<Vec<(u32, f32)>> {
        let pre = enc.pre_activations(x, n).unwrap();
        pre.chunks_exact(enc.d_sae)
            .map(|row| {
                let all = row.iter().enumerate().map(|(f, &v)| (f as u32, v));
                match enc.architecture {
                    Architecture::Relu => all.filter(|p| p.1 > 0.0).collect(),
                    Architecture::JumpRelu => all
                        .filter(|p| p.1 > enc.threshold[p.0 as usize] && p.1 > 0.0)
                        .collect(),
                    Architecture::GroupMax => {
                        let size = enc.d_sae / enc.k;
                        let row: Vec<(u32, f32)> = all.collect();
                        row.chunks(size)
                            .filter_map(|g| {
                                let max = g.iter().map(|p| p.1).fold(f32::MIN, f32::max);
                                g.iter().find(|p| p.1 == max && max > 0.0).copied()
                            })
                            .collect()
                    }
                    Architecture::TopK => {
                        let mut v: Vec<(f32, u32)> = all.map(|(f, v)| (v, f)).collect();
                        v.sort_unstable_by(topk_order);
                        v.truncate(enc.k);
                        v.retain(|c| c.0 > 0.0);
                        v.sort_by_key(|c| c.1);
                        v.into_iter().map(|(v, f)| (f, v)).collect()
                    }
                }
            })
            .collect()
    }

    /// The fused, blocked pass is bit-identical to the unfused definition (one matmul over all
    /// rows): across block boundaries, with many ties, with rounding, and with the TopK
    /// candidate buffer cut many times per row.
    #[test]
    fn fused_blocks_match_unfused_bit_for_bit() {
        let (d_in, d_sae) = (24, 8192);
        let n = MIN_BLOCK_ROWS + 37;
        for x in [grid(n * d_in, 1), values(n * d_in, 1, 65_521)] {
            check_all_architectures(&x, n, d_in, d_sae);
        }
    }

    fn check_all_architectures(x: &[f32], n: usize, d_in: usize, d_sae: usize) {
        let bits = |c: Vec<Vec<(u32, f32)>>| -> Vec<Vec<(u32, u32)>> {
            c.into_iter()
                .map(|r| r.into_iter().map(|(f, v)| (f, v.to_bits())).collect())
                .collect()
        };
        for (arch, k) in [
            (Architecture::Relu, 0),
            (Architecture::JumpRelu, 0),
            (Architecture::TopK, 3),
            (Architecture::TopK, 60),
            (Architecture::GroupMax, 64),
        ] {
            for apply in [true, false] {
                let enc = Encoder::new(&sae(arch, k.max(1), apply, d_in, d_sae)).unwrap();
                let got = enc.encode(x, n).unwrap();
                assert!(got.iter().any(|r| !r.is_empty()), "{arch}: all empty");
                assert_eq!(bits(got), bits(unfused(&enc, x, n)), "{arch} k {k} {apply}");
            }
        }
    }
}
