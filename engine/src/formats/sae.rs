//! SAE weights: SAELens folders (v6 nested and older flat `cfg.json`), EleutherAI sparsify
//! folders, Gemma Scope `params.npz` and Gemma Scope 2 safetensors. Everything is converted to one
//! in-memory form ([`Sae`]) with `W_enc [d_in, d_sae]` and `W_dec [d_sae, d_in]`, f32, row-major.

use super::cfg_keys::{
    refuse_unknown, short, SAELENS_HARMLESS, SAELENS_READ, SPARSIFY_HARMLESS, SPARSIFY_READ,
};
use super::npy::Npz;
use super::raw::{at_row, first_non_finite, shape_str};
pub use super::sae_matrices::Matrix;
use super::sae_matrices::{row_norm, scale_decoder_row, scale_encoder_row, InFile, Matrices};
use super::st::StFile;
use crate::types::Architecture;
use crate::{Error, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// An SAE dictionary, ready to encode with.
#[derive(Debug, Clone, PartialEq)]
pub struct Sae {
    pub architecture: Architecture,
    pub d_in: usize,
    pub d_sae: usize,
    /// `k` of TopK dictionaries; the number of groups of GroupMax ones.
    pub k: Option<usize>,
    /// Whether `b_dec` is subtracted from the input before encoding.
    pub apply_b_dec_to_input: bool,
    pub hook: Option<String>,
    pub layer: Option<u32>,
    pub model: Option<String>,
    /// `"saelens"`, `"sparsify"` or `"gemmascope"`.
    pub source_format: &'static str,
    /// `[d_in, d_sae]`, row-major.
    pub w_enc: Vec<f32>,
    /// `[d_sae]`.
    pub b_enc: Vec<f32>,
    /// `[d_sae, d_in]`, row-major.
    pub w_dec: Vec<f32>,
    /// `[d_in]`.
    pub b_dec: Vec<f32>,
    /// `[d_sae]`, JumpReLU only.
    pub threshold: Option<Vec<f32>>,
}

/// An SAE as read for ingest: [`SaeSource::sae`] holds everything but `w_enc` and `w_dec`
/// (left empty), read and checked; the two matrices are read in chunks of rows by
/// [`SaeSource::for_each_chunk`], checked (finite) and transformed (the decoder-norm fold of
/// SAELens's `rescale_acts_by_decoder_norm`) chunk by chunk.
#[derive(Debug)]
pub struct SaeSource {
    /// The SAE, with `w_enc` and `w_dec` empty.
    pub sae: Sae,
    matrices: Matrices,
}

impl SaeSource {
    fn new(matrices: Matrices, sae: Sae) -> SaeSource {
        SaeSource { sae, matrices }
    }

    /// An SAE already in memory, as a source (its matrices are moved out of `sae`).
    pub fn from_sae(mut sae: Sae) -> SaeSource {
        let matrices = Matrices::Loaded {
            w_enc: std::mem::take(&mut sae.w_enc),
            w_dec: std::mem::take(&mut sae.w_dec),
        };
        SaeSource { sae, matrices }
    }

    /// Rows and row length of a matrix.
    pub fn shape(&self, m: Matrix) -> (usize, usize) {
        match m {
            Matrix::Encoder => (self.sae.d_in, self.sae.d_sae),
            Matrix::Decoder => (self.sae.d_sae, self.sae.d_in),
        }
    }

    /// Calls `f` with consecutive chunks of `rows_per_chunk` whole rows of matrix `m` (the last
    /// may be shorter), in order, as float32, checked and transformed. Stops at the first error,
    /// from the file or from `f`.
    pub fn for_each_chunk(
        &self,
        m: Matrix,
        rows_per_chunk: usize,
        f: impl FnMut(&[f32]) -> Result<()>,
    ) -> Result<()> {
        self.matrices
            .for_each_chunk(m, self.shape(m), rows_per_chunk, f)
    }

    /// The whole SAE in memory (what encoding needs).
    pub fn into_sae(self) -> Result<Sae> {
        let (enc, dec) = (self.shape(Matrix::Encoder), self.shape(Matrix::Decoder));
        let SaeSource { mut sae, matrices } = self;
        (sae.w_enc, sae.w_dec) = matrices.into_whole(enc, dec)?;
        Ok(sae)
    }
}

/// Loads an SAE from a file or folder, detecting its format (see docs/FORMATS.md):
/// a SAELens folder (`cfg.json` + `sae_weights.safetensors`), a sparsify hookpoint folder
/// (`cfg.json` + `sae.safetensors`) or its parent holding exactly one hookpoint, a Gemma Scope
/// `params.npz`, a Gemma Scope 2 safetensors file (`w_enc`, `w_dec`, ...), or a folder holding one
/// of those files.
pub fn load_sae(path: &Path) -> Result<Sae> {
    open_sae(path)?.into_sae()
}

/// [`load_sae`] without reading `W_enc` and `W_dec` whole: everything else is read and checked
/// (shapes, the small tensors, the settings), and the two matrices are read by row ranges when
/// they are written ([`SaeSource::for_each_chunk`]). Shapes and dtypes of the matrices are
/// checked here; their values (finite) as each chunk is read.
pub fn open_sae(path: &Path) -> Result<SaeSource> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        load_dir(path)
    } else {
        load_file(path)
    }
}

