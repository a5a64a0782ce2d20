//! Executor correctness against brute force over the engine's raw data.

mod common;

use saedb_engine::{FeatureRef, TokenActivation};
use saedb_query::{Session, Value};

fn rows_of(s: &mut Session, q: &str) -> Vec<(u32, u32, f64)> {
    let rs = s
        .execute(q)
        .unwrap_or_else(|e| panic!("{q}: {}", e.render(q, "q")))
        .pop()
        .unwrap();
    (0..rs.rows.len())
        .map(|i| {
            let get = |c: &str| rs.get(i, c).and_then(Value::as_f64).unwrap();
            (get("doc") as u32, get("pos") as u32, get("value"))
        })
        .collect()
}

fn brute(
    all: &[TokenActivation],
    k: usize,
    keep: impl Fn(&TokenActivation) -> bool,
) -> Vec<(u32, u32, f64)> {
    let mut v: Vec<&TokenActivation> = all.iter().filter(|a| keep(a)).collect();
    v.sort_by(|a, b| {
        b.value
            .total_cmp(&a.value)
            .then(a.doc.cmp(&b.doc))
            .then(a.pos.cmp(&b.pos))
    });
    v.into_iter()
        .take(k)
        .map(|a| (a.doc, a.pos, Value::from_f32(a.value).as_f64().unwrap()))
        .collect()
}

#[test]
fn top_with_filters_equals_brute_force() {
    let (_d, store) = common::fresh();
    let mut s = Session::new(store.clone());
    for index in [7u32, 150, 3, 451] {
        let f = FeatureRef::new("L2", index);
        let all = store.activations_of(&f).unwrap();
        assert!(!all.is_empty());
        let q = |w: &str| format!("TOP 7 ACTIVATIONS OF L2/{index} {w};");
        assert_eq!(
            rows_of(&mut s, &q("")),
            brute(&all, 7, |_| true),
            "L2/{index} unfiltered"
        );
        assert_eq!(
            rows_of(&mut s, &q("WHERE value > 1.5")),
            brute(&all, 7, |a| a.value > 1.5)
        );
        assert_eq!(
            rows_of(&mut s, &q("WHERE doc BETWEEN 10 AND 30 OR pos < 5")),
            brute(&all, 7, |a| (10..=30).contains(&a.doc) || a.pos < 5)
        );
        assert_eq!(
            rows_of(
                &mut s,
                &q("WHERE NOT (token = \".\" OR token LIKE \"%s\") AND pos != 1")
            ),
            brute(&all, 7, |a| !(a.token == "."
                || a.token.to_lowercase().ends_with('s'))
                && a.pos != 1)
        );
        assert_eq!(
            rows_of(
                &mut s,
                &q("WHERE token IN (\"the\", \",\", \".\") EXCLUDE SPECIAL")
            ),
            brute(&all, 7, |a| ["the", ",", "."].contains(&a.token.as_str()))
        );
        assert_eq!(
            rows_of(&mut s, &q("WHERE token CONTAINS \"E\"")),
            brute(&all, 7, |a| a.token.to_lowercase().contains('e'))
        );
    }
}

#[test]
fn sample_picks_lie_in_their_quantile() {
    let (_d, store) = common::fresh();
    let mut s = Session::new(store.clone());
    let f = FeatureRef::new("L2", 150);
    let mut all: Vec<f64> = store
        .activations_of(&f)
        .unwrap()
        .iter()
        .map(|a| Value::from_f32(a.value).as_f64().unwrap())
        .collect();
    all.sort_by(f64::total_cmp);
    let n = all.len();
    assert!(n >= 40, "feature L2/150 has {n} activations");
    for (q, of) in [(1, 4), (2, 4), (4, 4), (7, 10), (10, 10)] {
        let got = rows_of(
            &mut s,
            &format!("SAMPLE 5 ACTIVATIONS OF L2/150 FROM QUANTILE {q} OF {of};"),
        );
        let (lo, hi) = ((q - 1) * n / of, q * n / of);
        assert_eq!(got.len(), 5.min(hi - lo));
        for (_, _, v) in &got {
            assert!(
                *v >= all[lo] && *v <= all[hi - 1],
                "quantile {q}/{of}: {v} not in [{}, {}]",
                all[lo],
                all[hi - 1]
            );
        }
        // Strongest first, and deterministic.
        assert!(got.windows(2).all(|w| w[0].2 >= w[1].2));
        assert_eq!(
            got,
            rows_of(
                &mut s,
                &format!("SAMPLE 5 ACTIVATIONS OF L2/150 FROM QUANTILE {q} OF {of};")
            )
        );
    }
}

