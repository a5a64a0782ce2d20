//! Planning and execution of statements over a [`saedb_engine::Store`].
//!
//! A [`Session`] holds the store, the dictionary chosen by `USE`, and runs statements one by one.
//! Planning checks everything that can be checked before touching data (names, ranges, limits,
//! WHERE field types) and reports it at the offending text; execution calls the engine and turns
//! its answer into a typed [`ResultSet`].

use crate::ast::*;
use crate::error::{closest, ErrorKind, QueryError};
use crate::parser::{parse_statement, split_statements};
use crate::result::{ResultKind, ResultSet, Value};
use saedb_engine::graph::{ChainQuery, GraphInfo, NodeKind};
use saedb_engine::{
    is_special_token, Document, Error as EngineError, FeatureRef, Store, TokenActivation,
};
use std::collections::HashMap;
use std::sync::Arc;

/// The largest LIMIT / TOP k / SAMPLE k a statement may ask for.
pub const MAX_LIMIT: u64 = 100_000;
/// The largest CONTEXT (tokens on each side).
pub const MAX_CONTEXT: u64 = 1_000;
/// The largest number of quantiles in `SAMPLE ... FROM QUANTILE q OF n`.
pub const MAX_QUANTILES: u64 = 1_000;
/// The largest `BREADTH` (HNSW search breadth) of NEIGHBOURS: the same cap as LIMIT, since the
/// breadth is raised to at least the number of results anyway.
pub const MAX_BREADTH: u64 = MAX_LIMIT;
/// Tokens of context on each side when a statement does not say.
pub const DEFAULT_CONTEXT: u64 = 5;

/// A query session: a store, the current dictionary (`USE`), and statement execution.
pub struct Session {
    store: Arc<Store>,
    current_dict: Option<String>,
    /// Variables bound by `SET $name = feature` (names with their `$`).
    variables: HashMap<String, FeatureRef>,
}

impl Session {
    pub fn new(store: Arc<Store>) -> Session {
        Session {
            store,
            current_dict: None,
            variables: HashMap::new(),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The shared handle to the store.
    pub fn store_arc(&self) -> Arc<Store> {
        self.store.clone()
    }

    /// The dictionary chosen by `USE`, if any.
    pub fn current_dictionary(&self) -> Option<&str> {
        self.current_dict.as_deref()
    }

    /// The variables bound by `SET`, by name (with the `$`).
    pub fn variables(&self) -> &HashMap<String, FeatureRef> {
        &self.variables
    }

    /// Parses and runs every `;`-separated statement of `source` (a line, a script), in order.
    /// Stops at the first error (statements before it have run, and their effects, such as
    /// labels, stay). Each statement is parsed just before it runs.
    pub fn execute(&mut self, source: &str) -> Result<Vec<ResultSet>, QueryError> {
        let mut out = Vec::new();
        self.execute_with(source, |rs| out.push(rs))?;
        Ok(out)
    }

    /// Like [`Session::execute`], but hands each result to `on_result` as soon as its statement
    /// has run (a script runner prints as it goes). Returns the number of statements run.
    pub fn execute_with(
        &mut self,
        source: &str,
        mut on_result: impl FnMut(ResultSet),
    ) -> Result<usize, QueryError> {
        let ranges = split_statements(source);
        let n = ranges.len();
        for r in ranges {
            let stmt = parse_statement(source, r)?;
            let rs = self.execute_statement(source, &stmt)?;
            on_result(rs);
        }
        Ok(n)
    }

    /// Runs one parsed statement; `source` is the text it was parsed from (for error positions).
    pub fn execute_statement(
        &mut self,
        source: &str,
        stmt: &ParsedStatement,
    ) -> Result<ResultSet, QueryError> {
        let x = Exec {
            store: &self.store,
            source,
            stmt_span: stmt.span,
            current: self.current_dict.as_deref(),
            vars: &self.variables,
        };
        match &stmt.statement {
            Statement::Use { dict } => {
                let info = x.dictionary(dict)?;
                self.current_dict = Some(info.name.clone());
                Ok(ResultSet::message(format!(
                    "using dictionary {}",
                    info.name
                )))
            }
            Statement::Set { name, feature } => {
                let f = x.feature(feature)?;
                let note = format!("{} = {f}", name.value);
                self.variables.insert(name.value.clone(), f);
                Ok(ResultSet::message(note))
            }
            s => x.run(s),
        }
    }
}

struct Exec<'a> {
    store: &'a Store,
    source: &'a str,
    stmt_span: Span,
    current: Option<&'a str>,
    vars: &'a HashMap<String, FeatureRef>,
}

type R<T> = Result<T, QueryError>;

fn kind_name(k: NodeKind) -> &'static str {
    match k {
        NodeKind::Embedding => "embedding",
        NodeKind::Feature => "feature",
        NodeKind::Error => "error",
        NodeKind::Logit => "logit",
    }
}

