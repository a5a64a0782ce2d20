//! Declarative filters over activations: a field, a comparison, a value, combined with AND / OR /
//! NOT. Plain data (no closures), so the query language compiles its WHERE into one and a
//! binding in another language can build one too.
//!
//! ```
//! use saedb_engine::filter::{ActivationField as F, ActivationFilter as Filter, Comparison, Literal};
//! // value > 2.5 AND token = " bridge" AND NOT a special token
//! let f = Filter::and(vec![
//!     Filter::compare(F::Value, Comparison::Gt, 2.5),
//!     Filter::compare(F::Token, Comparison::Eq, " bridge"),
//!     Filter::not(Filter::SpecialToken),
//! ]);
//! assert!(f.validate().is_ok());
//! ```

use crate::types::TokenActivation;
use crate::{Error, Result};

/// A field of an activation that a filter can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ActivationField {
    /// The token string it fired on (text; empty when the document's tokens were not ingested).
    Token,
    /// The stored value (a number, compared as float32: `2.6` matches a stored 2.6).
    Value,
    /// The document id (a number).
    Doc,
    /// The position in the document (a number).
    Pos,
    /// The token id (a number; absent when the document has none, and then no test holds).
    TokenId,
}

impl ActivationField {
    /// The field's name in the query language.
    pub fn name(self) -> &'static str {
        match self {
            ActivationField::Token => "token",
            ActivationField::Value => "value",
            ActivationField::Doc => "doc",
            ActivationField::Pos => "pos",
            ActivationField::TokenId => "token_id",
        }
    }

    /// Every field, in the order the query language lists them.
    pub const ALL: [ActivationField; 5] = [
        ActivationField::Token,
        ActivationField::Value,
        ActivationField::Doc,
        ActivationField::Pos,
        ActivationField::TokenId,
    ];

    fn is_text(self) -> bool {
        self == ActivationField::Token
    }
}

/// A comparison of a field with a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Comparison {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Comparison {
    /// Whether `a <op> b` holds, given `a.partial_cmp(b)` (never for an unordered pair).
    pub fn holds(self, o: Option<std::cmp::Ordering>) -> bool {
        use std::cmp::Ordering::*;
        match (self, o) {
            (_, None) => false,
            (Comparison::Eq, Some(o)) => o == Equal,
            (Comparison::Ne, Some(o)) => o != Equal,
            (Comparison::Lt, Some(o)) => o == Less,
            (Comparison::Le, Some(o)) => o != Greater,
            (Comparison::Gt, Some(o)) => o == Greater,
            (Comparison::Ge, Some(o)) => o != Less,
        }
    }
}

/// A value to compare with: a number for numeric fields, text for the token.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Literal {
    Number(f64),
    Text(String),
}

impl From<f64> for Literal {
    fn from(v: f64) -> Self {
        Literal::Number(v)
    }
}
impl From<u32> for Literal {
    fn from(v: u32) -> Self {
        Literal::Number(f64::from(v))
    }
}
impl From<&str> for Literal {
    fn from(v: &str) -> Self {
        Literal::Text(v.to_string())
    }
}
impl From<String> for Literal {
    fn from(v: String) -> Self {
        Literal::Text(v)
    }
}

/// What a predicate tests about its field.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Test {
    /// `field <op> value`.
    Compare(Comparison, Literal),
    /// `lo <= field <= hi` (numeric fields).
    Between(f64, f64),
    /// `field` equals one of the values.
    In(Vec<Literal>),
    /// SQL LIKE, case-insensitive: `%` any run of characters, `_` any one (text fields).
    Like(String),
    /// The field contains the text, case-insensitively (text fields).
    Contains(String),
}

