//! The summaries of a store that the command-line tool prints: `saedb info`, `saedb check`, and
//! the line after an ingest.

use super::table::{render_table_styled, TableStyle};
use super::text::{human_bytes, thousands};
use crate::tables;
use saedb_engine::{CheckReport, IngestReport, LiveDictionary, ModelInfo, StoreInfo};
use std::fmt::Write as _;

/// The one-line summary of a finished ingest.
pub fn render_ingest(r: &IngestReport) -> String {
    format!(
        "ingested {} {} ({}) from {} in {:.2} s",
        thousands(r.items),
        r.unit,
        r.kind,
        r.path,
        r.seconds
    )
}

/// `saedb info` as aligned text: the store's counts, then its dictionaries as SHOW DICTIONARIES
/// shows them (with thousands separators).
pub fn render_info(info: &StoreInfo) -> String {
    let mut s = String::new();
    let mut kv = |k: &str, v: String| {
        let _ = writeln!(s, "{k:<13}{v}");
    };
    kv("store", info.path.clone());
    kv(
        "format",
        format!(
            "version {}, {} on disk",
            info.format_version,
            human_bytes(info.bytes_on_disk)
        ),
    );
    kv("documents", thousands(info.documents));
    kv("tokens", thousands(info.tokens));
    kv(
        "vocabulary",
        match &info.vocabulary {
            None => "none (ingest one with `saedb ingest vocab` for TOKEN EFFECTS)".to_string(),
            Some(v) => format!(
                "{} [{} x {}] from {}",
                v.tensor,
                thousands(u64::from(v.n_vocab)),
                v.d_model,
                v.source_path
            ),
        },
    );
    kv(
        "graphs",
        if info.graphs.is_empty() {
            "none".to_string()
        } else {
            info.graphs.join(", ")
        },
    );
    kv("labels", thousands(info.labels));
    if info.dictionaries.is_empty() {
        kv("dictionaries", "none".to_string());
        return s;
    }
    kv("dictionaries", info.dictionaries.len().to_string());
    let style = TableStyle {
        group_digits: true,
        ..TableStyle::default()
    };
    s + &render_table_styled(&tables::dictionaries(&info.dictionaries), style)
}

/// The second part of `saedb info`: the registered models, then per dictionary whether it can
/// run on text live, on which model and where, or why not.
pub fn render_models(models: &[ModelInfo], live: &[LiveDictionary]) -> String {
    let mut s = String::new();
    if models.is_empty() {
        s += "models       none (register one with `saedb ingest model` to run text live)\n";
        return s;
    }
    let _ = writeln!(s, "models       {}", models.len());
    let style = TableStyle {
        group_digits: true,
        ..TableStyle::default()
    };
    s += &render_table_styled(&tables::models(models), style);
    for d in live {
        match (&d.model, d.site, &d.reason) {
            (Some(m), Some(site), _) => {
                let _ = writeln!(
                    s,
                    "live         {} on model {m}: {} reads the residual stream after {site} blocks",
                    d.dictionary,
                    d.hook.as_deref().unwrap_or("its hook")
                );
            }
            (_, _, reason) => {
                let _ = writeln!(
                    s,
                    "not live     {}: {}",
                    d.dictionary,
                    reason.as_deref().unwrap_or("no model fits it")
                );
            }
        }
    }
    s
}

/// The check report as a short summary: what was checked, then every problem and note, then `ok`
/// when there is no problem.
pub fn render_check(r: &CheckReport) -> String {
    let mut out = format!(
        "format version {}: {} dictionaries, {} activations in both orientations, {} feature statistics, {} graphs checked\n",
        r.format_version, r.dictionaries, r.activations, r.features, r.graphs
    );
    for p in &r.problems {
        let _ = writeln!(out, "problem: {p}");
    }
    for n in &r.notes {
        let _ = writeln!(out, "note: {n}");
    }
    if r.problems.is_empty() {
        out += "ok\n";
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use saedb_engine::{Architecture, DictionaryInfo};

    #[test]
    fn info_renders_every_dictionary() {
        let d = DictionaryInfo {
            name: "L2".into(),
            id: 0,
            d_in: 384,
            d_sae: 512,
            architecture: Architecture::TopK,
            k: Some(16),
            apply_b_dec_to_input: true,
            hook: Some("blocks.2.hook_resid_post".into()),
            layer: Some(2),
            model: Some("all-MiniLM-L6-v2".into()),
            source_format: "saelens".into(),
            source_path: "x".into(),
            tokens_encoded: 1234,
            nonzeros: 19744,
        };
        let info = StoreInfo {
            path: "s".into(),
            format_version: 1,
            documents: 54,
            tokens: 2000,
            dictionaries: vec![d],
            vocabulary: None,
            graphs: vec![],
            labels: 0,
            bytes_on_disk: 4096,
        };
        let t = render_info(&info);
        assert!(t.contains("documents    54\n"), "{t}");
        assert!(t.contains("dictionaries 1\n"), "{t}");
        assert!(t.contains("|   19,744\n"), "{t}");
        assert!(t.contains("| topk"), "{t}");
        assert!(t.ends_with("(1 row)\n"), "{t}");
    }

    #[test]
    fn models_say_which_dictionary_runs_live_and_why_not() {
        assert!(render_models(&[], &[]).starts_with("models       none"));
        let m: ModelInfo = serde_json::from_value(serde_json::json!({
            "name": "smollm2", "path": "/m/SmolLM2.gguf", "content_hash": "00",
            "tokenizer": "/m/tokenizer.json", "tokenizer_hash": "11",
            "config": {"architecture": "llama", "n_layers": 30, "d_model": 576, "d_mlp": 1536,
                "n_heads": 9, "n_kv_heads": 3, "head_dim": 64, "vocab_size": 49152,
                "max_positions": 8192, "norm_eps": 1e-5}
        }))
        .unwrap();
        let live = [
            LiveDictionary {
                dictionary: "L9".into(),
                hook: Some("blocks.9.hook_resid_post".into()),
                model: Some("smollm2".into()),
                site: Some(10),
                reason: None,
            },
            LiveDictionary {
                dictionary: "L2".into(),
                hook: None,
                model: None,
                site: None,
                reason: Some("model 'smollm2' is 576 wide but the dictionary's d_in is 384".into()),
            },
        ];
        let t = render_models(&[m], &live);
        assert!(t.starts_with("models       1\n"), "{t}");
        assert!(t.contains("| llama "), "{t}");
        assert!(t.contains("49,152"), "{t}");
        assert!(
            t.contains("live         L9 on model smollm2: blocks.9.hook_resid_post reads the residual stream after 10 blocks\n"),
            "{t}"
        );
        assert!(
            t.contains("not live     L2: model 'smollm2' is 576 wide"),
            "{t}"
        );
    }
}
