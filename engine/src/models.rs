//! Models registered in a store: registration (path, content hash and parsed configuration in
//! the catalog; the weights stay where they are), loading them back after checking that their
//! files are those registered, and which dictionary runs on which model (and why not).
//! Running text through them is `live.rs`.

use crate::encode::Encoder;
use crate::formats::sae::Sae;
use crate::model::{
    find_tokenizer, hooks, model_files, read_config, LiveDictionary, Model, ModelInfo, Site,
    TextTokenizer,
};
use crate::progress::check_cancelled;
use crate::store::{poisoned, Store};
use crate::types::{DictionaryInfo, IngestReport};
use crate::util::{hash_files, validate_name};
use crate::{Error, Progress, Result};
use rocksdb::WriteBatch;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A registered model loaded for use: its weights, its tokenizer and its registration.
pub struct LiveModel {
    pub info: ModelInfo,
    pub model: Model,
    pub tokenizer: TextTokenizer,
}

impl std::fmt::Debug for LiveModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveModel")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// The models one store handle has loaded, by name (loading SmolLM2 takes a second or two;
/// statements reuse it). Kept in the store's derived data under id 0.
#[derive(Default)]
struct LoadedModels(Mutex<HashMap<String, Arc<LiveModel>>>);

/// A dictionary's SAE and its encoder, read from the store once (live encoding, clamps). Kept in
/// the store's derived data under the dictionary's id.
pub(crate) struct LiveEncoder {
    pub(crate) sae: Sae,
    pub(crate) encoder: Arc<Encoder>,
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(path).map_err(|e| Error::io(path, e))
}

/// The content hash of the files of the model at `path` that the runtime reads.
fn hash_model(path: &Path) -> Result<String> {
    let files = model_files(path)?;
    hash_files(path, &files)
}

/// How one of a model's files is hashed.
type FileHash = fn(&Path) -> Result<String>;

fn hash_tokenizer(path: &Path) -> Result<String> {
    hash_files(path, &[path.to_path_buf()])
}

