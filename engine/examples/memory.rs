//! The engine alone, fed from memory (what a Python binding or a model runtime does): open a
//! store with `OpenOptions`, ingest documents, a dictionary's weights and sparse activations
//! from slices, ask with a declarative filter, sample a quantile, and cancel an ingest.
//!
//! ```sh
//! cargo run -p saedb-engine --example memory -- /tmp/memory.saedb
//! ```

use saedb_engine::filter::{ActivationField, ActivationFilter, Comparison};
use saedb_engine::{
    Architecture, Cancel, DenseActivations, DictionaryWeights, Document, Error, FeatureRef,
    IndexBuild, NoProgress, OpenOptions, QuantileQuery, SparseActivations,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("saedb-memory"));
    let _ = std::fs::remove_dir_all(&dir);
    let store = OpenOptions::new().create(true).open(&dir)?;

    // Two documents of tokens.
    let words = ["the", " bridge", " over", " the", " river", "."];
    let docs: Vec<Document> = (0..2)
        .map(|doc| Document {
            doc,
            tokens: words.iter().map(|w| w.to_string()).collect(),
            token_ids: (0..words.len() as u32).collect(),
            text: Some(words.concat()),
            source: None,
        })
        .collect();
    store.ingest_documents("example documents", &docs, &NoProgress)?;

    // A tiny ReLU dictionary: 4 features over d_in 3 (identity-like encoder).
    let (d_in, d_sae) = (3, 4);
    let w_enc: Vec<f32> = (0..d_in * d_sae)
        .map(|i| if i % d_sae == i / d_sae { 1.0 } else { 0.0 })
        .collect();
    let w_dec: Vec<f32> = (0..d_sae * d_in)
        .map(|i| if i / d_in == i % d_in { 1.0 } else { 0.1 })
        .collect();
    let weights = DictionaryWeights {
        architecture: Architecture::Relu,
        d_in,
        d_sae,
        w_enc: &w_enc,
        b_enc: &[0.0; 4],
        w_dec: &w_dec,
        b_dec: &[0.0; 3],
        k: None,
        threshold: None,
        apply_b_dec_to_input: false,
        hook: Some("blocks.0.hook_resid_post"),
        layer: Some(0),
        model: None,
    };
    store.ingest_dictionary_weights(
        "D",
        "example weights",
        &weights,
        IndexBuild::AtIngest,
        &NoProgress,
    )?;

    // Sparse activations of document 0 in coordinate form ...
    let sparse = SparseActivations {
        doc: &[0, 0, 0, 0],
        pos: &[1, 1, 4, 5],
        feature: &[0, 2, 0, 1],
        value: &[3.0, 0.5, 1.25, 2.0],
    };
    store.ingest_sparse("D", "example latents", &sparse, &NoProgress)?;
    // ... and dense rows of document 1, encoded with the dictionary at ingest.
    let rows = [0.0, 2.0, 0.0, 1.5, 0.0, 0.0];
    let dense = DenseActivations {
        values: &rows,
        d_in,
        doc: &[1, 1],
        pos: &[1, 2],
    };
    store.ingest_dense("D", "example rows", &dense, &NoProgress)?;

    // A declarative filter: value > 1 AND NOT a special token.
    let strong = ActivationFilter::and(vec![
        ActivationFilter::compare(ActivationField::Value, Comparison::Gt, 1.0),
        ActivationFilter::not(ActivationFilter::SpecialToken),
    ]);
    let f = FeatureRef::new("D", 0);
    for a in store.top_activations(&f, 10, Some(&strong))? {
        println!(
            "D/0 fires {} on {:?} (doc {}, pos {})",
            a.value, a.token, a.doc, a.pos
        );
    }
    let q = QuantileQuery {
        k: 1,
        quantile: 2,
        of: 2,
    };
    let top_half = store.sample_quantile(&f, q, None, &NoProgress)?;
    println!(
        "the stronger half of D/0: {} activations from {} to {}",
        top_half.size, top_half.lo, top_half.hi
    );

    // A cancelled ingest leaves nothing behind (a Ctrl-C handler would call `cancel`).
    let cancel = Cancel::new();
    cancel.cancel();
    match store.ingest_dictionary_weights(
        "E",
        "example weights",
        &weights,
        IndexBuild::AtIngest,
        &cancel,
    ) {
        Err(Error::Cancelled) => println!(
            "cancelled: the store holds {} dictionary",
            store.dictionaries().len()
        ),
        other => println!("unexpected: {other:?}"),
    }
    Ok(())
}
