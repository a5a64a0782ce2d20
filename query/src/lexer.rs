//! The one lexer of the language: source text → tokens with byte spans.
//!
//! Everything that needs to know where strings, comments and statements are uses it: the parser's
//! statement splitting and pre-checks ([`split_statements`], [`is_complete`]), its diagnostics,
//! and, in the shell, highlighting and completion. [`quote`] and [`unescape`] are the two
//! directions of a string literal.
//!
//! Lexical rules (the grammar `grammars/saedb.pest` says the same; a proptest checks that both
//! agree on string literals):
//! - A string opens with `"` or `'` and ends at the same quote. `\` escapes the next character
//!   (`\" \' \\ \n \t \r \0 \u{hex}` are valid). **A string never spans lines**: one still open
//!   at a newline ends there, unterminated (write a newline as `\n`). So no later line can close
//!   it, and an unterminated string never swallows the rest of a script.
//! - `--` starts a comment that runs to the end of the line.
//! - `;` ends a statement, outside strings and comments.
//!
//! The lexer never fails: text the language has no token for becomes [`TokenKind::Unknown`], and
//! the parser reports it.

use std::ops::Range;

/// Every keyword of the language, upper-case (for tab completion, highlighting and typo hints).
/// A test checks that it lists exactly the grammar's `KW_*` rules.
pub const KEYWORDS: &[&str] = &[
    "ACTIVATION",
    "ACTIVATIONS",
    "AND",
    "AS",
    "ASC",
    "AT",
    "ATTRIBUTE",
    "BETWEEN",
    "BREADTH",
    "BY",
    "CHAINS",
    "CLAMP",
    "CONTAINS",
    "CONTEXT",
    "DESC",
    "DESCRIBE",
    "DICTIONARIES",
    "DOC",
    "DROP",
    "EFFECTS",
    "ERRORS",
    "EXACT",
    "EXCLUDE",
    "FEATURES",
    "FROM",
    "GENERATE",
    "GRAPH",
    "GRAPHS",
    "IN",
    "INFLUENCE",
    "LABEL",
    "LABELS",
    "LENGTH",
    "LIKE",
    "LIMIT",
    "MAX",
    "MIN",
    "NEIGHBORS",
    "NEIGHBOURS",
    "NOT",
    "OF",
    "ON",
    "OR",
    "ORDER",
    "POS",
    "POSITIONS",
    "QUANTILE",
    "SAMPLE",
    "SEARCH",
    "SEED",
    "SET",
    "SHOW",
    "SOURCE",
    "SPECIAL",
    "STEER",
    "TEMPERATURE",
    "TEXT",
    "THROUGH",
    "TIMES",
    "TO",
    "TOKEN",
    "TOKENS",
    "TOP",
    "USE",
    "WHERE",
];

/// True when `word` is a keyword, in any case.
pub fn is_keyword(word: &str) -> bool {
    KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(word))
}

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Spaces, tabs, newlines, a byte-order mark.
    Whitespace,
    /// `-- …` up to (not including) the end of the line.
    Comment,
    /// A word that is a keyword (`SHOW`, `top`).
    Keyword,
    /// Any other word: a dictionary, graph or field name (`L2`, `res-8`, `token`).
    Name,
    /// A feature reference: a name, `/`, digits (`L2/1234`).
    Feature,
    /// `$name`.
    Variable,
    /// `12`, `-1`, `2.5e3`.
    Number,
    /// A string literal, quotes included. `terminated` is false when the line (or the text)
    /// ended before its closing quote.
    Str { terminated: bool },
    /// `;`.
    Semicolon,
    /// `( ) , / = == != <> < <= > >=`.
    Symbol,
    /// A character the language has no use for.
    Unknown,
}

impl TokenKind {
    /// Whitespace and comments: what lies between the tokens that matter.
    pub fn is_trivia(self) -> bool {
        matches!(self, TokenKind::Whitespace | TokenKind::Comment)
    }
}

