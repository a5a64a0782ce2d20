//! The subcommands: ingest, info and check here; query/run in `statements`, shell in `repl`, demo in
//! `demo`. Nothing else in the binary depends on this file (it sits on top of the others).

use crate::cli::{Command, DropWhat, Export, InfoFormat, Ingest};
use crate::output;
use crate::progress::Bars;
use crate::stores::{must_exist, naming, open_existing, open_existing_read_only, store_error};
use anyhow::{anyhow, bail, Result};
use saedb_engine::{Error, IndexBuild, OpenOptions};
use saedb_query::render::{render_check, render_info, render_ingest, render_models};

pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Ingest(Ingest::Labels {
            store,
            dictionary,
            file,
        }) => crate::web::ingest_labels(&store, &dictionary, &file),
        Command::Ingest(ingest) => run_ingest(ingest),
        Command::Serve {
            store,
            port,
            host,
            writable,
            query_timeout,
        } => crate::web::serve(&store, host, port, writable, query_timeout),
        Command::Export(Export::Html {
            store,
            feature,
            out,
        }) => crate::web::export_html(&store, &feature, &out),
        Command::Drop(DropWhat::Graph { store, name }) => {
            let s = open_existing(&store)?;
            let g = s.drop_graph(&name).map_err(|e| naming(&store, e))?;
            output::println(&format!(
                "dropped graph {} ({} nodes, {} edges)",
                g.name, g.nodes, g.edges
            ));
            Ok(())
        }
        Command::Info { store, format } => {
            let store = open_existing_read_only(&store)?;
            let info = store.info().map_err(|e| anyhow!("{e}"))?;
            let (models, live) = (store.models(), store.live_dictionaries());
            match format {
                InfoFormat::Json => {
                    let mut v = serde_json::to_value(&info)?;
                    v["models"] = serde_json::to_value(&models)?;
                    v["live"] = serde_json::to_value(&live)?;
                    output::println(&serde_json::to_string_pretty(&v)?)
                }
                InfoFormat::Table => {
                    output::print(&render_info(&info));
                    output::print(&render_models(&models, &live));
                }
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

fn run_ingest(ingest: Ingest) -> Result<()> {
    // Check the inputs before touching the store, so that a typo never leaves an empty store behind.
    let (store_path, input) = match &ingest {
        Ingest::Dictionary { store, path, .. } => (store, path),
        Ingest::Tokens { store, file } => (store, file),
        Ingest::Latents {
            store, file, vocab, ..
        } => {
            if let Some(v) = vocab {
                must_exist(v)?;
            }
            (store, file)
        }
        Ingest::Activations { store, file, .. } => (store, file),
        Ingest::Vocab {
            store, file, vocab, ..
        } => {
            must_exist(vocab)?;
            (store, file)
        }
        Ingest::Graph { store, file, .. } => (store, file),
        Ingest::Model {
            store,
            path,
            tokenizer,
            ..
        } => {
            if let Some(t) = tokenizer {
                must_exist(t)?;
            }
            (store, path)
        }
        Ingest::Labels { .. } => unreachable!("labels go to web::ingest_labels"),
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
            dictionary,
            file,
            vocab: Some(vocab),
            ..
        } => store.ingest_latents_with_documents(dictionary, file, vocab, &bars),
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
        Ingest::Model {
            name,
            path,
            tokenizer,
            ..
        } => store.ingest_model(name, path, tokenizer.as_deref(), &bars),
        Ingest::Labels { .. } => unreachable!("labels go to web::ingest_labels"),
    };
    bars.abandon();
    let report = result.map_err(|e| match e {
        // The engine's sentence says what to do; the flags say how, here.
        e @ Error::UncheckedCacheTokens { .. } => naming(
            input,
            format!("{e} (--documents-from-cache --vocab tokenizer.json)"),
        ),
        e => naming(input, e),
    })?;
    output::println(&render_ingest(&report));
    Ok(())
}
