//! WHERE: type-checked and compiled before any data is read. Over activations (TOP, SAMPLE) it
//! becomes the engine's declarative [`ActivationFilter`], evaluated as the engine scans; over the
//! rows of FEATURES AT it is evaluated here.

use super::{Exec, R};
use crate::ast::*;
use crate::error::{closest, ErrorKind};
use saedb_engine::filter::{
    like, ActivationField, ActivationFilter, Comparison, Literal as EngineLiteral,
    Test as EngineTest,
};

#[derive(Clone, Copy, PartialEq)]
pub(super) enum FieldType {
    /// A number (compared exactly as f64).
    Num,
    /// An f32 number: literals are rounded to f32 first, so `value = 2.6` matches a stored 2.6f32.
    F32,
    Str,
}

pub(super) const ACTIVATION_FIELDS: &[(&str, FieldType)] = &[
    ("token", FieldType::Str),
    ("value", FieldType::F32),
    ("doc", FieldType::Num),
    ("pos", FieldType::Num),
    ("token_id", FieldType::Num),
];
pub(super) const FEATURE_FIELDS: &[(&str, FieldType)] = &[
    ("dict", FieldType::Str),
    ("feature", FieldType::Num),
    ("value", FieldType::F32),
    ("label", FieldType::Str),
];

/// The value of a field for one row.
pub(super) enum FieldValue<'v> {
    Num(f64),
    Str(&'v str),
    Null,
}

pub(super) enum CTest {
    CmpNum(CmpOp, f64),
    CmpStr(CmpOp, String),
    Between(f64, f64),
    InNum(Vec<f64>),
    InStr(Vec<String>),
    Like(Vec<char>),
    Contains(String),
}

pub(super) enum CExpr {
    And(Vec<CExpr>),
    Or(Vec<CExpr>),
    Not(Box<CExpr>),
    Pred {
        field: usize,
        negated: bool,
        test: CTest,
    },
}

pub(super) fn compile(x: &Exec, e: &Expr, fields: &[(&str, FieldType)]) -> R<CExpr> {
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
    pub(super) fn eval<'v>(&self, get: &dyn Fn(usize) -> FieldValue<'v>) -> bool {
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
                    (FieldValue::Num(v), CTest::CmpNum(op, l)) => {
                        comparison(*op).holds(v.partial_cmp(l))
                    }
                    (FieldValue::Num(v), CTest::Between(a, b)) => *a <= v && v <= *b,
                    (FieldValue::Num(v), CTest::InNum(ls)) => ls.contains(&v),
                    (FieldValue::Str(s), CTest::CmpStr(op, l)) => {
                        comparison(*op).holds(Some(s.cmp(l.as_str())))
                    }
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

fn comparison(op: CmpOp) -> Comparison {
    match op {
        CmpOp::Eq => Comparison::Eq,
        CmpOp::Ne => Comparison::Ne,
        CmpOp::Lt => Comparison::Lt,
        CmpOp::Le => Comparison::Le,
        CmpOp::Gt => Comparison::Gt,
        CmpOp::Ge => Comparison::Ge,
    }
}

/// The engine's field for an index into [`ACTIVATION_FIELDS`].
fn activation_field(i: usize) -> ActivationField {
    match ACTIVATION_FIELDS[i].0 {
        "token" => ActivationField::Token,
        "value" => ActivationField::Value,
        "doc" => ActivationField::Doc,
        "pos" => ActivationField::Pos,
        _ => ActivationField::TokenId,
    }
}

/// A WHERE over [`ACTIVATION_FIELDS`], type-checked, as the engine's filter.
fn to_engine(e: CExpr) -> ActivationFilter {
    match e {
        CExpr::And(v) => ActivationFilter::and(v.into_iter().map(to_engine).collect()),
        CExpr::Or(v) => ActivationFilter::or(v.into_iter().map(to_engine).collect()),
        CExpr::Not(e) => ActivationFilter::not(to_engine(*e)),
        CExpr::Pred {
            field,
            negated,
            test,
        } => {
            let num = EngineLiteral::Number;
            let text = EngineLiteral::Text;
            let test = match test {
                CTest::CmpNum(op, v) => EngineTest::Compare(comparison(op), num(v)),
                CTest::CmpStr(op, s) => EngineTest::Compare(comparison(op), text(s)),
                CTest::Between(lo, hi) => EngineTest::Between(lo, hi),
                CTest::InNum(v) => EngineTest::In(v.into_iter().map(num).collect()),
                CTest::InStr(v) => EngineTest::In(v.into_iter().map(text).collect()),
                CTest::Like(p) => EngineTest::Like(p.into_iter().collect()),
                CTest::Contains(s) => EngineTest::Contains(s),
            };
            let pred = ActivationFilter::test(activation_field(field), test);
            if negated {
                ActivationFilter::not(pred)
            } else {
                pred
            }
        }
    }
}

impl Exec<'_> {
    /// The activation filter of TOP / SAMPLE: WHERE and EXCLUDE SPECIAL together.
    pub(super) fn activation_filter(
        &self,
        options: &ActivationOptions,
    ) -> R<Option<ActivationFilter>> {
        let expr = match &options.filter {
            Some(e) => Some(to_engine(compile(self, e, ACTIVATION_FIELDS)?)),
            None => None,
        };
        let special = options
            .exclude_special
            .then(|| ActivationFilter::not(ActivationFilter::SpecialToken));
        Ok(match (expr, special) {
            (None, None) => None,
            (Some(e), None) | (None, Some(e)) => Some(e),
            (Some(e), Some(s)) => Some(ActivationFilter::and(vec![s, e])),
        })
    }
}
