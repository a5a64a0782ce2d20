//! Decoders of the real on-disk formats that saedb ingests. Pure functions from files to in-memory
//! values: nothing here touches the store. See docs/FORMATS.md for every accepted field.
//!
//! Every reader returns [`crate::Error::BadInput`] naming the file and the exact problem for
//! malformed input, and never panics on file contents.

pub(crate) mod cfg_keys;
pub mod delphi;
pub mod dense;
pub mod labels;
pub mod npy;
pub(crate) mod raw;
pub mod sae;
mod sae_matrices;
pub(crate) mod st;
pub mod token_names;
pub mod tokens;
pub mod vocab;

pub use delphi::{read_latents, Latents, TokenMatrix};
pub use dense::{read_dense, Dense};
pub use sae::{load_sae, open_sae, Matrix, Sae, SaeSource};
pub use token_names::TokenNames;
pub use tokens::read_tokens;
pub use vocab::{read_vocab, VocabMatrix};
