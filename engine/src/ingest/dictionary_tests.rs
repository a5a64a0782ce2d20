//! The streamed dictionary ingest stores exactly what the files hold: each stored tensor is
//! compared with the file read by the `safetensors` crate (the format's own library) and
//! transformed here as SAELens and sparsify define it (decoder-norm fold, log threshold,
//! sparsify's transposed encoder), for the real writers' files and for a dictionary generated
//! here large enough that both matrices span several stored chunks.

use crate::keys::Tensor;
use crate::store::Store;
use crate::types::IndexBuild;
use crate::NoProgress;
use half::{bf16, f16};
use safetensors::{Dtype, SafeTensors};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A tensor of the file as float32, by the safetensors crate.
fn tensor(st: &SafeTensors, name: &str) -> Option<(Vec<usize>, Vec<f32>)> {
    let t = st.tensor(name).ok()?;
    let b = t.data();
    let v = match t.dtype() {
        Dtype::F32 => b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => b
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => b
            .chunks_exact(2)
            .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => panic!("{name}: dtype {other:?} not expected in these fixtures"),
    };
    Some((t.shape().to_vec(), v))
}

/// What the store should hold for a SAELens or sparsify folder, computed from the file.
struct Expected {
    w_enc: Vec<f32>,
    b_enc: Vec<f32>,
    w_dec: Vec<f32>,
    b_dec: Vec<f32>,
    threshold: Vec<f32>,
}

fn expected(dir: &Path) -> Expected {
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("cfg.json")).unwrap()).unwrap();
    let saelens = dir.join("sae_weights.safetensors");
    if saelens.exists() {
        let bytes = std::fs::read(&saelens).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let (shape, mut w_enc) = tensor(&st, "W_enc").unwrap();
        let (d_in, d_sae) = (shape[0], shape[1]);
        let mut b_enc = tensor(&st, "b_enc").unwrap().1;
        let mut w_dec = tensor(&st, "W_dec").unwrap().1;
        let threshold = match (tensor(&st, "threshold"), tensor(&st, "log_threshold")) {
            (Some((_, t)), _) => t,
            (None, Some((_, t))) => t.iter().map(|x| x.exp()).collect(),
            (None, None) => Vec::new(),
        };
        if cfg["rescale_acts_by_decoder_norm"] == serde_json::json!(true) {
            // SAELens's save_inference_model: W_enc columns and b_enc times ‖W_dec[f]‖,
            // W_dec rows divided by it.
            for f in 0..d_sae {
                let row = &mut w_dec[f * d_in..(f + 1) * d_in];
                let norm = row
                    .iter()
                    .map(|x| f64::from(*x) * f64::from(*x))
                    .sum::<f64>()
                    .sqrt() as f32;
                for i in 0..d_in {
                    w_enc[i * d_sae + f] *= norm;
                }
                b_enc[f] *= norm;
                if norm > 0.0 {
                    row.iter_mut().for_each(|x| *x /= norm);
                }
            }
        }
        let b_dec = tensor(&st, "b_dec").unwrap().1;
        return Expected {
            w_enc,
            b_enc,
            w_dec,
            b_dec,
            threshold,
        };
    }
    let bytes = std::fs::read(dir.join("sae.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (shape, enc) = tensor(&st, "encoder.weight").unwrap();
    let (d_sae, d_in) = (shape[0], shape[1]);
    let mut w_enc = vec![0f32; d_in * d_sae];
    for f in 0..d_sae {
        for i in 0..d_in {
            w_enc[i * d_sae + f] = enc[f * d_in + i];
        }
    }
    Expected {
        w_enc,
        b_enc: tensor(&st, "encoder.bias").unwrap().1,
        w_dec: tensor(&st, "W_dec").unwrap().1,
        b_dec: tensor(&st, "b_dec").unwrap().1,
        threshold: Vec::new(),
    }
}

/// Ingests `dir` into a fresh store and compares every stored tensor with [`expected`], bit for
/// bit (`to_bits`: the same float operations in the same order give the same bits).
fn check_stored(dir: &Path) {
    let want = expected(dir);
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::create_or_open(tmp.path()).unwrap();
    store
        .ingest_dictionary_with("d", dir, IndexBuild::OnFirstUse, &NoProgress)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let id = store.dictionary("d").unwrap().id;
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    for (tensor, want) in [
        (Tensor::WEnc, &want.w_enc),
        (Tensor::BEnc, &want.b_enc),
        (Tensor::WDec, &want.w_dec),
        (Tensor::BDec, &want.b_dec),
        (Tensor::Threshold, &want.threshold),
    ] {
        let got = store.read_tensor(id, tensor).unwrap();
        assert_eq!(
            got.len(),
            want.len(),
            "{}: {tensor:?} length",
            dir.display()
        );
        assert!(
            bits(&got) == bits(want),
            "{}: {tensor:?} differs from the file",
            dir.display()
        );
    }
}

#[test]
fn real_writers_files_are_stored_exactly() {
    let rw = repo().join("fixtures/real-writers");
    for case in [
        "saelens/standard",
        "saelens/standard_bf16",
        "saelens/topk",
        "saelens/topk_rescale",
        "saelens/jumprelu",
        "saelens/batchtopk_inference",
        "sparsify/topk",
        "sparsify/topk_bf16",
        "sparsify/groupmax",
    ] {
        check_stored(&rw.join(case));
    }
    check_stored(&repo().join("fixtures/minilm-mini/sae_L2"));
}

/// A SAELens TopK folder written with the safetensors crate: d_in 300 and d_sae 3000 make
/// `W_enc` rows 12 KB (87 rows a stored chunk: 4 chunks, the last short) and `W_dec` 1,200 B
/// rows (873 a chunk: 4 chunks).
fn write_multi_chunk(dir: &Path, rescale: bool, poison: Option<(&str, usize)>) {
    std::fs::create_dir_all(dir).unwrap();
    let (d_in, d_sae) = (300usize, 3000usize);
    // Deterministic values of varied magnitude (an LCG), decoder rows of varied norms.
    let mut s = 0x9e3779b97f4a7c15u64;
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0
    };
    let mut w_enc: Vec<f32> = (0..d_in * d_sae).map(|_| next()).collect();
    let mut w_dec: Vec<f32> = (0..d_sae * d_in)
        .map(|i| next() * (1 + i / d_in % 7) as f32)
        .collect();
    // One dead feature: its decoder row is zero.
    w_dec[17 * d_in..18 * d_in].fill(0.0);
    let b_enc: Vec<f32> = (0..d_sae).map(|_| next()).collect();
    let b_dec: Vec<f32> = (0..d_in).map(|_| next()).collect();
    match poison {
        Some(("W_enc", i)) => w_enc[i] = f32::NAN,
        Some(("W_dec", i)) => w_dec[i] = f32::INFINITY,
        _ => {}
    }
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let (we, wd, be, bd) = (bytes(&w_enc), bytes(&w_dec), bytes(&b_enc), bytes(&b_dec));
    fn view(shape: Vec<usize>, data: &[u8]) -> safetensors::tensor::TensorView<'_> {
        safetensors::tensor::TensorView::new(Dtype::F32, shape, data).unwrap()
    }
    let tensors = vec![
        ("W_enc", view(vec![d_in, d_sae], &we)),
        ("W_dec", view(vec![d_sae, d_in], &wd)),
        ("b_enc", view(vec![d_sae], &be)),
        ("b_dec", view(vec![d_in], &bd)),
    ];
    safetensors::serialize_to_file(tensors, &None, &dir.join("sae_weights.safetensors")).unwrap();
    let cfg = serde_json::json!({
        "architecture": "topk", "k": 8, "d_in": d_in, "d_sae": d_sae,
        "apply_b_dec_to_input": true, "normalize_activations": "none",
        "rescale_acts_by_decoder_norm": rescale,
        "metadata": {"hook_name": "blocks.3.hook_resid_post"},
    });
    std::fs::write(dir.join("cfg.json"), cfg.to_string()).unwrap();
}

