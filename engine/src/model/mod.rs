//! The model in the loop: a transformer run on the CPU (candle, f32) with the residual stream
//! readable and editable between blocks, so SAEs can read features from text and interventions
//! can steer generation.
//!
//! - [`Model::load`] reads a Llama GGUF (dequantized to f32 once), or a HF safetensors folder
//!   (Llama, BERT, Gemma 2, GPT-2) with its `config.json`.
//! - A [`Site`] is a place in the residual stream: site `s` is the stream after `s` blocks (site
//!   0 the embeddings). [`hooks::resolve`] maps SAELens / sparsify / Gemma Scope / HF hook names
//!   to sites.
//! - [`Model::forward`] runs blocks one by one and hands the stream at every site to a hook that
//!   may replace it; [`Model::residuals`] captures sites, [`Model::generate`] decodes with a KV
//!   cache (the prefix is never recomputed) while [`Intervention`]s edit the stream at every
//!   position, prompt and generated.
//!
//! Each architecture is one file ([`llama`], [`bert`], [`gemma2`], [`gpt2`]) implementing
//! [`Transformer`]: embed, one block, logits. The loop, the hooks and the cache live here.

mod bert;
pub mod config;
mod gemma2;
mod generate;
mod gpt2;
pub mod hooks;
mod intervene;
mod llama;
mod ops;
mod registered;
pub mod tokenizer;
mod weights;

pub use config::{ModelArchitecture, ModelConfig};
pub use generate::{GenerateOptions, Generated};
pub use intervene::Intervention;
pub(crate) use registered::{find_tokenizer, model_files};
pub use registered::{LiveDictionary, ModelInfo};
pub use tokenizer::{Encoded, TextTokenizer};

use crate::{Error, Result};
use candle_core::{Device, Tensor};
use std::fmt;
use std::path::{Path, PathBuf};

/// A tensor library failure inside the forward pass (never expected on valid input: shapes are
/// checked at load).
pub(crate) fn tensor_err(e: candle_core::Error) -> Error {
    Error::InvalidArgument(format!(
        "the model's forward pass failed in the tensor library: {e}"
    ))
}

/// A place in the residual stream: the stream after `0` blocks is the embedding output, after
/// `n_layers` blocks the last block's output (before the final norm).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Site(pub usize);

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => f.write_str("the embeddings"),
            n => write!(f, "the output of block {}", n - 1),
        }
    }
}

/// One architecture's forward pass, one block at a time.
pub(crate) trait Transformer: Send + Sync {
    /// Token ids (`[T]`, u32) at positions `start..start + T` → `[T, d_model]`.
    fn embed(&self, ids: &Tensor, start: usize) -> candle_core::Result<Tensor>;
    /// Block `layer` on `[T, d_model]` at positions `start..`, appending keys/values to `cache`.
    fn block(
        &self,
        layer: usize,
        x: &Tensor,
        start: usize,
        cache: &mut LayerCache,
    ) -> candle_core::Result<Tensor>;
    /// `[T, vocab]` next-token logits, or `None` for encoders without an LM head.
    fn logits(&self, x: &Tensor) -> candle_core::Result<Option<Tensor>>;
}

/// Keys and values of one block for the positions seen so far (`[1, n_kv, S, head_dim]`).
#[derive(Default)]
pub struct LayerCache {
    kv: Option<(Tensor, Tensor)>,
}

impl LayerCache {
    /// Appends this step's keys and values; returns all of them.
    pub(crate) fn append(&mut self, k: Tensor, v: Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let (k, v) = match self.kv.take() {
            None => (k, v),
            Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 2)?, Tensor::cat(&[&pv, &v], 2)?),
        };
        self.kv = Some((k.clone(), v.clone()));
        Ok((k, v))
    }
}

/// The KV cache of one sequence: generation feeds one new token at a time.
pub struct KvCache {
    layers: Vec<LayerCache>,
    len: usize,
    /// A pass that stopped before the last block filled only the first blocks' caches.
    partial: bool,
}

impl KvCache {
    /// Positions already in the cache.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A loaded model, ready to run.
pub struct Model {
    path: PathBuf,
    config: ModelConfig,
    net: Box<dyn Transformer>,
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model")
            .field("path", &self.path)
            .field("config", &self.config)
            .finish()
    }
}

/// The configuration of the model at `path` (GGUF header or `config.json`), without its weights.
pub fn read_config(path: &Path) -> Result<ModelConfig> {
    weights::read_config(path)
}

