//! Source text → AST, through the pest grammar `grammars/saedb.pest`.
//!
//! A script is first split into statements at the `;` that lie outside strings and comments
//! ([`split_statements`]); each statement is then parsed on its own, so spans and error positions
//! are byte offsets / line:column in the whole script.

use crate::ast::*;
use crate::error::{closest, ErrorKind, QueryError};
use pest::error::{ErrorVariant, InputLocation};
use pest::iterators::Pair;
use pest::Parser;
use std::ops::Range;

#[derive(pest_derive::Parser)]
#[grammar = "../grammars/saedb.pest"]
pub struct SaedbParser;

/// Parentheses in a WHERE clause may nest at most this deep.
pub const MAX_NESTING: usize = 64;

/// Every keyword of the language, upper-case (for tab completion and typo hints).
pub const KEYWORDS: &[&str] = &[
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
    "CONTAINS",
    "CONTEXT",
    "DESC",
    "DESCRIBE",
    "DICTIONARIES",
    "DOC",
    "EFFECTS",
    "ERRORS",
    "EXACT",
    "EXCLUDE",
    "FEATURES",
    "FROM",
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
    "QUANTILE",
    "SAMPLE",
    "SEARCH",
    "SET",
    "SHOW",
    "SPECIAL",
    "THROUGH",
    "TO",
    "TOKEN",
    "TOP",
    "USE",
    "WHERE",
];

#[derive(Clone, Copy, PartialEq)]
enum Lex {
    Code,
    Dq,
    Sq,
    Comment,
}

/// Splits a script into statements: the byte ranges of their text, without the `;` that ends
/// them and without leading/trailing whitespace and comments. Chunks holding only whitespace and
/// comments are left out. A `;` inside a string or a comment does not split.
pub fn split_statements(source: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut state = Lex::Code;
    // First and last byte (exclusive) of code in the current chunk.
    let mut first: Option<usize> = None;
    let mut last = 0;
    let mut chars = source.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match state {
            Lex::Code => match c {
                ';' => {
                    if let Some(f) = first.take() {
                        out.push(f..last);
                    }
                }
                '-' if chars.peek().map(|&(_, n)| n) == Some('-') => {
                    chars.next();
                    state = Lex::Comment;
                }
                c if c.is_whitespace() || c == '\u{FEFF}' => {}
                c => {
                    first.get_or_insert(i);
                    last = i + c.len_utf8();
                    if c == '"' {
                        state = Lex::Dq;
                    } else if c == '\'' {
                        state = Lex::Sq;
                    }
                }
            },
            Lex::Dq | Lex::Sq => {
                last = i + c.len_utf8();
                if c == '\n' {
                    // Strings end at the line: an unterminated one does not swallow the script.
                    state = Lex::Code;
                } else if c == '\\' {
                    if let Some((j, n)) = chars.next() {
                        last = j + n.len_utf8();
                    }
                } else if (c == '"' && state == Lex::Dq) || (c == '\'' && state == Lex::Sq) {
                    state = Lex::Code;
                }
            }
            Lex::Comment => {
                if c == '\n' {
                    state = Lex::Code;
                }
            }
        }
    }
    if let Some(f) = first {
        out.push(f..last);
    }
    out
}

/// True when `source` ends a statement: its last code character is a `;` outside strings and
/// comments. A REPL keeps reading lines until this holds.
pub fn is_complete(source: &str) -> bool {
    let mut state = Lex::Code;
    let mut last_code: Option<char> = None;
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        match state {
            Lex::Code => match c {
                '-' if chars.peek() == Some(&'-') => {
                    chars.next();
                    state = Lex::Comment;
                }
                c if c.is_whitespace() => {}
                c => {
                    last_code = Some(c);
                    if c == '"' {
                        state = Lex::Dq;
                    } else if c == '\'' {
                        state = Lex::Sq;
                    }
                }
            },
            Lex::Dq | Lex::Sq => {
                if c == '\n' {
                    state = Lex::Code;
                } else if c == '\\' {
                    chars.next();
                } else if (c == '"' && state == Lex::Dq) || (c == '\'' && state == Lex::Sq) {
                    state = Lex::Code;
                }
            }
            Lex::Comment => {
                if c == '\n' {
                    state = Lex::Code;
                }
            }
        }
    }
    matches!(state, Lex::Code | Lex::Comment) && last_code == Some(';')
}

/// Parses every statement of a script.
pub fn parse(source: &str) -> Result<Vec<ParsedStatement>, QueryError> {
    split_statements(source)
        .into_iter()
        .map(|r| parse_statement(source, r))
        .collect()
}

