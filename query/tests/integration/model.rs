//! The statements that run text through a registered model — FEATURES OF TEXT, TOP FEATURES OF
//! TEXT, ACTIVATION OF … ON TEXT, GENERATE — on the tiny GPT-2 of fixtures/tiny-models with a
//! dictionary given from memory: the JSON rows have exactly the fields, per-token limits
//! and rankings equal a brute-force pass over the engine's codes, fractions of the maximum use the
//! activations the test stored, and bad input points at the text.

use crate::common;
use saedb_engine::model::GenerateOptions;
use saedb_engine::{
    Architecture, DictionaryWeights, Document, FeatureRef, IndexBuild, NoProgress,
    SparseActivations, Steering, Store,
};
use saedb_query::ast::{EditKind, Statement};
use saedb_query::parser::{parse_statement, split_statements};
use saedb_query::render::render_json;
use saedb_query::{render, Format, ResultSet, Session};
use serde_json::Value;
use std::sync::Arc;

/// Deterministic numbers in [-1, 1) (the test's own generator).
fn numbers(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// A store with the tiny GPT-2 registered as `tiny`, the TopK dictionary `T1` (32 → 64, k 4)
/// reading after block 1, and two stored activations of T1/9 (maximum 2.5).
fn tiny_store() -> (tempfile::TempDir, Arc<Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create_or_open(dir.path()).unwrap();
    let (w_enc, b_enc) = (numbers(1, 32 * 64), numbers(2, 64));
    let (w_dec, b_dec) = (numbers(3, 64 * 32), numbers(4, 32));
    let w = DictionaryWeights {
        architecture: Architecture::TopK,
        d_in: 32,
        d_sae: 64,
        w_enc: &w_enc,
        b_enc: &b_enc,
        w_dec: &w_dec,
        b_dec: &b_dec,
        k: Some(4),
        threshold: None,
        apply_b_dec_to_input: true,
        hook: Some("blocks.1.hook_resid_post"),
        layer: None,
        model: None,
    };
    store
        .ingest_dictionary_weights("T1", "T1", &w, IndexBuild::OnFirstUse, &NoProgress)
        .unwrap();
    store
        .ingest_model(
            "tiny",
            &common::root().join("fixtures/tiny-models/gpt2"),
            None,
            &NoProgress,
        )
        .unwrap();
    store
        .ingest_documents(
            "doc",
            &[Document {
                doc: 0,
                tokens: vec!["w3".into(), "w4".into()],
                token_ids: vec![3, 4],
                text: None,
                source: None,
            }],
            &NoProgress,
        )
        .unwrap();
    let sparse = SparseActivations {
        doc: &[0, 0],
        pos: &[0, 1],
        feature: &[9, 9],
        value: &[1.0, 2.5],
    };
    store
        .ingest_sparse("T1", "acts", &sparse, &NoProgress)
        .unwrap();
    (dir, Arc::new(store))
}

fn one(s: &mut Session, q: &str) -> ResultSet {
    s.execute(q)
        .unwrap_or_else(|e| panic!("{q}: {}", e.render(q, "q")))
        .pop()
        .unwrap()
}

fn json_rows(rs: &ResultSet) -> Vec<serde_json::Map<String, Value>> {
    let v: Value = serde_json::from_str(&render_json(rs)).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_object().unwrap().clone())
        .collect()
}

