//! The abstract syntax of the saedb query language.
//!
//! Every node that an error can be about carries a [`Span`]: byte offsets into the source text the
//! statement was parsed from (the whole script, not just the statement), so that errors found while
//! planning or executing point at the offending text just like syntax errors do.

use std::fmt;

/// A byte range `start..end` of the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }
}

/// A value with the span of the text it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Self {
        Spanned { value, span }
    }
}

/// How a statement names a feature.
#[derive(Debug, Clone, PartialEq)]
pub enum FeatureSpec {
    /// `L2/1234`.
    Explicit { dict: String, index: u64 },
    /// `1234`: in the dictionary chosen by `USE`.
    Bare { index: u64 },
    /// `"Golden Gate Bridge"` or `LABEL "Golden Gate Bridge"`: resolved through the labels.
    Label(String),
    /// `$name`: a variable bound by `SET $name = feature`.
    Variable(String),
}

impl fmt::Display for FeatureSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FeatureSpec::Explicit { dict, index } => write!(f, "{dict}/{index}"),
            FeatureSpec::Bare { index } => write!(f, "{index}"),
            FeatureSpec::Label(l) => write!(f, "LABEL {l:?}"),
            FeatureSpec::Variable(v) => f.write_str(v),
        }
    }
}

/// A feature reference with its span.
pub type FeatureArg = Spanned<FeatureSpec>;

/// A literal in a WHERE expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Number(f64),
    Str(String),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// The test a predicate applies to its field.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    Compare(CmpOp, Spanned<Literal>),
    /// `BETWEEN lo AND hi`, both ends inclusive.
    Between(Spanned<Literal>, Spanned<Literal>),
    In(Vec<Spanned<Literal>>),
    /// SQL `LIKE`: `%` any run, `_` any one character; ASCII case-insensitive.
    Like(Spanned<Literal>),
    /// Substring, ASCII case-insensitive.
    Contains(Spanned<Literal>),
}

/// `field test`, possibly negated (`NOT IN`, `NOT LIKE`, `NOT BETWEEN`, `NOT CONTAINS`).
#[derive(Debug, Clone, PartialEq)]
pub struct Predicate {
    pub field: Spanned<String>,
    pub negated: bool,
    pub test: Test,
}

/// A boolean expression of a WHERE clause. `And`/`Or` hold flat lists, so long chains do not nest.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Pred(Predicate),
}

/// One key of an ORDER BY clause.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderKey {
    pub column: Spanned<String>,
    pub descending: bool,
}

/// Options of TOP / SAMPLE ACTIVATIONS.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ActivationOptions {
    /// Tokens of context on each side.
    pub context: Option<Spanned<u64>>,
    pub filter: Option<Expr>,
    pub exclude_special: bool,
    pub order: Vec<OrderKey>,
}

/// How GENERATE edits the residual stream with one feature.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EditKind {
    /// `CLAMP f TO v [TIMES MAX]`.
    Clamp { times_max: bool },
    /// `STEER f BY a`.
    Steer,
}

/// One `CLAMP` or `STEER` clause of GENERATE.
#[derive(Debug, Clone, PartialEq)]
pub struct Edit {
    pub feature: FeatureArg,
    pub kind: EditKind,
    /// The clamp value (or multiple of the stored maximum) or the steering coefficient.
    pub value: Spanned<f64>,
}

/// A parsed statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    ShowDictionaries,
    ShowGraphs,
    ShowLabels {
        limit: Option<Spanned<u64>>,
    },
    /// `SHOW DOC d`: the document as text; with `POSITIONS`, one row per token.
    ShowDoc {
        doc: Spanned<u64>,
        positions: bool,
    },
    Describe {
        feature: FeatureArg,
    },
    /// `DESCRIBE f BY SOURCE`: where the feature fires, by document source.
    DescribeBySource {
        feature: FeatureArg,
    },
    DescribeDictionary {
        dict: Spanned<String>,
    },
    DescribeGraph {
        graph: Spanned<String>,
    },
    /// `DROP GRAPH name`: deletes a stored graph.
    DropGraph {
        graph: Spanned<String>,
    },
    Top {
        k: Spanned<u64>,
        feature: FeatureArg,
        options: ActivationOptions,
    },
    Sample {
        k: Spanned<u64>,
        feature: FeatureArg,
        quantile: Spanned<u64>,
        of: Spanned<u64>,
        options: ActivationOptions,
    },
    Neighbours {
        feature: FeatureArg,
        in_dict: Option<Spanned<String>>,
        exact: bool,
        /// `BREADTH n`: the HNSW search breadth (`ef`) of an approximate search; never with `EXACT`.
        breadth: Option<Spanned<u64>>,
        limit: Option<Spanned<u64>>,
        order: Vec<OrderKey>,
    },
    FeaturesAt {
        doc: Spanned<u64>,
        pos: Spanned<u64>,
        in_dict: Option<Spanned<String>>,
        filter: Option<Expr>,
        limit: Option<Spanned<u64>>,
        order: Vec<OrderKey>,
    },
    /// `[TOP] FEATURES OF TEXT "..." [IN dict] [LIMIT k]`: per token (with TOP, over the whole
    /// text) the strongest features of a dictionary run live on its model.
    FeaturesOfText {
        top: bool,
        text: Spanned<String>,
        in_dict: Option<Spanned<String>>,
        limit: Option<Spanned<u64>>,
    },
    /// `ACTIVATION OF f ON TEXT "..."`: one feature's value at every token.
    ActivationOnText {
        feature: FeatureArg,
        text: Spanned<String>,
    },
    /// `GENERATE "prompt" [MAX TOKENS n] [CLAMP f TO v [TIMES MAX]] [STEER f BY a] ...
    /// [TEMPERATURE t] [SEED s]`.
    Generate {
        prompt: Spanned<String>,
        max_tokens: Option<Spanned<u64>>,
        edits: Vec<Edit>,
        temperature: Option<Spanned<f64>>,
        seed: Option<Spanned<u64>>,
    },
    TokenEffects {
        feature: FeatureArg,
        limit: Option<Spanned<u64>>,
    },
    Label {
        feature: FeatureArg,
        label: Spanned<String>,
    },
    SearchLabels {
        text: Spanned<String>,
        limit: Option<Spanned<u64>>,
    },
    Chains {
        to: Spanned<String>,
        graph: Spanned<String>,
        from: Option<Spanned<String>>,
        through: Option<Spanned<String>>,
        min_length: Option<Spanned<u64>>,
        max_length: Option<Spanned<u64>>,
        exclude_errors: bool,
        limit: Option<Spanned<u64>>,
    },
    Influence {
        on: Spanned<String>,
        graph: Spanned<String>,
        limit: Option<Spanned<u64>>,
    },
    Attribute {
        doc: Spanned<u64>,
        pos: Spanned<u64>,
        token: Spanned<String>,
        graph: Spanned<String>,
    },
    Use {
        dict: Spanned<String>,
    },
    /// `SET $name = feature`: binds a variable for the rest of the session.
    Set {
        name: Spanned<String>,
        feature: FeatureArg,
    },
}

/// A statement with the span of its text (without the trailing `;`).
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedStatement {
    pub statement: Statement,
    pub span: Span,
}