/// A filter over activations: predicates combined with AND, OR and NOT.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ActivationFilter {
    /// One test of one field.
    Where { field: ActivationField, test: Test },
    /// Every part holds (true when empty).
    And(Vec<ActivationFilter>),
    /// Some part holds (false when empty).
    Or(Vec<ActivationFilter>),
    /// The part does not hold.
    Not(Box<ActivationFilter>),
    /// The token is a special token (BOS, `[CLS]`, `<|endoftext|>`, … see
    /// [`crate::is_special_token`]): `Not(SpecialToken)` is the query language's EXCLUDE SPECIAL.
    SpecialToken,
}

impl ActivationFilter {
    /// `field <op> value`.
    pub fn compare(field: ActivationField, op: Comparison, value: impl Into<Literal>) -> Self {
        ActivationFilter::Where {
            field,
            test: Test::Compare(op, value.into()),
        }
    }

    /// `field` with any `test`.
    pub fn test(field: ActivationField, test: Test) -> Self {
        ActivationFilter::Where { field, test }
    }

    pub fn and(parts: Vec<ActivationFilter>) -> Self {
        ActivationFilter::And(parts)
    }

    pub fn or(parts: Vec<ActivationFilter>) -> Self {
        ActivationFilter::Or(parts)
    }

    #[allow(clippy::should_implement_trait)] // a constructor, not negation of a value
    pub fn not(part: ActivationFilter) -> Self {
        ActivationFilter::Not(Box::new(part))
    }

    /// Refuses a filter whose tests do not fit their fields' types (text compared with a number,
    /// LIKE on a number, BETWEEN on text, a NaN bound), naming the field. Every read that takes a
    /// filter checks it first, before reading anything.
    pub fn validate(&self) -> Result<()> {
        match self {
            ActivationFilter::And(v) | ActivationFilter::Or(v) => {
                v.iter().try_for_each(ActivationFilter::validate)
            }
            ActivationFilter::Not(e) => e.validate(),
            ActivationFilter::SpecialToken => Ok(()),
            ActivationFilter::Where { field, test } => validate_test(*field, test),
        }
    }

    /// Whether the filter reads the token (string or id) of an activation, which costs a
    /// document lookup per activation.
    pub(crate) fn needs_token(&self) -> bool {
        match self {
            ActivationFilter::And(v) | ActivationFilter::Or(v) => v.iter().any(Self::needs_token),
            ActivationFilter::Not(e) => e.needs_token(),
            ActivationFilter::SpecialToken => true,
            ActivationFilter::Where { field, .. } => {
                matches!(field, ActivationField::Token | ActivationField::TokenId)
            }
        }
    }

    /// Checks the filter and prepares it for evaluation (patterns lowered once, literals of
    /// `value` rounded to float32).
    pub(crate) fn compile(&self) -> Result<Compiled> {
        self.validate()?;
        Ok(Compiled(compile(self)))
    }

    /// Whether `a` passes the filter. Validate it first: a test that does not fit its field
    /// never holds.
    pub fn accepts(&self, a: &TokenActivation) -> bool {
        compile(self).eval(a)
    }
}

fn validate_test(field: ActivationField, test: &Test) -> Result<()> {
    let name = field.name();
    let fits = |l: &Literal| match l {
        Literal::Number(v) if v.is_nan() => Err(Error::InvalidArgument(format!(
            "a filter compares '{name}' with NaN"
        ))),
        Literal::Number(_) if field.is_text() => Err(Error::InvalidArgument(format!(
            "'{name}' is text and cannot be compared with a number"
        ))),
        Literal::Text(_) if !field.is_text() => Err(Error::InvalidArgument(format!(
            "'{name}' is a number and cannot be compared with text"
        ))),
        _ => Ok(()),
    };
    match test {
        Test::Compare(_, l) => fits(l),
        Test::In(ls) => ls.iter().try_for_each(fits),
        Test::Between(lo, hi) if field.is_text() || lo.is_nan() || hi.is_nan() => {
            Err(Error::InvalidArgument(format!(
                "BETWEEN needs a number field and numeric bounds ('{name}' {lo} AND {hi})"
            )))
        }
        Test::Between(..) => Ok(()),
        Test::Like(_) | Test::Contains(_) if !field.is_text() => Err(Error::InvalidArgument(
            format!("LIKE and CONTAINS need a text field, and '{name}' is a number"),
        )),
        Test::Like(_) | Test::Contains(_) => Ok(()),
    }
}

