//! The parser never panics: arbitrary strings, and arbitrary sequences of the language's own
//! keywords and tokens, either parse or return a positioned error. The lexer agrees with the
//! grammar on where string literals end and what they hold, and splitting a script into
//! statements gives back the statements it was joined from.

use pest::Parser;
use proptest::prelude::*;
use saedb_query::ast::Statement;
use saedb_query::lexer::{tokens, Token, TokenKind};
use saedb_query::parser::{Rule, SaedbParser};
use saedb_query::{is_complete, parse, quote, split_statements, KEYWORDS};

fn check(src: &str) {
    let _ = is_complete(src);
    for r in split_statements(src) {
        assert!(src.is_char_boundary(r.start) && src.is_char_boundary(r.end));
    }
    if let Err(e) = parse(src) {
        assert!(e.line >= 1 && e.column >= 1);
        assert!(e.offset <= src.len());
        let _ = e.render(src, "p");
    }
}

fn token() -> impl Strategy<Value = String> {
    let kws: Vec<String> = KEYWORDS.iter().map(|k| k.to_string()).collect();
    prop_oneof![
        4 => proptest::sample::select(kws),
        1 => proptest::sample::select(vec![
            "L2/7", "7", "(", ")", ",", ";", "=", "!=", "<", "<=", ">", ">=", "\"a\"", "' b'", "\"",
            "-- c\n", "token", "value", "doc", "pos", "2.5", "-1", "99999999999999999999999", "L2", "\\",
        ])
        .prop_map(String::from),
        1 => "[a-z0-9_./\"'() ;-]{0,6}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings_never_panic(s in "\\PC{0,200}") {
        check(&s);
    }

    #[test]
    fn arbitrary_bytes_as_text_never_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
        check(&String::from_utf8_lossy(&b));
    }

    #[test]
    fn keyword_sequences_never_panic(toks in proptest::collection::vec(token(), 0..30)) {
        check(&toks.join(" "));
    }
}

#[test]
fn pathological_inputs() {
    check(&"(".repeat(100_000));
    check(&format!(
        "TOP 1 ACTIVATIONS OF L2/1 WHERE {} value > 1",
        "NOT ".repeat(50_000)
    ));
    check(&format!(
        "TOP 1 ACTIVATIONS OF L2/1 WHERE {}",
        vec!["value > 1"; 20_000].join(" AND ")
    ));
    check(&"\"".repeat(10_001));
    check(&";".repeat(10_000));
}

#[test]
fn keywords_match_the_grammar() {
    let grammar = include_str!("../../../grammars/saedb.pest");
    let mut from_grammar: Vec<String> = grammar
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("KW_"))
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect();
    from_grammar.sort();
    let mut listed: Vec<String> = KEYWORDS.iter().map(|k| k.to_string()).collect();
    listed.sort();
    assert_eq!(listed, from_grammar);
}

#[test]
fn every_keyword_is_case_insensitive() {
    for s in [
        "show dictionaries",
        "SHOW DICTIONARIES",
        "ShOw DiCtIoNaRiEs",
        "describe graph g",
        "Use L2",
    ] {
        parse(s).unwrap();
    }
}

const TERMINATED: TokenKind = TokenKind::Str { terminated: true };

/// Whether a string token's text holds an escape the grammar refuses (`\q`, `\u` without
/// `{hex}`).
fn has_bad_escape(text: &str) -> bool {
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            continue;
        }
        match chars.next() {
            Some('"' | '\'' | '\\' | 'n' | 't' | 'r' | '0') => {}
            Some('u') => {
                let rest: String = chars.clone().collect();
                let hex = rest
                    .strip_prefix('{')
                    .and_then(|r| r.split_once('}'))
                    .map(|(h, _)| h);
                let ok = hex.is_some_and(|h| {
                    (1..=6).contains(&h.len()) && h.chars().all(|c| c.is_ascii_hexdigit())
                });
                if !ok {
                    return true;
                }
            }
            _ => return true,
        }
    }
    false
}

fn first_token(src: &str) -> Token {
    tokens(src).next().expect("a token")
}

