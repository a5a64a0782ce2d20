//! The embedding API: ingest from memory, declarative filters, quantile sampling, cancellation
//! and `OpenOptions`, against brute force over the fixture files (read here with the
//! `safetensors` and `serde_json` crates, not the engine's readers).

use half::f16;
use saedb_engine::filter::{ActivationField as F, ActivationFilter as Filter, Comparison, Test};
use saedb_engine::{
    Architecture, Cancel, DenseActivations, DictionaryWeights, Document, Error, FeatureRef,
    IndexBuild, NoProgress, OpenOptions, Progress, QuantileQuery, SparseActivations, Store,
    TokenActivation,
};
use safetensors::SafeTensors;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/minilm-mini")
}

fn floats(st: &SafeTensors, name: &str) -> Vec<f32> {
    st.tensor(name)
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn ints(st: &SafeTensors, name: &str) -> Vec<i32> {
    st.tensor(name)
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// Everything the fixtures hold, in memory.
struct Data {
    docs: Vec<Document>,
    w_enc: Vec<f32>,
    w_dec: Vec<f32>,
    b_enc: Vec<f32>,
    b_dec: Vec<f32>,
    /// L2's latents as (doc, pos, feature, value), in the file's order.
    latents: Vec<(u32, u32, u32, f32)>,
    dense: Vec<f32>,
    dense_doc: Vec<u32>,
    dense_pos: Vec<u32>,
}

fn data() -> Data {
    let fx = fixtures();
    let docs = std::fs::read_to_string(fx.join("tokens.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let strings = |k: &str| -> Vec<String> {
                v[k].as_array()
                    .map(|a| a.iter().map(|t| t.as_str().unwrap().to_string()).collect())
                    .unwrap_or_default()
            };
            Document {
                doc: v["doc"].as_u64().unwrap() as u32,
                tokens: strings("tokens"),
                token_ids: v["token_ids"]
                    .as_array()
                    .map(|a| a.iter().map(|t| t.as_u64().unwrap() as u32).collect())
                    .unwrap_or_default(),
                text: v["text"].as_str().map(str::to_string),
                source: v["source"].as_str().map(str::to_string),
            }
        })
        .collect();
    let w = std::fs::read(fx.join("sae_L2/sae_weights.safetensors")).unwrap();
    let w = SafeTensors::deserialize(&w).unwrap();
    let l = std::fs::read(fx.join("latents_L2.safetensors")).unwrap();
    let l = SafeTensors::deserialize(&l).unwrap();
    let loc = ints(&l, "locations");
    let latents = floats(&l, "activations")
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let at = |j: usize| loc[3 * i + j] as u32;
            (at(0), at(1), at(2), v)
        })
        .collect();
    let r = std::fs::read(fx.join("resid_L2.safetensors")).unwrap();
    let r = SafeTensors::deserialize(&r).unwrap();
    let dp = ints(&r, "doc_pos");
    Data {
        docs,
        w_enc: floats(&w, "W_enc"),
        w_dec: floats(&w, "W_dec"),
        b_enc: floats(&w, "b_enc"),
        b_dec: floats(&w, "b_dec"),
        latents,
        dense: floats(&r, "activations"),
        dense_doc: dp.iter().step_by(2).map(|&d| d as u32).collect(),
        dense_pos: dp.iter().skip(1).step_by(2).map(|&p| p as u32).collect(),
    }
}

