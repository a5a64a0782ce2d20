//! Integration tests of the format decoders (engine/src/formats) and the encoder (engine/src/encode.rs).
//!
//! Every test writes its inputs into a temp dir with known values and checks that they read back
//! exactly; bad inputs must give an error naming the file and the problem; arbitrary bytes must
//! never panic. Run with `-- --nocapture` to see the fixture-reproduction numbers.

use proptest::prelude::*;
use saedb_engine::encode::Encoder;
use saedb_engine::formats::{
    delphi::read_latents, dense::read_dense, npy, sae::load_sae, sae::Sae, tokens::read_tokens,
    vocab::read_vocab,
};
use saedb_engine::Architecture;
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

// ------------------------------------------------------------------------------------------------
// helpers

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

fn shared_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data")
}

/// A tensor to write: dtype, shape, little-endian bytes.
struct T(Dtype, Vec<usize>, Vec<u8>);

fn f32s(shape: &[usize], v: &[f32]) -> T {
    T(
        Dtype::F32,
        shape.to_vec(),
        v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    )
}
fn f16s(shape: &[usize], v: &[f32]) -> T {
    T(
        Dtype::F16,
        shape.to_vec(),
        v.iter()
            .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
            .collect(),
    )
}
fn bf16s(shape: &[usize], v: &[f32]) -> T {
    T(
        Dtype::BF16,
        shape.to_vec(),
        v.iter()
            .flat_map(|x| half::bf16::from_f32(*x).to_le_bytes())
            .collect(),
    )
}
fn i32s(shape: &[usize], v: &[i32]) -> T {
    T(
        Dtype::I32,
        shape.to_vec(),
        v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    )
}
fn u16s(shape: &[usize], v: &[u16]) -> T {
    T(
        Dtype::U16,
        shape.to_vec(),
        v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    )
}

fn st_bytes(tensors: &[(&str, &T)]) -> Vec<u8> {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, t)| {
            (
                n.to_string(),
                TensorView::new(t.0, t.1.clone(), &t.2).unwrap(),
            )
        })
        .collect();
    safetensors::serialize(views, &None).unwrap()
}

fn write_st(path: &Path, tensors: &[(&str, &T)]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, st_bytes(tensors)).unwrap();
}

/// A version-1 .npy file.
fn npy_bytes(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_s = if shape.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_s}, }}");
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut v = b"\x93NUMPY\x01\x00".to_vec();
    v.extend_from_slice(&(h.len() as u16).to_le_bytes());
    v.extend_from_slice(h.as_bytes());
    v.extend_from_slice(data);
    v
}

fn npy_f32(shape: &[usize], v: &[f32]) -> Vec<u8> {
    npy_bytes(
        "<f4",
        shape,
        &v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>(),
    )
}

/// A zip of (name, bytes); odd entries deflated, even entries stored.
fn write_zip(path: &Path, entries: &[(&str, Vec<u8>)]) {
    use zip::write::SimpleFileOptions;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (i, (name, bytes)) in entries.iter().enumerate() {
        let method = if i % 2 == 1 {
            zip::CompressionMethod::Deflated
        } else {
            zip::CompressionMethod::Stored
        };
        z.start_file(
            *name,
            SimpleFileOptions::default().compression_method(method),
        )
        .unwrap();
        z.write_all(bytes).unwrap();
    }
    z.finish().unwrap();
}

/// Deterministic pseudo-random values in [-1, 1), multiples of 1/64 (exact in f16 and bf16).
fn vals(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) % 128) as f32 / 64.0 - 1.0
        })
        .collect()
}

/// Pseudo-random continuous values (no ties).
fn cvals(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed ^ 0x9E3779B97F4A7C15;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0
        })
        .collect()
}

fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut o = vec![0.0; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            o[c * rows + r] = v[r * cols + c];
        }
    }
    o
}

fn err_string<T: std::fmt::Debug>(r: saedb_engine::Result<T>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.to_string(),
    }
}

fn assert_msg(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "error message {msg:?} lacks {p:?}");
    }
}

/// Known small weights: d_in 4, d_sae 6.
struct W {
    w_enc: Vec<f32>,
    b_enc: Vec<f32>,
    w_dec: Vec<f32>,
    b_dec: Vec<f32>,
    thr: Vec<f32>,
}
const DI: usize = 4;
const DS: usize = 6;
fn weights() -> W {
    W {
        w_enc: vals(DI * DS, 1),
        b_enc: vals(DS, 2),
        w_dec: vals(DS * DI, 3),
        b_dec: vals(DI, 4),
        thr: vals(DS, 5).iter().map(|x| x.abs()).collect(),
    }
}

fn write_saelens(dir: &Path, cfg: serde_json::Value, w: &W, jumprelu: bool) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("cfg.json"), cfg.to_string()).unwrap();
    let (we, be, wd, bd, th) = (
        f32s(&[DI, DS], &w.w_enc),
        f32s(&[DS], &w.b_enc),
        f32s(&[DS, DI], &w.w_dec),
        f32s(&[DI], &w.b_dec),
        f32s(&[DS], &w.thr),
    );
    let mut t = vec![
        ("W_enc", &we),
        ("b_enc", &be),
        ("W_dec", &wd),
        ("b_dec", &bd),
    ];
    if jumprelu {
        t.push(("threshold", &th));
    }
    write_st(&dir.join("sae_weights.safetensors"), &t);
}

fn assert_weights(s: &Sae, w: &W) {
    assert_eq!((s.d_in, s.d_sae), (DI, DS));
    assert_eq!(s.w_enc, w.w_enc);
    assert_eq!(s.b_enc, w.b_enc);
    assert_eq!(s.w_dec, w.w_dec);
    assert_eq!(s.b_dec, w.b_dec);
}

// ------------------------------------------------------------------------------------------------
// brute-force reference encoder (plain loops, no candle)

fn reference(s: &Sae, x: &[f32], n: usize) -> Vec<Vec<(u32, f32)>> {
    (0..n)
        .map(|r| {
            let row = &x[r * s.d_in..(r + 1) * s.d_in];
            let mut pre = vec![0f32; s.d_sae];
            for (f, p) in pre.iter_mut().enumerate() {
                let mut acc = 0f64;
                for (i, (x, b)) in row.iter().zip(&s.b_dec).enumerate() {
                    let xi = if s.apply_b_dec_to_input { x - b } else { *x };
                    acc += xi as f64 * s.w_enc[i * s.d_sae + f] as f64;
                }
                *p = (acc + s.b_enc[f] as f64) as f32;
            }
            let mut out = Vec::new();
            match s.architecture {
                Architecture::Relu => {
                    for (f, v) in pre.iter().enumerate() {
                        if *v > 0.0 {
                            out.push((f as u32, *v));
                        }
                    }
                }
                Architecture::JumpRelu => {
                    let t = s.threshold.as_ref().unwrap();
                    for (f, v) in pre.iter().enumerate() {
                        if *v > t[f] && *v > 0.0 {
                            out.push((f as u32, *v));
                        }
                    }
                }
                Architecture::GroupMax => {
                    let size = s.d_sae / s.k.unwrap();
                    for g in 0..s.k.unwrap() {
                        let group = &pre[g * size..(g + 1) * size];
                        let mut best = 0;
                        for (i, v) in group.iter().enumerate() {
                            if *v > group[best] {
                                best = i;
                            }
                        }
                        if group[best] > 0.0 {
                            out.push(((g * size + best) as u32, group[best]));
                        }
                    }
                }
                Architecture::TopK => {
                    let k = s.k.unwrap();
                    let mut idx: Vec<usize> = (0..s.d_sae).collect();
                    // stable sort: ties keep the lower index first
                    idx.sort_by(|a, b| pre[*b].partial_cmp(&pre[*a]).unwrap());
                    let mut keep: Vec<usize> = idx[..k].to_vec();
                    keep.sort();
                    for f in keep {
                        if pre[f] > 0.0 {
                            out.push((f as u32, pre[f]));
                        }
                    }
                }
                other => panic!("no reference encoder for {other} dictionaries"),
            }
            out
        })
        .collect()
}