impl Store {
    /// Registers the model at `path` (a `.gguf` file or a HF safetensors folder) as `name`, with
    /// `tokenizer` (else the `tokenizer.json` in its folder or beside its file). The model is
    /// loaded once to check it, its files hashed, its configuration stored; the weights are not
    /// copied. Registering a name again replaces its entry (after the files moved or changed).
    pub fn ingest_model(
        &self,
        name: &str,
        path: &Path,
        tokenizer: Option<&Path>,
        progress: &dyn Progress,
    ) -> Result<IngestReport> {
        self.ensure_writable()?;
        validate_name("model", name)?;
        let started = Instant::now();
        let path = absolute(path)?;
        let config = read_config(&path)?;
        let tokenizer = absolute(&find_tokenizer(&path, tokenizer)?)?;
        let text = TextTokenizer::from_file(&tokenizer)?;
        if text.vocab_size() > config.vocab_size {
            return Err(Error::bad_input(
                &tokenizer,
                format!(
                    "this tokenizer has {} tokens but the model's vocabulary has {}: it is not this model's tokenizer",
                    text.vocab_size(),
                    config.vocab_size
                ),
            ));
        }
        progress.start("hashing the model's files", 0);
        let (content_hash, tokenizer_hash) =
            rayon::join(|| hash_model(&path), || hash_tokenizer(&tokenizer));
        progress.finish();
        let info = ModelInfo {
            name: name.to_string(),
            path: path.display().to_string(),
            content_hash: content_hash?,
            tokenizer: tokenizer.display().to_string(),
            tokenizer_hash: tokenizer_hash?,
            config,
        };
        check_cancelled(progress)?;
        progress.start("loading the model to check its weights", 0);
        let model = Model::load(&path)?;
        progress.finish();
        check_cancelled(progress)?;
        let _writer = self.writer.lock().map_err(|_| poisoned())?;
        let mut catalog = self.catalog().clone();
        catalog.models.retain(|m| m.name != name);
        catalog.models.push(info.clone());
        self.commit_with_catalog(WriteBatch::default(), catalog)?;
        let live = Arc::new(LiveModel {
            info,
            model,
            tokenizer: text,
        });
        self.loaded_models()?
            .0
            .lock()
            .map_err(|_| poisoned())?
            .insert(name.to_string(), live);
        Ok(IngestReport {
            kind: "model".to_string(),
            path: path.display().to_string(),
            items: 1,
            unit: "model".to_string(),
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Registered models, in registration order.
    pub fn models(&self) -> Vec<ModelInfo> {
        self.catalog().models.clone()
    }

    fn loaded_models(&self) -> Result<Arc<LoadedModels>> {
        self.derived.get_or_insert(0, LoadedModels::default)
    }

    /// The registered model `name`, loaded (once per store handle) after checking that its
    /// files are still those registered: a moved or changed file is an error that says how to
    /// register the model again.
    pub fn live_model(&self, name: &str) -> Result<Arc<LiveModel>> {
        let loaded = self.loaded_models()?;
        // Held while loading, so that two statements at once load a model once.
        let mut loaded = loaded.0.lock().map_err(|_| poisoned())?;
        if let Some(m) = loaded.get(name) {
            return Ok(m.clone());
        }
        let info = self.model_info(name)?;
        self.check_model_files(&info)?;
        let model = Model::load(Path::new(&info.path))?;
        let tokenizer = TextTokenizer::from_file(Path::new(&info.tokenizer))?;
        let live = Arc::new(LiveModel {
            info,
            model,
            tokenizer,
        });
        loaded.insert(name.to_string(), live.clone());
        Ok(live)
    }

    fn model_info(&self, name: &str) -> Result<ModelInfo> {
        let c = self.catalog();
        c.models
            .iter()
            .find(|m| m.name == name)
            .cloned()
            .ok_or_else(|| {
                let known: Vec<&str> = c.models.iter().map(|m| m.name.as_str()).collect();
                Error::Missing(format!(
                    "no model '{name}' in this store ({}); register one with: saedb ingest model {} --name {name} PATH",
                    if known.is_empty() {
                        "it holds none".to_string()
                    } else {
                        format!("it holds {}", known.join(", "))
                    },
                    self.path().display()
                ))
            })
    }

    /// An error unless the model's and its tokenizer's files are those registered.
    fn check_model_files(&self, info: &ModelInfo) -> Result<()> {
        let again = format!(
            "register it again with: saedb ingest model {} --name {} PATH [--tokenizer FILE]",
            self.path().display(),
            info.name
        );
        let checks: [(&str, &str, FileHash); 2] = [
            (&info.path, &info.content_hash, hash_model),
            (&info.tokenizer, &info.tokenizer_hash, hash_tokenizer),
        ];
        for (file, registered, hash) in checks {
            let p = Path::new(file);
            if !p.exists() {
                return Err(Error::bad_input(
                    p,
                    format!(
                        "model '{}' was registered from this path, which no longer exists; {again}",
                        info.name
                    ),
                ));
            }
            let now = hash(p).map_err(|e| {
                Error::bad_input(
                    p,
                    format!(
                        "model '{}' cannot be read as registered ({e}); {again}",
                        info.name
                    ),
                )
            })?;
            if now != registered {
                return Err(Error::bad_input(
                    p,
                    format!(
                        "changed since model '{}' was registered (its content hash differs); {again}",
                        info.name
                    ),
                ));
            }
        }
        Ok(())
    }

    /// For every dictionary: the model it can run on live, or why it cannot. Reads the catalog
    /// only (no model file is opened).
    pub fn live_dictionaries(&self) -> Vec<LiveDictionary> {
        self.dictionaries()
            .into_iter()
            .map(|d| match self.model_for(&d) {
                Ok((m, site)) => LiveDictionary {
                    dictionary: d.name,
                    hook: d.hook,
                    model: Some(m.name),
                    site: Some(site.0),
                    reason: None,
                },
                Err(e) => LiveDictionary {
                    dictionary: d.name,
                    hook: d.hook,
                    model: None,
                    site: None,
                    reason: Some(e.to_string()),
                },
            })
            .collect()
    }

    /// The registered model dictionary `d` runs on, and the site its hook reads. A model fits
    /// when its width is the dictionary's `d_in` and it has the hook; of several, the one
    /// registered under the name the SAE gives as its model, else the first registered.
    pub(crate) fn model_for(&self, d: &DictionaryInfo) -> Result<(ModelInfo, Site)> {
        let models = self.models();
        if models.is_empty() {
            return Err(Error::Missing(format!(
                "dictionary '{}' has no model to run on: the store holds no model (register one with: saedb ingest model {} --name NAME PATH)",
                d.name,
                self.path().display()
            )));
        }
        let Some(hook) = d.hook.as_deref() else {
            return Err(Error::Missing(format!(
                "dictionary '{}' names no hook point, so saedb cannot tell where in a model it reads",
                d.name
            )));
        };
        let mut fits = Vec::new();
        let mut why = Vec::new();
        for m in models {
            if m.config.d_model != d.d_in as usize {
                why.push(format!(
                    "model '{}' is {} wide but the dictionary's d_in is {}",
                    m.name, m.config.d_model, d.d_in
                ));
                continue;
            }
            match hooks::resolve(hook, &m.config) {
                Ok(site) => fits.push((m, site)),
                Err(e) => why.push(format!("model '{}': {e}", m.name)),
            }
        }
        if fits.is_empty() {
            return Err(Error::Mismatch(format!(
                "dictionary '{}' cannot run on any registered model: {}",
                d.name,
                why.join("; ")
            )));
        }
        let named = fits
            .iter()
            .position(|(m, _)| Some(&m.name) == d.model.as_ref())
            .unwrap_or(0);
        Ok(fits.swap_remove(named))
    }

    /// The SAE and encoder of dictionary `d`, read from the store once per handle.
    pub(crate) fn live_encoder(&self, d: &DictionaryInfo) -> Result<Arc<LiveEncoder>> {
        if let Some(e) = self.derived.get::<LiveEncoder>(d.id)? {
            return Ok(e);
        }
        let sae = self.load_sae(d)?;
        let encoder = Arc::new(Encoder::new(&sae)?);
        let e = Arc::new(LiveEncoder { sae, encoder });
        self.derived.insert(d.id, e.clone())?;
        Ok(e)
    }
}
