//! Helpers every part of the engine uses, below all of them: content hashes of inputs, the rules
//! for names, and the limits of reads.

use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// Largest `k` / `LIMIT` any read accepts.
pub const MAX_LIMIT: usize = 1_000_000;

/// The largest number of quantiles [`crate::Store::sample_quantile`] divides a feature's activations into.
pub const MAX_QUANTILES: usize = 1_000;

pub(crate) fn check_limit(k: usize) -> Result<()> {
    if k > MAX_LIMIT {
        Err(Error::InvalidArgument(format!(
            "limit {k} is too large (at most {MAX_LIMIT})"
        )))
    } else {
        Ok(())
    }
}

/// Names of dictionaries and graphs: letters, digits, `_`, `-`, `.`, starting with a letter or `_`.
pub(crate) fn validate_name(kind: &str, name: &str) -> Result<()> {
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "invalid {kind} name '{name}': use letters, digits, '_', '-' or '.', starting with a letter (at most 64)"
        )))
    }
}

/// xxh3-128 of a file's bytes, or of every file in a folder in name order.
pub(crate) fn hash_path(path: &Path) -> Result<String> {
    let mut files = Vec::new();
    if path.is_dir() {
        let mut stack = vec![path.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir)
                .map_err(|e| Error::io(&dir, e))?
                .flatten()
            {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p)
                } else {
                    files.push(p)
                }
            }
        }
        files.sort();
    } else {
        files.push(path.to_path_buf());
    }
    hash_files(path, &files)
}

/// xxh3-128 of `files` in the order given, each preceded by its name relative to `root` (so a
/// renamed file changes the hash too).
pub(crate) fn hash_files(root: &Path, files: &[PathBuf]) -> Result<String> {
    use std::io::Read;
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    for f in files {
        h.update(
            f.strip_prefix(root)
                .unwrap_or(f)
                .to_string_lossy()
                .as_bytes(),
        );
        let mut file = std::fs::File::open(f).map_err(|e| Error::io(f, e))?;
        loop {
            let n = file.read(&mut buf).map_err(|e| Error::io(f, e))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    }
    Ok(format!("{:032x}", h.digest128()))
}