impl Data {
    fn weights(&self) -> DictionaryWeights<'_> {
        DictionaryWeights {
            architecture: Architecture::TopK,
            d_in: 384,
            d_sae: 512,
            w_enc: &self.w_enc,
            b_enc: &self.b_enc,
            w_dec: &self.w_dec,
            b_dec: &self.b_dec,
            k: Some(16),
            threshold: None,
            apply_b_dec_to_input: true,
            hook: Some("encoder.layer.1.output"),
            layer: Some(2),
            model: None,
        }
    }

    /// The latents in coordinate form, in reverse file order (the order must not matter).
    fn columns(&self) -> (Vec<u32>, Vec<u32>, Vec<u32>, Vec<f32>) {
        let rev = self.latents.iter().rev();
        (
            rev.clone().map(|e| e.0).collect(),
            rev.clone().map(|e| e.1).collect(),
            rev.clone().map(|e| e.2).collect(),
            rev.map(|e| e.3).collect(),
        )
    }

    /// A feature's activations as stored (float16), strongest first, ties by (doc, pos).
    fn brute_top(&self, feature: u32) -> Vec<(u32, u32, f32)> {
        let mut v: Vec<(u32, u32, f32)> = self
            .latents
            .iter()
            .filter(|e| e.2 == feature)
            .map(|e| (e.0, e.1, f16::from_f32(e.3).to_f32()))
            .collect();
        v.sort_by(|a, b| b.2.total_cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1))));
        v
    }

    fn token(&self, doc: u32, pos: u32) -> &str {
        &self.docs.iter().find(|d| d.doc == doc).unwrap().tokens[pos as usize]
    }
}

fn ingest_all_from_memory(s: &Store, d: &Data) {
    s.ingest_documents("tokens in memory", &d.docs, &NoProgress)
        .unwrap();
    s.ingest_dictionary_weights(
        "L2",
        "L2 weights",
        &d.weights(),
        IndexBuild::AtIngest,
        &NoProgress,
    )
    .unwrap();
    let (doc, pos, feature, value) = d.columns();
    let sparse = SparseActivations {
        doc: &doc,
        pos: &pos,
        feature: &feature,
        value: &value,
    };
    s.ingest_sparse("L2", "L2 latents", &sparse, &NoProgress)
        .unwrap();
}

fn triples(acts: &[TokenActivation]) -> Vec<(u32, u32, f32)> {
    acts.iter().map(|a| (a.doc, a.pos, a.value)).collect()
}

#[test]
fn memory_ingests_answer_like_brute_force() {
    let d = data();
    let dir = tempfile::tempdir().unwrap();
    let s = OpenOptions::new().create(true).open(dir.path()).unwrap();
    ingest_all_from_memory(&s, &d);
    let info = s.dictionary("L2").unwrap();
    assert_eq!((info.d_in, info.d_sae, info.k), (384, 512, Some(16)));
    assert_eq!(info.nonzeros, d.latents.len() as u64);
    assert_eq!(info.source_path, "L2 weights");
    assert_eq!(s.document_count().unwrap(), d.docs.len() as u64);
    assert_eq!(s.document(3).unwrap(), d.docs[3]);
    for feature in 0..512u32 {
        let f = FeatureRef::new("L2", feature);
        let want = d.brute_top(feature);
        let got = s.top_activations(&f, 300, None).unwrap();
        assert_eq!(triples(&got), want[..want.len().min(300)], "L2/{feature}");
        assert_eq!(s.feature_stats(&f).unwrap().count, want.len() as u64);
        assert_eq!(
            s.decoder_row(&f).unwrap(),
            d.w_dec[feature as usize * 384..(feature as usize + 1) * 384]
        );
    }
    assert!(s.check().unwrap().is_ok());

    // Dense rows encoded at ingest, by a second copy of the dictionary: the codes the file's
    // latents hold (encoded by the SAE's own library), up to float rounding.
    s.ingest_dictionary_weights(
        "L2b",
        "L2 weights",
        &d.weights(),
        IndexBuild::OnFirstUse,
        &NoProgress,
    )
    .unwrap();
    let dense = DenseActivations {
        values: &d.dense,
        d_in: 384,
        doc: &d.dense_doc,
        pos: &d.dense_pos,
    };
    s.ingest_dense("L2b", "L2 rows", &dense, &NoProgress)
        .unwrap();
    let (mut same, mut total) = (0, 0);
    for &(doc, pos, feature, value) in d.latents.iter().step_by(7) {
        total += 1;
        let at = s.features_at(doc, pos, Some("L2b")).unwrap();
        if let Some(a) = at.iter().find(|a| a.feature.index == feature) {
            assert!((a.value - value).abs() <= 2e-3 * value.abs().max(1e-2));
            same += 1;
        }
    }
    assert!(same as f64 >= 0.999 * total as f64, "{same} of {total}");
}

