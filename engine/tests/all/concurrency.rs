//! One writer and several readers in one process; a second process reading while an ingest runs.

use crate::common::load_minilm;
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
        .args(["--exact", "concurrency::read_only_child", "--nocapture"])
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
