//! The synthetic corpus: an SAELens dictionary with clustered decoder directions, documents of
//! tokens, delphi latents files (one per slice of documents) with Zipf feature frequencies and
//! log-normal values, and a layered attribution graph in circuit-tracer JSON. Everything is a
//! pure function of the seed.

use crate::rng::{Rng, Zipf};
use crate::st::{f32_bytes, write_file, Dtype, Spec, StWriter};
use anyhow::Result;
use rayon::prelude::*;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Shape of one benchmark scale.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ScaleSpec {
    pub name: String,
    pub d_in: usize,
    pub d_sae: usize,
    pub docs: usize,
    pub doc_len: usize,
    /// Mean active features per token (each token draws uniformly in [l0/2, 3·l0/2]).
    pub l0: usize,
    /// Documents per latents file (the engine holds one file's activations in memory).
    pub docs_per_file: usize,
    /// Zipf exponent of feature frequencies.
    pub zipf_s: f64,
    /// Decoder clusters (centroids); features are spread over them at random.
    pub clusters: usize,
    pub vocab: usize,
    /// Latent-range splits of the delphi cache baseline (delphi's default is 5).
    pub flat_splits: usize,
}

impl ScaleSpec {
    pub fn named(name: &str) -> Option<ScaleSpec> {
        let (d_in, d_sae, docs, docs_per_file) = match name {
            // 5,120 tokens: the CI smoke test.
            "tiny" => (128, 2_048, 40, 10),
            // 100,096 tokens and an 8,192-feature dictionary: building the HNSW index of a
            // 24,576-feature one alone takes ~8 minutes on 2 cores (see docs/BENCHMARKS.md).
            "small" => (768, 8_192, 782, 200),
            // 2,000,000 tokens, 800 documents (102,400 tokens) per latents file.
            "medium" => (768, 24_576, 15_625, 800),
            // 8,000,000 tokens and a 131,072-feature dictionary.
            "large" => (768, 131_072, 62_500, 800),
            // 20,000,000 tokens and a 1,048,576-feature dictionary (issue 16; run by hand).
            "xl" => (768, 1_048_576, 156_250, 800),
            _ => return None,
        };
        Some(ScaleSpec {
            name: name.to_string(),
            d_in,
            d_sae,
            docs,
            doc_len: 128,
            l0: 60,
            docs_per_file,
            zipf_s: 1.0,
            clusters: (d_sae / 32).max(1),
            vocab: 50_257,
            flat_splits: 5,
        })
    }

    pub fn tokens(&self) -> usize {
        self.docs * self.doc_len
    }

    pub fn split_width(&self) -> usize {
        self.d_sae.div_ceil(self.flat_splits)
    }
}

/// What the generator wrote.
pub struct Corpus {
    pub dict_dir: PathBuf,
    pub tokens_path: PathBuf,
    pub latents: Vec<PathBuf>,
    pub nnz: u64,
    /// Nonzeros per latent-range split of the flat baseline (sizes its files up front).
    pub split_counts: Vec<u64>,
}

impl Corpus {
    /// An existing dictionary folder, measured as it is (no corpus).
    pub fn of_dictionary(dict_dir: &Path) -> Corpus {
        Corpus {
            dict_dir: dict_dir.to_path_buf(),
            tokens_path: PathBuf::new(),
            latents: Vec::new(),
            nnz: 0,
            split_counts: Vec::new(),
        }
    }
}

/// The decoder's cluster centroids: `clusters` random unit vectors.
fn centroids(spec: &ScaleSpec, seed: u64) -> Vec<Vec<f32>> {
    (0..spec.clusters)
        .into_par_iter()
        .map(|c| {
            let mut r = Rng::derive(seed, 1, c as u64);
            unit((0..spec.d_in).map(|_| r.normal() as f32).collect())
        })
        .collect()
}

/// Decoder rows `features` around the centroids: row = centroid + noise (norm ≈ 1.2 of the
/// centroid's), normalised. Same-cluster cosines ≈ 0.4, unrelated ≈ 0 ± 0.04 at d_in = 768.
/// Each row is a function of the seed and its index alone, so the decoder is generated a
/// block of rows at a time.
fn decoder_rows(
    spec: &ScaleSpec,
    seed: u64,
    centroids: &[Vec<f32>],
    features: std::ops::Range<usize>,
) -> Vec<f32> {
    let d = spec.d_in;
    let noise = 1.2 / (d as f32).sqrt();
    let first = features.start;
    let mut w = vec![0f32; features.len() * d];
    w.par_chunks_mut(d).enumerate().for_each(|(i, row)| {
        let mut r = Rng::derive(seed, 2, (first + i) as u64);
        let c = &centroids[r.below(spec.clusters as u64) as usize];
        for (x, cx) in row.iter_mut().zip(c) {
            *x = cx + noise * r.normal() as f32;
        }
        let n = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        row.iter_mut().for_each(|v| *v /= n);
    });
    w
}

fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

/// Decoder rows generated per block when writing the dictionary (≈ 25 MB at d_in 768).
const DICT_BLOCK_ROWS: usize = 8192;

/// A SAELens folder: cfg.json (TopK, k = l0) and sae_weights.safetensors with W_enc = W_decᵀ.
/// Written a block of decoder rows at a time (and their columns of W_enc), so that a
/// 1,048,576-feature dictionary (6.4 GB) is generated in bounded memory.
pub fn write_dictionary(dir: &Path, spec: &ScaleSpec, seed: u64) -> Result<()> {
    fs::create_dir_all(dir)?;
    let (d_in, d_sae) = (spec.d_in, spec.d_sae);
    let mut r = Rng::derive(seed, 3, 0);
    let b_enc: Vec<f32> = (0..d_sae).map(|_| -0.05 * r.f64() as f32).collect();
    let b_dec: Vec<f32> = (0..d_in).map(|_| 0.01 * r.normal() as f32).collect();
    let cfg = serde_json::json!({
        "architecture": "topk",
        "activation_fn": "topk",
        "activation_fn_kwargs": {"k": spec.l0},
        "k": spec.l0,
        "d_in": d_in,
        "d_sae": d_sae,
        "hook_name": "blocks.8.hook_resid_post",
        "hook_layer": 8,
        "model_name": "synthetic-gpt2-small",
        "dtype": "float32",
        "apply_b_dec_to_input": true,
        "normalize_activations": "none",
        "context_size": spec.doc_len,
    });
    fs::write(dir.join("cfg.json"), serde_json::to_vec_pretty(&cfg)?)?;
    let spec_of = |name, shape: Vec<usize>| Spec {
        name,
        dtype: Dtype::F32,
        shape,
    };
    let w = StWriter::create(
        &dir.join("sae_weights.safetensors"),
        &[
            spec_of("W_enc", vec![d_in, d_sae]),
            spec_of("W_dec", vec![d_sae, d_in]),
            spec_of("b_enc", vec![d_sae]),
            spec_of("b_dec", vec![d_in]),
        ],
    )?;
    let (enc_at, dec_at) = (w.offsets[0], w.offsets[1]);
    let centroids = centroids(spec, seed);
    for f0 in (0..d_sae).step_by(DICT_BLOCK_ROWS) {
        let f1 = (f0 + DICT_BLOCK_ROWS).min(d_sae);
        let rows = decoder_rows(spec, seed, &centroids, f0..f1);
        w.write_at(dec_at + (f0 * d_in * 4) as u64, &f32_bytes(&rows))?;
        // W_enc[i, f0..f1] = W_dec[f0..f1, i]: one contiguous run per input dimension.
        let columns: Vec<Vec<u8>> = (0..d_in)
            .into_par_iter()
            .map(|i| {
                let col: Vec<f32> = rows.chunks_exact(d_in).map(|row| row[i]).collect();
                f32_bytes(&col)
            })
            .collect();
        for (i, col) in columns.iter().enumerate() {
            w.write_at(enc_at + ((i * d_sae + f0) * 4) as u64, col)?;
        }
    }
    w.write_at(w.offsets[2], &f32_bytes(&b_enc))?;
    w.write_at(w.offsets[3], &f32_bytes(&b_dec))?;
    Ok(())
}

