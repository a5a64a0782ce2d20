//! The subcommands: ingest and info here; query/run in `statements`, shell in `repl`, demo in `demo`.

use crate::cli::{Command, InfoFormat, Ingest};
use crate::output::{self, columns, human_bytes, thousands};
use crate::progress::Bars;
use anyhow::{anyhow, bail, Result};
use saedb_engine::{IndexBuild, IngestReport, OpenOptions, Store, StoreInfo};
use std::path::Path;

pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Ingest(ingest) => run_ingest(ingest),
        Command::Info { store, format } => {
            let store = open_existing_read_only(&store)?;
            let info = store.info().map_err(|e| anyhow!("{e}"))?;
            match format {
                InfoFormat::Json => output::println(&serde_json::to_string_pretty(&info)?),
                InfoFormat::Table => output::print(&render_info(&info)),
            }
            Ok(())
        }
        Command::Check {
            store,
            repair,
            format,
        } => {
            let store = if repair {
                open_existing(&store)?
            } else {
                open_existing_read_only(&store)?
            };
            let report = if repair {
                store.repair()
            } else {
                store.check()
            }
            .map_err(|e| anyhow!("{e}"))?;
            match format {
                InfoFormat::Json => output::println(&serde_json::to_string_pretty(&report)?),
                InfoFormat::Table => output::print(&render_check(&report)),
            }
            if report.is_ok() {
                Ok(())
            } else {
                bail!(
                    "{}: {} problem(s) found{}",
                    store.path().display(),
                    report.problems.len(),
                    if repair {
                        ""
                    } else {
                        " (saedb check --repair rebuilds derived data)"
                    }
                )
            }
        }
        Command::Query {
            store,
            statement,
            output,
        } => {
            let store = open_existing(&store)?;
            crate::statements::run_query(store, &statement, &output)
        }
        Command::Run {
            store,
            script,
            output,
        } => {
            let store = open_existing(&store)?;
            crate::statements::run_script(store, &script, &output)
        }
        Command::Shell { store, output } => {
            let store = open_existing(&store)?;
            crate::repl::run(store, &output)
        }
        Command::Demo {
            store,
            no_shell,
            fixtures,
        } => crate::demo::run(store.as_deref(), no_shell, fixtures.as_deref()),
    }
}

/// Opens a store that must exist already (query, run, shell, info). A missing store is a one-line
/// error naming the path (the engine refuses it), never an empty store created by accident.
pub fn open_existing(path: &Path) -> Result<Store> {
    // A bar only if an older store's format is upgraded on the way (about 4 s at 120M activations).
    let bars = Bars::for_stderr();
    match OpenOptions::new().progress(&bars).open(path) {
        Ok(s) => Ok(s),
        // Another process (a shell, an ingest) holds the store: read what it has committed.
        Err(e @ saedb_engine::Error::Locked { .. }) => match Store::open_read_only(path) {
            Ok(s) => {
                eprintln!(
                    "note: {} is in use by another process; opened read-only (LABEL will fail)",
                    path.display()
                );
                Ok(s)
            }
            Err(_) => Err(store_error(path, e)),
        },
        Err(e) => Err(store_error(path, e)),
    }
}

/// Opens an existing store for reading only (`info`): works while another process writes it.
pub fn open_existing_read_only(path: &Path) -> Result<Store> {
    Store::open_read_only(path).map_err(|e| naming(path, e))
}

/// An error opening a store, as one line naming it.
pub fn store_error(path: &Path, e: saedb_engine::Error) -> anyhow::Error {
    naming(path, e)
}

/// An engine error as a one-line message that names `path` (prefixing it when the engine's
/// message does not already).
pub fn naming(path: &Path, e: impl std::fmt::Display) -> anyhow::Error {
    let msg = crate::one_line(&e.to_string());
    let shown = path.display().to_string();
    let base = path
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default();
    if msg.contains(&shown) || (!base.is_empty() && msg.contains(&base)) {
        anyhow!("{msg}")
    } else {
        anyhow!("{shown}: {msg}")
    }
}

fn must_exist(path: &Path) -> Result<()> {
    if !path.exists() {
        bail!("{}: no such file or directory", path.display());
    }
    Ok(())
}

fn run_ingest(ingest: Ingest) -> Result<()> {
    // Check the inputs before touching the store, so that a typo never leaves an empty store behind.
    let (store_path, input) = match &ingest {
        Ingest::Dictionary { store, path, .. } => (store, path),
        Ingest::Tokens { store, file } => (store, file),
        Ingest::Latents { store, file, .. } => (store, file),
        Ingest::Activations { store, file, .. } => (store, file),
        Ingest::Vocab {
            store, file, vocab, ..
        } => {
            must_exist(vocab)?;
            (store, file)
        }
        Ingest::Graph { store, file, .. } => (store, file),
    };
    must_exist(input)?;
    let bars = Bars::for_stderr();
    let store = OpenOptions::new()
        .create(true)
        .progress(&bars)
        .open(store_path)
        .map_err(|e| store_error(store_path, e))?;
    let result = match &ingest {
        Ingest::Dictionary {
            name,
            path,
            defer_index,
            ..
        } => {
            let index = if *defer_index {
                IndexBuild::OnFirstUse
            } else {
                IndexBuild::AtIngest
            };
            store.ingest_dictionary_with(name, path, index, &bars)
        }
        Ingest::Tokens { file, .. } => store.ingest_tokens(file, &bars),
        Ingest::Latents {
            dictionary, file, ..
        } => store.ingest_latents(dictionary, file, &bars),
        Ingest::Activations {
            dictionary, file, ..
        } => store.ingest_activations(dictionary, file, &bars),
        Ingest::Vocab {
            file,
            tensor,
            vocab,
            ..
        } => store.ingest_vocab(file, tensor, vocab, &bars),
        Ingest::Graph { name, file, .. } => store.ingest_graph(name, file, &bars),
    };
    bars.abandon();
    let report = result.map_err(|e| naming(input, e))?;
    output::println(&summary(&report));
    Ok(())
}

