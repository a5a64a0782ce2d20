//! saedb-bench: generates a realistic synthetic corpus, ingests it into a fresh store and
//! measures every figure of issue 5 beside a baseline taken in the same run (see
//! docs/BENCHMARKS.md). `cargo run --release -p saedb-bench -- --scale medium`.

/// The same allocator as the `saedb` binary, so that ingest is measured as users run it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod disk;
mod flat;
mod floor;
mod gen;
mod model;
mod rng;
mod st;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use clap::Parser;
use gen::ScaleSpec;
use rng::Rng;
use saedb_engine::encode::Encoder;
use saedb_engine::formats::sae::load_sae;
use saedb_engine::graph::ChainQuery;
use saedb_engine::{default_search_breadth, FeatureRef, IndexBuild, NoProgress, Store};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "saedb benchmark harness with same-run baselines (issue 5)")]
struct Args {
    /// tiny (5k tokens), small (100k), medium (2M), large (8M). Several, comma-separated
    /// (e.g. `medium,large`), also give top20_growth_4x_corpus.
    #[arg(long, value_delimiter = ',', default_value = "small")]
    scale: Vec<String>,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Timed queries per measurement (after one untimed warm pass over the same queries).
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// Timed TOP 20 scans of the flat cache (each reads a whole split file).
    #[arg(long, default_value_t = 20)]
    scan_queries: usize,
    /// Where the data and store go (default: <target>/bench/work-<scale>); removed afterwards
    /// unless --keep.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// The JSON summary (default: $CARGO_TARGET_DIR/bench/summary.json, else target/bench/).
    #[arg(long)]
    summary: Option<PathBuf>,
    /// Keep the generated data and the store.
    #[arg(long)]
    keep: bool,
    /// Measure only these sections (comma-separated): storage (ingest, size, TOP 20, FEATURES
    /// AT), knn, encode, chains, dict (the dictionary ingest alone, index deferred: time and
    /// peak RSS) — the default: all five — and model (only when named: SmolLM2 with its SAEs, no
    /// scale, no corpus). `--only knn --scale large` builds just the 131k dictionary.
    #[arg(long, value_delimiter = ',', default_values_t = SCALE_SECTIONS.map(String::from))]
    only: Vec<String>,
    /// Override the scale's dictionary size d_sae (e.g. `--scale large --d-sae 32768 --only knn`).
    #[arg(long)]
    d_sae: Option<usize>,
    /// Measure an existing SAELens / sparsify dictionary instead of a generated one (with
    /// `--only knn` and/or `dict`): its d_in and d_sae replace the scale's.
    #[arg(long)]
    dictionary: Option<PathBuf>,
    /// Override the scale's model width d_in (e.g. `--scale xl --d-in 2304 --only dict`).
    #[arg(long)]
    d_in: Option<usize>,
}

/// The sections measured on each scale's synthetic corpus (the default).
const SCALE_SECTIONS: [&str; 5] = ["storage", "knn", "encode", "chains", "dict"];
/// Every section; `model` runs minutes of a real model, so only when asked for.
const SECTIONS: [&str; 6] = ["storage", "knn", "encode", "chains", "dict", "model"];

