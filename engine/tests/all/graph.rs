//! Attribution graphs: circuit-tracer JSON ingest, validation, chain search, influence and
//! direct-path attribution, checked against brute-force enumerations written here.

use proptest::prelude::*;
use saedb_engine::graph::chains::Prepared;
use saedb_engine::graph::direct::logit_node_id;
use saedb_engine::graph::{
    chains, direct_path_graph, influence, read_circuit_tracer, Chain, ChainQuery, DirectLayer,
    DirectSource, Edge, Graph, Node, NodeKind,
};
use saedb_engine::Error;
use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/graphs")
        .join(name)
}

fn small() -> Graph {
    read_circuit_tracer(&fixture("small.json"), "small").unwrap()
}

fn shared_graphs() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/attribution-graphs");
    if p.is_dir() {
        Some(p)
    } else {
        println!("skipping: {} is absent", p.display());
        None
    }
}

// ------------------------------------------------------------------ brute force (independent)

/// a(s→t) per edge, summing |w| over the target's inputs in edge order.
fn normalised(g: &Graph) -> Vec<f64> {
    let mut total = vec![0f64; g.nodes.len()];
    for e in &g.edges {
        total[e.target as usize] += e.weight.abs();
    }
    g.edges
        .iter()
        .map(|e| {
            if total[e.target as usize] > 0.0 {
                e.weight.abs() / total[e.target as usize]
            } else {
                0.0
            }
        })
        .collect()
}

struct BrutePath {
    nodes: Vec<usize>,
    score: f64,
    sign: i8,
}

/// Every path (as node indices, with score and sign) from `start` to `target` by DFS.
fn all_paths_from(g: &Graph, a: &[f64], start: usize, target: usize, out: &mut Vec<BrutePath>) {
    all_paths_up_to(g, a, start, target, usize::MAX, out)
}

/// Every path of at most `max_len` edges from `start` to `target` by DFS.
fn all_paths_up_to(
    g: &Graph,
    a: &[f64],
    start: usize,
    target: usize,
    max_len: usize,
    out: &mut Vec<BrutePath>,
) {
    #[allow(clippy::too_many_arguments)]
    fn dfs(
        g: &Graph,
        adj: &[Vec<usize>],
        a: &[f64],
        target: usize,
        max_len: usize,
        path: &mut Vec<usize>,
        score: f64,
        sign: i8,
        out: &mut Vec<BrutePath>,
    ) {
        let u = *path.last().unwrap();
        if u == target {
            out.push(BrutePath {
                nodes: path.clone(),
                score,
                sign,
            });
            return;
        }
        if path.len() > max_len {
            return;
        }
        for &i in &adj[u] {
            let e = &g.edges[i];
            path.push(e.target as usize);
            let s = if e.weight < 0.0 { -sign } else { sign };
            dfs(g, adj, a, target, max_len, path, score * a[i], s, out);
            path.pop();
        }
    }
    // Out-edges per node, in edge order.
    let mut adj = vec![Vec::new(); g.nodes.len()];
    for (i, e) in g.edges.iter().enumerate() {
        adj[e.source as usize].push(i);
    }
    let mut path = vec![start];
    dfs(g, &adj, a, target, max_len, &mut path, 1.0, 1, out);
}

fn brute_chains(g: &Graph, q: &ChainQuery) -> Vec<Chain> {
    let a = normalised(g);
    let idx = |id: &str| g.nodes.iter().position(|n| n.id == id).unwrap();
    let target = idx(&q.to);
    let starts: Vec<usize> = match &q.from {
        Some(f) => vec![idx(f)],
        None => (0..g.nodes.len())
            .filter(|&v| !g.edges.iter().any(|e| e.target as usize == v))
            .collect(),
    };
    let mut paths = Vec::new();
    for s in starts {
        all_paths_up_to(
            g,
            &a,
            s,
            target,
            q.max_length.unwrap_or(usize::MAX),
            &mut paths,
        );
    }
    let through = q.through.as_deref().map(idx);
    paths.retain(|p| {
        let len = p.nodes.len() - 1;
        through.is_none_or(|t| p.nodes.contains(&t))
            && q.min_length.is_none_or(|m| len >= m)
            && q.max_length.is_none_or(|m| len <= m)
            && (!q.exclude_errors || p.nodes.iter().all(|&v| g.nodes[v].kind != NodeKind::Error))
    });
    let ids = |p: &BrutePath| {
        p.nodes
            .iter()
            .map(|&v| g.nodes[v].id.clone())
            .collect::<Vec<_>>()
    };
    paths.sort_by(|x, y| {
        y.score
            .partial_cmp(&x.score)
            .unwrap()
            .then_with(|| ids(x).cmp(&ids(y)))
    });
    paths.truncate(q.limit);
    paths
        .iter()
        .enumerate()
        .map(|(r, p)| Chain {
            rank: r + 1,
            score: p.score,
            sign: p.sign,
            nodes: ids(p),
            labels: p
                .nodes
                .iter()
                .map(|&v| g.nodes[v].display_label())
                .collect(),
        })
        .collect()
}

fn rel_close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * a.abs().max(b.abs()).max(1e-300)
}

fn assert_same_chains(got: &[Chain], want: &[Chain], tol: f64, what: &str) {
    assert_eq!(
        got.iter().map(|c| &c.nodes).collect::<Vec<_>>(),
        want.iter().map(|c| &c.nodes).collect::<Vec<_>>(),
        "{what}: paths differ"
    );
    for (g, w) in got.iter().zip(want) {
        assert!(
            rel_close(g.score, w.score, tol),
            "{what}: score {} vs {} for {:?}",
            g.score,
            w.score,
            g.nodes
        );
        assert_eq!(g.sign, w.sign, "{what}: sign of {:?}", g.nodes);
        assert_eq!(g.rank, w.rank);
        assert_eq!(g.labels, w.labels);
    }
}

fn query(to: &str) -> ChainQuery {
    ChainQuery {
        to: to.into(),
        limit: 5,
        ..Default::default()
    }
}

// ------------------------------------------------------------------ the small fixture

