//! NumPy `.npy` and `.npz` readers: format versions 1, 2 and 3; little- and big-endian
//! `float16/32/64`, `int8/16/32/64`, `uint8/16/32/64`, `bool`; C order only. `.npz` archives are
//! zip files of `<name>.npy` entries, stored or deflated.

use super::raw::{self, numel, shape_str, DType};
use crate::{Error, Result};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// A decoded array: row-major data and its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Array<T> {
    pub shape: Vec<usize>,
    pub data: Vec<T>,
}

/// Largest header we accept (real headers are well under a kilobyte).
const MAX_HEADER: usize = 1 << 20;

/// The parsed header of one `.npy` stream.
#[derive(Debug, Clone)]
pub(crate) struct NpyHeader {
    pub dtype: DType,
    pub little_endian: bool,
    pub shape: Vec<usize>,
}

/// A value of the Python literal in the header.
#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Str(String),
    Bool(bool),
    Int(u64),
    Tuple(Vec<Lit>),
    Other,
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn value(&mut self, depth: usize) -> std::result::Result<Lit, String> {
        if depth > 32 {
            return Err("header nests too deeply".into());
        }
        match self.peek() {
            Some(q @ (b'\'' | b'"')) => {
                self.i += 1;
                let start = self.i;
                while self.s.get(self.i).is_some_and(|&c| c != q) {
                    self.i += 1;
                }
                let body = self
                    .s
                    .get(start..self.i)
                    .ok_or("unterminated string in header")?;
                if self.s.get(self.i) != Some(&q) {
                    return Err("unterminated string in header".into());
                }
                self.i += 1;
                Ok(Lit::Str(String::from_utf8_lossy(body).into_owned()))
            }
            Some(open @ (b'(' | b'[')) => {
                self.i += 1;
                let close = if open == b'(' { b')' } else { b']' };
                let mut items = Vec::new();
                loop {
                    if self.eat(close) {
                        break;
                    }
                    items.push(self.value(depth + 1)?);
                    if self.eat(b',') {
                        continue;
                    }
                    if self.eat(close) {
                        break;
                    }
                    return Err("malformed tuple in header".into());
                }
                Ok(if open == b'(' {
                    Lit::Tuple(items)
                } else {
                    Lit::Other
                })
            }
            Some(b'{') => {
                // A nested dict (structured dtypes): skip it.
                self.dict(depth + 1)?;
                Ok(Lit::Other)
            }
            Some(c) if c.is_ascii_digit() => {
                let start = self.i;
                while self.s.get(self.i).is_some_and(|c| c.is_ascii_digit()) {
                    self.i += 1;
                }
                // Python 2 headers may write `3L`.
                if self.s.get(self.i) == Some(&b'L') {
                    self.i += 1;
                }
                let txt = std::str::from_utf8(self.s.get(start..self.i).unwrap_or_default())
                    .unwrap_or_default()
                    .trim_end_matches('L');
                txt.parse::<u64>()
                    .map(Lit::Int)
                    .map_err(|_| format!("integer '{txt}' in header is out of range"))
            }
            Some(_) => {
                let rest = self.s.get(self.i..).unwrap_or_default();
                if rest.starts_with(b"True") {
                    self.i += 4;
                    Ok(Lit::Bool(true))
                } else if rest.starts_with(b"False") {
                    self.i += 5;
                    Ok(Lit::Bool(false))
                } else {
                    Err(format!(
                        "unexpected character at byte {} of the header",
                        self.i
                    ))
                }
            }
            None => Err("header ends early".into()),
        }
    }
    fn dict(&mut self, depth: usize) -> std::result::Result<Vec<(String, Lit)>, String> {
        if !self.eat(b'{') {
            return Err("header is not a Python dict".into());
        }
        let mut out = Vec::new();
        loop {
            if self.eat(b'}') {
                break;
            }
            let key = match self.value(depth)? {
                Lit::Str(s) => s,
                _ => return Err("header dict has a key that is not a string".into()),
            };
            if !self.eat(b':') {
                return Err(format!("header dict: missing ':' after key '{key}'"));
            }
            let v = self.value(depth)?;
            out.push((key, v));
            if self.eat(b',') {
                continue;
            }
            if self.eat(b'}') {
                break;
            }
            return Err("header dict: expected ',' or '}'".into());
        }
        Ok(out)
    }
}