#[test]
fn filters_and_quantiles_match_brute_force() {
    let d = data();
    let dir = tempfile::tempdir().unwrap();
    let s = Store::create_or_open(dir.path()).unwrap();
    ingest_all_from_memory(&s, &d);
    for feature in (0..512u32).step_by(11) {
        let f = FeatureRef::new("L2", feature);
        let all = d.brute_top(feature);
        let Some(&(doc0, pos0, _)) = all.first() else {
            continue;
        };
        let token = d.token(doc0, pos0).to_string();
        type Keep<'a> = Box<dyn Fn(&(u32, u32, f32)) -> bool + 'a>;
        let filters: Vec<(Filter, Keep)> = vec![
            (
                Filter::compare(F::Value, Comparison::Gt, 1.0),
                Box::new(|e| e.2 > 1.0),
            ),
            (
                Filter::or(vec![
                    Filter::compare(F::Token, Comparison::Eq, token.as_str()),
                    Filter::test(F::Doc, Test::Between(10.0, 20.0)),
                ]),
                Box::new(|e| d.token(e.0, e.1) == token || (10..=20).contains(&e.0)),
            ),
            (
                Filter::not(Filter::SpecialToken),
                Box::new(|e| !["[CLS]", "[SEP]"].contains(&d.token(e.0, e.1))),
            ),
        ];
        for (filter, keep) in &filters {
            let kept: Vec<_> = all.iter().copied().filter(|e| keep(e)).collect();
            let got = s.top_activations(&f, 7, Some(filter)).unwrap();
            assert_eq!(triples(&got), kept[..kept.len().min(7)], "{filter:?}");
            // The quantiles, from the definition: ascending order, ranges floor((q-1)N/n).
            let mut asc = kept.clone();
            asc.sort_by(|a, b| a.2.total_cmp(&b.2).then((a.0, a.1).cmp(&(b.0, b.1))));
            for (q, of, k) in [(1, 1, 3), (1, 4, 2), (4, 4, 100), (2, 3, 1)] {
                let got = s
                    .sample_quantile(
                        &f,
                        QuantileQuery { k, quantile: q, of },
                        Some(filter),
                        &NoProgress,
                    )
                    .unwrap();
                let bucket = &asc[(q - 1) * asc.len() / of..q * asc.len() / of];
                let m = bucket.len();
                let mut want: Vec<_> = if k >= m {
                    bucket.to_vec()
                } else {
                    (0..k).map(|j| bucket[(2 * j + 1) * m / (2 * k)]).collect()
                };
                want.sort_by(|a, b| b.2.total_cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1))));
                assert_eq!(
                    triples(&got.picks),
                    want,
                    "L2/{feature} q{q}/{of} {filter:?}"
                );
                assert_eq!((got.size, got.total), (m, kept.len()));
                if m > 0 {
                    assert_eq!((got.lo, got.hi), (bucket[0].2, bucket[m - 1].2));
                }
            }
        }
    }
    let bad = Filter::compare(F::Token, Comparison::Lt, 3.0);
    let e = s
        .top_activations(&FeatureRef::new("L2", 1), 5, Some(&bad))
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
}