/// A token: its kind and the byte range of its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub span: Range<usize>,
}

impl Token {
    /// The token's text in `source`.
    pub fn text<'s>(&self, source: &'s str) -> &'s str {
        &source[self.span.clone()]
    }
}

/// The tokens of `source`, in order; their spans cover it without gaps.
pub fn tokens(source: &str) -> Lexer<'_> {
    Lexer { source, pos: 0 }
}

/// An iterator over the tokens of a text (see [`tokens`]).
pub struct Lexer<'s> {
    source: &'s str,
    pos: usize,
}

fn is_space(c: char) -> bool {
    c.is_whitespace() || c == '\u{FEFF}'
}

fn is_word_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

impl Lexer<'_> {
    fn peek_at(&self, offset: usize) -> Option<char> {
        self.source.get(self.pos + offset..)?.chars().next()
    }

    /// Advances while `pred` holds; returns the new position.
    fn eat_while(&mut self, pred: impl Fn(char) -> bool) -> usize {
        let rest = &self.source[self.pos..];
        let n = rest.find(|c: char| !pred(c)).unwrap_or(rest.len());
        self.pos += n;
        self.pos
    }

    fn eat_digits(&mut self) -> usize {
        self.eat_while(|c| c.is_ascii_digit())
    }

    /// A word as the grammar's `ident`: letters, digits, `_`, `.`, and `-` before a letter or digit.
    fn word(&mut self) {
        loop {
            self.eat_while(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
            let dash_then_alnum = self.peek_at(0) == Some('-')
                && self.peek_at(1).is_some_and(|c| c.is_ascii_alphanumeric());
            if !dash_then_alnum {
                return;
            }
            self.pos += 1;
        }
    }

    /// The rest of a string after its opening quote `q`; returns whether it was closed.
    fn string(&mut self, q: char) -> bool {
        let mut chars = self.source[self.pos..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\n' => {
                    self.pos += i;
                    return false;
                }
                '\\' => {
                    // An escaped newline does not continue the string either.
                    if let Some((j, '\n')) = chars.clone().next() {
                        self.pos += j;
                        return false;
                    }
                    chars.next();
                }
                c if c == q => {
                    self.pos += i + 1;
                    return true;
                }
                _ => {}
            }
        }
        self.pos = self.source.len();
        false
    }

    fn number(&mut self) {
        self.eat_digits();
        if self.peek_at(0) == Some('.') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
            self.eat_digits();
        }
        if matches!(self.peek_at(0), Some('e' | 'E')) {
            let sign = usize::from(matches!(self.peek_at(1), Some('+' | '-')));
            if self.peek_at(1 + sign).is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1 + sign;
                self.eat_digits();
            }
        }
    }
}

impl Iterator for Lexer<'_> {
    type Item = Token;

    fn next(&mut self) -> Option<Token> {
        let start = self.pos;
        let c = self.peek_at(0)?;
        let next = self.peek_at(1);
        let kind = match c {
            c if is_space(c) => {
                self.eat_while(is_space);
                TokenKind::Whitespace
            }
            '-' if next == Some('-') => {
                self.eat_while(|c| c != '\n');
                TokenKind::Comment
            }
            '"' | '\'' => {
                self.pos += 1;
                TokenKind::Str {
                    terminated: self.string(c),
                }
            }
            c if is_word_start(c) => {
                self.word();
                let slash_digit = self.peek_at(0) == Some('/')
                    && self.peek_at(1).is_some_and(|c| c.is_ascii_digit());
                if slash_digit {
                    self.pos += 1;
                    self.eat_digits();
                    TokenKind::Feature
                } else if is_keyword(&self.source[start..self.pos]) {
                    TokenKind::Keyword
                } else {
                    TokenKind::Name
                }
            }
            c if c.is_ascii_digit() => {
                self.number();
                TokenKind::Number
            }
            '-' if next.is_some_and(|c| c.is_ascii_digit()) => {
                self.pos += 1;
                self.number();
                TokenKind::Number
            }
            '$' if next.is_some_and(is_word_start) => {
                self.pos += 1;
                self.word();
                TokenKind::Variable
            }
            ';' => {
                self.pos += 1;
                TokenKind::Semicolon
            }
            '<' | '>' | '!' | '=' => {
                let two = matches!(
                    (c, next),
                    ('<', Some('=' | '>')) | ('>', Some('=')) | ('!', Some('=')) | ('=', Some('='))
                );
                self.pos += if two { 2 } else { 1 };
                if c == '!' && !two {
                    TokenKind::Unknown
                } else {
                    TokenKind::Symbol
                }
            }
            '(' | ')' | ',' | '/' => {
                self.pos += 1;
                TokenKind::Symbol
            }
            c => {
                self.pos += c.len_utf8();
                TokenKind::Unknown
            }
        };
        Some(Token {
            kind,
            span: start..self.pos,
        })
    }
}

