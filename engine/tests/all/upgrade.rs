//! Older formats, pinned: stores of format versions 2 and 3 are made here from a current one by
//! rewriting its records in the old layouts with this file's own encoders (docs/ARCHITECTURE.md
//! says what each version changed). A read-only open reads them as they are; a writable open
//! upgrades them, resuming an upgrade a crash interrupted; every answer stays the same and
//! `check` passes. Any other version is refused with advice.

use crate::common::load_minilm;
use saedb_engine::{FeatureRef, OpenOptions, Progress, Store, FORMAT_VERSION};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/minilm-mini")
}

/// Version 4's column family of feature-major blocks (`dict | ingest | feature | chunk`).
const FEATURE_BLOCKS: &str = "feature_major_by_ingest";
/// Versions 2 and 3's (`dict | feature | ingest | chunk`).
const FEATURE_BLOCKS_V3: &str = "feature_major";

/// The store's RocksDB opened directly, with every column family it has. The statistics column
/// family gets a merge operator of the engine's name that folds nothing: RocksDB refuses to open
/// it without one, and the stores these tests open this way are compacted (no operands left).
fn raw_db(store_dir: &Path) -> rocksdb::DB {
    let path = store_dir.join("db");
    let opts = rocksdb::Options::default();
    let cfs = rocksdb::DB::list_cf(&opts, &path)
        .unwrap()
        .into_iter()
        .map(|name| {
            let mut o = rocksdb::Options::default();
            if name == "stats" {
                o.set_merge_operator_associative("saedb.stats.v1", |_, _, _| None);
            }
            rocksdb::ColumnFamilyDescriptor::new(name, o)
        });
    rocksdb::DB::open_cf_descriptors(&opts, path, cfs).unwrap()
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

/// The format version a store records, read with a read-only RocksDB handle of its own (a
/// store may have it open).
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

fn column_families(store_dir: &Path) -> Vec<String> {
    rocksdb::DB::list_cf(&rocksdb::Options::default(), store_dir.join("db")).unwrap()
}

/// A compacted store of the fixtures' L2 and its latents, and what it answers: statistics, the
/// whole top list and every activation of a sample of features (those two read the
/// feature-major blocks), a filtered TOP and the features at a few tokens.
fn fixture_store(dir: &Path) -> Vec<String> {
    let store = Store::create_or_open(dir).unwrap();
    load_minilm(&store, &fixtures(), &["L2"], true, &["L2"]);
    store.compact().unwrap();
    answers(&store)
}

fn answers(s: &Store) -> Vec<String> {
    let mut out: Vec<String> = (0..512)
        .step_by(7)
        .map(|f| {
            let f = FeatureRef::new("L2", f);
            use saedb_engine::filter::{ActivationField, Comparison};
            let strong = saedb_engine::ActivationFilter::compare(
                ActivationField::Value,
                Comparison::Gt,
                1.0,
            );
            format!(
                "{:?} {:?} {:?} {:?}",
                s.feature_stats(&f).unwrap(),
                s.top_activations(&f, 200, None).unwrap(),
                s.top_activations(&f, 5, Some(&strong)).unwrap(),
                s.activations_of(&f).unwrap()
            )
        })
        .collect();
    for (doc, pos) in [(0, 1), (3, 2), (10, 5)] {
        out.push(format!(
            "{:?}",
            s.features_at(doc, pos, Some("L2")).unwrap()
        ));
    }
    out
}

/// Moves feature-major blocks from version 4's column family into version 3's, under version
/// 3's keys: all of them (a version 3 store, which has no version 4 column family), or every
/// other one (an upgrade interrupted half way).
fn rewrite_feature_blocks_as_version_3(store_dir: &Path, all: bool) {
    let mut db = raw_db(store_dir);
    if db.cf_handle(FEATURE_BLOCKS_V3).is_none() {
        db.create_cf(FEATURE_BLOCKS_V3, &rocksdb::Options::default())
            .unwrap();
    }
    let new = db.cf_handle(FEATURE_BLOCKS).unwrap();
    let old = db.cf_handle(FEATURE_BLOCKS_V3).unwrap();
    let blocks: Vec<_> = db
        .iterator_cf(new, rocksdb::IteratorMode::Start)
        .map(Result::unwrap)
        .collect();
    assert!(blocks.len() > 100, "{} blocks", blocks.len());
    for (i, (key, block)) in blocks.into_iter().enumerate() {
        if !all && i % 2 == 0 {
            continue;
        }
        // dict | ingest | feature | chunk → dict | feature | ingest | chunk
        let mut v3 = key.to_vec();
        v3[4..8].copy_from_slice(&key[8..12]);
        v3[8..12].copy_from_slice(&key[4..8]);
        db.put_cf(old, v3, block).unwrap();
        db.delete_cf(new, key).unwrap();
    }
    db.flush_cf(old).unwrap();
    if all {
        db.drop_cf(FEATURE_BLOCKS).unwrap();
    }
}

#[test]
fn a_store_of_another_format_version_is_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    Store::create_or_open(dir.path()).unwrap();
    for other in [0u32, 1, FORMAT_VERSION + 1] {
        set_format_version(dir.path(), other);
        let e = Store::open(dir.path()).err().expect("refused").to_string();
        assert!(e.contains(&format!("format version {other}")), "{e}");
        assert!(e.contains("re-ingest"), "{e}");
        assert!(Store::open_read_only(dir.path()).is_err());
    }
    set_format_version(dir.path(), FORMAT_VERSION);
    assert!(Store::open(dir.path()).is_ok());
}

