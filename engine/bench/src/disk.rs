//! What a run needs on disk, checked before anything is generated: at `xl` the inputs, the flat
//! cache and the store take tens of GB, and a run that fills the disk half-way through fails
//! late and can starve whatever else runs on the machine.

use crate::gen::ScaleSpec;
use anyhow::{bail, Context, Result};
use std::path::Path;

/// Space kept free beyond the estimate, for RocksDB's compactions and the system.
const HEADROOM: u64 = 2 << 30;

/// Bytes a run of `sections` at `spec` writes under its work directory, at most (all of it
/// exists at once: the work directory is deleted only at the end).
pub fn needed(spec: &ScaleSpec, sections: &[String]) -> u64 {
    let has = |s: &str| sections.iter().any(|x| x == s);
    let (d_in, d_sae) = (spec.d_in as u64, spec.d_sae as u64);
    let weights = 4 * (2 * d_in * d_sae + d_sae + d_in);
    // The file, and the store's float32 copy of it (the dictionary-alone store is deleted
    // before the others are made).
    let mut bytes = 2 * weights;
    if has("knn") {
        // hnsw_rs's dump: every vector as float16 and up to 2·M links on the base layer.
        bytes += d_sae * (2 * d_in + 2 * 24 * 4 + 64);
    }
    if has("storage") {
        let nnz = (spec.tokens() * spec.l0) as u64;
        // delphi latents as generated (int32 locations [n, 3], float32 values): 16 B;
        // the flat cache at most 14 B (uint32 locations); the store about 7 B.
        bytes += nnz * (16 + 14 + 7) + spec.tokens() as u64 * 8;
    }
    bytes + bytes / 10
}

/// Refuses the run when the file system holding `work` has less free space than it needs.
pub fn check(spec: &ScaleSpec, work: &Path, sections: &[String]) -> Result<()> {
    let need = needed(spec, sections);
    let existing = work
        .ancestors()
        .find(|p| p.exists())
        .context("the work directory has no existing ancestor")?;
    let free = free_bytes(existing)
        .with_context(|| format!("reading the free space of {}", existing.display()))?;
    if free < need + HEADROOM {
        bail!(
            "not enough disk for scale '{}' ({}): it needs about {} under {} (plus {} headroom), \
             and {} is free there; free space, choose another --work-dir, or measure fewer \
             sections with --only",
            spec.name,
            sections.join(","),
            gib(need),
            work.display(),
            gib(HEADROOM),
            gib(free)
        );
    }
    crate::log(&format!(
        "disk: this run needs about {} under {}, {} free",
        gib(need),
        work.display(),
        gib(free)
    ));
    Ok(())
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// Bytes available to an unprivileged user on the file system holding `path`.
fn free_bytes(path: &Path) -> Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path and `st` is a valid place for statvfs to fill.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: statvfs returned 0, so it filled `st`.
    let st = unsafe { st.assume_init() };
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}