impl Args {
    fn wants(&self, section: &str) -> bool {
        self.only.iter().any(|s| s == section)
    }
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(bad) = args.only.iter().find(|s| !SECTIONS.contains(&s.as_str())) {
        bail!("unknown section '{bad}' in --only (storage, knn, encode, chains, dict, model)");
    }
    // The model section is measured once, on real weights, whatever the scales.
    let model = if args.wants("model") {
        model::run()?
    } else {
        None
    };
    let scale_sections = args.only.iter().any(|s| s != "model");
    let mut runs: Vec<Map<String, Value>> = Vec::new();
    for name in args.scale.iter().filter(|_| scale_sections) {
        let mut spec = ScaleSpec::named(name)
            .with_context(|| format!("unknown scale '{name}' (tiny, small, medium, large, xl)"))?;
        if let Some(d_in) = args.d_in {
            spec.d_in = d_in;
        }
        if let Some(d_sae) = args.d_sae {
            spec.d_sae = d_sae;
            spec.clusters = (d_sae / 32).max(1);
        }
        if let Some(path) = &args.dictionary {
            if args.wants("storage") || args.wants("encode") {
                bail!("--dictionary measures only the sections knn and dict (add --only knn,dict)");
            }
            let sae = saedb_engine::formats::open_sae(path)?.sae;
            (spec.d_in, spec.d_sae) = (sae.d_in, sae.d_sae);
            spec.name = format!("{name}-{}", path.display());
        }
        let work = match &args.work_dir {
            Some(w) if args.scale.len() == 1 => w.clone(),
            Some(w) => w.join(name),
            None => target_dir().join("bench").join(format!("work-{name}")),
        };
        disk::check(&spec, &work, &args.only)?;
        let run = run_scale(&spec, &work, &args)?;
        if !args.keep {
            let _ = std::fs::remove_dir_all(&work);
        }
        runs.push(run);
    }
    // The summary's top-level keys describe the last (largest) scale run.
    let mut summary = runs.last().cloned().unwrap_or_default();
    let growth = if runs.len() >= 2 {
        let first = runs[0]["top20_p50_us"].as_f64().unwrap_or(0.0);
        let last = runs[runs.len() - 1]["top20_p50_us"].as_f64().unwrap_or(0.0);
        summary.insert(
            "top20_growth_scales".into(),
            json!([runs[0]["scale"], runs[runs.len() - 1]["scale"]]),
        );
        if first > 0.0 {
            json!(last / first)
        } else {
            Value::Null
        }
    } else {
        Value::Null
    };
    summary.insert("top20_growth_4x_corpus".into(), growth.clone());
    // Issue 16's key: the same growth when the two scales are 10x apart in tokens (medium,xl).
    let tokens = |r: &Map<String, Value>| r.get("tokens").and_then(Value::as_f64).unwrap_or(0.0);
    let tenfold = runs.len() >= 2 && tokens(&runs[runs.len() - 1]) == 10.0 * tokens(&runs[0]);
    summary.insert(
        "top20_growth_10x_corpus".into(),
        if tenfold { growth.clone() } else { Value::Null },
    );
    summary.insert("runs".into(), json!(runs));
    if let Some(m) = &model {
        print_model_table(m);
        summary.insert("model".into(), json!(m));
    }
    for (i, run) in runs.iter().enumerate() {
        print_table(
            run,
            if i + 1 == runs.len() {
                &growth
            } else {
                &Value::Null
            },
        );
    }
    let path = args
        .summary
        .clone()
        .unwrap_or_else(|| target_dir().join("bench").join("summary.json"));
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p)?;
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&Value::Object(summary))?)?;
    println!("summary: {}", path.display());
    Ok(())
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// (p50, p99) in µs of timed samples.
fn percentiles(mut v: Vec<Duration>) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    v.sort();
    let at = |q: f64| us(v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]);
    (at(0.50), at(0.99))
}

/// Runs `f` once per item untimed (warm), then once more timed; returns the samples.
fn timed<T>(items: &[T], mut f: impl FnMut(&T) -> Result<()>) -> Result<Vec<Duration>> {
    for it in items {
        f(it)?;
    }
    let mut out = Vec::with_capacity(items.len());
    for it in items {
        let t = Instant::now();
        f(it)?;
        out.push(t.elapsed());
    }
    Ok(out)
}

/// Bytes of the store's table files, all column families.
fn table_bytes(store: &Store) -> u64 {
    store.bytes_by_part().iter().map(|(_, bytes)| bytes).sum()
}

/// Peak resident set (VmHWM) in MiB.
fn peak_rss_mb() -> f64 {
    status_mb("VmHWM:")
}

/// Resident set now (VmRSS) in MiB.
fn rss_mb() -> f64 {
    status_mb("VmRSS:")
}

