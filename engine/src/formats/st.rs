//! A strict, panic-free safetensors reader. The header is parsed and checked here (the file must
//! hold every byte the header promises); tensors are read one at a time straight from the file and
//! converted to `f32` or `i64`, so memory holds one decoded tensor, never the whole file twice.

use super::raw::{self, numel, shape_str, DType};
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Largest header we accept (the safetensors library's own limit).
const MAX_HEADER: u64 = 100_000_000;

/// One tensor's entry in the header.
#[derive(Debug, Clone)]
pub(crate) struct StTensor {
    pub dtype: DType,
    pub shape: Vec<usize>,
    /// Offset of the first byte from the start of the file.
    offset: u64,
}

/// An opened safetensors file (header parsed and validated, data not read).
#[derive(Debug)]
pub(crate) struct StFile {
    pub path: PathBuf,
    pub tensors: BTreeMap<String, StTensor>,
}

impl StFile {
    pub(crate) fn open(path: &Path) -> Result<StFile> {
        let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
        let file_len = f.metadata().map_err(|e| Error::io(path, e))?.len();
        let bad = |m: String| Error::bad_input(path, m);
        if file_len < 8 {
            return Err(bad(format!(
                "truncated file: a safetensors file starts with an 8-byte header length, this file has {file_len} bytes"
            )));
        }
        let mut len8 = [0u8; 8];
        f.read_exact(&mut len8).map_err(|e| Error::io(path, e))?;
        let n = u64::from_le_bytes(len8);
        if n > MAX_HEADER {
            return Err(bad(format!(
                "not a safetensors file: header length {n} bytes is larger than the limit of {MAX_HEADER}"
            )));
        }
        if 8 + n > file_len {
            return Err(bad(format!(
                "truncated file: the safetensors header claims {n} bytes but only {} follow",
                file_len - 8
            )));
        }
        let mut header = vec![0u8; n as usize];
        f.read_exact(&mut header).map_err(|e| Error::io(path, e))?;
        let text = std::str::from_utf8(&header).map_err(|e| {
            bad(format!(
                "not a safetensors file: header is not valid UTF-8 ({e})"
            ))
        })?;
        let value: serde_json::Value =
            serde_json::from_str(text.trim_end_matches(' ')).map_err(|e| {
                bad(format!(
                    "not a safetensors file: header is not valid JSON ({e})"
                ))
            })?;
        let obj = value.as_object().ok_or_else(|| {
            bad("not a safetensors file: header is not a JSON object".to_string())
        })?;
        let data_start = 8 + n;
        let data_len = file_len - data_start;
        let mut tensors = BTreeMap::new();
        for (name, entry) in obj {
            if name == "__metadata__" {
                continue;
            }
            let e = entry.as_object().ok_or_else(|| {
                bad(format!(
                    "safetensors header entry for tensor '{name}' is not an object"
                ))
            })?;
            let dtype = e
                .get("dtype")
                .and_then(|d| d.as_str())
                .map(DType::from_safetensors)
                .ok_or_else(|| bad(format!("tensor '{name}' has no dtype in the header")))?;
            let shape = e
                .get("shape")
                .and_then(|s| s.as_array())
                .ok_or_else(|| bad(format!("tensor '{name}' has no shape in the header")))?
                .iter()
                .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
                .collect::<Option<Vec<usize>>>()
                .ok_or_else(|| {
                    bad(format!(
                        "tensor '{name}' has a shape that is not a list of non-negative integers"
                    ))
                })?;
            let offs = e
                .get("data_offsets")
                .and_then(|o| o.as_array())
                .filter(|o| o.len() == 2)
                .and_then(|o| Some((o.first()?.as_u64()?, o.get(1)?.as_u64()?)))
                .ok_or_else(|| {
                    bad(format!(
                        "tensor '{name}' has no valid data_offsets [begin, end] in the header"
                    ))
                })?;
            let (s, end) = offs;
            if end < s {
                return Err(bad(format!(
                    "tensor '{name}' has data_offsets [{s}, {end}] that end before they begin"
                )));
            }
            if let DType::Other(_) = dtype {
            } else {
                let bytes = numel(&shape)
                    .and_then(|k| k.checked_mul(dtype.size()))
                    .and_then(|b| u64::try_from(b).ok());
                if bytes != Some(end - s) {
                    return Err(bad(format!(
                        "tensor '{name}' of dtype {dtype} and shape {} should take {} bytes but its data_offsets [{s}, {end}] span {}",
                        shape_str(&shape),
                        bytes.map(|b| b.to_string()).unwrap_or_else(|| "more than 2^64".into()),
                        end - s
                    )));
                }
            }
            if end > data_len {
                return Err(bad(format!(
                    "truncated file: tensor '{name}' needs bytes {s}..{end} of the data section but it holds only {data_len} bytes"
                )));
            }
            tensors.insert(
                name.clone(),
                StTensor {
                    dtype,
                    shape,
                    offset: data_start + s,
                },
            );
        }
        Ok(StFile {
            path: path.to_path_buf(),
            tensors,
        })
    }

    pub(crate) fn get(&self, name: &str) -> Option<&StTensor> {
        self.tensors.get(name)
    }

    /// The names of the tensors present, for error messages.
    pub(crate) fn names_list(&self) -> String {
        if self.tensors.is_empty() {
            "it holds no tensors".to_string()
        } else {
            let v: Vec<String> = self
                .tensors
                .iter()
                .map(|(k, t)| format!("'{k}' {} {}", t.dtype, shape_str(&t.shape)))
                .collect();
            format!("it holds {}", v.join(", "))
        }
    }

    pub(crate) fn require(&self, name: &str) -> Result<&StTensor> {
        self.get(name).ok_or_else(|| {
            Error::bad_input(
                &self.path,
                format!("missing tensor '{name}' ({})", self.names_list()),
            )
        })
    }

    /// [`StFile::require`] for a floating-point tensor (what [`TensorStream::next_f32`] reads).
    pub(crate) fn require_float(&self, name: &str) -> Result<&StTensor> {
        let t = self.require(name)?;
        if !t.dtype.is_float() {
            return Err(Error::bad_input(
                &self.path,
                format!(
                    "tensor '{name}' has dtype {}, expected a floating-point dtype (float32, float16, bfloat16)",
                    t.dtype
                ),
            ));
        }
        Ok(t)
    }

    fn reader(&self, t: &StTensor) -> Result<BufReader<File>> {
        let mut f = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        f.seek(SeekFrom::Start(t.offset))
            .map_err(|e| Error::io(&self.path, e))?;
        Ok(BufReader::with_capacity(1 << 16, f))
    }

    /// Reads an integer tensor (as i64) or a floating-point one (as f32) a piece at a time, so
    /// that a large tensor is never held whole.
    pub(crate) fn stream(&self, name: &str) -> Result<TensorStream<'_>> {
        let t = self.require(name)?;
        Ok(TensorStream {
            file: self,
            name: name.to_string(),
            dtype: t.dtype.clone(),
            reader: self.reader(t)?,
        })
    }

    fn io_err(&self, name: &str, e: std::io::Error) -> Error {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::bad_input(
                &self.path,
                format!("truncated file: the data of tensor '{name}' ends early"),
            )
        } else {
            Error::io(&self.path, e)
        }
    }

    /// Reads a floating-point tensor (f16, bf16, f32, f64) as f32. Returns (shape, values).
    pub(crate) fn read_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let shape = self.require(name)?.shape.clone();
        let v = self.stream(name)?.next_f32(numel(&shape).unwrap_or(0))?;
        Ok((shape, v))
    }

    /// Reads an integer tensor as i64. Returns (shape, values).
    pub(crate) fn read_i64(&self, name: &str) -> Result<(Vec<usize>, Vec<i64>)> {
        let shape = self.require(name)?.shape.clone();
        let v = self.stream(name)?.next_i64(numel(&shape).unwrap_or(0))?;
        Ok((shape, v))
    }
}

