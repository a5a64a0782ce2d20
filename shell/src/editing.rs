//! The line editor's helper: tab completion and colouring of the statement being typed. Both read
//! the text through the language's own lexer (`saedb_query::lexer`), so they see strings,
//! comments and feature references exactly as the parser does.

use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Helper};
use saedb_engine::Store;
use saedb_query::lexer::{tokens, TokenKind};
use saedb_query::{quote, KEYWORDS};
use std::borrow::Cow;

/// The shell's own commands.
pub const DOT_COMMANDS: &[&str] = &[
    ".dicts", ".exit", ".format", ".help", ".open", ".quit", ".read", ".timer",
];

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
    pub fn new(names: Names, color: bool) -> ShellHelper {
        ShellHelper {
            names,
            files: FilenameCompleter::new(),
            color,
        }
    }
}

/// Labels for the text typed after an open `"`: those starting with it, then those containing it.
fn complete_label(typed: &str, names: &Names) -> Vec<String> {
    let typed = typed.to_lowercase();
    let mut out: Vec<String> = names
        .labels
        .iter()
        .filter(|l| l.to_lowercase().starts_with(&typed))
        .map(|l| quote(l))
        .collect();
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
    out
}

/// Dictionary and graph names, then keywords (in the case typed), that start with `word`.
fn complete_word(word: &str, names: &Names) -> Vec<String> {
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
    out
}

/// The completion of the token before `pos` (not dot-commands' arguments): where it starts and
/// the candidates. Inside an open double-quoted string: labels. After a word: names and keywords.
/// After a feature reference, a `/`, a number or a variable: nothing.
pub fn complete_statement(line: &str, pos: usize, names: &Names) -> (usize, Vec<String>) {
    let before = &line[..pos];
    let toks: Vec<_> = tokens(before).collect();
    let Some(last) = toks.last() else {
        return (pos, complete_word("", names));
    };
    let text = last.text(before);
    match last.kind {
        TokenKind::Str { terminated: false } if text.starts_with('"') => {
            (last.span.start, complete_label(&text[1..], names))
        }
        TokenKind::Keyword | TokenKind::Name => (last.span.start, complete_word(text, names)),
        // `res-` on the way to the name `res-8`.
        TokenKind::Unknown if text == "-" => match toks.len().checked_sub(2).map(|i| &toks[i]) {
            Some(w) if matches!(w.kind, TokenKind::Keyword | TokenKind::Name) => {
                let start = w.span.start;
                (start, complete_word(&before[start..], names))
            }
            _ => (pos, vec![]),
        },
        TokenKind::Whitespace | TokenKind::Semicolon => (pos, complete_word("", names)),
        TokenKind::Symbol if text != "/" => (pos, complete_word("", names)),
        _ => (pos, vec![]),
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

impl ShellHelper {
    /// Completion of a dot-command or of its argument.
    fn complete_dot(
        &self,
        line: &str,
        pos: usize,
        ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let trimmed = line.trim_start();
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
        Ok((arg_start, pairs(c)))
    }
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        if line.trim_start().starts_with('.') {
            return self.complete_dot(line, pos, ctx);
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

impl Validator for ShellHelper {}
impl Helper for ShellHelper {}

/// Colours a statement for the terminal: keywords bold, strings green, feature references and
/// variables cyan, comments dim. Only ANSI codes are added: the visible text is unchanged.
pub fn highlight_statement(line: &str) -> String {
    let mut out = String::with_capacity(line.len() * 2);
    for t in tokens(line) {
        let text = t.text(line);
        let color = match t.kind {
            TokenKind::Keyword => "\x1b[1m",
            TokenKind::Str { .. } => "\x1b[32m",
            TokenKind::Feature | TokenKind::Variable => "\x1b[36m",
            TokenKind::Comment => "\x1b[2m",
            _ => {
                out.push_str(text);
                continue;
            }
        };
        out.push_str(color);
        out.push_str(text);
        out.push_str("\x1b[0m");
    }
    out
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
        assert_eq!(c, vec!["activation".to_string(), "activations".to_string()]);
        let (_, c) = complete_statement("gener", 5, &names());
        assert_eq!(c, vec!["generate".to_string()]);
        let line = "NEIGHBOURS OF L2/5 LIMIT 10 BREA";
        let (s, c) = complete_statement(line, line.len(), &names());
        assert_eq!((s, c), (28, vec!["BREADTH".to_string()]));
        assert!(
            highlight_statement("neighbours of L2/5 breadth 24").contains("\x1b[1mbreadth\x1b[0m")
        );
        let line = "SHOW DOC 3 POS";
        let (_, c) = complete_statement(line, line.len(), &names());
        assert_eq!(c, vec!["POS".to_string(), "POSITIONS".to_string()]);
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
        let (_, c) = complete_statement("DESCRIBE L2/3", 13, &names());
        assert!(c.is_empty());
        let (_, c) = complete_statement("USE res-", 8, &names());
        assert_eq!(c, vec!["res-8".to_string()]);
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
        // Neither is a quote inside a comment.
        let line = "DESCRIBE -- \"gol";
        let (_, c) = complete_statement(line, line.len(), &names());
        assert!(c.is_empty(), "{c:?}");
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
        assert!(highlight_statement("x -- c").ends_with("\x1b[2m-- c\x1b[0m"));
        // A string ends where the parser ends it: `--` inside it is no comment.
        assert!(highlight_statement("\"a -- b\"").starts_with("\x1b[32m\"a -- b\"\x1b[0m"));
    }
}
