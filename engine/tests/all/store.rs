//! The store against brute force: every answer is recomputed here from the fixture files with
//! plain loops over the raw tensors (read with the `safetensors` crate, not the engine's readers).

use crate::common::load_minilm;
use half::f16;
use saedb_engine::{Error, FeatureRef, NoProgress, Store};
use safetensors::SafeTensors;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/minilm-mini")
}

/// (doc, pos, latent, value rounded as the store keeps it)
type Row = (u32, u32, u32, f32);

struct Raw {
    rows: Vec<Row>,
}

fn read_raw_latents(path: &Path) -> Raw {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let loc = st.tensor("locations").unwrap();
    let act = st.tensor("activations").unwrap();
    let loc: Vec<i32> = loc
        .data()
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let act: Vec<f32> = act
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let rows = act
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            (
                loc[3 * i] as u32,
                loc[3 * i + 1] as u32,
                loc[3 * i + 2] as u32,
                f16::from_f32(v).to_f32(),
            )
        })
        .collect();
    Raw { rows }
}

fn read_matrix(path: &Path, name: &str) -> (Vec<f32>, Vec<usize>) {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(name).unwrap();
    let v = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (v, t.shape().to_vec())
}

struct Fixture {
    store: Store,
    l2: Raw,
    l4: Raw,
}

/// One store built from the fixtures, shared by the tests of this file (read-only use).
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let store = Store::create_or_open(&dir).unwrap();
        let fx = fixtures();
        load_minilm(&store, &fx, &["L2", "L4"], true, &["L2", "L4"]);
        Fixture {
            store,
            l2: read_raw_latents(&fx.join("latents_L2.safetensors")),
            l4: read_raw_latents(&fx.join("latents_L4.safetensors")),
        }
    })
}

fn brute_top(raw: &Raw, feature: u32) -> Vec<(u32, u32, f32)> {
    let mut v: Vec<(u32, u32, f32)> = raw
        .rows
        .iter()
        .filter(|r| r.2 == feature)
        .map(|r| (r.0, r.1, r.3))
        .collect();
    v.sort_by(|a, b| b.2.total_cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1))));
    v
}

#[test]
fn top_activations_match_brute_force_for_every_feature() {
    let f = fixture();
    for (dict, raw) in [("L2", &f.l2), ("L4", &f.l4)] {
        for feature in 0..512u32 {
            let want = brute_top(raw, feature);
            for k in [1usize, 20, 200] {
                let got = f
                    .store
                    .top_activations(&FeatureRef::new(dict, feature), k, None)
                    .unwrap();
                let got: Vec<(u32, u32, f32)> =
                    got.iter().map(|a| (a.doc, a.pos, a.value)).collect();
                let want_k: Vec<_> = want.iter().take(k).copied().collect();
                assert_eq!(got, want_k, "{dict}/{feature} k={k}");
            }
        }
    }
}

#[test]
fn statistics_match_brute_force() {
    let f = fixture();
    let tokens: HashSet<(u32, u32)> = f.l2.rows.iter().map(|r| (r.0, r.1)).collect();
    for feature in 0..512u32 {
        let vals: Vec<f32> =
            f.l2.rows
                .iter()
                .filter(|r| r.2 == feature)
                .map(|r| r.3)
                .collect();
        let s = f
            .store
            .feature_stats(&FeatureRef::new("L2", feature))
            .unwrap();
        assert_eq!(s.count, vals.len() as u64, "count of L2/{feature}");
        if vals.is_empty() {
            continue;
        }
        let max = vals.iter().copied().fold(f32::MIN, f32::max);
        let mean = vals.iter().map(|v| *v as f64).sum::<f64>() / vals.len() as f64;
        assert_eq!(s.max, max);
        assert!(
            (s.mean - mean).abs() <= 1e-9 * mean.abs().max(1.0),
            "mean of L2/{feature}"
        );
        assert!((s.frequency - vals.len() as f64 / tokens.len() as f64).abs() < 1e-12);
        assert_eq!(s.histogram.iter().map(|b| b.count).sum::<u64>(), s.count);
        for b in &s.histogram {
            let inside = vals.iter().filter(|v| **v >= b.lo && **v < b.hi).count() as u64;
            assert_eq!(inside, b.count, "bin [{}, {}) of L2/{feature}", b.lo, b.hi);
        }
    }
}

