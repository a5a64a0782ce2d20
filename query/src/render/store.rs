//! The summaries of a store that the command-line tool prints: `saedb info`, `saedb check`, and
//! the line after an ingest.

use super::table::{render_table_styled, TableStyle};
use super::text::{human_bytes, thousands};
use crate::tables;
use saedb_engine::{CheckReport, IngestReport, StoreInfo};
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
}
