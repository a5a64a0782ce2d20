//! Opening stores the way every command does, and engine errors as one-line messages that name
//! the path they are about. Shared by the subcommands, the shell and the demo.

use crate::output::one_line;
use crate::progress::Bars;
use anyhow::{anyhow, bail, Result};
use saedb_engine::{OpenOptions, Store};
use std::path::Path;

/// Opens a store that must exist already (query, run, shell, info). A missing store is a one-line
/// error naming the path (the engine refuses it), never an empty store created by accident.
pub fn open_existing(path: &Path) -> Result<Store> {
    // A bar only if an older store's format is upgraded on the way (about 4 s at 120M activations).
    let bars = Bars::for_stderr();
    match OpenOptions::new().progress(&bars).open(path) {
        Ok(s) => Ok(s),
        // Another process (a shell, an ingest) holds the store: read what it has committed.
        Err(e @ saedb_engine::Error::Locked { .. }) => match Store::open_read_only(path) {
            Ok(s) => {
                eprintln!(
                    "note: {} is in use by another process; opened read-only (LABEL will fail)",
                    path.display()
                );
                Ok(s)
            }
            Err(_) => Err(store_error(path, e)),
        },
        Err(e) => Err(store_error(path, e)),
    }
}

/// Opens an existing store for reading only (`info`): works while another process writes it.
pub fn open_existing_read_only(path: &Path) -> Result<Store> {
    Store::open_read_only(path).map_err(|e| naming(path, e))
}

/// An error opening a store, as one line naming it.
pub fn store_error(path: &Path, e: saedb_engine::Error) -> anyhow::Error {
    naming(path, e)
}

/// An engine error as a one-line message that names `path` (prefixing it when the engine's
/// message does not already).
pub fn naming(path: &Path, e: impl std::fmt::Display) -> anyhow::Error {
    let msg = one_line(&e.to_string());
    let shown = path.display().to_string();
    let base = path
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default();
    if msg.contains(&shown) || (!base.is_empty() && msg.contains(&base)) {
        anyhow!("{msg}")
    } else {
        anyhow!("{shown}: {msg}")
    }
}

pub fn must_exist(path: &Path) -> Result<()> {
    if !path.exists() {
        bail!("{}: no such file or directory", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naming_prefixes_only_when_needed() {
        let p = Path::new("/tmp/x/latents.safetensors");
        assert_eq!(
            naming(p, "unknown dictionary 'L9'").to_string(),
            "/tmp/x/latents.safetensors: unknown dictionary 'L9'"
        );
        assert_eq!(
            naming(p, "/tmp/x/latents.safetensors: truncated").to_string(),
            "/tmp/x/latents.safetensors: truncated"
        );
        assert_eq!(
            naming(p, "a\nb").to_string(),
            "/tmp/x/latents.safetensors: a b"
        );
    }
}
