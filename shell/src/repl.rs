//! `saedb shell STORE`: the interactive shell.
//!
//! Statements end in `;` and may span lines (the prompt turns into `   ...> ` until the `;`).
//! Lines starting with `.` at the start of a statement are commands for the shell itself.
//! History lives in `$SAEDB_HISTORY`, else `$HOME/.saedb_history`.

use crate::cli::{OutputArgs, OutputFormat};
use crate::output;
use crate::statements::{execute_printing, read_script, Printer};
use anyhow::Result;
use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Config, Context, Editor, Helper};
use saedb_engine::Store;
use saedb_query::{is_complete, Session, KEYWORDS};
use std::borrow::Cow;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

pub const PROMPT: &str = "saedb> ";
pub const CONTINUATION: &str = "   ...> ";

const DOT_COMMANDS: &[&str] = &[
    ".dicts", ".exit", ".format", ".help", ".open", ".quit", ".read", ".timer",
];

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
  .quit / .exit             leave (Ctrl-D too; Ctrl-C drops the statement being typed)

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

/// What tab completion offers, refreshed from the store after every statement.
#[derive(Default)]
pub struct Names {
    pub dicts: Vec<String>,
    pub graphs: Vec<String>,
    pub labels: Vec<String>,
}

impl Names {
    pub fn from_store(store: &Store) -> Names {
        let mut labels: Vec<String> = store
            .labels()
            .unwrap_or_default()
            .into_iter()
            .map(|(_, l)| l)
            .collect();
        labels.sort();
        labels.dedup();
        Names {
            dicts: store.dictionaries().into_iter().map(|d| d.name).collect(),
            graphs: store
                .graphs()
                .unwrap_or_default()
                .into_iter()
                .map(|g| g.name)
                .collect(),
            labels,
        }
    }
}

/// The rustyline helper: completion and colouring (no hints, no validation: the shell itself
/// handles continuation lines).
pub struct ShellHelper {
    pub names: Names,
    files: FilenameCompleter,
    /// Colour the statement being typed.
    color: bool,
}

impl ShellHelper {
    fn new(names: Names, color: bool) -> ShellHelper {
        ShellHelper {
            names,
            files: FilenameCompleter::new(),
            color,
        }
    }
}

/// Characters that end a word for completion.
fn is_break(c: char) -> bool {
    c.is_whitespace() || matches!(c, '(' | ')' | ',' | ';' | '=' | '<' | '>' | '!')
}

/// Quotes a string for the query language.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The completion of the word before `pos` (not dot-commands' arguments): where the word starts
/// and the candidates.
pub fn complete_statement(line: &str, pos: usize, names: &Names) -> (usize, Vec<String>) {
    let before = &line[..pos];
    // Inside an unclosed double-quoted string: complete labels.
    if let Some(q) = unclosed_quote(before) {
        let typed = before[q + 1..].to_lowercase();
        let mut out: Vec<String> = names
            .labels
            .iter()
            .filter(|l| l.to_lowercase().starts_with(&typed))
            .map(|l| quote(l))
            .collect();
        // Then labels that merely contain the text.
        if !typed.is_empty() {
            out.extend(
                names
                    .labels
                    .iter()
                    .filter(|l| {
                        let low = l.to_lowercase();
                        !low.starts_with(&typed) && low.contains(&typed)
                    })
                    .map(|l| quote(l)),
            );
        }
        return (q, out);
    }
    let start = before
        .char_indices()
        .rev()
        .find(|&(_, c)| is_break(c))
        .map(|(i, c)| i + c.len_utf8())
        .unwrap_or(0);
    let word = &before[start..];
    if word.contains('/') {
        return (start, vec![]);
    }
    let lower = !word.is_empty() && word.chars().all(|c| !c.is_ascii_uppercase());
    let wl = word.to_ascii_lowercase();
    let mut out: Vec<String> = Vec::new();
    for n in names.dicts.iter().chain(&names.graphs) {
        if n.to_ascii_lowercase().starts_with(&wl) && !out.contains(n) {
            out.push(n.clone());
        }
    }
    for k in KEYWORDS {
        if k.to_ascii_lowercase().starts_with(&wl) {
            let k = if lower {
                k.to_ascii_lowercase()
            } else {
                k.to_string()
            };
            if !out.contains(&k) {
                out.push(k);
            }
        }
    }
    (start, out)
}

/// The byte index of an unclosed `"` in `s` (ignoring `--` comments and single-quoted strings).
fn unclosed_quote(s: &str) -> Option<usize> {
    let mut open: Option<(usize, char)> = None;
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match open {
            Some((_, q)) => {
                if c == '\\' {
                    chars.next();
                } else if c == q {
                    open = None;
                }
            }
            None => match c {
                '"' | '\'' => open = Some((i, c)),
                '-' if chars.peek().map(|&(_, n)| n) == Some('-') => {
                    // A comment runs to the end of the line.
                    for (_, n) in chars.by_ref() {
                        if n == '\n' {
                            break;
                        }
                    }
                }
                _ => {}
            },
        }
    }
    match open {
        Some((i, '"')) => Some(i),
        _ => None,
    }
}

