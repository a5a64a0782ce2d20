//! Dense activations to encode: `activations [n, d_in]` with `doc_pos [n, 2]` = (doc, pos), as a
//! safetensors file, an `.npz` archive, or an activations `.npy` with a sibling
//! `<stem>.doc_pos.npy`.

use super::npy::{read_npy_f32, read_npy_i64, Npz};
use super::raw::{first_non_finite, shape_str};
use super::st::StFile;
use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// Dense activations: `activations` is `[n, d_in]` row-major; row `i` belongs to `doc_pos[i]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    pub n: usize,
    pub d_in: usize,
    pub activations: Vec<f32>,
    pub doc_pos: Vec<(u32, u32)>,
}

/// Reads dense activations (see the module docs for the accepted layouts).
pub fn read_dense(path: &Path) -> Result<Dense> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("safetensors") => {
            let st = StFile::open(path)?;
            let (ashape, act) = st.read_f32("activations")?;
            let (dshape, dp) = st.read_i64("doc_pos")?;
            build(path, path, ashape, act, dshape, dp)
        }
        Some("npz") => {
            let mut z = Npz::open(path)?;
            let a = z.read_f32("activations")?;
            let d = z.read_i64("doc_pos")?;
            build(path, path, a.shape, a.data, d.shape, d.data)
        }
        Some("npy") => {
            let sib = doc_pos_sibling(path);
            if !sib.is_file() {
                return Err(Error::bad_input(
                    path,
                    format!(
                        "missing the doc_pos array: expected it next to the activations in {}",
                        sib.display()
                    ),
                ));
            }
            let a = read_npy_f32(path)?;
            let d = read_npy_i64(&sib)?;
            build(path, &sib, a.shape, a.data, d.shape, d.data)
        }
        _ => Err(Error::bad_input(
            path,
            "unknown dense activation file: expected .safetensors, .npz or .npy",
        )),
    }
}

/// `x.npy` → `x.doc_pos.npy`.
fn doc_pos_sibling(path: &Path) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!("{stem}.doc_pos.npy"))
}

fn build(
    path: &Path,
    dp_path: &Path,
    ashape: Vec<usize>,
    act: Vec<f32>,
    dshape: Vec<usize>,
    dp: Vec<i64>,
) -> Result<Dense> {
    let (n, d_in) = match ashape.as_slice() {
        [n, d] => (*n, *d),
        _ => {
            return Err(Error::bad_input(
                path,
                format!(
                    "'activations' has shape {}, expected [n, d_in]",
                    shape_str(&ashape)
                ),
            ))
        }
    };
    if dshape.as_slice() != [n, 2] {
        return Err(Error::bad_input(
            dp_path,
            format!(
                "'doc_pos' has shape {}, expected [{n}, 2] (n = {n} rows of 'activations')",
                shape_str(&dshape)
            ),
        ));
    }
    if let Some((i, x)) = first_non_finite(&act) {
        let row = i.checked_div(d_in).unwrap_or(0);
        return Err(Error::bad_input(
            path,
            format!(
                "'activations' holds {x} at row {row}, column {}",
                i - row * d_in
            ),
        ));
    }
    let mut doc_pos = Vec::with_capacity(n);
    for (row, pair) in dp.chunks_exact(2).enumerate() {
        let (d, p) = match pair {
            [d, p] => (*d, *p),
            _ => continue,
        };
        match (u32::try_from(d), u32::try_from(p)) {
            (Ok(d), Ok(p)) => doc_pos.push((d, p)),
            _ => {
                return Err(Error::bad_input(
                    dp_path,
                    format!(
                        "'doc_pos' row {row} is ({d}, {p}): doc and pos must be in 0..=4294967295"
                    ),
                ))
            }
        }
    }
    Ok(Dense {
        n,
        d_in,
        activations: act,
        doc_pos,
    })
}
