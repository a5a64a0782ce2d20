//! Embedding saedb in your own tool: open (or create) a store, ingest the bundled fixtures, ask
//! the engine directly, then run a statement through the query language and read typed rows.
//!
//! ```sh
//! cargo run -p saedb-engine --example embed -- /tmp/embed.saedb
//! ```

use saedb_engine::{FeatureRef, NoProgress, Store};
use saedb_query::{Session, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir: PathBuf = std::env::args()
        .nth(1)
        .map(Into::into)
        .unwrap_or_else(|| std::env::temp_dir().join("saedb-embed"));
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/minilm-mini");
    let store = Store::create_or_open(&dir)?;
    if store.dictionaries().is_empty() {
        store.ingest_dictionary("L2", &fixtures.join("sae_L2"), &NoProgress)?;
        store.ingest_tokens(&fixtures.join("tokens.jsonl"), &NoProgress)?;
        store.ingest_latents("L2", &fixtures.join("latents_L2.safetensors"), &NoProgress)?;
    }

    // The engine API: typed values, no parsing.
    let stats = store.feature_stats(&FeatureRef::new("L2", 7))?;
    println!("L2/7 fired {} times (max {:.3})", stats.count, stats.max);

    // The query language: typed rows back.
    let mut session = Session::new(Arc::new(store));
    for rs in session
        .execute("TOP 3 ACTIVATIONS OF L2/7 CONTEXT 2;")
        .map_err(|e| e.message)?
    {
        let token = rs.columns.iter().position(|c| c == "token");
        let value = rs.columns.iter().position(|c| c == "value");
        for row in &rs.rows {
            if let (Some(Value::Str(t)), Some(Value::Float(v))) =
                (token.map(|i| &row[i]), value.map(|i| &row[i]))
            {
                println!("{t:?} fires at {v:.3}");
            }
        }
    }
    Ok(())
}
