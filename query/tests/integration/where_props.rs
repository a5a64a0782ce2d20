//! Random WHERE expressions: TOP k with the filter equals brute force over every activation of
//! the feature, with the expression evaluated by an independent reference evaluator here.

use crate::common;

use proptest::prelude::*;
use saedb_engine::{FeatureRef, Store, TokenActivation};
use saedb_query::{Session, Value};
use std::sync::{Arc, OnceLock};

#[derive(Debug, Clone)]
enum E {
    Num(&'static str, &'static str, f64),
    Between(&'static str, f64, f64, bool),
    TokEq(String, bool),
    TokIn(Vec<String>, bool),
    Like(String),
    And(Box<E>, Box<E>),
    Or(Box<E>, Box<E>),
    Not(Box<E>),
}

const TOKENS: &[&str] = &[".", "the", ",", "is", "of", "a", "to", "(", "operand", "zz"];

fn field(a: &TokenActivation, f: &str) -> f64 {
    match f {
        "value" => f64::from(a.value),
        "doc" => f64::from(a.doc),
        _ => f64::from(a.pos),
    }
}

fn lit(f: &str, v: f64) -> f64 {
    if f == "value" {
        f64::from(v as f32)
    } else {
        v
    }
}

impl E {
    fn text(&self) -> String {
        match self {
            E::Num(f, op, v) => format!("{f} {op} {v}"),
            E::Between(f, a, b, neg) => {
                format!("{f} {}BETWEEN {a} AND {b}", if *neg { "NOT " } else { "" })
            }
            E::TokEq(t, neg) => format!("token {} {t:?}", if *neg { "!=" } else { "=" }),
            E::TokIn(ts, neg) => format!(
                "token {}IN ({})",
                if *neg { "NOT " } else { "" },
                ts.iter()
                    .map(|t| format!("{t:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            E::Like(p) => format!("token LIKE {p:?}"),
            E::And(a, b) => format!("({} AND {})", a.text(), b.text()),
            E::Or(a, b) => format!("({} OR {})", a.text(), b.text()),
            E::Not(a) => format!("NOT {}", a.text()),
        }
    }

    fn eval(&self, a: &TokenActivation) -> bool {
        match self {
            E::Num(f, op, v) => {
                let (x, y) = (field(a, f), lit(f, *v));
                match *op {
                    "=" => x == y,
                    "!=" => x != y,
                    "<" => x < y,
                    "<=" => x <= y,
                    ">" => x > y,
                    _ => x >= y,
                }
            }
            E::Between(f, lo, hi, neg) => {
                let x = field(a, f);
                (lit(f, *lo) <= x && x <= lit(f, *hi)) != *neg
            }
            E::TokEq(t, neg) => (a.token == *t) != *neg,
            E::TokIn(ts, neg) => ts.contains(&a.token) != *neg,
            E::Like(p) => {
                // Patterns generated here are "x%", "%x" or "%x%".
                let t = a.token.to_lowercase();
                let core = p.trim_matches('%').to_lowercase();
                match (p.starts_with('%'), p.ends_with('%')) {
                    (true, true) => t.contains(&core),
                    (true, false) => t.ends_with(&core),
                    (false, true) => t.starts_with(&core),
                    (false, false) => t == core,
                }
            }
            E::And(x, y) => x.eval(a) && y.eval(a),
            E::Or(x, y) => x.eval(a) || y.eval(a),
            E::Not(x) => !x.eval(a),
        }
    }
}

fn leaf() -> impl Strategy<Value = E> {
    let tok = proptest::sample::select(TOKENS).prop_map(String::from);
    prop_oneof![
        (
            proptest::sample::select(vec!["value", "doc", "pos"]),
            proptest::sample::select(vec!["=", "!=", "<", "<=", ">", ">="]),
            0u32..60
        )
            .prop_map(|(f, op, v)| E::Num(
                f,
                op,
                if f == "value" {
                    f64::from(v) / 15.0
                } else {
                    f64::from(v)
                }
            )),
        (
            proptest::sample::select(vec!["value", "doc", "pos"]),
            0u32..40,
            0u32..40,
            any::<bool>()
        )
            .prop_map(|(f, a, b, neg)| {
                let s = if f == "value" { 10.0 } else { 1.0 };
                E::Between(f, f64::from(a.min(b)) / s, f64::from(a.max(b)) / s, neg)
            }),
        (tok.clone(), any::<bool>()).prop_map(|(t, n)| E::TokEq(t, n)),
        (proptest::collection::vec(tok, 1..4), any::<bool>()).prop_map(|(t, n)| E::TokIn(t, n)),
        (
            proptest::sample::select(vec!["o", "th", "e", "op", "."]),
            0..3usize
        )
            .prop_map(|(c, k)| E::Like(match k {
                0 => format!("{c}%"),
                1 => format!("%{c}"),
                _ => format!("%{c}%"),
            })),
    ]
}

fn expr() -> impl Strategy<Value = E> {
    leaf().prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| E::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| E::Or(Box::new(a), Box::new(b))),
            inner.prop_map(|a| E::Not(Box::new(a))),
        ]
    })
}

fn store() -> &'static (tempfile::TempDir, Arc<Store>, Vec<TokenActivation>) {
    static S: OnceLock<(tempfile::TempDir, Arc<Store>, Vec<TokenActivation>)> = OnceLock::new();
    S.get_or_init(|| {
        let (d, s) = common::fresh();
        let all = s.activations_of(&FeatureRef::new("L2", 150)).unwrap();
        (d, s, all)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    #[test]
    fn top_with_random_where_equals_brute_force(e in expr(), k in 1usize..30) {
        let (_, st, all) = store();
        let mut s = Session::new(st.clone());
        let q = format!("TOP {k} ACTIVATIONS OF L2/150 WHERE {};", e.text());
        let rs = s.execute(&q).map_err(|err| TestCaseError::fail(err.render(&q, "q")))?.pop().unwrap();
        let got: Vec<(u32, u32)> = (0..rs.rows.len())
            .map(|i| {
                let g = |c: &str| rs.get(i, c).and_then(Value::as_f64).unwrap() as u32;
                (g("doc"), g("pos"))
            })
            .collect();
        let mut want: Vec<&TokenActivation> = all.iter().filter(|a| e.eval(a)).collect();
        want.sort_by(|a, b| b.value.total_cmp(&a.value).then(a.doc.cmp(&b.doc)).then(a.pos.cmp(&b.pos)));
        let want: Vec<(u32, u32)> = want.iter().take(k).map(|a| (a.doc, a.pos)).collect();
        prop_assert_eq!(got, want, "{}", q);
    }
}
