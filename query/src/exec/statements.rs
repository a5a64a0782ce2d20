//! The statements: each turns its AST into engine calls and a [`ResultSet`].

use super::filter::{compile, FieldValue, FEATURE_FIELDS};
use super::{Exec, DEFAULT_CONTEXT, MAX_BREADTH, MAX_CONTEXT, MAX_LIMIT, R};
use crate::ast::*;
use crate::error::ErrorKind;
use crate::result::{ResultKind, ResultSet, Value};
use saedb_engine::graph::{ChainQuery, GraphInfo};
use saedb_engine::{Document, Error as EngineError, TokenActivation};
use std::collections::HashMap;

impl Exec<'_> {
    pub(super) fn run(&self, s: &Statement) -> R<ResultSet> {
        match s {
            Statement::ShowDictionaries => self.show_dictionaries(),
            Statement::DescribeDictionary { dict } => self.describe_dictionary(dict),
            Statement::ShowGraphs => self.show_graphs(),
            Statement::ShowLabels { limit } => self.show_labels(limit),
            Statement::ShowDoc { doc, positions } => self.show_doc(doc, *positions),
            Statement::Describe { feature } => self.describe(feature),
            Statement::DescribeBySource { feature } => self.describe_by_source(feature),
            Statement::DescribeGraph { graph } => {
                let info = self
                    .store
                    .graph_info(&graph.value)
                    .map_err(|e| self.engine(graph.span, e))?;
                Ok(graph_record(&info))
            }
            Statement::DropGraph { graph } => {
                let g = self
                    .store
                    .drop_graph(&graph.value)
                    .map_err(|e| self.engine(graph.span, e))?;
                Ok(ResultSet::message(format!(
                    "dropped graph {} ({} nodes, {} edges)",
                    g.name, g.nodes, g.edges
                )))
            }
            Statement::Top {
                k,
                feature,
                options,
            } => self.top(k, feature, options),
            Statement::Sample {
                k,
                feature,
                quantile,
                of,
                options,
            } => self.sample(k, feature, quantile, of, options),
            Statement::Neighbours {
                feature,
                in_dict,
                exact,
                breadth,
                limit,
                order,
            } => self.neighbours(feature, in_dict, *exact, breadth, limit, order),
            Statement::FeaturesAt {
                doc,
                pos,
                in_dict,
                filter,
                limit,
                order,
            } => self.features_at(doc, pos, in_dict, filter, limit, order),
            Statement::FeaturesOfText {
                top,
                text,
                in_dict,
                limit,
            } => self.features_of_text(*top, text, in_dict, limit),
            Statement::ActivationOnText { feature, text } => self.activation_on_text(feature, text),
            Statement::Generate {
                prompt,
                max_tokens,
                edits,
                temperature,
                seed,
            } => self.generate(prompt, max_tokens, edits, temperature, seed),
            Statement::TokenEffects { feature, limit } => self.token_effects(feature, limit),
            Statement::Label { feature, label } => self.label(feature, label),
            Statement::SearchLabels { text, limit } => self.search_labels(text, limit),
            Statement::Chains { .. } => self.chains(s),
            Statement::Influence { on, graph, limit } => self.influence(on, graph, limit),
            Statement::Attribute {
                doc,
                pos,
                token,
                graph,
            } => {
                let d = self.u32_arg(doc, "document")?;
                let p = self.u32_arg(pos, "position")?;
                if graph.value.is_empty() {
                    return Err(self.err(graph.span, ErrorKind::Invalid, "a graph needs a name"));
                }
                let info = self
                    .store
                    .attribute(d, p, &token.value, &graph.value)
                    .map_err(|e| {
                        let span = match &e {
                            EngineError::UnknownDocument { .. } => doc.span,
                            EngineError::PositionOutOfRange { .. } => pos.span,
                            EngineError::AlreadyExists { .. } => graph.span,
                            _ => self.head_span(),
                        };
                        self.engine(span, e)
                    })?;
                let mut rs = graph_record(&info);
                rs.note = Some(format!("stored graph {}", info.name));
                Ok(rs)
            }
            Statement::Use { .. } | Statement::Set { .. } => {
                unreachable!("USE and SET run in Session")
            }
        }
    }

    pub(super) fn show_dictionaries(&self) -> R<ResultSet> {
        Ok(crate::tables::dictionaries(&self.store.dictionaries()))
    }

    pub(super) fn describe_dictionary(&self, dict: &Spanned<String>) -> R<ResultSet> {
        let d = self.dictionary(dict)?;
        let mut rs = ResultSet::new(
            ResultKind::Dictionary,
            &[
                "name",
                "architecture",
                "d_in",
                "d_sae",
                "k",
                "apply_b_dec_to_input",
                "hook",
                "layer",
                "model",
                "source_format",
                "tokens_encoded",
                "nonzeros",
            ],
        );
        rs.title = Some(format!("DICTIONARY {}", d.name));
        rs.rows.push(vec![
            Value::str(&d.name),
            Value::str(d.architecture.to_string()),
            Value::Int(d.d_in.into()),
            Value::Int(d.d_sae.into()),
            d.k.map(|k| Value::Int(k.into())).unwrap_or(Value::Null),
            Value::Bool(d.apply_b_dec_to_input),
            Value::opt_str(d.hook),
            d.layer.map(|k| Value::Int(k.into())).unwrap_or(Value::Null),
            Value::opt_str(d.model),
            Value::str(d.source_format),
            Value::Int(d.tokens_encoded as i64),
            Value::Int(d.nonzeros as i64),
        ]);
        Ok(rs)
    }

    pub(super) fn show_graphs(&self) -> R<ResultSet> {
        let graphs = self
            .store
            .graphs()
            .map_err(|e| self.engine(self.head_span(), e))?;
        let mut rs = ResultSet::new(
            ResultKind::Graphs,
            &["name", "origin", "nodes", "edges", "prompt"],
        );
        for g in graphs {
            rs.rows.push(vec![
                Value::str(g.name),
                Value::str(g.origin),
                Value::Int(g.nodes as i64),
                Value::Int(g.edges as i64),
                Value::opt_str(g.prompt),
            ]);
        }
        Ok(rs)
    }

    pub(super) fn show_labels(&self, limit: &Option<Spanned<u64>>) -> R<ResultSet> {
        let n = self.limit(limit, MAX_LIMIT, "LIMIT")?;
        let labels = self
            .store
            .labels()
            .map_err(|e| self.engine(self.head_span(), e))?;
        let mut rs = ResultSet::new(ResultKind::Labels, &["dict", "feature", "label"]);
        for (f, l) in labels.into_iter().take(n) {
            rs.rows.push(vec![
                Value::str(f.dict),
                Value::Int(f.index.into()),
                Value::str(l),
            ]);
        }
        Ok(rs)
    }

    pub(super) fn document(&self, doc: &Spanned<u64>) -> R<Document> {
        let d = self.u32_arg(doc, "document")?;
        self.store.document(d).map_err(|e| self.engine(doc.span, e))
    }

    pub(super) fn show_doc(&self, doc: &Spanned<u64>, positions: bool) -> R<ResultSet> {
        let d = self.document(doc)?;
        Ok(if positions {
            crate::tables::document_positions(&d)
        } else {
            crate::tables::document_text(&d)
        })
    }

    pub(super) fn describe(&self, feature: &FeatureArg) -> R<ResultSet> {
        let f = self.feature(feature)?;
        let s = self
            .store
            .feature_stats(&f)
            .map_err(|e| self.engine(feature.span, e))?;
        let mut rs = ResultSet::new(
            ResultKind::Describe,
            &[
                "dict",
                "feature",
                "count",
                "frequency",
                "max",
                "mean",
                "label",
                "histogram",
            ],
        );
        rs.title = Some(format!("FEATURE {f}"));
        rs.rows.push(vec![
            Value::str(&f.dict),
            Value::Int(f.index.into()),
            Value::Int(s.count as i64),
            Value::Float(s.frequency),
            Value::from_f32(s.max),
            Value::Float(s.mean),
            Value::opt_str(s.label),
            Value::Histogram(s.histogram.iter().map(|b| (b.lo, b.hi, b.count)).collect()),
        ]);
        Ok(rs)
    }

    pub(super) fn describe_by_source(&self, feature: &FeatureArg) -> R<ResultSet> {
        let f = self.feature(feature)?;
        let sources = self
            .store
            .activations_by_source(&f)
            .map_err(|e| self.engine(feature.span, e))?;
        let mut rs = ResultSet::new(
            ResultKind::BySource,
            &["source", "count", "share", "documents", "max"],
        );
        rs.title = Some(format!("FEATURE {f} BY SOURCE"));
        for s in sources {
            rs.rows.push(vec![
                Value::Str(s.source),
                Value::Int(s.count as i64),
                Value::Float(s.share),
                Value::Int(s.documents as i64),
                Value::from_f32(s.max),
            ]);
        }
        Ok(rs)
    }

    pub(super) fn context_len(&self, options: &ActivationOptions) -> R<usize> {
        match &options.context {
            None => Ok(DEFAULT_CONTEXT as usize),
            Some(c) if c.value > MAX_CONTEXT => Err(self
                .err(
                    c.span,
                    ErrorKind::Invalid,
                    format!("CONTEXT {} is too large", c.value),
                )
                .with_hint(format!("the largest CONTEXT allowed is {MAX_CONTEXT}"))),
            Some(c) => Ok(c.value as usize),
        }
    }

    pub(super) fn activation_rows(
        &self,
        kind: ResultKind,
        acts: &[TokenActivation],
        context: usize,
    ) -> R<ResultSet> {
        let mut rs = ResultSet::new(kind, &["doc", "pos", "token", "value", "context"]);
        let mut docs: HashMap<u32, Option<Document>> = HashMap::new();
        for a in acts {
            let doc = docs
                .entry(a.doc)
                .or_insert_with(|| self.store.document(a.doc).ok());
            let (tokens, center) = match doc {
                Some(d) if (a.pos as usize) < d.tokens.len() => {
                    let p = a.pos as usize;
                    let lo = p.saturating_sub(context);
                    let hi = (p + context + 1).min(d.tokens.len());
                    (d.tokens[lo..hi].to_vec(), p - lo)
                }
                _ => (vec![a.token.clone()], 0),
            };
            rs.rows.push(vec![
                Value::Int(a.doc.into()),
                Value::Int(a.pos.into()),
                Value::str(&a.token),
                Value::from_f32(a.value),
                Value::Context { tokens, center },
            ]);
        }
        Ok(rs)
    }

    pub(super) fn top(
        &self,
        k: &Spanned<u64>,
        feature: &FeatureArg,
        options: &ActivationOptions,
    ) -> R<ResultSet> {
        let n = self.count(k, "TOP")?;
        let context = self.context_len(options)?;
        let f = self.feature(feature)?;
        let filter = self.activation_filter(options)?;
        let acts = self
            .store
            .top_activations_with(&f, n, filter.as_ref(), self.cancel)
            .map_err(|e| self.engine(feature.span, e))?;
        let mut rs = self.activation_rows(ResultKind::TopActivations, &acts, context)?;
        rs.title = Some(self.title_for(format!("TOP {n} ACTIVATIONS OF {f}"), &f));
        self.order(&mut rs, &options.order)?;
        Ok(rs)
    }

    pub(super) fn neighbours(
        &self,
        feature: &FeatureArg,
        in_dict: &Option<Spanned<String>>,
        exact: bool,
        breadth: &Option<Spanned<u64>>,
        limit: &Option<Spanned<u64>>,
        order: &[OrderKey],
    ) -> R<ResultSet> {
        let n = self.limit(limit, 10, "LIMIT")?;
        let breadth = match breadth {
            None => None,
            // The parser refuses this too; an AST built by hand must not have BREADTH ignored.
            Some(b) if exact => {
                return Err(self.err(
                    b.span,
                    ErrorKind::Invalid,
                    "BREADTH cannot be combined with EXACT: exact search scans every feature and has no breadth",
                ))
            }
            Some(b) if b.value == 0 => {
                return Err(self
                    .err(b.span, ErrorKind::Invalid, "BREADTH must be at least 1")
                    .with_hint(format!(
                        "the default breadth for LIMIT {n} is {}",
                        saedb_engine::default_search_breadth(n)
                    )))
            }
            Some(b) if b.value > MAX_BREADTH => {
                return Err(self
                    .err(
                        b.span,
                        ErrorKind::Invalid,
                        format!("BREADTH {} is too large", b.value),
                    )
                    .with_hint(format!(
                        "the largest BREADTH allowed is {MAX_BREADTH}; EXACT searches every feature"
                    )))
            }
            Some(b) => Some(b.value as usize),
        };
        let f = self.feature(feature)?;
        let target = match in_dict {
            Some(d) => Some(self.dictionary(d)?.name),
            None => None,
        };
        if let (Some(d), Some(t)) = (in_dict, &target) {
            let dec = |name: &str| self.store.dictionary(name).map(|i| i.d_in).unwrap_or(0);
            if dec(t) != dec(&f.dict) {
                return Err(self.err(
                    d.span,
                    ErrorKind::Invalid,
                    format!("dictionary '{t}' has d_in {}, '{}' has d_in {}: their directions cannot be compared", dec(t), f.dict, dec(&f.dict)),
                ));
            }
        }
        let res = match (exact, breadth) {
            (true, _) => self.store.neighbours_exact(&f, target.as_deref(), n),
            (false, Some(b)) => self
                .store
                .neighbours_with_breadth(&f, target.as_deref(), n, b),
            (false, None) => self.store.neighbours(&f, target.as_deref(), n),
        }
        .map_err(|e| self.engine(feature.span, e))?;
        let mut rs = ResultSet::new(
            ResultKind::Neighbours,
            &["dict", "feature", "cosine", "label"],
        );
        let head = format!(
            "NEIGHBOURS OF {f}{}{}",
            target
                .as_ref()
                .map(|t| format!(" IN {t}"))
                .unwrap_or_default(),
            match (exact, breadth) {
                (true, _) => " (exact)".to_string(),
                (false, Some(b)) => format!(" (breadth {b})"),
                (false, None) => String::new(),
            }
        );
        rs.title = Some(self.title_for(head, &f));
        if let Some(b) = breadth.filter(|&b| b < n) {
            // The engine searches with a breadth of at least the number of results.
            rs.note = Some(format!(
                "BREADTH {b} is below LIMIT {n}: the search breadth was raised to at least {n}"
            ));
        }
        for nb in res {
            let label = self.label_of(&nb.feature);
            rs.rows.push(vec![
                Value::str(&nb.feature.dict),
                Value::Int(nb.feature.index.into()),
                Value::from_f32(nb.cosine),
                label,
            ]);
        }
        self.order(&mut rs, order)?;
        Ok(rs)
    }

    pub(super) fn features_at(
        &self,
        doc: &Spanned<u64>,
        pos: &Spanned<u64>,
        in_dict: &Option<Spanned<String>>,
        filter: &Option<Expr>,
        limit: &Option<Spanned<u64>>,
        order: &[OrderKey],
    ) -> R<ResultSet> {
        let d = self.u32_arg(doc, "document")?;
        let p = self.u32_arg(pos, "position")?;
        let n = self.limit(limit, MAX_LIMIT, "LIMIT")?;
        let dict = match in_dict {
            Some(dn) => Some(self.dictionary(dn)?.name),
            None => None,
        };
        let filter = match filter {
            Some(e) => Some(compile(self, e, FEATURE_FIELDS)?),
            None => None,
        };
        let feats = self.store.features_at(d, p, dict.as_deref()).map_err(|e| {
            let span = match &e {
                EngineError::UnknownDocument { .. } => doc.span,
                EngineError::PositionOutOfRange { .. } => pos.span,
                _ => in_dict.as_ref().map(|x| x.span).unwrap_or(doc.span),
            };
            self.engine(span, e)
        })?;
        let mut rs = ResultSet::new(
            ResultKind::FeaturesAt,
            &["dict", "feature", "value", "label"],
        );
        let token = self
            .store
            .document(d)
            .ok()
            .and_then(|doc| doc.tokens.get(p as usize).cloned());
        rs.title = Some(format!(
            "FEATURES AT DOC {d} POS {p}{}{}",
            token.map(|t| format!(" ({t:?})")).unwrap_or_default(),
            dict.as_ref()
                .map(|t| format!(" IN {t}"))
                .unwrap_or_default()
        ));
        for a in feats {
            let label = self.label_of(&a.feature);
            let row = vec![
                Value::str(&a.feature.dict),
                Value::Int(a.feature.index.into()),
                Value::from_f32(a.value),
                label,
            ];
            if let Some(flt) = &filter {
                let get = |i: usize| -> FieldValue {
                    match i {
                        0 => FieldValue::Str(row[0].as_str().unwrap_or("")),
                        1 => FieldValue::Num(f64::from(a.feature.index)),
                        2 => FieldValue::Num(f64::from(a.value)),
                        _ => row[3]
                            .as_str()
                            .map(FieldValue::Str)
                            .unwrap_or(FieldValue::Null),
                    }
                };
                if !flt.eval(&get) {
                    continue;
                }
            }
            rs.rows.push(row);
        }
        self.order(&mut rs, order)?;
        rs.rows.truncate(n);
        Ok(rs)
    }

    pub(super) fn token_effects(
        &self,
        feature: &FeatureArg,
        limit: &Option<Spanned<u64>>,
    ) -> R<ResultSet> {
        let n = self.limit(limit, 10, "LIMIT")?;
        let f = self.feature(feature)?;
        let eff = self
            .store
            .token_effects(&f, n)
            .map_err(|e| self.engine(self.head_span(), e))?;
        let mut rs = ResultSet::new(ResultKind::TokenEffects, &["token", "effect"]);
        rs.title = Some(self.title_for(format!("TOKEN EFFECTS OF {f}"), &f));
        for t in eff.positive.iter().chain(eff.negative.iter()) {
            rs.rows
                .push(vec![Value::str(&t.token), Value::from_f32(t.effect)]);
        }
        Ok(rs)
    }

    pub(super) fn label(&self, feature: &FeatureArg, label: &Spanned<String>) -> R<ResultSet> {
        if label.value.trim().is_empty() {
            return Err(self.err(label.span, ErrorKind::Invalid, "a label cannot be empty"));
        }
        let f = self.feature(feature)?;
        self.store
            .set_label(&f, &label.value)
            .map_err(|e| self.engine(self.head_span(), e))?;
        let mut rs = ResultSet::new(ResultKind::Label, &["dict", "feature", "label"]);
        rs.rows.push(vec![
            Value::str(&f.dict),
            Value::Int(f.index.into()),
            Value::str(&label.value),
        ]);
        rs.note = Some(format!("labelled {f}"));
        Ok(rs)
    }

    pub(super) fn search_labels(
        &self,
        text: &Spanned<String>,
        limit: &Option<Spanned<u64>>,
    ) -> R<ResultSet> {
        let n = self.limit(limit, 20, "LIMIT")?;
        let found = self
            .store
            .search_labels(&text.value, n)
            .map_err(|e| self.engine(text.span, e))?;
        let mut rs = ResultSet::new(ResultKind::SearchLabels, &["dict", "feature", "label"]);
        for (f, l) in found {
            rs.rows.push(vec![
                Value::str(f.dict),
                Value::Int(f.index.into()),
                Value::str(l),
            ]);
        }
        Ok(rs)
    }

    pub(super) fn chains(&self, s: &Statement) -> R<ResultSet> {
        let Statement::Chains {
            to,
            graph,
            from,
            through,
            min_length,
            max_length,
            exclude_errors,
            limit,
        } = s
        else {
            unreachable!()
        };
        let n = self.limit(limit, 10, "LIMIT")?;
        let len = |l: &Option<Spanned<u64>>| -> R<Option<usize>> {
            match l {
                Some(v) if v.value > 1_000 => Err(self
                    .err(
                        v.span,
                        ErrorKind::Invalid,
                        format!("length {} is too large", v.value),
                    )
                    .with_hint("paths are at most 1000 edges long")),
                Some(v) => Ok(Some(v.value as usize)),
                None => Ok(None),
            }
        };
        let (min, max) = (len(min_length)?, len(max_length)?);
        if let (Some(a), Some(b), Some(ms)) = (min, max, max_length) {
            if a > b {
                return Err(self.err(
                    ms.span,
                    ErrorKind::Invalid,
                    format!("MAX LENGTH {b} is below MIN LENGTH {a}"),
                ));
            }
        }
        let q = ChainQuery {
            to: to.value.clone(),
            from: from.as_ref().map(|f| f.value.clone()),
            through: through.as_ref().map(|f| f.value.clone()),
            min_length: min,
            max_length: max,
            exclude_errors: *exclude_errors,
            limit: n,
        };
        let chains = self.store.chains(&graph.value, &q).map_err(|e| {
            let span = match &e {
                EngineError::UnknownGraph { .. } => graph.span,
                EngineError::UnknownNode { node, .. } => {
                    [Some(to), from.as_ref(), through.as_ref()]
                        .into_iter()
                        .flatten()
                        .find(|s| &s.value == node)
                        .map(|s| s.span)
                        .unwrap_or(to.span)
                }
                _ => self.head_span(),
            };
            self.engine(span, e)
        })?;
        let mut rs = ResultSet::new(
            ResultKind::Chains,
            &["rank", "score", "sign", "nodes", "labels"],
        );
        rs.title = Some(format!("CHAINS TO {:?} IN GRAPH {}", to.value, graph.value));
        for c in chains {
            rs.rows.push(vec![
                Value::Int(c.rank as i64),
                Value::Float(c.score),
                Value::Int(c.sign.into()),
                Value::List(c.nodes.into_iter().map(Value::Str).collect()),
                Value::List(c.labels.into_iter().map(Value::Str).collect()),
            ]);
        }
        Ok(rs)
    }

    pub(super) fn influence(
        &self,
        on: &Spanned<String>,
        graph: &Spanned<String>,
        limit: &Option<Spanned<u64>>,
    ) -> R<ResultSet> {
        let n = self.limit(limit, 20, "LIMIT")?;
        let res = self
            .store
            .influence(&graph.value, &on.value, n)
            .map_err(|e| {
                let span = match &e {
                    EngineError::UnknownGraph { .. } => graph.span,
                    EngineError::UnknownNode { .. } => on.span,
                    _ => self.head_span(),
                };
                self.engine(span, e)
            })?;
        let mut rs = ResultSet::new(
            ResultKind::Influence,
            &["node", "label", "kind", "influence"],
        );
        rs.title = Some(format!(
            "INFLUENCE ON {:?} IN GRAPH {}",
            on.value, graph.value
        ));
        for r in res {
            rs.rows.push(vec![
                Value::str(r.node),
                Value::str(r.label),
                Value::str(r.kind.name()),
                Value::Float(r.influence),
            ]);
        }
        Ok(rs)
    }
}

