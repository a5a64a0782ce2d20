"""Fixtures of the saedb Python tests: the repository's minilm-mini data, read apart from saedb
with numpy, and a store built from it once per session through the package's file ingests."""

from pathlib import Path

import numpy as np
import pytest

import saedb
import safetensors_np

REPO = Path(__file__).resolve().parents[2]
MINI = REPO / "fixtures" / "minilm-mini"
SHARED = REPO.parent / "shared" / "data"


class Mini:
    """minilm-mini as numpy arrays (the brute-force side of the tests)."""

    def __init__(self) -> None:
        self.latents = {d: safetensors_np.load(MINI / f"latents_{d}.safetensors") for d in ("L2", "L4")}
        self.weights = {d: safetensors_np.load(MINI / f"sae_{d}" / "sae_weights.safetensors") for d in ("L2", "L4")}
        self.resid = {d: safetensors_np.load(MINI / f"resid_{d}.safetensors") for d in ("L2", "L4")}

    def coo(self, d):
        """(doc, pos, feature, value) of a dictionary's latents; values as the store keeps them
        (float16, docs/ARCHITECTURE.md)."""
        loc = self.latents[d]["locations"].astype(np.int64)
        value = self.latents[d]["activations"].astype(np.float16).astype(np.float32)
        return loc[:, 0], loc[:, 1], loc[:, 2], value


@pytest.fixture(scope="session")
def mini() -> Mini:
    return Mini()


def build_store(path: Path) -> None:
    with saedb.open(path) as db:
        for d in ("L2", "L4"):
            db.ingest_dictionary(d, MINI / f"sae_{d}", progress=False)
        db.ingest_tokens(MINI / "tokens.jsonl", progress=False)
        for d in ("L2", "L4"):
            db.ingest_latents(d, MINI / f"latents_{d}.safetensors", progress=False)


@pytest.fixture(scope="session")
def store_path(tmp_path_factory) -> Path:
    """A store of minilm-mini (L2, L4, tokens, latents), built once; open it read-only."""
    path = tmp_path_factory.mktemp("mini") / "mini.saedb"
    build_store(path)
    return path


@pytest.fixture
def ro(store_path):
    """The session's minilm-mini store, opened read-only."""
    with saedb.open(store_path, read_only=True) as db:
        yield db


@pytest.fixture
def fresh(tmp_path):
    """An empty writable store."""
    with saedb.open(tmp_path / "fresh.saedb") as db:
        yield db
