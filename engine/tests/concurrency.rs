//! One writer and several readers in one process; a second process reading while an ingest runs;
//! a store of another format version refused with a message that says what to do.

mod common;
use common::load_minilm;
use saedb_engine::{FeatureRef, NoProgress, Store};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/minilm-mini")
}

#[test]
fn the_store_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Store>();
    assert_send_sync::<Arc<Store>>();
}

/// Readers running while an ingest commits see, in every call, either none of it or all of it.
#[test]
fn readers_see_an_ingest_entirely_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let fx = fixtures();
    let store = Arc::new(Store::create_or_open(dir.path()).unwrap());
    load_minilm(&store, &fx, &["L2", "L4"], true, &["L2"]);

    // The final answers, from a separate store that had the ingest all along.
    let reference_dir = tempfile::tempdir().unwrap();
    let reference = Store::create_or_open(reference_dir.path()).unwrap();
    load_minilm(&reference, &fx, &["L4"], true, &["L4"]);
    let features: Vec<u32> = (0..512).step_by(29).collect();
    let full: Vec<_> = features
        .iter()
        .map(|&f| {
            let fr = FeatureRef::new("L4", f);
            (
                reference.feature_stats(&fr).unwrap(),
                reference.top_activations(&fr, 5, None).unwrap(),
            )
        })
        .collect();
    let full_at = reference.features_at(7, 3, Some("L4")).unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|r| {
            let (store, done, features, full, full_at) = (
                store.clone(),
                done.clone(),
                features.clone(),
                full.clone(),
                full_at.clone(),
            );
            std::thread::spawn(move || {
                let mut reads = 0u64;
                let mut saw_after = false;
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    for (i, &f) in features.iter().enumerate() {
                        let fr = FeatureRef::new("L4", f);
                        let s = store.feature_stats(&fr).unwrap();
                        let top = store.top_activations(&fr, 5, None).unwrap();
                        // Each call sees the ingest entirely or not at all, and once seen it
                        // stays visible.
                        let stats_after = s == full[i].0;
                        assert!(
                            stats_after || (s.count == 0 && s.frequency == 0.0),
                            "reader {r}: L4/{f} stats half-visible: {s:?}"
                        );
                        assert!(
                            top == full[i].1 || top.is_empty(),
                            "reader {r}: L4/{f} top half-visible"
                        );
                        assert!(
                            !(saw_after && (!stats_after || top != full[i].1)),
                            "reader {r}: L4/{f} vanished again"
                        );
                        saw_after |= stats_after && full[i].0.count > 0;
                        reads += 2;
                    }
                    let at = store.features_at(7, 3, Some("L4")).unwrap();
                    assert!(
                        at.is_empty() || at == full_at,
                        "reader {r}: features at doc 7 pos 3 half-visible"
                    );
                    if finished {
                        assert!(saw_after, "reader {r} never saw the finished ingest");
                        return reads;
                    }
                }
            })
        })
        .collect();
    store
        .ingest_latents("L4", &fx.join("latents_L4.safetensors"), &NoProgress)
        .unwrap();
    done.store(true, Ordering::SeqCst);
    let reads: u64 = readers.into_iter().map(|h| h.join().unwrap()).sum();
    println!("{reads} consistent reads by 4 threads during one ingest");
}

/// A second process may open the store read-only while this one ingests into it.
#[test]
fn a_second_process_reads_while_an_ingest_runs() {
    if std::env::var("SAEDB_READER_CHILD").is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fx = fixtures();
    let store = Store::create_or_open(dir.path()).unwrap();
    load_minilm(&store, &fx, &["L2"], true, &[]);
    // The reader is this test binary in another process, opening read-only.
    let exe = std::env::current_exe().unwrap();
    let child = std::process::Command::new(exe)
        .args(["--exact", "read_only_child", "--nocapture"])
        .env("SAEDB_READER_STORE", dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    store
        .ingest_latents("L2", &fx.join("latents_L2.safetensors"), &NoProgress)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "reader process failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("reader ok"));
}

#[test]
fn read_only_child() {
    let Ok(dir) = std::env::var("SAEDB_READER_STORE") else {
        return;
    };
    let s = Store::open_read_only(&dir).unwrap();
    let started = std::time::Instant::now();
    // Reads for a while, so that the parent's ingest runs meanwhile.
    while started.elapsed() < std::time::Duration::from_millis(1500) {
        let n = s.feature_stats(&FeatureRef::new("L2", 3)).unwrap().count;
        let top = s
            .top_activations(&FeatureRef::new("L2", 3), 3, None)
            .unwrap();
        assert_eq!(n == 0, top.is_empty());
        assert!(
            s.set_label(&FeatureRef::new("L2", 3), "x").is_err(),
            "read-only handles refuse writes"
        );
    }
    println!("reader ok");
}

/// The store's RocksDB opened directly. The statistics column family gets a merge operator of
/// the engine's name that folds nothing: RocksDB refuses to open it without one, and the stores
/// these tests open this way are compacted (no operands left to fold).
fn raw_db(store_dir: &Path) -> rocksdb::DB {
    let cfs = [
        "meta",
        "weights",
        "docs",
        "token_major",
        "feature_major",
        "stats",
        "labels",
        "graphs",
    ]
    .map(|name| {
        let mut o = rocksdb::Options::default();
        if name == "stats" {
            o.set_merge_operator_associative("saedb.stats.v1", |_, _, _| None);
        }
        rocksdb::ColumnFamilyDescriptor::new(name, o)
    });
    rocksdb::DB::open_cf_descriptors(&rocksdb::Options::default(), store_dir.join("db"), cfs)
        .unwrap()
}

/// Rewrites a store's recorded format version.
fn set_format_version(store_dir: &Path, version: u32) {
    let db = raw_db(store_dir);
    db.put_cf(
        db.cf_handle("meta").unwrap(),
        b"format_version",
        version.to_be_bytes(),
    )
    .unwrap();
}

#[test]
fn a_store_of_another_format_version_is_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    Store::create_or_open(dir.path()).unwrap();
    for other in [0u32, saedb_engine::FORMAT_VERSION + 1] {
        set_format_version(dir.path(), other);
        let e = Store::open(dir.path()).err().expect("refused").to_string();
        assert!(e.contains(&format!("format version {other}")), "{e}");
        assert!(e.contains("re-ingest"), "{e}");
        assert!(Store::open_read_only(dir.path()).is_err());
    }
    set_format_version(dir.path(), saedb_engine::FORMAT_VERSION);
    assert!(Store::open(dir.path()).is_ok());
}