#[test]
fn bad_memory_input_is_refused_before_anything_is_written() {
    let d = data();
    let dir = tempfile::tempdir().unwrap();
    let s = Store::create_or_open(dir.path()).unwrap();
    ingest_all_from_memory(&s, &d);
    let snapshot = |s: &Store| format!("{:?}", s.info().map(|i| (i.dictionaries, i.documents)));
    let before = snapshot(&s);
    let named = |e: Error, want: &str| {
        let m = e.to_string();
        assert!(matches!(e, Error::BadInput { .. }), "{m}");
        assert!(m.contains("my input") && m.contains(want), "{m}");
    };
    let sparse = |doc: &[u32], feature: &[u32], value: &[f32]| {
        s.ingest_sparse(
            "L2",
            "my input",
            &SparseActivations {
                doc,
                pos: &vec![0; doc.len()],
                feature,
                value,
            },
            &NoProgress,
        )
        .unwrap_err()
    };
    named(sparse(&[0, 1], &[0], &[1.0]), "one length");
    named(sparse(&[0], &[512], &[1.0]), "out of range");
    named(sparse(&[0], &[3], &[f32::NAN]), "not finite");
    named(sparse(&[0], &[3], &[1e6]), "float16");
    named(sparse(&[0, 0], &[3, 3], &[1.0, 2.0]), "appears twice");
    named(sparse(&[99_999], &[3], &[1.0]), "not in the store");
    named(sparse(&[0], &[3], &[1.0]), "already has activations");
    let (doc, pos, feature, value) = d.columns();
    let again = SparseActivations {
        doc: &doc,
        pos: &pos,
        feature: &feature,
        value: &value,
    };
    let e = s
        .ingest_sparse("L2", "again", &again, &NoProgress)
        .unwrap_err();
    assert!(matches!(e, Error::AlreadyIngested { .. }), "{e}");

    let mut w = d.weights();
    w.w_enc = &d.w_enc[1..];
    let weights = |w: &DictionaryWeights| {
        s.ingest_dictionary_weights("X", "my input", w, IndexBuild::OnFirstUse, &NoProgress)
            .unwrap_err()
    };
    named(weights(&w), "W_enc has 196607 values, expected 196608");
    let mut w = d.weights();
    w.k = Some(513);
    named(weights(&w), "k 513");
    w.k = None;
    named(weights(&w), "needs k");
    let mut w = d.weights();
    let nan = vec![f32::NAN; 384];
    w.b_dec = &nan;
    named(weights(&w), "b_dec holds NaN");

    let dense = |values: &[f32], doc: &[u32], pos: &[u32]| {
        s.ingest_dense(
            "L2",
            "my input",
            &DenseActivations {
                values,
                d_in: 384,
                doc,
                pos,
            },
            &NoProgress,
        )
        .unwrap_err()
    };
    named(dense(&[0.0; 384], &[0, 1], &[0, 0]), "expected n × d_in");
    named(dense(&[0.0; 768], &[0, 0], &[1, 1]), "appears twice");

    let mut docs = d.docs[..2].to_vec();
    docs[1].doc = docs[0].doc;
    let e = s
        .ingest_documents("my input", &docs, &NoProgress)
        .unwrap_err();
    named(e, "duplicate doc id");
    let mut docs = vec![d.docs[0].clone()];
    docs[0].tokens.push("changed".into());
    docs[0].token_ids.clear();
    let e = s
        .ingest_documents("my input", &docs, &NoProgress)
        .unwrap_err();
    named(e, "different content");
    assert_eq!(snapshot(&s), before);
    assert!(s.check().unwrap().is_ok());
}

/// Asks to stop at its `limit`-th question: run an ingest with every limit in turn to stop it at
/// every point it checks.
struct StopAt {
    asked: AtomicUsize,
    limit: usize,
}

