//! Fuzzing the circuit-tracer graph decoder: arbitrary bytes and mutated real files must give an
//! `Ok` graph that validates, or an error, never a panic; a graph that decodes must also survive
//! chain search.

use proptest::prelude::*;
use saedb_engine::graph::{json::read_circuit_tracer, ChainQuery};
use std::path::Path;

fn small_graph() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/graphs/small.json"))
        .unwrap()
}

fn decode(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.json");
    std::fs::write(&path, bytes).unwrap();
    if let Ok(g) = read_circuit_tracer(&path, "fuzz") {
        // What decodes is a valid DAG: chain search over every logit must not panic either.
        for target in g.nodes.iter().filter(|n| n.is_target) {
            let q = ChainQuery {
                to: target.id.clone(),
                limit: 5,
                ..Default::default()
            };
            let _ = saedb_engine::graph::chains(&g, &q);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        decode(&bytes);
    }

    #[test]
    fn mutated_real_graphs_never_panic(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let mut bytes = small_graph();
        for (at, b) in edits {
            let i = at % bytes.len();
            bytes[i] = b;
        }
        let keep = bytes.len() - cut % (bytes.len() / 4);
        bytes.truncate(keep);
        decode(&bytes);
    }

    #[test]
    fn mutated_numbers_never_panic(
        which in 0usize..64,
        replacement in prop::sample::select(vec!["1e999", "-1e999", "null", "\"NaN\"", "-0", "18446744073709551616", "[]", "{}", "\"\""]),
    ) {
        // Replace the which-th number of the file with something hostile.
        let text = String::from_utf8(small_graph()).unwrap();
        let mut count = 0;
        let mut out = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((_, c)) = chars.next() {
            if c.is_ascii_digit() && !out.ends_with(|p: char| p.is_ascii_alphanumeric() || p == '_' || p == '.') {
                let mut num = c.to_string();
                while let Some(&(_, d)) = chars.peek() {
                    if d.is_ascii_digit() || d == '.' { num.push(d); chars.next(); } else { break; }
                }
                let in_string = out.matches('"').count() % 2 == 1;
                out.push_str(if count == which && !in_string { replacement } else { &num });
                count += 1;
            } else {
                out.push(c);
            }
        }
        decode(out.as_bytes());
    }
}
