//! Loading the MiniLM data (fixtures/minilm-mini or shared/data/minilm-dev) into a store, as
//! several test files do.

use saedb_engine::{NoProgress, Store};
use std::path::Path;

/// Ingests the dictionaries `dicts` (from `sae_<name>`), the documents (`tokens.jsonl`, when
/// `tokens`), then the latents of `latents` (from `latents_<name>.safetensors`), in that order.
pub fn load_minilm(store: &Store, data: &Path, dicts: &[&str], tokens: bool, latents: &[&str]) {
    for name in dicts {
        store
            .ingest_dictionary(name, &data.join(format!("sae_{name}")), &NoProgress)
            .unwrap();
    }
    if tokens {
        store
            .ingest_tokens(&data.join("tokens.jsonl"), &NoProgress)
            .unwrap();
    }
    for name in latents {
        store
            .ingest_latents(
                name,
                &data.join(format!("latents_{name}.safetensors")),
                &NoProgress,
            )
            .unwrap();
    }
}