/// A filter prepared for evaluation over many activations.
pub(crate) struct Compiled(Node);

impl Compiled {
    pub(crate) fn accepts(&self, a: &TokenActivation) -> bool {
        self.0.eval(a)
    }
}

enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Special,
    Num(ActivationField, NumTest),
    Text(TextTest),
    /// A test that does not fit its field: never holds.
    Never,
}

enum NumTest {
    Cmp(Comparison, f64),
    Between(f64, f64),
    In(Vec<f64>),
}

enum TextTest {
    Cmp(Comparison, String),
    In(Vec<String>),
    Like(Vec<char>),
    Contains(String),
}

fn compile(f: &ActivationFilter) -> Node {
    match f {
        ActivationFilter::And(v) => Node::And(v.iter().map(compile).collect()),
        ActivationFilter::Or(v) => Node::Or(v.iter().map(compile).collect()),
        ActivationFilter::Not(e) => Node::Not(Box::new(compile(e))),
        ActivationFilter::SpecialToken => Node::Special,
        ActivationFilter::Where { field, test } if field.is_text() => text_test(test),
        ActivationFilter::Where { field, test } => num_test(*field, test),
    }
}

fn num_test(field: ActivationField, test: &Test) -> Node {
    // `value` is stored as float32 (of a float16): a literal is rounded alike, so that
    // `value = 2.6` matches the 2.6 a query printed.
    let round = |v: f64| {
        if field == ActivationField::Value {
            f64::from(v as f32)
        } else {
            v
        }
    };
    let num = |l: &Literal| match l {
        Literal::Number(v) => Some(round(*v)),
        Literal::Text(_) => None,
    };
    let t = match test {
        Test::Compare(op, l) => match num(l) {
            Some(v) => NumTest::Cmp(*op, v),
            None => return Node::Never,
        },
        Test::Between(lo, hi) => NumTest::Between(round(*lo), round(*hi)),
        Test::In(ls) => match ls.iter().map(num).collect::<Option<Vec<f64>>>() {
            Some(v) => NumTest::In(v),
            None => return Node::Never,
        },
        Test::Like(_) | Test::Contains(_) => return Node::Never,
    };
    Node::Num(field, t)
}

fn text_test(test: &Test) -> Node {
    let text = |l: &Literal| match l {
        Literal::Text(s) => Some(s.clone()),
        Literal::Number(_) => None,
    };
    let t = match test {
        Test::Compare(op, l) => match text(l) {
            Some(s) => TextTest::Cmp(*op, s),
            None => return Node::Never,
        },
        Test::In(ls) => match ls.iter().map(text).collect::<Option<Vec<String>>>() {
            Some(v) => TextTest::In(v),
            None => return Node::Never,
        },
        Test::Like(p) => TextTest::Like(p.to_lowercase().chars().collect()),
        Test::Contains(t) => TextTest::Contains(t.to_lowercase()),
        Test::Between(..) => return Node::Never,
    };
    Node::Text(t)
}

impl Node {
    fn eval(&self, a: &TokenActivation) -> bool {
        match self {
            Node::And(v) => v.iter().all(|e| e.eval(a)),
            Node::Or(v) => v.iter().any(|e| e.eval(a)),
            Node::Not(e) => !e.eval(a),
            Node::Special => crate::is_special_token(&a.token),
            Node::Never => false,
            Node::Num(field, t) => {
                let v = match field {
                    ActivationField::Value => f64::from(a.value),
                    ActivationField::Doc => f64::from(a.doc),
                    ActivationField::Pos => f64::from(a.pos),
                    ActivationField::TokenId => match a.token_id {
                        Some(t) => f64::from(t),
                        None => return false,
                    },
                    ActivationField::Token => return false,
                };
                match t {
                    NumTest::Cmp(op, l) => op.holds(v.partial_cmp(l)),
                    NumTest::Between(lo, hi) => *lo <= v && v <= *hi,
                    NumTest::In(ls) => ls.contains(&v),
                }
            }
            Node::Text(t) => {
                let s = a.token.as_str();
                match t {
                    TextTest::Cmp(op, l) => op.holds(Some(s.cmp(l.as_str()))),
                    TextTest::In(ls) => ls.iter().any(|l| l == s),
                    TextTest::Like(p) => like(&s.to_lowercase().chars().collect::<Vec<_>>(), p),
                    TextTest::Contains(t) => s.to_lowercase().contains(t.as_str()),
                }
            }
        }
    }
}