fn pairs(v: Vec<String>) -> Vec<Pair> {
    v.into_iter()
        .map(|s| Pair {
            display: s.clone(),
            replacement: s,
        })
        .collect()
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let trimmed = line.trim_start();
        if trimmed.starts_with('.') {
            let lead = line.len() - trimmed.len();
            let cmd_end = trimmed
                .find(char::is_whitespace)
                .map(|i| lead + i)
                .unwrap_or(line.len());
            if pos <= cmd_end {
                let typed = &line[lead..pos];
                let c = DOT_COMMANDS
                    .iter()
                    .filter(|d| d.starts_with(typed))
                    .map(|d| d.to_string())
                    .collect();
                return Ok((lead, pairs(c)));
            }
            let cmd = &line[lead..cmd_end];
            let arg_start = line[cmd_end..pos]
                .find(|c: char| !c.is_whitespace())
                .map(|i| cmd_end + i)
                .unwrap_or(pos);
            let typed = &line[arg_start..pos];
            let options: &[&str] = match cmd {
                ".format" => &["table", "json", "csv"],
                ".timer" => &["on", "off"],
                ".open" | ".read" => return self.files.complete(line, pos, ctx),
                _ => &[],
            };
            let c = options
                .iter()
                .filter(|o| o.starts_with(typed))
                .map(|o| o.to_string())
                .collect();
            return Ok((arg_start, pairs(c)));
        }
        let (start, c) = complete_statement(line, pos, &self.names);
        Ok((start, pairs(c)))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}
impl Highlighter for ShellHelper {
    fn highlight<'l>(&self, line: &'l str, _pos: usize) -> Cow<'l, str> {
        if self.color && !line.trim_start().starts_with('.') {
            Cow::Owned(highlight_statement(line))
        } else {
            Cow::Borrowed(line)
        }
    }

    fn highlight_char(&self, _line: &str, _pos: usize, kind: CmdKind) -> bool {
        self.color && kind != CmdKind::MoveCursor
    }
}

/// Colours a statement for the terminal: keywords bold, strings green, feature references cyan,
/// comments dim. Only ANSI codes are added: the visible text is unchanged.
pub fn highlight_statement(line: &str) -> String {
    const KW: &str = "\x1b[1m";
    const STR: &str = "\x1b[32m";
    const REF: &str = "\x1b[36m";
    const DIM: &str = "\x1b[2m";
    const END: &str = "\x1b[0m";
    let mut out = String::with_capacity(line.len() * 2);
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (start, c) = chars[i];
        if c == '-' && chars.get(i + 1).map(|x| x.1) == Some('-') {
            out.push_str(DIM);
            out.push_str(&line[start..]);
            out.push_str(END);
            return out;
        }
        if c == '"' || c == '\'' {
            let mut j = i + 1;
            while j < chars.len() && chars[j].1 != c {
                if chars[j].1 == '\\' {
                    j += 1;
                }
                j += 1;
            }
            let end = chars.get(j + 1).map(|x| x.0).unwrap_or(line.len());
            out.push_str(STR);
            out.push_str(&line[start..end]);
            out.push_str(END);
            i = j + 1;
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' || c == '$' {
            let mut j = i;
            while j < chars.len()
                && (chars[j].1.is_ascii_alphanumeric()
                    || matches!(chars[j].1, '_' | '.' | '-' | '/' | '$'))
            {
                j += 1;
            }
            let end = chars.get(j).map(|x| x.0).unwrap_or(line.len());
            let word = &line[start..end];
            if KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(word)) {
                out.push_str(KW);
                out.push_str(word);
                out.push_str(END);
            } else if word.contains('/') {
                out.push_str(REF);
                out.push_str(word);
                out.push_str(END);
            } else {
                out.push_str(word);
            }
            i = j;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}
impl Validator for ShellHelper {}
impl Helper for ShellHelper {}

