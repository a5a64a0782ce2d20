//! Decoding with a KV cache: the prompt is run once (prefill), then each new token alone; the
//! prefix is never recomputed. Interventions apply at every position, prompt and generated.

use super::ops::{argmax, log_softmax, to_vec_f32};
use super::{tensor_err, Intervention, Model};
use crate::{Error, Result};

/// How to pick tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    /// 0 is greedy (argmax); above 0, sampling from `softmax(logits / temperature)`.
    pub temperature: f32,
    /// The sampler's seed (same seed, same tokens).
    pub seed: u64,
    /// Stop after the model's end-of-sequence token.
    pub stop_at_eos: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_new_tokens: 24,
            temperature: 0.0,
            seed: 0,
            stop_at_eos: true,
        }
    }
}

/// One continuation.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// The new tokens only.
    pub token_ids: Vec<u32>,
    /// Natural-log probability of each new token under the (intervened) model.
    pub logprobs: Vec<f32>,
    /// Top-1 minus top-2 logit at each step: how close greedy decoding was to another token.
    pub margins: Vec<f32>,
    /// The logits of the first step (the prompt's last position).
    pub first_logits: Vec<f32>,
}

/// SplitMix64: a small, well-mixed generator, enough for sampling tokens reproducibly.
struct SplitMix(u64);

impl SplitMix {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn top2_margin(row: &[f32]) -> f32 {
    let (mut a, mut b) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
    for &v in row {
        if v > a {
            b = a;
            a = v;
        } else if v > b {
            b = v;
        }
    }
    a - b
}

fn sample(row: &[f32], temperature: f32, rng: &mut SplitMix) -> usize {
    let scaled: Vec<f32> = row.iter().map(|&l| l / temperature).collect();
    let logp = log_softmax(&scaled);
    let mut u = rng.next_f64();
    for (i, lp) in logp.iter().enumerate() {
        u -= (*lp as f64).exp();
        if u <= 0.0 {
            return i;
        }
    }
    argmax(row)
}

impl Model {
    /// Continues `prompt` by up to `opts.max_new_tokens` tokens with `interventions` applied.
    pub fn generate(
        &self,
        prompt: &[u32],
        interventions: &[Intervention],
        opts: &GenerateOptions,
    ) -> Result<Generated> {
        self.generate_until(prompt, interventions, opts, &|| false)
    }

    /// [`Model::generate`], asking `stop` before every new token: when it says so, the
    /// generation ends with [`Error::Cancelled`] (Ctrl-C in the shell, a client gone away).
    pub fn generate_until(
        &self,
        prompt: &[u32],
        interventions: &[Intervention],
        opts: &GenerateOptions,
        stop: &dyn Fn() -> bool,
    ) -> Result<Generated> {
        if !opts.temperature.is_finite() || opts.temperature < 0.0 {
            return Err(Error::InvalidArgument(format!(
                "temperature {} must be a number >= 0 (0 is greedy)",
                opts.temperature
            )));
        }
        let total = prompt.len() + opts.max_new_tokens;
        if total > self.config.max_positions {
            return Err(Error::InvalidArgument(format!(
                "the prompt ({} tokens) and {} new tokens exceed the model's context of {} tokens",
                prompt.len(),
                opts.max_new_tokens,
                self.config.max_positions
            )));
        }
        let mut rng = SplitMix(opts.seed);
        let mut cache = self.new_cache();
        let vocab = self.config.vocab_size;
        let logits = self.forward_with(prompt, &mut cache, interventions)?;
        let all = to_vec_f32(&logits).map_err(tensor_err)?;
        let mut row = all[all.len() - vocab..].to_vec();
        let mut out = Generated {
            token_ids: Vec::with_capacity(opts.max_new_tokens),
            logprobs: Vec::with_capacity(opts.max_new_tokens),
            margins: Vec::with_capacity(opts.max_new_tokens),
            first_logits: row.clone(),
        };
        for step in 0..opts.max_new_tokens {
            if stop() {
                return Err(Error::Cancelled);
            }
            let next = if opts.temperature == 0.0 {
                argmax(&row)
            } else {
                sample(&row, opts.temperature, &mut rng)
            };
            out.logprobs.push(log_softmax(&row)[next]);
            out.margins.push(top2_margin(&row));
            out.token_ids.push(next as u32);
            let eos = self.config.eos_token_id == Some(next as u32);
            if step + 1 == opts.max_new_tokens || (eos && opts.stop_at_eos) {
                break;
            }
            let logits = self.forward_with(&[next as u32], &mut cache, interventions)?;
            row = to_vec_f32(&logits).map_err(tensor_err)?;
        }
        Ok(out)
    }
}
