//! Helpers shared by the integration tests of the `saedb` binary.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_saedb");

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("fixtures")
        .join("minilm-mini")
}

pub fn fixture(name: &str) -> PathBuf {
    fixtures().join(name)
}

/// Runs `saedb args…` with no terminal and no history file; returns its output.
pub fn saedb<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("NO_COLOR", "1")
        .env("SAEDB_HISTORY", "/dev/null")
        .stdin(Stdio::null())
        .output()
        .expect("the saedb binary runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs saedb and insists on success; returns stdout.
pub fn ok<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(args: &[S]) -> String {
    let o = saedb(args);
    assert!(
        o.status.success(),
        "saedb {args:?} failed ({:?}):\n{}{}",
        o.status.code(),
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Runs saedb and insists on failure with exit code 1 and exactly one line on stderr; returns it.
pub fn fails<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(args: &[S]) -> String {
    let o = saedb(args);
    let err = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "saedb {args:?} should fail with 1:\n{}{err}",
        stdout(&o)
    );
    assert_eq!(
        err.lines().count(),
        1,
        "saedb {args:?}: expected one error line, got:\n{err}"
    );
    assert!(err.starts_with("error: "), "saedb {args:?}: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    err
}

/// Ingests the minilm-mini fixtures (L2, L4, tokens, both latents) into `store`.
pub fn build_store(store: &Path) {
    let s = store.to_str().unwrap();
    ok(&[
        "ingest",
        "dictionary",
        s,
        "--name",
        "L2",
        fixture("sae_L2").to_str().unwrap(),
    ]);
    ok(&[
        "ingest",
        "dictionary",
        s,
        "--name",
        "L4",
        fixture("sae_L4").to_str().unwrap(),
    ]);
    ok(&[
        "ingest",
        "tokens",
        s,
        fixture("tokens.jsonl").to_str().unwrap(),
    ]);
    ok(&[
        "ingest",
        "latents",
        s,
        "--dictionary",
        "L2",
        fixture("latents_L2.safetensors").to_str().unwrap(),
    ]);
    ok(&[
        "ingest",
        "latents",
        s,
        "--dictionary",
        "L4",
        fixture("latents_L4.safetensors").to_str().unwrap(),
    ]);
}

/// A safetensors file read by hand: tensor name → (dtype, shape, bytes).
pub struct Tensors(pub BTreeMap<String, (String, Vec<usize>, Vec<u8>)>);

pub fn read_safetensors(path: &Path) -> Tensors {
    let b = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&b[8..8 + n]).unwrap();
    let data = &b[8 + n..];
    let mut out = BTreeMap::new();
    for (name, t) in header.as_object().unwrap() {
        if name == "__metadata__" {
            continue;
        }
        let dtype = t["dtype"].as_str().unwrap().to_string();
        let shape: Vec<usize> = t["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect();
        let off: Vec<usize> = t["data_offsets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect();
        out.insert(name.clone(), (dtype, shape, data[off[0]..off[1]].to_vec()));
    }
    Tensors(out)
}

impl Tensors {
    pub fn shape(&self, name: &str) -> &[usize] {
        &self.0[name].1
    }
    pub fn i32s(&self, name: &str) -> Vec<i32> {
        let (dt, _, b) = &self.0[name];
        assert_eq!(dt, "I32");
        b.chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }
    pub fn f32s(&self, name: &str) -> Vec<f32> {
        let (dt, _, b) = &self.0[name];
        assert_eq!(dt, "F32");
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }
}

/// Writes a safetensors file from (name, dtype, shape, little-endian bytes).
pub fn write_safetensors(path: &Path, tensors: &[(&str, &str, Vec<usize>, Vec<u8>)]) {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, dtype, shape, bytes) in tensors {
        let start = data.len();
        data.extend_from_slice(bytes);
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let mut h = serde_json::Value::Object(header).to_string().into_bytes();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(&data);
    std::fs::write(path, out).unwrap();
}

pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn i32_bytes(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// What the fixtures hold, computed from the files themselves (not through saedb).
pub struct Expected {
    pub documents: u64,
    pub tokens: u64,
    /// Per latents file: (nonzeros, distinct (doc, pos)).
    pub nonzeros: u64,
    pub tokens_encoded: u64,
    pub d_in: u64,
    pub d_sae: u64,
}

pub fn expected(dict: &str) -> Expected {
    let jsonl = std::fs::read_to_string(fixture("tokens.jsonl")).unwrap();
    let mut documents = 0;
    let mut tokens = 0;
    for line in jsonl.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        documents += 1;
        tokens += v["tokens"].as_array().unwrap().len() as u64;
    }
    let lat = read_safetensors(&fixture(&format!("latents_{dict}.safetensors")));
    let loc = lat.i32s("locations");
    let distinct: HashSet<(i32, i32)> = loc.chunks_exact(3).map(|c| (c[0], c[1])).collect();
    let w = read_safetensors(&fixture(&format!("sae_{dict}/sae_weights.safetensors")));
    let wdec = w.shape("W_dec");
    Expected {
        documents,
        tokens,
        nonzeros: lat.shape("locations")[0] as u64,
        tokens_encoded: distinct.len() as u64,
        d_sae: wdec[0] as u64,
        d_in: wdec[1] as u64,
    }
}

/// `saedb info --format json`, parsed.
pub fn info_json(store: &Path) -> serde_json::Value {
    let out = ok(&["info", store.to_str().unwrap(), "--format", "json"]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("info json: {e}\n{out}"))
}

/// The info record without the fields that move with no change of content (bytes on disk).
pub fn info_content(store: &Path) -> serde_json::Value {
    let mut v = info_json(store);
    v.as_object_mut().unwrap().remove("bytes_on_disk");
    v
}
