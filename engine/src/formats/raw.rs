//! Element types of tensors on disk and their conversion to `f32` / `i64`, shared by the
//! safetensors and .npy readers. Data is decoded from a reader in bounded chunks, so a tensor
//! never needs its raw bytes and its decoded values in memory at once.

use std::fmt;
use std::io::Read;

/// The element type of a tensor on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DType {
    Bool,
    U8,
    I8,
    U16,
    I16,
    F16,
    BF16,
    U32,
    I32,
    F32,
    U64,
    I64,
    F64,
    /// A type we do not decode (float8, complex, structured...), by its name in the file.
    Other(String),
}

impl DType {
    /// Size in bytes of one element (0 for [`DType::Other`]).
    pub(crate) fn size(&self) -> usize {
        match self {
            DType::Bool | DType::U8 | DType::I8 => 1,
            DType::U16 | DType::I16 | DType::F16 | DType::BF16 => 2,
            DType::U32 | DType::I32 | DType::F32 => 4,
            DType::U64 | DType::I64 | DType::F64 => 8,
            DType::Other(_) => 0,
        }
    }

    pub(crate) fn is_float(&self) -> bool {
        matches!(self, DType::F16 | DType::BF16 | DType::F32 | DType::F64)
    }

    pub(crate) fn is_int(&self) -> bool {
        matches!(
            self,
            DType::U8
                | DType::I8
                | DType::U16
                | DType::I16
                | DType::U32
                | DType::I32
                | DType::U64
                | DType::I64
        )
    }

    /// From a safetensors header dtype string.
    pub(crate) fn from_safetensors(s: &str) -> DType {
        match s {
            "BOOL" => DType::Bool,
            "U8" => DType::U8,
            "I8" => DType::I8,
            "U16" => DType::U16,
            "I16" => DType::I16,
            "F16" => DType::F16,
            "BF16" => DType::BF16,
            "U32" => DType::U32,
            "I32" => DType::I32,
            "F32" => DType::F32,
            "U64" => DType::U64,
            "I64" => DType::I64,
            "F64" => DType::F64,
            other => DType::Other(other.to_string()),
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            DType::Bool => "bool",
            DType::U8 => "uint8",
            DType::I8 => "int8",
            DType::U16 => "uint16",
            DType::I16 => "int16",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::U32 => "uint32",
            DType::I32 => "int32",
            DType::F32 => "float32",
            DType::U64 => "uint64",
            DType::I64 => "int64",
            DType::F64 => "float64",
            DType::Other(s) => s.as_str(),
        };
        f.write_str(s)
    }
}

/// Product of a shape, `None` on overflow.
pub(crate) fn numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |a, &b| a.checked_mul(b))
}

/// Formats a shape as `[a, b]`.
pub(crate) fn shape_str(shape: &[usize]) -> String {
    let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

const CHUNK: usize = 1 << 20;

/// Reads `n` elements of `dtype` from `r` and decodes each with `f` (which receives the element's
/// bytes in little-endian order). Fails with `UnexpectedEof` when the reader runs dry.
fn decode<R: Read, T>(
    r: &mut R,
    dtype: &DType,
    n: usize,
    little_endian: bool,
    f: impl Fn(&DType, &[u8]) -> T,
) -> std::io::Result<Vec<T>> {
    let size = dtype.size().max(1);
    // Never trust `n` for the allocation up front beyond what a sane chunk holds: a lying header
    // must produce an error when the data runs out, not an allocation failure.
    let mut out = Vec::with_capacity(n.min(CHUNK * 4));
    let per_chunk = (CHUNK / size).max(1);
    let mut buf = vec![0u8; per_chunk.min(n) * size];
    let mut left = n;
    let mut tmp = [0u8; 8];
    while left > 0 {
        let m = left.min(per_chunk);
        let bytes = &mut buf[..m * size];
        r.read_exact(bytes)?;
        for el in bytes.chunks_exact(size) {
            if little_endian {
                out.push(f(dtype, el));
            } else {
                let t = &mut tmp[..size];
                for (d, s) in t.iter_mut().zip(el.iter().rev()) {
                    *d = *s;
                }
                out.push(f(dtype, t));
            }
        }
        left -= m;
    }
    Ok(out)
}

fn arr<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[..N]);
    a
}

fn el_f32(dtype: &DType, b: &[u8]) -> f32 {
    match dtype {
        DType::F32 => f32::from_le_bytes(arr(b)),
        DType::F16 => half::f16::from_le_bytes(arr(b)).to_f32(),
        DType::BF16 => half::bf16::from_le_bytes(arr(b)).to_f32(),
        DType::F64 => f64::from_le_bytes(arr(b)) as f32,
        _ => f32::NAN,
    }
}