/// Documents as JSON lines, token ids Zipf over a GPT-2-sized vocabulary.
pub fn write_tokens(path: &Path, spec: &ScaleSpec, seed: u64) -> Result<()> {
    let zipf = Zipf::new(spec.vocab, 1.1);
    let lines: Vec<String> = (0..spec.docs)
        .into_par_iter()
        .map(|doc| {
            let mut r = Rng::derive(seed, 4, doc as u64);
            let ids: Vec<usize> = (0..spec.doc_len)
                .map(|p| if p == 0 { 50_256 } else { zipf.sample(&mut r) })
                .collect();
            let toks: Vec<String> = ids
                .iter()
                .map(|&i| {
                    if i == 50_256 {
                        "<|endoftext|>".to_string()
                    } else {
                        format!(" w{i}")
                    }
                })
                .collect();
            serde_json::json!({"doc": doc, "tokens": toks, "token_ids": ids, "source": "synthetic"})
                .to_string()
        })
        .collect();
    let mut w = BufWriter::new(fs::File::create(path)?);
    for l in lines {
        w.write_all(l.as_bytes())?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    Ok(())
}

/// Activations of one document: per token, `l0 ± l0/2` distinct features drawn Zipf (rank →
/// feature through a fixed permutation), values log-normal with a per-feature scale.
fn doc_activations(
    spec: &ScaleSpec,
    seed: u64,
    doc: usize,
    zipf: &Zipf,
    rank_to_feature: &[u32],
    feature_mu: &[f32],
) -> Vec<(u32, u32, f32)> {
    let mut r = Rng::derive(seed, 5, doc as u64);
    let mut out = Vec::with_capacity(spec.doc_len * spec.l0 * 3 / 2);
    let mut tok: Vec<u32> = Vec::with_capacity(spec.l0 * 2);
    for pos in 0..spec.doc_len as u32 {
        let n = spec.l0 / 2 + r.below(spec.l0 as u64 + 1) as usize;
        tok.clear();
        while tok.len() < n {
            let f = rank_to_feature[zipf.sample(&mut r)];
            if !tok.contains(&f) {
                tok.push(f);
            }
        }
        tok.sort_unstable();
        for &f in &tok {
            let v = (feature_mu[f as usize] + 0.6 * r.normal() as f32).exp();
            out.push((pos, f, v.min(60_000.0)));
        }
    }
    out
}

/// Writes the latents files (int32 `locations [n,3]`, float32 `activations [n]`, absolute latent
/// ids), `docs_per_file` documents each, and returns them with the nonzero counts.
pub fn write_latents(
    dir: &Path,
    spec: &ScaleSpec,
    seed: u64,
) -> Result<(Vec<PathBuf>, u64, Vec<u64>)> {
    fs::create_dir_all(dir)?;
    let zipf = Zipf::new(spec.d_sae, spec.zipf_s);
    let rank_to_feature = Rng::derive(seed, 6, 0).permutation(spec.d_sae);
    let mut r = Rng::derive(seed, 7, 0);
    let feature_mu: Vec<f32> = (0..spec.d_sae).map(|_| 0.5 * r.normal() as f32).collect();
    let width = spec.split_width();
    let mut split_counts = vec![0u64; spec.flat_splits];
    let mut files = Vec::new();
    let mut nnz = 0u64;
    for (i, start) in (0..spec.docs).step_by(spec.docs_per_file).enumerate() {
        let end = (start + spec.docs_per_file).min(spec.docs);
        let per_doc: Vec<Vec<(u32, u32, f32)>> = (start..end)
            .into_par_iter()
            .map(|d| doc_activations(spec, seed, d, &zipf, &rank_to_feature, &feature_mu))
            .collect();
        let n: usize = per_doc.iter().map(Vec::len).sum();
        let mut loc = Vec::with_capacity(n * 12);
        let mut val = Vec::with_capacity(n * 4);
        for (j, acts) in per_doc.iter().enumerate() {
            let doc = (start + j) as i32;
            for &(pos, f, v) in acts {
                loc.extend_from_slice(&doc.to_le_bytes());
                loc.extend_from_slice(&(pos as i32).to_le_bytes());
                loc.extend_from_slice(&(f as i32).to_le_bytes());
                val.extend_from_slice(&v.to_le_bytes());
                split_counts[f as usize / width] += 1;
            }
        }
        let path = dir.join(format!("latents_{i:04}.safetensors"));
        write_file(
            &path,
            &[
                (
                    Spec {
                        name: "locations",
                        dtype: Dtype::I32,
                        shape: vec![n, 3],
                    },
                    &loc,
                ),
                (
                    Spec {
                        name: "activations",
                        dtype: Dtype::F32,
                        shape: vec![n],
                    },
                    &val,
                ),
            ],
        )?;
        nnz += n as u64;
        files.push(path);
    }
    Ok((files, nnz, split_counts))
}

/// The whole corpus under `dir`.
pub fn generate(dir: &Path, spec: &ScaleSpec, seed: u64) -> Result<Corpus> {
    let dict_dir = dir.join("sae");
    write_dictionary(&dict_dir, spec, seed)?;
    let tokens_path = dir.join("tokens.jsonl");
    write_tokens(&tokens_path, spec, seed)?;
    let (latents, nnz, split_counts) = write_latents(&dir.join("latents"), spec, seed)?;
    Ok(Corpus {
        dict_dir,
        tokens_path,
        latents,
        nnz,
        split_counts,
    })
}

/// Only the dictionary (for runs that measure neither storage nor queries over activations).
pub fn generate_dictionary(dir: &Path, spec: &ScaleSpec, seed: u64) -> Result<Corpus> {
    let dict_dir = dir.join("sae");
    write_dictionary(&dict_dir, spec, seed)?;
    Ok(Corpus {
        dict_dir,
        tokens_path: PathBuf::new(),
        latents: Vec::new(),
        nnz: 0,
        split_counts: Vec::new(),
    })
}

/// Dense inputs for the encode benchmark: each row a sum of ~l0 decoder rows with log-normal
/// weights plus small noise (what a residual stream an SAE fits looks like to it).
pub fn dense_rows(spec: &ScaleSpec, w_dec: &[f32], rows: usize, seed: u64) -> Vec<f32> {
    let d = spec.d_in;
    let mut x = vec![0f32; rows * d];
    x.par_chunks_mut(d).enumerate().for_each(|(i, row)| {
        let mut r = Rng::derive(seed, 8, i as u64);
        for _ in 0..spec.l0 {
            let f = r.below(spec.d_sae as u64) as usize;
            let a = (0.6 * r.normal()).exp() as f32;
            for (x, w) in row.iter_mut().zip(&w_dec[f * d..(f + 1) * d]) {
                *x += a * w;
            }
        }
        for x in row.iter_mut() {
            *x += 0.05 * r.normal() as f32;
        }
    });
    x
}

/// A layered DAG in circuit-tracer JSON: `layers` layers of `nodes / layers` nodes (layer 0:
/// embeddings, every tenth other node an error node), one target logit, `edges` distinct edges
/// from a layer to a later one (5% straight into the logit). Returns the target's node id.
pub fn write_graph(path: &Path, nodes: usize, edges: usize, seed: u64) -> Result<String> {
    let layers = 25;
    let per = nodes / layers;
    let mut r = Rng::derive(seed, 9, 0);
    let id = |i: usize| format!("{}_{}_{}", i / per, i, i % 16);
    let mut w = BufWriter::new(fs::File::create(path)?);
    let prompt: Vec<String> = (0..16).map(|i| format!(" t{i}")).collect();
    write!(
        w,
        "{{\"metadata\":{{\"slug\":\"bench\",\"prompt\":\"synthetic\",\"prompt_tokens\":{}}},\"qParams\":{{}},\"nodes\":[",
        serde_json::to_string(&prompt)?
    )?;
    for i in 0..nodes {
        let kind = if i < per {
            "embedding"
        } else if i % 10 == 0 {
            "mlp reconstruction error"
        } else {
            "cross layer transcoder"
        };
        let node = serde_json::json!({
            "node_id": id(i), "feature": i, "layer": (i / per).to_string(), "ctx_idx": i % 16,
            "feature_type": kind, "is_target_logit": false, "clerp": "",
            "activation": 1.0, "influence": null,
        });
        write!(w, "{node},")?;
    }
    let target = "26_0_15".to_string();
    let logit = serde_json::json!({
        "node_id": target, "feature": 0, "layer": "26", "ctx_idx": 15, "feature_type": "logit",
        "token_prob": 0.4, "is_target_logit": true, "clerp": "Output \" Austin\" (p=0.4)",
    });
    write!(w, "{logit}],\"links\":[")?;
    let mut seen = std::collections::HashSet::new();
    let mut first = true;
    while seen.len() < edges {
        let s = r.below((nodes - per) as u64) as usize;
        let ls = s / per;
        let t = if r.below(20) == 0 {
            usize::MAX
        } else {
            let lt = ls + 1 + r.below((layers - ls - 1).max(1) as u64) as usize;
            if lt >= layers {
                continue;
            }
            lt * per + r.below(per as u64) as usize
        };
        if !seen.insert((s, t)) {
            continue;
        }
        let tid = if t == usize::MAX {
            target.clone()
        } else {
            id(t)
        };
        let weight = (r.f64() - 0.2) * 2.0;
        if !first {
            w.write_all(b",")?;
        }
        first = false;
        write!(
            w,
            "{{\"source\":\"{}\",\"target\":\"{}\",\"weight\":{:.6}}}",
            id(s),
            tid,
            weight
        )?;
    }
    w.write_all(b"]}")?;
    w.flush()?;
    Ok(target)
}
