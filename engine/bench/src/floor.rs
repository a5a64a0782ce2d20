//! How small the stored activations could be: the entropy of what both orientations must hold,
//! computed from the generated latents files independently of the engine. It is the yardstick
//! for `bytes_per_nnz` (target ≤ 4 B): a store that keeps exact float16 values in both
//! orientations cannot go below twice the per-orientation figure here, whatever its codec.
//!
//! - **Values**: the entropy of the stored float16 given its feature, estimated as
//!   H(high byte | feature) + H(low byte | high byte), from counts over every nonzero. (The low
//!   byte's dependence on the feature is ignored: pooling only raises the estimate's low part by
//!   a little; every other term is an empirical count over the whole corpus.)
//! - **Locations**: which features fire on which tokens, under a per-feature frequency model:
//!   feature `f` fires on a token with its observed frequency `p_f`, so the corpus costs
//!   Σ_f T·H(p_f) bits (`H` the binary entropy, `T` the tokens). This is what a coder that knows
//!   each feature's frequency pays; the sum of marginal entropies is an upper bound on the joint
//!   entropy, so a coder modelling correlations between features could do a little better — the
//!   generator's features are independent but for the per-token count.

use crate::st::for_each_latent;
use anyhow::Result;
use half::f16;
use rayon::prelude::*;
use std::path::PathBuf;

/// The entropy of the activations, per nonzero.
#[derive(Clone, Copy, Debug)]
pub struct Floor {
    /// Bits per nonzero for its float16 value, given its feature.
    pub value_bits: f64,
    /// Bits per nonzero for where it is (which feature on which token), per-feature model.
    pub location_bits: f64,
}

impl Floor {
    /// Bytes per nonzero for one orientation (each must locate and value every nonzero).
    pub fn one_orientation_bytes(&self) -> f64 {
        (self.value_bits + self.location_bits) / 8.0
    }
}

/// Counts over the activations that the entropies are computed from.
struct Counts {
    per_feature: Vec<u64>,
    /// `[feature * 256 + high byte]`
    high_by_feature: Vec<u64>,
    /// `[high byte * 256 + low byte]`
    low_by_high: Vec<u64>,
}

impl Counts {
    fn new(d_sae: usize) -> Counts {
        Counts {
            per_feature: vec![0; d_sae],
            high_by_feature: vec![0; d_sae * 256],
            low_by_high: vec![0; 256 * 256],
        }
    }

    fn add(&mut self, feature: usize, value: f32) {
        let bits = f16::from_f32(value).to_bits();
        let (high, low) = ((bits >> 8) as usize, (bits & 0xff) as usize);
        self.per_feature[feature] += 1;
        self.high_by_feature[feature * 256 + high] += 1;
        self.low_by_high[high * 256 + low] += 1;
    }

    fn merge(mut self, other: Counts) -> Counts {
        for (a, b) in [
            (&mut self.per_feature, &other.per_feature),
            (&mut self.high_by_feature, &other.high_by_feature),
            (&mut self.low_by_high, &other.low_by_high),
        ] {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        }
        self
    }
}

/// Reads the latents files (int32 `locations [n,3]` with absolute latents, float32
/// `activations [n]`) of a corpus of `tokens` tokens over `d_sae` features.
pub fn measure(latents: &[PathBuf], d_sae: usize, tokens: u64) -> Result<Floor> {
    let counts = latents
        .par_iter()
        .map(|path| {
            let mut c = Counts::new(d_sae);
            for_each_latent(path, |_, _, latent, value| {
                c.add(latent as usize, value);
                Ok(())
            })?;
            Ok::<Counts, anyhow::Error>(c)
        })
        .try_reduce(|| Counts::new(d_sae), |a, b| Ok(a.merge(b)))?;
    Ok(from_counts(&counts, tokens))
}

fn from_counts(c: &Counts, tokens: u64) -> Floor {
    let nnz: u64 = c.per_feature.iter().sum();
    // Σ over groups of count · log2(group total / count): the conditional entropy, in bits.
    let conditional_bits = |table: &[u64], totals: &mut dyn Iterator<Item = u64>| -> f64 {
        table
            .chunks(256)
            .zip(totals)
            .map(|(row, total)| {
                row.iter()
                    .filter(|&&n| n > 0)
                    .map(|&n| n as f64 * (total as f64 / n as f64).log2())
                    .sum::<f64>()
            })
            .sum()
    };
    let high_bits = conditional_bits(&c.high_by_feature, &mut c.per_feature.iter().copied());
    let mut high_totals = c.low_by_high.chunks(256).map(|row| row.iter().sum::<u64>());
    let low_bits = conditional_bits(&c.low_by_high, &mut high_totals);
    let location_bits: f64 = c
        .per_feature
        .iter()
        .map(|&n| tokens as f64 * binary_entropy(n as f64 / tokens as f64))
        .sum();
    let per_nnz = |bits: f64| if nnz == 0 { 0.0 } else { bits / nnz as f64 };
    Floor {
        value_bits: per_nnz(high_bits + low_bits),
        location_bits: per_nnz(location_bits),
    }
}

fn binary_entropy(p: f64) -> f64 {
    if p <= 0.0 || p >= 1.0 {
        return 0.0;
    }
    -(p * p.log2() + (1.0 - p) * (1.0 - p).log2())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feature_on_every_token_with_one_value_costs_nothing() {
        let mut c = Counts::new(2);
        for _ in 0..100 {
            c.add(0, 1.5);
        }
        let f = from_counts(&c, 100);
        assert_eq!((f.value_bits, f.location_bits), (0.0, 0.0));
    }

    #[test]
    fn uniform_choices_cost_their_log() {
        // Feature 0 on half the tokens; its values split evenly over 4 float16s that share a
        // high byte (1.0 + k/1024): 2 bits a value; location H(1/2)·T / (T/2) = 2 bits.
        let mut c = Counts::new(1);
        for i in 0..400 {
            c.add(0, 1.0 + (i % 4) as f32 / 1024.0);
        }
        let f = from_counts(&c, 800);
        assert!((f.value_bits - 2.0).abs() < 1e-12, "{f:?}");
        assert!((f.location_bits - 2.0).abs() < 1e-12, "{f:?}");
    }
}
