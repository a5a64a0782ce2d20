//! Per-source counts, most frequent tokens, label import and feature maps, on the real MiniLM
//! fixture, each checked against a computation of its own from the input files.

use crate::common;

use saedb_engine::{Architecture, DictionaryWeights, FeatureRef, IndexBuild, NoProgress, Store};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/minilm-mini")
}

fn mini_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create_or_open(dir.path().join("s")).unwrap();
    common::load_minilm(&store, &fixtures(), &["L2"], true, &["L2"]);
    (dir, store)
}

/// (doc → (source, tokens)) from tokens.jsonl, read with serde_json apart from the engine.
fn documents() -> HashMap<u32, (String, Vec<String>)> {
    let text = std::fs::read_to_string(fixtures().join("tokens.jsonl")).unwrap();
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let tokens = v["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_string())
                .collect();
            (
                v["doc"].as_u64().unwrap() as u32,
                (v["source"].as_str().unwrap_or("").to_string(), tokens),
            )
        })
        .collect()
}

#[test]
fn by_source_and_frequent_tokens_match_a_count_of_the_activations() {
    let (_d, store) = mini_store();
    let docs = documents();
    let mut checked = 0;
    for index in [0u32, 7, 42, 100, 311] {
        let f = FeatureRef::new("L2", index);
        let acts = store.activations_of(&f).unwrap();
        let mut by_source: HashMap<String, u64> = HashMap::new();
        let mut by_token: HashMap<String, u64> = HashMap::new();
        for a in &acts {
            let (source, tokens) = &docs[&a.doc];
            *by_source.entry(source.clone()).or_default() += 1;
            *by_token.entry(tokens[a.pos as usize].clone()).or_default() += 1;
        }
        let got = store.activations_by_source(&f).unwrap();
        assert_eq!(got.len(), by_source.len(), "{f}");
        for s in &got {
            assert_eq!(s.count, by_source[&s.source], "{f} {}", s.source);
            assert!((s.share - s.count as f64 / acts.len() as f64).abs() < 1e-12);
        }
        let top = store.frequent_tokens(&f, 3).unwrap();
        let mut expected: Vec<(u64, String)> = by_token.into_iter().map(|(t, c)| (c, t)).collect();
        expected.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        expected.truncate(3);
        let got: Vec<(u64, String)> = top.into_iter().map(|t| (t.count, t.token)).collect();
        assert_eq!(got, expected, "{f}");
        checked += usize::from(!acts.is_empty());
    }
    assert!(checked >= 3, "most sampled features fire");
}