/// Statements whose strings and comments hold `;`, quotes and `--`.
fn statement() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(vec![
            "SHOW DICTIONARIES",
            "DESCRIBE L2/7",
            "TOP 5 ACTIVATIONS OF L2/7 WHERE token = \";\" AND value > -2.5e1",
            "LABEL L2/3 AS 'it;s -- not a comment'",
            "SEARCH LABELS \"a\\\";b\"",
            "NEIGHBOURS OF res-8/12 IN L4 LIMIT 3",
            "SET $x = L2/7",
        ])
        .prop_map(String::from),
        "\\PC{0,20}".prop_map(|s| format!("SEARCH LABELS {}", quote(&s))),
    ]
}

/// What may stand between statements: whitespace and comments around one `;`.
fn separator() -> impl Strategy<Value = String> {
    let trivia = proptest::sample::select(vec!["", " ", "\n", "\t", "-- c;'\"\n", "\n-- ;\n  "]);
    (trivia.clone(), trivia).prop_map(|(a, b)| format!("{a};{b}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, .. ProptestConfig::default() })]

    /// A string quoted with `quote` is one string token for the lexer and for pest's `string`
    /// rule alike, and a statement holding it reads the same text back.
    #[test]
    fn quoted_strings_round_trip(s in "\\PC{0,40}|[\"'\\\\\n\t\r\u{0}-\u{1f}a;-]{0,20}") {
        let q = quote(&s);
        let t = first_token(&q);
        prop_assert_eq!(t.kind, TERMINATED);
        prop_assert_eq!(t.span.end, q.len());
        let pest_end = SaedbParser::parse(Rule::string, &q)
            .map(|mut p| p.next().unwrap().as_span().end());
        prop_assert_eq!(pest_end, Ok(q.len()));
        let parsed = parse(&format!("SEARCH LABELS {q};")).unwrap();
        let Statement::SearchLabels { text, .. } = &parsed[0].statement else {
            panic!("not SEARCH LABELS")
        };
        prop_assert_eq!(&text.value, &s);
    }

    /// Wherever pest's `string` rule accepts a string, the lexer ends it at the same byte; where
    /// pest refuses one, the lexer says it is unterminated or it holds an escape the grammar
    /// refuses (which the parser then reports).
    #[test]
    fn lexer_and_grammar_end_strings_alike(
        quote_char in proptest::sample::select(vec!['"', '\'']),
        body in "[a-z \"'\\\\;{}0-9\n-]{0,30}",
    ) {
        let src = format!("{quote_char}{body}");
        let t = first_token(&src);
        let text = t.text(&src);
        match SaedbParser::parse(Rule::string, &src) {
            Ok(mut p) => {
                prop_assert_eq!(t.kind, TERMINATED);
                prop_assert_eq!(t.span.end, p.next().unwrap().as_span().end());
            }
            Err(_) => prop_assert!(
                t.kind != TERMINATED || has_bad_escape(text),
                "pest refused {:?}, the lexer took {:?}", src, text
            ),
        }
        // Strings never span lines.
        prop_assert!(!text.contains('\n'));
    }

    /// Statements joined with `;`, whitespace and comments split back into the same statements;
    /// joined again, they split the same way; the script is complete exactly when it ends in `;`.
    #[test]
    fn splitting_then_joining(
        parts in proptest::collection::vec((statement(), separator()), 1..8),
        last_sep in any::<bool>(),
    ) {
        let mut script = String::new();
        for (i, (stmt, sep)) in parts.iter().enumerate() {
            script.push_str(stmt);
            if i + 1 < parts.len() || last_sep {
                script.push_str(sep);
            }
        }
        let stmts: Vec<&str> = parts.iter().map(|(s, _)| s.as_str()).collect();
        let split: Vec<&str> = split_statements(&script)
            .into_iter()
            .map(|r| &script[r])
            .collect();
        prop_assert_eq!(&split, &stmts);
        let joined = split.join(";\n");
        let again: Vec<&str> = split_statements(&joined)
            .into_iter()
            .map(|r| &joined[r])
            .collect();
        prop_assert_eq!(&again, &stmts);
        prop_assert_eq!(is_complete(&script), last_sep);
        for s in &stmts {
            prop_assert!(parse(s).is_ok(), "{}", s);
        }
    }
}
