//! Pre-encoded sparse latents in EleutherAI delphi's cache format: a folder of
//! `<start>_<end>.safetensors` splits (latent range, end inclusive) or a single such file, each
//! holding `locations [n, 3]` = (sequence, position, latent − start), `activations [n]`, and
//! optionally `tokens [n_seq, ctx]`.

use super::raw::{first_non_finite, shape_str};
use super::st::StFile;
use crate::{Error, Result};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// The token ids a delphi cache was computed on: `[n_seq, ctx]` row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenMatrix {
    pub n_seq: usize,
    pub ctx: usize,
    pub ids: Vec<u32>,
}

/// Sparse latents, one entry per nonzero: `latent` is the absolute feature index (start of the
/// split + local index). Rows are sorted by (doc, pos, latent) and unique.
#[derive(Debug, Clone, PartialEq)]
pub struct Latents {
    pub doc: Vec<u32>,
    pub pos: Vec<u32>,
    pub latent: Vec<u32>,
    pub value: Vec<f32>,
    pub tokens: Option<TokenMatrix>,
}

impl Latents {
    pub fn len(&self) -> usize {
        self.value.len()
    }
    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }
}

/// `"<start>_<end>"` → (start, end).
fn split_range(path: &Path) -> Option<(u64, u64)> {
    let stem = path.file_stem()?.to_str()?;
    let (a, b) = stem.split_once('_')?;
    let (a, b): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
    (a <= b).then_some((a, b))
}