fn keys(r: &serde_json::Map<String, Value>) -> Vec<&str> {
    let mut k: Vec<&str> = r.keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

fn error(s: &mut Session, q: &str) -> String {
    match s.execute(q) {
        Ok(_) => panic!("{q} should fail"),
        Err(e) => e.render(q, "q"),
    }
}

#[test]
fn the_statements_parse_into_their_clauses() {
    let q = "GENERATE 'Once' MAX TOKENS 5 CLAMP L9/12 TO 10 TIMES MAX STEER L9/3 BY -2.5 CLAMP L9/7 TO 0 TEMPERATURE 0.7 SEED 3";
    let range = split_statements(q).remove(0);
    let Statement::Generate {
        prompt,
        max_tokens,
        edits,
        temperature,
        seed,
    } = parse_statement(q, range).unwrap().statement
    else {
        panic!("not GENERATE")
    };
    assert_eq!(prompt.value, "Once");
    assert_eq!(max_tokens.unwrap().value, 5);
    let kinds: Vec<(EditKind, f64)> = edits.iter().map(|e| (e.kind, e.value.value)).collect();
    assert_eq!(
        kinds,
        [
            (EditKind::Clamp { times_max: true }, 10.0),
            (EditKind::Steer, -2.5),
            (EditKind::Clamp { times_max: false }, 0.0)
        ]
    );
    assert_eq!(temperature.unwrap().value, 0.7);
    assert_eq!(seed.unwrap().value, 3);
    for (q, top) in [
        ("FEATURES OF TEXT \"a b\" IN L9 LIMIT 3", false),
        ("top features of text 'a b' limit 3 in L9", true),
    ] {
        let range = split_statements(q).remove(0);
        match parse_statement(q, range).unwrap().statement {
            Statement::FeaturesOfText {
                top: t,
                text,
                in_dict,
                limit,
            } => {
                assert_eq!((t, text.value.as_str()), (top, "a b"));
                assert_eq!(in_dict.unwrap().value, "L9");
                assert_eq!(limit.unwrap().value, 3);
            }
            s => panic!("{q}: {s:?}"),
        }
    }
    for (q, what) in [
        (
            "GENERATE 'a' MAX TOKENS 2 MAX TOKENS 3",
            "MAX TOKENS is given twice",
        ),
        (
            "FEATURES OF TEXT 'a' LIMIT 1 LIMIT 2",
            "LIMIT is given twice",
        ),
        ("GENERATE 'a' SEED 1 SEED 2", "SEED is given twice"),
    ] {
        let range = split_statements(q).remove(0);
        let e = parse_statement(q, range).unwrap_err().render(q, "q");
        assert!(e.contains(what), "{q}: {e}");
    }
}

#[test]
fn features_of_text_rows_are_each_tokens_strongest_features() {
    let (_d, store) = tiny_store();
    let mut s = Session::new(store.clone());
    let text = "w5 w17 w99 w3";
    let want = store.text_features("T1", text).unwrap();
    let rs = one(&mut s, &format!("FEATURES OF TEXT '{text}' IN T1 LIMIT 2"));
    let rows = json_rows(&rs);
    assert_eq!(
        keys(&rows[0]),
        ["feature", "label", "pos", "token", "token_id", "value"]
    );
    let mut expected = Vec::new();
    for t in &want {
        for (f, v) in t.features.iter().take(2) {
            expected.push((t.pos, t.token.clone(), t.token_id, format!("T1/{f}"), *v));
        }
    }
    let got: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r["pos"].as_u64().unwrap() as u32,
                r["token"].as_str().unwrap().to_string(),
                r["token_id"].as_u64().unwrap() as u32,
                r["feature"].as_str().unwrap().to_string(),
                r["value"].as_f64().unwrap() as f32,
            )
        })
        .collect();
    assert_eq!(got, expected);
    assert!(expected.len() > want.len(), "more than one feature a token");
    // USE chooses the dictionary; the default LIMIT is 10 a token (k is 4 here: all of them).
    one(&mut s, "USE T1");
    let all = one(&mut s, &format!("FEATURES OF TEXT '{text}'"));
    let n: usize = want.iter().map(|t| t.features.len()).sum();
    assert_eq!(all.rows.len(), n);
}

#[test]
fn top_features_of_text_rank_features_by_their_maximum_over_the_text() {
    let (_d, store) = tiny_store();
    let mut s = Session::new(store.clone());
    let text = "w5 w17 w99 w3 w8 w8";
    let tokens = store.text_features("T1", text).unwrap();
    // Brute force: each feature's maximum and the first position it reaches it.
    let mut best: Vec<(u32, f32, u32)> = Vec::new();
    for t in &tokens {
        for &(f, v) in &t.features {
            match best.iter_mut().find(|b| b.0 == f) {
                Some(b) if v > b.1 => *b = (f, v, t.pos),
                Some(_) => {}
                None => best.push((f, v, t.pos)),
            }
        }
    }
    best.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let rs = one(
        &mut s,
        &format!("TOP FEATURES OF TEXT '{text}' IN T1 LIMIT 5"),
    );
    let rows = json_rows(&rs);
    assert_eq!(keys(&rows[0]), ["feature", "label", "max", "pos", "token"]);
    assert_eq!(rows.len(), 5.min(best.len()));
    for (r, b) in rows.iter().zip(&best) {
        assert_eq!(r["feature"], format!("T1/{}", b.0));
        assert_eq!(r["max"].as_f64().unwrap() as f32, b.1);
        assert_eq!(r["pos"].as_u64().unwrap() as u32, b.2);
        assert_eq!(r["token"], tokens[b.2 as usize].token.as_str());
    }
}