fn load_dir(dir: &Path) -> Result<SaeSource> {
    let f = |name: &str| dir.join(name);
    if f("sae_weights.safetensors").is_file() {
        return load_saelens(&f("sae_weights.safetensors"));
    }
    if f("sae.safetensors").is_file() {
        return load_sparsify(&f("sae.safetensors"));
    }
    if f("params.npz").is_file() {
        return load_gemmascope_npz(&f("params.npz"));
    }
    if f("params.safetensors").is_file() {
        return load_file(&f("params.safetensors"));
    }
    let entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    let mut hookpoints: Vec<PathBuf> = entries
        .iter()
        .filter(|p| p.is_dir() && p.join("sae.safetensors").is_file())
        .cloned()
        .collect();
    hookpoints.sort();
    match hookpoints.as_slice() {
        [one] => return load_sparsify(&one.join("sae.safetensors")),
        [] => {}
        many => {
            let names: Vec<String> = many
                .iter()
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect();
            return Err(Error::bad_input(
                dir,
                format!(
                    "this sparsify folder holds {} hookpoints ({}); pass one hookpoint folder",
                    many.len(),
                    names.join(", ")
                ),
            ));
        }
    }
    let mut weights: Vec<&PathBuf> = entries
        .iter()
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("safetensors") | Some("npz")
                )
        })
        .collect();
    weights.sort();
    if let [one] = weights.as_slice() {
        return load_file(one);
    }
    Err(Error::bad_input(
        dir,
        "no SAE found: expected cfg.json + sae_weights.safetensors (SAELens), cfg.json + sae.safetensors \
         (sparsify, or one <hookpoint>/ subfolder holding them), params.npz (Gemma Scope) or a single \
         safetensors file with w_enc/w_dec (Gemma Scope 2)",
    ))
}

fn load_file(path: &Path) -> Result<SaeSource> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("npz") => load_gemmascope_npz(path),
        Some("safetensors") => {
            let st = StFile::open(path)?;
            if st.get("W_enc").is_some() {
                load_saelens(path)
            } else if st.get("encoder.weight").is_some() {
                load_sparsify(path)
            } else if st.get("w_enc").is_some() {
                load_gemmascope2(path, st)
            } else {
                Err(Error::bad_input(
                    path,
                    format!(
                        "not a known SAE file: no 'W_enc' (SAELens), 'encoder.weight' (sparsify) or 'w_enc' (Gemma Scope 2) tensor; {}",
                        st.names_list()
                    ),
                ))
            }
        }
        _ => Err(Error::bad_input(
            path,
            "not a known SAE file: expected a folder, a .safetensors file or a Gemma Scope params.npz",
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// cfg.json

fn read_cfg(path: &Path) -> Result<serde_json::Map<String, Value>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::bad_input(path, format!("invalid JSON: {e}")))?;
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(Error::bad_input(path, "expected a JSON object")),
    }
}