impl<'a> Exec<'a> {
    fn err(&self, span: Span, kind: ErrorKind, message: impl Into<String>) -> QueryError {
        QueryError::at(self.source, span, kind, message)
    }

    /// The span of the statement's first word, for errors about the statement as a whole.
    fn head_span(&self) -> Span {
        let text = self
            .source
            .get(self.stmt_span.start..self.stmt_span.end)
            .unwrap_or("");
        let len = text
            .find(|c: char| !c.is_alphanumeric() && c != '_')
            .unwrap_or(text.len());
        Span::new(
            self.stmt_span.start,
            self.stmt_span.start + len.max(1).min(text.len()),
        )
    }

    /// Turns an engine error into a query error about `span`.
    fn engine(&self, span: Span, e: EngineError) -> QueryError {
        match e {
            EngineError::UnknownDictionary { name, known } => {
                let hint = known_hint("dictionaries", &name, &known);
                self.err(
                    span,
                    ErrorKind::NotFound,
                    format!("unknown dictionary '{name}'"),
                )
                .with_hint(hint)
            }
            EngineError::UnknownGraph { name, known } => {
                let hint = known_hint("graphs", &name, &known);
                self.err(span, ErrorKind::NotFound, format!("unknown graph '{name}'"))
                    .with_hint(hint)
            }
            e @ (EngineError::FeatureOutOfRange { .. }
            | EngineError::UnknownDocument { .. }
            | EngineError::PositionOutOfRange { .. }
            | EngineError::UnknownNode { .. }) => {
                self.err(span, ErrorKind::NotFound, e.to_string())
            }
            e @ (EngineError::NotAvailable(_) | EngineError::Missing(_)) => {
                self.err(span, ErrorKind::Unavailable, e.to_string())
            }
            e @ EngineError::InvalidArgument(_) => {
                self.err(span, ErrorKind::Invalid, e.to_string())
            }
            e => self.err(span, ErrorKind::Engine, e.to_string()),
        }
    }

    fn dictionary(&self, name: &Spanned<String>) -> R<saedb_engine::DictionaryInfo> {
        self.store
            .dictionary(&name.value)
            .map_err(|e| self.engine(name.span, e))
    }

    fn limit(&self, l: &Option<Spanned<u64>>, default: u64, what: &str) -> R<usize> {
        match l {
            None => Ok(default as usize),
            Some(s) => self.count(s, what),
        }
    }

    /// A count the user asked for (TOP k, LIMIT n): at least 1, at most [`MAX_LIMIT`].
    fn count(&self, s: &Spanned<u64>, what: &str) -> R<usize> {
        if s.value == 0 {
            return Err(self.err(
                s.span,
                ErrorKind::Invalid,
                format!("{what} must be at least 1"),
            ));
        }
        if s.value > MAX_LIMIT {
            return Err(self
                .err(
                    s.span,
                    ErrorKind::Invalid,
                    format!("{what} {} is too large", s.value),
                )
                .with_hint(format!("the largest {what} allowed is {MAX_LIMIT}")));
        }
        Ok(s.value as usize)
    }

    fn u32_arg(&self, s: &Spanned<u64>, what: &str) -> R<u32> {
        u32::try_from(s.value).map_err(|_| {
            self.err(
                s.span,
                ErrorKind::Invalid,
                format!("{what} {} does not fit in 32 bits", s.value),
            )
            .with_hint(format!("{what}s go up to {}", u32::MAX))
        })
    }

