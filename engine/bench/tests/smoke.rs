//! CI smoke test: the whole harness at the `tiny` scale (5k tokens, a few seconds), checking the
//! summary's keys and that values are sane. No timing assertions: CI machines are noisy.

use serde_json::Value;
use std::process::Command;

const KEYS: &[&str] = &[
    "bytes_per_nnz",
    "ingest_nnz_per_s",
    "ingest_vs_flat_ratio",
    "top20_p50_us",
    "top20_p99_us",
    "top20_speedup_vs_scan",
    "top20_growth_4x_corpus",
    "features_at_p50_us",
    "knn_recall_at_10",
    "knn_p50_us",
    "knn_speedup_vs_exact",
    "encode_vs_gemm_ratio",
    "chains_p50_us",
    "ingest_peak_rss_mb",
];

#[test]
fn tiny_scale_writes_a_sane_summary() {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.json");
    let out = Command::new(env!("CARGO_BIN_EXE_saedb-bench"))
        .args(["--scale", "tiny", "--queries", "50", "--scan-queries", "5"])
        .arg("--work-dir")
        .arg(dir.path().join("work"))
        .arg("--summary")
        .arg(&summary)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "saedb-bench failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("| bytes_per_nnz"), "no table:\n{stdout}");
    assert!(!dir.path().join("work").exists(), "work dir not cleaned up");

    let s: Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    for k in KEYS {
        assert!(s.get(k).is_some(), "summary lacks {k}: {s:#}");
    }
    let f = |k: &str| {
        s[k].as_f64()
            .unwrap_or_else(|| panic!("{k} is not a number: {}", s[k]))
    };
    // One scale only: the growth figure needs two.
    assert!(s["top20_growth_4x_corpus"].is_null());
    let recall = f("knn_recall_at_10");
    assert!((0.0..=1.0).contains(&recall), "recall {recall}");
    assert!(recall > 0.5, "HNSW recall collapsed: {recall}");
    for k in KEYS
        .iter()
        .filter(|k| **k != "top20_growth_4x_corpus" && **k != "knn_recall_at_10")
    {
        let v = f(k);
        assert!(v.is_finite() && v > 0.0, "{k} = {v}");
    }
    // Sanity of the shapes: ~60 active features per token, both stores hold every nonzero.
    let tokens = s["tokens"].as_f64().unwrap();
    let nnz = s["nnz"].as_f64().unwrap();
    assert!(
        (40.0..80.0).contains(&(nnz / tokens)),
        "L0 {}",
        nnz / tokens
    );
    assert!(
        (7.9..14.1).contains(&f("flat_bytes_per_nnz")),
        "flat {}",
        f("flat_bytes_per_nnz")
    );
    assert_eq!(
        s["top20_disagreements_vs_scan"], 0,
        "saedb and the flat scan disagree"
    );
    assert!(s["runs"].as_array().is_some_and(|r| r.len() == 1));

    // The entropy floor. The generator's values are exp(mu_f + 0.6 N(0,1)): as float16, given
    // the feature, that is 11.81 bits (numerical integration outside this code); the estimate
    // from counts is a little lower on few samples per feature. No store beats the floor.
    let value_bits = f("floor_value_bits_per_nnz");
    assert!(
        (11.3..11.9).contains(&value_bits),
        "value bits {value_bits}"
    );
    let location_bits = f("floor_location_bits_per_nnz");
    assert!(
        (1.0..(2048f64).log2()).contains(&location_bits),
        "location bits {location_bits}"
    );
    let floor = f("bytes_floor_per_nnz");
    assert!(
        (floor - (value_bits + location_bits) / 4.0).abs() < 1e-9,
        "floor {floor}"
    );
    assert!(floor < f("bytes_per_nnz"), "floor {floor} above the store");
}