#[test]
fn small_fixture_parses() {
    let g = small();
    assert_eq!(g.nodes.len(), 16);
    assert_eq!(g.edges.len(), 25);
    assert_eq!(g.origin, "circuit-tracer");
    assert_eq!(g.prompt.as_deref(), Some("<bos> capital Dallas is"));
    assert_eq!(g.prompt_tokens, vec!["<bos>", " capital", " Dallas", " is"]);
    let node = |id: &str| g.nodes.iter().find(|n| n.id == id).unwrap().clone();
    // File order is kept.
    assert_eq!(g.nodes[0].id, "9_500_3");
    let t = node("9_500_3");
    assert_eq!(t.kind, NodeKind::Logit);
    assert!(t.is_target);
    assert_eq!(t.token.as_deref(), Some(" Austin"));
    assert_eq!(t.probability, Some(0.412));
    assert_eq!(t.layer, Some(9));
    assert_eq!(node("9_501_3").token.as_deref(), Some(" Texas"));
    assert!(!node("9_501_3").is_target);
    let e = node("E_200_2");
    assert_eq!(
        (e.kind, e.token.as_deref(), e.ctx_idx),
        (NodeKind::Embedding, Some(" Dallas"), 2)
    );
    assert_eq!(e.layer, None);
    assert_eq!(e.layer_name.as_deref(), Some("E"));
    assert_eq!(e.label, None);
    assert_eq!(e.display_label(), "emb \" Dallas\"@2");
    let f = node("3_20_2");
    assert_eq!(
        (f.kind, f.layer, f.feature_index, f.label.as_deref()),
        (NodeKind::Feature, Some(3), Some(20), Some("Texas"))
    );
    assert_eq!(f.activation, Some(3.0));
    assert_eq!(f.probability, None, "token_prob is kept for logits only");
    // Integer layer, null feature.
    let f = node("2_12_3");
    assert_eq!(
        (f.layer, f.feature, f.label.as_deref()),
        (Some(2), None, None)
    );
    assert_eq!(f.display_label(), "L2 2_12_3 @3");
    // A feature number beyond 2^32 that is no Cantor pairing of its layer.
    let f = node("7_40_3");
    assert_eq!((f.feature, f.feature_index), (Some(5_000_000_000), None));
    assert_eq!(f.description(), "L7 f5000000000 @3");
    assert_eq!(node("5_31_3").display_label(), "L5 f31 @3");
    let err = node("0_4_3");
    assert_eq!((err.kind, err.feature), (NodeKind::Error, Some(-1)));
    assert_eq!(err.display_label(), "error L4 @3");
    assert_eq!(node("9_500_3").description(), "logit \" Austin\"");
    // Weights.
    let w = |s: &str, t: &str| {
        let (s, t) = (g.find(s).unwrap(), g.find(t).unwrap());
        g.edges
            .iter()
            .find(|e| e.source == s && e.target == t)
            .unwrap()
            .weight
    };
    assert_eq!(w("0_1_2", "1_10_2"), -0.5);
    assert_eq!(w("7_40_3", "9_500_3"), 3.0);
}

#[test]
fn small_fixture_info() {
    let info = small().info();
    assert_eq!((info.nodes, info.edges), (16, 25));
    assert_eq!(
        info.nodes_by_kind,
        vec![
            (NodeKind::Embedding, 4),
            (NodeKind::Feature, 8),
            (NodeKind::Error, 2),
            (NodeKind::Logit, 2)
        ]
    );
    let total: u64 = info.edges_by_kind.iter().map(|x| x.2).sum();
    assert_eq!(total, 25);
    assert!(info
        .edges_by_kind
        .contains(&(NodeKind::Error, NodeKind::Logit, 1)));
    assert!(info
        .edges_by_kind
        .contains(&(NodeKind::Feature, NodeKind::Logit, 5)));
    assert_eq!(info.logits.len(), 2);
    assert_eq!(info.logits[0].node, "9_500_3");
    assert!(info.logits[0].is_target);
    assert_eq!(info.logits[0].token.as_deref(), Some(" Austin"));
    assert_eq!(info.logits[1].probability, Some(0.103));
    assert_eq!(info.origin, "circuit-tracer");
}