    /// Resolves a feature reference to `dict/index`, checking that it exists.
    fn feature(&self, f: &FeatureArg) -> R<FeatureRef> {
        match &f.value {
            FeatureSpec::Explicit { dict, index } => {
                // Point at the dictionary name for unknown dictionaries.
                let dict_span = Span::new(f.span.start, f.span.start + dict.len());
                let info = self
                    .store
                    .dictionary(dict)
                    .map_err(|e| self.engine(dict_span, e))?;
                self.in_range(&info, *index, f.span)
            }
            FeatureSpec::Bare { index } => {
                let Some(dict) = self.current else {
                    return Err(self
                        .err(f.span, ErrorKind::Invalid, format!("feature {index} has no dictionary"))
                        .with_hint("write it as DICT/INDEX (e.g. L2/1234), or choose a dictionary first with USE"));
                };
                let info = self
                    .store
                    .dictionary(dict)
                    .map_err(|e| self.engine(f.span, e))?;
                self.in_range(&info, *index, f.span)
            }
            FeatureSpec::Label(text) => self.by_label(text, f.span),
            FeatureSpec::Variable(name) => match self.vars.get(name) {
                Some(f) => Ok(f.clone()),
                None => {
                    let mut known: Vec<&str> = self.vars.keys().map(String::as_str).collect();
                    known.sort();
                    let hint = if known.is_empty() {
                        "bind it first: SET $name = L2/1234".to_string()
                    } else {
                        format!("the variables are: {}", known.join(", "))
                    };
                    Err(self
                        .err(
                            f.span,
                            ErrorKind::NotFound,
                            format!("unknown variable {name}"),
                        )
                        .with_hint(hint))
                }
            },
        }
    }

    fn in_range(
        &self,
        info: &saedb_engine::DictionaryInfo,
        index: u64,
        span: Span,
    ) -> R<FeatureRef> {
        if index >= u64::from(info.d_sae) {
            return Err(self.err(
                span,
                ErrorKind::NotFound,
                format!(
                    "feature {index} is out of range for dictionary '{}' (it has {} features, 0..{})",
                    info.name, info.d_sae, info.d_sae
                ),
            ));
        }
        Ok(FeatureRef::new(info.name.clone(), index as u32))
    }

    /// A feature named by its label: an exact (case-insensitive) match wins; otherwise the label
    /// must be the only one containing the text. Ambiguity is an error listing the candidates.
    fn by_label(&self, text: &str, span: Span) -> R<FeatureRef> {
        let all = self.store.labels().map_err(|e| self.engine(span, e))?;
        let exact: Vec<&(FeatureRef, String)> = all
            .iter()
            .filter(|(_, l)| l.eq_ignore_ascii_case(text))
            .collect();
        let candidates: Vec<(FeatureRef, String)> = if !exact.is_empty() {
            exact.into_iter().cloned().collect()
        } else {
            let needle = text.to_lowercase();
            all.iter()
                .filter(|(_, l)| l.to_lowercase().contains(&needle))
                .cloned()
                .collect()
        };
        match candidates.len() {
            1 => Ok(candidates[0].0.clone()),
            0 => Err(self
                .err(span, ErrorKind::NotFound, format!("no feature has a label matching {text:?}"))
                .with_hint("SEARCH LABELS \"...\" lists labels containing a text; SHOW LABELS lists them all")),
            n => {
                let mut list: Vec<String> =
                    candidates.iter().take(10).map(|(f, l)| format!("{f} {l:?}")).collect();
                if n > 10 {
                    list.push(format!("and {} more", n - 10));
                }
                Err(self
                    .err(span, ErrorKind::Invalid, format!("label {text:?} is ambiguous: {n} features match"))
                    .with_hint(format!("name one as DICT/INDEX: {}", list.join(", "))))
            }
        }
    }

    fn label_of(&self, f: &FeatureRef) -> Value {
        match self.store.label(f) {
            Ok(l) => Value::opt_str(l),
            Err(_) => Value::Null,
        }
    }

    fn title_for(&self, head: String, f: &FeatureRef) -> String {
        match self.store.label(f) {
            Ok(Some(l)) => format!("{head} ({l:?})"),
            _ => head,
        }
    }