fn split_files(dir: &Path) -> Result<Vec<(PathBuf, u64, u64)>> {
    let mut splits = Vec::new();
    let mut subdirs = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let p = e.map_err(|e| Error::io(dir, e))?.path();
        if p.is_dir() {
            subdirs.push(p);
        } else if p.extension().and_then(|e| e.to_str()) == Some("safetensors") {
            match split_range(&p) {
                Some((s, e)) => splits.push((p, s, e)),
                None => {
                    return Err(Error::bad_input(
                        &p,
                        "not a delphi split: the file name must be <start>_<end>.safetensors with start <= end",
                    ))
                }
            }
        }
    }
    if splits.is_empty() {
        // delphi writes latents/<hookpoint>/<start>_<end>.safetensors: accept the parent of
        // exactly one hookpoint folder.
        subdirs.sort();
        let with_splits: Vec<PathBuf> = subdirs
            .into_iter()
            .filter(|d| {
                std::fs::read_dir(d).is_ok_and(|mut it| {
                    it.any(|e| {
                        e.is_ok_and(|e| {
                            let p = e.path();
                            p.extension().and_then(|x| x.to_str()) == Some("safetensors")
                                && split_range(&p).is_some()
                        })
                    })
                })
            })
            .collect();
        return match with_splits.as_slice() {
            [one] => split_files(one),
            [] => Err(Error::bad_input(
                dir,
                "no delphi splits found: expected <start>_<end>.safetensors files",
            )),
            many => Err(Error::bad_input(
                dir,
                format!(
                    "this folder holds {} hookpoint folders of delphi splits ({}); pass one",
                    many.len(),
                    many.iter()
                        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        };
    }
    splits.sort_by_key(|(_, s, e)| (*s, *e));
    for w in splits.windows(2) {
        if let [(pa, _, ea), (pb, sb, _)] = w {
            if sb <= ea {
                return Err(Error::bad_input(
                    pb,
                    format!(
                        "latent range overlaps the split {} (ranges are inclusive)",
                        pa.display()
                    ),
                ));
            }
        }
    }
    Ok(splits)
}

/// Reads a delphi latent cache: a single safetensors file, or a folder of
/// `<start>_<end>.safetensors` splits (or the parent of exactly one hookpoint folder of them).
/// A single file named `<start>_<end>.safetensors` is treated as one split (its latents are
/// offset by `start`).
pub fn read_latents(path: &Path) -> Result<Latents> {
    let (mut entries, tokens) = read_latent_entries(path)?;
    sort_and_check(&mut entries, path)?;
    Ok(Latents {
        doc: entries.iter().map(|e| e.0).collect(),
        pos: entries.iter().map(|e| e.1).collect(),
        latent: entries.iter().map(|e| e.2).collect(),
        value: entries.iter().map(|e| e.3).collect(),
        tokens,
    })
}

/// One nonzero as an ingest stores it: (sequence, position, absolute latent, value).
pub(crate) type LatentEntry = (u32, u32, u32, f32);

/// Rows of `locations` and `activations` decoded per step: the tensors are streamed, so that a
/// file costs its entries' memory and a few hundred KiB, not three times that.
const ROWS_PER_STEP: usize = 1 << 16;
/// Rows one parallel task checks and converts.
const ROWS_PER_TASK: usize = 1 << 12;

/// The entries of a delphi cache (see [`read_latents`]) in file order, validated row by row but
/// neither sorted nor checked for duplicates: the caller sorts them anyway.
pub(crate) fn read_latent_entries(path: &Path) -> Result<(Vec<LatentEntry>, Option<TokenMatrix>)> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let files = if meta.is_dir() {
        split_files(path)?
    } else {
        match split_range(path) {
            Some((s, e)) => vec![(path.to_path_buf(), s, e)],
            None => vec![(path.to_path_buf(), 0, u64::from(u32::MAX))],
        }
    };
    let mut out = Entries {
        rows: Vec::new(),
        tokens: None,
        tokens_from: None,
    };
    for (file, start, end) in &files {
        read_split(file, *start, *end, &mut out)?;
    }
    Ok((out.rows, out.tokens))
}

/// What the splits read so far hold.
struct Entries {
    rows: Vec<LatentEntry>,
    tokens: Option<TokenMatrix>,
    /// The split the token matrix came from, for the error when another split disagrees.
    tokens_from: Option<PathBuf>,
}

fn read_split(file: &Path, start: u64, end: u64, out: &mut Entries) -> Result<()> {
    let bad = |m: String| Error::bad_input(file, m);
    if end > u64::from(u32::MAX) {
        return Err(bad(format!(
            "latent range end {end} does not fit in 32 bits"
        )));
    }
    let st = StFile::open(file)?;
    let loc_t = st.require("locations")?;
    let n = match loc_t.shape.as_slice() {
        [n, 3] => *n,
        s => {
            return Err(bad(format!(
                "'locations' has shape {}, expected [n, 3] = (sequence, position, latent)",
                shape_str(s)
            )))
        }
    };
    let act_t = st.require("activations")?;
    if act_t.shape.as_slice() != [n] {
        return Err(bad(format!(
            "'activations' has shape {}, expected [{n}] (one value per row of 'locations')",
            shape_str(&act_t.shape)
        )));
    }
    let tokens = match st.get("tokens") {
        None => None,
        Some(t) => {
            let (n_seq, ctx) = match t.shape.as_slice() {
                [a, b] => (*a, *b),
                s => {
                    return Err(bad(format!(
                        "'tokens' has shape {}, expected [n_seq, ctx]",
                        shape_str(s)
                    )))
                }
            };
            let (_, ids) = st.read_i64("tokens")?;
            let ids = ids
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    u32::try_from(v).map_err(|_| {
                        bad(format!(
                            "'tokens' holds {v} at row {}, column {}: token ids must be in 0..=4294967295",
                            i / ctx.max(1),
                            i % ctx.max(1)
                        ))
                    })
                })
                .collect::<Result<Vec<u32>>>()?;
            Some(TokenMatrix { n_seq, ctx, ids })
        }
    };
    match (&out.tokens, tokens) {
        (None, Some(t)) => {
            out.tokens = Some(t);
            out.tokens_from = Some(file.to_path_buf());
        }
        (Some(prev), Some(t)) if *prev != t => {
            return Err(bad(format!(
                "'tokens' differs from the token matrix in {} (every split must hold the same tokens)",
                out.tokens_from.as_deref().unwrap_or(Path::new("?")).display()
            )));
        }
        _ => {}
    }
    let mut locations = st.stream("locations")?;
    let mut activations = st.stream("activations")?;
    out.rows.reserve(n);
    let mut first = 0;
    while first < n {
        let m = (n - first).min(ROWS_PER_STEP);
        let loc = locations.next_i64(3 * m)?;
        let act = activations.next_f32(m)?;
        if let Some((i, x)) = first_non_finite(&act) {
            return Err(bad(format!("'activations' holds {x} at row {}", first + i)));
        }
        // Rows are checked and converted in parallel, in place: the reader is the one serial
        // pass over the input before the ingest's parallel work.
        let base = out.rows.len();
        out.rows.resize(base + m, (0, 0, 0, 0.0));
        let tokens = out.tokens.as_ref();
        let problem = out.rows[base..]
            .par_chunks_mut(ROWS_PER_TASK)
            .zip(loc.par_chunks(3 * ROWS_PER_TASK))
            .zip(act.par_chunks(ROWS_PER_TASK))
            .enumerate()
            .find_map_first(|(task, ((rows, loc), act))| {
                for (i, (row, (l, v))) in rows
                    .iter_mut()
                    .zip(loc.chunks_exact(3).zip(act))
                    .enumerate()
                {
                    match location(l, first + task * ROWS_PER_TASK + i, start, end, tokens) {
                        Ok((s, p, f)) => *row = (s, p, (start + f) as u32, *v),
                        Err(e) => return Some(e),
                    }
                }
                None
            });
        if let Some(e) = problem {
            return Err(bad(e));
        }
        first += m;
    }
    Ok(())
}

