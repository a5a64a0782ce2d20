"""A reader of safetensors files in plain numpy, apart from saedb (the tests' independent side)."""

import json
import struct
from pathlib import Path

import numpy as np

_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I32": np.int32,
           "I64": np.int64, "U32": np.uint32, "U16": np.uint16, "U8": np.uint8}


def load(path: Path) -> dict:
    """Every tensor of a safetensors file, by name."""
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    body = raw[8 + n :]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        start, end = t["data_offsets"]
        out[name] = np.frombuffer(body[start:end], dtype=_DTYPES[t["dtype"]]).reshape(t["shape"])
    return out