fn assert_codes_close(got: &[Vec<(u32, f32)>], want: &[Vec<(u32, f32)>]) {
    assert_eq!(got.len(), want.len());
    for (r, (g, w)) in got.iter().zip(want).enumerate() {
        let gi: Vec<u32> = g.iter().map(|p| p.0).collect();
        let wi: Vec<u32> = w.iter().map(|p| p.0).collect();
        assert_eq!(gi, wi, "row {r}: features differ");
        for ((_, a), (_, b)) in g.iter().zip(w) {
            assert!(
                (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                "row {r}: {a} vs {b}"
            );
        }
    }
}

fn random_sae(arch: Architecture, d_in: usize, d_sae: usize, apply: bool) -> Sae {
    Sae {
        architecture: arch,
        d_in,
        d_sae,
        k: matches!(arch, Architecture::TopK | Architecture::GroupMax).then_some(5),
        apply_b_dec_to_input: apply,
        hook: None,
        layer: None,
        model: None,
        source_format: "saelens",
        w_enc: cvals(d_in * d_sae, 11),
        b_enc: cvals(d_sae, 12).iter().map(|x| x * 0.3).collect(),
        w_dec: cvals(d_sae * d_in, 13),
        b_dec: cvals(d_in, 14),
        // Signed: a negative threshold must not let negative values through (ReLU first).
        threshold: (arch == Architecture::JumpRelu)
            .then(|| cvals(d_sae, 15).iter().map(|x| x * 0.5).collect()),
    }
}

// ------------------------------------------------------------------------------------------------
// fixture reproduction

fn reproduce(layer: u32) {
    let fx = fixtures().join("minilm-mini");
    let sae = load_sae(&fx.join(format!("sae_L{layer}"))).unwrap();
    assert_eq!(sae.architecture, Architecture::TopK);
    let dense = read_dense(&fx.join(format!("resid_L{layer}.safetensors"))).unwrap();
    assert_eq!(dense.d_in, sae.d_in);
    let lat = read_latents(&fx.join(format!("latents_L{layer}.safetensors"))).unwrap();
    let mut expected: HashMap<(u32, u32), Vec<(u32, f32)>> = HashMap::new();
    for i in 0..lat.len() {
        expected
            .entry((lat.doc[i], lat.pos[i]))
            .or_default()
            .push((lat.latent[i], lat.value[i]));
    }
    let enc = Encoder::new(&sae).unwrap();
    let mut got = Vec::new();
    for start in (0..dense.n).step_by(1024) {
        let m = 1024.min(dense.n - start);
        let x = &dense.activations[start * dense.d_in..(start + m) * dense.d_in];
        got.extend(enc.encode(x, m).unwrap());
    }
    let (mut matched, mut swaps, mut max_rel) = (0usize, 0usize, 0f32);
    let mut rows_seen = 0usize;
    for (r, code) in got.iter().enumerate() {
        let key = dense.doc_pos[r];
        let want = expected.get(&key).cloned().unwrap_or_default();
        rows_seen += 1;
        let want_map: BTreeMap<u32, f32> = want.iter().cloned().collect();
        let got_map: BTreeMap<u32, f32> = code.iter().cloned().collect();
        let only_got: Vec<u32> = got_map
            .keys()
            .filter(|f| !want_map.contains_key(f))
            .cloned()
            .collect();
        let only_want: Vec<u32> = want_map
            .keys()
            .filter(|f| !got_map.contains_key(f))
            .cloned()
            .collect();
        for (f, v) in &got_map {
            if let Some(w) = want_map.get(f) {
                matched += 1;
                let rel = (v - w).abs() / w.abs().max(1e-6);
                max_rel = max_rel.max(rel);
                assert!(rel <= 1e-4, "L{layer} {key:?} latent {f}: {v} vs {w}");
            }
        }
        if !only_got.is_empty() || !only_want.is_empty() {
            // A rank-k boundary swap: equal counts, and the swapped pre-activations within 1e-5.
            assert_eq!(
                only_got.len(),
                only_want.len(),
                "L{layer} {key:?}: {code:?} vs {want:?}"
            );
            let row = &dense.activations[r * dense.d_in..(r + 1) * dense.d_in];
            let pre = enc.pre_activations(row, 1).unwrap();
            for (a, b) in only_got.iter().zip(&only_want) {
                let (pa, pb) = (pre[*a as usize], pre[*b as usize]);
                assert!(
                    (pa - pb).abs() < 1e-5,
                    "L{layer} {key:?}: swap {a} ({pa}) / {b} ({pb})"
                );
                swaps += 1;
            }
        }
    }
    assert_eq!(
        rows_seen,
        expected.len(),
        "every latent row has a dense row"
    );
    // Independent check of the first rows against the plain-loop (f64 accumulation) reference.
    let m = 32.min(dense.n);
    let want = reference(&sae, &dense.activations[..m * dense.d_in], m);
    for (r, (g, w)) in got.iter().zip(&want).enumerate() {
        let gi: Vec<u32> = g.iter().map(|p| p.0).collect();
        let wi: Vec<u32> = w.iter().map(|p| p.0).collect();
        assert_eq!(
            gi, wi,
            "L{layer} row {r}: features differ from the reference"
        );
        for ((_, a), (_, b)) in g.iter().zip(w) {
            assert!(
                (a - b).abs() <= 1e-4 * b.abs().max(1e-3),
                "row {r}: {a} vs {b}"
            );
        }
    }
    println!(
        "L{layer}: {} rows, {} expected latents, {matched} matched, {swaps} boundary swaps, max relative error {max_rel:e}",
        dense.n,
        lat.len()
    );
    assert_eq!(matched + swaps, lat.len());
    assert!(swaps * 1000 <= lat.len(), "too many swaps: {swaps}");
}

#[test]
fn encoding_fixture_l2_reproduces_latents() {
    reproduce(2);
}

#[test]
fn encoding_fixture_l4_reproduces_latents() {
    reproduce(4);
}

// ------------------------------------------------------------------------------------------------
// SAE formats round trip

#[test]
fn saelens_flat_layout() {
    let d = tempfile::tempdir().unwrap();
    let w = weights();
    let cfg = serde_json::json!({
        "architecture": "standard", "activation_fn_str": "topk", "activation_fn_kwargs": {"k": 2},
        "d_in": DI, "d_sae": DS, "hook_name": "blocks.3.hook_resid_post", "hook_layer": 3,
        "model_name": "gpt2-small", "apply_b_dec_to_input": true, "normalize_activations": "none"
    });
    write_saelens(d.path(), cfg, &w, false);
    let s = load_sae(d.path()).unwrap();
    assert_weights(&s, &w);
    assert_eq!(s.architecture, Architecture::TopK);
    assert_eq!(s.k, Some(2));
    assert!(s.apply_b_dec_to_input);
    assert_eq!(s.hook.as_deref(), Some("blocks.3.hook_resid_post"));
    assert_eq!(s.layer, Some(3));
    assert_eq!(s.model.as_deref(), Some("gpt2-small"));
    assert_eq!(s.source_format, "saelens");
    assert_eq!(s.threshold, None);
    // the weights file itself also loads
    let s2 = load_sae(&d.path().join("sae_weights.safetensors")).unwrap();
    assert_eq!(s, s2);
}

#[test]
fn saelens_v6_layout_jumprelu_and_relu() {
    let d = tempfile::tempdir().unwrap();
    let w = weights();
    let cfg = serde_json::json!({
        "d_in": DI, "d_sae": DS, "dtype": "float32", "device": "cpu", "apply_b_dec_to_input": false,
        "normalize_activations": "none", "reshape_activations": "none", "architecture": "jumprelu",
        "metadata": {"model_name": "gemma-2-2b", "hook_name": "blocks.5.hook_resid_post",
                      "hook_head_index": null, "prepend_bos": true, "sae_lens_version": "6.5.0"}
    });
    write_saelens(&d.path().join("j"), cfg, &w, true);
    let s = load_sae(&d.path().join("j")).unwrap();
    assert_weights(&s, &w);
    assert_eq!(s.architecture, Architecture::JumpRelu);
    assert_eq!(s.threshold.as_deref(), Some(&w.thr[..]));
    assert!(!s.apply_b_dec_to_input);
    assert_eq!((s.layer, s.model.as_deref()), (Some(5), Some("gemma-2-2b")));
    assert_eq!(s.k, None);

    let cfg = serde_json::json!({"d_in": DI, "d_sae": DS, "architecture": "topk", "k": 3,
        "metadata": {"hook_name": "blocks.1.hook_mlp_out"}});
    write_saelens(&d.path().join("t"), cfg, &w, false);
    let s = load_sae(&d.path().join("t")).unwrap();
    assert_eq!(
        (s.architecture, s.k, s.layer),
        (Architecture::TopK, Some(3), Some(1))
    );
    assert!(s.apply_b_dec_to_input, "SAELens default");

    let cfg = serde_json::json!({"d_in": DI, "d_sae": DS, "architecture": "standard",
        "metadata": {"hook_name": "blocks.1.hook_mlp_out"}});
    write_saelens(&d.path().join("r"), cfg, &w, false);
    let s = load_sae(&d.path().join("r")).unwrap();
    assert_eq!((s.architecture, s.k), (Architecture::Relu, None));
}

#[test]
fn saelens_half_precision_weights() {
    let d = tempfile::tempdir().unwrap();
    let w = weights();
    std::fs::write(
        d.path().join("cfg.json"),
        serde_json::json!({"architecture": "standard", "d_in": DI, "d_sae": DS}).to_string(),
    )
    .unwrap();
    let (we, be, wd, bd) = (
        f16s(&[DI, DS], &w.w_enc),
        bf16s(&[DS], &w.b_enc),
        f16s(&[DS, DI], &w.w_dec),
        bf16s(&[DI], &w.b_dec),
    );
    write_st(
        &d.path().join("sae_weights.safetensors"),
        &[
            ("W_enc", &we),
            ("b_enc", &be),
            ("W_dec", &wd),
            ("b_dec", &bd),
        ],
    );
    let s = load_sae(d.path()).unwrap();
    assert_weights(&s, &w);
}

fn write_sparsify(hook_dir: &Path, w: &W, cfg: serde_json::Value) {
    std::fs::create_dir_all(hook_dir).unwrap();
    std::fs::write(hook_dir.join("cfg.json"), cfg.to_string()).unwrap();
    let (we, be, wd, bd) = (
        bf16s(&[DS, DI], &transpose(&w.w_enc, DI, DS)),
        f32s(&[DS], &w.b_enc),
        f32s(&[DS, DI], &w.w_dec),
        f32s(&[DI], &w.b_dec),
    );
    write_st(
        &hook_dir.join("sae.safetensors"),
        &[
            ("encoder.weight", &we),
            ("encoder.bias", &be),
            ("W_dec", &wd),
            ("b_dec", &bd),
        ],
    );
}

#[test]
fn sparsify_folder_and_parent() {
    let d = tempfile::tempdir().unwrap();
    let w = weights();
    let cfg = serde_json::json!({"expansion_factor": 32, "normalize_decoder": true, "num_latents": DS,
        "k": 2, "multi_topk": false, "skip_connection": false, "d_in": DI});
    write_sparsify(&d.path().join("layers.6"), &w, cfg);
    for p in [
        d.path().join("layers.6"),
        d.path().to_path_buf(),
        d.path().join("layers.6/sae.safetensors"),
    ] {
        let s = load_sae(&p).unwrap();
        assert_weights(&s, &w);
        assert_eq!((s.architecture, s.k), (Architecture::TopK, Some(2)));
        assert!(s.apply_b_dec_to_input);
        assert_eq!(s.hook.as_deref(), Some("layers.6"));
        assert_eq!(s.layer, Some(6));
        assert_eq!(s.source_format, "sparsify");
    }
    // num_latents 0: d_sae = expansion_factor * d_in, which must match
    let cfg = serde_json::json!({"expansion_factor": 32, "num_latents": 0, "k": 2});
    write_sparsify(&d.path().join("layers.7"), &w, cfg);
    let msg = err_string(load_sae(&d.path().join("layers.7")));
    assert_msg(
        &msg,
        &["cfg.json", "expansion_factor × d_in = 128", "6 latents"],
    );
    // two hookpoints: the parent is ambiguous
    let msg = err_string(load_sae(d.path()));
    assert_msg(&msg, &["2 hookpoints", "layers.6", "layers.7"]);
}

fn gemmascope_npz_entries(w: &W) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("W_enc.npy", npy_f32(&[DI, DS], &w.w_enc)),
        ("W_dec.npy", npy_f32(&[DS, DI], &w.w_dec)),
        ("b_enc.npy", npy_f32(&[DS], &w.b_enc)),
        ("b_dec.npy", npy_f32(&[DI], &w.b_dec)),
        ("threshold.npy", npy_f32(&[DS], &w.thr)),
    ]
}

#[test]
fn gemmascope_npz() {
    let d = tempfile::tempdir().unwrap();
    let w = weights();
    let p = d.path().join("layer_7/width_16k/average_l0_82/params.npz");
    write_zip(&p, &gemmascope_npz_entries(&w));
    for path in [p.clone(), p.parent().unwrap().to_path_buf()] {
        let s = load_sae(&path).unwrap();
        assert_weights(&s, &w);
        assert_eq!(s.architecture, Architecture::JumpRelu);
        assert!(!s.apply_b_dec_to_input);
        assert_eq!(s.threshold.as_deref(), Some(&w.thr[..]));
        assert_eq!(s.layer, Some(7));
        assert_eq!(s.source_format, "gemmascope");
    }
}

