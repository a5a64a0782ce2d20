//! Typed results: what every statement returns, before rendering.

/// One cell of a result.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    List(Vec<Value>),
    /// Tokens around an activation; `tokens[center]` is the token it fired on.
    Context {
        tokens: Vec<String>,
        center: usize,
    },
    /// Histogram bins `(lower edge, upper edge, count)`.
    Histogram(Vec<(f32, f32, u64)>),
}

impl Value {
    /// An `f32` as the `f64` with the same shortest decimal form (`2.6f32` → `2.6`, not
    /// `2.5999999046325684`), so JSON and CSV show what the store holds.
    pub fn from_f32(v: f32) -> Value {
        if v.is_finite() {
            Value::Float(format!("{v}").parse().unwrap_or(v as f64))
        } else {
            Value::Float(v as f64)
        }
    }

    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    pub fn opt_str(s: Option<impl Into<String>>) -> Value {
        s.map(|s| Value::Str(s.into())).unwrap_or(Value::Null)
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A total order for ORDER BY: nulls first, then numbers, then strings, then the rest.
    pub fn cmp_for_sort(&self, other: &Value) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        fn rank(v: &Value) -> u8 {
            match v {
                Value::Null => 0,
                Value::Int(_) | Value::Float(_) | Value::Bool(_) => 1,
                Value::Str(_) => 2,
                _ => 3,
            }
        }
        let num = |v: &Value| match v {
            Value::Bool(b) => Some(f64::from(u8::from(*b))),
            v => v.as_f64(),
        };
        match (num(self), num(other)) {
            (Some(a), Some(b)) => a.total_cmp(&b),
            _ => match (self, other) {
                (Value::Str(a), Value::Str(b)) => a.cmp(b),
                _ => rank(self).cmp(&rank(other)).then(Ordering::Equal),
            },
        }
    }
}

/// Which statement a result comes from: renderers and the shell use it to lay results out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultKind {
    Dictionaries,
    Dictionary,
    Describe,
    /// `DESCRIBE f BY SOURCE`.
    BySource,
    TopActivations,
    Sample,
    Neighbours,
    FeaturesAt,
    TokenEffects,
    Label,
    SearchLabels,
    Labels,
    Chains,
    Influence,
    Graphs,
    Graph,
    /// SHOW DOC … POSITIONS: one row per token.
    Document,
    /// SHOW DOC: the document as text (a record).
    DocumentText,
    /// A statement that only reports what it did (`USE`).
    Message,
    /// The models registered in a store (`saedb info`).
    Models,
    /// FEATURES OF TEXT: per token of a text run live, its strongest features.
    TextFeatures,
    /// TOP FEATURES OF TEXT: features ranked by their maximum over a text.
    TopTextFeatures,
    /// ACTIVATION OF … ON TEXT: one feature's value at every token of a text.
    TextActivation,
    /// GENERATE: the default continuation, then the intervened one (records).
    Generation,
}

impl ResultKind {
    /// The kind's name in snake case, as bindings show it (`Result.kind` in Python). Every
    /// kind has one: a new kind must be named here.
    pub fn name(self) -> &'static str {
        match self {
            ResultKind::Dictionaries => "dictionaries",
            ResultKind::Dictionary => "dictionary",
            ResultKind::Describe => "describe",
            ResultKind::TopActivations => "top_activations",
            ResultKind::Sample => "sample",
            ResultKind::Neighbours => "neighbours",
            ResultKind::FeaturesAt => "features_at",
            ResultKind::TokenEffects => "token_effects",
            ResultKind::Label => "label",
            ResultKind::SearchLabels => "search_labels",
            ResultKind::Labels => "labels",
            ResultKind::Chains => "chains",
            ResultKind::Influence => "influence",
            ResultKind::Graphs => "graphs",
            ResultKind::Graph => "graph",
            ResultKind::Document => "document",
            ResultKind::DocumentText => "document_text",
            ResultKind::Message => "message",
            ResultKind::Models => "models",
            ResultKind::TextFeatures => "text_features",
            ResultKind::TopTextFeatures => "top_text_features",
            ResultKind::TextActivation => "text_activation",
            ResultKind::Generation => "generation",
            ResultKind::BySource => "by_source",
        }
    }

    /// Results shown one field per line in table form (a single record with many fields).
    pub fn is_record(self) -> bool {
        matches!(
            self,
            ResultKind::Describe
                | ResultKind::Dictionary
                | ResultKind::Graph
                | ResultKind::DocumentText
                | ResultKind::Generation
        )
    }
}

/// The result of one statement.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultSet {
    /// A heading, e.g. `TOP 5 ACTIVATIONS OF L2/7`.
    pub title: Option<String>,
    /// Column names: also the JSON field names (stable, documented in docs/QUERY.md).
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    pub kind: ResultKind,
    /// A line said after the rows (what a statement did, what a sample covered).
    pub note: Option<String>,
}

impl ResultSet {
    pub fn new(kind: ResultKind, columns: &[&str]) -> ResultSet {
        ResultSet {
            title: None,
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: Vec::new(),
            kind,
            note: None,
        }
    }

    pub fn message(text: impl Into<String>) -> ResultSet {
        ResultSet {
            title: None,
            columns: Vec::new(),
            rows: Vec::new(),
            kind: ResultKind::Message,
            note: Some(text.into()),
        }
    }

    /// The index of a column by name.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// The cell of `row` in column `name`.
    pub fn get(&self, row: usize, name: &str) -> Option<&Value> {
        self.column(name)
            .and_then(|c| self.rows.get(row).and_then(|r| r.get(c)))
    }
}
