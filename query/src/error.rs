//! [`QueryError`]: every error of the query language, with the line:column of the offending text.

use crate::ast::Span;
use std::fmt;

/// What kind of error a [`QueryError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The text does not parse.
    Syntax,
    /// It parses but asks for something that does not make sense (a type error in WHERE, a limit
    /// past the cap, a clause given twice, ...).
    Invalid,
    /// It names something the store does not hold (dictionary, feature, document, label, graph).
    NotFound,
    /// A capability that the engine does not have yet, or data that was never ingested.
    Unavailable,
    /// Any other error reported by the engine.
    Engine,
    /// The statement was stopped through [`crate::Session::cancel_handle`]; nothing it would
    /// have written was written.
    Cancelled,
}

/// An error with the position of the text it is about.
///
/// `line` and `column` are 1-based; `column` counts characters. `offset..offset+len` is the byte
/// range of the offending text in the source it was parsed from.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryError {
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub hint: Option<String>,
    pub kind: ErrorKind,
    /// Byte offset of the offending text in the source.
    pub offset: usize,
    /// Its length in bytes (0 for "at end of input").
    pub len: usize,
}

impl QueryError {
    /// An error about `span` of `source`.
    pub fn at(source: &str, span: Span, kind: ErrorKind, message: impl Into<String>) -> QueryError {
        let start = clamp_boundary(source, span.start.min(source.len()));
        let end = clamp_boundary(source, span.end.clamp(start, source.len()));
        let (line, column) = line_col(source, start);
        QueryError {
            line,
            column,
            message: message.into(),
            hint: None,
            kind,
            offset: start,
            len: end - start,
        }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> QueryError {
        self.hint = Some(hint.into());
        self
    }

    /// Adds a hint if there is one.
    pub fn with_hint_opt(mut self, hint: Option<String>) -> QueryError {
        if hint.is_some() {
            self.hint = hint;
        }
        self
    }

    /// Renders the error as a compiler would:
    ///
    /// ```text
    /// origin:line:col: error: message
    ///   | the source line
    ///   |     ^^^^
    ///   = hint: ...
    /// ```
    pub fn render(&self, source: &str, origin: &str) -> String {
        let mut out = format!(
            "{origin}:{}:{}: error: {}\n",
            self.line, self.column, self.message
        );
        if let Some(text) = source.lines().nth(self.line.saturating_sub(1)) {
            let text = text.trim_end_matches('\r');
            out.push_str("  | ");
            out.push_str(text);
            out.push('\n');
            // Everything before the column, with tabs kept so the caret lines up.
            let prefix: String = text
                .chars()
                .take(self.column.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            // The caret covers the offending text on this line (at least one character).
            let line_start = line_start_offset(source, self.line);
            let line_end = line_start + text.len();
            let start = self.offset.clamp(line_start, line_end);
            let end = (self.offset + self.len).clamp(start, line_end);
            let width = source
                .get(start..end)
                .map(|s| s.chars().count())
                .unwrap_or(0)
                .max(1);
            out.push_str("  | ");
            out.push_str(&prefix);
            out.push_str(&"^".repeat(width));
            out.push('\n');
        }
        if let Some(hint) = &self.hint {
            out.push_str("  = hint: ");
            out.push_str(hint);
            out.push('\n');
        }
        out
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " ({h})")?;
        }
        Ok(())
    }
}

impl std::error::Error for QueryError {}

fn clamp_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// 1-based line and character column of byte offset `offset`.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = clamp_boundary(source, offset.min(source.len()));
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

fn line_start_offset(source: &str, line: usize) -> usize {
    if line <= 1 {
        return 0;
    }
    source
        .match_indices('\n')
        .nth(line - 2)
        .map(|(i, _)| i + 1)
        .unwrap_or(source.len())
}

/// Levenshtein distance over characters, ASCII case-insensitive.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().map(|c| c.to_ascii_lowercase()).collect();
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_lowercase()).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate closest to `word` by edit distance, if it is close enough to be a likely typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = match word.chars().count() {
        0..=2 => 1,
        3..=5 => 2,
        _ => 3,
    };
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = edit_distance(word, c);
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions() {
        assert_eq!(line_col("ab\ncd", 3), (2, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("é x", 3), (1, 3));
    }

    #[test]
    fn distance() {
        assert_eq!(edit_distance("DESCRBE", "describe"), 1);
        assert_eq!(
            closest("NEIGBOURS", ["NEIGHBOURS", "LIMIT"]),
            Some("NEIGHBOURS")
        );
        assert_eq!(closest("xyz", ["NEIGHBOURS"]), None);
    }

    #[test]
    fn render_caret() {
        let src = "SHOW X;\nDESCRIBE L9/1;";
        let e = QueryError::at(
            src,
            Span::new(17, 21),
            ErrorKind::NotFound,
            "unknown dictionary 'L9'",
        )
        .with_hint("the store holds: L2, L4");
        assert_eq!(
            e.render(src, "t.sdq"),
            "t.sdq:2:10: error: unknown dictionary 'L9'\n  | DESCRIBE L9/1;\n  |          ^^^^\n  = hint: the store holds: L2, L4\n"
        );
    }
}