    fn run(&self, s: &Statement) -> R<ResultSet> {
        match s {
            Statement::ShowDictionaries => self.show_dictionaries(),
            Statement::DescribeDictionary { dict } => self.describe_dictionary(dict),
            Statement::ShowGraphs => self.show_graphs(),
            Statement::ShowLabels { limit } => self.show_labels(limit),
            Statement::ShowDoc { doc } => self.show_doc(doc),
            Statement::Describe { feature } => self.describe(feature),
            Statement::DescribeGraph { graph } => {
                let info = self
                    .store
                    .graph_info(&graph.value)
                    .map_err(|e| self.engine(graph.span, e))?;
                Ok(graph_record(&info))
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

    fn show_dictionaries(&self) -> R<ResultSet> {
        let mut rs = ResultSet::new(
            ResultKind::Dictionaries,
            &[
                "name",
                "architecture",
                "d_in",
                "d_sae",
                "k",
                "layer",
                "hook",
                "model",
                "tokens_encoded",
                "nonzeros",
            ],
        );
        for d in self.store.dictionaries() {
            rs.rows.push(vec![
                Value::str(&d.name),
                Value::str(d.architecture.to_string()),
                Value::Int(d.d_in.into()),
                Value::Int(d.d_sae.into()),
                d.k.map(|k| Value::Int(k.into())).unwrap_or(Value::Null),
                d.layer.map(|k| Value::Int(k.into())).unwrap_or(Value::Null),
                Value::opt_str(d.hook),
                Value::opt_str(d.model),
                Value::Int(d.tokens_encoded as i64),
                Value::Int(d.nonzeros as i64),
            ]);
        }
        Ok(rs)
    }

    fn describe_dictionary(&self, dict: &Spanned<String>) -> R<ResultSet> {
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

    fn show_graphs(&self) -> R<ResultSet> {
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

    fn show_labels(&self, limit: &Option<Spanned<u64>>) -> R<ResultSet> {
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

    fn document(&self, doc: &Spanned<u64>) -> R<Document> {
        let d = self.u32_arg(doc, "document")?;
        self.store.document(d).map_err(|e| self.engine(doc.span, e))
    }

    fn show_doc(&self, doc: &Spanned<u64>) -> R<ResultSet> {
        let d = self.document(doc)?;
        let mut rs = ResultSet::new(ResultKind::Document, &["pos", "token", "token_id"]);
        rs.title = Some(match &d.source {
            Some(s) => format!("DOC {} ({s})", d.doc),
            None => format!("DOC {}", d.doc),
        });
        for (i, t) in d.tokens.iter().enumerate() {
            let id = d
                .token_ids
                .get(i)
                .map(|&i| Value::Int(i.into()))
                .unwrap_or(Value::Null);
            rs.rows.push(vec![Value::Int(i as i64), Value::str(t), id]);
        }
        Ok(rs)
    }

    fn describe(&self, feature: &FeatureArg) -> R<ResultSet> {
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

    fn context_len(&self, options: &ActivationOptions) -> R<usize> {
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

    /// The activation filter of TOP / SAMPLE: WHERE and EXCLUDE SPECIAL together.
    fn activation_filter(&self, options: &ActivationOptions) -> R<Option<ActFilter>> {
        let expr = match &options.filter {
            Some(e) => Some(compile(self, e, ACTIVATION_FIELDS)?),
            None => None,
        };
        if expr.is_none() && !options.exclude_special {
            return Ok(None);
        }
        Ok(Some(ActFilter {
            expr,
            exclude_special: options.exclude_special,
        }))
    }

    fn activation_rows(
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

    fn top(
        &self,
        k: &Spanned<u64>,
        feature: &FeatureArg,
        options: &ActivationOptions,
    ) -> R<ResultSet> {
        let n = self.count(k, "TOP")?;
        let context = self.context_len(options)?;
        let f = self.feature(feature)?;
        let filter = self.activation_filter(options)?;
        let acts = match &filter {
            None => self.store.top_activations(&f, n, None),
            Some(flt) => {
                let pred = |a: &TokenActivation| flt.accepts(a);
                self.store.top_activations(&f, n, Some(&pred))
            }
        }
        .map_err(|e| self.engine(feature.span, e))?;
        let mut rs = self.activation_rows(ResultKind::TopActivations, &acts, context)?;
        rs.title = Some(self.title_for(format!("TOP {n} ACTIVATIONS OF {f}"), &f));
        self.order(&mut rs, &options.order)?;
        Ok(rs)
    }

    fn sample(
        &self,
        k: &Spanned<u64>,
        feature: &FeatureArg,
        quantile: &Spanned<u64>,
        of: &Spanned<u64>,
        options: &ActivationOptions,
    ) -> R<ResultSet> {
        let n = self.count(k, "SAMPLE")?;
        if of.value == 0 || of.value > MAX_QUANTILES {
            return Err(self.err(
                of.span,
                ErrorKind::Invalid,
                format!("the number of quantiles must be between 1 and {MAX_QUANTILES}"),
            ));
        }
        if quantile.value == 0 || quantile.value > of.value {
            return Err(self
                .err(
                    quantile.span,
                    ErrorKind::Invalid,
                    format!("quantile {} does not exist", quantile.value),
                )
                .with_hint(format!(
                    "quantiles are numbered 1 (weakest) to {} (strongest)",
                    of.value
                )));
        }
        let context = self.context_len(options)?;
        let f = self.feature(feature)?;
        let filter = self.activation_filter(options)?;
        let mut acts = self
            .store
            .activations_of(&f)
            .map_err(|e| self.engine(feature.span, e))?;
        if let Some(flt) = &filter {
            acts.retain(|a| flt.accepts(a));
        }
        let (picked, lo, hi, bucket) =
            sample_quantile(&acts, quantile.value as usize, of.value as usize, n);
        let mut rs = self.activation_rows(ResultKind::Sample, &picked, context)?;
        rs.title = Some(self.title_for(
            format!(
                "SAMPLE {n} ACTIVATIONS OF {f} FROM QUANTILE {} OF {}",
                quantile.value, of.value
            ),
            &f,
        ));
        rs.note = Some(if bucket == 0 {
            format!(
                "quantile {} of {} is empty ({} activations in all)",
                quantile.value,
                of.value,
                acts.len()
            )
        } else {
            format!(
                "quantile {} of {}: {} of {} activations, values {} to {}; {} picked evenly",
                quantile.value,
                of.value,
                bucket,
                acts.len(),
                crate::render::format_float(lo),
                crate::render::format_float(hi),
                picked.len()
            )
        });
        self.order(&mut rs, &options.order)?;
        Ok(rs)
    }

    fn neighbours(
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

    fn features_at(
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

    fn token_effects(&self, feature: &FeatureArg, limit: &Option<Spanned<u64>>) -> R<ResultSet> {
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

    fn label(&self, feature: &FeatureArg, label: &Spanned<String>) -> R<ResultSet> {
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

    fn search_labels(&self, text: &Spanned<String>, limit: &Option<Spanned<u64>>) -> R<ResultSet> {
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

    fn chains(&self, s: &Statement) -> R<ResultSet> {
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

    fn influence(
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
                Value::str(kind_name(r.kind)),
                Value::Float(r.influence),
            ]);
        }
        Ok(rs)
    }

    /// Applies ORDER BY to a result (stable: ties keep the statement's own order).
    fn order(&self, rs: &mut ResultSet, keys: &[OrderKey]) -> R<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut idx = Vec::new();
        for k in keys {
            let name = k.column.value.to_ascii_lowercase();
            let Some(i) = rs.column(&name) else {
                let hint = match closest(&name, rs.columns.iter().map(String::as_str)) {
                    Some(c) => format!(
                        "did you mean {c}? the columns are: {}",
                        rs.columns.join(", ")
                    ),
                    None => format!("the columns are: {}", rs.columns.join(", ")),
                };
                return Err(self
                    .err(
                        k.column.span,
                        ErrorKind::Invalid,
                        format!("no column '{}' to order by", k.column.value),
                    )
                    .with_hint(hint));
            };
            if matches!(
                rs.rows.first().map(|r| &r[i]),
                Some(Value::Context { .. } | Value::Histogram(_) | Value::List(_))
            ) {
                return Err(self.err(
                    k.column.span,
                    ErrorKind::Invalid,
                    format!("cannot order by '{name}'"),
                ));
            }
            idx.push((i, k.descending));
        }
        rs.rows.sort_by(|a, b| {
            for &(i, desc) in &idx {
                let o = a[i].cmp_for_sort(&b[i]);
                let o = if desc { o.reverse() } else { o };
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
            }
            std::cmp::Ordering::Equal
        });
        Ok(())
    }
}

fn known_hint(what: &str, name: &str, known: &[String]) -> String {
    if known.is_empty() {
        return format!("the store holds no {what}");
    }
    match closest(name, known.iter().map(String::as_str)) {
        Some(c) => format!("did you mean {c}? the store holds: {}", known.join(", ")),
        None => format!("the store holds: {}", known.join(", ")),
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
        .map(|(k, n)| format!("{} {n}", kind_name(*k)))
        .collect::<Vec<_>>()
        .join(", ");
    let edges = g
        .edges_by_kind
        .iter()
        .map(|(a, b, n)| format!("{}→{} {n}", kind_name(*a), kind_name(*b)))
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

/// Picks `k` activations evenly spaced inside quantile `q` (1-based) of `n` of `acts` sorted by
/// value ascending (ties by doc, pos). Quantile q covers sorted indices
/// `floor((q-1)·N/n) .. floor(q·N/n)`; of its `m` members, pick j (0-based) is the member at
/// `floor((2j+1)·m / 2k)` — the middle of the j-th of k equal strata — so picks are deterministic
/// and spread over the quantile. Returns the picks strongest first, the quantile's value range
/// and its size.
pub fn sample_quantile(
    acts: &[TokenActivation],
    q: usize,
    n: usize,
    k: usize,
) -> (Vec<TokenActivation>, f64, f64, usize) {
    let mut sorted: Vec<&TokenActivation> = acts.iter().collect();
    sorted.sort_by(|a, b| {
        a.value
            .total_cmp(&b.value)
            .then(a.doc.cmp(&b.doc))
            .then(a.pos.cmp(&b.pos))
    });
    let total = sorted.len();
    let lo = (q - 1) * total / n;
    let hi = q * total / n;
    let bucket = &sorted[lo..hi];
    let m = bucket.len();
    if m == 0 {
        return (Vec::new(), 0.0, 0.0, 0);
    }
    let mut picks: Vec<TokenActivation> = if k >= m {
        bucket.iter().map(|a| (*a).clone()).collect()
    } else {
        (0..k)
            .map(|j| bucket[(2 * j + 1) * m / (2 * k)].clone())
            .collect()
    };
    picks.sort_by(|a, b| {
        b.value
            .total_cmp(&a.value)
            .then(a.doc.cmp(&b.doc))
            .then(a.pos.cmp(&b.pos))
    });
    let vlo = crate::result::Value::from_f32(bucket[0].value)
        .as_f64()
        .unwrap_or(0.0);
    let vhi = crate::result::Value::from_f32(bucket[m - 1].value)
        .as_f64()
        .unwrap_or(0.0);
    (picks, vlo, vhi, m)
}

// ---------------------------------------------------------------------------------------------
// WHERE: type-checked and compiled before any data is read.

#[derive(Clone, Copy, PartialEq)]
enum FieldType {
    /// A number (compared exactly as f64).
    Num,
    /// An f32 number: literals are rounded to f32 first, so `value = 2.6` matches a stored 2.6f32.
    F32,
    Str,
}

const ACTIVATION_FIELDS: &[(&str, FieldType)] = &[
    ("token", FieldType::Str),
    ("value", FieldType::F32),
    ("doc", FieldType::Num),
    ("pos", FieldType::Num),
    ("token_id", FieldType::Num),
];
const FEATURE_FIELDS: &[(&str, FieldType)] = &[
    ("dict", FieldType::Str),
    ("feature", FieldType::Num),
    ("value", FieldType::F32),
    ("label", FieldType::Str),
];

/// The value of a field for one row.
pub(crate) enum FieldValue<'v> {
    Num(f64),
    Str(&'v str),
    Null,
}

enum CTest {
    CmpNum(CmpOp, f64),
    CmpStr(CmpOp, String),
    Between(f64, f64),
    InNum(Vec<f64>),
    InStr(Vec<String>),
    Like(Vec<char>),
    Contains(String),
}

enum CExpr {
    And(Vec<CExpr>),
    Or(Vec<CExpr>),
    Not(Box<CExpr>),
    Pred {
        field: usize,
        negated: bool,
        test: CTest,
    },
}

struct ActFilter {
    expr: Option<CExpr>,
    exclude_special: bool,
}

impl ActFilter {
    fn accepts(&self, a: &TokenActivation) -> bool {
        if self.exclude_special && is_special_token(&a.token) {
            return false;
        }
        match &self.expr {
            None => true,
            Some(e) => e.eval(&|i| match i {
                0 => FieldValue::Str(&a.token),
                1 => FieldValue::Num(f64::from(a.value)),
                2 => FieldValue::Num(f64::from(a.doc)),
                3 => FieldValue::Num(f64::from(a.pos)),
                _ => a
                    .token_id
                    .map(|t| FieldValue::Num(f64::from(t)))
                    .unwrap_or(FieldValue::Null),
            }),
        }
    }
}

fn compile(x: &Exec, e: &Expr, fields: &[(&str, FieldType)]) -> R<CExpr> {
    Ok(match e {
        Expr::And(v) => CExpr::And(v.iter().map(|e| compile(x, e, fields)).collect::<R<_>>()?),
        Expr::Or(v) => CExpr::Or(v.iter().map(|e| compile(x, e, fields)).collect::<R<_>>()?),
        Expr::Not(e) => CExpr::Not(Box::new(compile(x, e, fields)?)),
        Expr::Pred(p) => compile_pred(x, p, fields)?,
    })
}

fn compile_pred(x: &Exec, p: &Predicate, fields: &[(&str, FieldType)]) -> R<CExpr> {
    let names: Vec<&str> = fields.iter().map(|f| f.0).collect();
    let Some(field) = names.iter().position(|n| *n == p.field.value) else {
        let hint = match closest(&p.field.value, names.iter().copied()) {
            Some(c) => format!(
                "did you mean {c}? this statement filters on: {}",
                names.join(", ")
            ),
            None => format!("this statement filters on: {}", names.join(", ")),
        };
        return Err(x
            .err(
                p.field.span,
                ErrorKind::Invalid,
                format!("unknown field '{}' in WHERE", p.field.value),
            )
            .with_hint(hint));
    };
    let ty = fields[field].1;
    let fname = fields[field].0;
    let num = |l: &Spanned<Literal>| -> R<f64> {
        match &l.value {
            Literal::Number(v) if ty == FieldType::F32 => Ok(f64::from(*v as f32)),
            Literal::Number(v) => Ok(*v),
            Literal::Str(_) => Err(x
                .err(
                    l.span,
                    ErrorKind::Invalid,
                    format!("'{fname}' is a number and cannot be compared with a string"),
                )
                .with_hint("write the number without quotes")),
        }
    };
    let text = |l: &Spanned<Literal>| -> R<String> {
        match &l.value {
            Literal::Str(s) => Ok(s.clone()),
            Literal::Number(_) => Err(x
                .err(
                    l.span,
                    ErrorKind::Invalid,
                    format!("'{fname}' is text and cannot be compared with a number"),
                )
                .with_hint("quote the text: \"...\"")),
        }
    };
    let test = match (&p.test, ty) {
        (Test::Compare(op, l), FieldType::Str) => CTest::CmpStr(*op, text(l)?),
        (Test::Compare(op, l), _) => CTest::CmpNum(*op, num(l)?),
        (Test::Between(a, b), FieldType::Num | FieldType::F32) => CTest::Between(num(a)?, num(b)?),
        (Test::In(ls), FieldType::Str) => CTest::InStr(ls.iter().map(text).collect::<R<_>>()?),
        (Test::In(ls), _) => CTest::InNum(ls.iter().map(num).collect::<R<_>>()?),
        (Test::Like(l), FieldType::Str) => CTest::Like(text(l)?.to_lowercase().chars().collect()),
        (Test::Contains(l), FieldType::Str) => CTest::Contains(text(l)?.to_lowercase()),
        (Test::Between(..), FieldType::Str) => {
            return Err(x.err(
                p.field.span,
                ErrorKind::Invalid,
                format!("BETWEEN needs a number field, and '{fname}' is text"),
            ))
        }
        (Test::Like(_) | Test::Contains(_), _) => {
            return Err(x.err(
                p.field.span,
                ErrorKind::Invalid,
                format!("LIKE and CONTAINS need a text field, and '{fname}' is a number"),
            ))
        }
    };
    Ok(CExpr::Pred {
        field,
        negated: p.negated,
        test,
    })
}

impl CExpr {
    fn eval<'v>(&self, get: &dyn Fn(usize) -> FieldValue<'v>) -> bool {
        match self {
            CExpr::And(v) => v.iter().all(|e| e.eval(get)),
            CExpr::Or(v) => v.iter().any(|e| e.eval(get)),
            CExpr::Not(e) => !e.eval(get),
            CExpr::Pred {
                field,
                negated,
                test,
            } => {
                let r = match (get(*field), test) {
                    (FieldValue::Null, _) => false,
                    (FieldValue::Num(v), CTest::CmpNum(op, l)) => cmp(*op, v.partial_cmp(l)),
                    (FieldValue::Num(v), CTest::Between(a, b)) => *a <= v && v <= *b,
                    (FieldValue::Num(v), CTest::InNum(ls)) => ls.contains(&v),
                    (FieldValue::Str(s), CTest::CmpStr(op, l)) => cmp(*op, Some(s.cmp(l.as_str()))),
                    (FieldValue::Str(s), CTest::InStr(ls)) => ls.iter().any(|l| l == s),
                    (FieldValue::Str(s), CTest::Like(p)) => {
                        like(&s.to_lowercase().chars().collect::<Vec<_>>(), p)
                    }
                    (FieldValue::Str(s), CTest::Contains(t)) => {
                        s.to_lowercase().contains(t.as_str())
                    }
                    _ => false,
                };
                r != *negated
            }
        }
    }
}

fn cmp(op: CmpOp, o: Option<std::cmp::Ordering>) -> bool {
    use std::cmp::Ordering::*;
    match (op, o) {
        (_, None) => false,
        (CmpOp::Eq, Some(o)) => o == Equal,
        (CmpOp::Ne, Some(o)) => o != Equal,
        (CmpOp::Lt, Some(o)) => o == Less,
        (CmpOp::Le, Some(o)) => o != Greater,
        (CmpOp::Gt, Some(o)) => o == Greater,
        (CmpOp::Ge, Some(o)) => o != Less,
    }
}

/// SQL LIKE over characters: `%` matches any run, `_` any one character. Iterative (no recursion),
/// linear in practice: on a mismatch it backtracks only to the last `%`.
pub(crate) fn like(s: &[char], p: &[char]) -> bool {
    let (mut si, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == '_' || (p[pi] != '%' && p[pi] == s[si])) {
            si += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '%' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(s: &str, p: &str) -> bool {
        like(
            &s.chars().collect::<Vec<_>>(),
            &p.chars().collect::<Vec<_>>(),
        )
    }

    #[test]
    fn like_patterns() {
        assert!(l("bridge", "%idg%"));
        assert!(l("bridge", "b_idge"));
        assert!(l("bridge", "%"));
        assert!(l("", "%"));
        assert!(!l("bridge", "b_dge"));
        assert!(l("abcabc", "%abc"));
        assert!(!l("abcab", "%abc"));
    }

    fn act(v: f32, doc: u32) -> TokenActivation {
        TokenActivation {
            doc,
            pos: 0,
            value: v,
            token: String::new(),
            token_id: None,
        }
    }

    #[test]
    fn quantile_picks() {
        let acts: Vec<_> = (0..100).map(|i| act(i as f32, i)).collect();
        let (p, lo, hi, m) = sample_quantile(&acts, 3, 10, 2);
        assert_eq!((lo, hi, m), (20.0, 29.0, 10));
        let v: Vec<f32> = p.iter().map(|a| a.value).collect();
        assert_eq!(v, vec![27.0, 22.0]);
        let (p, _, _, m) = sample_quantile(&acts, 10, 10, 50);
        assert_eq!((p.len(), m), (10, 10));
    }
}
