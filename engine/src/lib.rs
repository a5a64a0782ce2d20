//! # saedb-engine
//!
//! The storage engine of saedb: a local store for the features that sparse autoencoders find in a
//! language model. It persists dictionaries (SAE weights), documents of tokens, per-token sparse
//! feature activations (token-major and feature-major), per-feature statistics and top activations,
//! an HNSW index over decoder directions, a model's vocabulary matrix for token effects, and
//! attribution graphs with chain search. No terminal I/O and no query syntax live here.
//!
//! ```no_run
//! use saedb_engine::{Store, FeatureRef, NoProgress};
//! let store = Store::create_or_open("my.saedb")?;
//! store.ingest_dictionary("L2", "fixtures/minilm-mini/sae_L2".as_ref(), &NoProgress)?;
//! store.ingest_tokens("fixtures/minilm-mini/tokens.jsonl".as_ref(), &NoProgress)?;
//! store.ingest_latents("L2", "fixtures/minilm-mini/latents_L2.safetensors".as_ref(), &NoProgress)?;
//! for a in store.top_activations(&FeatureRef::new("L2", 7), 5, None)? {
//!     println!("doc {} pos {} {:?} {}", a.doc, a.pos, a.token, a.value);
//! }
//! # Ok::<(), saedb_engine::Error>(())
//! ```

mod ann;
mod cache;
mod catalog;
mod check;
mod codec;
pub mod encode;
pub mod error;
mod explore;
pub mod filter;
pub mod formats;
pub mod graph;
mod graphs;
mod ingest;
mod keys;
mod label_import;
mod layout;
mod live;
pub mod model;
mod models;
pub mod progress;
mod read;
mod records;
mod stats;
mod store;
pub mod types;
mod umap;
mod upgrade;
mod util;
mod vector;

pub use ann::{default_search_breadth, AnnComparison};
pub use check::CheckReport;
pub use error::{Error, Result, StorageErrorKind};
pub use explore::{SourceCount, TokenCount, NO_SOURCE};
pub use filter::ActivationFilter;
pub use label_import::{LabelImportReport, MAX_LABEL_BYTES};
pub use layout::{FeatureMap, MapPoint, MAP_MAX_POINTS, MAP_NEIGHBOURS};
pub use live::{GenerationRun, Steering, TextToken};
pub use model::{LiveDictionary, ModelInfo};
pub use models::LiveModel;
pub use progress::{Cancel, NoProgress, Progress};
pub use store::{OpenOptions, Store, FORMAT_VERSION};
pub use types::*;
pub use util::{MAX_LIMIT, MAX_QUANTILES};
