//! A store built from fixtures/minilm-mini, shared by the integration tests.
#![allow(dead_code)]

use saedb_engine::{NoProgress, Store};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The repository root (tests run with the crate directory as working directory).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The optional shared vocabulary (word embeddings of the same model), for TOKEN EFFECTS.
pub fn shared_vocab() -> Option<(PathBuf, PathBuf)> {
    let dir = root().join("../shared/data/minilm-dev");
    let w = dir.join("word_embeddings.f16.safetensors");
    let v = dir.join("vocab.txt");
    (w.exists() && v.exists()).then_some((w, v))
}

/// Builds the fixture store in `dir`: dictionaries L2 and L4, the tokens, both latents files.
pub fn build_store(dir: &Path) -> Store {
    let fx = root().join("fixtures/minilm-mini");
    let store = Store::create_or_open(dir).expect("create store");
    store
        .ingest_dictionary("L2", &fx.join("sae_L2"), &NoProgress)
        .expect("ingest L2");
    store
        .ingest_dictionary("L4", &fx.join("sae_L4"), &NoProgress)
        .expect("ingest L4");
    store
        .ingest_tokens(&fx.join("tokens.jsonl"), &NoProgress)
        .expect("ingest tokens");
    store
        .ingest_latents("L2", &fx.join("latents_L2.safetensors"), &NoProgress)
        .expect("latents L2");
    store
        .ingest_latents("L4", &fx.join("latents_L4.safetensors"), &NoProgress)
        .expect("latents L4");
    store
}

/// A fresh fixture store in a new temporary directory (kept alive with it).
pub fn fresh() -> (tempfile::TempDir, Arc<Store>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = build_store(dir.path());
    (dir, Arc::new(store))
}

/// A shared attribution graph file, if ../shared is present.
pub fn shared_graph(file: &str) -> Option<PathBuf> {
    let p = root().join("../shared/data/attribution-graphs").join(file);
    p.exists().then_some(p)
}
