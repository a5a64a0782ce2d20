//! The feature-page benchmark: server time of feature pages on a real store, with a profile of
//! where it goes (docs/BENCHMARKS.md, "saedb serve").
//!
//! ```sh
//! saedb ingest dictionary dev.saedb --name L2 ../shared/data/minilm-dev/sae_L2   # and L4,
//! # tokens.jsonl, latents_L2/L4, the vocabulary: docs/SERVE.md lists the commands
//! cargo run --workspace --example feature_pages -- dev.saedb L2 300
//! ```
//!
//! Builds `PAGES` pages of features picked evenly over the dictionary (a fixed stride, the same
//! on every run) exactly as the server does, after one untimed warm-up page (which loads the
//! decoder, the HNSW index and the vocabulary matrix, as a server's first page does). Prints
//! p50 / p99 of the whole page and the median of each part, and the same store call that every
//! page makes first (`feature_stats`) as a baseline measured in the same run. Then computes the
//! dictionary's map (the `/map/` page's layout) and prints how long it took, or that the store
//! had it cached.

use saedb_engine::{FeatureRef, NoProgress, Store};
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [store, dict, rest @ ..] = args.as_slice() else {
        eprintln!("usage: feature_pages STORE DICTIONARY [PAGES]");
        std::process::exit(2);
    };
    let pages: usize = rest
        .first()
        .map_or(Ok(300), |s| s.parse())
        .unwrap_or_else(|_| {
            eprintln!("PAGES must be a number");
            std::process::exit(2)
        });
    let store = Arc::new(Store::open_read_only(store).unwrap_or_else(|e| {
        eprintln!("{store}: {e}");
        std::process::exit(1)
    }));
    let d_sae = store.dictionary(dict).map(|d| d.d_sae).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    let feature = |i: usize| FeatureRef::new(dict, ((i * 7919) % d_sae as usize) as u32);

    let warm = Instant::now();
    saedb_serve::feature_page_profiled(&store, &feature(pages)).expect("warm-up page");
    println!(
        "warm-up page (loads decoder, index, vocabulary): {:.1} ms",
        ms(warm)
    );

    let mut totals = Vec::with_capacity(pages);
    let mut parts: Vec<(&'static str, Vec<f64>)> = Vec::new();
    let mut baseline = Vec::with_capacity(pages);
    for i in 0..pages {
        let f = feature(i);
        let t = Instant::now();
        store.feature_stats(&f).expect("stats");
        baseline.push(ms(t));
        let t = Instant::now();
        let (_, profile) = saedb_serve::feature_page_profiled(&store, &f).expect("page");
        totals.push(ms(t));
        for (k, (name, v)) in profile.into_iter().enumerate() {
            if parts.len() <= k {
                parts.push((name, Vec::new()));
            }
            parts[k].1.push(v);
        }
    }
    let (p50, p99) = (percentile(&mut totals, 0.5), percentile(&mut totals, 0.99));
    let base = percentile(&mut baseline, 0.5);
    println!("{pages} feature pages of {dict}: p50 {p50:.2} ms, p99 {p99:.2} ms");
    println!("baseline (feature_stats alone, same run): p50 {base:.3} ms");
    println!("median by part:");
    for (name, mut v) in parts {
        println!("  {name:<12} {:>8.2} ms", percentile(&mut v, 0.5));
    }
    let map = store.dictionary_map(dict, &NoProgress).expect("map");
    println!(
        "map of {dict}: {} points, {}",
        map.points.len(),
        if map.from_cache {
            "read from the store's cache".to_string()
        } else {
            format!("computed in {:.2} s", map.seconds)
        }
    );
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn percentile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}