#[test]
fn features_at_match_brute_force() {
    let f = fixture();
    // (doc, pos) -> [(dict, feature, value)]
    type Active = Vec<(String, u32, f32)>;
    let mut by_token: BTreeMap<(u32, u32), Active> = BTreeMap::new();
    for (dict, raw) in [("L2", &f.l2), ("L4", &f.l4)] {
        for r in &raw.rows {
            by_token
                .entry((r.0, r.1))
                .or_default()
                .push((dict.to_string(), r.2, r.3));
        }
    }
    for (i, ((doc, pos), want)) in by_token.iter().enumerate() {
        if i % 3 != 0 {
            continue; // a third of all tokens keeps the test fast
        }
        let got = f.store.features_at(*doc, *pos, None).unwrap();
        let mut got: Vec<(String, u32, f32)> = got
            .into_iter()
            .map(|a| (a.feature.dict, a.feature.index, a.value))
            .collect();
        got.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        let mut want = want.clone();
        want.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        assert_eq!(got, want, "features at doc {doc} pos {pos}");
        let only_l4 = f.store.features_at(*doc, *pos, Some("L4")).unwrap();
        assert!(only_l4.iter().all(|a| a.feature.dict == "L4"));
        assert_eq!(only_l4.len(), want.iter().filter(|w| w.0 == "L4").count());
    }
    // [CLS] at position 0 has no latents.
    assert!(f.store.features_at(0, 0, None).unwrap().is_empty());
}

fn brute_neighbours(
    w_dec: &[f32],
    d: usize,
    q: &[f32],
    skip: Option<usize>,
    k: usize,
) -> Vec<(u32, f32)> {
    let norm = |v: &[f32]| {
        v.iter()
            .map(|x| (*x as f64) * (*x as f64))
            .sum::<f64>()
            .sqrt()
    };
    let qn = norm(q);
    let mut all: Vec<(u32, f32)> = w_dec
        .chunks_exact(d)
        .enumerate()
        .filter(|(g, _)| Some(*g) != skip)
        .map(|(g, row)| {
            let dot: f64 = row.iter().zip(q).map(|(a, b)| *a as f64 * *b as f64).sum();
            (g as u32, (dot / (norm(row) * qn)) as f32)
        })
        .collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    all.truncate(k);
    all
}

#[test]
fn exact_neighbours_match_brute_force_and_hnsw_recall_is_high() {
    let f = fixture();
    let (w2, shape) = read_matrix(&fixtures().join("sae_L2/sae_weights.safetensors"), "W_dec");
    let (w4, _) = read_matrix(&fixtures().join("sae_L4/sae_weights.safetensors"), "W_dec");
    let d = shape[1];
    let (mut hits, mut total) = (0usize, 0usize);
    for feature in (0..512u32).step_by(3) {
        let q = &w2[feature as usize * d..(feature as usize + 1) * d];
        for (in_dict, w, skip) in [(None, &w2, Some(feature as usize)), (Some("L4"), &w4, None)] {
            let want = brute_neighbours(w, d, q, skip, 10);
            let exact = f
                .store
                .neighbours_exact(&FeatureRef::new("L2", feature), in_dict, 10)
                .unwrap();
            assert_eq!(exact.len(), 10);
            for (e, (g, c)) in exact.iter().zip(&want) {
                // Same ranking up to float ties; same cosines to float rounding.
                assert!(
                    (e.cosine - c).abs() < 1e-4,
                    "L2/{feature} in {in_dict:?}: {e:?} vs {g} {c}"
                );
            }
            let want_ids: HashSet<u32> = want.iter().map(|w| w.0).collect();
            let got_ids: HashSet<u32> = exact.iter().map(|e| e.feature.index).collect();
            assert!(
                want_ids.intersection(&got_ids).count() >= 9,
                "exact neighbours of L2/{feature} differ"
            );
            let approx = f
                .store
                .neighbours(&FeatureRef::new("L2", feature), in_dict, 10)
                .unwrap();
            assert!(approx
                .iter()
                .all(|n| Some(n.feature.index as usize) != skip || in_dict.is_some()));
            hits += approx
                .iter()
                .filter(|n| want_ids.contains(&n.feature.index))
                .count();
            total += 10;
        }
    }
    let recall = hits as f64 / total as f64;
    println!(
        "HNSW recall@10 on the fixtures: {recall:.4} over {} queries",
        total / 10
    );
    assert!(recall >= 0.95, "recall@10 = {recall}");
}