/// Checks what the grammar cannot say well: strings that never end, parentheses nested too deep
/// (before pest recurses into them), parentheses that do not match.
fn pre_scan(source: &str, range: Range<usize>) -> Result<(), QueryError> {
    let text = &source[range.clone()];
    let base = range.start;
    let mut state = Lex::Code;
    let mut string_start = 0;
    let mut opens: Vec<usize> = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match state {
            Lex::Code => match c {
                '-' if chars.peek().map(|&(_, n)| n) == Some('-') => {
                    chars.next();
                    state = Lex::Comment;
                }
                '"' | '\'' => {
                    string_start = i;
                    state = if c == '"' { Lex::Dq } else { Lex::Sq };
                }
                '(' => {
                    opens.push(i);
                    if opens.len() > MAX_NESTING {
                        return Err(QueryError::at(
                            source,
                            Span::new(base + i, base + i + 1),
                            ErrorKind::Invalid,
                            format!("parentheses nest deeper than {MAX_NESTING} levels"),
                        )
                        .with_hint("simplify the WHERE expression"));
                    }
                }
                ')' if opens.pop().is_none() => {
                    return Err(QueryError::at(
                        source,
                        Span::new(base + i, base + i + 1),
                        ErrorKind::Syntax,
                        "unmatched ')'",
                    ));
                }
                _ => {}
            },
            Lex::Dq | Lex::Sq => {
                if c == '\n' {
                    break;
                } else if c == '\\' {
                    chars.next();
                } else if (c == '"' && state == Lex::Dq) || (c == '\'' && state == Lex::Sq) {
                    state = Lex::Code;
                }
            }
            Lex::Comment => {
                if c == '\n' {
                    state = Lex::Code;
                }
            }
        }
    }
    if matches!(state, Lex::Dq | Lex::Sq) {
        let end = text[string_start..]
            .find('\n')
            .map(|n| string_start + n)
            .unwrap_or(text.len());
        return Err(QueryError::at(
            source,
            Span::new(base + string_start, base + end),
            ErrorKind::Syntax,
            "unterminated string",
        )
        .with_hint("close the string with the quote it opened with"));
    }
    if let Some(&i) = opens.last() {
        return Err(QueryError::at(
            source,
            Span::new(base + i, base + i + 1),
            ErrorKind::Syntax,
            "unclosed '('",
        ));
    }
    Ok(())
}

/// Parses the statement at `range` of `source` (a range from [`split_statements`]).
pub fn parse_statement(source: &str, range: Range<usize>) -> Result<ParsedStatement, QueryError> {
    pre_scan(source, range.clone())?;
    let text = &source[range.clone()];
    let base = range.start;
    let mut pairs = SaedbParser::parse(Rule::statement_input, text)
        .map_err(|e| syntax_error(source, base, text, e))?;
    let input = pairs.next().expect("statement_input");
    let stmt = input.into_inner().next().expect("statement");
    let b = Builder { source, base };
    let statement = b.statement(stmt)?;
    Ok(ParsedStatement {
        statement,
        span: Span::new(range.start, range.end),
    })
}

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

/// The text found at byte `pos` of `text`, for "found ..." in messages: a word, a string, a
/// symbol, or "end of input". Returns it with its length.
fn found_at(text: &str, pos: usize) -> (String, usize) {
    let rest = &text[pos.min(text.len())..];
    let Some(c) = rest.chars().next() else {
        return ("end of input".into(), 0);
    };
    if c.is_alphanumeric() || c == '_' {
        let num = c.is_ascii_digit();
        let len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || (num && c == '.')))
            .unwrap_or(rest.len());
        return (format!("'{}'", &rest[..len]), len);
    }
    if c == '"' || c == '\'' {
        let len = rest[1..].find(c).map(|n| n + 2).unwrap_or(rest.len());
        return (rest[..len].to_string(), len);
    }
    (format!("'{c}'"), c.len_utf8())
}

fn syntax_error(source: &str, base: usize, text: &str, e: pest::error::Error<Rule>) -> QueryError {
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

/// Builds the AST from pest's pairs; spans are shifted by `base` into the whole source.
struct Builder<'s> {
    source: &'s str,
    base: usize,
}

type R<T> = Result<T, QueryError>;

