"""Benchmarks of the Python binding against the Rust calls it wraps, measured in the same run.

    python python/bench/bench.py [--nnz 10000000] [--repeat 2] [--calls 2000]

1. Query latency: `db.top_activations(f, k=20, context=8).rows()` from Python against the same
   statement run by the Rust session in the same process (`saedb._saedb._time_rust_statement`),
   and against the engine's `Store::top_activations` alone. Target: Python <= 2x Rust.
2. Ingest: `--nnz` synthetic nonzeros stored from numpy arrays (`ingest_activations`) against the
   Rust ingest of the same data from a delphi safetensors file (`ingest_latents`), interleaved.
   Target: numpy throughput >= 0.8x the file's.

The store of (1) is fixtures/minilm-mini. Results go to stdout as a table and, with --json, as
JSON. docs/BENCHMARKS.md records the runs.
"""

import argparse
import json
import shutil
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import saedb
from saedb import _saedb

REPO = Path(__file__).resolve().parents[2]
MINI = REPO / "fixtures" / "minilm-mini"


def write_safetensors(path: Path, tensors: dict) -> None:
    """A safetensors file written with numpy alone."""
    codes = {np.dtype("float32"): "F32", np.dtype("int32"): "I32"}
    header, offset, blobs = {}, 0, []
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        header[name] = {"dtype": codes[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
        blobs.append(a.tobytes())
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def median_us(times) -> float:
    return statistics.median(times) * 1e6


def bench_query(calls: int) -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mini.saedb"
        with saedb.open(path) as db:
            for d in ("L2", "L4"):
                db.ingest_dictionary(d, MINI / f"sae_{d}", progress=False)
            db.ingest_tokens(MINI / "tokens.jsonl", progress=False)
            for d in ("L2", "L4"):
                db.ingest_latents(d, MINI / f"latents_{d}.safetensors", progress=False)
        with saedb.open(path, read_only=True) as db:
            feature = ("L2", 150)
            stmt = "TOP 20 ACTIVATIONS OF L2/150 CONTEXT 8"
            for _ in range(200):  # warm caches on both sides
                db.top_activations(feature, k=20, context=8).rows()
            _saedb._time_rust_statement(db, stmt, 200)
            rust_stmt, rust_engine, py_rows, py_call = [], [], [], []
            for _ in range(5):  # interleaved rounds
                rust_stmt += _saedb._time_rust_statement(db, stmt, calls // 5)
                rust_engine += _saedb._time_rust_statement(db, "", calls // 5, feature, 20)
                for _ in range(calls // 5):
                    t = time.perf_counter()
                    db.top_activations(feature, k=20, context=8).rows()
                    py_rows.append(time.perf_counter() - t)
                for _ in range(calls // 5):
                    t = time.perf_counter()
                    db.top_activations(feature, k=20, context=8)
                    py_call.append(time.perf_counter() - t)
            out = {
                "rust_statement_us": median_us(rust_stmt),
                "rust_store_top_activations_us": median_us(rust_engine),
                "python_top_activations_rows_us": median_us(py_rows),
                "python_top_activations_us": median_us(py_call),
            }
            out["ratio_python_rows_vs_rust_statement"] = (
                out["python_top_activations_rows_us"] / out["rust_statement_us"])
            out["ratio_python_rows_vs_store_call"] = (
                out["python_top_activations_rows_us"] / out["rust_store_top_activations_us"])
    return out


def synthetic(nnz: int, d_sae: int, per_token: int, seed: int = 15):
    """COO activations: `per_token` distinct features on each token of 512-token documents."""
    rng = np.random.default_rng(seed)
    tokens = nnz // per_token
    positions = 512
    docs = (tokens + positions - 1) // positions
    t = np.arange(tokens, dtype=np.int64)
    doc = np.repeat((t // positions).astype(np.uint32), per_token)
    pos = np.repeat((t % positions).astype(np.uint32), per_token)
    # Distinct features per token: a random offset plus a fixed stride pattern.
    base = rng.integers(0, d_sae, tokens, dtype=np.int64)
    feature = ((base[:, None] + np.arange(per_token) * (d_sae // per_token)) % d_sae)
    feature = feature.astype(np.uint32).ravel()
    value = rng.lognormal(0.0, 0.6, tokens * per_token).astype(np.float32)
    return docs, doc, pos, feature, value


def bench_ingest(nnz: int, repeat: int) -> dict:
    d_sae, d_in, per_token = 16384, 16, 32
    docs, doc, pos, feature, value = synthetic(nnz, d_sae, per_token)
    rng = np.random.default_rng(1)
    w_dec = rng.standard_normal((d_sae, d_in)).astype(np.float32)
    weights = dict(W_enc=w_dec.T.copy(), W_dec=w_dec, b_enc=np.zeros(d_sae, np.float32),
                   b_dec=np.zeros(d_in, np.float32), architecture="relu")
    file_s, numpy_s = [], []
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        tmp = Path(tmp)
        latents = tmp / "latents.safetensors"
        locations = np.stack([doc, pos, feature], axis=1).astype(np.int32)
        write_safetensors(latents, {"locations": locations, "activations": value})
        del locations
        for r in range(repeat):
            for how in ("file", "numpy") if r % 2 == 0 else ("numpy", "file"):
                path = tmp / f"{how}{r}.saedb"
                with saedb.open(path) as db:
                    db.ingest_dictionary("D", None, defer_index=True, progress=False, **weights)
                    t = time.perf_counter()
                    if how == "file":
                        db.ingest_latents("D", latents, progress=False)
                    else:
                        db.ingest_activations("D", doc=doc, pos=pos, feature=feature,
                                              value=value, progress=False)
                    (file_s if how == "file" else numpy_s).append(time.perf_counter() - t)
                shutil.rmtree(path)
    f, n = statistics.median(file_s), statistics.median(numpy_s)
    return {"nnz": int(len(value)), "file_ingest_s": file_s, "numpy_ingest_s": numpy_s,
            "ratio_numpy_vs_file_throughput": f / n}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nnz", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--only", choices=["query", "ingest"])
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    res = {}
    if a.only in (None, "query"):
        res["query"] = bench_query(a.calls)
    if a.only in (None, "ingest"):
        res["ingest"] = bench_ingest(a.nnz, a.repeat)
    if a.json:
        print(json.dumps(res, indent=2))
    else:
        for section, values in res.items():
            for k, v in values.items():
                shown = f"{v:.3f}" if isinstance(v, float) else v
                print(f"{section:6} {k:40} {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
