//! Syntax errors as people read them: what was expected (in words, not rule names), what was
//! found, and a hint (the closest keyword, a missing `;`); and the checks made before pest runs.

use super::{Rule, MAX_NESTING};
use crate::ast::Span;
use crate::error::{closest, ErrorKind, QueryError};
use crate::lexer::{tokens, TokenKind, KEYWORDS};
use pest::error::{ErrorVariant, InputLocation};
use std::ops::Range;

/// How a grammar rule is named in "expected ..." messages.
fn describe_rule(rule: Rule) -> String {
    let name = format!("{rule:?}");
    if let Some(kw) = name.strip_prefix("KW_") {
        return kw.to_string();
    }
    match rule {
        Rule::integer | Rule::bare_feature => "an integer".into(),
        Rule::number | Rule::literal => "a number or a string".into(),
        Rule::string => "a string".into(),
        Rule::dict_name | Rule::in_dict => "a dictionary name".into(),
        Rule::name | Rule::ident => "a name".into(),
        Rule::feature | Rule::dict_feature | Rule::feature_label => {
            "a feature (L2/1234, 1234 after USE, or \"a label\")".into()
        }
        Rule::variable => "a variable ($name)".into(),
        Rule::field => "a field (token, value, doc, pos, ...)".into(),
        Rule::cmp_op | Rule::compare_pred => "a comparison (=, !=, <, <=, >, >=)".into(),
        Rule::EOI => "end of statement".into(),
        Rule::statement => "a statement".into(),
        Rule::expr | Rule::and_expr | Rule::not_expr | Rule::primary | Rule::predicate => {
            "a condition".into()
        }
        Rule::order_key => "a column name".into(),
        other => format!("{other:?}").replace('_', " "),
    }
}

/// The text found at byte `pos` of `text`, for "found ..." in messages: the token there (a word
/// in quotes, a string as written, a symbol), or "end of input". Returns it with its length.
fn found_at(text: &str, pos: usize) -> (String, usize) {
    let pos = pos.min(text.len());
    let Some(t) = tokens(&text[pos..]).find(|t| t.kind != TokenKind::Whitespace) else {
        return ("end of input".into(), 0);
    };
    // Error positions point at a token's start; skip nothing else.
    if t.span.start != 0 {
        let c = text[pos..].chars().next().unwrap_or(' ');
        return (format!("'{c}'"), c.len_utf8());
    }
    let word = t.text(&text[pos..]);
    match t.kind {
        TokenKind::Str { .. } => (word.to_string(), word.len()),
        _ => (format!("'{word}'"), word.len()),
    }
}

/// Checks what the grammar cannot say well, on the statement at `range`: strings that never end,
/// parentheses nested too deep (before pest recurses into them), parentheses that do not match.
pub(super) fn pre_scan(source: &str, range: Range<usize>) -> Result<(), QueryError> {
    let base = range.start;
    let mut opens: Vec<usize> = Vec::new();
    for t in tokens(&source[range]) {
        let span = Span::new(base + t.span.start, base + t.span.end);
        match (t.kind, &source[span.start..span.end]) {
            (TokenKind::Str { terminated: false }, _) => {
                return Err(QueryError::at(
                    source,
                    span,
                    ErrorKind::Syntax,
                    "unterminated string",
                )
                .with_hint("close the string with the quote it opened with (a string ends at its line; write a newline as \\n)"));
            }
            (TokenKind::Symbol, "(") => {
                opens.push(span.start);
                if opens.len() > MAX_NESTING {
                    return Err(QueryError::at(
                        source,
                        span,
                        ErrorKind::Invalid,
                        format!("parentheses nest deeper than {MAX_NESTING} levels"),
                    )
                    .with_hint("simplify the WHERE expression"));
                }
            }
            (TokenKind::Symbol, ")") if opens.pop().is_none() => {
                return Err(QueryError::at(
                    source,
                    span,
                    ErrorKind::Syntax,
                    "unmatched ')'",
                ));
            }
            _ => {}
        }
    }
    if let Some(&i) = opens.last() {
        return Err(QueryError::at(
            source,
            Span::new(i, i + 1),
            ErrorKind::Syntax,
            "unclosed '('",
        ));
    }
    Ok(())
}

pub(super) fn syntax_error(
    source: &str,
    base: usize,
    text: &str,
    e: pest::error::Error<Rule>,
) -> QueryError {
    let pos = match e.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    let (found, len) = found_at(text, pos);
    let span = Span::new(base + pos, base + pos + len);
    let (positives, _negatives) = match e.variant {
        ErrorVariant::ParsingError {
            positives,
            negatives,
        } => (positives, negatives),
        ErrorVariant::CustomError { message } => {
            return QueryError::at(source, span, ErrorKind::Syntax, message);
        }
    };
    let mut expected: Vec<String> = Vec::new();
    for r in &positives {
        let d = describe_rule(*r);
        if !expected.contains(&d) {
            expected.push(d);
        }
    }
    let statement_start = positives.contains(&Rule::KW_SHOW) && positives.contains(&Rule::KW_TOP);
    let message = if statement_start {
        format!("expected a statement, found {found}")
    } else if expected.is_empty() {
        format!("unexpected {found}")
    } else {
        format!("expected {}, found {found}", join_or(&expected))
    };
    let mut err = QueryError::at(source, span, ErrorKind::Syntax, message);
    // A misspelt keyword: suggest the closest keyword that could stand here, else any keyword.
    let word = &text[pos.min(text.len())..pos.min(text.len()) + len];
    if !word.is_empty() && word.chars().all(|c| c.is_alphanumeric() || c == '_') {
        let kws: Vec<&str> = positives
            .iter()
            .filter_map(|r| {
                KEYWORDS
                    .iter()
                    .find(|k| format!("KW_{k}") == format!("{r:?}"))
                    .copied()
            })
            .collect();
        if let Some(k) = closest(word, kws.iter().copied()) {
            err = err.with_hint(format!("did you mean {k}?"));
        } else if statement_start {
            err = err.with_hint(
                "statements begin with SHOW, DESCRIBE, TOP, SAMPLE, NEIGHBOURS, FEATURES, TOKEN, LABEL, SEARCH, \
                 CHAINS, INFLUENCE, ATTRIBUTE, USE or SET",
            );
        } else if let Some(k) = closest(word, KEYWORDS.iter().copied()) {
            if !k.eq_ignore_ascii_case(word) {
                err = err.with_hint(format!("did you mean {k}?"));
            }
        }
    } else if positives.contains(&Rule::EOI) && !expected.is_empty() && found != "end of input" {
        err = err.with_hint("end each statement with ';'");
    }
    err
}

fn join_or(items: &[String]) -> String {
    match items.len() {
        0 => String::new(),
        1 => items[0].clone(),
        n => format!("{} or {}", items[..n - 1].join(", "), items[n - 1]),
    }
}