#[test]
fn activation_on_text_gives_the_fraction_of_the_stored_maximum_and_draws_the_text() {
    let (_d, store) = tiny_store();
    let mut s = Session::new(store.clone());
    let tokens = store.text_features("T1", "w5 w17 w99 w3 w8").unwrap();
    // A feature that fires somewhere in this text, and T1/9 whose stored maximum is 2.5.
    let fired = tokens[1].features[0].0;
    for (f, max) in [(9u32, Some(2.5f64)), (fired, None)] {
        let rs = one(
            &mut s,
            &format!("ACTIVATION OF T1/{f} ON TEXT 'w5 w17 w99 w3 w8'"),
        );
        let rows = json_rows(&rs);
        assert_eq!(rows.len(), tokens.len());
        assert_eq!(keys(&rows[0]), ["fraction_of_max", "pos", "token", "value"]);
        for (r, t) in rows.iter().zip(&tokens) {
            let v = t.features.iter().find(|c| c.0 == f).map_or(0.0, |c| c.1) as f64;
            assert_eq!(r["value"].as_f64().unwrap() as f32, v as f32);
            match (f, max) {
                (9, Some(m)) => {
                    let got = r["fraction_of_max"].as_f64().unwrap();
                    assert!((got - v / m).abs() < 1e-6, "{got} vs {}", v / m);
                }
                _ if f != 9 => {
                    // No stored activations of it (unless it is 9): no fraction.
                    assert!(r["fraction_of_max"].is_null(), "{r:?}");
                }
                _ => {}
            }
        }
        let table = render(&rs, Format::Table);
        if f == fired {
            assert!(table.contains("store holds no activations"), "{table}");
            let marked = format!("[{} ", tokens[1].token);
            assert!(table.contains(&marked), "the text line marks it:\n{table}");
        }
    }
}

#[test]
fn generate_gives_the_default_then_the_intervened_run() {
    let (_d, store) = tiny_store();
    let mut s = Session::new(store.clone());
    let rs = one(
        &mut s,
        "GENERATE 'w10 w20' MAX TOKENS 5 CLAMP T1/9 TO 3 TIMES MAX STEER T1/2 BY -1.5",
    );
    let rows = json_rows(&rs);
    assert_eq!(rows.len(), 2);
    assert_eq!(keys(&rows[0]), ["logprobs", "run", "text", "token_ids"]);
    assert_eq!(
        (rows[0]["run"].as_str(), rows[1]["run"].as_str()),
        (Some("default"), Some("intervened"))
    );
    let opts = GenerateOptions {
        max_new_tokens: 5,
        ..GenerateOptions::default()
    };
    let want = store
        .generate(
            "w10 w20",
            &[
                Steering::Clamp {
                    feature: FeatureRef::new("T1", 9),
                    value: 3.0,
                    times_max: true,
                },
                Steering::Steer {
                    feature: FeatureRef::new("T1", 2),
                    alpha: -1.5,
                },
            ],
            &opts,
        )
        .unwrap();
    for (r, w) in rows.iter().zip(&want) {
        let ids: Vec<u32> = r["token_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(ids, w.token_ids);
        assert_eq!(r["text"], w.text.as_str());
        let lp: Vec<f32> = r["logprobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(lp, w.logprobs);
    }
    // Sampling is reproducible with a seed; no edits, one run.
    let q = "GENERATE 'w10 w20' MAX TOKENS 6 TEMPERATURE 1.5 SEED 7";
    assert_eq!(render_json(&one(&mut s, q)), render_json(&one(&mut s, q)));
    assert_eq!(one(&mut s, q).rows.len(), 1);
}

#[test]
fn bad_input_points_at_the_text() {
    let (_d, store) = tiny_store();
    let mut s = Session::new(store);
    for (q, what) in [
        (
            "FEATURES OF TEXT 'w5'",
            "which dictionary should read the text?",
        ),
        ("FEATURES OF TEXT '' IN T1", "empty text"),
        ("GENERATE ''", "empty prompt"),
        ("GENERATE 'w5' MAX TOKENS 0", "MAX TOKENS 0 is out of range"),
        ("GENERATE 'w5' TEMPERATURE -1", "TEMPERATURE -1 is negative"),
        (
            "GENERATE 'w5' CLAMP T1/64 TO 1",
            "feature 64 is out of range",
        ),
        (
            "GENERATE 'w5' CLAMP T1/3 TO 1 TIMES MAX",
            "TIMES MAX needs the stored maximum of T1/3",
        ),
        (
            "GENERATE 'w5' MAX TOKENS 80",
            "exceed the model's context of 64 tokens",
        ),
        ("ACTIVATION OF T9/1 ON TEXT 'w5'", "unknown dictionary 'T9'"),
    ] {
        let e = error(&mut s, q);
        assert!(e.contains(what), "{q}:\n{e}");
        assert!(!e.contains("panicked"), "{e}");
    }
}