#[test]
fn gemmascope2_safetensors() {
    let d = tempfile::tempdir().unwrap();
    let w = weights();
    let (we, be, wd, bd, th) = (
        f32s(&[DI, DS], &w.w_enc),
        f32s(&[DS], &w.b_enc),
        bf16s(&[DS, DI], &w.w_dec),
        f32s(&[DI], &w.b_dec),
        f32s(&[DS], &w.thr),
    );
    let p = d
        .path()
        .join("resid_post/layer_12_width_16k_l0_small/params.safetensors");
    write_st(
        &p,
        &[
            ("w_enc", &we),
            ("b_enc", &be),
            ("w_dec", &wd),
            ("b_dec", &bd),
            ("threshold", &th),
        ],
    );
    for path in [p.clone(), p.parent().unwrap().to_path_buf()] {
        let s = load_sae(&path).unwrap();
        assert_weights(&s, &w);
        assert_eq!(s.architecture, Architecture::JumpRelu);
        assert!(!s.apply_b_dec_to_input);
        assert_eq!(s.threshold.as_deref(), Some(&w.thr[..]));
        assert_eq!(s.source_format, "gemmascope");
        assert_eq!(s.layer, Some(12));
    }
}

// ------------------------------------------------------------------------------------------------
// encoder versus the brute-force reference

#[test]
fn encode_matches_reference_all_architectures() {
    let (d_in, d_sae, n) = (8, 40, 37);
    let x = cvals(n * d_in, 99);
    for arch in [
        Architecture::Relu,
        Architecture::TopK,
        Architecture::JumpRelu,
        Architecture::GroupMax,
    ] {
        for apply in [true, false] {
            let s = random_sae(arch, d_in, d_sae, apply);
            let got = Encoder::new(&s).unwrap().encode(&x, n).unwrap();
            let want = reference(&s, &x, n);
            assert_codes_close(&got, &want);
            assert!(
                got.iter().any(|r| !r.is_empty()),
                "{arch} produced only empty codes"
            );
            if arch == Architecture::TopK {
                assert!(got.iter().all(|r| r.len() <= 5));
            }
        }
    }
}

#[test]
fn encode_topk_ties_prefer_lower_index() {
    let mut s = random_sae(Architecture::TopK, 2, 8, false);
    s.w_enc = vec![0.0; 16];
    s.b_enc = vec![1.0, 2.0, 0.5, 2.0, 2.0, -1.0, 2.0, 0.0];
    s.k = Some(2);
    let got = Encoder::new(&s)
        .unwrap()
        .encode(&[0.3, -0.2, 0.0, 0.0], 2)
        .unwrap();
    assert_eq!(
        got,
        vec![vec![(1, 2.0), (3, 2.0)], vec![(1, 2.0), (3, 2.0)]]
    );
    // fewer than k positive entries: only the positive ones survive the ReLU
    s.b_enc = vec![-1.0, 0.5, -2.0, 0.0, -1.0, -1.0, -1.0, -1.0];
    s.k = Some(3);
    let got = Encoder::new(&s).unwrap().encode(&[0.0, 0.0], 1).unwrap();
    assert_eq!(got, vec![vec![(1, 0.5)]]);
}

#[test]
fn encode_rejects_bad_arguments() {
    let s = random_sae(Architecture::Relu, 4, 6, true);
    let e = Encoder::new(&s).unwrap();
    assert!(e
        .encode(&[0.0; 7], 2)
        .unwrap_err()
        .to_string()
        .contains("expected 8"));
    let msg = e
        .encode(&[0.0, 0.0, 0.0, 0.0, 0.0, f32::NAN, 0.0, 0.0], 2)
        .unwrap_err()
        .to_string();
    assert_msg(&msg, &["row 1", "column 1"]);
    assert!(e.encode(&[], 0).unwrap().is_empty());
}

#[test]
fn encode_loaded_formats_versus_reference() {
    // A loaded Gemma Scope npz (JumpReLU, no b_dec subtraction) and sparsify (TopK, transposed).
    let d = tempfile::tempdir().unwrap();
    let w = weights();
    write_zip(&d.path().join("params.npz"), &gemmascope_npz_entries(&w));
    write_sparsify(
        &d.path().join("sp/layers.0"),
        &w,
        serde_json::json!({"num_latents": DS, "k": 2, "d_in": DI}),
    );
    let x = cvals(10 * DI, 5);
    for p in [d.path().join("params.npz"), d.path().join("sp")] {
        let s = load_sae(&p).unwrap();
        assert_codes_close(
            &Encoder::new(&s).unwrap().encode(&x, 10).unwrap(),
            &reference(&s, &x, 10),
        );
    }
}

// ------------------------------------------------------------------------------------------------
// delphi latents

/// The checked-in split-folder fixture: two splits 0_3 and 4_7 of an 8-latent dictionary over 2
/// sequences of 5 tokens, uint16 locations, float16 values, an int32 tokens matrix.
fn delphi_split_tensors() -> Vec<(&'static str, Vec<u8>)> {
    let tokens = i32s(&[2, 5], &[101, 7, 8, 9, 102, 101, 17, 18, 19, 102]);
    // (seq, pos, local latent, value) per split
    let a: &[(u16, u16, u16, f32)] = &[
        (0, 1, 3, 1.5),
        (0, 1, 0, 0.25),
        (1, 3, 2, 2.0),
        (0, 2, 1, 0.5),
    ];
    let b: &[(u16, u16, u16, f32)] = &[(0, 1, 0, 3.0), (1, 4, 3, 0.125), (1, 3, 1, 1.0)];
    let mk = |rows: &[(u16, u16, u16, f32)]| {
        let loc: Vec<u16> = rows.iter().flat_map(|r| [r.0, r.1, r.2]).collect();
        let act: Vec<f32> = rows.iter().map(|r| r.3).collect();
        let (l, v) = (u16s(&[rows.len(), 3], &loc), f16s(&[rows.len()], &act));
        st_bytes(&[("locations", &l), ("activations", &v), ("tokens", &tokens)])
    };
    vec![("0_3.safetensors", mk(a)), ("4_7.safetensors", mk(b))]
}

#[test]
fn delphi_split_folder_fixture() {
    let dir = fixtures().join("formats/delphi_split");
    let files = delphi_split_tensors();
    if std::env::var_os("SAEDB_REGEN_FIXTURES").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in &files {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    for (name, bytes) in &files {
        let on_disk = std::fs::read(dir.join(name))
            .expect("fixture present (SAEDB_REGEN_FIXTURES=1 writes it)");
        assert_eq!(
            &on_disk, bytes,
            "fixture {name} is what the generator writes"
        );
    }
    let l = read_latents(&dir).unwrap();
    let rows: Vec<(u32, u32, u32, f32)> = (0..l.len())
        .map(|i| (l.doc[i], l.pos[i], l.latent[i], l.value[i]))
        .collect();
    assert_eq!(
        rows,
        vec![
            (0, 1, 0, 0.25),
            (0, 1, 3, 1.5),
            (0, 1, 4, 3.0),
            (0, 2, 1, 0.5),
            (1, 3, 2, 2.0),
            (1, 3, 5, 1.0),
            (1, 4, 7, 0.125),
        ]
    );
    let t = l.tokens.unwrap();
    assert_eq!((t.n_seq, t.ctx), (2, 5));
    assert_eq!(t.ids, vec![101, 7, 8, 9, 102, 101, 17, 18, 19, 102]);
    // the parent of one hookpoint folder works too; a single split file is offset by its start
    let d = tempfile::tempdir().unwrap();
    for (name, bytes) in &files {
        std::fs::create_dir_all(d.path().join("layers.3")).unwrap();
        std::fs::write(d.path().join("layers.3").join(name), bytes).unwrap();
    }
    assert_eq!(read_latents(d.path()).unwrap().len(), 7);
    let one = read_latents(&d.path().join("layers.3/4_7.safetensors")).unwrap();
    assert_eq!(one.latent, vec![4, 5, 7]);
}

#[test]
fn delphi_single_file_fixture() {
    let l = read_latents(&fixtures().join("minilm-mini/latents_L2.safetensors")).unwrap();
    assert_eq!(l.len(), 47536);
    assert!(l.tokens.is_none());
    assert!(l.latent.iter().all(|&f| f < 512));
    assert!(l.value.iter().all(|v| *v > 0.0));
}

/// Rows are checked in parallel tasks within steps of many rows: the error still names the
/// first bad row of the file, not whichever a task found first.
#[test]
fn delphi_bad_rows_far_into_a_file_are_named_exactly() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("big.safetensors");
    let n = 200_000usize;
    let mut loc: Vec<i32> = (0..n)
        .flat_map(|i| [(i / 1000) as i32, (i % 1000) as i32, 7])
        .collect();
    // Bad rows in different parallel tasks of one step (65,536 rows) and in a later step: the
    // first in file order must be reported.
    for (row, latent) in [(150_001usize, -1), (190_000, -5), (131_073, 99_999)] {
        loc[3 * row + 2] = latent;
    }
    let act = f32s(&[n], &vec![1.0; n]);
    let name = "0_99.safetensors";
    let split = d.path().join(name);
    write_st(
        &split,
        &[("locations", &i32s(&[n, 3], &loc)), ("activations", &act)],
    );
    assert_msg(
        &err_string(read_latents(&split)),
        &[name, "row 131073", "latent 99999", "0..=99"],
    );
    loc[3 * 131_073 + 2] = 7;
    write_st(
        &p,
        &[("locations", &i32s(&[n, 3], &loc)), ("activations", &act)],
    );
    assert_msg(
        &err_string(read_latents(&p)),
        &["big.safetensors", "row 150001", "non-negative"],
    );
}

