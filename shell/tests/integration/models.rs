//! `saedb ingest model` and the live part of `saedb info`, on the tiny GPT-2 of
//! fixtures/tiny-models (its tokenizer.json written by the `tokenizers` library): the catalog
//! entry against the model's config.json, which dictionary runs live and why not, and bad input
//! refused in one line with the store unchanged.

use crate::common::*;
use std::path::{Path, PathBuf};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn tiny_gpt2() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/tiny-models/gpt2")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn ingest_model_registers_it_and_info_says_what_runs_live() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.saedb");
    ok(&[
        "ingest",
        "dictionary",
        s(&store),
        "--name",
        "L2",
        fixture("sae_L2").to_str().unwrap(),
        "--defer-index",
    ]);
    let table = ok(&["info", s(&store)]);
    assert!(table.contains("models       none"), "{table}");
    let out = ok(&[
        "ingest",
        "model",
        s(&store),
        "--name",
        "tiny",
        s(&tiny_gpt2()),
    ]);
    assert!(out.starts_with("ingested 1 model (model) from "), "{out}");
    let info = info_json(&store);
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tiny_gpt2().join("config.json")).unwrap())
            .unwrap();
    let m = &info["models"][0];
    assert_eq!(m["name"], "tiny", "{info}");
    assert_eq!(m["config"]["architecture"], "gpt2");
    assert_eq!(m["config"]["d_model"], cfg["n_embd"]);
    assert_eq!(m["config"]["n_layers"], cfg["n_layer"]);
    assert_eq!(m["config"]["max_positions"], cfg["n_positions"]);
    // minilm-mini's L2 reads 384 values a token: it cannot run on a 32-wide model.
    let live = &info["live"][0];
    assert_eq!(live["dictionary"], "L2");
    assert!(live["model"].is_null(), "{info}");
    let why = live["reason"].as_str().unwrap();
    assert!(
        why.contains("model 'tiny' is 32 wide but the dictionary's d_in is 384"),
        "{why}"
    );
    let table = ok(&["info", s(&store)]);
    assert!(table.contains("models       1\n"), "{table}");
    assert!(table.contains("| gpt2 "), "{table}");
    assert!(table.contains("not live     L2: "), "{table}");
}

#[test]
fn a_bad_model_is_one_line_naming_it_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.saedb");
    ok(&[
        "ingest",
        "model",
        s(&store),
        "--name",
        "tiny",
        s(&tiny_gpt2()),
    ]);
    let before = info_content(&store);
    // An architecture saedb does not run.
    let mamba = dir.path().join("mamba");
    copy_dir(&tiny_gpt2(), &mamba);
    std::fs::write(mamba.join("config.json"), r#"{"model_type": "mamba"}"#).unwrap();
    let err = fails(&["ingest", "model", s(&store), "--name", "m", s(&mamba)]);
    assert!(
        err.contains("unknown architecture 'mamba'") && err.contains("config.json"),
        "{err}"
    );
    // A tokenizer that is not there; a model that is not there; a file that is no model.
    let err = fails(&[
        "ingest",
        "model",
        s(&store),
        "--name",
        "m",
        s(&tiny_gpt2()),
        "--tokenizer",
        "/nonexistent/tokenizer.json",
    ]);
    assert!(err.contains("/nonexistent/tokenizer.json"), "{err}");
    let err = fails(&[
        "ingest",
        "model",
        s(&store),
        "--name",
        "m",
        "/nonexistent/m.gguf",
    ]);
    assert!(err.contains("/nonexistent/m.gguf"), "{err}");
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "hello").unwrap();
    let err = fails(&["ingest", "model", s(&store), "--name", "m", s(&notes)]);
    assert!(err.contains("notes.txt") && err.contains(".gguf"), "{err}");
    assert_eq!(
        info_content(&store),
        before,
        "a failed ingest changed the store"
    );
}