fn cfg_next_to(weights: &Path) -> Result<(PathBuf, serde_json::Map<String, Value>)> {
    let dir = weights.parent().unwrap_or_else(|| Path::new("."));
    let cfg = dir.join("cfg.json");
    if !cfg.is_file() {
        return Err(Error::bad_input(
            dir,
            format!(
                "missing cfg.json next to {}",
                weights
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ),
        ));
    }
    let m = read_cfg(&cfg)?;
    Ok((cfg, m))
}

fn get_str(m: &serde_json::Map<String, Value>, k: &str) -> Option<String> {
    m.get(k).and_then(|v| v.as_str()).map(str::to_string)
}

/// A non-negative integer field; also accepts floats with an integral value (`32.0`).
fn get_usize(cfg: &Path, m: &serde_json::Map<String, Value>, k: &str) -> Result<Option<usize>> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let n = v
                .as_u64()
                .or_else(|| {
                    v.as_f64()
                        .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f < 1e15)
                        .map(|f| f as u64)
                })
                .and_then(|n| usize::try_from(n).ok());
            match n {
                Some(n) => Ok(Some(n)),
                None => Err(Error::bad_input(
                    cfg,
                    format!("field '{k}' must be a non-negative integer, found {v}"),
                )),
            }
        }
    }
}

fn get_bool(cfg: &Path, m: &serde_json::Map<String, Value>, k: &str) -> Result<Option<bool>> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(Error::bad_input(
            cfg,
            format!("field '{k}' must be true or false, found {v}"),
        )),
    }
}

/// The layer in a hook name: the number after `blocks.`, `layers.`, `layer.`, `h.` (or the first
/// numeric component).
pub(crate) fn layer_from_hook(hook: &str) -> Option<u32> {
    let parts: Vec<&str> = hook.split(['.', '/']).collect();
    for w in parts.windows(2) {
        if let [a, b] = w {
            if matches!(*a, "blocks" | "layers" | "layer" | "h" | "block") {
                if let Ok(n) = b.parse() {
                    return Some(n);
                }
            }
        }
    }
    parts.iter().find_map(|p| p.parse().ok())
}

/// The layer from a path component `layer_12` or `layer_17_width_16k_l0_small` (Gemma Scope's
/// layouts).
fn layer_from_path(path: &Path) -> Option<u32> {
    path.components().rev().find_map(|c| {
        c.as_os_str()
            .to_str()
            .and_then(|s| s.strip_prefix("layer_"))
            .and_then(|n| {
                let digits: String = n.chars().take_while(|c| c.is_ascii_digit()).collect();
                digits.parse().ok()
            })
    })
}

// ---------------------------------------------------------------------------------------------
// weights

/// Where tensors come from.
enum Src {
    St(StFile),
    Npz(Npz),
}

impl Src {
    fn has(&self, name: &str) -> bool {
        match self {
            Src::St(s) => s.get(name).is_some(),
            Src::Npz(z) => z.contains(name),
        }
    }
    fn read(&mut self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        match self {
            Src::St(s) => s.read_f32(name),
            Src::Npz(z) => z.read_f32(name).map(|a| (a.shape, a.data)),
        }
    }
}

struct Names {
    w_enc: &'static str,
    /// `encoder.weight` is stored `[d_sae, d_in]`.
    w_enc_transposed: bool,
    b_enc: &'static str,
    w_dec: &'static str,
    b_dec: &'static str,
    threshold: Option<&'static str>,
}

struct Weights {
    d_in: usize,
    d_sae: usize,
    matrices: Matrices,
    b_enc: Vec<f32>,
    b_dec: Vec<f32>,
    threshold: Option<Vec<f32>>,
}

fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; v.len()];
    // Blocked for cache friendliness on large matrices.
    const B: usize = 64;
    for r0 in (0..rows).step_by(B) {
        for c0 in (0..cols).step_by(B) {
            for r in r0..(r0 + B).min(rows) {
                for c in c0..(c0 + B).min(cols) {
                    if let (Some(o), Some(x)) = (out.get_mut(c * rows + r), v.get(r * cols + c)) {
                        *o = *x;
                    }
                }
            }
        }
    }
    out
}