#[test]
fn delphi_bad_inputs() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("x.safetensors");
    let v = f32s(&[2], &[1.0, 2.0]);
    write_st(
        &p,
        &[
            ("locations", &i32s(&[2, 3], &[0, 1, 2, 0, -1, 3])),
            ("activations", &v),
        ],
    );
    assert_msg(
        &err_string(read_latents(&p)),
        &["x.safetensors", "row 1", "non-negative"],
    );
    write_st(
        &p,
        &[
            ("locations", &i32s(&[2, 3], &[0, 1, 2, 0, 1, 3])),
            ("activations", &f32s(&[2], &[1.0, f32::NAN])),
        ],
    );
    assert_msg(
        &err_string(read_latents(&p)),
        &["x.safetensors", "NaN at row 1"],
    );
    write_st(
        &p,
        &[
            ("locations", &i32s(&[2, 2], &[0, 1, 2, 0])),
            ("activations", &v),
        ],
    );
    assert_msg(
        &err_string(read_latents(&p)),
        &["'locations' has shape [2, 2], expected [n, 3]"],
    );
    write_st(
        &p,
        &[
            ("locations", &i32s(&[2, 3], &[0, 1, 2, 0, 1, 3])),
            ("activations", &f32s(&[3], &[1.0; 3])),
        ],
    );
    assert_msg(
        &err_string(read_latents(&p)),
        &["'activations' has shape [3], expected [2]"],
    );
    write_st(
        &p,
        &[
            ("locations", &f32s(&[2, 3], &[0.0; 6])),
            ("activations", &v),
        ],
    );
    assert_msg(
        &err_string(read_latents(&p)),
        &["'locations' has dtype float32, expected an integer dtype"],
    );
    write_st(&p, &[("activations", &v)]);
    assert_msg(
        &err_string(read_latents(&p)),
        &["missing tensor 'locations'", "'activations'"],
    );
    // local latent beyond the split's width
    let s = d.path().join("10_11.safetensors");
    write_st(
        &s,
        &[
            ("locations", &i32s(&[2, 3], &[0, 1, 1, 0, 1, 2])),
            ("activations", &v),
        ],
    );
    assert_msg(
        &err_string(read_latents(&s)),
        &["10_11.safetensors", "row 1 has latent 2", "10..=11"],
    );
    // duplicates
    write_st(
        &p,
        &[
            ("locations", &i32s(&[2, 3], &[0, 1, 2, 0, 1, 2])),
            ("activations", &v),
        ],
    );
    assert_msg(
        &err_string(read_latents(&p)),
        &["duplicate entry", "latent 2"],
    );
    // truncated
    write_st(
        &p,
        &[
            ("locations", &i32s(&[2, 3], &[0, 1, 2, 0, 1, 3])),
            ("activations", &v),
        ],
    );
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 3]).unwrap();
    assert_msg(
        &err_string(read_latents(&p)),
        &["x.safetensors", "truncated file"],
    );
}

// ------------------------------------------------------------------------------------------------
// dense

#[test]
fn dense_fixture_and_npy_npz() {
    let fx = read_dense(&fixtures().join("minilm-mini/resid_L2.safetensors")).unwrap();
    assert_eq!((fx.n, fx.d_in), (2971, 384));
    assert_eq!(fx.doc_pos.len(), 2971);
    assert_eq!(fx.activations.len(), 2971 * 384);

    let d = tempfile::tempdir().unwrap();
    let act = cvals(3 * 4, 3);
    let dp: Vec<i64> = vec![0, 1, 0, 2, 5, 1];
    let dp_bytes: Vec<u8> = dp.iter().flat_map(|x| x.to_le_bytes()).collect();
    let want_dp = vec![(0, 1), (0, 2), (5, 1)];
    // .npz with int64 doc_pos
    write_zip(
        &d.path().join("a.npz"),
        &[
            ("activations.npy", npy_f32(&[3, 4], &act)),
            ("doc_pos.npy", npy_bytes("<i8", &[3, 2], &dp_bytes)),
        ],
    );
    let z = read_dense(&d.path().join("a.npz")).unwrap();
    assert_eq!(
        (z.n, z.d_in, &z.activations, &z.doc_pos),
        (3, 4, &act, &want_dp)
    );
    // .npy + sibling, float16 activations
    let half: Vec<u8> = vals(12, 8)
        .iter()
        .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
        .collect();
    std::fs::write(d.path().join("b.npy"), npy_bytes("<f2", &[3, 4], &half)).unwrap();
    let dp32: Vec<u8> = dp.iter().flat_map(|x| (*x as i32).to_le_bytes()).collect();
    std::fs::write(
        d.path().join("b.doc_pos.npy"),
        npy_bytes("<i4", &[3, 2], &dp32),
    )
    .unwrap();
    let b = read_dense(&d.path().join("b.npy")).unwrap();
    assert_eq!((b.activations, b.doc_pos), (vals(12, 8), want_dp.clone()));
    // safetensors with bf16 activations
    let p = d.path().join("c.safetensors");
    write_st(
        &p,
        &[
            ("activations", &bf16s(&[3, 4], &vals(12, 9))),
            ("doc_pos", &i32s(&[3, 2], &[0, 1, 0, 2, 5, 1])),
        ],
    );
    let c = read_dense(&p).unwrap();
    assert_eq!((c.activations, c.doc_pos), (vals(12, 9), want_dp));
}

#[test]
fn dense_bad_inputs() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("x.safetensors");
    let mut act = vals(12, 1);
    act[9] = f32::INFINITY;
    write_st(
        &p,
        &[
            ("activations", &f32s(&[3, 4], &act)),
            ("doc_pos", &i32s(&[3, 2], &[0; 6])),
        ],
    );
    assert_msg(
        &err_string(read_dense(&p)),
        &["x.safetensors", "inf at row 2, column 1"],
    );
    write_st(
        &p,
        &[
            ("activations", &f32s(&[3, 4], &vals(12, 1))),
            ("doc_pos", &i32s(&[2, 2], &[0; 4])),
        ],
    );
    assert_msg(
        &err_string(read_dense(&p)),
        &["'doc_pos' has shape [2, 2], expected [3, 2]"],
    );
    write_st(
        &p,
        &[
            ("activations", &f32s(&[3, 4], &vals(12, 1))),
            ("doc_pos", &i32s(&[3, 2], &[0, 0, 0, -4, 0, 0])),
        ],
    );
    assert_msg(&err_string(read_dense(&p)), &["'doc_pos' row 1 is (0, -4)"]);
    write_st(
        &p,
        &[
            ("activations", &i32s(&[3, 4], &[0; 12])),
            ("doc_pos", &i32s(&[3, 2], &[0; 6])),
        ],
    );
    assert_msg(
        &err_string(read_dense(&p)),
        &["'activations' has dtype int32"],
    );
    let q = d.path().join("y.npy");
    std::fs::write(&q, npy_f32(&[3, 4], &vals(12, 1))).unwrap();
    assert_msg(&err_string(read_dense(&q)), &["y.npy", "y.doc_pos.npy"]);
    std::fs::write(
        d.path().join("y.doc_pos.npy"),
        npy_bytes("<i4", &[3, 2], &[0u8; 24]),
    )
    .unwrap();
    let full = npy_f32(&[3, 4], &vals(12, 1));
    std::fs::write(&q, &full[..full.len() - 5]).unwrap();
    assert_msg(&err_string(read_dense(&q)), &["y.npy", "truncated file"]);
    write_zip(
        &d.path().join("z.npz"),
        &[("activations.npy", npy_f32(&[3, 4], &vals(12, 1)))],
    );
    assert_msg(
        &err_string(read_dense(&d.path().join("z.npz"))),
        &["z.npz", "missing array 'doc_pos'", "activations"],
    );
}

// ------------------------------------------------------------------------------------------------
// SAE bad inputs

fn saelens_with(d: &Path, tensors: &[(&str, &T)], cfg: serde_json::Value) -> String {
    std::fs::create_dir_all(d).unwrap();
    std::fs::write(d.join("cfg.json"), cfg.to_string()).unwrap();
    write_st(&d.join("sae_weights.safetensors"), tensors);
    err_string(load_sae(d))
}