/// One row of `locations` checked: (sequence, position, local latent), or what is wrong with it.
fn location(
    l: &[i64],
    row: usize,
    start: u64,
    end: u64,
    tokens: Option<&TokenMatrix>,
) -> std::result::Result<(u32, u32, u64), String> {
    let width = end - start;
    let (s, p, f) = match l {
        [s, p, f] => (*s, *p, *f),
        _ => return Err(format!("'locations' row {row} does not have 3 columns")),
    };
    if s < 0 || p < 0 || f < 0 {
        return Err(format!(
            "'locations' row {row} is ({s}, {p}, {f}): sequence, position and latent must be non-negative"
        ));
    }
    let (s, p, f) = (s as u64, p as u64, f as u64);
    if f > width {
        return Err(format!(
            "'locations' row {row} has latent {f}, beyond this split's range {start}..={end} (local latents are 0..={width})"
        ));
    }
    let (Ok(s32), Ok(p32)) = (u32::try_from(s), u32::try_from(p)) else {
        return Err(format!(
            "'locations' row {row} is ({s}, {p}, {f}): sequence and position must fit in 32 bits"
        ));
    };
    if let Some(t) = tokens {
        if s >= t.n_seq as u64 || p >= t.ctx as u64 {
            return Err(format!(
                "'locations' row {row} points at (sequence {s}, position {p}), outside the tokens matrix [{}, {}]",
                t.n_seq, t.ctx
            ));
        }
    }
    Ok((s32, p32, f))
}

/// Sorts by (sequence, position, latent) unless already sorted, and refuses duplicates.
fn sort_and_check(rows: &mut [LatentEntry], path: &Path) -> Result<()> {
    let key = |e: &LatentEntry| (e.0, e.1, e.2);
    if rows.windows(2).all(|w| key(&w[0]) < key(&w[1])) {
        return Ok(());
    }
    rows.sort_unstable_by_key(key);
    match rows.windows(2).find(|w| key(&w[0]) == key(&w[1])) {
        Some(w) => Err(Error::bad_input(
            path,
            format!(
                "duplicate entry for (sequence {}, position {}, latent {})",
                w[0].0, w[0].1, w[0].2
            ),
        )),
        None => Ok(()),
    }
}