/// True when `s` holds only whitespace and `--` comments.
pub fn is_blank(s: &str) -> bool {
    saedb_query::split_statements(s).is_empty()
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
        let t = Instant::now();
        match execute_printing(&mut self.session, source, &mut self.printer) {
            Ok(n) => {
                if self.printer.timer && n > 1 {
                    eprintln!("total: {}", crate::statements::human_duration(t.elapsed()));
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
                        match crate::commands::open_existing(&path) {
                            Ok(store) => {
                                self.session = Session::new(Arc::new(store));
                                output::print(&self.banner());
                            }
                            Err(e) => eprintln!("error: {}", crate::one_line(&format!("{e:#}"))),
                        }
                    }
                }
            }
            ".dicts" | ".dictionaries" => {
                let dicts = self.store().dictionaries();
                if dicts.is_empty() {
                    output::println("no dictionaries (ingest one with `saedb ingest dictionary`)");
                } else {
                    let rows: Vec<Vec<String>> = dicts
                        .iter()
                        .map(|d| {
                            vec![
                                d.name.clone(),
                                d.d_in.to_string(),
                                output::thousands(d.d_sae as u64),
                                d.architecture.to_string(),
                                d.layer.map(|l| l.to_string()).unwrap_or_else(|| "-".into()),
                                output::thousands(d.tokens_encoded),
                                output::thousands(d.nonzeros),
                            ]
                        })
                        .collect();
                    output::print(&output::columns(
                        &[
                            "name", "d_in", "d_sae", "arch", "layer", "tokens", "nonzeros",
                        ],
                        &rows,
                        &[false, true, true, false, true, true, true],
                    ));
                }
            }
            ".read" => {
                if arg.is_empty() {
                    eprintln!("error: .read needs a script file, e.g. .read tour.sdq");
                } else {
                    match read_script(&PathBuf::from(unquote_arg(arg))) {
                        Ok((source, origin)) => {
                            self.printer.reset();
                            if let Err(e) =
                                execute_printing(&mut self.session, &source, &mut self.printer)
                            {
                                eprint!("{}", e.render(&source, &origin));
                            }
                        }
                        Err(e) => eprintln!("error: {}", crate::one_line(&format!("{e:#}"))),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        Names {
            dicts: vec!["L2".into(), "L4".into(), "res-8".into()],
            graphs: vec!["dallas".into()],
            labels: vec![
                "Golden Gate Bridge".into(),
                "numbers".into(),
                "say \"hi\"".into(),
            ],
        }
    }

    #[test]
    fn keywords_complete_in_the_typed_case() {
        let (s, c) = complete_statement("DESC", 4, &names());
        assert_eq!(s, 0);
        assert!(
            c.contains(&"DESCRIBE".to_string()) && c.contains(&"DESC".to_string()),
            "{c:?}"
        );
        let (_, c) = complete_statement("top 5 act", 9, &names());
        assert_eq!(c, vec!["activations".to_string()]);
        let line = "NEIGHBOURS OF L2/5 LIMIT 10 BREA";
        let (s, c) = complete_statement(line, line.len(), &names());
        assert_eq!((s, c), (28, vec!["BREADTH".to_string()]));
        assert!(
            highlight_statement("neighbours of L2/5 breadth 24").contains("\x1b[1mbreadth\x1b[0m")
        );
    }

    #[test]
    fn dictionary_and_graph_names_complete() {
        let (s, c) = complete_statement("NEIGHBOURS OF L2/5 IN L", 23, &names());
        assert_eq!(s, 22);
        assert!(
            c.contains(&"L2".to_string())
                && c.contains(&"L4".to_string())
                && c.contains(&"LIMIT".to_string()),
            "{c:?}"
        );
        let (_, c) = complete_statement("CHAINS TO \"x\" IN GRAPH da", 25, &names());
        assert_eq!(c, vec!["dallas".to_string()]);
        let (_, c) = complete_statement("DESCRIBE L2/", 12, &names());
        assert!(c.is_empty());
    }

    #[test]
    fn labels_complete_inside_quotes() {
        let line = "DESCRIBE \"gol";
        let (s, c) = complete_statement(line, line.len(), &names());
        assert_eq!(s, 9);
        assert_eq!(c, vec!["\"Golden Gate Bridge\"".to_string()]);
        let line = "SEARCH LABELS \"hi";
        let (_, c) = complete_statement(line, line.len(), &names());
        assert_eq!(c, vec!["\"say \\\"hi\\\"\"".to_string()]);
        // A closed string is not completed as a label.
        let line = "LABEL L2/3 AS \"x\" ";
        let (_, c) = complete_statement(line, line.len(), &names());
        assert!(c.iter().all(|x| !x.starts_with('"')), "{c:?}");
    }

    #[test]
    fn highlighting_keeps_the_text() {
        let strip = |s: &str| {
            let mut out = String::new();
            let mut esc = false;
            for c in s.chars() {
                if esc {
                    esc = c != 'm';
                } else if c == '\x1b' {
                    esc = true;
                } else {
                    out.push(c);
                }
            }
            out
        };
        for line in [
            "TOP 5 ACTIVATIONS OF L2/7 WHERE token = \"a\\\"b\" AND value > 2.5; -- c",
            "describe 'unterminated",
            "SEARCH LABELS \"é\" LIMIT 3;",
            "",
        ] {
            let h = highlight_statement(line);
            assert_eq!(strip(&h), line);
        }
        assert!(highlight_statement("TOP 5").contains("\x1b[1mTOP\x1b[0m"));
        assert!(highlight_statement("DESCRIBE L2/7").contains("\x1b[36mL2/7\x1b[0m"));
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
    }

    #[test]
    fn blank_input() {
        assert!(is_blank("  \n-- a comment; still\n"));
        assert!(!is_blank("-- c\nSHOW DICTIONARIES"));
    }
}