#[test]
fn sae_bad_inputs() {
    let d = tempfile::tempdir().unwrap();
    let w = weights();
    let cfg = serde_json::json!({"architecture": "standard", "d_in": DI, "d_sae": DS});
    let (we, be, wd, bd) = (
        f32s(&[DI, DS], &w.w_enc),
        f32s(&[DS], &w.b_enc),
        f32s(&[DS, DI], &w.w_dec),
        f32s(&[DI], &w.b_dec),
    );
    let p = d.path().join("s");
    // missing tensor
    let m = saelens_with(
        &p,
        &[("W_enc", &we), ("b_enc", &be), ("W_dec", &wd)],
        cfg.clone(),
    );
    assert_msg(
        &m,
        &[
            "sae_weights.safetensors",
            "missing tensor 'b_dec'",
            "'W_dec' float32 [6, 4]",
        ],
    );
    // wrong shape
    let wd5 = f32s(&[DS, DI + 1], &vals(DS * (DI + 1), 3));
    let m = saelens_with(
        &p,
        &[
            ("W_enc", &we),
            ("b_enc", &be),
            ("W_dec", &wd5),
            ("b_dec", &bd),
        ],
        cfg.clone(),
    );
    assert_msg(
        &m,
        &[
            "sae_weights.safetensors",
            "tensor 'W_dec' has shape [6, 5], expected [6, 4]",
        ],
    );
    // d_in mismatch between tensors
    let bd5 = f32s(&[DI + 1], &vals(DI + 1, 4));
    let m = saelens_with(
        &p,
        &[
            ("W_enc", &we),
            ("b_enc", &be),
            ("W_dec", &wd),
            ("b_dec", &bd5),
        ],
        cfg.clone(),
    );
    assert_msg(
        &m,
        &["tensor 'b_dec' has shape [5], expected [4]", "d_in = 4"],
    );
    // cfg disagrees with the weights
    let m = saelens_with(
        &p,
        &[
            ("W_enc", &we),
            ("b_enc", &be),
            ("W_dec", &wd),
            ("b_dec", &bd),
        ],
        serde_json::json!({"architecture": "standard", "d_in": 8, "d_sae": DS}),
    );
    assert_msg(&m, &["cfg.json", "d_in is 8 in cfg.json", "d_in = 4"]);
    // NaN
    let mut enc = w.w_enc.clone();
    enc[2 * DS + 3] = f32::NAN;
    let wen = f32s(&[DI, DS], &enc);
    let m = saelens_with(
        &p,
        &[
            ("W_enc", &wen),
            ("b_enc", &be),
            ("W_dec", &wd),
            ("b_dec", &bd),
        ],
        cfg.clone(),
    );
    assert_msg(&m, &["tensor 'W_enc' holds NaN at row 2, column 3"]);
    // wrong dtype
    let wei = i32s(&[DI, DS], &[1; DI * DS]);
    let m = saelens_with(
        &p,
        &[
            ("W_enc", &wei),
            ("b_enc", &be),
            ("W_dec", &wd),
            ("b_dec", &bd),
        ],
        cfg.clone(),
    );
    assert_msg(
        &m,
        &["tensor 'W_enc' has dtype int32, expected a floating-point dtype"],
    );
    // truncated file
    let full = st_bytes(&[
        ("W_enc", &we),
        ("b_enc", &be),
        ("W_dec", &wd),
        ("b_dec", &bd),
    ]);
    std::fs::write(p.join("sae_weights.safetensors"), &full[..full.len() - 10]).unwrap();
    assert_msg(
        &err_string(load_sae(&p)),
        &["sae_weights.safetensors", "truncated file", "needs bytes"],
    );
    std::fs::write(p.join("sae_weights.safetensors"), &full[..20]).unwrap();
    assert_msg(
        &err_string(load_sae(&p)),
        &["sae_weights.safetensors", "truncated file"],
    );
    // JumpReLU without threshold
    let m = saelens_with(
        &p,
        &[
            ("W_enc", &we),
            ("b_enc", &be),
            ("W_dec", &wd),
            ("b_dec", &bd),
        ],
        serde_json::json!({"architecture": "jumprelu"}),
    );
    assert_msg(&m, &["missing tensor 'threshold'"]);
    // TopK without k, unsupported architecture, normalisation
    let all = [
        ("W_enc", &we),
        ("b_enc", &be),
        ("W_dec", &wd),
        ("b_dec", &bd),
    ];
    assert_msg(
        &saelens_with(&p, &all, serde_json::json!({"architecture": "topk"})),
        &["cfg.json", "TopK SAE without k"],
    );
    assert_msg(
        &saelens_with(
            &p,
            &all,
            serde_json::json!({"architecture": "topk", "k": 99}),
        ),
        &["k = 99 is out of range"],
    );
    assert_msg(
        &saelens_with(&p, &all, serde_json::json!({"architecture": "gated"})),
        &["unsupported SAE architecture 'gated'"],
    );
    assert_msg(
        &saelens_with(
            &p,
            &all,
            serde_json::json!({"architecture": "standard", "normalize_activations": "layer_norm"}),
        ),
        &["normalize_activations 'layer_norm' is not supported"],
    );
    // cfg.json broken / missing
    std::fs::write(p.join("cfg.json"), "{\"architecture\": ").unwrap();
    assert_msg(&err_string(load_sae(&p)), &["cfg.json", "invalid JSON"]);
    std::fs::remove_file(p.join("cfg.json")).unwrap();
    assert_msg(&err_string(load_sae(&p)), &["missing cfg.json"]);
    // Gemma Scope npz missing threshold, sparsify wrong bias shape
    let mut e = gemmascope_npz_entries(&w);
    e.pop();
    write_zip(&d.path().join("g/params.npz"), &e);
    assert_msg(
        &err_string(load_sae(&d.path().join("g"))),
        &["params.npz", "missing array 'threshold'", "W_enc"],
    );
    let h = d.path().join("sp/layers.1");
    std::fs::create_dir_all(&h).unwrap();
    std::fs::write(h.join("cfg.json"), r#"{"k": 2, "num_latents": 6}"#).unwrap();
    let ew = f32s(&[DS, DI], &vals(DS * DI, 1));
    let eb = f32s(&[DI], &vals(DI, 1));
    write_st(
        &h.join("sae.safetensors"),
        &[
            ("encoder.weight", &ew),
            ("encoder.bias", &eb),
            ("W_dec", &wd),
            ("b_dec", &bd),
        ],
    );
    assert_msg(
        &err_string(load_sae(&h)),
        &[
            "sae.safetensors",
            "tensor 'encoder.bias' has shape [4], expected [6]",
        ],
    );
    // an empty folder
    std::fs::create_dir_all(d.path().join("empty")).unwrap();
    assert_msg(
        &err_string(load_sae(&d.path().join("empty"))),
        &["no SAE found"],
    );
}

// ------------------------------------------------------------------------------------------------
// tokens

#[test]
fn tokens_fixture_and_errors() {
    let docs = read_tokens(&fixtures().join("minilm-mini/tokens.jsonl")).unwrap();
    assert!(!docs.is_empty());
    for d in &docs {
        assert_eq!(d.tokens.len(), d.token_ids.len());
        assert_eq!(d.tokens.first().map(String::as_str), Some("[CLS]"));
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.jsonl");
    std::fs::write(&p, "{\"doc\":0,\"tokens\":[\"a\"]}\n\n{\"doc\":1,\"tokens\":[\"a\",\"b\"],\"token_ids\":[1]}\n").unwrap();
    assert_msg(
        &err_string(read_tokens(&p)),
        &["t.jsonl", "line 3", "2 tokens but 1 token_ids"],
    );
    std::fs::write(&p, "{\"doc\":0,\"tokens\":[\"a\"]}\nnot json\n").unwrap();
    assert_msg(
        &err_string(read_tokens(&p)),
        &["t.jsonl", "line 2", "invalid JSON"],
    );
    std::fs::write(&p, "{\"doc\":0,\"tokens\":\"a\"}\n").unwrap();
    assert_msg(
        &err_string(read_tokens(&p)),
        &["t.jsonl", "line 1", "invalid JSON"],
    );
    std::fs::write(
        &p,
        "{\"doc\":0,\"tokens\":[\"a\"],\"text\":\"hé\",\"source\":\"s\"}",
    )
    .unwrap();
    let d = read_tokens(&p).unwrap();
    assert_eq!(d[0].text.as_deref(), Some("hé"));
    assert_eq!(d[0].source.as_deref(), Some("s"));
    assert!(d[0].token_ids.is_empty());
}

// ------------------------------------------------------------------------------------------------
// vocab

#[test]
fn vocab_orientation_padding_and_tokenizer_json() {
    let d = tempfile::tempdir().unwrap();
    let (nv, dm) = (5, 3);
    let m = vals(nv * dm, 21);
    let vt = d.path().join("vocab.txt");
    std::fs::write(&vt, "[PAD]\nthe\n cat\n##s\n[SEP]\n").unwrap();
    let p = d.path().join("m.safetensors");
    let (emb, wu) = (f32s(&[nv, dm], &m), f16s(&[dm, nv], &transpose(&m, nv, dm)));
    let padded = f32s(&[nv + 2, dm], &vals((nv + 2) * dm, 22));
    write_st(
        &p,
        &[
            ("embed.weight", &emb),
            ("W_U", &wu),
            ("lm_head.weight", &padded),
        ],
    );
    let a = read_vocab(&p, "embed.weight", &vt).unwrap();
    assert_eq!((a.n_vocab, a.d_model), (nv, dm));
    assert_eq!(a.matrix, m);
    assert_eq!(a.tokens, vec!["[PAD]", "the", " cat", "##s", "[SEP]"]);
    let b = read_vocab(&p, "W_U", &vt).unwrap();
    assert_eq!((b.n_vocab, b.d_model, &b.matrix), (nv, dm, &m));
    let c = read_vocab(&p, "lm_head.weight", &vt).unwrap();
    assert_eq!(c.n_vocab, 7);
    assert_eq!(c.tokens[5..], ["<id 5>".to_string(), "<id 6>".to_string()]);
    let msg = err_string(read_vocab(&p, "nope", &vt));
    assert_msg(
        &msg,
        &[
            "m.safetensors",
            "missing tensor 'nope'",
            "'W_U'",
            "'embed.weight'",
            "'lm_head.weight'",
        ],
    );
    // tokenizer.json with a gap filled by added_tokens and one id left unassigned
    let tj = d.path().join("tokenizer.json");
    std::fs::write(
        &tj,
        r#"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "Ġc": 3}},
            "added_tokens": [{"id": 2, "content": "<|endoftext|>", "special": true}]}"#,
    )
    .unwrap();
    let t = read_vocab(&p, "embed.weight", &tj).unwrap();
    assert_eq!(t.tokens, vec!["a", "b", "<|endoftext|>", "Ġc", "<id 4>"]);
    // vocabulary larger than both dimensions
    std::fs::write(&vt, "a\nb\nc\nd\ne\nf\ng\nh\n").unwrap();
    assert_msg(
        &err_string(read_vocab(&p, "embed.weight", &vt)),
        &["[5, 3]", "8 tokens"],
    );
}

#[test]
fn vocab_minilm_dev_shared_data() {
    let dir = shared_data().join("minilm-dev");
    let (m, v) = (
        dir.join("word_embeddings.f16.safetensors"),
        dir.join("vocab.txt"),
    );
    if !m.is_file() || !v.is_file() {
        println!("skipping: {} not present", dir.display());
        return;
    }
    let vm = read_vocab(&m, "embeddings.word_embeddings.weight", &v).unwrap();
    assert_eq!((vm.n_vocab, vm.d_model), (30522, 384));
    assert_eq!(vm.tokens.len(), 30522);
    assert_eq!(vm.tokens[0], "[PAD]");
    assert_eq!(vm.tokens[101], "[CLS]");
    assert_eq!(vm.matrix.len(), 30522 * 384);
}

// ------------------------------------------------------------------------------------------------
// never panic on arbitrary bytes

fn valid_samples() -> Vec<(&'static str, Vec<u8>)> {
    let v = f32s(&[2], &[1.0, 2.0]);
    let l = i32s(&[2, 3], &[0, 1, 2, 0, 1, 3]);
    vec![
        (
            "x.safetensors",
            st_bytes(&[("locations", &l), ("activations", &v)]),
        ),
        ("x.npy", npy_f32(&[2, 3], &[1.0; 6])),
        (
            "x.jsonl",
            b"{\"doc\":0,\"tokens\":[\"a\"],\"token_ids\":[3]}\n".to_vec(),
        ),
        ("x.npz", npz_sample()),
    ]
}

fn npz_sample() -> Vec<u8> {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("s.npz");
    write_zip(
        &p,
        &[
            ("activations.npy", npy_f32(&[2, 3], &[1.0; 6])),
            ("doc_pos.npy", npy_bytes("<i4", &[2, 2], &[0u8; 16])),
        ],
    );
    std::fs::read(&p).unwrap()
}

fn feed_all(dir: &Path, bytes: &[u8]) {
    // Each reader must return (Ok or Err) and never panic.
    for name in [
        "f.safetensors",
        "f.npy",
        "f.npz",
        "f.jsonl",
        "0_9.safetensors",
    ] {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        let _ = read_latents(&p);
        let _ = read_dense(&p);
        let _ = read_tokens(&p);
        let _ = load_sae(&p);
        let _ = npy::read_npy_f32(&p);
        let _ = npy::read_npy_i64(&p);
        let _ = read_vocab(&p, "x", &p);
    }
    // also as the doc_pos sibling of a valid .npy
    std::fs::write(dir.join("g.npy"), npy_f32(&[2, 3], &[1.0; 6])).unwrap();
    std::fs::write(dir.join("g.doc_pos.npy"), bytes).unwrap();
    let _ = read_dense(&dir.join("g.npy"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let d = tempfile::tempdir().unwrap();
        feed_all(d.path(), &bytes);
    }

    #[test]
    fn mutated_valid_files_never_panic(which in 0usize..4, edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6), cut in any::<usize>()) {
        let d = tempfile::tempdir().unwrap();
        let mut bytes = valid_samples()[which].1.clone();
        for (at, b) in edits {
            let i = at % bytes.len();
            bytes[i] = b;
        }
        if cut % 3 == 0 {
            bytes.truncate(cut % (bytes.len() + 1));
        }
        feed_all(d.path(), &bytes);
    }
}

/// Throughput of `encode` on a Gemma-sized TopK SAE (run with `--ignored --nocapture`).
#[test]
#[ignore]
fn encode_throughput() {
    let (d_in, d_sae, n) = (2304, 16384, 4096);
    let mut s = random_sae(Architecture::TopK, d_in, d_sae, true);
    s.k = Some(64);
    let enc = Encoder::new(&s).unwrap();
    let x = cvals(n * d_in, 7);
    let t = std::time::Instant::now();
    let out = enc.encode(&x, n).unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(out.len(), n);
    println!(
        "encode: {n} rows, d_in {d_in}, d_sae {d_sae}: {secs:.2} s, {:.0} rows/s",
        n as f64 / secs
    );
}

fn header_file(entries: &[(String, String, Vec<u64>, u64, u64)], data_len: usize) -> Vec<u8> {
    let mut m = serde_json::Map::new();
    for (name, dtype, shape, s, e) in entries {
        m.insert(
            name.clone(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [s, e]}),
        );
    }
    let h = serde_json::Value::Object(m).to_string();
    let mut v = (h.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(h.as_bytes());
    v.extend(std::iter::repeat_n(0x3fu8, data_len));
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    /// Well-formed JSON headers with hostile shapes and offsets (overflowing products, offsets
    /// past the end, wrong dtypes) must give errors, never panics or huge allocations.
    #[test]
    fn hostile_safetensors_headers_never_panic(
        entries in proptest::collection::vec((
            prop_oneof![Just("locations"), Just("activations"), Just("tokens"), Just("doc_pos"), Just("W_enc"), Just("x")],
            prop_oneof![Just("F32"), Just("F16"), Just("BF16"), Just("I32"), Just("U16"), Just("I64"), Just("F8_E4M3"), Just("Q")],
            proptest::collection::vec(prop_oneof![0u64..4, Just(u64::MAX), Just(1u64 << 62), Just(1u64 << 31)], 0..4),
            prop_oneof![0u64..64, Just(u64::MAX)],
            prop_oneof![0u64..64, Just(u64::MAX), Just(1u64 << 40)],
        ), 0..4),
        data_len in 0usize..64,
    ) {
        let entries: Vec<(String, String, Vec<u64>, u64, u64)> = entries
            .into_iter()
            .map(|(n, d, s, a, b)| (n.to_string(), d.to_string(), s, a, b))
            .collect();
        let d = tempfile::tempdir().unwrap();
        feed_all(d.path(), &header_file(&entries, data_len));
    }
}

/// The reader streams `locations` and `activations` a step at a time (32,768 rows): rows on
/// both sides of step boundaries come back whole and in order, unsorted input is sorted, and
/// an error in a later step names its row in the whole file.
#[test]
fn delphi_rows_across_read_steps() {
    let n = 70_000usize;
    // descending (doc, pos): the reader must sort; latent and value derive from the row
    let row = |i: usize| ((n - 1 - i) / 100, (n - 1 - i) % 100, (i % 7) as i32);
    let mut loc = Vec::with_capacity(3 * n);
    let mut act = Vec::with_capacity(n);
    for i in 0..n {
        let (d, p, f) = row(i);
        loc.extend([d as i32, p as i32, f]);
        act.push(i as f32 + 0.5);
    }
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("many.safetensors");
    let write = |loc: &[i32], act: &[f32]| {
        write_st(
            &p,
            &[
                ("locations", &i32s(&[n, 3], loc)),
                ("activations", &f32s(&[n], act)),
            ],
        )
    };
    write(&loc, &act);
    let l = read_latents(&p).unwrap();
    assert_eq!(l.len(), n);
    for j in 0..n {
        let i = n - 1 - j; // the row that sorts to position j
        let (dd, pp, ff) = row(i);
        assert_eq!(
            (l.doc[j], l.pos[j], l.latent[j], l.value[j]),
            (dd as u32, pp as u32, ff as u32, i as f32 + 0.5),
            "sorted row {j}"
        );
    }
    loc[3 * 50_000 + 1] = -4;
    write(&loc, &act);
    assert_msg(
        &err_string(read_latents(&p)),
        &["many.safetensors", "row 50000", "non-negative"],
    );
    loc[3 * 50_000 + 1] = 0;
    act[65_000] = f32::NAN;
    write(&loc, &act);
    assert_msg(
        &err_string(read_latents(&p)),
        &["many.safetensors", "NaN", "row 65000"],
    );
}

// ------------------------------------------------------------------------------------------------
// files written by the libraries that define the formats (fixtures/real-writers, made by its
// make.py with SAELens 6.54.12, eai-sparsify 1.3.3 and eai-delphi 0.1.3), with the codes each
// library's own `encode` gave on fixed random inputs

use saedb_engine::{NoProgress, Store, StoreInfo};

fn real_writers() -> PathBuf {
    fixtures().join("real-writers")
}

/// A tensor of a reference file, read with the safetensors crate alone (not saedb's readers).
fn st_tensor(path: &Path, name: &str) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(name).unwrap();
    let data = t.data();
    let v = match t.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect(),
        Dtype::I32 => data
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes(b.try_into().unwrap()) as f32)
            .collect(),
        Dtype::I64 => data
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f32)
            .collect(),
        d => panic!("{}: '{name}' has dtype {d:?}", path.display()),
    };
    (t.shape().to_vec(), v)
}