#[test]
fn top_level_keys_in_any_order() {
    let text = std::fs::read_to_string(fixture("small.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    // links first, then nodes, metadata last.
    let reordered = format!(
        "{{\"links\": {}, \"extra\": [1, {{\"a\": null}}], \"nodes\": {}, \"metadata\": {}}}",
        v["links"], v["nodes"], v["metadata"]
    );
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("reordered.json");
    std::fs::write(&p, reordered).unwrap();
    let g = read_circuit_tracer(&p, "small").unwrap();
    assert_eq!(g, small());
}

#[test]
fn small_chains_match_brute_force_for_many_options() {
    let g = small();
    let ids: Vec<String> = g.nodes.iter().map(|n| n.id.clone()).collect();
    let picks = ["E_200_2", "1_10_2", "3_20_2", "3_21_3", "0_4_3", "E_2_0"];
    let mut opts: Vec<Option<String>> = vec![None];
    opts.extend(picks.iter().map(|s| Some(s.to_string())));
    let p = Prepared::new(&g).unwrap();
    let mut checked = 0;
    let mut nonempty = 0;
    for to in &ids {
        for from in &opts {
            for through in &opts {
                for (min, max) in [
                    (None, None),
                    (Some(2), None),
                    (Some(3), None),
                    (None, Some(2)),
                    (Some(1), Some(3)),
                    (Some(3), Some(3)),
                    (None, Some(0)),
                    (Some(0), Some(9)),
                ] {
                    for exclude_errors in [false, true] {
                        for limit in [1, 3, 1000] {
                            let q = ChainQuery {
                                to: to.clone(),
                                from: from.clone(),
                                through: through.clone(),
                                min_length: min,
                                max_length: max,
                                exclude_errors,
                                limit,
                            };
                            let got = p.chains(&q).unwrap();
                            let want = brute_chains(&g, &q);
                            assert_same_chains(&got, &want, 1e-9, &format!("{q:?}"));
                            checked += 1;
                            nonempty += !got.is_empty() as usize;
                        }
                    }
                }
            }
        }
    }
    println!(
        "small fixture: {checked} chain queries agree with brute force ({nonempty} non-empty)"
    );
    assert!(nonempty > 1000);
}

#[test]
fn small_chains_examples_and_ties() {
    let g = small();
    let top = chains(
        &g,
        &ChainQuery {
            limit: 3,
            ..query("9_500_3")
        },
    )
    .unwrap();
    assert_eq!(top[0].rank, 1);
    // The strongest route: Dallas → L1 "Dallas" → L3 "Texas" → L7 "say Austin" → Austin.
    assert_eq!(
        top[0].nodes,
        vec!["E_200_2", "1_10_2", "3_20_2", "7_40_3", "9_500_3"]
    );
    assert_eq!(
        top[0].labels,
        vec![
            "emb \" Dallas\"@2",
            "Dallas",
            "Texas",
            "say Austin",
            "Output \" Austin\" (p=0.412)"
        ]
    );
    assert_eq!(top[0].sign, 1);
    let a = normalised(&g);
    let edge = |s: &str, t: &str| {
        let (s, t) = (g.find(s).unwrap(), g.find(t).unwrap());
        g.edges
            .iter()
            .position(|e| e.source == s && e.target == t)
            .unwrap()
    };
    let expect = a[edge("E_200_2", "1_10_2")]
        * a[edge("1_10_2", "3_20_2")]
        * a[edge("3_20_2", "7_40_3")]
        * a[edge("7_40_3", "9_500_3")];
    assert!(rel_close(top[0].score, expect, 1e-12));
    // By hand: 3/3.5 · 1.5/1.5 · 2/4 · 3/5 = 0.2571428...
    assert!(rel_close(top[0].score, 3.0 / 3.5 * 0.5 * 0.6, 1e-12));
    // A negative path: through the error node 0_1_2 (weight -0.5).
    let neg = chains(
        &g,
        &ChainQuery {
            from: Some("0_1_2".into()),
            limit: 1,
            ..query("3_20_2")
        },
    )
    .unwrap();
    assert_eq!(neg[0].nodes, vec!["0_1_2", "1_10_2", "3_20_2"]);
    assert_eq!(neg[0].sign, -1);
    // Exact tie: E_2_0 and E_300_3 both feed 2_12_3 with weight 1.0; the id sequence breaks it.
    let tie = chains(
        &g,
        &ChainQuery {
            limit: 10,
            ..query("2_12_3")
        },
    )
    .unwrap();
    assert_eq!(tie.len(), 2);
    assert_eq!(tie[0].score, tie[1].score);
    assert_eq!(tie[0].nodes, vec!["E_2_0", "2_12_3"]);
    assert_eq!(tie[1].nodes, vec!["E_300_3", "2_12_3"]);
    // EXCLUDE ERRORS drops the error paths but does not renormalise.
    let all = chains(
        &g,
        &ChainQuery {
            limit: 1000,
            ..query("9_500_3")
        },
    )
    .unwrap();
    let no_err = chains(
        &g,
        &ChainQuery {
            limit: 1000,
            exclude_errors: true,
            ..query("9_500_3")
        },
    )
    .unwrap();
    assert!(no_err.len() < all.len());
    let s_all: f64 = all.iter().map(|c| c.score).sum();
    let s_no: f64 = no_err.iter().map(|c| c.score).sum();
    assert!((s_all - 1.0).abs() < 1e-12);
    assert!(s_no < 1.0 - 1e-3);
    // The target itself as FROM: the zero-edge path.
    let me = chains(
        &g,
        &ChainQuery {
            from: Some("9_500_3".into()),
            ..query("9_500_3")
        },
    )
    .unwrap();
    assert_eq!(me.len(), 1);
    assert_eq!((me[0].score, me[0].nodes.len()), (1.0, 1));
    // A FROM that cannot reach the target: no chains, no error.
    assert!(chains(
        &g,
        &ChainQuery {
            from: Some("9_501_3".into()),
            ..query("9_500_3")
        }
    )
    .unwrap()
    .is_empty());
}

#[test]
fn scores_into_a_target_sum_to_one() {
    let g = small();
    for n in &g.nodes {
        let all = chains(
            &g,
            &ChainQuery {
                limit: 10_000,
                ..query(&n.id)
            },
        )
        .unwrap();
        let sum: f64 = all.iter().map(|c| c.score).sum();
        assert!(
            (sum - 1.0).abs() < 1e-12,
            "{}: {} paths sum to {sum}",
            n.id,
            all.len()
        );
        // Same total through influence: the sources' influences sum to 1.
        let p = Prepared::new(&g).unwrap();
        let infl = p.influence_vector(g.find(&n.id).unwrap());
        let sources: f64 = (0..g.nodes.len())
            .filter(|&v| !g.edges.iter().any(|e| e.target as usize == v))
            .map(|v| infl[v])
            .sum();
        assert!((sources - 1.0).abs() < 1e-12);
    }
}

#[test]
fn influence_matches_brute_force() {
    let g = small();
    let a = normalised(&g);
    for t in 0..g.nodes.len() {
        let target = g.nodes[t].id.clone();
        let got = influence(&g, &target, 1000).unwrap();
        let mut want: Vec<(String, f64)> = Vec::new();
        for v in 0..g.nodes.len() {
            if v == t {
                continue;
            }
            let mut paths = Vec::new();
            all_paths_from(&g, &a, v, t, &mut paths);
            let s: f64 = paths.iter().map(|p| p.score).sum();
            if s > 0.0 {
                want.push((g.nodes[v].id.clone(), s));
            }
        }
        want.sort_by(|x, y| y.1.partial_cmp(&x.1).unwrap().then_with(|| x.0.cmp(&y.0)));
        assert_eq!(got.len(), want.len(), "{target}");
        for (gi, (wid, ws)) in got.iter().zip(&want) {
            assert!(
                rel_close(gi.influence, *ws, 1e-9),
                "{target}: {} {} vs {wid} {ws}",
                gi.node,
                gi.influence
            );
            // Order may differ only between nodes whose sums agree to rounding.
            if &gi.node != wid {
                let other = want.iter().find(|w| w.0 == gi.node).unwrap();
                assert!(rel_close(other.1, *ws, 1e-12));
            }
        }
    }
    let top = influence(&g, "9_500_3", 3).unwrap();
    assert_eq!(top.len(), 3);
    // L1 "Dallas" feeds most routes into " Austin".
    assert_eq!(top[0].node, "1_10_2");
    assert_eq!(top[0].label, "Dallas");
    assert_eq!(top[0].kind, NodeKind::Feature);
    // Limits.
    assert!(matches!(
        influence(&g, "9_500_3", 0),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        influence(&g, "9_500_3", 1_000_001),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        influence(&g, "nope", 5),
        Err(Error::UnknownNode { .. })
    ));
}

#[test]
fn bad_chain_queries() {
    let g = small();
    let e = chains(&g, &query("nope")).unwrap_err();
    assert!(
        matches!(&e, Error::UnknownNode { node, graph } if node == "nope" && graph == "small"),
        "{e}"
    );
    let e = chains(
        &g,
        &ChainQuery {
            from: Some("x".into()),
            ..query("9_500_3")
        },
    )
    .unwrap_err();
    assert!(matches!(e, Error::UnknownNode { .. }));
    let e = chains(
        &g,
        &ChainQuery {
            through: Some("y".into()),
            ..query("9_500_3")
        },
    )
    .unwrap_err();
    assert!(matches!(e, Error::UnknownNode { .. }));
    for limit in [0, 10_001] {
        let e = chains(
            &g,
            &ChainQuery {
                limit,
                ..query("9_500_3")
            },
        )
        .unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    }
    let e = chains(
        &g,
        &ChainQuery {
            min_length: Some(4),
            max_length: Some(2),
            ..query("9_500_3")
        },
    )
    .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    // Huge MAX LENGTH is capped by the graph's depth, not allocated.
    let ok = chains(
        &g,
        &ChainQuery {
            max_length: Some(usize::MAX),
            min_length: Some(1_000_000),
            ..query("9_500_3")
        },
    )
    .unwrap();
    assert!(ok.is_empty());
    let ok = chains(
        &g,
        &ChainQuery {
            max_length: Some(usize::MAX),
            ..query("9_500_3")
        },
    )
    .unwrap();
    assert_eq!(ok, chains(&g, &query("9_500_3")).unwrap());
}

// ------------------------------------------------------------------ malformed files

fn write_tmp(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn bad(dir: &Path, name: &str, text: &str, needles: &[&str]) {
    let p = write_tmp(dir, name, text);
    let e = read_circuit_tracer(&p, "bad").unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::BadInput { .. }), "{name}: {msg}");
    assert!(
        msg.contains(name),
        "{name}: the message names the file: {msg}"
    );
    for n in needles {
        assert!(msg.contains(n), "{name}: expected {n:?} in: {msg}");
    }
    println!("{name}: {msg}");
}

#[test]
fn malformed_graphs_are_rejected_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = std::fs::read_to_string(fixture("small.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = v.clone();
        f(&mut v);
        serde_json::to_string(&v).unwrap()
    };
    // Dangling edge.
    let t = with(&|v| v["links"][4]["target"] = "nowhere".into());
    bad(
        d,
        "dangling.json",
        &t,
        &["links[4]", "'nowhere'", "not a node"],
    );
    // Duplicate node id.
    let t = with(&|v| v["nodes"][7]["node_id"] = "3_20_2".into());
    bad(d, "dup.json", &t, &["nodes[7]", "duplicate", "'3_20_2'"]);
    // Cycle: the target logit feeds an embedding that reaches it.
    let t = with(&|v| {
        v["links"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"source": "9_500_3", "target": "E_2_0", "weight": 1.0}))
    });
    bad(d, "cycle.json", &t, &["cycle", "'9_500_3'"]);
    let t = with(&|v| {
        v["links"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"source": "5_31_3", "target": "5_31_3", "weight": 1.0}))
    });
    bad(d, "selfloop.json", &t, &["cycle", "'5_31_3'"]);
    // Missing fields.
    let t = with(&|v| {
        v["nodes"][3]
            .as_object_mut()
            .unwrap()
            .remove("feature_type");
    });
    bad(d, "nofeaturetype.json", &t, &["nodes[3]", "feature_type"]);
    let t = with(&|v| {
        v["nodes"][5].as_object_mut().unwrap().remove("node_id");
    });
    bad(d, "nonodeid.json", &t, &["nodes[5]", "node_id"]);
    let t = with(&|v| {
        v["links"][2].as_object_mut().unwrap().remove("weight");
    });
    bad(d, "noweight.json", &t, &["links[2]", "weight"]);
    let t = with(&|v| {
        v["links"][6].as_object_mut().unwrap().remove("source");
    });
    bad(d, "nosource.json", &t, &["links[6]", "source"]);
    let t = with(&|v| {
        v.as_object_mut().unwrap().remove("links");
    });
    bad(d, "nolinks.json", &t, &["links"]);
    // Non-finite weights: JSON has no NaN literal, so: overflow, strings, Python's bare NaN.
    let t = with(&|v| v["links"][3]["weight"] = "NaN".into());
    bad(d, "nanstring.json", &t, &["links[3]", "\"NaN\"", "finite"]);
    let t = with(&|v| v["links"][3]["weight"] = "Infinity".into());
    bad(d, "infstring.json", &t, &["links[3]", "finite"]);
    let t = with(&|v| v["links"][8]["weight"] = serde_json::Value::Null);
    bad(d, "nullweight.json", &t, &["links[8]", "null"]);
    let compact = with(&|_| {});
    let t = compact.replacen("\"weight\":1.5", "\"weight\":1e999", 1);
    assert_ne!(t, compact);
    bad(d, "overflow.json", &t, &["links[5]", "out of range"]);
    let t = compact.replacen("\"weight\":1.5", "\"weight\":NaN", 1);
    bad(d, "barenan.json", &t, &["links[5]"]);
    // Wrong types, truncation, not a graph at all.
    let t = with(&|v| v["nodes"][2]["ctx_idx"] = (-1).into());
    bad(d, "negctx.json", &t, &["nodes[2]", "ctx_idx"]);
    let t = with(&|v| v["nodes"][2]["layer"] = serde_json::json!([1]));
    bad(d, "layerarray.json", &t, &["nodes[2]", "layer"]);
    let t = with(&|v| v["nodes"][2]["feature"] = serde_json::json!(1e30));
    bad(d, "featurefloat.json", &t, &["nodes[2]", "feature"]);
    bad(d, "truncated.json", &compact[..compact.len() / 2], &["EOF"]);
    bad(
        d,
        "array.json",
        "[1, 2, 3]",
        &["not a circuit-tracer graph"],
    );
    bad(d, "empty.json", "", &["EOF"]);
    bad(d, "trailing.json", &format!("{compact} x"), &["trailing"]);
    // A missing file is an I/O error that names it.
    let e = read_circuit_tracer(&d.join("missing.json"), "x").unwrap_err();
    assert!(
        matches!(e, Error::Io { .. }) && e.to_string().contains("missing.json"),
        "{e}"
    );
    // A graph built in memory is validated the same way.
    let mut g = small();
    g.edges[0].weight = f64::NAN;
    let e = g.validate().unwrap_err().to_string();
    assert!(e.contains("non-finite") && e.contains("edge 0"), "{e}");
    let mut g = small();
    g.edges.push(g.edges[0]);
    assert!(g
        .validate()
        .unwrap_err()
        .to_string()
        .contains("duplicate edge"));
    let mut g = small();
    g.edges.push(Edge {
        source: 0,
        target: 99,
        weight: 1.0,
    });
    assert!(g.validate().unwrap_err().to_string().contains("99"));
}