/// A `/proc/self/status` field given in kB, in MiB (0 off Linux).
fn status_mb(field: &str) -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// CPU seconds this process has used (user + system, all threads; `/proc/self/stat`, in the
/// kernel's 100 Hz ticks), or NaN off Linux. Beside a wall time it tells how busy both cores
/// were, and it is much steadier than wall time on a shared machine.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces, inside parentheses).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    match (fields.get(11), fields.get(12)) {
        (Some(u), Some(s)) => match (u.parse::<f64>(), s.parse::<f64>()) {
            (Ok(u), Ok(s)) => (u + s) / 100.0,
            _ => f64::NAN,
        },
        _ => f64::NAN,
    }
}

/// Resets VmHWM to the current RSS (Linux ≥ 4.0), so the ingest peak excludes generation.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn log(msg: &str) {
    eprintln!("[saedb-bench] {msg}");
}

fn run_scale(spec: &ScaleSpec, work: &Path, args: &Args) -> Result<Map<String, Value>> {
    if work.exists() {
        std::fs::remove_dir_all(work).with_context(|| format!("removing {}", work.display()))?;
    }
    std::fs::create_dir_all(work)?;
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    put("scale", json!(spec.name));
    put("spec", serde_json::to_value(spec)?);
    put(
        "profile",
        json!(if cfg!(debug_assertions) {
            "dev"
        } else {
            "release"
        }),
    );
    put("date_utc", json!(utc_now()));
    put("threads", json!(rayon::current_num_threads()));
    put("seed", json!(args.seed));

    // ---- generate
    let t = Instant::now();
    log(&format!(
        "generating {}: {} tokens, d_in {}, d_sae {}",
        spec.name,
        spec.tokens(),
        spec.d_in,
        spec.d_sae
    ));
    let corpus = if let Some(path) = &args.dictionary {
        gen::Corpus::of_dictionary(path)
    } else if args.wants("storage") {
        gen::generate(&work.join("data"), spec, args.seed)?
    } else {
        gen::generate_dictionary(&work.join("data"), spec, args.seed)?
    };
    std::fs::create_dir_all(work.join("data"))?;
    let graph_path = work.join("data").join("graph.json");
    let graph_target = gen::write_graph(&graph_path, 5_000, 100_000, args.seed)?;
    log(&format!(
        "generated {} nonzeros in {} latents files ({:.1} s)",
        corpus.nnz,
        corpus.latents.len(),
        t.elapsed().as_secs_f64()
    ));
    put("tokens", json!(spec.tokens()));
    put("nnz", json!(corpus.nnz));
    put("latents_files", json!(corpus.latents.len()));
    put("generate_s", json!(t.elapsed().as_secs_f64()));
    if args.wants("dict") {
        dictionary_ingest(&corpus, work, &mut put)?;
    }

    // ---- saedb ingest (durable: every ingest commits with a synced write)
    let rss_reset = reset_peak_rss();
    let store = Store::create_or_open(work.join("store"))?;
    let dict = "bench";
    if args.wants("storage") || args.wants("knn") {
        // The index is built apart (and timed) for the kNN section; without it nothing
        // searches the index, so that storage-only runs measure storage.
        log("ingesting the dictionary (index deferred)");
        let t = Instant::now();
        store.ingest_dictionary_with(
            dict,
            &corpus.dict_dir,
            IndexBuild::OnFirstUse,
            &NoProgress,
        )?;
        if args.wants("knn") {
            log("building the HNSW index");
            let b = Instant::now();
            store.build_index(dict, &NoProgress)?;
            let build_s = b.elapsed().as_secs_f64();
            put("index_build_s", json!(build_s));
            put(
                "index_build_features_per_s",
                json!(spec.d_sae as f64 / build_s),
            );
            log(&format!(
                "index built in {build_s:.1} s ({:.0} features/s)",
                spec.d_sae as f64 / build_s
            ));
        }
        // With the kNN section, the dictionary ingest and the index build together (as before).
        put("ingest_dictionary_s", json!(t.elapsed().as_secs_f64()));
    }
    if args.wants("storage") {
        let t = Instant::now();
        store.ingest_tokens(&corpus.tokens_path, &NoProgress)?;
        put("ingest_tokens_s", json!(t.elapsed().as_secs_f64()));
        store.compact()?;
        // Table files only: the directory's size also counts write-ahead logs and obsolete
        // files that RocksDB deletes when it gets to it, which moved bytes_per_nnz by 0.12 B
        // from run to run.
        let base_bytes = table_bytes(&store);
        log("ingesting latents");
        let cpu = cpu_seconds();
        let t = Instant::now();
        for (i, f) in corpus.latents.iter().enumerate() {
            store.ingest_latents(dict, f, &NoProgress)?;
            if (i + 1) % 5 == 0 {
                log(&format!(
                    "  {}/{} files, {:.1} s, peak RSS {:.0} MiB",
                    i + 1,
                    corpus.latents.len(),
                    t.elapsed().as_secs_f64(),
                    peak_rss_mb()
                ));
            }
        }
        let ingest_s = t.elapsed().as_secs_f64();
        let ingest_cpu_s = cpu_seconds() - cpu;
        let ingest_rss = peak_rss_mb();
        let t = Instant::now();
        store.compact()?;
        let compact_s = t.elapsed().as_secs_f64();
        let total_bytes = table_bytes(&store);
        let by_part: Map<String, Value> = store
            .bytes_by_part()
            .into_iter()
            .map(|(part, bytes)| (part.to_string(), json!(bytes)))
            .collect();
        put("store_bytes_by_part", Value::Object(by_part));
        let nnz = corpus.nnz as f64;
        put("ingest_latents_s", json!(ingest_s));
        put("compact_s", json!(compact_s));
        put("ingest_nnz_per_s", json!(nnz / ingest_s));
        put("ingest_cpu_s", json!(ingest_cpu_s));
        put("ingest_peak_rss_mb", json!(ingest_rss));
        put("ingest_peak_rss_reset", json!(rss_reset));
        put("store_bytes_total", json!(total_bytes));
        put("store_dir_bytes", json!(store.bytes_on_disk()));
        put("store_bytes_before_activations", json!(base_bytes));
        put(
            "bytes_per_nnz",
            json!(total_bytes.saturating_sub(base_bytes) as f64 / nnz),
        );

        // ---- baseline: delphi's split cache written from the same input files, durably
        log("writing the flat (delphi) cache");
        let cpu = cpu_seconds();
        let t = Instant::now();
        let cache = flat::write_cache(
            &work.join("flat"),
            spec,
            &corpus.latents,
            &corpus.split_counts,
        )?;
        let flat_s = t.elapsed().as_secs_f64();
        put("flat_write_cpu_s", json!(cpu_seconds() - cpu));
        let flat_bytes = dir_size(&cache.dir);
        put("flat_write_s", json!(flat_s));
        put("flat_bytes_per_nnz", json!(flat_bytes as f64 / nnz));
        put("ingest_vs_flat_ratio", json!(ingest_s / flat_s));
        // The yardstick for bytes_per_nnz: what any store of exact float16 values in both
        // orientations needs at least (read after both timed writes, so as not to warm them).
        let floor = floor::measure(&corpus.latents, spec.d_sae, spec.tokens() as u64)?;
        put("floor_value_bits_per_nnz", json!(floor.value_bits));
        put("floor_location_bits_per_nnz", json!(floor.location_bits));
        let floor_bytes = 2.0 * floor.one_orientation_bytes();
        put("bytes_floor_per_nnz", json!(floor_bytes));
        let bytes_per_nnz = total_bytes.saturating_sub(base_bytes) as f64 / nnz;
        put("bytes_vs_floor", json!(bytes_per_nnz / floor_bytes));

        // ---- TOP 20: saedb vs scanning the flat cache
        log("TOP 20");
        let mut r = Rng::derive(args.seed, 100, 0);
        let features: Vec<u32> = (0..args.queries)
            .map(|_| r.below(spec.d_sae as u64) as u32)
            .collect();
        let samples = timed(&features, |&f| {
            store.top_activations(&FeatureRef::new(dict, f), 20, None)?;
            Ok(())
        })?;
        let (p50, p99) = percentiles(samples);
        put("top20_p50_us", json!(p50));
        put("top20_p99_us", json!(p99));
        let scan_features = &features[..args.scan_queries.min(features.len())];
        let mut disagree = 0usize;
        let scan = timed(scan_features, |&f| {
            flat::scan_top(&cache, spec.d_sae, f, 20)?;
            Ok(())
        })?;
        for &f in scan_features {
            let want: Vec<f32> = flat::scan_top(&cache, spec.d_sae, f, 20)?
                .iter()
                .map(|h| h.2)
                .collect();
            let got: Vec<f32> = store
                .top_activations(&FeatureRef::new(dict, f), 20, None)?
                .iter()
                .map(|a| a.value)
                .collect();
            if want != got {
                disagree += 1;
            }
        }
        let (scan_p50, _) = percentiles(scan);
        put("top20_scan_p50_us", json!(scan_p50));
        put("top20_speedup_vs_scan", json!(scan_p50 / p50.max(1e-3)));
        put("top20_disagreements_vs_scan", json!(disagree));

        // ---- FEATURES AT
        let tokens: Vec<(u32, u32)> = (0..args.queries)
            .map(|_| {
                (
                    r.below(spec.docs as u64) as u32,
                    r.below(spec.doc_len as u64) as u32,
                )
            })
            .collect();
        let samples = timed(&tokens, |&(d, p)| {
            store.features_at(d, p, Some(dict))?;
            Ok(())
        })?;
        put("features_at_p50_us", json!(percentiles(samples).0));
    }

    if args.wants("knn") {
        // ---- NEIGHBOURS: HNSW vs exact
        log("neighbours");
        let mut r = Rng::derive(args.seed, 101, 0);
        let knn_features: Vec<u32> = (0..args.queries)
            .map(|_| r.below(spec.d_sae as u64) as u32)
            .collect();
        let fr = |f: u32| FeatureRef::new(dict, f);
        let approx = timed(&knn_features, |&f| {
            store.neighbours(&fr(f), None, 10)?;
            Ok(())
        })?;
        let exact = timed(&knn_features, |&f| {
            store.neighbours_exact(&fr(f), None, 10)?;
            Ok(())
        })?;
        let truth: Vec<Vec<u32>> = knn_features
            .iter()
            .map(|&f| {
                Ok(store
                    .neighbours_exact(&fr(f), None, 10)?
                    .iter()
                    .map(|n| n.feature.index)
                    .collect())
            })
            .collect::<Result<_>>()?;
        let recall = |breadth: usize| -> Result<f64> {
            let (mut hit, mut total) = (0usize, 0usize);
            for (&f, want) in knn_features.iter().zip(&truth) {
                let got = store.neighbours_with_breadth(&fr(f), None, 10, breadth)?;
                total += want.len();
                hit += want
                    .iter()
                    .filter(|w| got.iter().any(|g| g.feature.index == **w))
                    .count();
            }
            Ok(hit as f64 / total.max(1) as f64)
        };
        let (knn_p50, _) = percentiles(approx);
        let (exact_p50, _) = percentiles(exact);
        put(
            "knn_recall_at_10",
            json!(recall(default_search_breadth(10))?),
        );
        put("knn_p50_us", json!(knn_p50));
        put("knn_exact_p50_us", json!(exact_p50));
        put("knn_speedup_vs_exact", json!(exact_p50 / knn_p50.max(1e-3)));
        // The same queries at other search breadths: the recall / speed trade-off.
        let mut sweep = Vec::new();
        for breadth in [12, 16, 24, 32, 48, 96] {
            let samples = timed(&knn_features, |&f| {
                store.neighbours_with_breadth(&fr(f), None, 10, breadth)?;
                Ok(())
            })?;
            let p50 = percentiles(samples).0;
            sweep.push(json!({
                "ef": breadth,
                "recall_at_10": recall(breadth)?,
                "p50_us": p50,
                "speedup_vs_exact": exact_p50 / p50.max(1e-3),
            }));
        }
        put("knn_breadth_sweep", json!(sweep));
        // hnsw_rs's own search against saedb's flat search over the same graph, same queries,
        // timed alike (search call only) in this run.
        let breadth = default_search_breadth(10);
        let cmp = store.compare_ann_searches(dict, &knn_features, 10, breadth)?;
        let share_found = |found: &[Vec<u32>]| {
            let hit: usize = found
                .iter()
                .zip(&truth)
                .map(|(got, want)| want.iter().filter(|w| got.contains(w)).count())
                .sum();
            hit as f64 / truth.iter().map(Vec::len).sum::<usize>().max(1) as f64
        };
        let micros =
            |v: &[f64]| percentiles(v.iter().map(|u| Duration::from_secs_f64(u / 1e6)).collect()).0;
        let (theirs, ours) = (micros(&cmp.hnsw_rs_us), micros(&cmp.flat_us));
        put(
            "knn_search_vs_hnsw_rs",
            json!({
                "ef": breadth,
                "hnsw_rs_p50_us": theirs,
                "flat_p50_us": ours,
                "flat_speedup_vs_hnsw_rs": theirs / ours.max(1e-3),
                "hnsw_rs_recall_at_10": share_found(&cmp.hnsw_rs_found),
                "flat_recall_at_10": share_found(&cmp.flat_found),
            }),
        );
        log(&format!(
            "search only, ef {breadth}: hnsw_rs p50 {theirs:.0} us, flat p50 {ours:.0} us ({:.1}x)",
            theirs / ours.max(1e-3)
        ));
    }

    if args.wants("encode") {
        // ---- encode vs candle's raw GEMM on the same shapes
        log("encode vs GEMM");
        let (encode_s, gemm_s, rows) = encode_vs_gemm(spec, &corpus, args.seed)?;
        put("encode_batch_rows", json!(rows));
        put("encode_batch_s", json!(encode_s));
        put("gemm_batch_s", json!(gemm_s));
        put("encode_vs_gemm_ratio", json!(gemm_s / encode_s));
    }

    if args.wants("chains") {
        // ---- CHAINS on 5k nodes / 100k edges
        log("chains");
        let t = Instant::now();
        store.ingest_graph("bench_graph", &graph_path, &NoProgress)?;
        put("ingest_graph_s", json!(t.elapsed().as_secs_f64()));
        let q = ChainQuery {
            to: graph_target,
            limit: 10,
            ..Default::default()
        };
        let reps: Vec<usize> = (0..args.queries).collect();
        let mut n_chains = 0;
        let samples = timed(&reps, |_| {
            n_chains = store.chains("bench_graph", &q)?.len();
            Ok(())
        })?;
        if n_chains == 0 {
            bail!("chains found nothing on the synthetic graph");
        }
        put("chains_p50_us", json!(percentiles(samples).0));
    }
    put("top20_growth_4x_corpus", Value::Null);
    drop(store);
    Ok(m)
}