impl Builder<'_> {
    fn span(&self, p: &Pair<Rule>) -> Span {
        let s = p.as_span();
        Span::new(self.base + s.start(), self.base + s.end())
    }

    fn err(&self, span: Span, message: impl Into<String>) -> QueryError {
        QueryError::at(self.source, span, ErrorKind::Invalid, message)
    }

    fn statement(&self, p: Pair<Rule>) -> R<Statement> {
        let inner = p.into_inner().next().expect("statement alternative");
        match inner.as_rule() {
            Rule::show_stmt => self.show(inner),
            Rule::describe_graph_stmt => {
                let name = inner
                    .into_inner()
                    .find(|p| p.as_rule() == Rule::name)
                    .expect("name");
                Ok(Statement::DescribeGraph {
                    graph: self.text(&name),
                })
            }
            Rule::describe_stmt => {
                let target = inner
                    .into_inner()
                    .find(|p| p.as_rule() != Rule::KW_DESCRIBE)
                    .expect("target");
                match target.as_rule() {
                    Rule::feature => Ok(Statement::Describe {
                        feature: self.feature(target)?,
                    }),
                    _ => Ok(Statement::DescribeDictionary {
                        dict: self.text(&target),
                    }),
                }
            }
            Rule::top_stmt => self.top(inner),
            Rule::sample_stmt => self.sample(inner),
            Rule::neighbours_stmt => self.neighbours(inner),
            Rule::features_at_stmt => self.features_at(inner),
            Rule::token_effects_stmt => {
                let mut feature = None;
                let mut limit = None;
                for p in inner.into_inner() {
                    match p.as_rule() {
                        Rule::feature => feature = Some(self.feature(p)?),
                        Rule::limit_clause => limit = Some(self.clause_int(p)?),
                        _ => {}
                    }
                }
                Ok(Statement::TokenEffects {
                    feature: feature.expect("feature"),
                    limit,
                })
            }
            Rule::label_stmt => {
                let mut feature = None;
                let mut label = None;
                for p in inner.into_inner() {
                    match p.as_rule() {
                        Rule::feature => feature = Some(self.feature(p)?),
                        Rule::string => label = Some(self.string(p)?),
                        _ => {}
                    }
                }
                Ok(Statement::Label {
                    feature: feature.expect("feature"),
                    label: label.expect("label"),
                })
            }
            Rule::search_labels_stmt => {
                let mut text = None;
                let mut limit = None;
                for p in inner.into_inner() {
                    match p.as_rule() {
                        Rule::string => text = Some(self.string(p)?),
                        Rule::limit_clause => limit = Some(self.clause_int(p)?),
                        _ => {}
                    }
                }
                Ok(Statement::SearchLabels {
                    text: text.expect("text"),
                    limit,
                })
            }
            Rule::chains_stmt => self.chains(inner),
            Rule::influence_stmt => {
                let mut on = None;
                let mut graph = None;
                let mut limit = None;
                for p in inner.into_inner() {
                    match p.as_rule() {
                        Rule::string => on = Some(self.string(p)?),
                        Rule::name => graph = Some(self.text(&p)),
                        Rule::limit_clause => limit = Some(self.clause_int(p)?),
                        _ => {}
                    }
                }
                Ok(Statement::Influence {
                    on: on.expect("node"),
                    graph: graph.expect("graph"),
                    limit,
                })
            }
            Rule::attribute_stmt => {
                let mut ints = Vec::new();
                let mut token = None;
                let mut graph = None;
                for p in inner.into_inner() {
                    match p.as_rule() {
                        Rule::integer => ints.push(self.integer(p)?),
                        Rule::string => token = Some(self.string(p)?),
                        Rule::name => graph = Some(self.text(&p)),
                        _ => {}
                    }
                }
                let pos = ints.pop().expect("pos");
                let doc = ints.pop().expect("doc");
                Ok(Statement::Attribute {
                    doc,
                    pos,
                    token: token.expect("token"),
                    graph: graph.expect("graph"),
                })
            }
            Rule::set_stmt => {
                let mut name = None;
                let mut feature = None;
                for p in inner.into_inner() {
                    match p.as_rule() {
                        Rule::variable => name = Some(self.text(&p)),
                        Rule::feature => feature = Some(self.feature(p)?),
                        _ => {}
                    }
                }
                Ok(Statement::Set {
                    name: name.expect("variable"),
                    feature: feature.expect("feature"),
                })
            }
            Rule::use_stmt => {
                let d = inner
                    .into_inner()
                    .find(|p| p.as_rule() == Rule::dict_name)
                    .expect("dict");
                Ok(Statement::Use {
                    dict: self.text(&d),
                })
            }
            r => unreachable!("statement rule {r:?}"),
        }
    }

    fn show(&self, p: Pair<Rule>) -> R<Statement> {
        let what = p
            .into_inner()
            .find(|p| p.as_rule() != Rule::KW_SHOW)
            .expect("show target");
        match what.as_rule() {
            Rule::show_dictionaries => Ok(Statement::ShowDictionaries),
            Rule::show_graphs => Ok(Statement::ShowGraphs),
            Rule::show_labels => {
                let mut limit = None;
                for c in what.into_inner() {
                    if c.as_rule() == Rule::limit_clause {
                        limit = Some(self.clause_int(c)?);
                    }
                }
                Ok(Statement::ShowLabels { limit })
            }
            Rule::show_doc => {
                let i = what
                    .into_inner()
                    .find(|p| p.as_rule() == Rule::integer)
                    .expect("doc");
                Ok(Statement::ShowDoc {
                    doc: self.integer(i)?,
                })
            }
            r => unreachable!("show rule {r:?}"),
        }
    }

    fn top(&self, p: Pair<Rule>) -> R<Statement> {
        let mut k = None;
        let mut feature = None;
        let mut options = ActivationOptions::default();
        let mut seen = Seen::default();
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::integer => k = Some(self.integer(c)?),
                Rule::feature => feature = Some(self.feature(c)?),
                _ => self.activation_clause(c, &mut options, &mut seen)?,
            }
        }
        Ok(Statement::Top {
            k: k.expect("k"),
            feature: feature.expect("feature"),
            options,
        })
    }

    fn sample(&self, p: Pair<Rule>) -> R<Statement> {
        let mut ints = Vec::new();
        let mut feature = None;
        let mut options = ActivationOptions::default();
        let mut seen = Seen::default();
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::integer => ints.push(self.integer(c)?),
                Rule::feature => feature = Some(self.feature(c)?),
                _ => self.activation_clause(c, &mut options, &mut seen)?,
            }
        }
        let of = ints.pop().expect("of");
        let quantile = ints.pop().expect("quantile");
        let k = ints.pop().expect("k");
        Ok(Statement::Sample {
            k,
            feature: feature.expect("feature"),
            quantile,
            of,
            options,
        })
    }

    fn activation_clause(
        &self,
        c: Pair<Rule>,
        options: &mut ActivationOptions,
        seen: &mut Seen,
    ) -> R<()> {
        let span = self.span(&c);
        match c.as_rule() {
            Rule::context_clause => {
                seen.once(self, "CONTEXT", span)?;
                options.context = Some(self.clause_int(c)?);
            }
            Rule::where_clause => {
                seen.once(self, "WHERE", span)?;
                let e = c
                    .into_inner()
                    .find(|p| p.as_rule() == Rule::expr)
                    .expect("expr");
                options.filter = Some(self.expr(e)?);
            }
            Rule::exclude_special => {
                seen.once(self, "EXCLUDE SPECIAL", span)?;
                options.exclude_special = true;
            }
            Rule::order_clause => {
                seen.once(self, "ORDER BY", span)?;
                options.order = self.order(c);
            }
            _ => {}
        }
        Ok(())
    }

    fn neighbours(&self, p: Pair<Rule>) -> R<Statement> {
        let mut feature = None;
        let mut in_dict = None;
        let mut exact = None;
        let mut breadth = None;
        let mut breadth_clause = None;
        let mut limit = None;
        let mut order = Vec::new();
        let mut seen = Seen::default();
        for c in p.into_inner() {
            let span = self.span(&c);
            match c.as_rule() {
                Rule::feature => feature = Some(self.feature(c)?),
                Rule::in_dict => {
                    seen.once(self, "IN", span)?;
                    let d = c
                        .into_inner()
                        .find(|p| p.as_rule() == Rule::dict_name)
                        .expect("dict");
                    in_dict = Some(self.text(&d));
                }
                Rule::exact => {
                    seen.once(self, "EXACT", span)?;
                    exact = Some(span);
                }
                Rule::breadth_clause => {
                    seen.once(self, "BREADTH", span)?;
                    breadth_clause = Some(span);
                    breadth = Some(self.clause_int(c)?);
                }
                Rule::limit_clause => {
                    seen.once(self, "LIMIT", span)?;
                    limit = Some(self.clause_int(c)?);
                }
                Rule::order_clause => {
                    seen.once(self, "ORDER BY", span)?;
                    order = self.order(c);
                }
                _ => {}
            }
        }
        // Exact search scans every feature: a breadth would be ignored, so saying both is a mistake.
        if let (Some(_), Some(span)) = (exact, breadth_clause) {
            return Err(self
                .err(
                    span,
                    "BREADTH cannot be combined with EXACT: exact search scans every feature and has no breadth",
                )
                .with_hint("drop EXACT for an approximate search of that breadth, or drop BREADTH"));
        }
        Ok(Statement::Neighbours {
            feature: feature.expect("feature"),
            in_dict,
            exact: exact.is_some(),
            breadth,
            limit,
            order,
        })
    }

    fn features_at(&self, p: Pair<Rule>) -> R<Statement> {
        let mut ints = Vec::new();
        let mut in_dict = None;
        let mut filter = None;
        let mut limit = None;
        let mut order = Vec::new();
        let mut seen = Seen::default();
        for c in p.into_inner() {
            let span = self.span(&c);
            match c.as_rule() {
                Rule::integer => ints.push(self.integer(c)?),
                Rule::in_dict => {
                    seen.once(self, "IN", span)?;
                    let d = c
                        .into_inner()
                        .find(|p| p.as_rule() == Rule::dict_name)
                        .expect("dict");
                    in_dict = Some(self.text(&d));
                }
                Rule::where_clause => {
                    seen.once(self, "WHERE", span)?;
                    let e = c
                        .into_inner()
                        .find(|p| p.as_rule() == Rule::expr)
                        .expect("expr");
                    filter = Some(self.expr(e)?);
                }
                Rule::limit_clause => {
                    seen.once(self, "LIMIT", span)?;
                    limit = Some(self.clause_int(c)?);
                }
                Rule::order_clause => {
                    seen.once(self, "ORDER BY", span)?;
                    order = self.order(c);
                }
                _ => {}
            }
        }
        let pos = ints.pop().expect("pos");
        let doc = ints.pop().expect("doc");
        Ok(Statement::FeaturesAt {
            doc,
            pos,
            in_dict,
            filter,
            limit,
            order,
        })
    }

    fn chains(&self, p: Pair<Rule>) -> R<Statement> {
        let mut to = None;
        let mut graph = None;
        let mut from = None;
        let mut through = None;
        let mut min_length = None;
        let mut max_length = None;
        let mut exclude_errors = false;
        let mut limit = None;
        let mut seen = Seen::default();
        for c in p.into_inner() {
            let span = self.span(&c);
            match c.as_rule() {
                Rule::string => to = Some(self.string(c)?),
                Rule::name => graph = Some(self.text(&c)),
                Rule::chain_from => {
                    seen.once(self, "FROM", span)?;
                    from = Some(self.clause_string(c)?);
                }
                Rule::chain_through => {
                    seen.once(self, "THROUGH", span)?;
                    through = Some(self.clause_string(c)?);
                }
                Rule::min_length => {
                    seen.once(self, "MIN LENGTH", span)?;
                    min_length = Some(self.clause_int(c)?);
                }
                Rule::max_length => {
                    seen.once(self, "MAX LENGTH", span)?;
                    max_length = Some(self.clause_int(c)?);
                }
                Rule::exclude_errors => {
                    seen.once(self, "EXCLUDE ERRORS", span)?;
                    exclude_errors = true;
                }
                Rule::limit_clause => {
                    seen.once(self, "LIMIT", span)?;
                    limit = Some(self.clause_int(c)?);
                }
                _ => {}
            }
        }
        Ok(Statement::Chains {
            to: to.expect("to"),
            graph: graph.expect("graph"),
            from,
            through,
            min_length,
            max_length,
            exclude_errors,
            limit,
        })
    }

    fn order(&self, p: Pair<Rule>) -> Vec<OrderKey> {
        p.into_inner()
            .filter(|k| k.as_rule() == Rule::order_key)
            .map(|k| {
                let mut column = None;
                let mut descending = false;
                for c in k.into_inner() {
                    match c.as_rule() {
                        Rule::name => column = Some(self.text(&c)),
                        Rule::desc => descending = true,
                        _ => {}
                    }
                }
                OrderKey {
                    column: column.expect("column"),
                    descending,
                }
            })
            .collect()
    }

    fn expr(&self, p: Pair<Rule>) -> R<Expr> {
        // expr = and_expr (OR and_expr)*
        let mut ors = Vec::new();
        for a in p.into_inner().filter(|c| c.as_rule() == Rule::and_expr) {
            let mut ands = Vec::new();
            for n in a.into_inner().filter(|c| c.as_rule() == Rule::not_expr) {
                ands.push(self.not_expr(n)?);
            }
            ors.push(if ands.len() == 1 {
                ands.pop().expect("one")
            } else {
                Expr::And(ands)
            });
        }
        Ok(if ors.len() == 1 {
            ors.pop().expect("one")
        } else {
            Expr::Or(ors)
        })
    }

    fn not_expr(&self, p: Pair<Rule>) -> R<Expr> {
        let mut nots = 0usize;
        let mut primary = None;
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::not_op => nots += 1,
                Rule::primary => primary = Some(c),
                _ => {}
            }
        }
        let primary = primary.expect("primary");
        let inner = primary.into_inner().next().expect("primary content");
        let e = match inner.as_rule() {
            Rule::expr => self.expr(inner)?,
            Rule::predicate => Expr::Pred(self.predicate(inner)?),
            r => unreachable!("primary {r:?}"),
        };
        // NOT NOT x is x: keep only the parity, so long NOT chains do not nest.
        Ok(if nots % 2 == 1 {
            Expr::Not(Box::new(e))
        } else {
            e
        })
    }

    fn predicate(&self, p: Pair<Rule>) -> R<Predicate> {
        let mut it = p.into_inner();
        let field = it.next().expect("field");
        let field = Spanned::new(field.as_str().to_ascii_lowercase(), self.span(&field));
        let test = it.next().expect("test");
        let rule = test.as_rule();
        let mut negated = false;
        let mut lits = Vec::new();
        let mut op = CmpOp::Eq;
        for c in test.into_inner() {
            match c.as_rule() {
                Rule::not_op => negated = true,
                Rule::literal => lits.push(self.literal(c)?),
                Rule::cmp_op => {
                    op = match c.as_str() {
                        "=" | "==" => CmpOp::Eq,
                        "!=" | "<>" => CmpOp::Ne,
                        "<" => CmpOp::Lt,
                        "<=" => CmpOp::Le,
                        ">" => CmpOp::Gt,
                        _ => CmpOp::Ge,
                    }
                }
                _ => {}
            }
        }
        let test = match rule {
            Rule::compare_pred => Test::Compare(op, lits.pop().expect("literal")),
            Rule::between_pred => {
                let hi = lits.pop().expect("hi");
                let lo = lits.pop().expect("lo");
                Test::Between(lo, hi)
            }
            Rule::in_pred => Test::In(lits),
            Rule::like_pred => Test::Like(lits.pop().expect("pattern")),
            Rule::contains_pred => Test::Contains(lits.pop().expect("text")),
            r => unreachable!("predicate {r:?}"),
        };
        Ok(Predicate {
            field,
            negated,
            test,
        })
    }

    fn literal(&self, p: Pair<Rule>) -> R<Spanned<Literal>> {
        let inner = p.into_inner().next().expect("literal content");
        let span = self.span(&inner);
        match inner.as_rule() {
            Rule::string => Ok(Spanned::new(Literal::Str(self.string(inner)?.value), span)),
            _ => {
                let v: f64 = inner
                    .as_str()
                    .parse()
                    .map_err(|_| self.err(span, "not a number"))?;
                if !v.is_finite() {
                    return Err(self.err(span, "number out of range"));
                }
                Ok(Spanned::new(Literal::Number(v), span))
            }
        }
    }

    fn feature(&self, p: Pair<Rule>) -> R<FeatureArg> {
        let span = self.span(&p);
        let inner = p.into_inner().next().expect("feature content");
        let spec = match inner.as_rule() {
            Rule::dict_feature => {
                let mut it = inner.into_inner();
                let dict = it.next().expect("dict").as_str().to_string();
                let index = self.integer(it.next().expect("index"))?.value;
                FeatureSpec::Explicit { dict, index }
            }
            Rule::bare_feature => {
                let i = inner.into_inner().next().expect("integer");
                FeatureSpec::Bare {
                    index: self.integer(i)?.value,
                }
            }
            Rule::feature_label => {
                let s = inner
                    .into_inner()
                    .find(|p| p.as_rule() == Rule::string)
                    .expect("string");
                FeatureSpec::Label(self.string(s)?.value)
            }
            Rule::variable => FeatureSpec::Variable(inner.as_str().to_string()),
            Rule::string => FeatureSpec::Label(self.string(inner)?.value),
            r => unreachable!("feature {r:?}"),
        };
        Ok(Spanned::new(spec, span))
    }

    fn text(&self, p: &Pair<Rule>) -> Spanned<String> {
        Spanned::new(p.as_str().to_string(), self.span(p))
    }

    fn integer(&self, p: Pair<Rule>) -> R<Spanned<u64>> {
        let span = self.span(&p);
        let v: u64 = p.as_str().parse().map_err(|_| {
            self.err(span, format!("number {} is too large", p.as_str()))
                .with_hint(format!("the largest number allowed here is {}", u64::MAX))
        })?;
        Ok(Spanned::new(v, span))
    }

    /// The integer inside a clause such as `LIMIT 10`.
    fn clause_int(&self, p: Pair<Rule>) -> R<Spanned<u64>> {
        let i = p
            .into_inner()
            .find(|c| c.as_rule() == Rule::integer)
            .expect("integer");
        self.integer(i)
    }

    fn clause_string(&self, p: Pair<Rule>) -> R<Spanned<String>> {
        let s = p
            .into_inner()
            .find(|c| c.as_rule() == Rule::string)
            .expect("string");
        self.string(s)
    }

    fn string(&self, p: Pair<Rule>) -> R<Spanned<String>> {
        let span = self.span(&p);
        let raw = p.into_inner().next().map(|i| i.as_str()).unwrap_or("");
        let mut out = String::with_capacity(raw.len());
        let mut chars = raw.chars();
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
                    let ch = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
                    match ch {
                        Some(ch) => out.push(ch),
                        None => {
                            return Err(self.err(span, format!("\\u{{{hex}}} is not a character")))
                        }
                    }
                }
                Some(other) => out.push(other),
                None => {}
            }
        }
        Ok(Spanned::new(out, span))
    }
}