/// The inputs and the library's codes of one case, and what its selection looked at.
struct LibraryCodes {
    rows: usize,
    d_in: usize,
    d_sae: usize,
    x: Vec<f32>,
    doc_pos: Vec<(u32, u32)>,
    /// `[rows, d_sae]`, dense: the library's `encode`.
    codes: Vec<f32>,
    /// `[rows, d_sae]`: the pre-activations the library selects on.
    scores: Vec<f32>,
    threshold: Option<Vec<f32>>,
}

fn library_codes(dir: &Path) -> LibraryCodes {
    let f = dir.join("reference.safetensors");
    let (xs, x) = st_tensor(&f, "activations");
    let (_, dp) = st_tensor(&f, "doc_pos");
    let (cs, codes) = st_tensor(&f, "codes");
    let (_, scores) = st_tensor(&f, "scores");
    let bytes = std::fs::read(&f).unwrap();
    let has_threshold = safetensors::SafeTensors::deserialize(&bytes)
        .unwrap()
        .names()
        .contains(&&"threshold".to_string());
    LibraryCodes {
        rows: xs[0],
        d_in: xs[1],
        d_sae: cs[1],
        x,
        doc_pos: dp.chunks(2).map(|p| (p[0] as u32, p[1] as u32)).collect(),
        codes,
        scores,
        threshold: has_threshold.then(|| st_tensor(&f, "threshold").1),
    }
}

/// How the library picks a code's features, for telling decided rows from near-ties.
#[derive(Clone, Copy, Debug)]
enum Rule {
    Relu,
    JumpRelu,
    TopK(usize),
    GroupMax(usize),
}

const MARGIN: f32 = 1e-4;

/// Whether every choice of the row's code is made by more than MARGIN: the k-th/(k+1)-th gap
/// (TopK), the top two of each group (GroupMax), the distance to the threshold and to 0.
fn decided(rule: Rule, scores: &[f32], threshold: Option<&[f32]>) -> bool {
    let clear_of_zero = |v: f32| v <= 0.0 || v > MARGIN;
    match rule {
        Rule::Relu => scores.iter().all(|v| v.abs() > MARGIN),
        Rule::JumpRelu => {
            let t = threshold.unwrap();
            scores
                .iter()
                .zip(t)
                .all(|(v, t)| (v - t).abs() > MARGIN && v.abs() > MARGIN)
        }
        Rule::TopK(k) => {
            let mut s = scores.to_vec();
            s.sort_by(|a, b| b.total_cmp(a));
            (s[k - 1] - s[k] > MARGIN || s[k - 1] <= 0.0)
                && s[..k].iter().all(|v| clear_of_zero(*v))
        }
        Rule::GroupMax(k) => scores.chunks(scores.len() / k).all(|g| {
            let mut g = g.to_vec();
            g.sort_by(|a, b| b.total_cmp(a));
            g[0] <= 0.0 || (g[0] > MARGIN && g[0] - g[1] > MARGIN)
        }),
    }
}

/// One float16 ulp at `x`: the gap from |x| to the next float16.
fn f16_ulp(x: f32) -> f32 {
    let h = half::f16::from_f32(x.abs());
    let next = half::f16::from_bits(h.to_bits() + 1);
    (next.to_f32() - h.to_f32()).abs()
}

/// `got[row]` (nonzero (feature, value), any order) against the library's codes: equal feature
/// sets on every decided row, values within one float16 ulp wherever both have the feature.
/// Rows left undecided (near-ties) must stay a small minority.
fn assert_library_codes(case: &str, got: &[Vec<(u32, f32)>], lib: &LibraryCodes, rule: Rule) {
    assert_eq!(got.len(), lib.rows, "{case}: rows");
    let mut undecided = 0;
    let mut nonzeros = 0;
    for (r, g) in got.iter().enumerate() {
        let want: BTreeMap<u32, f32> = lib.codes[r * lib.d_sae..(r + 1) * lib.d_sae]
            .iter()
            .enumerate()
            .filter(|(_, v)| **v != 0.0)
            .map(|(f, v)| (f as u32, *v))
            .collect();
        let got: BTreeMap<u32, f32> = g.iter().copied().collect();
        nonzeros += want.len();
        let scores = &lib.scores[r * lib.d_sae..(r + 1) * lib.d_sae];
        if decided(rule, scores, lib.threshold.as_deref()) {
            assert_eq!(
                got.keys().collect::<Vec<_>>(),
                want.keys().collect::<Vec<_>>(),
                "{case}: row {r}: features differ from the library's"
            );
        } else {
            undecided += 1;
        }
        for (f, w) in &want {
            if let Some(v) = got.get(f) {
                assert!(
                    (v - w).abs() <= f16_ulp(*w),
                    "{case}: row {r}, feature {f}: {v} vs the library's {w}"
                );
            }
        }
    }
    println!(
        "{case}: {nonzeros} nonzeros, {undecided} of {} rows near-ties",
        lib.rows
    );
    assert!(nonzeros > 0, "{case}: the library's codes are all zero");
    assert!(
        undecided * 4 <= lib.rows,
        "{case}: {undecided} of {} rows are near-ties",
        lib.rows
    );
}

/// The codes of `lib`'s inputs as a store gives them back: the dictionary ingested from `dir`,
/// the inputs ingested as dense activations, FEATURES AT of every row.
fn store_codes(dir: &Path, lib: &LibraryCodes) -> Vec<Vec<(u32, f32)>> {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::create_or_open(tmp.path().join("s")).unwrap();
    store.ingest_dictionary("D", dir, &NoProgress).unwrap();
    store
        .ingest_activations("D", &dir.join("reference.safetensors"), &NoProgress)
        .unwrap();
    lib.doc_pos
        .iter()
        .map(|&(doc, pos)| {
            store
                .features_at(doc, pos, Some("D"))
                .unwrap()
                .into_iter()
                .map(|a| (a.feature.index, a.value))
                .collect()
        })
        .collect()
}