#[test]
fn filtered_top_activations_equal_filtering_everything() {
    let f = fixture();
    for feature in (0..512u32).step_by(17) {
        let fr = FeatureRef::new("L2", feature);
        let all = f.store.activations_of(&fr).unwrap();
        let want_all = brute_top(&f.l2, feature);
        assert_eq!(all.len(), want_all.len());
        let Some(first) = all.first() else { continue };
        let token = first.token.clone();
        let keep = |a: &saedb_engine::TokenActivation| a.token == token && a.value > 0.5;
        use saedb_engine::filter::{ActivationField as F, ActivationFilter as Filter, Comparison};
        let filter = Filter::and(vec![
            Filter::compare(F::Token, Comparison::Eq, token.as_str()),
            Filter::compare(F::Value, Comparison::Gt, 0.5),
        ]);
        let got = f.store.top_activations(&fr, 5, Some(&filter)).unwrap();
        let mut want: Vec<_> = all.iter().filter(|a| keep(a)).cloned().collect();
        want.sort_by(|a, b| {
            b.value
                .total_cmp(&a.value)
                .then((a.doc, a.pos).cmp(&(b.doc, b.pos)))
        });
        want.truncate(5);
        assert_eq!(got, want, "filtered top of L2/{feature}");
    }
}

#[test]
fn tokens_come_from_the_jsonl() {
    let f = fixture();
    let text = std::fs::read_to_string(fixtures().join("tokens.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(f.store.document_count().unwrap(), lines.len() as u64);
    let top = f
        .store
        .top_activations(&FeatureRef::new("L4", 3), 10, None)
        .unwrap();
    for a in top {
        let doc = lines.iter().find(|l| l["doc"] == a.doc).unwrap();
        assert_eq!(doc["tokens"][a.pos as usize].as_str().unwrap(), a.token);
    }
}

#[test]
fn reopening_gives_the_same_answers() {
    let dir = tempfile::tempdir().unwrap();
    let fx = fixtures();
    let answers = |s: &Store| {
        let mut out = Vec::new();
        for feature in (0..512).step_by(37) {
            let fr = FeatureRef::new("L2", feature);
            out.push(format!("{:?}", s.top_activations(&fr, 10, None).unwrap()));
            out.push(format!("{:?}", s.feature_stats(&fr).unwrap()));
            out.push(format!("{:?}", s.neighbours(&fr, None, 5).unwrap()));
        }
        out.push(format!("{:?}", s.features_at(3, 4, None).unwrap()));
        out.push(format!("{:?}", s.dictionaries()));
        out
    };
    let before = {
        let s = Store::create_or_open(dir.path()).unwrap();
        load_minilm(&s, &fx, &["L2"], true, &["L2"]);
        s.set_label(&FeatureRef::new("L2", 5), "five").unwrap();
        answers(&s)
    };
    // A clean close flushed the memtables: the write-ahead log has nothing left to replay.
    let log_bytes: u64 = std::fs::read_dir(dir.path().join("db"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(log_bytes, 0, "write-ahead log after a clean close");
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(answers(&s), before);
    assert!(s.has_ann_file("L2").unwrap(), "HNSW index persisted");
    assert_eq!(
        s.label(&FeatureRef::new("L2", 5)).unwrap().as_deref(),
        Some("five")
    );
    let ro = Store::open_read_only(dir.path());
    drop(s);
    let ro = ro.or_else(|_| Store::open_read_only(dir.path())).unwrap();
    assert_eq!(answers(&ro), before);
}

#[test]
fn dense_activations_encode_to_the_stored_latents() {
    let dir = tempfile::tempdir().unwrap();
    let fx = fixtures();
    let s = Store::create_or_open(dir.path()).unwrap();
    s.ingest_dictionary("L2", &fx.join("sae_L2"), &NoProgress)
        .unwrap();
    s.ingest_tokens(&fx.join("tokens.jsonl"), &NoProgress)
        .unwrap();
    s.ingest_activations("L2", &fx.join("resid_L2.safetensors"), &NoProgress)
        .unwrap();
    let f = fixture();
    let mut want: HashMap<(u32, u32), Vec<(u32, f32)>> = HashMap::new();
    for r in &f.l2.rows {
        want.entry((r.0, r.1)).or_default().push((r.2, r.3));
    }
    let (mut same, mut total) = (0usize, 0usize);
    for ((doc, pos), w) in &want {
        let got = s.features_at(*doc, *pos, Some("L2")).unwrap();
        let got: HashMap<u32, f32> = got.iter().map(|a| (a.feature.index, a.value)).collect();
        for (feat, v) in w {
            total += 1;
            if let Some(g) = got.get(feat) {
                same += 1;
                assert!(
                    (g - v).abs() <= 2e-3 * v.abs().max(1e-2),
                    "doc {doc} pos {pos} latent {feat}: {g} vs {v}"
                );
            }
        }
    }
    println!("dense encode reproduced {same} of {total} stored latents");
    assert!(same as f64 >= 0.999 * total as f64, "{same} of {total}");
    assert_eq!(s.dictionary("L2").unwrap().nonzeros, total as u64);
}

#[test]
fn bad_input_is_refused_and_leaves_the_store_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let fx = fixtures();
    let s = Store::create_or_open(dir.path()).unwrap();
    load_minilm(&s, &fx, &["L2"], true, &["L2"]);
    let snapshot = |s: &Store| {
        format!(
            "{:?} {:?}",
            s.dictionaries(),
            s.top_activations(&FeatureRef::new("L2", 1), 50, None)
                .unwrap()
        )
    };
    let before = snapshot(&s);

    let e = s
        .ingest_latents("L2", &fx.join("latents_L2.safetensors"), &NoProgress)
        .unwrap_err();
    assert!(matches!(e, Error::AlreadyIngested { .. }), "{e}");
    let e = s
        .ingest_latents("L9", &fx.join("latents_L2.safetensors"), &NoProgress)
        .unwrap_err();
    assert!(
        e.to_string().contains("unknown dictionary 'L9'") && e.to_string().contains("L2"),
        "{e}"
    );
    let e = s
        .ingest_dictionary("L2", &fx.join("sae_L4"), &NoProgress)
        .unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
    // Other codes for documents already encoded by L2 would double-count them.
    let e = s
        .ingest_latents("L2", &fx.join("latents_L4.safetensors"), &NoProgress)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("already has activations of dictionary 'L2'"),
        "{e}"
    );
    let mut bytes = std::fs::read(fx.join("latents_L2.safetensors")).unwrap();
    bytes.truncate(bytes.len() / 2);
    let trunc = dir.path().join("truncated.safetensors");
    std::fs::write(&trunc, &bytes).unwrap();
    let e = s.ingest_latents("L2", &trunc, &NoProgress).unwrap_err();
    assert!(e.to_string().contains("truncated.safetensors"), "{e}");
    let e = s
        .top_activations(&FeatureRef::new("L2", 512), 5, None)
        .unwrap_err();
    assert!(matches!(e, Error::FeatureOutOfRange { .. }), "{e}");
    let e = s
        .top_activations(&FeatureRef::new("L2", 1), 1 << 40, None)
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    let e = s.features_at(9999, 0, None).unwrap_err();
    assert!(matches!(e, Error::UnknownDocument { .. }), "{e}");
    let e = s.features_at(0, 9999, None).unwrap_err();
    assert!(matches!(e, Error::PositionOutOfRange { .. }), "{e}");
    let e = s.token_effects(&FeatureRef::new("L2", 1), 5).unwrap_err();
    assert!(e.to_string().contains("ingest vocab"), "{e}");
    let e = s
        .ingest_activations("L2", &fx.join("sae_L2/cfg.json"), &NoProgress)
        .unwrap_err();
    assert!(e.to_string().contains("cfg.json"), "{e}");
    assert_eq!(snapshot(&s), before);
    drop(s);
    assert_eq!(snapshot(&Store::open(dir.path()).unwrap()), before);
}

#[test]
fn a_directory_that_is_not_a_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "hello").unwrap();
    let e = Store::create_or_open(dir.path()).err().unwrap();
    assert!(e.to_string().contains("not a saedb store"), "{e}");
    let e = Store::open(dir.path().join("missing")).err().unwrap();
    assert!(e.to_string().contains("no such store"), "{e}");
}