/// Version 3: feature-major blocks feature first, in their own column family.
#[test]
fn a_version_3_store_is_read_and_upgraded_on_a_writable_open() {
    assert_eq!(FORMAT_VERSION, 4);
    let dir = tempfile::tempdir().unwrap();
    let want = fixture_store(dir.path());
    rewrite_feature_blocks_as_version_3(dir.path(), true);
    set_format_version(dir.path(), 3);
    assert!(!column_families(dir.path()).contains(&FEATURE_BLOCKS.to_string()));
    {
        let s = Store::open_read_only(dir.path()).unwrap();
        assert_eq!(answers(&s), want);
        assert_eq!(
            s.info().unwrap().format_version,
            3,
            "info names the version as it is"
        );
        assert_eq!(s.check().unwrap().format_version, 3);
        assert!(s.check().unwrap().is_ok());
    }
    assert_eq!(
        recorded_version(dir.path()),
        3,
        "a read-only open writes nothing"
    );
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(recorded_version(dir.path()), 4);
    assert_eq!(s.info().unwrap().format_version, 4);
    assert!(!column_families(dir.path()).contains(&FEATURE_BLOCKS_V3.to_string()));
    assert_eq!(answers(&s), want);
    assert!(s.check().unwrap().is_ok());
}

/// Records what an open reports.
#[derive(Default)]
struct Recorded {
    phases: Mutex<Vec<(String, u64)>>,
    advanced: Mutex<u64>,
}

impl Progress for Recorded {
    fn start(&self, phase: &str, total: u64) {
        self.phases.lock().unwrap().push((phase.to_string(), total));
    }
    fn advance(&self, n: u64) {
        *self.advanced.lock().unwrap() += n;
    }
    fn finish(&self) {}
}

/// The upgrade is long work on a large store: `OpenOptions::progress` receives it as one phase whose total
/// (the old column family's table bytes) covers the block bytes it advances by. A current store
/// opens without a word.
#[test]
fn an_upgrade_reports_its_progress() {
    let dir = tempfile::tempdir().unwrap();
    fixture_store(dir.path());
    rewrite_feature_blocks_as_version_3(dir.path(), true);
    set_format_version(dir.path(), 3);
    let seen = Recorded::default();
    drop(OpenOptions::new().progress(&seen).open(dir.path()).unwrap());
    let phases = seen.phases.lock().unwrap().clone();
    assert_eq!(phases.len(), 1, "{phases:?}");
    assert!(phases[0].0.contains("upgrading"), "{phases:?}");
    let advanced = *seen.advanced.lock().unwrap();
    assert!(
        advanced > 0 && advanced <= phases[0].1,
        "{advanced} of {phases:?}"
    );
    let again = Recorded::default();
    drop(
        OpenOptions::new()
            .progress(&again)
            .open(dir.path())
            .unwrap(),
    );
    assert!(again.phases.lock().unwrap().is_empty());
}

/// An upgrade from version 3 interrupted after some batches: each block is in one of the two
/// column families. Reads use both; the next writable open moves the rest.
#[test]
fn an_interrupted_upgrade_reads_both_layouts_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let want = fixture_store(dir.path());
    rewrite_feature_blocks_as_version_3(dir.path(), false);
    set_format_version(dir.path(), 3);
    assert_eq!(answers(&Store::open_read_only(dir.path()).unwrap()), want);
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(recorded_version(dir.path()), 4);
    assert_eq!(answers(&s), want);
    assert!(s.check().unwrap().is_ok());
    drop(s);
    // Version 4 recorded but the emptied column family not dropped: the next open drops it.
    {
        let mut db = raw_db(dir.path());
        db.create_cf(FEATURE_BLOCKS_V3, &rocksdb::Options::default())
            .unwrap();
    }
    let s = Store::open(dir.path()).unwrap();
    assert!(!column_families(dir.path()).contains(&FEATURE_BLOCKS_V3.to_string()));
    assert_eq!(answers(&s), want);
}

/// Version 2: also the statistics records in their older, fixed-width layout, rewritten here by
/// this test's own encoder (`count u64 | sum f64 | max f32 | n_bins u8 | (bin u8, count u64)* |
/// n_top u16 | (doc u32, pos u32, value f32)*`, all LE).
#[test]
fn a_version_2_store_is_read_and_upgraded_on_a_writable_open() {
    let dir = tempfile::tempdir().unwrap();
    let want = fixture_store(dir.path());
    rewrite_stats_as_version_2(dir.path());
    rewrite_feature_blocks_as_version_3(dir.path(), true);
    set_format_version(dir.path(), 2);
    let read_only = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(answers(&read_only), want);
    assert_eq!(read_only.info().unwrap().format_version, 2);
    drop(read_only);
    assert_eq!(
        recorded_version(dir.path()),
        2,
        "a read-only open writes nothing"
    );
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(recorded_version(dir.path()), 4);
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