/// The dictionary ingest alone, into a store of its own, index deferred: wall time and the
/// peak resident set (VmHWM, reset just before; generation streams, so little is resident).
fn dictionary_ingest(
    corpus: &gen::Corpus,
    work: &Path,
    put: &mut impl FnMut(&str, Value),
) -> Result<()> {
    log("ingesting the dictionary alone (index deferred)");
    let dir = work.join("store-dict");
    put("dict_file_bytes", json!(dir_size(&corpus.dict_dir)));
    put("dict_ingest_rss_before_mb", json!(rss_mb()));
    put("dict_ingest_peak_rss_reset", json!(reset_peak_rss()));
    let store = Store::create_or_open(&dir)?;
    let t = Instant::now();
    store.ingest_dictionary_with(
        "bench",
        &corpus.dict_dir,
        IndexBuild::OnFirstUse,
        &NoProgress,
    )?;
    put("dict_ingest_s", json!(t.elapsed().as_secs_f64()));
    put("dict_ingest_peak_rss_mb", json!(peak_rss_mb()));
    drop(store);
    put("dict_store_bytes", json!(dir_size(&dir)));
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    log(&format!(
        "dictionary ingest done, peak RSS {:.0} MiB",
        peak_rss_mb()
    ));
    Ok(())
}

