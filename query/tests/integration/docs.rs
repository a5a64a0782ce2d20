//! docs/QUERY.md cannot drift: every ```sdq block is run (in order, in one session, against the
//! fixtures store) and its output must equal the ```text block that follows it.
//!
//! Blocks opened with ```sdq shared need ../shared/data (vocabulary and the capital-dallas graph,
//! ingested as `dallas`); they are skipped when it is absent. `SAEDB_BLESS=1` rewrites the text blocks.

use crate::common;

use saedb_engine::NoProgress;
use saedb_query::parser::{parse_statement, split_statements};
use saedb_query::{render, Format, Session};

struct Example {
    shared: bool,
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
        if l == "```sdq" || l == "```sdq shared" {
            let shared = l.ends_with("shared");
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
                shared,
                code,
                output,
            });
        } else {
            i += 1;
        }
    }
    out
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
    let mut session = Session::new(store);
    let bless = std::env::var_os("SAEDB_BLESS").is_some();
    let mut new_doc = String::new();
    let mut last = 0;
    let mut failures = Vec::new();
    for ex in &exs {
        if ex.shared && !shared {
            eprintln!("skipping a shared-data example: ../shared/data is absent");
            continue;
        }
        let got = run(&mut session, &ex.code);
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