/// Clauses seen so far in a statement, to reject one given twice.
#[derive(Default)]
struct Seen(Vec<&'static str>);

impl Seen {
    fn once(&mut self, b: &Builder, what: &'static str, span: Span) -> R<()> {
        if self.0.contains(&what) {
            return Err(b.err(span, format!("{what} is given twice")));
        }
        self.0.push(what);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> Statement {
        parse(s).unwrap().remove(0).statement
    }

    #[test]
    fn split() {
        let s = "SHOW DICTIONARIES; -- c;\n SEARCH LABELS \"a;b\";;  ";
        let r = split_statements(s);
        assert_eq!(r.len(), 2);
        assert_eq!(&s[r[0].clone()], "SHOW DICTIONARIES");
        assert_eq!(&s[r[1].clone()], "SEARCH LABELS \"a;b\"");
    }

    #[test]
    fn complete() {
        assert!(is_complete("SHOW DICTIONARIES;"));
        assert!(is_complete("SHOW DICTIONARIES; -- done"));
        assert!(!is_complete("SHOW DICTIONARIES"));
        assert!(!is_complete("SEARCH LABELS \"a;"));
        assert!(!is_complete("SHOW -- ;"));
        assert!(!is_complete("  "));
    }

    #[test]
    fn core_statements_parse() {
        for s in [
            "SHOW DICTIONARIES;",
            "DESCRIBE L2/1234;",
            "TOP 20 ACTIVATIONS OF L2/1234 CONTEXT 8;",
            "TOP 20 ACTIVATIONS OF L2/1234 WHERE token = \" bridge\" AND value > 2.5;",
            "NEIGHBOURS OF L2/1234 LIMIT 10;",
            "NEIGHBOURS OF L2/1234 IN L4 LIMIT 10;",
            "FEATURES AT DOC 17 POS 5 IN L2;",
            "TOKEN EFFECTS OF L2/1234 LIMIT 10;",
            "LABEL L2/1234 AS \"Golden Gate Bridge\";",
            "SEARCH LABELS \"bridge\" LIMIT 10;",
            "CHAINS TO \"27_22605_7\" IN GRAPH dallas LIMIT 5;",
            "CHAINS TO \"27_22605_7\" IN GRAPH dallas FROM \"E_26865_6\" MIN LENGTH 3 EXCLUDE ERRORS LIMIT 5;",
            "ATTRIBUTE DOC 3 POS 17 TO TOKEN \" Austin\" AS GRAPH kobe;",
        ] {
            parse(s).unwrap_or_else(|e| panic!("{s}: {}", e.render(s, "t")));
            parse(&s.to_lowercase()).unwrap_or_else(|e| panic!("{s}: {}", e.render(s, "t")));
        }
    }

    #[test]
    fn where_precedence() {
        let s = one(
            "TOP 5 ACTIVATIONS OF L2/1 WHERE token = 'a' OR NOT value > 1 AND doc BETWEEN 1 AND 3",
        );
        let Statement::Top { options, .. } = s else {
            panic!()
        };
        let Some(Expr::Or(v)) = options.filter else {
            panic!("{:?}", options.filter)
        };
        assert_eq!(v.len(), 2);
        assert!(matches!(&v[1], Expr::And(a) if a.len() == 2 && matches!(a[0], Expr::Not(_))));
    }

    #[test]
    fn keyword_hint() {
        let e = parse("SHOW DICTIONAIRES;").unwrap_err();
        assert_eq!((e.line, e.column), (1, 6));
        assert_eq!(e.hint.as_deref(), Some("did you mean DICTIONARIES?"));
        let e = parse("DESCRBE L2/1;").unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("did you mean DESCRIBE?"));
    }

    #[test]
    fn deep_nesting_is_an_error() {
        let s = format!(
            "TOP 1 ACTIVATIONS OF L2/1 WHERE {}value > 1{}",
            "(".repeat(100),
            ")".repeat(100)
        );
        let e = parse(&s).unwrap_err();
        assert!(e.message.contains("nest"), "{}", e.message);
        let s = format!(
            "TOP 1 ACTIVATIONS OF L2/1 WHERE {}value > 1{}",
            "(".repeat(64),
            ")".repeat(64)
        );
        parse(&s).unwrap();
    }

    #[test]
    fn breadth_clause_is_accepted_in_any_case_and_order() {
        let src = "NEIGHBOURS OF L4/123 LIMIT 10 BREADTH 24";
        let Statement::Neighbours {
            breadth,
            exact,
            limit,
            ..
        } = one(src)
        else {
            panic!()
        };
        let b = breadth.expect("breadth");
        assert_eq!(b.value, 24);
        assert_eq!(&src[b.span.start..b.span.end], "24");
        assert!(!exact);
        assert_eq!(limit.map(|l| l.value), Some(10));
        for s in [
            "neighbours of l4/123 breadth 24 limit 10;",
            "NEIGHBORS OF L2/1 IN L4 Breadth 64 ORDER BY feature DESC;",
            "NEIGHBOURS OF 5 BREADTH 1",
            "NEIGHBOURS OF \"full stop\" bReAdTh 100000 IN L4",
        ] {
            assert!(
                matches!(
                    one(s),
                    Statement::Neighbours {
                        breadth: Some(_),
                        ..
                    }
                ),
                "{s}"
            );
        }
        // Without the clause nothing changes.
        assert!(matches!(
            one("NEIGHBOURS OF L2/1 LIMIT 3"),
            Statement::Neighbours { breadth: None, .. }
        ));
    }

    #[test]
    fn breadth_with_exact_is_an_error_at_the_breadth_clause() {
        for (src, col) in [
            ("NEIGHBOURS OF L2/7 EXACT BREADTH 24;", 26),
            ("NEIGHBOURS OF L2/7 BREADTH 24 LIMIT 5 EXACT;", 20),
        ] {
            let e = parse(src).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Invalid, "{src}");
            assert_eq!((e.line, e.column), (1, col), "{src}");
            assert!(
                e.message.contains("BREADTH cannot be combined with EXACT"),
                "{}",
                e.message
            );
            assert!(e.hint.as_deref().unwrap_or("").contains("drop EXACT"));
        }
    }

    #[test]
    fn breadth_given_twice_or_malformed_is_an_error() {
        let e = parse("NEIGHBOURS OF L2/7 BREADTH 24 LIMIT 3 BREADTH 32;").unwrap_err();
        assert_eq!(e.message, "BREADTH is given twice");
        assert_eq!((e.line, e.column), (1, 39));
        for src in [
            "NEIGHBOURS OF L2/7 BREADTH;",
            "NEIGHBOURS OF L2/7 BREADTH -1;",
            "NEIGHBOURS OF L2/7 BREADTH 2.5;",
            "NEIGHBOURS OF L2/7 BREADTH \"24\";",
        ] {
            let e = parse(src).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Syntax, "{src}");
            assert!(
                e.message.starts_with("expected an integer"),
                "{src}: {}",
                e.message
            );
        }
        // Only NEIGHBOURS has a breadth.
        let e = parse("TOP 5 ACTIVATIONS OF L2/7 BREADTH 24;").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Syntax);
        assert_eq!(e.column, 27);
        // A misspelt BREADTH is named.
        let e = parse("NEIGHBOURS OF L2/7 BREATH 24;").unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("did you mean BREADTH?"));
        // Numbers beyond 64 bits are refused like everywhere else.
        let e = parse("NEIGHBOURS OF L2/7 BREADTH 99999999999999999999999;").unwrap_err();
        assert!(e.message.contains("too large"), "{}", e.message);
    }

    #[test]
    fn overflow_is_an_error() {
        let e = parse("TOP 99999999999999999999999 ACTIVATIONS OF L2/1").unwrap_err();
        assert!(e.message.contains("too large"));
    }
}
