//! saedb-bench-model: the model runtime's speed beside baselines taken in the same run (issue 14,
//! docs/BENCHMARKS.md "The model in the loop"):
//!
//! - hooks + encoding: the forward to the deepest hook with both SAEs encoding their sites,
//!   against the same forward with an identity hook (target ≤ 1.10);
//! - the forward's tokens/s beside candle's GEMM throughput on the model's own matrix shapes;
//! - GENERATE's time per new token with the KV cache, against re-running the whole prefix for
//!   every token (what the cache saves; the baseline, a plain candle-transformers loop,
//!   is not measured here);
//! - peak RSS with the model and two SAEs loaded (target ≤ 1.5 GB).
//!
//! `cargo run -p saedb-bench --bin saedb-bench-model -- --model SmolLM2.gguf --sae sae_L9 --sae sae_L18`
//! (the dev profile builds the engine and candle at opt-level 3; say which profile you ran).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use clap::Parser;
use saedb_engine::encode::Encoder;
use saedb_engine::formats::sae::load_sae;
use saedb_engine::model::{hooks, GenerateOptions, Model, ModelConfig, Site};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(about = "speed of saedb's model runtime, with same-run baselines (issue 14)")]
struct Args {
    /// The model: a .gguf file or a safetensors folder.
    #[arg(long)]
    model: PathBuf,
    /// SAE folders whose hooks the forward runs to (SAELens, sparsify).
    #[arg(long, required = true)]
    sae: Vec<PathBuf>,
    /// Tokens in the forward measured.
    #[arg(long, default_value_t = 256)]
    tokens: usize,
    /// New tokens in the generation measured.
    #[arg(long, default_value_t = 32)]
    new_tokens: usize,
    /// Timed repetitions (the median is reported).
    #[arg(long, default_value_t = 5)]
    reps: usize,
}

/// Peak resident set (VmHWM) in MiB.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Median seconds of `reps` runs of `f` (after one untimed warm-up run).
fn median_s(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut t = Vec::with_capacity(reps);
    for _ in 0..reps {
        let start = Instant::now();
        f()?;
        t.push(start.elapsed().as_secs_f64());
    }
    t.sort_by(f64::total_cmp);
    Ok(t[t.len() / 2])
}

/// Multiply-adds of one token through `blocks` blocks (projections and MLP; attention scores
/// over `ctx` positions), times 2: FLOPs.
fn forward_flops_per_token(c: &ModelConfig, blocks: usize, ctx: usize) -> f64 {
    let (d, kv) = (c.d_model as f64, (c.n_kv_heads * c.head_dim) as f64);
    let q = (c.n_heads * c.head_dim) as f64;
    let proj = d * q + 2.0 * d * kv + q * d;
    let mlp = 3.0 * d * c.d_mlp as f64;
    let attn = 2.0 * q * ctx as f64;
    2.0 * blocks as f64 * (proj + mlp + attn)
}

