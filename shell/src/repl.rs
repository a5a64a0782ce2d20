//! `saedb shell STORE`: the interactive shell.
//!
//! Statements end in `;` and may span lines (the prompt turns into `   ...> ` until the `;`).
//! Lines starting with `.` at the start of a statement are commands for the shell itself.
//! History lives in `$SAEDB_HISTORY`, else `$HOME/.saedb_history`.

use crate::cli::{OutputArgs, OutputFormat};
use crate::editing::{Names, ShellHelper, DOT_COMMANDS};
use crate::interrupt;
use crate::output::{self, one_line};
use crate::statements::{execute_printing, human_duration, read_script, Printer};
use crate::stores::open_existing;
use anyhow::Result;
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::{Config, Editor};
use saedb_engine::Store;
use saedb_query::{is_blank, is_complete, Session};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

pub const PROMPT: &str = "saedb> ";
pub const CONTINUATION: &str = "   ...> ";

const HELP: &str = "\
Statements end with ';' and may span several lines. Keywords are case-insensitive; '--' starts a
comment. Tab completes keywords, dictionary and graph names, and labels (after a '\"').

  SHOW DICTIONARIES;                          DESCRIBE L2/7;
  TOP 10 ACTIVATIONS OF L2/7 CONTEXT 8;       NEIGHBOURS OF L2/7 IN L4 LIMIT 5;
  FEATURES AT DOC 3 POS 5 IN L2;              TOKEN EFFECTS OF L2/7 LIMIT 10;
  LABEL L2/7 AS \"numbers\";                    SEARCH LABELS \"num\";
  (docs/QUERY.md has the whole language)

Shell commands:
  .help                     this text
  .format table|json|csv    how results are printed (now: {format})
  .timer on|off             print the time each statement took (now: {timer})
  .open STORE               switch to another store
  .dicts                    list the dictionaries of the store
  .read FILE                run a script file
  .quit / .exit             leave (Ctrl-D too)

Ctrl-C drops the statement being typed, or stops the one running (the shell stays).

History: {history}";

/// Where the history is kept: `$SAEDB_HISTORY`, else `$HOME/.saedb_history`.
pub fn history_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SAEDB_HISTORY") {
        if !p.is_empty() {
            return Some(PathBuf::from(p));
        }
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".saedb_history"))
}

/// The state of a shell session.
pub struct Shell {
    session: Session,
    printer: Printer,
    history: Option<PathBuf>,
}

/// What a dot-command asks of the loop.
enum Flow {
    Continue,
    Quit,
}

impl Shell {
    pub fn new(store: Arc<Store>, printer: Printer) -> Shell {
        Shell {
            session: Session::new(store),
            printer,
            history: history_path(),
        }
    }

    fn store(&self) -> &Store {
        self.session.store()
    }

    fn banner(&self) -> String {
        let dicts: Vec<String> = self
            .store()
            .dictionaries()
            .into_iter()
            .map(|d| d.name)
            .collect();
        format!(
            "saedb {} — store {} ({})\nEnter \".help\" for help, \".quit\" to leave. Statements end with ';'.\n",
            env!("CARGO_PKG_VERSION"),
            self.store().path().display(),
            if dicts.is_empty() { "no dictionaries".to_string() } else { format!("dictionaries: {}", dicts.join(", ")) }
        )
    }

    /// Runs the read-eval-print loop until `.quit` or end of input.
    pub fn run(&mut self) -> Result<()> {
        let config = Config::builder()
            .auto_add_history(false)
            .max_history_size(10_000)?
            .history_ignore_dups(true)?
            .completion_type(rustyline::CompletionType::List)
            .build();
        let mut rl: Editor<ShellHelper, DefaultHistory> = Editor::with_config(config)?;
        rl.set_helper(Some(ShellHelper::new(
            Names::from_store(self.store()),
            self.printer.color,
        )));
        if let Some(h) = &self.history {
            // A missing history file is normal the first time.
            let _ = rl.load_history(h);
        }
        if std::io::stdin().is_terminal() {
            output::print(&self.banner());
        }
        interrupt::install();
        let mut buf = String::new();
        loop {
            let prompt = if buf.is_empty() { PROMPT } else { CONTINUATION };
            match rl.readline(prompt) {
                Ok(line) => {
                    if buf.is_empty() && line.trim_start().starts_with('.') {
                        let _ = rl.add_history_entry(line.trim());
                        match self.dot_command(line.trim()) {
                            Flow::Quit => break,
                            Flow::Continue => {}
                        }
                        if let Some(h) = rl.helper_mut() {
                            h.names = Names::from_store(self.store());
                        }
                        continue;
                    }
                    buf.push_str(&line);
                    buf.push('\n');
                    if is_blank(&buf) {
                        if !buf.trim().is_empty() {
                            // Comment lines on their own are remembered, but run nothing.
                            let _ = rl.add_history_entry(buf.trim_end());
                        }
                        buf.clear();
                        continue;
                    }
                    if is_complete(&buf) {
                        let _ = rl.add_history_entry(buf.trim_end());
                        self.execute(&buf);
                        buf.clear();
                        if let Some(h) = rl.helper_mut() {
                            h.names = Names::from_store(self.store());
                        }
                    }
                }
                Err(ReadlineError::Interrupted) => {
                    if buf.is_empty() {
                        output::println("(use .quit or Ctrl-D to leave)");
                    }
                    buf.clear();
                }
                Err(ReadlineError::Eof) => {
                    if !is_blank(&buf) {
                        // Input ended inside a statement: run what there is (the parser decides).
                        self.execute(&buf);
                    }
                    break;
                }
                Err(e) => {
                    self.save_history(&mut rl);
                    return Err(e.into());
                }
            }
        }
        self.save_history(&mut rl);
        Ok(())
    }

