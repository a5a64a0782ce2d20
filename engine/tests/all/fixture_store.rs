//! A store written by an earlier build, committed under `fixtures/stores/v4/`, opens, checks and
//! answers as the fixture files say (read here with the `safetensors` and `serde_json` crates):
//! a change that cannot read format version 4 fails here. When the format moves on, keep this
//! store and its test, and add the new version's beside them.
//!
//! The store holds the documents of `fixtures/minilm-mini`, dictionary `L2` cut to its first
//! [`FEATURES`] features (ingested from memory) with their latents, a label, and the graph
//! `fixtures/graphs/small.json`. `write_the_v4_fixture_store` (ignored) wrote it.

use half::f16;
use saedb_engine::{
    Architecture, DictionaryWeights, FeatureRef, IndexBuild, NoProgress, OpenOptions,
    SparseActivations, Store,
};
use safetensors::SafeTensors;
use std::path::{Path, PathBuf};

/// Features of L2 kept in the fixture store (weights of 512 would be 1.5 MB).
const FEATURES: u32 = 32;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn stored_v4() -> PathBuf {
    repo().join("fixtures/stores/v4")
}

fn floats(st: &SafeTensors, name: &str) -> (Vec<f32>, Vec<usize>) {
    let t = st.tensor(name).unwrap();
    let v = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (v, t.shape().to_vec())
}

/// L2's latents of the kept features: (doc, pos, feature, value).
fn latents() -> Vec<(u32, u32, u32, f32)> {
    let bytes = std::fs::read(repo().join("fixtures/minilm-mini/latents_L2.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let loc: Vec<i32> = st
        .tensor("locations")
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    floats(&st, "activations")
        .0
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            (
                loc[3 * i] as u32,
                loc[3 * i + 1] as u32,
                loc[3 * i + 2] as u32,
                v,
            )
        })
        .filter(|e| e.2 < FEATURES)
        .collect()
}

/// Copies the committed store to a temporary directory (opening writes to a store: its log,
/// its lock), so the repository stays clean.
fn copy_of_v4() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let to = tmp.path().join("v4");
    copy_dir(&stored_v4(), &to);
    (tmp, to)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn answers_match_the_fixture_files(s: &Store) {
    assert_eq!(s.info().unwrap().format_version, 4);
    // Documents: the JSON lines, field by field.
    let lines = std::fs::read_to_string(repo().join("fixtures/minilm-mini/tokens.jsonl")).unwrap();
    let mut n = 0;
    for line in lines.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let d = s.document(v["doc"].as_u64().unwrap() as u32).unwrap();
        let tokens: Vec<&str> = v["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert_eq!(d.tokens, tokens);
        assert_eq!(d.text.as_deref(), v["text"].as_str());
        assert_eq!(d.source.as_deref(), v["source"].as_str());
        n += 1;
    }
    assert_eq!(s.document_count().unwrap(), n);

    // The dictionary and its activations: every feature's top list and count, and a sample of
    // tokens' features, from the latents file.
    let info = s.dictionary("L2").unwrap();
    assert_eq!((info.d_in, info.d_sae), (384, FEATURES));
    assert_eq!(info.architecture, Architecture::TopK);
    let all = latents();
    assert_eq!(info.nonzeros, all.len() as u64);
    for feature in 0..FEATURES {
        let mut want: Vec<(u32, u32, f32)> = all
            .iter()
            .filter(|e| e.2 == feature)
            .map(|e| (e.0, e.1, f16::from_f32(e.3).to_f32()))
            .collect();
        want.sort_by(|a, b| b.2.total_cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1))));
        let f = FeatureRef::new("L2", feature);
        let got: Vec<(u32, u32, f32)> = s
            .top_activations(&f, 1000, None)
            .unwrap()
            .iter()
            .map(|a| (a.doc, a.pos, a.value))
            .collect();
        assert_eq!(got, want, "L2/{feature}");
        assert_eq!(s.feature_stats(&f).unwrap().count, want.len() as u64);
    }
    for &(doc, pos, _, _) in all.iter().step_by(97) {
        let mut want: Vec<(u32, f32)> = all
            .iter()
            .filter(|e| (e.0, e.1) == (doc, pos))
            .map(|e| (e.2, f16::from_f32(e.3).to_f32()))
            .collect();
        want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let got: Vec<(u32, f32)> = s
            .features_at(doc, pos, Some("L2"))
            .unwrap()
            .iter()
            .map(|a| (a.feature.index, a.value))
            .collect();
        assert_eq!(got, want, "doc {doc} pos {pos}");
    }
    // The decoder rows: W_dec's first rows.
    let w =
        std::fs::read(repo().join("fixtures/minilm-mini/sae_L2/sae_weights.safetensors")).unwrap();
    let (w_dec, _) = floats(&SafeTensors::deserialize(&w).unwrap(), "W_dec");
    for feature in [0, 7, FEATURES - 1] {
        let row = &w_dec[feature as usize * 384..(feature as usize + 1) * 384];
        assert_eq!(s.decoder_row(&FeatureRef::new("L2", feature)).unwrap(), row);
    }
    assert_eq!(
        s.neighbours(&FeatureRef::new("L2", 3), None, 5)
            .unwrap()
            .len(),
        5
    );
    assert_eq!(
        s.label(&FeatureRef::new("L2", 3)).unwrap().as_deref(),
        Some("fixture label")
    );

    // The graph: node and edge counts from the JSON.
    let g: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo().join("fixtures/graphs/small.json")).unwrap())
            .unwrap();
    let graph = s.graph_info("small").unwrap();
    assert_eq!(graph.nodes, g["nodes"].as_array().unwrap().len() as u64);
    assert_eq!(graph.edges, g["links"].as_array().unwrap().len() as u64);
    let full = s.graph("small").unwrap();
    assert_eq!(full.edges.len() as u64, graph.edges);
}