/// Splits a script into statements: the byte ranges of their text, without the `;` that ends
/// them and without leading/trailing whitespace and comments. Chunks holding only whitespace and
/// comments are left out. A `;` inside a string or a comment does not split.
pub fn split_statements(source: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut current: Option<Range<usize>> = None;
    for t in tokens(source) {
        match t.kind {
            TokenKind::Semicolon => out.extend(current.take()),
            k if k.is_trivia() => {}
            _ => match &mut current {
                Some(r) => r.end = t.span.end,
                None => current = Some(t.span),
            },
        }
    }
    out.extend(current);
    out
}

/// True when `source` is ready to run: its last token that is not whitespace or a comment is a
/// `;`, or a line of it ended inside a string (strings never span lines, so no more input can
/// close it: running it reports the unterminated string at once). A REPL reads lines until this
/// holds.
pub fn is_complete(source: &str) -> bool {
    let mut last: Option<Token> = None;
    for t in tokens(source) {
        let open_at_newline =
            t.kind == (TokenKind::Str { terminated: false }) && t.span.end < source.len();
        if open_at_newline {
            return true;
        }
        if !t.kind.is_trivia() {
            last = Some(t);
        }
    }
    last.is_some_and(|t| t.kind == TokenKind::Semicolon)
}

/// True when `source` holds only whitespace and comments.
pub fn is_blank(source: &str) -> bool {
    tokens(source).all(|t| t.kind.is_trivia())
}

/// Quotes a string for the language: `"…"` with `"`, `\`, newlines, tabs, carriage returns and
/// other control characters escaped, so that [`unescape`] of its inside gives `s` back.
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

/// Why the inside of a string literal could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadEscape(pub String);