#[test]
fn source_counts_add_up_to_the_feature_count() {
    let (_d, store) = mini_store();
    for index in [1u32, 7, 250] {
        let f = FeatureRef::new("L2", index);
        let total: u64 = store
            .activations_by_source(&f)
            .unwrap()
            .iter()
            .map(|s| s.count)
            .sum();
        assert_eq!(total, store.feature_stats(&f).unwrap().count, "{f}");
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::File::create(&p)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    p
}

#[test]
fn label_import_counts_new_replaced_skipped_and_is_all_or_nothing() {
    let (dir, store) = mini_store();
    store
        .set_label(&FeatureRef::new("L2", 3), "old three")
        .unwrap();
    store.set_label(&FeatureRef::new("L2", 4), "four").unwrap();
    let jsonl = write(
        dir.path(),
        "np.jsonl",
        r#"{"modelId":"m","layer":"2-res","index":"3","description":"new three","explanationModelName":"x"}
{"modelId":"m","layer":"2-res","index":"3","description":"second explanation of three"}
{"index":4,"description":"four"}
{"index":5,"description":"  "}
{"index":6,"description":"six <b>&</b>"}
"#,
    );
    let r = store.import_labels("L2", &jsonl).unwrap();
    assert_eq!((r.entries, r.new, r.replaced, r.skipped), (5, 1, 1, 3));
    assert_eq!(
        (r.skipped_duplicate, r.skipped_unchanged, r.skipped_empty),
        (1, 1, 1)
    );
    let label = |i| store.label(&FeatureRef::new("L2", i)).unwrap();
    assert_eq!(label(3).as_deref(), Some("new three"));
    assert_eq!(label(6).as_deref(), Some("six <b>&</b>"));
    assert_eq!(label(5), None);

    // A JSON array, and CSV with a header and a quoted comma.
    let json = write(
        dir.path(),
        "np.json",
        r#"[{"index": 8, "description": "eight"}]"#,
    );
    assert_eq!(store.import_labels("L2", &json).unwrap().new, 1);
    let csv = write(dir.path(), "l.csv", "feature,label\n9,\"nine, or so\"\n");
    assert_eq!(store.import_labels("L2", &csv).unwrap().new, 1);
    assert_eq!(label(9).as_deref(), Some("nine, or so"));

    // One feature out of range: nothing of the file is imported, and the error says where.
    let bad = write(dir.path(), "bad.csv", "10,ten\n512,too far\n");
    let e = store.import_labels("L2", &bad).unwrap_err().to_string();
    assert!(e.contains("line 2") && e.contains("out of range"), "{e}");
    assert_eq!(label(10), None);
    let e = store.import_labels("L9", &csv).unwrap_err().to_string();
    assert!(e.contains("unknown dictionary 'L9'"), "{e}");
}

#[test]
fn gzipped_exports_are_read() {
    let (dir, store) = mini_store();
    let p = dir.path().join("batch-0.jsonl.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&p).unwrap(),
        flate2::Compression::default(),
    );
    gz.write_all(b"{\"index\":\"11\",\"description\":\"eleven\"}\n")
        .unwrap();
    gz.finish().unwrap();
    assert_eq!(store.import_labels("L2", &p).unwrap().new, 1);
}

#[test]
fn dictionary_map_is_cached_and_keeps_neighbours_near() {
    let (_d, store) = mini_store();
    let map = store.dictionary_map("L2", &NoProgress).unwrap();
    assert!(!map.from_cache && !map.sampled);
    // Every live feature (a non-zero decoder row) is on the map, once.
    let alive = (0..512)
        .filter(|&i| {
            store
                .decoder_row(&FeatureRef::new("L2", i))
                .unwrap()
                .iter()
                .any(|v| *v != 0.0)
        })
        .count();
    assert_eq!(map.points.len(), alive);
    let mut ids: Vec<u32> = map.points.iter().map(|p| p.feature).collect();
    ids.dedup();
    assert_eq!(ids.len(), alive);
    assert!(map
        .points
        .iter()
        .all(|p| (0.0..=1.0).contains(&p.x) && (0.0..=1.0).contains(&p.y)));
    // Faithful: a feature's exact nearest neighbour sits far closer on the map than a random
    // feature does (median distance ratio).
    let at: HashMap<u32, (f32, f32)> = map.points.iter().map(|p| (p.feature, (p.x, p.y))).collect();
    let d = |a: (f32, f32), b: (f32, f32)| ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt();
    let mut near = Vec::new();
    let mut far = Vec::new();
    for i in (0..512u32).step_by(8) {
        let f = FeatureRef::new("L2", i);
        let nn = store.neighbours_exact(&f, None, 1).unwrap();
        let (Some(n), Some(&p)) = (nn.first(), at.get(&i)) else {
            continue;
        };
        near.push(d(p, at[&n.feature.index]));
        far.push(d(p, at[&((i * 7 + 101) % 512)]));
    }
    near.sort_by(f32::total_cmp);
    far.sort_by(f32::total_cmp);
    let (mn, mf) = (near[near.len() / 2], far[far.len() / 2]);
    assert!(
        mn * 3.0 < mf,
        "median map distance to the nearest neighbour {mn} vs random {mf}"
    );
    // The second call reads the store's cache, with the same layout.
    assert!(store.has_cached_map("L2").unwrap());
    let again = store.dictionary_map("L2", &NoProgress).unwrap();
    assert!(again.from_cache);
    assert_eq!(again.points, map.points);
}

#[test]
fn neighbourhood_map_holds_the_feature_and_its_neighbours() {
    let (_d, store) = mini_store();
    let f = FeatureRef::new("L2", 7);
    let m = store.neighbourhood_map(&f, 12).unwrap();
    let nn: Vec<u32> = store
        .neighbours(&f, None, 12)
        .unwrap()
        .into_iter()
        .map(|n| n.feature.index)
        .collect();
    let mut got: Vec<u32> = m.points.iter().map(|p| p.feature).collect();
    assert_eq!(got[0], 7);
    got.remove(0);
    assert_eq!(got, nn);
}

/// A dictionary of planted clusters: 8 random directions in 32-D, 64 features around each
/// (the direction plus noise, cosine ≈ 0.8 inside a cluster, ≈ 0 across).
fn planted_clusters(store: &Store) -> Vec<usize> {
    const D_IN: usize = 32;
    const CLUSTERS: usize = 8;
    const PER: usize = 64;
    let mut state = 7u64;
    let mut gauss = move || {
        // Box–Muller over a 64-bit LCG: deterministic, no dependency.
        let mut unit = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let (u, v) = (unit(), unit());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    };
    let centres: Vec<Vec<f32>> = (0..CLUSTERS)
        .map(|_| (0..D_IN).map(|_| gauss()).collect())
        .collect();
    let mut w_dec = Vec::new();
    let mut cluster = Vec::new();
    for (c, centre) in centres.iter().enumerate() {
        let norm = centre.iter().map(|x| x * x).sum::<f32>().sqrt();
        for _ in 0..PER {
            let row: Vec<f32> = centre.iter().map(|x| x / norm + 0.09 * gauss()).collect();
            let n = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            w_dec.extend(row.iter().map(|x| x / n));
            cluster.push(c);
        }
    }
    let d_sae = CLUSTERS * PER;
    let mut w_enc = vec![0.0f32; D_IN * d_sae];
    for f in 0..d_sae {
        for i in 0..D_IN {
            w_enc[i * d_sae + f] = w_dec[f * D_IN + i];
        }
    }
    let weights = DictionaryWeights {
        architecture: Architecture::TopK,
        d_in: D_IN,
        d_sae,
        w_enc: &w_enc,
        b_enc: &vec![0.0; d_sae],
        w_dec: &w_dec,
        b_dec: &[0.0; D_IN],
        k: Some(4),
        threshold: None,
        apply_b_dec_to_input: false,
        hook: None,
        layer: None,
        model: None,
    };
    store
        .ingest_dictionary_weights("P", "planted", &weights, IndexBuild::AtIngest, &NoProgress)
        .unwrap();
    cluster
}

fn map_knn(at: &[(f32, f32)], i: usize, k: usize) -> Vec<usize> {
    let d = |j: usize| (at[i].0 - at[j].0).powi(2) + (at[i].1 - at[j].1).powi(2);
    let mut js: Vec<usize> = (0..at.len()).filter(|&j| j != i).collect();
    js.sort_by(|&a, &b| d(a).total_cmp(&d(b)));
    js.truncate(k);
    js
}

/// The map of a planted-cluster dictionary keeps clusters apart (a point's 10 nearest on the
/// map share its cluster: chance 63/511 = 0.12) and keeps neighbours near (a point's 10
/// nearest on the map overlap its 10 nearest by exact cosine: chance 10/511 = 0.02).
#[test]
fn dictionary_map_separates_planted_clusters_and_keeps_neighbours() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create_or_open(dir.path().join("s")).unwrap();
    let cluster = planted_clusters(&store);
    let map = store.dictionary_map("P", &NoProgress).unwrap();
    assert_eq!(map.points.len(), cluster.len());
    let mut at = vec![(f32::NAN, f32::NAN); cluster.len()];
    for p in &map.points {
        at[p.feature as usize] = (p.x, p.y);
    }
    let (mut same, mut overlap, mut total) = (0usize, 0usize, 0usize);
    for i in 0..cluster.len() {
        let near = map_knn(&at, i, 10);
        same += near.iter().filter(|&&j| cluster[j] == cluster[i]).count();
        let exact: Vec<usize> = store
            .neighbours_exact(&FeatureRef::new("P", i as u32), None, 10)
            .unwrap()
            .iter()
            .map(|n| n.feature.index as usize)
            .collect();
        overlap += near.iter().filter(|j| exact.contains(j)).count();
        total += 10;
    }
    let same = same as f64 / total as f64;
    let overlap = overlap as f64 / total as f64;
    eprintln!("planted clusters: same cluster {same:.3}, kNN overlap {overlap:.3}");
    assert!(same > 0.95, "map neighbours in the same cluster: {same}");
    assert!(
        overlap > 0.2,
        "map neighbours among the exact 10 nearest: {overlap}"
    );
}