#[test]
fn features_at_and_neighbours_match_the_engine() {
    let (_d, store) = common::fresh();
    let mut s = Session::new(store.clone());
    let rs = s
        .execute("FEATURES AT DOC 17 POS 5 WHERE value > 1.2;")
        .unwrap()
        .pop()
        .unwrap();
    let want: Vec<_> = store
        .features_at(17, 5, None)
        .unwrap()
        .into_iter()
        .filter(|a| a.value > 1.2)
        .collect();
    assert_eq!(rs.rows.len(), want.len());
    for (i, a) in want.iter().enumerate() {
        assert_eq!(rs.get(i, "dict").unwrap().as_str().unwrap(), a.feature.dict);
        assert_eq!(
            rs.get(i, "feature").unwrap().as_f64().unwrap() as u32,
            a.feature.index
        );
    }
    let rs = s
        .execute("NEIGHBOURS OF L2/9 IN L4 EXACT LIMIT 6;")
        .unwrap()
        .pop()
        .unwrap();
    let want = store
        .neighbours_exact(&FeatureRef::new("L2", 9), Some("L4"), 6)
        .unwrap();
    let got: Vec<u32> = (0..rs.rows.len())
        .map(|i| rs.get(i, "feature").unwrap().as_f64().unwrap() as u32)
        .collect();
    assert_eq!(
        got,
        want.iter().map(|n| n.feature.index).collect::<Vec<_>>()
    );
}

#[test]
fn execute_stops_at_the_first_error_and_use_persists() {
    let (_d, store) = common::fresh();
    let mut s = Session::new(store);
    let src = "USE L4;\nDESCRIBE 7;\nDESCRIBE L9/1;\nSHOW DICTIONARIES;";
    let mut seen = 0;
    let err = s.execute_with(src, |_| seen += 1).unwrap_err();
    assert_eq!(seen, 2);
    assert_eq!((err.line, err.column), (3, 10));
    assert_eq!(s.current_dictionary(), Some("L4"));
    let rs = s.execute("describe 7").unwrap();
    assert_eq!(rs[0].get(0, "dict"), Some(&Value::Str("L4".into())));
}

#[test]
fn approximate_neighbours_recall() {
    let (_d, store) = common::fresh();
    let mut s = Session::new(store.clone());
    let (mut hit, mut total, mut same_top3) = (0, 0, 0);
    for index in 0..100u32 {
        let q = format!("NEIGHBOURS OF L2/{index} LIMIT 10;");
        let rs = s.execute(&q).unwrap().pop().unwrap();
        let got: Vec<u32> = (0..rs.rows.len())
            .map(|i| rs.get(i, "feature").unwrap().as_f64().unwrap() as u32)
            .collect();
        let want: Vec<u32> = store
            .neighbours_exact(&FeatureRef::new("L2", index), None, 10)
            .unwrap()
            .iter()
            .map(|n| n.feature.index)
            .collect();
        hit += got.iter().filter(|g| want.contains(g)).count();
        total += want.len();
        same_top3 += usize::from(got.get(..3) == want.get(..3));
    }
    eprintln!("recall@10 {hit}/{total}, identical top 3: {same_top3}/100");
    assert!(hit as f64 >= 0.95 * total as f64, "recall@10 {hit}/{total}");
}