// ------------------------------------------------------------------ random DAGs

fn random_graph(n: usize, edges: &[(usize, usize, i8)], error_mask: u32) -> Graph {
    let mut g = Graph {
        name: "rand".into(),
        origin: "test".into(),
        ..Default::default()
    };
    for i in 0..n {
        let kind = if error_mask >> i & 1 == 1 {
            NodeKind::Error
        } else {
            NodeKind::Feature
        };
        // Ids whose string order differs from index order.
        g.nodes
            .push(Node::new(format!("n{}", (i * 7) % 13 + 13 * i), kind));
    }
    let mut seen = std::collections::HashSet::new();
    for &(s, t, w) in edges {
        let (s, t) = (s % n, t % n);
        if s == t {
            continue;
        }
        let (s, t) = (s.min(t), s.max(t));
        if seen.insert((s, t)) {
            // Weights from a small set so that exact ties occur.
            let w = [-2.0, -1.0, -0.5, 0.5, 1.0, 1.0, 2.0, 0.25][(w as u8 % 8) as usize];
            g.edges.push(Edge {
                source: s as u32,
                target: t as u32,
                weight: w,
            });
        }
    }
    g
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, .. ProptestConfig::default() })]
    #[test]
    fn dp_matches_brute_force_on_random_dags(
        n in 2usize..11,
        edges in prop::collection::vec((0usize..11, 0usize..11, any::<i8>()), 0..40),
        error_mask in any::<u32>(),
        to in 0usize..11, from in prop::option::of(0usize..11), through in prop::option::of(0usize..11),
        min in prop::option::of(0usize..5), max in prop::option::of(0usize..6),
        exclude_errors in any::<bool>(), limit in 1usize..8,
    ) {
        let g = random_graph(n, &edges, error_mask);
        let id = |i: usize| g.nodes[i % n].id.clone();
        let (min, max) = match (min, max) { (Some(a), Some(b)) if a > b => (Some(b), Some(a)), x => x };
        let q = ChainQuery {
            to: id(to), from: from.map(id), through: through.map(id),
            min_length: min, max_length: max, exclude_errors, limit,
        };
        let got = chains(&g, &q).unwrap();
        let want = brute_chains(&g, &q);
        assert_same_chains(&got, &want, 1e-9, &format!("{q:?}"));
        // Influence equals the brute-force sum of path scores.
        let a = normalised(&g);
        let p = Prepared::new(&g).unwrap();
        let infl = p.influence_vector((to % n) as u32);
        for (v, &iv) in infl.iter().enumerate() {
            let mut paths = Vec::new();
            all_paths_from(&g, &a, v, to % n, &mut paths);
            let s: f64 = paths.iter().map(|p| p.score).sum();
            prop_assert!(rel_close(iv, s, 1e-9) || (iv - s).abs() < 1e-15);
        }
    }
}

