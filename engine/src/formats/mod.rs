//! Decoders of the real on-disk formats that saedb ingests. Pure functions from files to in-memory
//! values: nothing here touches the store. See docs/FORMATS.md for every accepted field.

pub mod delphi;
pub mod dense;
pub mod npy;
pub mod sae;
pub mod tokens;
pub mod vocab;