/// Parses a numpy dtype string like `<f4` into (dtype, little_endian).
fn parse_descr(descr: &str) -> std::result::Result<(DType, bool), String> {
    let b = descr.as_bytes();
    let (order, rest) = match b.first() {
        Some(b'<') | Some(b'|') | Some(b'=') => (true, descr.get(1..).unwrap_or("")),
        Some(b'>') => (false, descr.get(1..).unwrap_or("")),
        _ => (true, descr),
    };
    let dt = match rest {
        "f2" | "e" => DType::F16,
        "f4" | "f" => DType::F32,
        "f8" | "d" => DType::F64,
        "i1" | "b" => DType::I8,
        "i2" | "h" => DType::I16,
        "i4" | "i" => DType::I32,
        "i8" | "q" | "l" => DType::I64,
        "u1" | "B" => DType::U8,
        "u2" | "H" => DType::U16,
        "u4" | "I" => DType::U32,
        "u8" | "Q" | "L" => DType::U64,
        "b1" | "?" => DType::Bool,
        _ => {
            return Err(format!(
                "unsupported dtype '{descr}' (accepted: float16/32/64, int8/16/32/64, uint8/16/32/64, bool; bfloat16 has no numpy dtype, store it as float32)"
            ))
        }
    };
    Ok((dt, order))
}

/// Reads and parses the header of an `.npy` stream; `r` is left at the first data byte.
pub(crate) fn read_header<R: Read>(r: &mut R) -> std::result::Result<NpyHeader, String> {
    let mut pre = [0u8; 8];
    r.read_exact(&mut pre)
        .map_err(|e| eof_msg(e, "the .npy preamble"))?;
    if &pre[..6] != b"\x93NUMPY" {
        return Err("not a .npy file: it does not start with the magic \\x93NUMPY".into());
    }
    let major = pre[6];
    let hlen = match major {
        1 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b)
                .map_err(|e| eof_msg(e, "the .npy header length"))?;
            u16::from_le_bytes(b) as usize
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            r.read_exact(&mut b)
                .map_err(|e| eof_msg(e, "the .npy header length"))?;
            u32::from_le_bytes(b) as usize
        }
        v => {
            return Err(format!(
                "unsupported .npy format version {v}.{} (1, 2 and 3 are)",
                pre[7]
            ))
        }
    };
    if hlen > MAX_HEADER {
        return Err(format!(
            "the .npy header claims {hlen} bytes, more than the limit of {MAX_HEADER}"
        ));
    }
    let mut h = vec![0u8; hlen];
    r.read_exact(&mut h)
        .map_err(|e| eof_msg(e, "the .npy header"))?;
    let mut p = Parser { s: &h, i: 0 };
    let dict = p.dict(0).map_err(|m| format!("bad .npy header: {m}"))?;
    let get = |k: &str| dict.iter().find(|(key, _)| key == k).map(|(_, v)| v);
    let descr = match get("descr") {
        Some(Lit::Str(s)) => s.clone(),
        Some(_) => {
            return Err(
                "structured .npy dtypes are not supported (descr is not a plain type string)"
                    .into(),
            )
        }
        None => return Err("bad .npy header: no 'descr'".into()),
    };
    match get("fortran_order") {
        Some(Lit::Bool(false)) => {}
        Some(Lit::Bool(true)) => {
            return Err("Fortran-ordered (column-major) arrays are not supported: save with np.ascontiguousarray".into())
        }
        _ => return Err("bad .npy header: no boolean 'fortran_order'".into()),
    }
    let shape = match get("shape") {
        Some(Lit::Tuple(items)) => items
            .iter()
            .map(|i| match i {
                Lit::Int(v) => usize::try_from(*v).ok(),
                _ => None,
            })
            .collect::<Option<Vec<usize>>>()
            .ok_or("bad .npy header: 'shape' is not a tuple of integers")?,
        _ => return Err("bad .npy header: no 'shape' tuple".into()),
    };
    let (dtype, little_endian) = parse_descr(&descr)?;
    if numel(&shape)
        .and_then(|n| n.checked_mul(dtype.size()))
        .is_none()
    {
        return Err(format!("shape {} is too large", shape_str(&shape)));
    }
    Ok(NpyHeader {
        dtype,
        little_endian,
        shape,
    })
}

fn eof_msg(e: std::io::Error, what: &str) -> String {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        format!("truncated file: it ends inside {what}")
    } else {
        format!("read error in {what}: {e}")
    }
}

fn read_f32_stream<R: Read>(r: &mut R, what: &str) -> std::result::Result<Array<f32>, String> {
    let h = read_header(r)?;
    if !h.dtype.is_float() {
        return Err(format!(
            "{what} has dtype {}, expected a floating-point dtype (float32, float16, float64)",
            h.dtype
        ));
    }
    let n = numel(&h.shape).unwrap_or(0);
    let data = raw::read_f32(r, &h.dtype, n, h.little_endian).map_err(|e| {
        eof_msg(
            e,
            &format!("the data of {what} (shape {})", shape_str(&h.shape)),
        )
    })?;
    Ok(Array {
        shape: h.shape,
        data,
    })
}

fn read_i64_stream<R: Read>(r: &mut R, what: &str) -> std::result::Result<Array<i64>, String> {
    let h = read_header(r)?;
    if !h.dtype.is_int() {
        return Err(format!(
            "{what} has dtype {}, expected an integer dtype (int32, int64, ...)",
            h.dtype
        ));
    }
    let n = numel(&h.shape).unwrap_or(0);
    let data = raw::read_i64(r, &h.dtype, n, h.little_endian).map_err(|e| {
        eof_msg(
            e,
            &format!("the data of {what} (shape {})", shape_str(&h.shape)),
        )
    })?;
    Ok(Array {
        shape: h.shape,
        data,
    })
}

