//! Writing and reading safetensors files without materialising them: the header is computed from
//! the tensor shapes up front, data is streamed (or written at offsets) afterwards.

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Dtype {
    F32,
    F16,
    I32,
    U16,
    U32,
}

impl Dtype {
    pub fn size(self) -> usize {
        match self {
            Dtype::F32 | Dtype::I32 | Dtype::U32 => 4,
            Dtype::F16 | Dtype::U16 => 2,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "F32",
            Dtype::F16 => "F16",
            Dtype::I32 => "I32",
            Dtype::U16 => "U16",
            Dtype::U32 => "U32",
        }
    }
}

pub struct Spec {
    pub name: &'static str,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
}

/// A safetensors file whose header is written and whose tensors are filled in at offsets.
pub struct StWriter {
    file: File,
    /// Absolute file offset of each tensor's data.
    pub offsets: Vec<u64>,
}

impl StWriter {
    pub fn create(path: &Path, specs: &[Spec]) -> Result<StWriter> {
        let mut entries = Vec::new();
        let mut at = 0usize;
        let mut rel = Vec::new();
        for s in specs {
            let len = s.shape.iter().product::<usize>() * s.dtype.size();
            entries.push(format!(
                "\"{}\":{{\"dtype\":\"{}\",\"shape\":{:?},\"data_offsets\":[{},{}]}}",
                s.name,
                s.dtype.name(),
                s.shape,
                at,
                at + len
            ));
            rel.push(at);
            at += len;
        }
        let mut header = format!("{{{}}}", entries.join(",")).into_bytes();
        while (8 + header.len()) % 8 != 0 {
            header.push(b' ');
        }
        let mut file =
            File::create(path).with_context(|| format!("creating {}", path.display()))?;
        file.write_all(&(header.len() as u64).to_le_bytes())?;
        file.write_all(&header)?;
        let base = 8 + header.len() as u64;
        file.set_len(base + at as u64)?;
        Ok(StWriter {
            file,
            offsets: rel.into_iter().map(|r| base + r as u64).collect(),
        })
    }

    pub fn write_at(&self, offset: u64, bytes: &[u8]) -> Result<()> {
        self.file.write_all_at(bytes, offset)?;
        Ok(())
    }

    /// Makes the file durable.
    pub fn sync(self) -> Result<()> {
        self.file.sync_all()?;
        Ok(())
    }
}

/// Writes whole tensors given as little-endian bytes.
pub fn write_file(path: &Path, tensors: &[(Spec, &[u8])]) -> Result<()> {
    let specs: Vec<Spec> = tensors
        .iter()
        .map(|(s, _)| Spec {
            name: s.name,
            dtype: s.dtype,
            shape: s.shape.clone(),
        })
        .collect();
    let w = StWriter::create(path, &specs)?;
    for (i, (s, bytes)) in tensors.iter().enumerate() {
        let want = s.shape.iter().product::<usize>() * s.dtype.size();
        if bytes.len() != want {
            bail!(
                "tensor {} has {} bytes, expected {want}",
                s.name,
                bytes.len()
            );
        }
        w.write_at(w.offsets[i], bytes)?;
    }
    Ok(())
}

pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 4);
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// Calls `f(doc, pos, latent, value)` for every row of a delphi latents file (int32 `locations
/// [n, 3]` with absolute latents, float32 `activations [n]`), in file order; stops at the first
/// error `f` returns.
pub fn for_each_latent(
    path: &Path,
    mut f: impl FnMut(u32, u32, u32, f32) -> Result<()>,
) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let (loc, act) = (st.tensor("locations")?, st.tensor("activations")?);
    let le = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    for (l, a) in loc.data().chunks_exact(12).zip(act.data().chunks_exact(4)) {
        f(
            le(&l[0..4]),
            le(&l[4..8]),
            le(&l[8..12]),
            f32::from_bits(le(a)),
        )?;
    }
    Ok(())
}
