//! The parser never panics: arbitrary strings, and arbitrary sequences of the language's own
//! keywords and tokens, either parse or return a positioned error.

use proptest::prelude::*;
use saedb_query::{is_complete, parse, split_statements, KEYWORDS};

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
    let grammar = include_str!("../../grammars/saedb.pest");
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