/// Every SAE variant the libraries wrote that saedb reads: the loader's architecture, the
/// encoder's codes and the stored codes against the library's own `encode`.
#[test]
fn real_writers_codes_equal_the_libraries_encode() {
    let cases: &[(&str, Architecture, Rule)] = &[
        ("saelens/topk", Architecture::TopK, Rule::TopK(4)),
        ("saelens/topk_rescale", Architecture::TopK, Rule::TopK(4)),
        (
            "saelens/topk_training_checkpoint",
            Architecture::TopK,
            Rule::TopK(4),
        ),
        (
            "saelens/topk_training_inference",
            Architecture::TopK,
            Rule::TopK(4),
        ),
        ("saelens/standard", Architecture::Relu, Rule::Relu),
        ("saelens/standard_bf16", Architecture::Relu, Rule::Relu),
        ("saelens/jumprelu", Architecture::JumpRelu, Rule::JumpRelu),
        (
            "saelens/jumprelu_training_checkpoint",
            Architecture::JumpRelu,
            Rule::JumpRelu,
        ),
        (
            "saelens/batchtopk_inference",
            Architecture::JumpRelu,
            Rule::JumpRelu,
        ),
        ("sparsify/topk", Architecture::TopK, Rule::TopK(4)),
        (
            "sparsify/skip_connection",
            Architecture::TopK,
            Rule::TopK(4),
        ),
        ("sparsify/transcoder", Architecture::TopK, Rule::TopK(4)),
        (
            "sparsify/groupmax",
            Architecture::GroupMax,
            Rule::GroupMax(8),
        ),
        ("sparsify/topk_bf16", Architecture::TopK, Rule::TopK(4)),
    ];
    for &(case, arch, rule) in cases {
        let dir = real_writers().join(case);
        let lib = library_codes(&dir);
        let sae = load_sae(&dir).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(sae.architecture, arch, "{case}");
        assert_eq!((sae.d_in, sae.d_sae), (lib.d_in, lib.d_sae), "{case}");
        let encoded = Encoder::new(&sae)
            .unwrap()
            .encode(&lib.x, lib.rows)
            .unwrap();
        assert_library_codes(case, &encoded, &lib, rule);
        assert_library_codes(
            &format!("{case} (stored)"),
            &store_codes(&dir, &lib),
            &lib,
            rule,
        );
    }
}

/// The rescaled TopK really differs from plain TopK on these files (else the test above would
/// not tell them apart): reading it as plain TopK gives other features on most rows.
#[test]
fn real_writers_rescaled_topk_is_not_plain_topk() {
    let dir = real_writers().join("saelens/topk_rescale");
    let lib = library_codes(&dir);
    let w = |name: &str| st_tensor(&dir.join("sae_weights.safetensors"), name).1;
    let plain = Sae {
        architecture: Architecture::TopK,
        d_in: lib.d_in,
        d_sae: lib.d_sae,
        k: Some(4),
        apply_b_dec_to_input: true,
        hook: None,
        layer: None,
        model: None,
        source_format: "saelens",
        w_enc: w("W_enc"),
        b_enc: w("b_enc"),
        w_dec: w("W_dec"),
        b_dec: w("b_dec"),
        threshold: None,
    };
    let codes = Encoder::new(&plain)
        .unwrap()
        .encode(&lib.x, lib.rows)
        .unwrap();
    let differing = codes
        .iter()
        .enumerate()
        .filter(|(r, row)| {
            row.iter()
                .any(|(f, _)| lib.codes[r * lib.d_sae + *f as usize] == 0.0)
        })
        .count();
    assert!(differing * 2 > lib.rows, "only {differing} rows differ");
}

/// What a refused ingest must leave alone: everything `info` reports (but the bytes on disk)
/// and every document.
fn store_state(store: &Store) -> (StoreInfo, Vec<u32>) {
    let mut info = store.info().unwrap();
    info.bytes_on_disk = 0;
    (info, store.document_ids().unwrap())
}

/// Variants the libraries write that saedb does not implement are refused, naming why, and the
/// store is unchanged.
#[test]
fn real_writers_unsupported_variants_are_refused() {
    let cases: &[(&str, &[&str])] = &[
        (
            "saelens/batchtopk_training_checkpoint",
            &["'batchtopk'", "save_inference_model"],
        ),
        ("saelens/gated", &["'gated'", "b_gate"]),
        ("saelens/abstopk", &["'abstopk'"]),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::create_or_open(tmp.path().join("s")).unwrap();
    store
        .ingest_dictionary("ok", &real_writers().join("saelens/topk"), &NoProgress)
        .unwrap();
    let before = store_state(&store);
    for (case, parts) in cases {
        let dir = real_writers().join(case);
        let msg = err_string(load_sae(&dir));
        assert_msg(&msg, parts);
        assert_msg(&msg, &["cfg.json"]);
        let msg = err_string(store.ingest_dictionary("refused", &dir, &NoProgress));
        assert_msg(&msg, parts);
        assert_eq!(store_state(&store), before, "{case}");
    }
}

/// Copies a real-writer SAE folder and edits its cfg.json.
fn edited_copy(
    case: &str,
    to: &Path,
    edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
) {
    std::fs::create_dir_all(to).unwrap();
    let from = real_writers().join(case);
    for e in std::fs::read_dir(&from).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
    let cfg_path = to.join("cfg.json");
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    edit(cfg.as_object_mut().unwrap());
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
}

/// Every cfg.json setting that could change the codes is either implemented or refused with
/// its name and value; settings known to be harmless are accepted.
#[test]
fn real_writers_settings_are_read_or_refused() {
    use serde_json::json;
    let tmp = tempfile::tempdir().unwrap();
    let mut n = 0;
    let mut refused = |case: &str, key: &str, value: serde_json::Value, parts: &[&str]| {
        n += 1;
        let d = tmp.path().join(format!("c{n}"));
        edited_copy(case, &d, |m| {
            m.insert(key.to_string(), value);
        });
        assert_msg(&err_string(load_sae(&d)), parts);
    };
    refused(
        "saelens/topk",
        "use_magic",
        json!(3),
        &["unknown SAELens setting 'use_magic' = 3"],
    );
    refused(
        "saelens/topk",
        "normalize_activations",
        json!("layer_norm"),
        &["normalize_activations 'layer_norm'"],
    );
    refused(
        "saelens/topk",
        "normalize_activations",
        json!(true),
        &["normalize_activations true"],
    );
    refused(
        "saelens/topk",
        "reshape_activations",
        json!("heads"),
        &["reshape_activations = \"heads\""],
    );
    refused(
        "saelens/standard",
        "finetuning_scaling_factor",
        json!(true),
        &["finetuning_scaling_factor = true"],
    );
    refused(
        "saelens/standard",
        "activation_fn_kwargs",
        json!({"k": 3, "alpha": 2}),
        &["'activation_fn_kwargs.alpha' = 2"],
    );
    refused(
        "sparsify/topk",
        "activation",
        json!("signed"),
        &["activation = \"signed\""],
    );
    refused(
        "sparsify/topk",
        "bias_free",
        json!(false),
        &["unknown sparsify setting 'bias_free' = false"],
    );
    refused("sparsify/groupmax", "k", json!(7), &["groupmax with k = 7"]);
    // Harmless settings and hook_z are read as they are.
    let d = tmp.path().join("harmless");
    edited_copy("saelens/topk", &d, |m| {
        m.insert("reshape_activations".into(), json!("hook_z"));
        m.insert("lr".into(), json!(0.001));
        m.insert("wandb_project".into(), json!("x"));
    });
    assert_eq!(
        load_sae(&d).unwrap(),
        load_sae(&real_writers().join("saelens/topk")).unwrap()
    );
}

/// The documents the delphi cache was computed on (fixtures/real-writers/delphi/tokens.jsonl),
/// as token ids per sequence, read with serde_json alone.
fn delphi_token_rows() -> Vec<Vec<u32>> {
    std::fs::read_to_string(real_writers().join("delphi/tokens.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["token_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect()
        })
        .collect()
}

/// A store holding the cache's documents and the SAE that made it.
fn delphi_store(tmp: &Path) -> Store {
    let store = Store::create_or_open(tmp.join("s")).unwrap();
    store
        .ingest_tokens(&real_writers().join("delphi/tokens.jsonl"), &NoProgress)
        .unwrap();
    store
        .ingest_dictionary("L0", &real_writers().join("saelens/topk"), &NoProgress)
        .unwrap();
    store
}

fn all_codes(store: &Store, dict: &str, rows: &[Vec<u32>]) -> Vec<Vec<(u32, f32)>> {
    let mut out = Vec::new();
    for (doc, row) in rows.iter().enumerate() {
        for pos in 0..row.len() {
            let mut code: Vec<(u32, f32)> = store
                .features_at(doc as u32, pos as u32, Some(dict))
                .unwrap()
                .into_iter()
                .map(|a| (a.feature.index, a.value))
                .collect();
            code.sort_by_key(|c| c.0);
            out.push(code);
        }
    }
    out
}

/// delphi's own LatentCache splits (uint16 locations, float16 values) and single file (int64,
/// float32) store exactly what saedb's encoding of the same residual stream stores.
#[test]
fn real_writers_delphi_cache_equals_encoding_the_same_activations() {
    let tmp = tempfile::tempdir().unwrap();
    let store = delphi_store(tmp.path());
    let rw = real_writers().join("delphi");
    store
        .ingest_dictionary("L0s", &real_writers().join("saelens/topk"), &NoProgress)
        .unwrap();
    store
        .ingest_dictionary("L0d", &real_writers().join("saelens/topk"), &NoProgress)
        .unwrap();
    store
        .ingest_latents("L0", &rw.join("splits/model.layers.0"), &NoProgress)
        .unwrap();
    store
        .ingest_latents(
            "L0s",
            &rw.join("single/model.layers.0.safetensors"),
            &NoProgress,
        )
        .unwrap();
    store
        .ingest_activations("L0d", &rw.join("resid.safetensors"), &NoProgress)
        .unwrap();
    let rows = delphi_token_rows();
    let splits = all_codes(&store, "L0", &rows);
    assert_eq!(
        splits,
        all_codes(&store, "L0s", &rows),
        "splits vs single file"
    );
    let dense = all_codes(&store, "L0d", &rows);
    assert!(splits.iter().map(Vec::len).sum::<usize>() >= rows.len() * 16 * 3);
    for (i, (a, b)) in splits.iter().zip(&dense).enumerate() {
        let fa: Vec<u32> = a.iter().map(|c| c.0).collect();
        let fb: Vec<u32> = b.iter().map(|c| c.0).collect();
        assert_eq!(fa, fb, "token {i}: features");
        for ((_, x), (_, y)) in a.iter().zip(b) {
            assert!((x - y).abs() <= f16_ulp(*y), "token {i}: {x} vs {y}");
        }
    }
}

/// A cache whose `tokens` are not the stored documents' is refused, naming the sequence, the
/// position and both ids, and nothing is written; the right cache then ingests.
#[test]
fn real_writers_delphi_cache_of_other_tokens_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let rw = real_writers().join("delphi");
    // without documents there is nothing to compare the cache's tokens with: refused too
    let empty = Store::create_or_open(tmp.path().join("empty")).unwrap();
    empty
        .ingest_dictionary("L0", &real_writers().join("saelens/topk"), &NoProgress)
        .unwrap();
    let before = store_state(&empty);
    let e = empty
        .ingest_latents("L0", &rw.join("splits/model.layers.0"), &NoProgress)
        .unwrap_err();
    assert!(
        matches!(e, saedb_engine::Error::UncheckedCacheTokens { .. }),
        "{e}"
    );
    assert_msg(
        &e.to_string(),
        &["no documents to check this cache's tokens"],
    );
    assert_eq!(store_state(&empty), before);
    let store = delphi_store(tmp.path());
    let rows = delphi_token_rows();
    let before = store_state(&store);
    // every id shifted by one: the first position of the first sequence already differs
    let msg =
        err_string(store.ingest_latents("L0", &rw.join("shifted/model.layers.0"), &NoProgress));
    let (doc_id, cache_id) = (rows[0][0], (rows[0][0] + 1) % 48);
    assert_msg(
        &msg,
        &[
            "sequence 0, position 0",
            &format!("the cache holds token id {cache_id}, document 0 holds {doc_id}"),
            "nothing",
        ],
    );
    assert_eq!(store_state(&store), before);
    // sequence 3 holds sequence 5's tokens
    let pos = (0..rows[3].len())
        .find(|&p| rows[3][p] != rows[5][p])
        .unwrap();
    let msg =
        err_string(store.ingest_latents("L0", &rw.join("swapped/model.layers.0"), &NoProgress));
    assert_msg(
        &msg,
        &[
            &format!("sequence 3, position {pos}"),
            &format!(
                "the cache holds token id {}, document 3 holds {}",
                rows[5][pos], rows[3][pos]
            ),
        ],
    );
    assert_eq!(store_state(&store), before);
    assert!(store
        .activations_of(&saedb_engine::FeatureRef::new("L0", 0))
        .unwrap()
        .is_empty());
    store
        .ingest_latents("L0", &rw.join("splits/model.layers.0"), &NoProgress)
        .unwrap();
}