/// A version 2 store: its statistics records rewritten here in version 2's layout, by this test's
/// own encoder (`count u64 | sum f64 | max f32 | n_bins u8 | (bin u8, count u64)* | n_top u16 |
/// (doc u32, pos u32, value f32)*`, all LE). A read-only open reads them as they are; a writable
/// open re-encodes them and records version 3; every answer stays the same, and `check` passes.
#[test]
fn a_version_2_store_is_read_and_upgraded_on_a_writable_open() {
    assert_eq!(saedb_engine::FORMAT_VERSION, 3);
    let dir = tempfile::tempdir().unwrap();
    let features: Vec<FeatureRef> = (0..512)
        .step_by(7)
        .map(|f| FeatureRef::new("L2", f))
        .collect();
    let answers = |s: &Store| -> Vec<String> {
        features
            .iter()
            .map(|f| {
                format!(
                    "{:?} {:?}",
                    s.feature_stats(f).unwrap(),
                    s.top_activations(f, 200, None).unwrap()
                )
            })
            .collect()
    };
    let want = {
        let store = Store::create_or_open(dir.path()).unwrap();
        load_minilm(&store, &fixtures(), &["L2"], true, &["L2"]);
        store.compact().unwrap();
        answers(&store)
    };
    rewrite_stats_as_version_2(dir.path());
    set_format_version(dir.path(), 2);
    assert_eq!(answers(&Store::open_read_only(dir.path()).unwrap()), want);
    assert_eq!(
        recorded_version(dir.path()),
        2,
        "a read-only open writes nothing"
    );
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(recorded_version(dir.path()), 3);
    assert_eq!(answers(&store), want);
    assert!(store.check().unwrap().is_ok());
}

/// Re-encodes every statistics record of a compacted store (whole records, no operands) in
/// version 2's layout, through a RocksDB handle of its own.
fn rewrite_stats_as_version_2(store_dir: &Path) {
    let db = raw_db(store_dir);
    let stats = db.cf_handle("stats").unwrap();
    let records = db
        .iterator_cf(&stats, rocksdb::IteratorMode::Start)
        .map(Result::unwrap)
        .collect::<Vec<_>>();
    assert!(!records.is_empty());
    for (key, v3) in records {
        db.put_cf(&stats, key, v2_bytes(&v3)).unwrap();
    }
    db.flush_cf(&stats).unwrap();
}

/// Version 3's record (docs/ARCHITECTURE.md) decoded by hand, encoded in version 2's layout.
fn v2_bytes(v3: &[u8]) -> Vec<u8> {
    let mut at = 0usize;
    let varint = |at: &mut usize| {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let b = v3[*at];
            *at += 1;
            v |= u64::from(b & 0x7f) << shift;
            shift += 7;
            if b < 0x80 {
                return v;
            }
        }
    };
    let mut out = Vec::new();
    out.extend_from_slice(&varint(&mut at).to_le_bytes());
    out.extend_from_slice(&v3[at..at + 12]); // sum f64, max f32: same bytes
    at += 12;
    let bins = v3[at];
    out.push(bins);
    at += 1;
    for _ in 0..bins {
        out.push(v3[at]);
        at += 1;
        out.extend_from_slice(&varint(&mut at).to_le_bytes());
    }
    let n_top = varint(&mut at);
    out.extend_from_slice(&(n_top as u16).to_le_bytes());
    let half = v3[at] == 0;
    at += 1;
    let mut bits = 0i64;
    for _ in 0..n_top {
        let z = varint(&mut at);
        bits += ((z >> 1) as i64) ^ -((z & 1) as i64);
        let doc = varint(&mut at) as u32;
        let pos = varint(&mut at) as u32;
        let value = if half {
            half::f16::from_bits(bits as u16).to_f32()
        } else {
            f32::from_bits(bits as u32)
        };
        out.extend_from_slice(&doc.to_le_bytes());
        out.extend_from_slice(&pos.to_le_bytes());
        out.extend_from_slice(&value.to_le_bytes());
    }
    assert_eq!(at, v3.len());
    out
}

/// The format version a store records, read with a RocksDB handle of its own.
fn recorded_version(store_dir: &Path) -> u32 {
    let db = rocksdb::DB::open_cf_for_read_only(
        &rocksdb::Options::default(),
        store_dir.join("db"),
        ["meta"],
        false,
    )
    .unwrap();
    let v = db
        .get_cf(db.cf_handle("meta").unwrap(), b"format_version")
        .unwrap()
        .unwrap();
    u32::from_be_bytes(v.as_slice().try_into().unwrap())
}