/// candle's GEMM throughput (FLOP/s) on the model's projection and MLP shapes for `t` rows.
fn gemm_flops_per_s(c: &ModelConfig, t: usize, reps: usize) -> Result<f64> {
    let shapes = [
        (c.d_model, c.n_heads * c.head_dim),
        (c.d_model, c.n_kv_heads * c.head_dim),
        (c.d_model, c.d_mlp),
        (c.d_mlp, c.d_model),
    ];
    let mut flops = 0.0;
    let mut secs = 0.0;
    for (k, n) in shapes {
        let x = Tensor::rand(-1f32, 1f32, (t, k), &Device::Cpu)?;
        let w = Tensor::rand(-1f32, 1f32, (n, k), &Device::Cpu)?.t()?;
        secs += median_s(reps, || {
            let y = x.matmul(&w)?;
            y.sum_all()?.to_scalar::<f32>()?;
            Ok(())
        })?;
        flops += 2.0 * (t * k * n) as f64;
    }
    Ok(flops / secs)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let model = Model::load(&args.model).with_context(|| args.model.display().to_string())?;
    let load_s = started.elapsed().as_secs_f64();
    let c = model.config().clone();
    let mut saes = Vec::new();
    for p in &args.sae {
        let sae = load_sae(p).with_context(|| p.display().to_string())?;
        let hook = sae.hook.clone().context("the SAE names no hook")?;
        let site = hooks::resolve(&hook, &c)?;
        let enc = Encoder::new(&sae)?;
        saes.push((site, enc));
    }
    let rss_loaded = peak_rss_mb();
    let deepest = saes.iter().map(|s| s.0).max().unwrap_or(Site(c.n_layers));
    // Token ids spread over the vocabulary, deterministic.
    let ids: Vec<u32> = (0..args.tokens)
        .map(|i| ((i as u64 * 2_654_435_761) % c.vocab_size as u64) as u32)
        .collect();

    let plain = median_s(args.reps, || {
        let mut cache = model.new_cache();
        model.forward(&ids, &mut cache, Some(deepest), &mut |_, x| Ok(x))?;
        Ok(())
    })?;
    let hooked = median_s(args.reps, || {
        let mut cache = model.new_cache();
        let mut codes = 0usize;
        model.forward(&ids, &mut cache, Some(deepest), &mut |site, x| {
            for (s, enc) in &saes {
                if *s == site {
                    let rows: Vec<f32> = x
                        .flatten_all()
                        .and_then(|t| t.to_vec1())
                        .map_err(|e| saedb_engine::Error::InvalidArgument(e.to_string()))?;
                    codes += enc.encode(&rows, ids.len())?.len();
                }
            }
            Ok(x)
        })?;
        assert_eq!(codes, saes.len() * ids.len());
        Ok(())
    })?;
    let flops = forward_flops_per_token(&c, deepest.0, args.tokens / 2) * args.tokens as f64;
    let gemm = gemm_flops_per_s(&c, args.tokens, args.reps)?;

    let prompt = &ids[..16.min(ids.len())];
    let opts = GenerateOptions {
        max_new_tokens: args.new_tokens,
        stop_at_eos: false,
        ..GenerateOptions::default()
    };
    let prefill = median_s(args.reps, || {
        let mut cache = model.new_cache();
        model.forward(prompt, &mut cache, None, &mut |_, x| Ok(x))?;
        Ok(())
    })?;
    let generate = median_s(args.reps.min(3), || {
        model.generate(prompt, &[], &opts)?;
        Ok(())
    })?;
    let per_token_cached = (generate - prefill).max(0.0) / args.new_tokens as f64;
    // Without the cache: every new token re-runs the whole sequence so far.
    let mut seq = prompt.to_vec();
    let recompute = median_s(1, || {
        seq.truncate(prompt.len());
        for _ in 0..args.new_tokens {
            let mut cache = model.new_cache();
            model.forward(&seq, &mut cache, None, &mut |_, x| Ok(x))?;
            seq.push(seq.len() as u32 % c.vocab_size as u32);
        }
        Ok(())
    })?;
    let per_token_recompute = recompute / args.new_tokens as f64;

    let profile = if cfg!(debug_assertions) {
        "dev"
    } else {
        "release"
    };
    let summary = json!({
        "profile": profile,
        "model": args.model.display().to_string(),
        "architecture": c.architecture.to_string(),
        "blocks_run": deepest.0,
        "tokens": args.tokens,
        "load_s": load_s,
        "peak_rss_mb_model_and_saes": rss_loaded,
        "forward_plain_s": plain,
        "forward_hooks_encode_s": hooked,
        "hooks_encode_vs_plain_ratio": hooked / plain,
        "forward_tokens_per_s": args.tokens as f64 / plain,
        "forward_gflops_per_s": flops / plain / 1e9,
        "gemm_gflops_per_s_model_shapes": gemm / 1e9,
        "forward_share_of_gemm": (flops / plain) / gemm,
        "generate_new_tokens": args.new_tokens,
        "generate_s_per_token_kv_cache": per_token_cached,
        "generate_s_per_token_recompute": per_token_recompute,
        "kv_cache_speedup": per_token_recompute / per_token_cached,
        "peak_rss_mb_end": peak_rss_mb(),
    });
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