/// The one-line summary of a finished ingest.
pub fn summary(r: &IngestReport) -> String {
    format!(
        "ingested {} {} ({}) from {} in {:.2} s",
        thousands(r.items),
        r.unit,
        r.kind,
        r.path,
        r.seconds
    )
}

/// `saedb info` as aligned text.
pub fn render_info(info: &StoreInfo) -> String {
    let mut s = String::new();
    let kv = |s: &mut String, k: &str, v: String| s.push_str(&format!("{k:<13}{v}\n"));
    kv(&mut s, "store", info.path.clone());
    kv(
        &mut s,
        "format",
        format!(
            "version {}, {} on disk",
            info.format_version,
            human_bytes(info.bytes_on_disk)
        ),
    );
    kv(&mut s, "documents", thousands(info.documents));
    kv(&mut s, "tokens", thousands(info.tokens));
    kv(
        &mut s,
        "vocabulary",
        match &info.vocabulary {
            None => "none (ingest one with `saedb ingest vocab` for TOKEN EFFECTS)".to_string(),
            Some(v) => format!(
                "{} [{} x {}] from {}",
                v.tensor,
                thousands(v.n_vocab as u64),
                v.d_model,
                v.source_path
            ),
        },
    );
    kv(
        &mut s,
        "graphs",
        if info.graphs.is_empty() {
            "none".to_string()
        } else {
            info.graphs.join(", ")
        },
    );
    kv(&mut s, "labels", thousands(info.labels));
    if info.dictionaries.is_empty() {
        kv(&mut s, "dictionaries", "none".to_string());
    } else {
        s.push_str(&format!("dictionaries {}\n", info.dictionaries.len()));
        let rows: Vec<Vec<String>> = info
            .dictionaries
            .iter()
            .map(|d| {
                vec![
                    d.name.clone(),
                    d.d_in.to_string(),
                    thousands(d.d_sae as u64),
                    d.architecture.to_string(),
                    d.k.map(|k| k.to_string()).unwrap_or_else(|| "-".into()),
                    d.layer.map(|l| l.to_string()).unwrap_or_else(|| "-".into()),
                    d.hook.clone().unwrap_or_else(|| "-".into()),
                    thousands(d.tokens_encoded),
                    thousands(d.nonzeros),
                    d.model.clone().unwrap_or_else(|| "-".into()),
                    d.source_format.clone(),
                ]
            })
            .collect();
        s.push_str(&columns(
            &[
                "name", "d_in", "d_sae", "arch", "k", "layer", "hook", "tokens", "nonzeros",
                "model", "format",
            ],
            &rows,
            &[
                false, true, true, false, true, true, false, true, true, false, false,
            ],
        ));
    }
    s
}

/// The check report as a short summary: what was checked, then every problem and note.
fn render_check(r: &saedb_engine::CheckReport) -> String {
    let mut out = format!(
        "format version {}: {} dictionaries, {} activations in both orientations, {} feature statistics, {} graphs checked\n",
        r.format_version, r.dictionaries, r.activations, r.features, r.graphs
    );
    for p in &r.problems {
        out += &format!("problem: {p}\n");
    }
    for n in &r.notes {
        out += &format!("note: {n}\n");
    }
    if r.problems.is_empty() {
        out += "ok\n";
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use saedb_engine::{Architecture, DictionaryInfo};

    #[test]
    fn naming_prefixes_only_when_needed() {
        let p = Path::new("/tmp/x/latents.safetensors");
        assert_eq!(
            naming(p, "unknown dictionary 'L9'").to_string(),
            "/tmp/x/latents.safetensors: unknown dictionary 'L9'"
        );
        assert_eq!(
            naming(p, "/tmp/x/latents.safetensors: truncated").to_string(),
            "/tmp/x/latents.safetensors: truncated"
        );
        assert_eq!(
            naming(p, "a\nb").to_string(),
            "/tmp/x/latents.safetensors: a b"
        );
    }

    #[test]
    fn info_renders_every_dictionary() {
        let d = DictionaryInfo {
            name: "L2".into(),
            id: 0,
            d_in: 384,
            d_sae: 512,
            architecture: Architecture::TopK,
            k: Some(16),
            apply_b_dec_to_input: true,
            hook: Some("blocks.2.hook_resid_post".into()),
            layer: Some(2),
            model: Some("all-MiniLM-L6-v2".into()),
            source_format: "saelens".into(),
            source_path: "x".into(),
            tokens_encoded: 1234,
            nonzeros: 19744,
        };
        let info = StoreInfo {
            path: "s".into(),
            format_version: 1,
            documents: 54,
            tokens: 2000,
            dictionaries: vec![d],
            vocabulary: None,
            graphs: vec![],
            labels: 0,
            bytes_on_disk: 4096,
        };
        let t = render_info(&info);
        assert!(t.contains("documents    54"), "{t}");
        assert!(t.contains("19,744"), "{t}");
        assert!(t.contains("topk"), "{t}");
    }
}
