//! Crash safety: a real ingest runs in a child process and is killed with SIGKILL at a random
//! moment. After each kill the store opens, `check` passes, and the ingest is either entirely
//! visible or entirely absent. Re-running it then completes and gives the same answers as an
//! uninterrupted run.
//!
//! The child is this test binary itself, re-run with `SAEDB_CRASH_CHILD` set.

use saedb_engine::{FeatureRef, NoProgress, Store};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

const KINDS: [&str; 5] = ["dictionary", "tokens", "latents", "activations", "graph"];

/// Runs one ingest of `kind` into the store at `dir`: what the child does before it is killed.
fn ingest(kind: &str, dir: &Path) -> saedb_engine::Result<()> {
    let fx = fixtures().join("minilm-mini");
    let s = Store::create_or_open(dir)?;
    match kind {
        "dictionary" => s
            .ingest_dictionary("L4", &fx.join("sae_L4"), &NoProgress)
            .map(drop),
        "tokens" => s
            .ingest_tokens(&fx.join("tokens.jsonl"), &NoProgress)
            .map(drop),
        "latents" => s
            .ingest_latents("L2", &fx.join("latents_L2.safetensors"), &NoProgress)
            .map(drop),
        "activations" => s
            .ingest_activations("L2", &fx.join("resid_L2.safetensors"), &NoProgress)
            .map(drop),
        "graph" => s
            .ingest_graph("g", &fixtures().join("graphs/small.json"), &NoProgress)
            .map(drop),
        _ => unreachable!(),
    }
}

/// The store every trial of `kind` starts from: what that ingest needs, and nothing it adds.
fn base_store(kind: &str, dir: &Path) {
    let fx = fixtures().join("minilm-mini");
    let s = Store::create_or_open(dir).unwrap();
    s.ingest_dictionary("L2", &fx.join("sae_L2"), &NoProgress)
        .unwrap();
    if kind != "tokens" {
        s.ingest_tokens(&fx.join("tokens.jsonl"), &NoProgress)
            .unwrap();
    }
}

/// Everything a user could ask, as text: equal fingerprints mean equal answers.
fn fingerprint(dir: &Path) -> String {
    let s = Store::open(dir).unwrap();
    let mut out = format!(
        "{:?}\n{:?}\n{}\n",
        s.dictionaries(),
        s.graphs().unwrap(),
        s.document_count().unwrap()
    );
    for d in s.dictionaries() {
        for f in (0..d.d_sae).step_by(23) {
            let fr = FeatureRef::new(&d.name, f);
            out += &format!(
                "{:?}\n{:?}\n",
                s.feature_stats(&fr).unwrap(),
                s.top_activations(&fr, 5, None).unwrap()
            );
            out += &format!("{:?}\n", s.neighbours(&fr, None, 3).unwrap());
        }
    }
    if s.document_count().unwrap() > 0 {
        out += &format!("{:?}\n", s.features_at(5, 3, None).unwrap());
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn crash_child() {
    // Only does something when re-run by `kill_ingests_at_random_moments`.
    if let (Ok(kind), Ok(dir)) = (
        std::env::var("SAEDB_CRASH_CHILD"),
        std::env::var("SAEDB_CRASH_STORE"),
    ) {
        ingest(&kind, Path::new(&dir)).unwrap();
    }
}

/// A small deterministic generator, so a failing trial can be replayed from its seed.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn kill_ingests_at_random_moments() {
    let work = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut seed = 0x05ae_00db_u64;
    let (mut trials, mut killed_mid_ingest) = (0, 0);
    for kind in KINDS {
        let base = work.path().join(format!("{kind}-base"));
        base_store(kind, &base);
        let before = fingerprint(&base);
        let full_dir = work.path().join(format!("{kind}-full"));
        copy_dir(&base, &full_dir);
        let t = Instant::now();
        ingest(kind, &full_dir).unwrap();
        let full_time = t.elapsed();
        let after = fingerprint(&full_dir);
        assert_ne!(before, after, "{kind}: the ingest must change the answers");
        for trial in 0..7 {
            let dir = work.path().join(format!("{kind}-{trial}"));
            copy_dir(&base, &dir);
            // Child start-up (loading the binary) takes part of the time; kill anywhere from
            // just after spawning to well past the in-process duration.
            let delay = Duration::from_micros(
                next(&mut seed) % (full_time.as_micros() as u64 * 3 + 50_000),
            );
            let mut child = Command::new(&exe)
                .args([
                    "--exact",
                    "crash::crash_child",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("SAEDB_CRASH_CHILD", kind)
                .env("SAEDB_CRASH_STORE", &dir)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(delay);
            let finished = child.try_wait().unwrap().is_some();
            child.kill().ok(); // SIGKILL
            child.wait().unwrap();
            trials += 1;
            let seen = fingerprint(&dir);
            assert!(
                seen == before || seen == after,
                "{kind} trial {trial} (delay {delay:?}): a partial ingest is visible"
            );
            if seen == before && !finished {
                killed_mid_ingest += 1;
            }
            let report = Store::open(&dir).unwrap().check().unwrap();
            assert!(
                report.is_ok(),
                "{kind} trial {trial}: check failed: {:?}",
                report.problems
            );
            // Re-running completes (or is refused as already done) and answers like an
            // uninterrupted run.
            match ingest(kind, &dir) {
                Ok(()) => assert_eq!(seen, before, "{kind} trial {trial}: ingest ran twice"),
                Err(e) => assert_eq!(
                    seen, after,
                    "{kind} trial {trial}: re-run refused ({e}) but the ingest was not there"
                ),
            }
            assert!(
                fingerprint(&dir) == after,
                "{kind} trial {trial}: re-run differs from an uninterrupted run"
            );
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
    println!(
        "{trials} kills, {killed_mid_ingest} left the ingest absent; every store checked clean"
    );
    assert!(trials >= 30);
    assert!(
        killed_mid_ingest > 0,
        "no kill landed before an ingest committed: the harness tests nothing"
    );
}