/// Median seconds per batch of `Encoder::encode` and of candle's `x @ W_enc` on the same shapes.
fn encode_vs_gemm(spec: &ScaleSpec, corpus: &gen::Corpus, seed: u64) -> Result<(f64, f64, usize)> {
    let rows = 4096;
    let sae = load_sae(&corpus.dict_dir)?;
    let enc = Encoder::new(&sae)?;
    let x = gen::dense_rows(spec, &sae.w_dec, rows, seed);
    let dev = Device::Cpu;
    let xt = Tensor::from_slice(&x, (rows, spec.d_in), &dev)?;
    let wt = Tensor::from_slice(&sae.w_enc, (spec.d_in, spec.d_sae), &dev)?;
    let reps = if spec.d_sae * spec.d_in > 4_000_000 {
        3
    } else {
        7
    };
    let mut e = Vec::new();
    let mut g = Vec::new();
    enc.encode(&x, rows)?;
    let _ = xt.matmul(&wt)?;
    for _ in 0..reps {
        let t = Instant::now();
        let codes = enc.encode(&x, rows)?;
        e.push(t.elapsed());
        std::hint::black_box(codes);
        let t = Instant::now();
        let p = xt.matmul(&wt)?;
        g.push(t.elapsed());
        std::hint::black_box(p);
    }
    let med = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64()
    };
    Ok((med(e), med(g), rows))
}