fn open(path: &Path) -> Result<BufReader<File>> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    Ok(BufReader::with_capacity(1 << 16, f))
}

/// Reads a floating-point `.npy` file as f32.
pub fn read_npy_f32(path: &Path) -> Result<Array<f32>> {
    let mut r = open(path)?;
    read_f32_stream(&mut r, "the array").map_err(|m| Error::bad_input(path, m))
}

/// Reads an integer `.npy` file as i64.
pub fn read_npy_i64(path: &Path) -> Result<Array<i64>> {
    let mut r = open(path)?;
    read_i64_stream(&mut r, "the array").map_err(|m| Error::bad_input(path, m))
}

/// An opened `.npz` archive.
pub struct Npz {
    path: PathBuf,
    zip: zip::ZipArchive<BufReader<File>>,
}

impl Npz {
    pub fn open(path: &Path) -> Result<Npz> {
        let r = open(path)?;
        let zip = zip::ZipArchive::new(r)
            .map_err(|e| Error::bad_input(path, format!("not a valid .npz (zip) archive: {e}")))?;
        Ok(Npz {
            path: path.to_path_buf(),
            zip,
        })
    }

    /// The array names in the archive (entry names without `.npy`).
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .zip
            .file_names()
            .map(|n| n.strip_suffix(".npy").unwrap_or(n).to_string())
            .collect();
        v.sort();
        v
    }

    pub fn contains(&self, name: &str) -> bool {
        self.zip.index_for_name(&format!("{name}.npy")).is_some()
    }

    fn entry(&mut self, name: &str) -> Result<zip::read::ZipFile<'_, BufReader<File>>> {
        let names = self.names();
        let path = self.path.clone();
        self.zip
            .by_name(&format!("{name}.npy"))
            .map_err(|e| match e {
                zip::result::ZipError::FileNotFound => Error::bad_input(
                    &path,
                    format!(
                        "missing array '{name}' (the archive holds: {})",
                        names.join(", ")
                    ),
                ),
                e => Error::bad_input(&path, format!("cannot read array '{name}': {e}")),
            })
    }

    pub fn read_f32(&mut self, name: &str) -> Result<Array<f32>> {
        let path = self.path.clone();
        let mut e = self.entry(name)?;
        read_f32_stream(&mut e, &format!("array '{name}'"))
            .map_err(|m| Error::bad_input(&path, format!("array '{name}': {m}")))
    }

    pub fn read_i64(&mut self, name: &str) -> Result<Array<i64>> {
        let path = self.path.clone();
        let mut e = self.entry(name)?;
        read_i64_stream(&mut e, &format!("array '{name}'"))
            .map_err(|m| Error::bad_input(&path, format!("array '{name}': {m}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(header: &str, data: &[u8]) -> Vec<u8> {
        let mut h = header.to_string();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut v = b"\x93NUMPY\x01\x00".to_vec();
        v.extend_from_slice(&(h.len() as u16).to_le_bytes());
        v.extend_from_slice(h.as_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn header_variants() {
        let data: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let b = npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
            &data,
        );
        let a = read_f32_stream(&mut &b[..], "x").unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.data, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        // big-endian int16, 1-D shape with trailing comma
        let data: Vec<u8> = [-2i16, 7].iter().flat_map(|x| x.to_be_bytes()).collect();
        let b = npy(
            "{'descr': '>i2', 'fortran_order': False, 'shape': (2,), }",
            &data,
        );
        let a = read_i64_stream(&mut &b[..], "x").unwrap();
        assert_eq!(a.data, vec![-2, 7]);
        // scalar
        let b = npy(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (), }",
            &2.5f64.to_le_bytes(),
        );
        let a = read_f32_stream(&mut &b[..], "x").unwrap();
        assert_eq!((a.shape.len(), a.data.clone()), (0, vec![2.5]));
        let b = npy(
            "{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }",
            &[0; 4],
        );
        assert!(read_f32_stream(&mut &b[..], "x")
            .unwrap_err()
            .contains("Fortran"));
        let b = npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }",
            &[0; 8],
        );
        assert!(read_f32_stream(&mut &b[..], "x")
            .unwrap_err()
            .contains("truncated"));
        let b = npy(
            "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }",
            &[0; 8],
        );
        assert!(read_f32_stream(&mut &b[..], "x")
            .unwrap_err()
            .contains("unsupported dtype"));
        let b = npy(
            "{'descr': '<i4', 'fortran_order': False, 'shape': (1,), }",
            &[0; 4],
        );
        assert!(read_f32_stream(&mut &b[..], "x")
            .unwrap_err()
            .contains("int32"));
    }
}