impl Model {
    /// Loads the model at `path`: a `.gguf` file (Llama) or a folder with `config.json` and
    /// `*.safetensors`.
    pub fn load(path: &Path) -> Result<Model> {
        let (config, mut w) = weights::read(path)?;
        let net: Box<dyn Transformer> = match config.architecture {
            ModelArchitecture::Llama => Box::new(llama::Llama::load(&config, &mut w)?),
            ModelArchitecture::Bert => Box::new(bert::Bert::load(&config, &mut w)?),
            ModelArchitecture::Gemma2 => Box::new(gemma2::Gemma2::load(&config, &mut w)?),
            ModelArchitecture::Gpt2 => Box::new(gpt2::Gpt2::load(&config, &mut w)?),
        };
        Ok(Model {
            path: path.to_path_buf(),
            config,
            net,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// An empty KV cache for one sequence.
    pub fn new_cache(&self) -> KvCache {
        KvCache {
            layers: (0..self.config.n_layers)
                .map(|_| LayerCache::default())
                .collect(),
            len: 0,
            partial: false,
        }
    }

    /// Checks token ids against the vocabulary and the context left in `cache`.
    fn check_ids(&self, ids: &[u32], cached: usize) -> Result<()> {
        if ids.is_empty() {
            return Err(Error::InvalidArgument(
                "empty text: there are no tokens to run the model on".to_string(),
            ));
        }
        if let Some(&bad) = ids
            .iter()
            .find(|&&id| id as usize >= self.config.vocab_size)
        {
            return Err(Error::InvalidArgument(format!(
                "token id {bad} is out of range for the model's vocabulary of {} tokens",
                self.config.vocab_size
            )));
        }
        let total = cached + ids.len();
        if total > self.config.max_positions {
            return Err(Error::InvalidArgument(format!(
                "the text is {total} tokens, longer than the model's context of {} tokens",
                self.config.max_positions
            )));
        }
        Ok(())
    }

    /// Runs `ids` (the positions after those in `cache`) through the model. At every site up to
    /// `until` (all sites and the logits when `None`), `hook(site, x)` sees the stream
    /// (`[T, d_model]`) and returns what the next block reads. Returns the logits (`[T, vocab]`)
    /// when they were computed.
    pub fn forward(
        &self,
        ids: &[u32],
        cache: &mut KvCache,
        until: Option<Site>,
        hook: &mut dyn FnMut(Site, Tensor) -> Result<Tensor>,
    ) -> Result<Option<Tensor>> {
        if cache.partial {
            return Err(Error::InvalidArgument(
                "this KV cache was filled by a pass that stopped early; start a new one"
                    .to_string(),
            ));
        }
        self.check_ids(ids, cache.len)?;
        if let Some(s) = until {
            self.check_site(s)?;
        }
        let last = until.map_or(self.config.n_layers, |s| s.0);
        let start = cache.len;
        let ids_t = Tensor::new(ids, &Device::Cpu).map_err(tensor_err)?;
        let mut x = self.net.embed(&ids_t, start).map_err(tensor_err)?;
        x = hook(Site(0), x)?;
        for layer in 0..last {
            x = self
                .net
                .block(layer, &x, start, &mut cache.layers[layer])
                .map_err(tensor_err)?;
            x = hook(Site(layer + 1), x)?;
        }
        if until.is_some() {
            cache.partial = true;
            return Ok(None);
        }
        cache.len += ids.len();
        self.net.logits(&x).map_err(tensor_err)
    }

    /// An error unless `site` is inside this model.
    pub fn check_site(&self, site: Site) -> Result<()> {
        if site.0 > self.config.n_layers {
            return Err(Error::InvalidArgument(format!(
                "site {} is past the model's last block ({} blocks)",
                site.0, self.config.n_layers
            )));
        }
        Ok(())
    }

    /// The residual stream of `ids` at each of `sites`: per site `T · d_model` values, row-major.
    /// Runs only as deep as the deepest site.
    pub fn residuals(&self, ids: &[u32], sites: &[Site]) -> Result<Vec<Vec<f32>>> {
        let deepest = sites.iter().copied().max().unwrap_or(Site(0));
        let mut out: Vec<Option<Vec<f32>>> = vec![None; sites.len()];
        let mut cache = self.new_cache();
        self.forward(ids, &mut cache, Some(deepest), &mut |site, x| {
            for (i, s) in sites.iter().enumerate() {
                if *s == site {
                    out[i] = Some(ops::to_vec_f32(&x).map_err(tensor_err)?);
                }
            }
            Ok(x)
        })?;
        Ok(out.into_iter().map(Option::unwrap_or_default).collect())
    }

    /// Next-token logits of every position of `ids` (`T · vocab`, row-major) with
    /// `interventions` applied at every position.
    pub fn logits(&self, ids: &[u32], interventions: &[Intervention]) -> Result<Vec<f32>> {
        let mut cache = self.new_cache();
        let logits = self.forward_with(ids, &mut cache, interventions)?;
        ops::to_vec_f32(&logits).map_err(tensor_err)
    }

    /// A full forward pass with interventions applied at their sites; the logits.
    pub(crate) fn forward_with(
        &self,
        ids: &[u32],
        cache: &mut KvCache,
        interventions: &[Intervention],
    ) -> Result<Tensor> {
        for iv in interventions {
            self.check_site(iv.site())?;
        }
        let logits = self.forward(ids, cache, None, &mut |site, mut x| {
            for iv in interventions.iter().filter(|iv| iv.site() == site) {
                x = iv.apply(&x)?;
            }
            Ok(x)
        })?;
        logits.ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{} has no language-model head ({} encodes text; it cannot predict or generate tokens)",
                self.path.display(),
                self.config.architecture
            ))
        })
    }
}

/// Where downloaded model wheels and files live, shared by tests, the demo and CI:
/// `$SAEDB_MODELS`, else `$XDG_CACHE_HOME/saedb/models`, else `~/.cache/saedb/models`.
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SAEDB_MODELS").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("saedb").join("models")
}
