//! The two large matrices of an SAE (`W_enc [d_in, d_sae]`, `W_dec [d_sae, d_in]`), read by row
//! ranges so that a dictionary is ingested without holding them whole: at 1,048,576 features
//! × 768 each is 3.2 GB as float32.
//!
//! The rows are read from the safetensors file with ordinary reads, not a memory map: pages of
//! a mapped file count in the process's resident set (VmHWM) as long as they stay mapped, so
//! streaming a 6.4 GB file through a map would show as 6.4 GB resident, while a read buffer of
//! one chunk is reused.

use super::raw::{at_row, first_non_finite};
use super::st::StFile;
use crate::{Error, Result};
use std::path::Path;

/// Which matrix of an SAE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matrix {
    /// `W_enc [d_in, d_sae]`: a row per input dimension, a value per feature.
    Encoder,
    /// `W_dec [d_sae, d_in]`: a row per feature.
    Decoder,
}

/// Where an SAE's matrices are.
#[derive(Debug)]
pub(crate) enum Matrices {
    /// In memory (npz archives, sparsify's transposed encoder, weights handed in by a caller).
    Loaded { w_enc: Vec<f32>, w_dec: Vec<f32> },
    /// In a safetensors file, in the layout saedb stores (`W_enc` not transposed).
    InFile(InFile),
}

/// The matrices of a safetensors file, by tensor name.
#[derive(Debug)]
pub(crate) struct InFile {
    pub(crate) file: StFile,
    pub(crate) w_enc: &'static str,
    pub(crate) w_dec: &'static str,
    /// Each feature's decoder norm when SAELens's `rescale_acts_by_decoder_norm` is folded in:
    /// encoder columns are multiplied by it, decoder rows divided by it.
    pub(crate) decoder_norms: Option<Vec<f32>>,
}

/// Values read per chunk when the whole matrix is read (`into_sae`) or its norms taken.
const MIN_CHUNK_VALUES: usize = 1 << 18;

impl InFile {
    /// Each decoder row's norm, in one pass over `W_dec` (checking it is finite).
    pub(crate) fn decoder_norms(&self, path: &Path, d_sae: usize, d_in: usize) -> Result<Vec<f32>> {
        let mut norms = Vec::with_capacity(d_sae);
        let rows_per_read = (MIN_CHUNK_VALUES / d_in).max(1);
        let mut stream = self.file.stream(self.w_dec)?;
        let mut row = 0;
        while row < d_sae {
            let n = rows_per_read.min(d_sae - row);
            let v = stream.next_f32(n * d_in)?;
            check_finite(path, self.w_dec, d_in, &v, row * d_in)?;
            norms.extend(v.chunks_exact(d_in).map(row_norm));
            row += n;
        }
        Ok(norms)
    }
}

impl Matrices {
    /// Calls `f` with consecutive chunks of `rows_per_chunk` whole rows of matrix `m` (`rows`
    /// rows of `row_len` values; the last chunk may be shorter), in order, as float32, checked
    /// and transformed. Stops at the first error, from the file or from `f`.
    pub(crate) fn for_each_chunk(
        &self,
        m: Matrix,
        (rows, row_len): (usize, usize),
        rows_per_chunk: usize,
        mut f: impl FnMut(&[f32]) -> Result<()>,
    ) -> Result<()> {
        let per = rows_per_chunk.max(1);
        match self {
            Matrices::Loaded { w_enc, w_dec } => {
                let all = if m == Matrix::Encoder { w_enc } else { w_dec };
                all.chunks(per * row_len.max(1)).try_for_each(f)
            }
            Matrices::InFile(src) => {
                let name = if m == Matrix::Encoder {
                    src.w_enc
                } else {
                    src.w_dec
                };
                let mut stream = src.file.stream(name)?;
                let mut row = 0;
                while row < rows {
                    let n = per.min(rows - row);
                    let mut v = stream.next_f32(n * row_len)?;
                    check_finite(&src.file.path, name, row_len, &v, row * row_len)?;
                    if let Some(norms) = &src.decoder_norms {
                        fold(m, &mut v, row_len, norms, row);
                    }
                    f(&v)?;
                    row += n;
                }
                Ok(())
            }
        }
    }

    /// Both matrices whole, `(W_enc, W_dec)`, given their shapes.
    pub(crate) fn into_whole(
        self,
        enc: (usize, usize),
        dec: (usize, usize),
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let read = |m: Matrix, (rows, row_len): (usize, usize)| -> Result<Vec<f32>> {
            let mut all = Vec::with_capacity(rows * row_len);
            let per = (MIN_CHUNK_VALUES / row_len.max(1)).max(1);
            self.for_each_chunk(m, (rows, row_len), per, |c| {
                all.extend_from_slice(c);
                Ok(())
            })?;
            Ok(all)
        };
        match self {
            Matrices::Loaded { w_enc, w_dec } => Ok((w_enc, w_dec)),
            Matrices::InFile(_) => Ok((read(Matrix::Encoder, enc)?, read(Matrix::Decoder, dec)?)),
        }
    }
}

/// A decoder row's norm, summed in f64 as SAELens's float64 `norm` would.
pub(crate) fn row_norm(row: &[f32]) -> f32 {
    row.iter()
        .map(|x| f64::from(*x).powi(2))
        .sum::<f64>()
        .sqrt() as f32
}

/// An encoder row (`W_enc[i, :]`, one value per feature) times each feature's decoder norm.
pub(crate) fn scale_encoder_row(row: &mut [f32], norms: &[f32]) {
    row.iter_mut().zip(norms).for_each(|(x, n)| *x *= n);
}

/// A decoder row divided by its norm (a zero row stays zero).
pub(crate) fn scale_decoder_row(row: &mut [f32], norm: f32) {
    if norm > 0.0 {
        row.iter_mut().for_each(|x| *x /= norm);
    }
}

/// The decoder-norm fold on a chunk of rows starting at row `first`.
fn fold(m: Matrix, v: &mut [f32], row_len: usize, norms: &[f32], first: usize) {
    match m {
        Matrix::Encoder => {
            for row in v.chunks_exact_mut(row_len) {
                scale_encoder_row(row, norms);
            }
        }
        Matrix::Decoder => {
            for (row, n) in v.chunks_exact_mut(row_len).zip(&norms[first..]) {
                scale_decoder_row(row, *n);
            }
        }
    }
}

/// Refuses a non-finite value in `v`, the part of a matrix with rows of `cols` values that
/// starts at flat index `offset`.
fn check_finite(path: &Path, name: &str, cols: usize, v: &[f32], offset: usize) -> Result<()> {
    if let Some((i, x)) = first_non_finite(v) {
        return Err(Error::bad_input(
            path,
            format!(
                "tensor '{name}' holds {x} at {}",
                at_row(offset + i, cols, 2)
            ),
        ));
    }
    Ok(())
}