/// SQL LIKE over characters: `%` matches any run, `_` any one character. Iterative (no
/// recursion), linear in practice: on a mismatch it backtracks only to the last `%`.
pub fn like(s: &[char], p: &[char]) -> bool {
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
    use super::ActivationField as F;
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

    fn act(token: &str, value: f32, token_id: Option<u32>) -> TokenActivation {
        TokenActivation {
            doc: 3,
            pos: 7,
            value,
            token: token.into(),
            token_id,
        }
    }

    #[test]
    fn fields_comparisons_and_logic() {
        let a = act(" Bridge", 2.6, None);
        let yes = |f: ActivationFilter| assert!(f.compile().unwrap().accepts(&a), "{f:?}");
        let no = |f: ActivationFilter| assert!(!f.compile().unwrap().accepts(&a), "{f:?}");
        // 2.6 as float32 is not 2.6 as float64: the literal is rounded like the stored value.
        yes(ActivationFilter::compare(F::Value, Comparison::Eq, 2.6));
        no(ActivationFilter::compare(F::Value, Comparison::Gt, 2.6));
        yes(ActivationFilter::compare(F::Doc, Comparison::Le, 3u32));
        no(ActivationFilter::compare(F::Pos, Comparison::Ne, 7u32));
        yes(ActivationFilter::test(F::Pos, Test::Between(7.0, 7.0)));
        yes(ActivationFilter::test(
            F::Token,
            Test::Like("%bri_ge".into()),
        ));
        yes(ActivationFilter::test(
            F::Token,
            Test::Contains("RID".into()),
        ));
        no(ActivationFilter::compare(
            F::Token,
            Comparison::Eq,
            " bridge",
        ));
        yes(ActivationFilter::test(
            F::Token,
            Test::In(vec!["x".into(), " Bridge".into()]),
        ));
        // No token id: no test of it holds, and its negation does.
        no(ActivationFilter::compare(F::TokenId, Comparison::Ge, 0u32));
        yes(ActivationFilter::not(ActivationFilter::compare(
            F::TokenId,
            Comparison::Ge,
            0u32,
        )));
        yes(ActivationFilter::and(vec![]));
        no(ActivationFilter::or(vec![]));
        yes(ActivationFilter::or(vec![
            ActivationFilter::SpecialToken,
            ActivationFilter::compare(F::Doc, Comparison::Eq, 3u32),
        ]));
        assert!(ActivationFilter::SpecialToken
            .compile()
            .unwrap()
            .accepts(&act("[CLS]", 1.0, Some(101))));
    }

    #[test]
    fn mistyped_tests_are_refused() {
        for (f, want) in [
            (
                ActivationFilter::compare(F::Token, Comparison::Eq, 1.0),
                "'token' is text",
            ),
            (
                ActivationFilter::compare(F::Value, Comparison::Eq, "x"),
                "'value' is a number",
            ),
            (
                ActivationFilter::test(F::Doc, Test::Like("a%".into())),
                "need a text field",
            ),
            (
                ActivationFilter::test(F::Token, Test::Between(1.0, 2.0)),
                "BETWEEN needs a number",
            ),
            (
                ActivationFilter::not(ActivationFilter::compare(F::Pos, Comparison::Lt, f64::NAN)),
                "NaN",
            ),
        ] {
            let e = f.validate().unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }
}