/// delphi pads a row past its document's end: those positions are not compared. A document
/// stored without token ids cannot be checked, and the cache is refused.
#[test]
fn delphi_tokens_padding_and_unverifiable_documents() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // two documents of 3 and 2 tokens; the cache pads both rows to 4 with id 0
    std::fs::write(
        d.join("docs.jsonl"),
        "{\"doc\":0,\"tokens\":[\"a\",\"b\",\"c\"],\"token_ids\":[5,6,7]}\n{\"doc\":1,\"tokens\":[\"d\",\"e\"],\"token_ids\":[8,9]}\n",
    )
    .unwrap();
    let cache = |name: &str, tokens: &[i32]| {
        let p = d.join(name);
        write_st(
            &p,
            &[
                ("locations", &i32s(&[3, 3], &[0, 2, 1, 1, 1, 0, 0, 0, 3])),
                ("activations", &f32s(&[3], &[1.0, 2.0, 3.0])),
                ("tokens", &i32s(&[2, 4], tokens)),
            ],
        );
        p
    };
    let padded = cache("padded.safetensors", &[5, 6, 7, 0, 8, 9, 0, 0]);
    let wrong = cache("wrong.safetensors", &[5, 6, 7, 0, 8, 4, 0, 0]);
    let store = Store::create_or_open(d.join("s")).unwrap();
    store
        .ingest_tokens(&d.join("docs.jsonl"), &NoProgress)
        .unwrap();
    store
        .ingest_dictionary("L2", &fixtures().join("minilm-mini/sae_L2"), &NoProgress)
        .unwrap();
    assert_msg(
        &err_string(store.ingest_latents("L2", &wrong, &NoProgress)),
        &[
            "sequence 1, position 1",
            "token id 4, document 1 holds 9 (\"e\")",
        ],
    );
    store.ingest_latents("L2", &padded, &NoProgress).unwrap();
    // documents without ids
    let store = Store::create_or_open(d.join("s2")).unwrap();
    std::fs::write(
        d.join("noids.jsonl"),
        "{\"doc\":0,\"tokens\":[\"a\",\"b\",\"c\"]}\n{\"doc\":1,\"tokens\":[\"d\",\"e\"]}\n",
    )
    .unwrap();
    store
        .ingest_tokens(&d.join("noids.jsonl"), &NoProgress)
        .unwrap();
    store
        .ingest_dictionary("L2", &fixtures().join("minilm-mini/sae_L2"), &NoProgress)
        .unwrap();
    let before = store_state(&store);
    assert_msg(
        &err_string(store.ingest_latents("L2", &padded, &NoProgress)),
        &["cannot be checked against document 0", "without token_ids"],
    );
    assert_eq!(store_state(&store), before);
}

/// A store without documents takes them from a delphi cache's tokens: one per sequence, named
/// by a tokenizer.json (with text) or a vocab.txt (without), committed with the activations.
#[test]
fn real_writers_delphi_documents_from_the_cache() {
    let rw = real_writers().join("delphi");
    let splits = rw.join("splits/model.layers.0");
    let jsonl: Vec<serde_json::Value> = std::fs::read_to_string(rw.join("tokens.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let reference = delphi_store(&tmp.path().join("ref"));
    reference
        .ingest_latents("L0", &splits, &NoProgress)
        .unwrap();
    let rows = delphi_token_rows();
    for (i, vocab) in ["tokenizer.json", "vocab.txt"].iter().enumerate() {
        let store = Store::create_or_open(tmp.path().join(format!("s{i}"))).unwrap();
        store
            .ingest_dictionary("L0", &real_writers().join("saelens/topk"), &NoProgress)
            .unwrap();
        store
            .ingest_latents_with_documents("L0", &splits, &rw.join(vocab), &NoProgress)
            .unwrap();
        assert_eq!(store.document_ids().unwrap(), (0..8).collect::<Vec<u32>>());
        for (s, want) in jsonl.iter().enumerate() {
            let d = store.document(s as u32).unwrap();
            let tokens: Vec<String> = want["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_string())
                .collect();
            assert_eq!(d.tokens, tokens, "{vocab}: document {s}");
            assert_eq!(d.token_ids, rows[s], "{vocab}: document {s}");
            // the tokenizer (no decoder: tokens joined by spaces) gives the text; a list cannot
            assert_eq!(d.text, (i == 0).then(|| tokens.join(" ")), "{vocab}");
        }
        assert_eq!(
            all_codes(&store, "L0", &rows),
            all_codes(&reference, "L0", &rows)
        );
        // now the store has documents: they are not taken twice
        store
            .ingest_dictionary("L0b", &real_writers().join("saelens/topk"), &NoProgress)
            .unwrap();
        assert_msg(
            &err_string(store.ingest_latents_with_documents(
                "L0b",
                &splits,
                &rw.join(vocab),
                &NoProgress,
            )),
            &["only into a store without documents", "holds 8"],
        );
    }
    // a vocabulary too small for the cache's ids, and a cache without tokens: nothing written
    let short = tmp.path().join("short.txt");
    std::fs::write(&short, "a\nb\nc\n").unwrap();
    let store = Store::create_or_open(tmp.path().join("bad")).unwrap();
    store
        .ingest_dictionary("L0", &real_writers().join("saelens/topk"), &NoProgress)
        .unwrap();
    let before = store_state(&store);
    let first = (0..16).find(|&p| rows[0][p] >= 3).unwrap();
    assert_msg(
        &err_string(store.ingest_latents_with_documents("L0", &splits, &short, &NoProgress)),
        &[
            &format!(
                "sequence 0, position {first}: token id {} is not in this vocabulary of 3 tokens",
                rows[0][first]
            ),
            "short.txt",
        ],
    );
    store
        .ingest_dictionary("L2", &fixtures().join("minilm-mini/sae_L2"), &NoProgress)
        .unwrap();
    let before_l2 = store_state(&store);
    assert_ne!(before, before_l2);
    assert_msg(
        &err_string(store.ingest_latents_with_documents(
            "L2",
            &fixtures().join("minilm-mini/latents_L2.safetensors"),
            &short,
            &NoProgress,
        )),
        &["no 'tokens' matrix"],
    );
    assert_eq!(store_state(&store), before_l2);
}

/// Documents from a cache named by a real byte-level BPE tokenizer.json (SmolLM2's, whose
/// pre-tokenizer needs the pure-Rust regex backend): every token string equals the one the
/// shared data's tokens.jsonl holds (decoded alone, as the model's text).
#[test]
fn documents_from_a_cache_with_smollm2_tokenizer_shared_data() {
    let dir = shared_data().join("smollm2-135m");
    let (jsonl, tok, sae) = (
        dir.join("tokens.jsonl"),
        dir.join("tokenizer.json"),
        dir.join("sae_L9"),
    );
    if !jsonl.is_file() || !tok.is_file() || !sae.is_dir() {
        println!("skipping: {} not present", dir.display());
        return;
    }
    let docs: Vec<serde_json::Value> = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<Vec<i32>> = docs
        .iter()
        .map(|d| {
            d["token_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_i64().unwrap() as i32)
                .collect()
        })
        .collect();
    let ctx = ids.iter().map(Vec::len).max().unwrap();
    // delphi's layout: one row per sequence, padded past its end (here with id 0)
    let matrix: Vec<i32> = ids
        .iter()
        .flat_map(|r| r.iter().copied().chain(std::iter::repeat(0)).take(ctx))
        .collect();
    let n = ids.len();
    let loc: Vec<i32> = (0..n as i32).flat_map(|s| [s, 0, 7]).collect();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache.safetensors");
    write_st(
        &cache,
        &[
            ("locations", &i32s(&[n, 3], &loc)),
            ("activations", &f32s(&[n], &vec![1.5; n])),
            ("tokens", &i32s(&[n, ctx], &matrix)),
        ],
    );
    let store = Store::create_or_open(tmp.path().join("s")).unwrap();
    store
        .ingest_dictionary_with(
            "L9",
            &sae,
            saedb_engine::IndexBuild::OnFirstUse,
            &NoProgress,
        )
        .unwrap();
    store
        .ingest_latents_with_documents("L9", &cache, &tok, &NoProgress)
        .unwrap();
    let mut compared = 0;
    for (s, d) in docs.iter().enumerate() {
        let stored = store.document(s as u32).unwrap();
        let want: Vec<&str> = d["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert_eq!(stored.tokens.len(), ctx);
        assert_eq!(&stored.tokens[..want.len()], &want[..], "document {s}");
        compared += want.len();
    }
    assert_eq!(compared, 16_186);
}