/// Refuses a non-finite value in `v`, the part of tensor `name` that starts at flat index
/// `offset`.
fn check_finite(path: &Path, name: &str, shape: &[usize], v: &[f32], offset: usize) -> Result<()> {
    if let Some((i, x)) = first_non_finite(v) {
        let cols = shape.get(1).copied().unwrap_or(1);
        return Err(Error::bad_input(
            path,
            format!(
                "tensor '{name}' holds {x} at {}",
                at_row(offset + i, cols, shape.len())
            ),
        ));
    }
    Ok(())
}

fn read_weights(path: &Path, mut src: Src, n: &Names) -> Result<Weights> {
    let bad = |m: String| Error::bad_input(path, m);
    // A safetensors file's matrices stay in it and are read by row ranges; an npz archive's, and
    // sparsify's encoder (stored transposed), are read whole.
    let streamed = matches!(src, Src::St(_)) && !n.w_enc_transposed;
    let (es, enc) = match &src {
        Src::St(st) if streamed => (st.require_float(n.w_enc)?.shape.clone(), None),
        _ => {
            let (s, v) = src.read(n.w_enc)?;
            (s, Some(v))
        }
    };
    let (d_in, d_sae) = match (es.as_slice(), n.w_enc_transposed) {
        ([a, b], false) => (*a, *b),
        ([a, b], true) => (*b, *a),
        _ => {
            return Err(bad(format!(
                "tensor '{}' has shape {}, expected a matrix [{}]",
                n.w_enc,
                shape_str(&es),
                if n.w_enc_transposed {
                    "d_sae, d_in"
                } else {
                    "d_in, d_sae"
                }
            )))
        }
    };
    if d_in == 0 || d_sae == 0 {
        return Err(bad(format!(
            "tensor '{}' has shape {}: d_in and d_sae must be positive",
            n.w_enc,
            shape_str(&es)
        )));
    }
    let from = format!(
        "(d_in = {d_in}, d_sae = {d_sae} from '{}' {})",
        n.w_enc,
        shape_str(&es)
    );
    let check_shape = |name: &str, s: &[usize], expected: &[usize], what: &str| {
        if s != expected {
            return Err(bad(format!(
                "tensor '{name}' has shape {}, expected {} = {what} {from}",
                shape_str(s),
                shape_str(expected)
            )));
        }
        Ok(())
    };
    let want = |src: &mut Src, name: &str, expected: &[usize], what: &str| {
        let (s, v) = src.read(name)?;
        check_shape(name, &s, expected, what)?;
        check_finite(path, name, &s, &v, 0)?;
        Ok::<_, Error>(v)
    };
    let b_enc = want(&mut src, n.b_enc, &[d_sae], "[d_sae]")?;
    let w_dec = match &src {
        Src::St(st) if streamed => {
            check_shape(
                n.w_dec,
                &st.require_float(n.w_dec)?.shape,
                &[d_sae, d_in],
                "[d_sae, d_in]",
            )?;
            None
        }
        _ => Some(want(&mut src, n.w_dec, &[d_sae, d_in], "[d_sae, d_in]")?),
    };
    let b_dec = want(&mut src, n.b_dec, &[d_in], "[d_in]")?;
    let threshold = match n.threshold {
        Some(t) => Some(want(&mut src, t, &[d_sae], "[d_sae]")?),
        None => None,
    };
    let matrices = match (src, enc, w_dec) {
        (Src::St(file), None, None) => Matrices::InFile(InFile {
            file,
            w_enc: n.w_enc,
            w_dec: n.w_dec,
            decoder_norms: None,
        }),
        (_, Some(enc), Some(w_dec)) => {
            check_finite(path, n.w_enc, &es, &enc, 0)?;
            let w_enc = if n.w_enc_transposed {
                transpose(&enc, d_sae, d_in)
            } else {
                enc
            };
            Matrices::Loaded { w_enc, w_dec }
        }
        _ => return Err(bad("internal error: matrices half read".to_string())),
    };
    Ok(Weights {
        d_in,
        d_sae,
        matrices,
        b_enc,
        b_dec,
        threshold,
    })
}

