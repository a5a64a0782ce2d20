//! Statements that run text through a dictionary's model (the engine's live runtime):
//! FEATURES OF TEXT, TOP FEATURES OF TEXT, ACTIVATION OF … ON TEXT, GENERATE.

use super::{Exec, R};
use crate::ast::*;
use crate::error::ErrorKind;
use crate::result::{ResultKind, ResultSet, Value};
use saedb_engine::model::GenerateOptions;
use saedb_engine::{FeatureRef, Steering, TextToken};
use std::collections::BTreeMap;

/// New tokens GENERATE makes when MAX TOKENS is not given.
pub const DEFAULT_NEW_TOKENS: u64 = 24;
/// The most new tokens one GENERATE may ask for.
pub const MAX_NEW_TOKENS: u64 = 1_024;
/// Features per token (FEATURES OF TEXT) or in all (TOP FEATURES OF TEXT) without LIMIT.
pub const DEFAULT_TEXT_FEATURES: u64 = 10;

impl Exec<'_> {
    /// The dictionary a text statement runs: `IN dict`, else the one chosen by USE.
    fn text_dictionary(&self, in_dict: &Option<Spanned<String>>) -> R<String> {
        match in_dict {
            Some(d) => Ok(self.dictionary(d)?.name),
            None => match self.current {
                Some(d) => Ok(d.to_string()),
                None => Err(self
                    .err(
                        self.head_span(),
                        ErrorKind::Invalid,
                        "which dictionary should read the text?",
                    )
                    .with_hint("add IN DICT (e.g. IN L9), or choose a dictionary first with USE")),
            },
        }
    }

    /// The text's tokens with the dictionary's code at each.
    fn text_tokens(&self, dict: &str, text: &Spanned<String>) -> R<Vec<TextToken>> {
        self.store
            .text_features(dict, &text.value)
            .map_err(|e| self.engine(text.span, e))
    }

    pub(super) fn features_of_text(
        &self,
        top: bool,
        text: &Spanned<String>,
        in_dict: &Option<Spanned<String>>,
        limit: &Option<Spanned<u64>>,
    ) -> R<ResultSet> {
        let dict = self.text_dictionary(in_dict)?;
        let k = self.limit(limit, DEFAULT_TEXT_FEATURES, "LIMIT")?;
        let tokens = self.text_tokens(&dict, text)?;
        if top {
            return Ok(self.top_features_of_text(&dict, &tokens, k));
        }
        let mut rs = ResultSet::new(
            ResultKind::TextFeatures,
            &["pos", "token", "token_id", "feature", "value", "label"],
        );
        rs.title = Some(format!(
            "FEATURES OF TEXT IN {dict} ({} tokens)",
            tokens.len()
        ));
        for t in &tokens {
            for &(f, v) in t.features.iter().take(k) {
                let feature = FeatureRef::new(&dict, f);
                rs.rows.push(vec![
                    Value::Int(t.pos.into()),
                    Value::str(&t.token),
                    Value::Int(t.token_id.into()),
                    Value::str(feature.to_string()),
                    Value::from_f32(v),
                    self.label_of(&feature),
                ]);
            }
        }
        Ok(rs)
    }

    /// Features ranked by their maximum over the text (ties: lower index), with where it was.
    fn top_features_of_text(&self, dict: &str, tokens: &[TextToken], k: usize) -> ResultSet {
        let mut best: BTreeMap<u32, (f32, usize)> = BTreeMap::new();
        for (i, t) in tokens.iter().enumerate() {
            for &(f, v) in &t.features {
                let e = best.entry(f).or_insert((v, i));
                if v > e.0 {
                    *e = (v, i);
                }
            }
        }
        let mut ranked: Vec<(u32, f32, usize)> =
            best.into_iter().map(|(f, (v, i))| (f, v, i)).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut rs = ResultSet::new(
            ResultKind::TopTextFeatures,
            &["feature", "max", "pos", "token", "label"],
        );
        rs.title = Some(format!(
            "TOP FEATURES OF TEXT IN {dict} ({} tokens)",
            tokens.len()
        ));
        for (f, v, i) in ranked.into_iter().take(k) {
            let feature = FeatureRef::new(dict, f);
            rs.rows.push(vec![
                Value::str(feature.to_string()),
                Value::from_f32(v),
                Value::Int(tokens[i].pos.into()),
                Value::str(&tokens[i].token),
                self.label_of(&feature),
            ]);
        }
        rs
    }

    pub(super) fn activation_on_text(
        &self,
        feature: &FeatureArg,
        text: &Spanned<String>,
    ) -> R<ResultSet> {
        let f = self.feature(feature)?;
        let tokens = self.text_tokens(&f.dict, text)?;
        let max = self
            .store
            .feature_stats(&f)
            .map(|s| s.max)
            .map_err(|e| self.engine(feature.span, e))?;
        let mut rs = ResultSet::new(
            ResultKind::TextActivation,
            &["pos", "token", "value", "fraction_of_max"],
        );
        rs.title = Some(self.title_for(format!("ACTIVATION OF {f} ON TEXT"), &f));
        for t in &tokens {
            let v = t
                .features
                .iter()
                .find(|c| c.0 == f.index)
                .map_or(0.0, |c| c.1);
            rs.rows.push(vec![
                Value::Int(t.pos.into()),
                Value::str(&t.token),
                Value::from_f32(v),
                if max > 0.0 {
                    Value::Float(f64::from(v) / f64::from(max))
                } else {
                    Value::Null
                },
            ]);
        }
        if max <= 0.0 {
            rs.note = Some(format!(
                "the store holds no activations of {f}: fraction_of_max is empty"
            ));
        }
        Ok(rs)
    }

    pub(super) fn generate(
        &self,
        prompt: &Spanned<String>,
        max_tokens: &Option<Spanned<u64>>,
        edits: &[Edit],
        temperature: &Option<Spanned<f64>>,
        seed: &Option<Spanned<u64>>,
    ) -> R<ResultSet> {
        let n = match max_tokens {
            None => DEFAULT_NEW_TOKENS,
            Some(m) if m.value == 0 || m.value > MAX_NEW_TOKENS => {
                return Err(self
                    .err(
                        m.span,
                        ErrorKind::Invalid,
                        format!("MAX TOKENS {} is out of range", m.value),
                    )
                    .with_hint(format!("ask for 1 to {MAX_NEW_TOKENS} new tokens")))
            }
            Some(m) => m.value,
        };
        let temperature =
            match temperature {
                None => 0.0,
                Some(t) if t.value < 0.0 => return Err(self
                    .err(
                        t.span,
                        ErrorKind::Invalid,
                        format!("TEMPERATURE {} is negative", t.value),
                    )
                    .with_hint(
                        "0 is greedy decoding; above 0 samples (1 is the model's own distribution)",
                    )),
                Some(t) => t.value as f32,
            };
        let mut steering = Vec::with_capacity(edits.len());
        for e in edits {
            let feature = self.feature(&e.feature)?;
            let value = e.value.value as f32;
            steering.push(match e.kind {
                EditKind::Clamp { times_max } => Steering::Clamp {
                    feature,
                    value,
                    times_max,
                },
                EditKind::Steer => Steering::Steer {
                    feature,
                    alpha: value,
                },
            });
        }
        let opts = GenerateOptions {
            max_new_tokens: n as usize,
            temperature,
            seed: seed.as_ref().map_or(0, |s| s.value),
            stop_at_eos: true,
        };
        let span = edits.first().map_or(prompt.span, |e| e.feature.span);
        let runs = self
            .store
            .generate_with(&prompt.value, &steering, &opts, self.cancel)
            .map_err(|e| self.engine(span, e))?;
        let mut rs = ResultSet::new(
            ResultKind::Generation,
            &["run", "text", "token_ids", "logprobs"],
        );
        rs.title = Some(format!("GENERATE {:?}", prompt.value));
        for r in runs {
            rs.rows.push(vec![
                Value::str(&r.run),
                Value::str(&r.text),
                Value::List(r.token_ids.iter().map(|&t| Value::Int(t.into())).collect()),
                Value::List(r.logprobs.iter().map(|&p| Value::from_f32(p)).collect()),
            ]);
        }
        Ok(rs)
    }
}
