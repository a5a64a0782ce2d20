//! The baseline: the same activations as delphi's own cache — one safetensors file per latent
//! range (`<start>_<end>.safetensors`, end inclusive), `locations [n,3]` as uint16 when every
//! (sequence, position, local latent) fits, else uint32, and `activations [n]` as float16 — and
//! TOP 20 the way people answer it today: load the split holding the feature and scan it.

use crate::gen::ScaleSpec;
use crate::st::{self, Dtype, Spec, StWriter};
use anyhow::{anyhow, bail, Context, Result};
use half::f16;
use safetensors::SafeTensors;
use std::path::{Path, PathBuf};

const FLUSH_BYTES: usize = 4 << 20;

struct SplitFile {
    writer: StWriter,
    loc_at: u64,
    val_at: u64,
    loc_buf: Vec<u8>,
    val_buf: Vec<u8>,
}

impl SplitFile {
    fn flush(&mut self) -> Result<()> {
        self.writer.write_at(self.loc_at, &self.loc_buf)?;
        self.loc_at += self.loc_buf.len() as u64;
        self.loc_buf.clear();
        self.writer.write_at(self.val_at, &self.val_buf)?;
        self.val_at += self.val_buf.len() as u64;
        self.val_buf.clear();
        Ok(())
    }
}

pub struct FlatCache {
    pub dir: PathBuf,
    pub width: usize,
    pub wide: bool,
}

impl FlatCache {
    pub fn split_path(&self, split: usize, d_sae: usize) -> PathBuf {
        let start = split * self.width;
        let end = ((split + 1) * self.width).min(d_sae) - 1;
        self.dir.join(format!("{start}_{end}.safetensors"))
    }
}

/// Reads the generated latents files and writes them as delphi's split cache, durably (fsync).
/// `split_counts` sizes the files up front, as delphi knows its counts when it saves.
pub fn write_cache(
    dir: &Path,
    spec: &ScaleSpec,
    latents: &[PathBuf],
    split_counts: &[u64],
) -> Result<FlatCache> {
    std::fs::create_dir_all(dir)?;
    let width = spec.split_width();
    let wide = spec.docs > u16::MAX as usize + 1 || width > u16::MAX as usize + 1;
    let ldt = if wide { Dtype::U32 } else { Dtype::U16 };
    let cache = FlatCache {
        dir: dir.to_path_buf(),
        width,
        wide,
    };
    let mut splits = Vec::new();
    for (s, &n) in split_counts.iter().enumerate() {
        let writer = StWriter::create(
            &cache.split_path(s, spec.d_sae),
            &[
                Spec {
                    name: "locations",
                    dtype: ldt,
                    shape: vec![n as usize, 3],
                },
                Spec {
                    name: "activations",
                    dtype: Dtype::F16,
                    shape: vec![n as usize],
                },
            ],
        )?;
        splits.push(SplitFile {
            loc_at: writer.offsets[0],
            val_at: writer.offsets[1],
            writer,
            loc_buf: Vec::with_capacity(FLUSH_BYTES + 64),
            val_buf: Vec::with_capacity(FLUSH_BYTES / 2 + 64),
        });
    }
    for path in latents {
        st::for_each_latent(path, |doc, pos, latent, v| {
            let latent = latent as usize;
            let s = latent / width;
            let local = (latent - s * width) as u32;
            let sp = &mut splits[s];
            if wide {
                for x in [doc, pos, local] {
                    sp.loc_buf.extend_from_slice(&x.to_le_bytes());
                }
            } else {
                for x in [doc as u16, pos as u16, local as u16] {
                    sp.loc_buf.extend_from_slice(&x.to_le_bytes());
                }
            }
            sp.val_buf
                .extend_from_slice(&f16::from_f32(v).to_le_bytes());
            if sp.loc_buf.len() >= FLUSH_BYTES {
                sp.flush()?;
            }
            Ok(())
        })?;
    }
    for mut sp in splits {
        sp.flush()?;
        sp.writer.sync()?;
    }
    Ok(cache)
}

/// TOP k of one feature from the flat cache: read its split file, scan every row, keep the k
/// strongest (ties: lower (doc, pos) first). Returns (doc, pos, value).
pub fn scan_top(
    cache: &FlatCache,
    d_sae: usize,
    feature: u32,
    k: usize,
) -> Result<Vec<(u32, u32, f32)>> {
    let s = feature as usize / cache.width;
    let local = feature - (s * cache.width) as u32;
    let path = cache.split_path(s, d_sae);
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let loc = st.tensor("locations")?;
    let act = st.tensor("activations")?;
    let (loc, act) = (loc.data(), act.data());
    let mut hits: Vec<(u32, u32, f32)> = Vec::new();
    if cache.wide {
        for (l, a) in loc.chunks_exact(12).zip(act.chunks_exact(2)) {
            if u32::from_le_bytes(l[8..12].try_into().unwrap()) == local {
                let doc = u32::from_le_bytes(l[0..4].try_into().unwrap());
                let pos = u32::from_le_bytes(l[4..8].try_into().unwrap());
                hits.push((doc, pos, f16::from_le_bytes([a[0], a[1]]).to_f32()));
            }
        }
    } else {
        let local = local as u16;
        for (l, a) in loc.chunks_exact(6).zip(act.chunks_exact(2)) {
            if u16::from_le_bytes([l[4], l[5]]) == local {
                let doc = u16::from_le_bytes([l[0], l[1]]) as u32;
                let pos = u16::from_le_bytes([l[2], l[3]]) as u32;
                hits.push((doc, pos, f16::from_le_bytes([a[0], a[1]]).to_f32()));
            }
        }
    }
    if loc.len() / if cache.wide { 12 } else { 6 } != act.len() / 2 {
        bail!("{}: locations and activations disagree", path.display());
    }
    hits.sort_by(|a, b| b.2.total_cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1))));
    hits.truncate(k);
    Ok(hits)
}