fn graph_record(g: &GraphInfo) -> ResultSet {
    let mut rs = ResultSet::new(
        ResultKind::Graph,
        &[
            "name",
            "origin",
            "prompt",
            "nodes",
            "edges",
            "nodes_by_kind",
            "edges_by_kind",
            "logits",
        ],
    );
    rs.title = Some(format!("GRAPH {}", g.name));
    let by_kind = g
        .nodes_by_kind
        .iter()
        .map(|(k, n)| format!("{} {n}", k.name()))
        .collect::<Vec<_>>()
        .join(", ");
    let edges = g
        .edges_by_kind
        .iter()
        .map(|(a, b, n)| format!("{}→{} {n}", a.name(), b.name()))
        .collect::<Vec<_>>()
        .join(", ");
    let logits = g
        .logits
        .iter()
        .map(|l| {
            let mut s = l.node.clone();
            if let Some(t) = &l.token {
                s.push_str(&format!(" {t:?}"));
            }
            if let Some(p) = l.probability {
                s.push_str(&format!(" p={p:.4}"));
            }
            if l.is_target {
                s.push_str(" (target)");
            }
            Value::Str(s)
        })
        .collect();
    rs.rows.push(vec![
        Value::str(&g.name),
        Value::str(&g.origin),
        Value::opt_str(g.prompt.clone()),
        Value::Int(g.nodes as i64),
        Value::Int(g.edges as i64),
        Value::Str(by_kind),
        Value::Str(edges),
        Value::List(logits),
    ]);
    rs
}