/// A tensor of a [`StFile`] read in order, `n` elements per call.
pub(crate) struct TensorStream<'a> {
    file: &'a StFile,
    name: String,
    dtype: DType,
    reader: BufReader<File>,
}

impl TensorStream<'_> {
    /// The next `n` elements of an integer tensor.
    pub(crate) fn next_i64(&mut self, n: usize) -> Result<Vec<i64>> {
        if !self.dtype.is_int() {
            return Err(self.wrong_dtype("an integer dtype (int32, int64, uint16, uint32)"));
        }
        raw::read_i64(&mut self.reader, &self.dtype, n, true)
            .map_err(|e| self.file.io_err(&self.name, e))
    }

    /// The next `n` elements of a floating-point tensor.
    pub(crate) fn next_f32(&mut self, n: usize) -> Result<Vec<f32>> {
        if !self.dtype.is_float() {
            return Err(self.wrong_dtype("a floating-point dtype (float32, float16, bfloat16)"));
        }
        raw::read_f32(&mut self.reader, &self.dtype, n, true)
            .map_err(|e| self.file.io_err(&self.name, e))
    }

    fn wrong_dtype(&self, expected: &str) -> Error {
        Error::bad_input(
            &self.file.path,
            format!(
                "tensor '{}' has dtype {}, expected {expected}",
                self.name, self.dtype
            ),
        )
    }
}