#[test]
fn matrices_spanning_several_chunks_are_stored_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    for rescale in [false, true] {
        let dir = tmp.path().join(format!("sae-{rescale}"));
        write_multi_chunk(&dir, rescale, None);
        check_stored(&dir);
    }
}

#[test]
fn a_non_finite_value_in_a_late_chunk_refuses_the_ingest_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    // The last chunk of each matrix: W_enc row 299, W_dec row 2999.
    for (name, at, row, col) in [
        ("W_enc", 299 * 3000 + 5, 299, 5),
        ("W_dec", 2999 * 300 + 7, 2999, 7),
    ] {
        for rescale in [false, true] {
            let dir = tmp.path().join(format!("{name}-{rescale}"));
            write_multi_chunk(&dir, rescale, Some((name, at)));
            let store_dir = tmp.path().join(format!("store-{name}-{rescale}"));
            let store = Store::create_or_open(&store_dir).unwrap();
            let msg = store
                .ingest_dictionary_with("d", &dir, IndexBuild::OnFirstUse, &NoProgress)
                .unwrap_err()
                .to_string();
            assert!(
                msg.contains(&format!("tensor '{name}'"))
                    && msg.contains(&format!("row {row}, column {col}"))
                    && msg.contains("sae_weights.safetensors"),
                "{msg}"
            );
            assert!(store.dictionaries().is_empty());
            assert_eq!(store.table_bytes(store.cf(crate::keys::CF_WEIGHTS)), 0);
            // The id is free again and the next ingest under it is whole.
            let good = tmp.path().join(format!("good-{name}-{rescale}"));
            write_multi_chunk(&good, rescale, None);
            store
                .ingest_dictionary_with("d", &good, IndexBuild::OnFirstUse, &NoProgress)
                .unwrap();
            let id = store.dictionary("d").unwrap().id;
            assert_eq!(
                store.read_tensor(id, Tensor::WDec).unwrap().len(),
                3000 * 300
            );
        }
    }
}