/// The value of a string literal's inside (the text between its quotes): escapes resolved.
/// `\u{…}` must name a character; any other escaped character stands for itself (the grammar
/// accepts only the escapes listed in the module docs).
pub fn unescape(inner: &str) -> Result<String, BadEscape> {
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('0') => out.push('\0'),
            Some('u') => {
                let hex: String = chars.by_ref().skip(1).take_while(|&c| c != '}').collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(ch) => out.push(ch),
                    None => return Err(BadEscape(format!("\\u{{{hex}}} is not a character"))),
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<(TokenKind, &str)> {
        tokens(s)
            .filter(|t| t.kind != TokenKind::Whitespace)
            .map(|t| (t.kind, t.text(s)))
            .collect()
    }

    #[test]
    fn statement_tokens() {
        use TokenKind::*;
        assert_eq!(
            kinds("top 5 ACTIVATIONS of L2/7 WHERE value>=-2.5e3 AND token != 'a;b' -- c;\n;"),
            vec![
                (Keyword, "top"),
                (Number, "5"),
                (Keyword, "ACTIVATIONS"),
                (Keyword, "of"),
                (Feature, "L2/7"),
                (Keyword, "WHERE"),
                (Name, "value"),
                (Symbol, ">="),
                (Number, "-2.5e3"),
                (Keyword, "AND"),
                (Keyword, "token"),
                (Symbol, "!="),
                (Str { terminated: true }, "'a;b'"),
                (Comment, "-- c;"),
                (Semicolon, ";"),
            ]
        );
        assert_eq!(
            kinds("SET $x = res-8/3; USE res-8.a_b ! é"),
            vec![
                (Keyword, "SET"),
                (Variable, "$x"),
                (Symbol, "="),
                (Feature, "res-8/3"),
                (Semicolon, ";"),
                (Keyword, "USE"),
                (Name, "res-8.a_b"),
                (Unknown, "!"),
                (Unknown, "é"),
            ]
        );
    }

    #[test]
    fn strings_end_at_their_quote_or_the_line() {
        use TokenKind::*;
        assert_eq!(
            kinds(r#""a\"b" 'it''s' "x\\""#),
            vec![
                (Str { terminated: true }, r#""a\"b""#),
                (Str { terminated: true }, "'it'"),
                (Str { terminated: true }, "'s'"),
                (Str { terminated: true }, r#""x\\""#),
            ]
        );
        assert_eq!(
            kinds("\"open; x\nSHOW"),
            vec![(Str { terminated: false }, "\"open; x"), (Keyword, "SHOW")]
        );
        assert_eq!(
            kinds("'a\\\nb"),
            vec![(Str { terminated: false }, "'a\\"), (Name, "b")]
        );
        assert_eq!(kinds("\"é"), vec![(Str { terminated: false }, "\"é")]);
    }

    #[test]
    fn spans_cover_the_text() {
        let s = "SHOW \u{FEFF}DOC 3 -- x\n\"é\n\t;€";
        let mut at = 0;
        for t in tokens(s) {
            assert_eq!(t.span.start, at);
            assert!(t.span.end > t.span.start);
            at = t.span.end;
        }
        assert_eq!(at, s.len());
    }

    #[test]
    fn split() {
        let s = "SHOW DICTIONARIES; -- c;\n SEARCH LABELS \"a;b\";;  ";
        let r = split_statements(s);
        assert_eq!(r.len(), 2);
        assert_eq!(&s[r[0].clone()], "SHOW DICTIONARIES");
        assert_eq!(&s[r[1].clone()], "SEARCH LABELS \"a;b\"");
        // An unterminated string ends at its line: the next line's `;` still splits.
        let s = "DESCRIBE \"x;\n; SHOW GRAPHS";
        let r = split_statements(s);
        assert_eq!(&s[r[0].clone()], "DESCRIBE \"x;");
        assert_eq!(&s[r[1].clone()], "SHOW GRAPHS");
    }

    #[test]
    fn complete() {
        assert!(is_complete("SHOW DICTIONARIES;"));
        assert!(is_complete("SHOW DICTIONARIES; -- done"));
        assert!(!is_complete("SHOW DICTIONARIES"));
        assert!(!is_complete("SHOW -- ;"));
        assert!(!is_complete("  "));
        // Still typing inside a string on this line ...
        assert!(!is_complete("SEARCH LABELS \"a;"));
        // ... but once the line ends, nothing can close it: run it (and report it).
        assert!(is_complete("SEARCH LABELS \"a;\n"));
        assert!(is_complete("DESCRIBE 'x\n"));
    }

    #[test]
    fn blank() {
        assert!(is_blank("  \n-- a comment; still\n"));
        assert!(!is_blank("-- c\nSHOW DICTIONARIES"));
        assert!(!is_blank(";"));
    }

    #[test]
    fn quoting_round_trips() {
        assert_eq!(quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        for s in ["", "plain", "a\"b\\c\n\t\r", "\u{1}\u{7f}é€😀", "'"] {
            let q = quote(s);
            assert_eq!(unescape(&q[1..q.len() - 1]).unwrap(), s);
        }
        assert_eq!(unescape(r"\u{41}\'"), Ok("A'".to_string()));
        assert!(unescape(r"\u{d800}").is_err());
    }
}