#[test]
fn the_v4_fixture_store_opens_checks_and_answers() {
    if !stored_v4().join("db/CURRENT").exists() {
        panic!("fixtures/stores/v4 is missing: it is part of the repository");
    }
    let (_tmp, dir) = copy_of_v4();
    {
        let s = OpenOptions::new().read_only(true).open(&dir).unwrap();
        answers_match_the_fixture_files(&s);
    }
    let s = Store::open(&dir).unwrap();
    answers_match_the_fixture_files(&s);
    let report = s.check().unwrap();
    assert!(report.is_ok(), "{report:?}");
}

/// Writes `fixtures/stores/v4` with the current build (run it only when this is the current
/// format and the store must be made again):
/// `cargo test --workspace --test all -- --ignored write_the_v4_fixture_store`.
#[test]
#[ignore]
fn write_the_v4_fixture_store() {
    let dir = stored_v4();
    let _ = std::fs::remove_dir_all(&dir);
    let s = OpenOptions::new().create(true).open(&dir).unwrap();
    let fx = repo().join("fixtures/minilm-mini");
    s.ingest_tokens(&fx.join("tokens.jsonl"), &NoProgress)
        .unwrap();
    let w = std::fs::read(fx.join("sae_L2/sae_weights.safetensors")).unwrap();
    let w = SafeTensors::deserialize(&w).unwrap();
    let (d_in, cut) = (384usize, FEATURES as usize);
    let (w_enc, _) = floats(&w, "W_enc"); // [d_in, 512]
    let w_enc: Vec<f32> = w_enc
        .chunks_exact(512)
        .flat_map(|row| row[..cut].to_vec())
        .collect();
    let w_dec = floats(&w, "W_dec").0[..cut * d_in].to_vec();
    let b_enc = floats(&w, "b_enc").0[..cut].to_vec();
    let b_dec = floats(&w, "b_dec").0;
    let weights = DictionaryWeights {
        architecture: Architecture::TopK,
        d_in,
        d_sae: cut,
        w_enc: &w_enc,
        b_enc: &b_enc,
        w_dec: &w_dec,
        b_dec: &b_dec,
        k: Some(16),
        threshold: None,
        apply_b_dec_to_input: true,
        hook: Some("encoder.layer.1.output"),
        layer: Some(2),
        model: Some("sentence-transformers/all-MiniLM-L6-v2"),
    };
    s.ingest_dictionary_weights(
        "L2",
        "fixtures/minilm-mini/sae_L2 (first 32 features)",
        &weights,
        IndexBuild::AtIngest,
        &NoProgress,
    )
    .unwrap();
    let all = latents();
    let col = |i: usize| {
        all.iter()
            .map(move |e| [e.0, e.1, e.2][i])
            .collect::<Vec<u32>>()
    };
    let values: Vec<f32> = all.iter().map(|e| e.3).collect();
    let sparse = SparseActivations {
        doc: &col(0),
        pos: &col(1),
        feature: &col(2),
        value: &values,
    };
    s.ingest_sparse(
        "L2",
        "fixtures/minilm-mini/latents_L2.safetensors (features below 32)",
        &sparse,
        &NoProgress,
    )
    .unwrap();
    s.set_label(&FeatureRef::new("L2", 3), "fixture label")
        .unwrap();
    s.ingest_graph(
        "small",
        &repo().join("fixtures/graphs/small.json"),
        &NoProgress,
    )
    .unwrap();
    s.compact().unwrap();
    drop(s);
    // RocksDB's info logs are not part of the store.
    for e in std::fs::read_dir(dir.join("db")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("LOG") {
            std::fs::remove_file(p).unwrap();
        }
    }
}
