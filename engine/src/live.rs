//! Text through a registered model: a dictionary's features at every token of a text
//! (Neuronpedia's "test your own text"), and generation with features clamped or steered.
//! Which model a dictionary runs on is `models.rs`; the runtime is `model/`.

use crate::model::{GenerateOptions, Generated, Intervention};
use crate::models::LiveModel;
use crate::store::Store;
use crate::types::FeatureRef;
use crate::{Error, NoProgress, Progress, Result};
use serde::{Deserialize, Serialize};

/// One token of a text with a dictionary's code at it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextToken {
    pub pos: u32,
    /// The token decoded on its own.
    pub token: String,
    pub token_id: u32,
    /// A special token (BOS, `[CLS]` …) the tokenizer added or the text spelled.
    pub special: bool,
    /// Nonzero features, strongest first (ties: lower index first).
    pub features: Vec<(u32, f32)>,
}

/// An edit of the residual stream by one feature, at every position while generating.
#[derive(Debug, Clone, PartialEq)]
pub enum Steering {
    /// `x → x + (v − f_i(x))·W_dec[i]` (the SAE's error term kept); with `times_max`,
    /// `v = value ×` the feature's largest activation stored in the store.
    Clamp {
        feature: FeatureRef,
        value: f32,
        times_max: bool,
    },
    /// `x → x + alpha·W_dec[i]`.
    Steer { feature: FeatureRef, alpha: f32 },
}

impl Steering {
    pub fn feature(&self) -> &FeatureRef {
        match self {
            Steering::Clamp { feature, .. } | Steering::Steer { feature, .. } => feature,
        }
    }
}

/// One continuation, decoded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationRun {
    /// `default` or `intervened`.
    pub run: String,
    /// The new text only.
    pub text: String,
    /// The new tokens only.
    pub token_ids: Vec<u32>,
    /// Natural-log probability of each new token under the model that chose it.
    pub logprobs: Vec<f32>,
}

impl Store {
    /// Runs `text` through the model dictionary `dict` runs on (`live_dictionaries`) and encodes
    /// every token with the dictionary.
    pub fn text_features(&self, dict: &str, text: &str) -> Result<Vec<TextToken>> {
        let d = self.dictionary(dict)?;
        if text.is_empty() {
            return Err(Error::InvalidArgument(
                "empty text: there are no tokens to encode".to_string(),
            ));
        }
        let (m, site) = self.model_for(&d)?;
        let live = self.live_model(&m.name)?;
        let enc = live.tokenizer.encode(text)?;
        let x = live.model.residuals(&enc.ids, &[site])?.remove(0);
        let codes = self.live_encoder(&d)?.encoder.encode(&x, enc.ids.len())?;
        enc.ids
            .iter()
            .zip(&enc.special)
            .zip(codes)
            .enumerate()
            .map(|(pos, ((&id, &special), mut features))| {
                features.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                Ok(TextToken {
                    pos: pos as u32,
                    token: live.tokenizer.token_text(id)?,
                    token_id: id,
                    special,
                    features,
                })
            })
            .collect()
    }

    /// Continues `prompt` without the edits, then (when `steering` is not empty) with them: the
    /// default run first. Every edited dictionary must run on the same model; with no edits, the
    /// store's causal model runs (the first registered one that can generate).
    pub fn generate(
        &self,
        prompt: &str,
        steering: &[Steering],
        opts: &GenerateOptions,
    ) -> Result<Vec<GenerationRun>> {
        self.generate_with(prompt, steering, opts, &NoProgress)
    }

    /// [`Store::generate`], stopping with [`Error::Cancelled`] between two new tokens once
    /// `progress` asks to be cancelled.
    pub fn generate_with(
        &self,
        prompt: &str,
        steering: &[Steering],
        opts: &GenerateOptions,
        progress: &dyn Progress,
    ) -> Result<Vec<GenerationRun>> {
        if prompt.is_empty() {
            return Err(Error::InvalidArgument(
                "empty prompt: there is nothing to continue".to_string(),
            ));
        }
        let (model_name, interventions) = self.interventions(steering)?;
        let live = self.live_model(&model_name)?;
        if !live.info.config.architecture.is_causal() {
            return Err(Error::InvalidArgument(format!(
                "model '{}' is a {} encoder: it cannot generate text",
                live.info.name, live.info.config.architecture
            )));
        }
        let ids = live.tokenizer.encode(prompt)?.ids;
        let stop = || progress.is_cancelled();
        let mut runs = vec![decoded(
            &live,
            "default",
            live.model.generate_until(&ids, &[], opts, &stop)?,
        )?];
        if !interventions.is_empty() {
            let g = live
                .model
                .generate_until(&ids, &interventions, opts, &stop)?;
            runs.push(decoded(&live, "intervened", g)?);
        }
        Ok(runs)
    }

    /// The model the edits run on and the interventions they are.
    fn interventions(&self, steering: &[Steering]) -> Result<(String, Vec<Intervention>)> {
        let mut model: Option<String> = None;
        let mut out = Vec::new();
        for s in steering {
            let f = s.feature();
            let d = self.dictionary(&f.dict)?;
            if f.index >= d.d_sae {
                return Err(Error::FeatureOutOfRange {
                    dict: d.name.clone(),
                    index: u64::from(f.index),
                    d_sae: d.d_sae,
                });
            }
            let (m, site) = self.model_for(&d)?;
            match &model {
                Some(name) if *name != m.name => {
                    return Err(Error::Mismatch(format!(
                        "{f} runs on model '{}' but another edit runs on '{name}': one generation runs one model",
                        m.name
                    )))
                }
                _ => model = Some(m.name.clone()),
            }
            let live = self.live_encoder(&d)?;
            out.push(match s {
                Steering::Clamp {
                    value, times_max, ..
                } => {
                    let v = if *times_max {
                        value * self.stored_max(f)?
                    } else {
                        *value
                    };
                    Intervention::clamp(&live.sae, live.encoder.clone(), site, f.index, v)?
                }
                Steering::Steer { alpha, .. } => {
                    Intervention::steer(&live.sae, site, f.index, *alpha)?
                }
            });
        }
        let model = match model {
            Some(m) => m,
            None => self.causal_model()?,
        };
        Ok((model, out))
    }

    /// The largest activation of `f` stored in the store: the unit of `TIMES MAX`.
    fn stored_max(&self, f: &FeatureRef) -> Result<f32> {
        let max = self.feature_stats(f)?.max;
        if max > 0.0 {
            Ok(max)
        } else {
            Err(Error::Missing(format!(
                "TIMES MAX needs the stored maximum of {f}, but the store holds no activations of it (give the value itself, or ingest activations first)"
            )))
        }
    }

    /// The model a GENERATE without edits runs: the first registered that can generate.
    fn causal_model(&self) -> Result<String> {
        let models = self.models();
        if models.is_empty() {
            return Err(Error::Missing(format!(
                "the store holds no model to generate with (register one with: saedb ingest model {} --name NAME PATH)",
                self.path().display()
            )));
        }
        Ok(models
            .iter()
            .find(|m| m.config.architecture.is_causal())
            .unwrap_or(&models[0])
            .name
            .clone())
    }
}

fn decoded(live: &LiveModel, run: &str, g: Generated) -> Result<GenerationRun> {
    Ok(GenerationRun {
        run: run.to_string(),
        text: live.tokenizer.decode(&g.token_ids)?,
        token_ids: g.token_ids,
        logprobs: g.logprobs,
    })
}