#[test]
fn labels_set_get_search() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::create_or_open(dir.path()).unwrap();
    s.ingest_dictionary("L2", &fixtures().join("sae_L2"), &NoProgress)
        .unwrap();
    s.set_label(&FeatureRef::new("L2", 3), "Golden Gate Bridge")
        .unwrap();
    s.set_label(&FeatureRef::new("L2", 4), "bridge").unwrap();
    s.set_label(&FeatureRef::new("L2", 5), "Bridges of Paris")
        .unwrap();
    s.set_label(&FeatureRef::new("L2", 6), "cats").unwrap();
    let hits: Vec<u32> = s
        .search_labels("BRIDGE", 10)
        .unwrap()
        .iter()
        .map(|h| h.0.index)
        .collect();
    assert_eq!(hits, vec![4, 5, 3]);
    assert_eq!(s.search_labels("bridge", 1).unwrap().len(), 1);
    assert_eq!(s.labels().unwrap().len(), 4);
    assert!(s.set_label(&FeatureRef::new("L2", 600), "x").is_err());
    assert!(s.set_label(&FeatureRef::new("L2", 1), "   ").is_err());
}

/// The full-size set, when the shared data is present: top activations, statistics and token
/// effects against brute force.
#[test]
fn minilm_dev_against_brute_force() {
    let dev = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/minilm-dev");
    if !dev.exists() {
        eprintln!("skipping: {} is absent", dev.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = Store::create_or_open(dir.path()).unwrap();
    load_minilm(&s, &dev, &["L2"], true, &["L2"]);
    s.ingest_vocab(
        &dev.join("word_embeddings.f16.safetensors"),
        "embeddings.word_embeddings.weight",
        &dev.join("vocab.txt"),
        &NoProgress,
    )
    .unwrap();
    let raw = read_raw_latents(&dev.join("latents_L2.safetensors"));
    let mut by_feature: HashMap<u32, Vec<(u32, u32, f32)>> = HashMap::new();
    for r in &raw.rows {
        by_feature.entry(r.2).or_default().push((r.0, r.1, r.3));
    }
    for feature in (0..4096u32).step_by(41) {
        let mut want = by_feature.remove(&feature).unwrap_or_default();
        want.sort_by(|a, b| b.2.total_cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1))));
        let got: Vec<(u32, u32, f32)> = s
            .top_activations(&FeatureRef::new("L2", feature), 20, None)
            .unwrap()
            .iter()
            .map(|a| (a.doc, a.pos, a.value))
            .collect();
        assert_eq!(
            got,
            want.iter().take(20).copied().collect::<Vec<_>>(),
            "L2/{feature}"
        );
        assert_eq!(
            s.feature_stats(&FeatureRef::new("L2", feature))
                .unwrap()
                .count,
            want.len() as u64
        );
    }
    // Token effects: W_dec[f] · E[t] over the whole vocabulary, by plain loops.
    let bytes = std::fs::read(dev.join("word_embeddings.f16.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let e: Vec<f32> = st
        .tensor("embeddings.word_embeddings.weight")
        .unwrap()
        .data()
        .chunks_exact(2)
        .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
        .collect();
    let vocab: Vec<String> = std::fs::read_to_string(dev.join("vocab.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let (w_dec, _) = read_matrix(&dev.join("sae_L2/sae_weights.safetensors"), "W_dec");
    for feature in [0u32, 17, 1234, 4095] {
        let row = &w_dec[feature as usize * 384..(feature as usize + 1) * 384];
        let mut effects: Vec<(f32, usize)> = e
            .chunks_exact(384)
            .enumerate()
            .map(|(t, et)| (et.iter().zip(row).map(|(a, b)| a * b).sum(), t))
            .collect();
        effects.sort_by(|a, b| b.0.total_cmp(&a.0));
        let got = s
            .token_effects(&FeatureRef::new("L2", feature), 10)
            .unwrap();
        for (g, w) in got.positive.iter().zip(&effects) {
            assert!(
                (g.effect - w.0).abs() < 1e-3,
                "L2/{feature}: {g:?} vs {w:?}"
            );
        }
        assert_eq!(got.positive[0].token, vocab[effects[0].1]);
        let lowest = effects.last().unwrap();
        assert!((got.negative[0].effect - lowest.0).abs() < 1e-3);
    }
    // NEIGHBOURS on a real 4,096-feature dictionary at the default breadth: the recall the
    // index's construction parameters are chosen for (docs/BENCHMARKS.md), against brute force.
    let (mut hits, mut total) = (0usize, 0usize);
    for feature in (0..4096u32).step_by(7) {
        let q = &w_dec[feature as usize * 384..(feature as usize + 1) * 384];
        if q.iter().all(|v| *v == 0.0) {
            continue;
        }
        let want: HashSet<u32> = brute_neighbours(&w_dec, 384, q, Some(feature as usize), 10)
            .iter()
            .map(|w| w.0)
            .collect();
        let got = s
            .neighbours(&FeatureRef::new("L2", feature), None, 10)
            .unwrap();
        hits += got
            .iter()
            .filter(|n| want.contains(&n.feature.index))
            .count();
        total += want.len();
    }
    let recall = hits as f64 / total as f64;
    println!("HNSW recall@10 on minilm-dev L2 (4,096 features): {recall:.4}");
    assert!(recall >= 0.98, "recall@10 = {recall}");
}

/// Opens the store's RocksDB directly, as a crash or a bug could leave it.
fn raw_db(store_dir: &Path) -> rocksdb::DB {
    let cfs = [
        "meta",
        "weights",
        "docs",
        "token_major",
        "feature_major_by_ingest",
        "stats",
        "labels",
        "graphs",
    ];
    rocksdb::DB::open_cf(&rocksdb::Options::default(), store_dir.join("db"), cfs).unwrap()
}

#[test]
fn check_finds_damage_and_repair_rebuilds_derived_data() {
    let dir = tempfile::tempdir().unwrap();
    let fx = fixtures();
    {
        let s = Store::create_or_open(dir.path()).unwrap();
        load_minilm(&s, &fx, &["L2"], true, &["L2"]);
        let r = s.check().unwrap();
        assert!(r.is_ok(), "{:?}", r.problems);
        assert_eq!(r.activations, f_rows(&fx));
        assert_eq!(r.features, 512);
    }
    let before = Store::open(dir.path())
        .unwrap()
        .top_activations(&FeatureRef::new("L2", 9), 30, None)
        .unwrap();
    {
        // Damage: a stats record disappears, an orphan block of an ingest that never committed
        // appears, and the HNSW files are lost.
        let db = raw_db(dir.path());
        let mut key = 0u32.to_be_bytes().to_vec();
        key.extend_from_slice(&9u32.to_be_bytes());
        db.delete_cf(db.cf_handle("stats").unwrap(), &key).unwrap();
        // dict 0 | ingest 999 | feature 9 | chunk 0
        let orphan: Vec<u8> = [0u32, 999, 9, 0]
            .iter()
            .flat_map(|x| x.to_be_bytes())
            .collect();
        db.put_cf(
            db.cf_handle("feature_major_by_ingest").unwrap(),
            &orphan,
            [1u8, 0, 0, 0x00, 0x3c],
        )
        .unwrap();
    }
    std::fs::remove_dir_all(dir.path().join("hnsw")).unwrap();
    let s = Store::open(dir.path()).unwrap();
    let r = s.check().unwrap();
    assert_eq!(r.orphan_blocks, 1);
    assert!(
        r.problems.iter().any(|p| p.contains("feature L2/9")),
        "{:?}",
        r.problems
    );
    assert!(
        r.notes.iter().any(|p| p.contains("no HNSW index file")),
        "{:?}",
        r.notes
    );
    // Readers never see the orphan block.
    let want = read_raw_latents(&fx.join("latents_L2.safetensors"))
        .rows
        .iter()
        .filter(|r| r.2 == 9)
        .count();
    assert_eq!(
        s.activations_of(&FeatureRef::new("L2", 9)).unwrap().len(),
        want
    );
    let r = s.repair().unwrap();
    assert!(r.is_ok(), "{:?}", r.problems);
    assert_eq!(r.orphan_blocks, 0);
    assert!(r.notes.is_empty(), "{:?}", r.notes);
    assert_eq!(
        s.top_activations(&FeatureRef::new("L2", 9), 30, None)
            .unwrap(),
        before
    );
}

fn f_rows(fx: &Path) -> u64 {
    read_raw_latents(&fx.join("latents_L2.safetensors"))
        .rows
        .len() as u64
}

/// A store with the fixtures' L2 dictionary and its index built; the index's dump directory
/// and the name of its files.
fn store_with_l2_index() -> (tempfile::TempDir, PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::create_or_open(dir.path()).unwrap();
        load_minilm(&s, &fixtures(), &["L2"], false, &[]);
    }
    let dump = std::fs::read_dir(dir.path().join("hnsw"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .unwrap();
    let name = dump.file_name().unwrap().to_str().unwrap().to_string();
    (dir, dump, name)
}

/// A damaged index dump is rebuilt, not loaded: hnsw_rs's loader unwraps its reads, so a
/// truncated or overwritten graph file would otherwise panic inside it. After each damage,
/// NEIGHBOURS at breadth 512 (all 512 features) answers exactly like the exact search, and the
/// dump on disk has been rewritten with a checksum.
#[test]
fn damaged_index_dumps_are_rebuilt() {
    let (dir, dump, name) = store_with_l2_index();
    let graph = dump.join(format!("{name}.hnsw.graph"));
    let sum = dump.join(format!("{name}.hnsw.graph.xxh3"));
    assert!(sum.exists(), "a dump carries its checksum");
    let pristine = std::fs::read(&graph).unwrap();
    /// What is done to the graph file's bytes, and whether its checksum stays.
    type Damage = (&'static str, fn(&mut Vec<u8>), bool);
    let damages: [Damage; 4] = [
        ("truncated", |b| b.truncate(b.len() / 2), true),
        (
            "overwritten",
            |b| {
                let mid = b.len() / 2;
                b[mid..mid + 8].fill(0xff)
            },
            true,
        ),
        ("header zeroed", |b| b[4..12].fill(0), true),
        // a dump from before checksums: the loader's panic is caught instead
        ("truncated, no checksum", |b| b.truncate(b.len() / 2), false),
    ];
    let q = FeatureRef::new("L2", 7);
    for (what, damage, keep_sum) in &damages {
        let mut bytes = pristine.clone();
        damage(&mut bytes);
        std::fs::write(&graph, &bytes).unwrap();
        if !keep_sum {
            std::fs::remove_file(&sum).unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(
            s.neighbours_with_breadth(&q, None, 10, 512).unwrap(),
            s.neighbours_exact(&q, None, 10).unwrap(),
            "{what}"
        );
        assert_ne!(std::fs::read(&graph).unwrap(), bytes, "{what}: rewritten");
        assert!(sum.exists(), "{what}: checksum written");
    }
}

/// Cosine distance over float32 rows, as indexes were built before they used float16 rows.
#[derive(Clone, Copy, Default)]
struct F32Cosine;

impl hnsw_rs::anndists::dist::Distance<f32> for F32Cosine {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        (1.0 - dot).max(0.0)
    }
}

/// Stores from before the index was built over float16 rows hold hnsw_rs dumps of float32 rows.
/// Only their links are read, so they load as they are: NEIGHBOURS answers from them (at breadth
/// 512, exactly as the exact search) and does not rebuild them.
#[test]
fn an_index_dumped_over_float32_rows_loads_without_a_rebuild() {
    use hnsw_rs::prelude::{AnnT, Hnsw};
    let (dir, dump, name) = store_with_l2_index();
    // The old dump, made here by hnsw_rs itself over the unit rows of the fixture's decoder.
    let (w_dec, shape) = read_matrix(&fixtures().join("sae_L2/sae_weights.safetensors"), "W_dec");
    let unit: Vec<Vec<f32>> = w_dec
        .chunks_exact(shape[1])
        .map(|row| {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            row.iter().map(|v| v / norm).collect()
        })
        .collect();
    let old: Hnsw<f32, F32Cosine> = Hnsw::new(24, unit.len(), 16, 200, F32Cosine);
    for (f, row) in unit.iter().enumerate() {
        old.insert((row.as_slice(), f));
    }
    std::fs::remove_dir_all(&dump).unwrap();
    std::fs::create_dir_all(&dump).unwrap();
    old.file_dump(&dump, &name).unwrap();
    let graph = dump.join(format!("{name}.hnsw.graph"));
    let data = dump.join(format!("{name}.hnsw.data"));
    let bytes = std::fs::read(&graph).unwrap();
    let sum = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes));
    std::fs::write(dump.join(format!("{name}.hnsw.graph.xxh3")), sum).unwrap();
    let data_len = std::fs::metadata(&data).unwrap().len();
    assert!(data_len >= (w_dec.len() * 4) as u64, "float32 rows dumped");

    let s = Store::open(dir.path()).unwrap();
    for feature in [0u32, 7, 300, 511] {
        let q = FeatureRef::new("L2", feature);
        assert_eq!(
            s.neighbours_with_breadth(&q, None, 10, 512).unwrap(),
            s.neighbours_exact(&q, None, 10).unwrap(),
            "L2/{feature}"
        );
    }
    assert_eq!(
        std::fs::read(&graph).unwrap(),
        bytes,
        "the old graph was rebuilt"
    );
    assert_eq!(std::fs::metadata(&data).unwrap().len(), data_len);
}

/// Writes `rows` as a delphi latents file (int32 locations [n, 3], float32 activations [n]).
fn write_latents_file(path: &Path, rows: &[Row]) {
    use safetensors::{tensor::TensorView, Dtype};
    let loc: Vec<u8> = rows
        .iter()
        .flat_map(|r| [r.0 as i32, r.1 as i32, r.2 as i32])
        .flat_map(i32::to_le_bytes)
        .collect();
    let act: Vec<u8> = rows.iter().flat_map(|r| r.3.to_le_bytes()).collect();
    let tensors = [
        (
            "locations",
            TensorView::new(Dtype::I32, vec![rows.len(), 3], &loc).unwrap(),
        ),
        (
            "activations",
            TensorView::new(Dtype::F32, vec![rows.len()], &act).unwrap(),
        ),
    ];
    safetensors::serialize_to_file(tensors, &None, path).unwrap();
}

/// Statistics merged over many ingests (RocksDB merge operands, folded on read and on
/// compaction) and blocks ingested as table files, against brute force over all of them: the L2 latents split by document into five
/// files, ingested out of order, checked while operands are pending, after a reopen, and after
/// compaction folded them.
#[test]
fn statistics_merged_over_many_ingests_match_brute_force() {
    let fx = fixtures();
    let raw = read_raw_latents(&fx.join("latents_L2.safetensors"));
    let dir = tempfile::tempdir().unwrap();
    let parts: Vec<PathBuf> = (0..5u32)
        .map(|part| {
            let rows: Vec<Row> = raw
                .rows
                .iter()
                .filter(|r| (r.0.wrapping_mul(2_654_435_761) >> 7) % 5 == part)
                .copied()
                .collect();
            assert!(!rows.is_empty());
            let path = dir.path().join(format!("part{part}.safetensors"));
            write_latents_file(&path, &rows);
            path
        })
        .collect();
    let store_dir = dir.path().join("store");
    let store = Store::create_or_open(&store_dir).unwrap();
    load_minilm(&store, &fx, &["L2"], true, &[]);
    for i in [3, 0, 4, 1, 2] {
        store.ingest_latents("L2", &parts[i], &NoProgress).unwrap();
    }
    let compare = |store: &Store, when: &str| {
        for feature in 0..512u32 {
            let want = brute_top(&raw, feature);
            let f = FeatureRef::new("L2", feature);
            let s = store.feature_stats(&f).unwrap();
            assert_eq!(s.count, want.len() as u64, "count of L2/{feature} {when}");
            let sum: f64 = want.iter().map(|a| f64::from(a.2)).sum();
            if let Some(top) = want.first() {
                assert_eq!(s.max, top.2, "max of L2/{feature} {when}");
                let mean = sum / want.len() as f64;
                assert!((s.mean - mean).abs() <= 1e-9 * mean.abs().max(1.0));
            }
            let got: Vec<(u32, u32, f32)> = store
                .top_activations(&f, 200, None)
                .unwrap()
                .iter()
                .map(|a| (a.doc, a.pos, a.value))
                .collect();
            let want: Vec<_> = want.into_iter().take(200).collect();
            assert_eq!(got, want, "top of L2/{feature} {when}");
        }
    };
    compare(&store, "with merge operands pending");
    // Blocks reach RocksDB as table files built in <store>/ingest: none is left behind, and a
    // file a crash left there is removed when the store next opens for writing.
    assert!(!store_dir.join("ingest").exists());
    drop(store);
    std::fs::create_dir(store_dir.join("ingest")).unwrap();
    std::fs::write(
        store_dir.join("ingest/9-token_major-0.sst"),
        b"half-written",
    )
    .unwrap();
    let store = Store::open(&store_dir).unwrap();
    assert!(!store_dir.join("ingest").exists());
    compare(&store, "after reopening");
    store.compact().unwrap();
    compare(&store, "after compaction");
    assert!(store.check().unwrap().is_ok());
}

/// Bad rows far into a latents file are named exactly: the checks scan chunks in parallel, and
/// the first bad row in file order is the one reported (not whichever chunk finished first).
#[test]
fn the_first_bad_row_of_a_large_latents_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::create_or_open(dir.path().join("store")).unwrap();
    load_minilm(&s, &fixtures(), &["L2"], false, &[]);
    let rows: Vec<Row> = (0..60_000u32)
        .map(|i| (i / 100, i % 100, i % 512, 1.0))
        .collect();
    let mut out_of_range = rows.clone();
    out_of_range[50_000].2 = 700;
    out_of_range[40_000].2 = 600;
    let path = dir.path().join("range.safetensors");
    write_latents_file(&path, &out_of_range);
    let e = s
        .ingest_latents("L2", &path, &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(e.contains("row 40000: latent 600 is out of range"), "{e}");

    // Beyond float16 (non-finite values the reader refuses itself).
    let mut too_large = rows;
    too_large[45_000].3 = 70_000.0;
    too_large[30_000].3 = 1e6;
    let path = dir.path().join("values.safetensors");
    write_latents_file(&path, &too_large);
    let e = s
        .ingest_latents("L2", &path, &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("activation 1000000 at (doc 300, pos 0, latent 304)"),
        "{e}"
    );
    assert_eq!(
        s.dictionary("L2").unwrap().nonzeros,
        0,
        "nothing was stored"
    );
}
