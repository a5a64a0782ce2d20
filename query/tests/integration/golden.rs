//! Golden tests: every `fixtures/queries/*.sdq` script runs against a fresh store built from
//! fixtures/minilm-mini, and its output must equal `*.expected` byte for byte.
//!
//! Output of a script: for each statement, its text with every line prefixed by `> `, then its
//! result (or its error, rendered with the script's line:column), then a blank line. Unlike
//! `Session::execute`, the runner goes on after an error, so one script covers many error classes.
//!
//! Directives are comments between statements:
//! - `-- format: table|json|csv` renders the following statements in that format;
//! - `-- requires: vocab` (anywhere) ingests the shared vocabulary matrix for TOKEN EFFECTS, and
//!   skips the script when ../shared/data/minilm-dev is absent;
//! - `-- requires: graphs` ingests ../shared/data/attribution-graphs/capital-dallas.json as graph
//!   `dallas`, and skips the script when it is absent.
//!
//! `SAEDB_BLESS=1 cargo test -p saedb-query --test integration golden` rewrites the expected files; every
//! change must then be checked by eye (see fixtures/queries/README.md).

use crate::common;

use saedb_engine::NoProgress;
use saedb_query::parser::{parse_statement, split_statements};
use saedb_query::{render, Format, Session};
use std::path::Path;

/// Runs a script, producing its golden output.
pub fn run_script(session: &mut Session, script: &str, origin: &str) -> String {
    let mut out = String::new();
    let mut format = Format::Table;
    let mut prev_end = 0;
    for range in split_statements(script) {
        for line in script[prev_end..range.start].lines() {
            if let Some(f) = line.trim().strip_prefix("-- format:") {
                format = f.trim().parse().expect("format directive");
            }
        }
        prev_end = range.end;
        for line in script[range.clone()].lines() {
            out.push_str("> ");
            out.push_str(line);
            out.push('\n');
        }
        let result = parse_statement(script, range)
            .and_then(|stmt| session.execute_statement(script, &stmt));
        match result {
            Ok(rs) => out.push_str(&render(&rs, format)),
            Err(e) => out.push_str(&e.render(script, origin)),
        }
        out.push('\n');
    }
    out
}

#[test]
fn golden_scripts() {
    let dir = common::root().join("fixtures/queries");
    let bless = std::env::var_os("SAEDB_BLESS").is_some();
    let mut scripts: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures/queries")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sdq"))
        .collect();
    scripts.sort();
    assert!(!scripts.is_empty());
    let mut failures = Vec::new();
    for path in &scripts {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let script = std::fs::read_to_string(path).unwrap();
        let (_tmp, store) = common::fresh();
        if script.contains("-- requires: vocab") {
            let Some((w, v)) = common::shared_vocab() else {
                eprintln!("skipping {name}: ../shared/data/minilm-dev is absent");
                continue;
            };
            store
                .ingest_vocab(&w, "embeddings.word_embeddings.weight", &v, &NoProgress)
                .expect("ingest vocab");
        }
        if script.contains("-- requires: graphs") {
            let Some(g) = common::shared_graph("capital-dallas.json") else {
                eprintln!("skipping {name}: ../shared/data/attribution-graphs is absent");
                continue;
            };
            store
                .ingest_graph("dallas", &g, &NoProgress)
                .expect("ingest graph");
        }
        let mut session = Session::new(store);
        let got = run_script(&mut session, &script, &name);
        let expected_path = path.with_extension("expected");
        if bless {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got != expected {
            let actual = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.actual"));
            std::fs::write(&actual, &got).unwrap();
            failures.push(format!(
                "{name}: output differs from {} (actual: {})",
                expected_path.display(),
                actual.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
