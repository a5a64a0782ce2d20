//! The statements that run text through a dictionary's model: FEATURES OF TEXT, TOP FEATURES OF
//! TEXT, ACTIVATION OF … ON TEXT and GENERATE with its CLAMP / STEER edits.

use super::{Builder, Seen, R};
use crate::ast::*;
use crate::parser::Rule;
use pest::iterators::Pair;

impl Builder<'_> {
    pub(super) fn features_of_text(&self, p: Pair<Rule>, top: bool) -> R<Statement> {
        let mut text = None;
        let mut in_dict = None;
        let mut limit = None;
        let mut seen = Seen::default();
        for c in p.into_inner() {
            let span = self.span(&c);
            match c.as_rule() {
                Rule::string => text = Some(self.string(c)?),
                Rule::in_dict => {
                    seen.once(self, "IN", span)?;
                    in_dict = Some(self.dict_name(c));
                }
                Rule::limit_clause => {
                    seen.once(self, "LIMIT", span)?;
                    limit = Some(self.clause_int(c)?);
                }
                _ => {}
            }
        }
        Ok(Statement::FeaturesOfText {
            top,
            text: text.expect("text"),
            in_dict,
            limit,
        })
    }

    pub(super) fn activation_on_text(&self, p: Pair<Rule>) -> R<Statement> {
        let mut feature = None;
        let mut text = None;
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::feature => feature = Some(self.feature(c)?),
                Rule::string => text = Some(self.string(c)?),
                _ => {}
            }
        }
        Ok(Statement::ActivationOnText {
            feature: feature.expect("feature"),
            text: text.expect("text"),
        })
    }

    pub(super) fn generate(&self, p: Pair<Rule>) -> R<Statement> {
        let mut prompt = None;
        let mut max_tokens = None;
        let mut edits = Vec::new();
        let mut temperature = None;
        let mut seed = None;
        let mut seen = Seen::default();
        for c in p.into_inner() {
            let span = self.span(&c);
            match c.as_rule() {
                Rule::string => prompt = Some(self.string(c)?),
                Rule::max_tokens => {
                    seen.once(self, "MAX TOKENS", span)?;
                    max_tokens = Some(self.clause_int(c)?);
                }
                Rule::temperature_clause => {
                    seen.once(self, "TEMPERATURE", span)?;
                    temperature = Some(self.clause_number(c)?);
                }
                Rule::seed_clause => {
                    seen.once(self, "SEED", span)?;
                    seed = Some(self.clause_int(c)?);
                }
                Rule::clamp_clause | Rule::steer_clause => edits.push(self.edit(c)?),
                _ => {}
            }
        }
        Ok(Statement::Generate {
            prompt: prompt.expect("prompt"),
            max_tokens,
            edits,
            temperature,
            seed,
        })
    }

    /// `CLAMP f TO v [TIMES MAX]` or `STEER f BY a`.
    fn edit(&self, c: Pair<Rule>) -> R<Edit> {
        let steer = c.as_rule() == Rule::steer_clause;
        let mut feature = None;
        let mut value = None;
        let mut times_max = false;
        for e in c.into_inner() {
            match e.as_rule() {
                Rule::feature => feature = Some(self.feature(e)?),
                Rule::number => value = Some(self.number(e)?),
                Rule::times_max => times_max = true,
                _ => {}
            }
        }
        Ok(Edit {
            feature: feature.expect("feature"),
            kind: if steer {
                EditKind::Steer
            } else {
                EditKind::Clamp { times_max }
            },
            value: value.expect("value"),
        })
    }

    /// A number token as a finite `f64`.
    fn number(&self, p: Pair<Rule>) -> R<Spanned<f64>> {
        let span = self.span(&p);
        let v: f64 = p
            .as_str()
            .parse()
            .map_err(|_| self.err(span, "not a number"))?;
        if !v.is_finite() {
            return Err(self.err(span, "number out of range"));
        }
        Ok(Spanned::new(v, span))
    }

    /// The number inside a clause such as `TEMPERATURE 0.7`.
    fn clause_number(&self, p: Pair<Rule>) -> R<Spanned<f64>> {
        let n = p
            .into_inner()
            .find(|c| c.as_rule() == Rule::number)
            .expect("number");
        self.number(n)
    }
}