// ------------------------------------------------------------------ direct-path attribution

/// A tiny deterministic generator (xorshift) for test data.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn f32(&mut self) -> f32 {
        (self.next() % 2_000_001) as f32 / 1_000_000.0 - 1.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn direct_path_weights_are_dot_products() {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let d = 48;
    let d_sae = 300;
    // Full random dictionaries for three layers; the test gathers rows and columns itself.
    let mut layers = Vec::new();
    let mut full = Vec::new();
    for (li, layer) in [2u32, 4, 7].iter().enumerate() {
        let w_enc: Vec<f32> = (0..d * d_sae).map(|_| rng.f32()).collect(); // [d, d_sae]
        let w_dec: Vec<f32> = (0..d_sae * d).map(|_| rng.f32()).collect(); // [d_sae, d]
        let mut active: Vec<(u32, f32)> = Vec::new();
        while active.len() < 12 {
            let f = rng.below(d_sae as u64) as u32;
            if !active.iter().any(|x| x.0 == f) {
                active.push((f, rng.f32().abs() * 5.0 + 0.1));
            }
        }
        let w_dec_rows = active
            .iter()
            .flat_map(|&(f, _)| w_dec[f as usize * d..(f as usize + 1) * d].to_vec())
            .collect();
        let mut w_enc_cols = vec![0f32; d * active.len()];
        for r in 0..d {
            for (j, &(f, _)) in active.iter().enumerate() {
                w_enc_cols[r * active.len() + j] = w_enc[r * d_sae + f as usize];
            }
        }
        let labels = active
            .iter()
            .map(|&(f, _)| (f % 3 == 0).then(|| format!("feature {f} of L{layer}")))
            .collect();
        layers.push(DirectLayer {
            dict: format!("L{layer}"),
            layer: *layer,
            d_in: d,
            active,
            w_dec_rows,
            w_enc_cols,
            labels,
        });
        full.push((w_enc, w_dec));
        let _ = li;
    }
    let w_u: Vec<f32> = (0..d).map(|_| rng.f32()).collect();
    let src = DirectSource {
        doc: 3,
        pos: 2,
        tokens: vec!["[CLS]".into(), " the".into(), " cat".into(), " sat".into()],
    };
    let g = direct_path_graph("kobe", &layers, &w_u, " Austin", &src).unwrap();
    assert_eq!(g.origin, "direct-path");
    assert_eq!(g.prompt_tokens, vec!["[CLS]", " the", " cat"]);
    assert_eq!(g.nodes.len(), 3 * 12 + 1);
    let target = logit_node_id(" Austin");
    assert_eq!(target, "logit \" Austin\"");
    assert_eq!(g.nodes.last().unwrap().id, target);
    // Every pair of features on increasing layers, and every feature into the logit.
    assert_eq!(g.edges.len(), 12 * 12 * 3 + 36);
    let dot = |x: &[f32], y: &[f32]| {
        x.iter()
            .zip(y)
            .map(|(a, b)| *a as f64 * *b as f64)
            .sum::<f64>()
    };
    let mut checked = 0;
    for e in &g.edges {
        let s = &g.nodes[e.source as usize];
        let t = &g.nodes[e.target as usize];
        let (sl, sf) = s.id.split_once('/').unwrap();
        let li = layers.iter().position(|l| l.dict == sl).unwrap();
        let f: usize = sf.parse().unwrap();
        let a = layers[li]
            .active
            .iter()
            .find(|x| x.0 as usize == f)
            .unwrap()
            .1 as f64;
        assert_eq!(s.activation, Some(a));
        let dec_row = &full[li].1[f * d..(f + 1) * d];
        let want = if t.kind == NodeKind::Logit {
            a * dot(dec_row, &w_u)
        } else {
            let (tl, tf) = t.id.split_once('/').unwrap();
            let lj = layers.iter().position(|l| l.dict == tl).unwrap();
            assert!(layers[lj].layer > layers[li].layer);
            let g_: usize = tf.parse().unwrap();
            let col: Vec<f32> = (0..d).map(|r| full[lj].0[r * d_sae + g_]).collect();
            a * dot(dec_row, &col)
        };
        let scale = a * 10.0; // |dot| ≤ d; f32 accumulation error is ~1e-6 of the terms' size
        assert!(
            (e.weight - want).abs() <= 1e-5 * scale,
            "{} -> {}: {} vs {want}",
            s.id,
            t.id,
            e.weight
        );
        checked += 1;
    }
    println!("direct-path: {checked} edge weights match dot products");
    // Labels and descriptions.
    let lab = g.nodes.iter().find(|n| n.label.is_some()).unwrap();
    assert!(lab.display_label().starts_with("feature "));
    let unl = g
        .nodes
        .iter()
        .find(|n| n.kind == NodeKind::Feature && n.label.is_none())
        .unwrap();
    assert_eq!(
        unl.display_label(),
        format!("L{} f{} @2", unl.layer.unwrap(), unl.feature_index.unwrap())
    );
    // Chains run on it; sources are the lowest layer's features.
    let top = chains(
        &g,
        &ChainQuery {
            to: target.clone(),
            limit: 5,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(top.len(), 5);
    for c in &top {
        assert!(c.nodes[0].starts_with("L2/"));
    }
    let sum: f64 = chains(
        &g,
        &ChainQuery {
            to: target.clone(),
            limit: 10_000,
            ..Default::default()
        },
    )
    .unwrap()
    .iter()
    .map(|c| c.score)
    .sum();
    assert!((sum - 1.0).abs() < 1e-9, "{sum}");
    let with_min = chains(
        &g,
        &ChainQuery {
            to: target,
            limit: 5,
            min_length: Some(3),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(with_min.iter().all(|c| c.nodes.len() == 4));
    // Mismatched shapes are errors, not panics.
    let mut broken = layers.clone();
    broken[1].w_dec_rows.pop();
    assert!(matches!(
        direct_path_graph("x", &broken, &w_u, "t", &src),
        Err(Error::Mismatch(_))
    ));
    assert!(matches!(
        direct_path_graph("x", &layers, &w_u[1..], "t", &src),
        Err(Error::Mismatch(_))
    ));
    let far = DirectSource {
        pos: 9,
        ..src.clone()
    };
    assert!(matches!(
        direct_path_graph("x", &layers, &w_u, "t", &far),
        Err(Error::PositionOutOfRange { .. })
    ));
    let mut nan = layers.clone();
    nan[0].active[0].1 = f32::NAN;
    assert!(direct_path_graph("x", &nan, &w_u, "t", &src).is_err());
}

// ------------------------------------------------------------------ speed (printed, not asserted)

#[test]
fn chains_on_5k_nodes_100k_edges() {
    let mut rng = Rng(42);
    let n = 5_000usize;
    let layers = 25;
    let per = n / layers;
    let mut g = Graph {
        name: "synthetic".into(),
        origin: "test".into(),
        ..Default::default()
    };
    for i in 0..n {
        let kind = if i < per {
            NodeKind::Embedding
        } else if i % 10 == 0 {
            NodeKind::Error
        } else {
            NodeKind::Feature
        };
        g.nodes.push(Node::new(format!("{}_{}", i / per, i), kind));
    }
    let target = n as u32;
    let mut t = Node::new("logit", NodeKind::Logit);
    t.is_target = true;
    g.nodes.push(t);
    let mut seen = std::collections::HashSet::new();
    while g.edges.len() < 100_000 {
        let s = rng.below((n - per) as u64) as usize;
        let ls = s / per;
        let t = if rng.below(20) == 0 {
            target as usize
        } else {
            let lt = ls + 1 + rng.below((layers - ls - 1).max(1) as u64) as usize;
            if lt >= layers {
                continue;
            }
            lt * per + rng.below(per as u64) as usize
        };
        if seen.insert((s, t)) {
            g.edges.push(Edge {
                source: s as u32,
                target: t as u32,
                weight: rng.f32() as f64 + 0.001,
            });
        }
    }
    let t0 = Instant::now();
    g.validate().unwrap();
    let t_validate = t0.elapsed();
    let t0 = Instant::now();
    let p = Prepared::new(&g).unwrap();
    let t_prep = t0.elapsed();
    let mut report = Vec::new();
    let q = ChainQuery {
        to: "logit".into(),
        limit: 10,
        ..Default::default()
    };
    for (name, q) in [
        ("top 10", q.clone()),
        (
            "top 100",
            ChainQuery {
                limit: 100,
                ..q.clone()
            },
        ),
        (
            "min 5 exclude errors",
            ChainQuery {
                min_length: Some(5),
                exclude_errors: true,
                ..q.clone()
            },
        ),
        (
            "through + max 8",
            ChainQuery {
                through: Some(g.nodes[2500].id.clone()),
                max_length: Some(8),
                ..q.clone()
            },
        ),
        (
            "from",
            ChainQuery {
                from: Some(g.nodes[7].id.clone()),
                ..q.clone()
            },
        ),
    ] {
        // Best of 5 runs (the machine is shared).
        let mut best = f64::INFINITY;
        let mut r = Vec::new();
        for _ in 0..5 {
            let t0 = Instant::now();
            r = p.chains(&q).unwrap();
            best = best.min(t0.elapsed().as_secs_f64() * 1e3);
        }
        report.push(format!("{name}: {best:.2} ms ({} chains)", r.len()));
    }
    let t0 = Instant::now();
    let whole = chains(&g, &q).unwrap();
    let t_whole = t0.elapsed();
    assert_eq!(whole.len(), 10);
    let t0 = Instant::now();
    let infl = influence(&g, "logit", 20).unwrap();
    let t_infl = t0.elapsed();
    assert_eq!(infl.len(), 20);
    println!(
        "synthetic graph {} nodes / {} edges: validate {:.2} ms, prepare (CSR + topo + normalise) {:.2} ms, \
         chains() incl. prepare {:.2} ms, influence() {:.2} ms; on prepared: {}",
        g.nodes.len(),
        g.edges.len(),
        t_validate.as_secs_f64() * 1e3,
        t_prep.as_secs_f64() * 1e3,
        t_whole.as_secs_f64() * 1e3,
        t_infl.as_secs_f64() * 1e3,
        report.join("; ")
    );
}

// ------------------------------------------------------------------ real graphs (../shared)

/// An independent plain DP: per (node, exact length, through-flag) the k best complete paths,
/// materialised as vectors, nodes visited in a DFS post-order topological order.
fn plain_dp(g: &Graph, q: &ChainQuery) -> Vec<Chain> {
    let n = g.nodes.len();
    let a = normalised(g);
    let idx = |id: &str| g.nodes.iter().position(|x| x.id == id).unwrap();
    let target = idx(&q.to);
    let through = q.through.as_deref().map(idx);
    // Topological order by DFS.
    let mut order = Vec::new();
    let mut mark = vec![0u8; n];
    fn visit(g: &Graph, u: usize, mark: &mut [u8], order: &mut Vec<usize>) {
        if mark[u] != 0 {
            return;
        }
        mark[u] = 1;
        for e in g.edges.iter().filter(|e| e.source as usize == u) {
            visit(g, e.target as usize, mark, order);
        }
        order.push(u);
    }
    for u in 0..n {
        visit(g, u, &mut mark, &mut order);
    }
    order.reverse();
    let maxlen = n;
    let excluded = |v: usize| q.exclude_errors && g.nodes[v].kind == NodeKind::Error;
    type P = (f64, i8, Vec<usize>);
    let mut best: Vec<std::collections::HashMap<(usize, bool), Vec<P>>> =
        vec![Default::default(); n];
    let is_source = |v: usize| match &q.from {
        Some(f) => v == idx(f),
        None => !g.edges.iter().any(|e| e.target as usize == v),
    };
    let key = |a: &P, b: &P| -> Ordering {
        b.0.partial_cmp(&a.0).unwrap().then_with(|| {
            let ia: Vec<&str> = a.2.iter().map(|&v| g.nodes[v].id.as_str()).collect();
            let ib: Vec<&str> = b.2.iter().map(|&v| g.nodes[v].id.as_str()).collect();
            ia.cmp(&ib)
        })
    };
    for &u in &order {
        if excluded(u) {
            continue;
        }
        if is_source(u) {
            best[u]
                .entry((0, Some(u) == through))
                .or_default()
                .push((1.0, 1, vec![u]));
        }
        if u == target {
            break;
        }
        let states: Vec<((usize, bool), Vec<P>)> = best[u].drain().collect();
        for (i, e) in g
            .edges
            .iter()
            .enumerate()
            .filter(|(_, e)| e.source as usize == u)
        {
            let v = e.target as usize;
            if excluded(v) {
                continue;
            }
            for ((len, flag), list) in &states {
                if len + 1 > maxlen {
                    continue;
                }
                let slot = best[v]
                    .entry((len + 1, *flag || Some(v) == through))
                    .or_default();
                for (s, sg, path) in list {
                    let mut p = path.clone();
                    p.push(v);
                    slot.push((s * a[i], if e.weight < 0.0 { -sg } else { *sg }, p));
                }
                slot.sort_by(key);
                slot.truncate(q.limit);
            }
        }
    }
    let mut all: Vec<P> = best[target]
        .iter()
        .filter(|((len, flag), _)| {
            q.min_length.is_none_or(|m| *len >= m)
                && q.max_length.is_none_or(|m| *len <= m)
                && (through.is_none() || *flag)
        })
        .flat_map(|(_, l)| l.clone())
        .collect();
    all.sort_by(key);
    all.truncate(q.limit);
    all.into_iter()
        .enumerate()
        .map(|(r, (score, sign, p))| Chain {
            rank: r + 1,
            score,
            sign,
            nodes: p.iter().map(|&v| g.nodes[v].id.clone()).collect(),
            labels: p.iter().map(|&v| g.nodes[v].display_label()).collect(),
        })
        .collect()
}

fn python_like_counts(path: &Path) -> (usize, usize) {
    // Independent count with serde_json::Value (fine for the small real files).
    let v: serde_json::Value =
        serde_json::from_reader(std::io::BufReader::new(std::fs::File::open(path).unwrap()))
            .unwrap();
    (
        v["nodes"].as_array().unwrap().len(),
        v["links"].as_array().unwrap().len(),
    )
}

#[test]
fn real_graphs_parse_with_the_right_counts() {
    let Some(dir) = shared_graphs() else { return };
    for (file, nodes, links, target, token) in [
        ("capital-dallas.json", 322, 3506, "27_22605_7", " Austin"),
        (
            "capital-dallas-labelled.json",
            415,
            4944,
            "27_22605_10",
            " Austin",
        ),
        ("opposite-small.json", 341, 2744, "27_13210_8", "large"),
    ] {
        let p = dir.join(file);
        let t0 = Instant::now();
        let g = read_circuit_tracer(&p, file).unwrap();
        let dt = t0.elapsed();
        assert_eq!((g.nodes.len(), g.edges.len()), (nodes, links), "{file}");
        assert_eq!(python_like_counts(&p), (nodes, links));
        let info = g.info();
        assert_eq!(
            info.logits.iter().filter(|l| l.is_target).count(),
            1,
            "{file}"
        );
        assert_eq!(info.logits[0].node, target);
        assert_eq!(info.logits[0].token.as_deref(), Some(token));
        assert_eq!(info.logits.len(), 10);
        assert!(info.prompt_tokens.len() >= 8);
        // Every embedding got its token, every feature its index.
        for n in &g.nodes {
            match n.kind {
                NodeKind::Embedding => assert_eq!(
                    n.token.as_deref(),
                    Some(info.prompt_tokens[n.ctx_idx as usize].as_str())
                ),
                NodeKind::Feature => {
                    let idx = n.feature_index.unwrap();
                    let parts: Vec<&str> = n.id.split('_').collect();
                    assert_eq!(parts[1].parse::<u64>().unwrap(), idx, "{}", n.id);
                }
                _ => {}
            }
        }
        println!(
            "{file}: {nodes} nodes, {links} links, parsed in {:.1} ms; {:?}",
            dt.as_secs_f64() * 1e3,
            info.nodes_by_kind
        );
    }
}

#[test]
fn capital_dallas_chains_match_an_independent_dp() {
    let Some(dir) = shared_graphs() else { return };
    let g = read_circuit_tracer(&dir.join("capital-dallas.json"), "dallas").unwrap();
    let t = "27_22605_7";
    assert_eq!(
        g.nodes[g.find(t).unwrap() as usize].token.as_deref(),
        Some(" Austin")
    );
    let p = Prepared::new(&g).unwrap();
    let q = ChainQuery {
        to: t.into(),
        limit: 10,
        ..Default::default()
    };
    let variants = [
        q.clone(),
        ChainQuery {
            limit: 50,
            ..q.clone()
        },
        ChainQuery {
            from: Some("E_26865_6".into()),
            ..q.clone()
        },
        ChainQuery {
            from: Some("E_26865_6".into()),
            min_length: Some(3),
            exclude_errors: true,
            limit: 5,
            ..q.clone()
        },
        ChainQuery {
            min_length: Some(4),
            ..q.clone()
        },
        ChainQuery {
            max_length: Some(2),
            exclude_errors: true,
            ..q.clone()
        },
        ChainQuery {
            min_length: Some(2),
            max_length: Some(4),
            ..q.clone()
        },
    ];
    for q in &variants {
        let got = p.chains(q).unwrap();
        let want = plain_dp(&g, q);
        assert!(!got.is_empty(), "{q:?}");
        assert_same_chains(&got, &want, 1e-6, &format!("{q:?}"));
    }
    // A THROUGH query on a node of the best chain.
    let best = p.chains(&q).unwrap();
    let mid = best[0].nodes[best[0].nodes.len() / 2].clone();
    let qt = ChainQuery {
        through: Some(mid),
        ..q.clone()
    };
    assert_same_chains(&p.chains(&qt).unwrap(), &plain_dp(&g, &qt), 1e-6, "through");
    // Brute force on the short paths (a small, fully enumerable part of the graph).
    for max in [1, 2, 3] {
        let qb = ChainQuery {
            max_length: Some(max),
            limit: 10_000,
            ..q.clone()
        };
        let want = brute_chains(&g, &qb);
        assert!(want.len() < 10_000);
        assert_same_chains(
            &p.chains(&qb).unwrap(),
            &want,
            1e-9,
            &format!("brute force, max length {max}"),
        );
        println!(
            "capital-dallas: {} paths of at most {max} edges into {t} agree with brute force",
            want.len()
        );
    }
    // All paths from the sources carry the whole attribution: the sources' influence sums to 1.
    let infl = p.influence_vector(g.find(t).unwrap());
    let sources: f64 = (0..g.nodes.len())
        .filter(|&v| !g.edges.iter().any(|e| e.target as usize == v))
        .map(|v| infl[v])
        .sum();
    assert!((sources - 1.0).abs() < 1e-9, "{sources}");
    for c in best.iter().take(5) {
        println!(
            "#{} {:.5} {:+} {}",
            c.rank,
            c.score,
            c.sign,
            c.labels.join(" → ")
        );
    }
}

#[test]
fn labelled_dallas_to_austin_shows_labels() {
    let Some(dir) = shared_graphs() else { return };
    let g =
        read_circuit_tracer(&dir.join("capital-dallas-labelled.json"), "dallas-labelled").unwrap();
    let dallas = g
        .nodes
        .iter()
        .find(|n| n.kind == NodeKind::Embedding && n.token.as_deref() == Some(" Dallas"))
        .unwrap();
    assert_eq!(dallas.id, "E_26865_9");
    let austin = g.nodes.iter().find(|n| n.is_target).unwrap();
    assert_eq!(austin.token.as_deref(), Some(" Austin"));
    let q = ChainQuery {
        to: austin.id.clone(),
        from: Some(dallas.id.clone()),
        limit: 10,
        ..Default::default()
    };
    let top = chains(&g, &q).unwrap();
    assert_eq!(top.len(), 10);
    assert_same_chains(&top, &plain_dp(&g, &q), 1e-6, "labelled");
    let mut labelled_features = 0;
    for c in &top {
        println!(
            "#{} {:.5} {:+} {}",
            c.rank,
            c.score,
            c.sign,
            c.labels.join(" → ")
        );
        for (id, label) in c.nodes.iter().zip(&c.labels) {
            let n = &g.nodes[g.find(id).unwrap() as usize];
            if let (NodeKind::Feature, Some(stored)) = (n.kind, &n.label) {
                assert_eq!(label, stored);
                assert!(!label.trim().is_empty());
                labelled_features += 1;
            }
        }
    }
    assert!(labelled_features > 0);
    let words = top
        .iter()
        .flat_map(|c| c.labels.iter())
        .map(|l| l.to_lowercase())
        .collect::<Vec<_>>()
        .join(" | ");
    assert!(
        words.contains("texas") || words.contains("dallas"),
        "{words}"
    );
    let longer = chains(
        &g,
        &ChainQuery {
            min_length: Some(3),
            exclude_errors: true,
            ..q.clone()
        },
    )
    .unwrap();
    for c in longer.iter().take(5) {
        println!(
            "min 3: #{} {:.5} {:+} {}",
            c.rank,
            c.score,
            c.sign,
            c.labels.join(" → ")
        );
    }
    let infl = influence(&g, &austin.id, 10).unwrap();
    for i in &infl {
        println!("influence {:.4} {:?} {}", i.influence, i.kind, i.label);
    }
}

/// DROP GRAPH: the graph and its name go in one commit, other graphs stay, the name can be
/// used again, and the store checks clean (also after reopening).
#[test]
fn dropping_a_graph_removes_it_whole() {
    use saedb_engine::{NoProgress, Store};
    let dir = tempfile::tempdir().unwrap();
    let s = Store::create_or_open(dir.path()).unwrap();
    let file = fixture("small.json");
    s.ingest_graph("a", &file, &NoProgress).unwrap();
    s.ingest_graph("b", &file, &NoProgress).unwrap();
    let want = small();
    let dropped = s.drop_graph("a").unwrap();
    assert_eq!(
        (dropped.nodes, dropped.edges),
        (want.nodes.len() as u64, want.edges.len() as u64)
    );
    let names: Vec<String> = s.graphs().unwrap().into_iter().map(|g| g.name).collect();
    assert_eq!(names, ["b"]);
    assert!(matches!(s.graph("a"), Err(Error::UnknownGraph { .. })));
    let q = query(&want.nodes[want.nodes.len() - 1].id);
    assert!(matches!(s.chains("a", &q), Err(Error::UnknownGraph { .. })));
    assert!(matches!(s.drop_graph("a"), Err(Error::UnknownGraph { .. })));
    assert_eq!(s.graph("b").unwrap().edges, want.edges);
    assert!(s.check().unwrap().is_ok());
    drop(s);
    let s = Store::open(dir.path()).unwrap();
    assert!(matches!(s.graph("a"), Err(Error::UnknownGraph { .. })));
    s.ingest_graph("a", &file, &NoProgress).unwrap();
    assert_eq!(s.graph("a").unwrap().edges, want.edges);
    assert!(s.check().unwrap().is_ok());
    let ro = Store::open_read_only(dir.path());
    drop(s);
    let e = ro
        .or_else(|_| Store::open_read_only(dir.path()))
        .unwrap()
        .drop_graph("a");
    assert!(e.unwrap_err().to_string().contains("read-only"));
}