impl Progress for StopAt {
    fn start(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
    fn is_cancelled(&self) -> bool {
        self.asked.fetch_add(1, Ordering::SeqCst) >= self.limit
    }
}

#[test]
fn a_cancelled_ingest_leaves_the_store_as_it_was_at_every_point() {
    let d = data();
    let fx = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let s = Store::create_or_open(dir.path()).unwrap();
    let snapshot = |s: &Store| {
        let f = FeatureRef::new("L2", 5);
        format!(
            "{:?} {:?} {:?}",
            s.info().map(|i| (i.dictionaries, i.documents, i.tokens)),
            s.top_activations(&f, 5, None).ok(),
            s.features_at(3, 2, None).ok()
        )
    };
    let (doc, pos, feature, value) = d.columns();
    let sparse = SparseActivations {
        doc: &doc,
        pos: &pos,
        feature: &feature,
        value: &value,
    };
    type Step<'a> = Box<dyn Fn(&Store, &dyn Progress) -> saedb_engine::Result<()> + 'a>;
    let steps: Vec<(&str, Step)> = vec![
        (
            "documents",
            Box::new(|s, p| s.ingest_documents("docs", &d.docs, p).map(drop)),
        ),
        (
            "dictionary",
            Box::new(|s, p| {
                s.ingest_dictionary_weights("L2", "w", &d.weights(), IndexBuild::AtIngest, p)
                    .map(drop)
            }),
        ),
        (
            "sparse",
            Box::new(|s, p| s.ingest_sparse("L2", "latents", &sparse, p).map(drop)),
        ),
        (
            "dictionary file",
            Box::new(|s, p| {
                s.ingest_dictionary_with("L4", &fx.join("sae_L4"), IndexBuild::OnFirstUse, p)
                    .map(drop)
            }),
        ),
        (
            "latents file",
            Box::new(|s, p| {
                s.ingest_latents("L4", &fx.join("latents_L4.safetensors"), p)
                    .map(drop)
            }),
        ),
    ];
    for (name, step) in &steps {
        let mut stops = 0;
        for limit in 0.. {
            let before = snapshot(&s);
            let p = StopAt {
                asked: AtomicUsize::new(0),
                limit,
            };
            match step(&s, &p) {
                Err(Error::Cancelled) => {
                    stops += 1;
                    assert_eq!(snapshot(&s), before, "{name} cancelled at check {limit}");
                }
                Ok(()) => break,
                Err(e) => panic!("{name} at check {limit}: {e}"),
            }
        }
        assert!(stops >= 2, "{name} checked for cancellation {stops} times");
    }
    // The dictionary cancelled during its index build was committed: its index comes on first use.
    assert!(s.neighbours(&FeatureRef::new("L2", 3), None, 5).is_ok());
    assert!(s.check().unwrap().is_ok());

    // A flag shared with another thread stops a long read too.
    let cancel = Cancel::new();
    cancel.cancel();
    let e = s
        .sample_quantile(
            &FeatureRef::new("L2", 3),
            QuantileQuery {
                k: 1,
                quantile: 1,
                of: 1,
            },
            None,
            &cancel,
        )
        .unwrap_err();
    assert!(matches!(e, Error::Cancelled), "{e}");
}

#[test]
fn open_options_refuse_what_is_not_a_store_and_report_a_held_lock() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    for opts in [OpenOptions::new(), OpenOptions::new().create(true)] {
        let e = opts.open(&file).err().unwrap();
        assert!(matches!(e, Error::Store { .. }), "{e}");
        assert!(e.to_string().contains("a store is a directory"), "{e}");
    }
    let e = OpenOptions::new()
        .create(true)
        .read_only(true)
        .open(dir.path().join("new"))
        .err()
        .unwrap();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    assert!(!dir.path().join("new").exists());
    let e = OpenOptions::new()
        .read_only(true)
        .open(dir.path().join("missing"));
    assert!(e.err().unwrap().to_string().contains("no such store"));

    let path = dir.path().join("store");
    let writer = OpenOptions::new().create(true).open(&path).unwrap();
    let e = OpenOptions::new().open(&path).err().unwrap();
    assert!(matches!(e, Error::Locked { .. }), "{e}");
    assert!(
        e.to_string().contains("in use by another saedb process"),
        "{e}"
    );
    let reader = OpenOptions::new().read_only(true).open(&path).unwrap();
    assert_eq!(reader.dictionaries(), writer.dictionaries());
    let e = reader
        .set_label(&FeatureRef::new("L2", 0), "x")
        .unwrap_err();
    assert!(
        e.to_string().contains("read-only") || e.to_string().contains("unknown"),
        "{e}"
    );
}