fn check_dims(
    cfg: &Path,
    m: &serde_json::Map<String, Value>,
    w: &Weights,
    weights: &Path,
) -> Result<()> {
    for (key, actual) in [("d_in", w.d_in), ("d_sae", w.d_sae)] {
        if let Some(v) = get_usize(cfg, m, key)? {
            if v != actual {
                return Err(Error::bad_input(
                    cfg,
                    format!(
                        "{key} is {v} in cfg.json but the weights in {} have {key} = {actual}",
                        weights.display()
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn check_k(cfg: &Path, k: Option<usize>, d_sae: usize) -> Result<usize> {
    match k {
        Some(k) if k >= 1 && k <= d_sae => Ok(k),
        Some(k) => Err(Error::bad_input(
            cfg,
            format!("k = {k} is out of range for a TopK SAE with d_sae = {d_sae} (1..={d_sae})"),
        )),
        None => Err(Error::bad_input(cfg, "TopK SAE without k")),
    }
}

fn load_saelens(weights: &Path) -> Result<SaeSource> {
    let (cfg_path, cfg) = cfg_next_to(weights)?;
    let cp = cfg_path.as_path();
    // The architecture first: a refused one names its reason, not its training settings.
    let architecture = saelens_architecture(cp, &cfg)?;
    refuse_unknown(cp, &cfg, "SAELens", SAELENS_READ, SAELENS_HARMLESS)?;
    let meta = cfg.get("metadata").and_then(|m| m.as_object());
    let meta_str = |k: &str| {
        meta.and_then(|m| get_str(m, k))
            .or_else(|| get_str(&cfg, k))
    };
    let k = match get_usize(cp, &cfg, "k")? {
        Some(k) => Some(k),
        None => saelens_kwargs_k(cp, &cfg)?,
    };
    check_saelens_input_settings(cp, &cfg)?;
    // Only SAELens's TopK config has this field; the other architectures' configs drop it.
    let rescale = architecture == Architecture::TopK
        && get_bool(cp, &cfg, "rescale_acts_by_decoder_norm")?.unwrap_or(false);
    let apply_b_dec_to_input = get_bool(cp, &cfg, "apply_b_dec_to_input")?.unwrap_or(true);
    let st = StFile::open(weights)?;
    let threshold = if architecture == Architecture::JumpRelu {
        if st.get("threshold").is_some() {
            Some("threshold")
        } else if st.get("log_threshold").is_some() {
            Some("log_threshold")
        } else {
            st.require("threshold")?;
            None
        }
    } else {
        None
    };
    let has_scaling_factor = st.get("scaling_factor").is_some();
    let mut src = Src::St(st);
    refuse_finetuning_scale(weights, cp, &cfg, has_scaling_factor, &mut src)?;
    let mut w = read_weights(
        weights,
        src,
        &Names {
            w_enc: "W_enc",
            w_enc_transposed: false,
            b_enc: "b_enc",
            w_dec: "W_dec",
            b_dec: "b_dec",
            threshold,
        },
    )?;
    if threshold == Some("log_threshold") {
        if let Some(t) = w.threshold.as_mut() {
            t.iter_mut().for_each(|x| *x = x.exp());
        }
    }
    check_dims(cp, &cfg, &w, weights)?;
    let k = if architecture == Architecture::TopK {
        Some(check_k(cp, k, w.d_sae)?)
    } else {
        None
    };
    if rescale {
        fold_decoder_norms(weights, &mut w)?;
    }
    let hook = meta_str("hook_name").or_else(|| get_str(&cfg, "hook_point"));
    let layer = match get_usize(cp, &cfg, "hook_layer")? {
        Some(l) => u32::try_from(l).ok(),
        None => match meta
            .map(|m| get_usize(cp, m, "hook_layer"))
            .transpose()?
            .flatten()
        {
            Some(l) => u32::try_from(l).ok(),
            None => hook.as_deref().and_then(layer_from_hook),
        },
    };
    Ok(SaeSource::new(
        w.matrices,
        Sae {
            architecture,
            d_in: w.d_in,
            d_sae: w.d_sae,
            k,
            apply_b_dec_to_input,
            hook,
            layer,
            model: meta_str("model_name"),
            source_format: "saelens",
            w_enc: Vec::new(),
            b_enc: w.b_enc,
            w_dec: Vec::new(),
            b_dec: w.b_dec,
            threshold: w.threshold,
        },
    ))
}

/// The architecture a SAELens `cfg.json` names (with the flat layout's activation function),
/// or why it is refused.
fn saelens_architecture(cp: &Path, cfg: &serde_json::Map<String, Value>) -> Result<Architecture> {
    let arch_name = get_str(cfg, "architecture").unwrap_or_else(|| "standard".into());
    let act_fn = get_str(cfg, "activation_fn").or_else(|| get_str(cfg, "activation_fn_str"));
    let refused = |why: &str| {
        Err(Error::bad_input(
            cp,
            format!("unsupported SAE architecture '{arch_name}': {why}"),
        ))
    };
    match arch_name.as_str() {
        "standard" | "relu" => match act_fn.as_deref() {
            None | Some("relu") => Ok(Architecture::Relu),
            Some("topk") => Ok(Architecture::TopK),
            Some(other) => Err(Error::bad_input(
                cp,
                format!("unsupported activation function '{other}' (relu and topk are supported)"),
            )),
        },
        "topk" => Ok(Architecture::TopK),
        "jumprelu" => Ok(Architecture::JumpRelu),
        "batchtopk" | "matryoshka_batchtopk" => refused(
            "this is a BatchTopK training checkpoint, whose codes depend on the whole batch; \
             save it with SAELens's save_inference_model (a JumpReLU SAE with the learned \
             threshold) and ingest that",
        ),
        "gated" => refused("gated SAEs gate with b_gate and scale with r_mag/b_mag, which saedb does not implement"),
        "abstopk" => refused("AbsTopK keeps the k largest absolute values, signed, which saedb does not implement"),
        "transcoder" | "skip_transcoder" | "jumprelu_transcoder" | "jumprelu_skip_transcoder" => {
            refused("transcoders read one hook and write another; saedb stores SAEs that reconstruct their input")
        }
        "temporal" | "matching_pursuit" => {
            refused("its codes are computed iteratively or across positions, which saedb does not implement")
        }
        _ => refused("supported are standard/relu, topk and jumprelu"),
    }
}

/// `k` from the flat layout's `activation_fn_kwargs`; any other keyword is refused.
fn saelens_kwargs_k(cp: &Path, cfg: &serde_json::Map<String, Value>) -> Result<Option<usize>> {
    let Some(v) = cfg.get("activation_fn_kwargs") else {
        return Ok(None);
    };
    let Some(kw) = v.as_object() else {
        if v.is_null() {
            return Ok(None);
        }
        return Err(Error::bad_input(
            cp,
            format!(
                "setting 'activation_fn_kwargs' = {} must be an object",
                short(v)
            ),
        ));
    };
    if let Some((key, value)) = kw.iter().find(|(key, _)| key.as_str() != "k") {
        return Err(Error::bad_input(
            cp,
            format!(
                "unknown SAELens setting 'activation_fn_kwargs.{key}' = {}: only 'k' is read, and \
                 saedb refuses settings that might change the codes",
                short(value)
            ),
        ));
    }
    get_usize(cp, kw, "k")
}

/// The settings that transform the input before encoding: only the identity is implemented.
fn check_saelens_input_settings(cp: &Path, cfg: &serde_json::Map<String, Value>) -> Result<()> {
    match cfg.get("normalize_activations") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => {}
        Some(Value::String(s)) if s == "none" => {}
        Some(v) => {
            return Err(Error::bad_input(
                cp,
                format!(
                    "normalize_activations {} is not supported: saedb encodes raw activations, \
                     which would give wrong codes for this SAE",
                    match v {
                        Value::String(s) => format!("'{s}'"),
                        Value::Bool(true) => "true (expected_average_only_in)".into(),
                        other => short(other),
                    }
                ),
            ))
        }
    }
    match cfg.get("reshape_activations") {
        // hook_z only flattens (n_heads, d_head) into d_in, as a row-major input row already is.
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s == "none" || s == "hook_z" => {}
        Some(v) => {
            return Err(Error::bad_input(
                cp,
                format!(
                    "reshape_activations = {} is not supported (none and hook_z are)",
                    short(v)
                ),
            ))
        }
    }
    Ok(())
}

/// SAELens before 6 could scale codes by a fine-tuned `scaling_factor`; 6.54.12 refuses such
/// files, and so does saedb. A `scaling_factor` of all ones is dropped, as SAELens does.
fn refuse_finetuning_scale(
    weights: &Path,
    cp: &Path,
    cfg: &serde_json::Map<String, Value>,
    has_scaling_factor: bool,
    src: &mut Src,
) -> Result<()> {
    if get_bool(cp, cfg, "finetuning_scaling_factor")? == Some(true) {
        return Err(Error::bad_input(
            cp,
            "finetuning_scaling_factor = true is not supported: the codes of such an SAE are \
             scaled by a fine-tuned factor, which saedb does not implement",
        ));
    }
    if has_scaling_factor {
        let (_, v) = src.read("scaling_factor")?;
        if let Some(x) = v.iter().find(|x| **x != 1.0) {
            return Err(Error::bad_input(
                weights,
                format!(
                    "tensor 'scaling_factor' holds {x}: a fine-tuning scaling factor other than 1 \
                     is not supported"
                ),
            ));
        }
    }
    Ok(())
}

/// SAELens TopK with `rescale_acts_by_decoder_norm`: `encode` multiplies the pre-activations by
/// each decoder row's norm before the top-k. Folded into the weights exactly as SAELens's own
/// `save_inference_model` folds them: `W_enc` columns and `b_enc` times ‖W_dec[f]‖, `W_dec`
/// rows divided by it, so that the stored dictionary encodes to SAELens's codes and decodes
/// them to its reconstruction. A zero decoder row makes `pre · 0 = 0`: its encoder column and
/// bias become 0.
fn fold_decoder_norms(path: &Path, w: &mut Weights) -> Result<()> {
    let (d_in, d_sae) = (w.d_in, w.d_sae);
    let norms = match &w.matrices {
        Matrices::Loaded { w_dec, .. } => w_dec.chunks_exact(d_in).map(row_norm).collect(),
        Matrices::InFile(f) => f.decoder_norms(path, d_sae, d_in)?,
    };
    w.b_enc.iter_mut().zip(&norms).for_each(|(x, n)| *x *= n);
    match &mut w.matrices {
        Matrices::Loaded { w_enc, w_dec } => {
            for row in w_enc.chunks_exact_mut(d_sae) {
                scale_encoder_row(row, &norms);
            }
            for (row, n) in w_dec.chunks_exact_mut(d_in).zip(&norms) {
                scale_decoder_row(row, *n);
            }
        }
        // Applied to each chunk as it is read.
        Matrices::InFile(f) => f.decoder_norms = Some(norms),
    }
    Ok(())
}

fn load_sparsify(weights: &Path) -> Result<SaeSource> {
    let (cfg_path, cfg) = cfg_next_to(weights)?;
    let cp = cfg_path.as_path();
    refuse_unknown(cp, &cfg, "sparsify", SPARSIFY_READ, SPARSIFY_HARMLESS)?;
    let architecture = match cfg.get("activation") {
        None | Some(Value::Null) => Architecture::TopK,
        Some(Value::String(s)) if s == "topk" => Architecture::TopK,
        Some(Value::String(s)) if s == "groupmax" => Architecture::GroupMax,
        Some(v) => {
            return Err(Error::bad_input(
                cp,
                format!(
                    "sparsify activation = {} is not supported (topk and groupmax are)",
                    short(v)
                ),
            ))
        }
    };
    let transcode = get_bool(cp, &cfg, "transcode")?.unwrap_or(false);
    let src = Src::St(StFile::open(weights)?);
    let w = read_weights(
        weights,
        src,
        &Names {
            w_enc: "encoder.weight",
            w_enc_transposed: true,
            b_enc: "encoder.bias",
            w_dec: "W_dec",
            b_dec: "b_dec",
            threshold: None,
        },
    )?;
    check_dims(cp, &cfg, &w, weights)?;
    let num_latents = get_usize(cp, &cfg, "num_latents")?.unwrap_or(0);
    let expected = if num_latents > 0 {
        Some(("num_latents", num_latents))
    } else {
        get_usize(cp, &cfg, "expansion_factor")?
            .map(|e| ("expansion_factor × d_in", e.saturating_mul(w.d_in)))
    };
    if let Some((what, n)) = expected {
        if n != w.d_sae {
            return Err(Error::bad_input(
                cp,
                format!(
                    "{what} = {n} in cfg.json but 'encoder.weight' in {} has {} latents",
                    weights.display(),
                    w.d_sae
                ),
            ));
        }
    }
    let k = check_k(cp, get_usize(cp, &cfg, "k")?, w.d_sae)?;
    if architecture == Architecture::GroupMax && w.d_sae % k != 0 {
        return Err(Error::bad_input(
            cp,
            format!(
                "groupmax with k = {k} groups needs the {} latents to split evenly into groups (sparsify refuses this too)",
                w.d_sae
            ),
        ));
    }
    let hook = weights
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned());
    let layer = hook.as_deref().and_then(layer_from_hook);
    Ok(SaeSource::new(
        w.matrices,
        Sae {
            architecture,
            d_in: w.d_in,
            d_sae: w.d_sae,
            k: Some(k),
            apply_b_dec_to_input: !transcode,
            hook,
            layer,
            model: get_str(&cfg, "model"),
            source_format: "sparsify",
            w_enc: Vec::new(),
            b_enc: w.b_enc,
            w_dec: Vec::new(),
            b_dec: w.b_dec,
            threshold: None,
        },
    ))
}

fn gemmascope(path: &Path, w: Weights) -> SaeSource {
    SaeSource::new(
        w.matrices,
        Sae {
            architecture: Architecture::JumpRelu,
            d_in: w.d_in,
            d_sae: w.d_sae,
            k: None,
            apply_b_dec_to_input: false,
            hook: None,
            layer: layer_from_path(path),
            model: None,
            source_format: "gemmascope",
            w_enc: Vec::new(),
            b_enc: w.b_enc,
            w_dec: Vec::new(),
            b_dec: w.b_dec,
            threshold: w.threshold,
        },
    )
}

fn load_gemmascope_npz(path: &Path) -> Result<SaeSource> {
    let mut src = Src::Npz(Npz::open(path)?);
    for name in ["W_enc", "W_dec", "b_enc", "b_dec", "threshold"] {
        if !src.has(name) {
            // Read it to get the "missing array ... (the archive holds ...)" message.
            src.read(name)?;
        }
    }
    let w = read_weights(
        path,
        src,
        &Names {
            w_enc: "W_enc",
            w_enc_transposed: false,
            b_enc: "b_enc",
            w_dec: "W_dec",
            b_dec: "b_dec",
            threshold: Some("threshold"),
        },
    )?;
    Ok(gemmascope(path, w))
}

fn load_gemmascope2(path: &Path, st: StFile) -> Result<SaeSource> {
    let src = Src::St(st);
    let w = read_weights(
        path,
        src,
        &Names {
            w_enc: "w_enc",
            w_enc_transposed: false,
            b_enc: "b_enc",
            w_dec: "w_dec",
            b_dec: "b_dec",
            threshold: Some("threshold"),
        },
    )?;
    Ok(gemmascope(path, w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks() {
        assert_eq!(layer_from_hook("blocks.8.hook_resid_post"), Some(8));
        assert_eq!(layer_from_hook("layers.6.mlp"), Some(6));
        assert_eq!(layer_from_hook("encoder.layer.1.output"), Some(1));
        assert_eq!(layer_from_hook("embed"), None);
        assert_eq!(
            layer_from_path(Path::new("/x/layer_12/width_16k/average_l0_82/params.npz")),
            Some(12)
        );
        assert_eq!(
            layer_from_path(Path::new(
                "resid_post_all/layer_17_width_16k_l0_small/params.safetensors"
            )),
            Some(17)
        );
    }

    #[test]
    fn transpose_small() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(transpose(&v, 2, 3), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    }

    #[test]
    fn fixture_loads() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/minilm-mini/sae_L2");
        let s = load_sae(&p).unwrap();
        assert_eq!((s.d_in, s.d_sae, s.k), (384, 512, Some(16)));
        assert_eq!(s.architecture, Architecture::TopK);
        assert_eq!(s.layer, Some(2));
        assert!(s.apply_b_dec_to_input);
        assert_eq!(s.hook.as_deref(), Some("encoder.layer.1.output"));
    }
}