fn dir_size(p: &Path) -> u64 {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let Ok(md) = e.metadata() else { continue };
            n += if md.is_dir() {
                dir_size(&e.path())
            } else {
                md.len()
            };
        }
    }
    n
}

/// `YYYY-MM-DD HH:MM` UTC from the system clock (civil-from-days, no date crate).
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// The model section's rows (issue 14's targets).
fn print_model_table(m: &Map<String, Value>) {
    println!(
        "\nsaedb-bench model: SmolLM2-135M-Instruct (f32) + SAEs L9, L18, profile {}, {}",
        if cfg!(debug_assertions) {
            "dev"
        } else {
            "release"
        },
        utc_now()
    );
    for (k, v, target, base, ok) in model::rows(m) {
        let verdict = match (target.starts_with('('), ok) {
            (true, _) => "",
            (false, true) => "met",
            (false, false) => "MISSED",
        };
        println!("| {k:<26} | {v:>8} | {target:<10} | {base:<44} | {verdict:<6} |");
    }
}

/// One row per metric: value, target (issue 5, medium scale unless noted), baseline, verdict.
fn print_table(run: &Map<String, Value>, growth: &Value) {
    let f = |k: &str| run.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
    let at_medium = run["scale"] == "medium";
    let verdict = |ok: bool| {
        if ok {
            "met"
        } else {
            "MISSED"
        }
    };
    let rows: Vec<(String, String, String, String, bool)> = vec![
        (
            "bytes_per_nnz".into(),
            format!("{:.2}", f("bytes_per_nnz")),
            "<= 4 B".into(),
            format!(
                "flat cache {:.2} B; floor {:.2} B",
                f("flat_bytes_per_nnz"),
                f("bytes_floor_per_nnz")
            ),
            f("bytes_per_nnz") <= 4.0,
        ),
        (
            "ingest_nnz_per_s".into(),
            format!("{:.3}M", f("ingest_nnz_per_s") / 1e6),
            ">= 5M/s".into(),
            format!("{:.1} s for {} nnz", f("ingest_latents_s"), run["nnz"]),
            f("ingest_nnz_per_s") >= 5e6,
        ),
        (
            "ingest_vs_flat_ratio".into(),
            format!("{:.2}", f("ingest_vs_flat_ratio")),
            "<= 3".into(),
            format!("flat write {:.2} s", f("flat_write_s")),
            f("ingest_vs_flat_ratio") <= 3.0,
        ),
        (
            "top20_p50_us".into(),
            format!("{:.0}", f("top20_p50_us")),
            "<= 1000".into(),
            String::new(),
            f("top20_p50_us") <= 1000.0,
        ),
        (
            "top20_p99_us".into(),
            format!("{:.0}", f("top20_p99_us")),
            "<= 5000".into(),
            String::new(),
            f("top20_p99_us") <= 5000.0,
        ),
        (
            "top20_speedup_vs_scan".into(),
            format!("{:.0}x", f("top20_speedup_vs_scan")),
            ">= 1000x".into(),
            format!("scan p50 {:.0} us", f("top20_scan_p50_us")),
            f("top20_speedup_vs_scan") >= 1000.0,
        ),
        (
            "top20_growth_4x_corpus".into(),
            growth.as_f64().map_or("n/a".into(), |g| format!("{g:.2}")),
            "<= 1.5 (2M -> 8M)".into(),
            if growth.is_null() {
                "needs two scales: medium,large".into()
            } else {
                String::new()
            },
            growth.as_f64().is_none_or(|g| g <= 1.5),
        ),
        (
            "features_at_p50_us".into(),
            format!("{:.0}", f("features_at_p50_us")),
            "<= 200".into(),
            String::new(),
            f("features_at_p50_us") <= 200.0,
        ),
        (
            "knn_recall_at_10".into(),
            format!("{:.4}", f("knn_recall_at_10")),
            ">= 0.98".into(),
            "exact brute force".into(),
            f("knn_recall_at_10") >= 0.98,
        ),
        (
            "knn_p50_us".into(),
            format!("{:.0}", f("knn_p50_us")),
            String::new(),
            format!("exact p50 {:.0} us", f("knn_exact_p50_us")),
            true,
        ),
        (
            "knn_speedup_vs_exact".into(),
            format!("{:.1}x", f("knn_speedup_vs_exact")),
            ">= 20x (at 131k)".into(),
            format!("d_sae {}", run["spec"]["d_sae"]),
            f("knn_speedup_vs_exact") >= 20.0,
        ),
        (
            "encode_vs_gemm_ratio".into(),
            format!("{:.2}", f("encode_vs_gemm_ratio")),
            ">= 0.70".into(),
            format!(
                "GEMM {:.3} s / encode {:.3} s",
                f("gemm_batch_s"),
                f("encode_batch_s")
            ),
            f("encode_vs_gemm_ratio") >= 0.7,
        ),
        (
            "chains_p50_us".into(),
            format!("{:.0}", f("chains_p50_us")),
            "<= 10000".into(),
            "5k nodes / 100k edges".into(),
            f("chains_p50_us") <= 10_000.0,
        ),
        (
            "ingest_peak_rss_mb".into(),
            format!("{:.0}", f("ingest_peak_rss_mb")),
            "<= 2048".into(),
            String::new(),
            f("ingest_peak_rss_mb") <= 2048.0,
        ),
    ];
    println!(
        "\nsaedb-bench scale={} ({} tokens, {} nnz, d_in {}, d_sae {}), profile {}, {}{}",
        run["scale"].as_str().unwrap_or("?"),
        run["tokens"],
        run["nnz"],
        run["spec"]["d_in"],
        run["spec"]["d_sae"],
        run["profile"].as_str().unwrap_or("?"),
        run["date_utc"].as_str().unwrap_or(""),
        if at_medium {
            ""
        } else {
            " (targets are for medium; verdicts indicative)"
        }
    );
    println!(
        "| {:<24} | {:>14} | {:<18} | {:<34} | {:<6} |",
        "metric", "value", "target", "baseline / detail", ""
    );
    println!(
        "|{:-<26}|{:-<16}|{:-<20}|{:-<36}|{:-<8}|",
        "", "", "", "", ""
    );
    for (k, v, target, base, ok) in rows {
        if !run.contains_key(&k) {
            continue; // a section left out with --only
        }
        let verdict = if target.is_empty() || v.starts_with("n/a") {
            ""
        } else {
            verdict(ok)
        };
        println!("| {k:<24} | {v:>14} | {target:<18} | {base:<34} | {verdict:<6} |");
    }
}