fn el_i64(dtype: &DType, b: &[u8]) -> i64 {
    match dtype {
        DType::U8 | DType::Bool => b[0] as i64,
        DType::I8 => b[0] as i8 as i64,
        DType::U16 => u16::from_le_bytes(arr(b)) as i64,
        DType::I16 => i16::from_le_bytes(arr(b)) as i64,
        DType::U32 => u32::from_le_bytes(arr(b)) as i64,
        DType::I32 => i32::from_le_bytes(arr(b)) as i64,
        DType::I64 => i64::from_le_bytes(arr(b)),
        // Values above i64::MAX saturate, so range checks reject them.
        DType::U64 => i64::try_from(u64::from_le_bytes(arr(b))).unwrap_or(i64::MAX),
        _ => 0,
    }
}

/// Decodes `n` floating-point elements (f16, bf16, f32, f64) into f32. The caller has checked
/// `dtype.is_float()`.
pub(crate) fn read_f32<R: Read>(
    r: &mut R,
    dtype: &DType,
    n: usize,
    little_endian: bool,
) -> std::io::Result<Vec<f32>> {
    if *dtype == DType::F32 && little_endian {
        // Fast path: the common case, decoded without per-element dispatch.
        let mut out: Vec<f32> = Vec::with_capacity(n.min(CHUNK * 4));
        let mut buf = vec![0u8; CHUNK.min(n) * 4];
        let mut left = n;
        while left > 0 {
            let m = left.min(CHUNK);
            let bytes = &mut buf[..m * 4];
            r.read_exact(bytes)?;
            out.extend(
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            );
            left -= m;
        }
        return Ok(out);
    }
    decode(r, dtype, n, little_endian, el_f32)
}

/// Decodes `n` integer elements into i64. The caller has checked `dtype.is_int()`.
pub(crate) fn read_i64<R: Read>(
    r: &mut R,
    dtype: &DType,
    n: usize,
    little_endian: bool,
) -> std::io::Result<Vec<i64>> {
    // Fast paths: delphi's locations are little-endian int32 or int64, and the per-element
    // dtype dispatch of `decode` was 6% of a latents ingest.
    match (dtype, little_endian) {
        (DType::I32, true) => decode_fixed(r, n, |b: [u8; 4]| i64::from(i32::from_le_bytes(b))),
        (DType::I64, true) => decode_fixed(r, n, i64::from_le_bytes),
        _ => decode(r, dtype, n, little_endian, el_i64),
    }
}

/// [`decode`] for one little-endian element width known at compile time.
fn decode_fixed<R: Read, T, const N: usize>(
    r: &mut R,
    n: usize,
    f: impl Fn([u8; N]) -> T,
) -> std::io::Result<Vec<T>> {
    let mut out = Vec::with_capacity(n.min(CHUNK * 4));
    let per_chunk = CHUNK / N;
    let mut buf = vec![0u8; per_chunk.min(n) * N];
    let mut left = n;
    while left > 0 {
        let m = left.min(per_chunk);
        let bytes = &mut buf[..m * N];
        r.read_exact(bytes)?;
        out.extend(bytes.chunks_exact(N).map(|c| f(arr(c))));
        left -= m;
    }
    Ok(out)
}

/// The first non-finite value: `(index, value)`.
pub(crate) fn first_non_finite(v: &[f32]) -> Option<(usize, f32)> {
    v.iter()
        .position(|x| !x.is_finite())
        .and_then(|i| v.get(i).map(|x| (i, *x)))
}

/// Describes where a flat index falls in a row-major 2-D tensor of row length `cols`.
pub(crate) fn at_row(index: usize, cols: usize, shape_len: usize) -> String {
    if shape_len >= 2 && cols > 0 {
        format!("row {}, column {}", index / cols, index % cols)
    } else {
        format!("index {index}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixed-width fast paths decode what the generic per-element path decodes, across a
    /// chunk boundary, and fail the same way on truncated data.
    #[test]
    fn fast_integer_paths_match_the_generic_decoder() {
        for (dtype, width) in [(DType::I32, 4usize), (DType::I64, 8)] {
            let n = CHUNK / width + 3;
            let bytes: Vec<u8> = (0..n as i64)
                .flat_map(|i| {
                    let v = (i * 7919) - 1_000_000;
                    v.to_le_bytes()[..width].to_vec()
                })
                .collect();
            let fast = read_i64(&mut &bytes[..], &dtype, n, true).unwrap();
            let slow = decode(&mut &bytes[..], &dtype, n, true, el_i64).unwrap();
            assert_eq!(fast, slow);
            assert_eq!(fast[0], -1_000_000);
            let cut = &bytes[..bytes.len() - 1];
            let err = read_i64(&mut &cut[..], &dtype, n, true).unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
        }
    }
}
