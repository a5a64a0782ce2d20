//! Planning and execution of statements over a [`saedb_engine::Store`].
//!
//! A [`Session`] holds the store, the dictionary chosen by `USE`, and runs statements one by one.
//! Planning checks everything that can be checked before touching data (names, ranges, limits,
//! WHERE field types) and reports it at the offending text; execution calls the engine and turns
//! its answer into a typed [`ResultSet`].

//!
//! The work is split by job: this file holds the session and what every statement uses
//! (resolving names, limits, errors, ORDER BY); `statements.rs` runs each statement;
//! `filter.rs` compiles WHERE; `sample.rs` runs SAMPLE on the engine's quantile sampling.

mod filter;
mod model;
mod sample;
mod statements;

use crate::ast::*;
use crate::error::{closest, ErrorKind, QueryError};
use crate::parser::{parse_statement, split_statements};
use crate::result::{ResultSet, Value};
use saedb_engine::{Cancel, Error as EngineError, FeatureRef, Store};
use std::collections::HashMap;
use std::sync::Arc;

/// The largest LIMIT / TOP k / SAMPLE k a statement may ask for: the engine's cap
/// ([`saedb_engine::MAX_LIMIT`]) is ten times larger, for embedders that page through results;
/// a statement's rows are rendered, and 100,000 is more than a screen or a script wants.
pub const MAX_LIMIT: u64 = 100_000;
/// The largest CONTEXT (tokens on each side).
pub const MAX_CONTEXT: u64 = 1_000;
/// The largest number of quantiles in `SAMPLE ... FROM QUANTILE q OF n` (the engine's).
pub const MAX_QUANTILES: u64 = saedb_engine::MAX_QUANTILES as u64;
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
    /// Set to stop the running statement (see [`Session::cancel_handle`]).
    cancel: Cancel,
}

impl Session {
    pub fn new(store: Arc<Store>) -> Session {
        Session {
            store,
            current_dict: None,
            variables: HashMap::new(),
            cancel: Cancel::new(),
        }
    }

    /// A handle that stops the statement running in this session from another thread (a
    /// Ctrl-C handler): the long reads of TOP … WHERE and SAMPLE stop, the statement fails with
    /// an error of kind [`ErrorKind::Cancelled`], the session stays usable. Every call of
    /// [`Session::execute`] clears the flag when it starts.
    pub fn cancel_handle(&self) -> Cancel {
        self.cancel.clone()
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
        self.cancel.reset();
        let ranges = split_statements(source);
        let n = ranges.len();
        for r in ranges {
            // A script stops between statements too, not only inside the long reads.
            if self.cancel.is_set() {
                return Err(QueryError::at(
                    source,
                    Span::new(r.start, r.end),
                    ErrorKind::Cancelled,
                    "cancelled before this statement ran; the statements before it have run",
                ));
            }
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
            cancel: &self.cancel,
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
    cancel: &'a Cancel,
}

type R<T> = Result<T, QueryError>;

impl<'a> Exec<'a> {
    pub(super) fn err(
        &self,
        span: Span,
        kind: ErrorKind,
        message: impl Into<String>,
    ) -> QueryError {
        QueryError::at(self.source, span, kind, message)
    }

    /// The span of the statement's first word, for errors about the statement as a whole.
    pub(super) fn head_span(&self) -> Span {
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
    pub(super) fn engine(&self, span: Span, e: EngineError) -> QueryError {
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
            e @ EngineError::Cancelled => self.err(span, ErrorKind::Cancelled, e.to_string()),
            e => self.err(span, ErrorKind::Engine, e.to_string()),
        }
    }

    pub(super) fn dictionary(&self, name: &Spanned<String>) -> R<saedb_engine::DictionaryInfo> {
        self.store
            .dictionary(&name.value)
            .map_err(|e| self.engine(name.span, e))
    }

    pub(super) fn limit(&self, l: &Option<Spanned<u64>>, default: u64, what: &str) -> R<usize> {
        match l {
            None => Ok(default as usize),
            Some(s) => self.count(s, what),
        }
    }

    /// A count the user asked for (TOP k, LIMIT n): at least 1, at most [`MAX_LIMIT`].
    pub(super) fn count(&self, s: &Spanned<u64>, what: &str) -> R<usize> {
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

    pub(super) fn u32_arg(&self, s: &Spanned<u64>, what: &str) -> R<u32> {
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
    pub(super) fn feature(&self, f: &FeatureArg) -> R<FeatureRef> {
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

    pub(super) fn in_range(
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
    pub(super) fn by_label(&self, text: &str, span: Span) -> R<FeatureRef> {
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

    pub(super) fn label_of(&self, f: &FeatureRef) -> Value {
        match self.store.label(f) {
            Ok(l) => Value::opt_str(l),
            Err(_) => Value::Null,
        }
    }

    pub(super) fn title_for(&self, head: String, f: &FeatureRef) -> String {
        match self.store.label(f) {
            Ok(Some(l)) => format!("{head} ({l:?})"),
            _ => head,
        }
    }

    /// Applies ORDER BY to a result (stable: ties keep the statement's own order).
    pub(super) fn order(&self, rs: &mut ResultSet, keys: &[OrderKey]) -> R<()> {
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