    fn save_history(&self, rl: &mut Editor<ShellHelper, DefaultHistory>) {
        if let Some(h) = &self.history {
            if let Err(e) = rl.save_history(h) {
                eprintln!("warning: cannot save the history to {}: {e}", h.display());
            }
        }
    }

    /// Runs statements; an error is printed with its caret and the shell carries on.
    fn execute(&mut self, source: &str) {
        self.printer.reset();
        interrupt::watch(self.session.cancel_handle());
        let t = Instant::now();
        match execute_printing(&mut self.session, source, &mut self.printer) {
            Ok(n) => {
                if self.printer.timer && n > 1 {
                    eprintln!("total: {}", human_duration(t.elapsed()));
                }
            }
            Err(e) => eprint!("{}", e.render(source, "<shell>")),
        }
    }

    fn dot_command(&mut self, line: &str) -> Flow {
        let mut parts = line.splitn(2, char::is_whitespace);
        let cmd = parts.next().unwrap_or("");
        let arg = parts.next().unwrap_or("").trim();
        match cmd {
            ".quit" | ".exit" | ".q" => return Flow::Quit,
            ".help" | ".h" => {
                let history = self
                    .history
                    .as_ref()
                    .map(|h| h.display().to_string())
                    .unwrap_or_else(|| "not kept (neither SAEDB_HISTORY nor HOME is set)".into());
                output::println(
                    &HELP
                        .replace("{format}", self.printer.format.name())
                        .replace("{timer}", if self.printer.timer { "on" } else { "off" })
                        .replace("{history}", &history),
                );
            }
            ".format" | ".mode" => match arg.to_ascii_lowercase().as_str() {
                "table" => self.printer.format = OutputFormat::Table,
                "json" => self.printer.format = OutputFormat::Json,
                "csv" => self.printer.format = OutputFormat::Csv,
                "" => output::println(&format!("format: {}", self.printer.format.name())),
                other => eprintln!("error: unknown format '{other}' (expected table, json or csv)"),
            },
            ".timer" => match arg.to_ascii_lowercase().as_str() {
                "on" => self.printer.timer = true,
                "off" => self.printer.timer = false,
                "" => output::println(&format!(
                    "timer: {}",
                    if self.printer.timer { "on" } else { "off" }
                )),
                other => eprintln!("error: .timer takes on or off, not '{other}'"),
            },
            ".open" => {
                if arg.is_empty() {
                    eprintln!("error: .open needs a store directory, e.g. .open my.saedb");
                } else {
                    let path = PathBuf::from(unquote_arg(arg));
                    let same = match (path.canonicalize(), self.store().path().canonicalize()) {
                        (Ok(a), Ok(b)) => a == b,
                        _ => false,
                    };
                    if same {
                        output::println(&format!("{} is already open", path.display()));
                    } else {
                        match open_existing(&path) {
                            Ok(store) => {
                                self.session = Session::new(Arc::new(store));
                                output::print(&self.banner());
                            }
                            Err(e) => eprintln!("error: {}", one_line(&format!("{e:#}"))),
                        }
                    }
                }
            }
            ".dicts" | ".dictionaries" => {
                // The same result as SHOW DICTIONARIES, in the current format.
                self.printer.reset();
                let dicts = self.store().dictionaries();
                if dicts.is_empty() {
                    output::println("no dictionaries (ingest one with `saedb ingest dictionary`)");
                } else {
                    self.printer
                        .print(&saedb_query::tables::dictionaries(&dicts));
                }
            }
            ".read" => {
                if arg.is_empty() {
                    eprintln!("error: .read needs a script file, e.g. .read tour.sdq");
                } else {
                    match read_script(&PathBuf::from(unquote_arg(arg))) {
                        Ok((source, origin)) => {
                            self.printer.reset();
                            interrupt::watch(self.session.cancel_handle());
                            if let Err(e) =
                                execute_printing(&mut self.session, &source, &mut self.printer)
                            {
                                eprint!("{}", e.render(&source, &origin));
                            }
                        }
                        Err(e) => eprintln!("error: {}", one_line(&format!("{e:#}"))),
                    }
                }
            }
            other => {
                let hint = saedb_query::error::closest(other, DOT_COMMANDS.iter().copied())
                    .map(|c| format!("did you mean {c}? "))
                    .unwrap_or_default();
                eprintln!("error: unknown command '{other}' ({hint}try .help)");
            }
        }
        Flow::Continue
    }
}

fn unquote_arg(s: &str) -> &str {
    let s = s.trim();
    if s.len() >= 2
        && ((s.starts_with('"') && s.ends_with('"')) || (s.starts_with('\'') && s.ends_with('\'')))
    {
        &s[1..s.len() - 1]
    } else {
        s
    }
}

/// `saedb shell STORE`.
pub fn run(store: Store, o: &OutputArgs) -> Result<()> {
    Shell::new(Arc::new(store), Printer::from_args(o)).run()
}
