//! Source text → AST, through the pest grammar `grammars/saedb.pest`.
//!
//! A script is first split into statements at the `;` that lie outside strings and comments
//! ([`split_statements`], from the [`lexer`](crate::lexer)); each statement is then checked
//! ([`diagnostics`]), parsed by pest, and built into the AST ([`builder`]). Spans and error
//! positions are byte offsets / line:column in the whole script.

mod builder;
mod diagnostics;

use crate::ast::{ParsedStatement, Span};
use crate::error::QueryError;
use builder::Builder;
use diagnostics::{pre_scan, syntax_error};
use pest::Parser;
use std::ops::Range;

pub use crate::lexer::{is_complete, split_statements, KEYWORDS};

#[derive(pest_derive::Parser)]
#[grammar = "../grammars/saedb.pest"]
pub struct SaedbParser;

/// Parentheses in a WHERE clause may nest at most this deep.
pub const MAX_NESTING: usize = 64;

/// Parses every statement of a script.
pub fn parse(source: &str) -> Result<Vec<ParsedStatement>, QueryError> {
    split_statements(source)
        .into_iter()
        .map(|r| parse_statement(source, r))
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::*;
    use crate::error::ErrorKind;

    fn one(s: &str) -> Statement {
        parse(s).unwrap().remove(0).statement
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
