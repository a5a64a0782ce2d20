"""Ingest from memory (numpy, Python lists) against the file ingests and numpy brute force;
rejected inputs; cancellation by Ctrl-C or by the progress callback; the GIL released."""

import os
import signal
import threading

import numpy as np
import pytest

import saedb
import safetensors_np
from conftest import MINI


def base_store(path):
    db = saedb.open(path)
    db.ingest_dictionary("L2", MINI / "sae_L2", progress=False)
    db.ingest_tokens(MINI / "tokens.jsonl", progress=False)
    return db


def test_coo_round_trip(tmp_path, mini):
    doc, pos, feat, value16 = mini.coo("L2")
    raw = mini.latents["L2"]["activations"]
    with base_store(tmp_path / "s.saedb") as db:
        # int64 indices and float32 values, in a shuffled order: converted, then stored.
        order = np.random.default_rng(0).permutation(len(doc))
        r = db.ingest_activations("L2", doc=doc[order], pos=pos[order], feature=feat[order],
                                  value=raw[order], progress=False)
        assert r["items"] == len(doc) and r["unit"] == "nonzeros"
        for f in (150, 7, int(np.bincount(feat).argmax())):
            m = feat == f
            want = sorted(zip(-value16[m], doc[m], pos[m]))[:30]
            got = db.top_activations(("L2", f), k=30).rows()
            assert [(g["doc"], g["pos"]) for g in got] == [(int(d), int(p)) for _, d, p in want]
            np.testing.assert_allclose([g["value"] for g in got], [-v for v, _, _ in want])
        assert db.info()["dictionaries"][0]["nonzeros"] == len(doc)


def test_coo_zero_copy_inputs(tmp_path, mini):
    doc, pos, feat, _ = mini.coo("L2")
    raw = mini.latents["L2"]["activations"]
    with base_store(tmp_path / "s.saedb") as db:
        # Already uint32 / float32 and contiguous: read in place.
        db.ingest_activations("L2", doc=doc.astype(np.uint32), pos=pos.astype(np.uint32),
                              feature=feat.astype(np.uint32), value=raw.copy(), progress=False)
        assert db.describe("L2/150").rows()[0]["count"] == int((feat == 150).sum())


@pytest.mark.parametrize("change,message", [
    (lambda a: a.update(doc=np.r_[a["doc"][:3], -1, a["doc"][4:]]), r"doc\[3\] is -1"),
    (lambda a: a.update(pos=a["pos"][:-1]), "one length"),
    (lambda a: a.update(feature=a["feature"] + 512), "out of range"),
    (lambda a: a.update(doc=a["doc"].astype(np.float64)), "doc must hold integers"),
    (lambda a: a.update(value=np.where(np.arange(len(a["value"])) == 5, np.nan, a["value"])), "NaN|finite"),
    (lambda a: a.update(feature=a["feature"].reshape(-1, 1)), "1 dimension"),
])
def test_coo_rejected_whole(tmp_path, mini, change, message):
    doc, pos, feat, _ = mini.coo("L2")
    args = dict(doc=doc, pos=pos, feature=feat, value=mini.latents["L2"]["activations"])
    change(args)
    with base_store(tmp_path / "s.saedb") as db:
        before = db.info()
        with pytest.raises(saedb.InputError, match=message):
            db.ingest_activations("L2", progress=False, **args)
        assert db.info() == before


def resid(d):
    t = safetensors_np.load(MINI / f"resid_{d}.safetensors")
    return t["activations"], t["doc_pos"]


def test_dense_from_numpy_equals_dense_from_file(tmp_path):
    acts, doc_pos = resid("L2")
    with base_store(tmp_path / "a.saedb") as a, base_store(tmp_path / "b.saedb") as b:
        a.ingest_dense("L2", MINI / "resid_L2.safetensors", progress=False)
        b.ingest_dense("L2", acts, doc_pos, progress=False)
        nonzeros = [x.info()["dictionaries"][0]["nonzeros"] for x in (a, b)]
        assert nonzeros[0] == nonzeros[1] > 0
        for f in (7, 150, 300):
            assert a.top_activations(("L2", f), k=200).rows() == b.top_activations(("L2", f), k=200).rows()
        assert a.features_at(17, 5).rows() == b.features_at(17, 5).rows()


def test_dense_matches_the_latents_of_the_fixture(tmp_path, mini):
    # The fixture's latents are SAELens' own encoding of its residuals (docs/FORMATS.md).
    acts, doc_pos = resid("L4")
    with saedb.open(tmp_path / "s.saedb") as db:
        db.ingest_dictionary("L4", MINI / "sae_L4", progress=False)
        db.ingest_tokens(MINI / "tokens.jsonl", progress=False)
        db.ingest_dense("L4", acts.astype(np.float64), doc_pos.astype(np.int64), progress=False)
        doc, pos, feat, value = mini.coo("L4")
        for i in (0, 100, 2000):
            m = (doc == doc[i]) & (pos == pos[i])
            got = {r["feature"] for r in db.features_at(int(doc[i]), int(pos[i])).rows()}
            assert got == {int(f) for f in feat[m]}


def test_dictionary_from_arrays_encodes_like_the_folder(tmp_path):
    w = safetensors_np.load(MINI / "sae_L2" / "sae_weights.safetensors")
    acts, doc_pos = resid("L2")
    with saedb.open(tmp_path / "s.saedb") as db:
        db.ingest_dictionary("F", MINI / "sae_L2", progress=False)
        db.ingest_dictionary("A", None, W_enc=w["W_enc"], W_dec=w["W_dec"], b_enc=w["b_enc"],
                             b_dec=w["b_dec"], architecture="topk", k=16,
                             hook="encoder.layer.1.output", progress=False)
        db.ingest_tokens(MINI / "tokens.jsonl", progress=False)
        db.ingest_dense("F", acts, doc_pos, progress=False)
        db.ingest_dense("A", acts, doc_pos, progress=False)
        for f in (7, 150):
            rows = lambda d: [(r["doc"], r["pos"], r["value"]) for r in db.top_activations((d, f), k=50).rows()]
            assert rows("A") == rows("F")
            nb = lambda d: [(r["feature"], r["cosine"]) for r in db.neighbours((d, f), exact=True).rows()]
            assert nb("A") == nb("F")
        info = {d["name"]: d for d in db.info()["dictionaries"]}
        assert info["A"]["architecture"] == "topk" and info["A"]["k"] == 16
        assert info["A"]["hook"] == "encoder.layer.1.output"


def test_dictionary_arrays_rejected(fresh):
    w = safetensors_np.load(MINI / "sae_L2" / "sae_weights.safetensors")
    with pytest.raises(saedb.InputError, match="architecture"):
        fresh.ingest_dictionary("A", None, W_enc=w["W_enc"], W_dec=w["W_dec"], b_enc=w["b_enc"],
                                b_dec=w["b_dec"], progress=False)
    with pytest.raises(saedb.InputError, match="W_dec"):
        fresh.ingest_dictionary("A", None, W_enc=w["W_enc"], W_dec=w["W_enc"], b_enc=w["b_enc"],
                                b_dec=w["b_dec"], architecture="relu", progress=False)
    with pytest.raises(saedb.InputError, match="not both"):
        fresh.ingest_dictionary("A", MINI / "sae_L2", W_enc=w["W_enc"], progress=False)
    assert fresh.info()["dictionaries"] == []


def test_tokens_from_lists(fresh):
    fresh.ingest_tokens([["[CLS]", "the", "cat"], ["a", "dog"]], progress=False)
    assert fresh.document(1)["tokens"] == ["a", "dog"]
    fresh.ingest_tokens([{"doc": 7, "tokens": ["x", "y"], "token_ids": [1, 2], "text": "x y"}],
                        progress=False)
    d = fresh.document(7)
    assert d["token_ids"] == [1, 2] and d["text"] == "x y"
    with pytest.raises(saedb.InputError, match="document 0"):
        fresh.ingest_tokens([{"tokens": ["x"]}], progress=False)
    assert fresh.info()["documents"] == 3


# ---- long ingests: progress, cancellation, the GIL

D_SAE, PER_TOKEN, DOCS, POSITIONS = 4096, 16, 1500, 128


@pytest.fixture
def big(tmp_path):
    """A store with a synthetic dictionary and documents, and 3M activations to ingest."""
    rng = np.random.default_rng(7)
    w = rng.standard_normal((D_SAE, 8)).astype(np.float32)
    db = saedb.open(tmp_path / "big.saedb")
    db.ingest_dictionary("S", None, W_enc=w.T.copy(), W_dec=w, b_enc=np.zeros(D_SAE, np.float32),
                         b_dec=np.zeros(8, np.float32), architecture="relu", defer_index=True,
                         progress=False)
    db.ingest_tokens([[f"t{i}" for i in range(POSITIONS)]] * DOCS, progress=False)
    tokens = DOCS * POSITIONS
    t = np.arange(tokens)
    coo = dict(
        doc=np.repeat(t // POSITIONS, PER_TOKEN).astype(np.uint32),
        pos=np.repeat(t % POSITIONS, PER_TOKEN).astype(np.uint32),
        feature=((rng.integers(0, D_SAE, tokens)[:, None] + np.arange(PER_TOKEN) * 256) % D_SAE)
        .astype(np.uint32).ravel(),
        value=rng.lognormal(0, 0.5, tokens * PER_TOKEN).astype(np.float32),
    )
    yield db, coo
    db.close()


def test_progress_callback_and_gil_released(big):
    db, coo = big
    calls, ticks, stop = [], [0], threading.Event()

    def spin():
        while not stop.is_set():
            ticks[0] += 1

    th = threading.Thread(target=spin)
    th.start()
    try:
        db.ingest_activations("S", progress=lambda *a: calls.append(a), **coo)
    finally:
        stop.set()
        th.join()
    assert calls, "the callback was never called"
    assert all(isinstance(p, str) and 0 <= done and (total == 0 or done <= total)
               for p, done, total in calls)
    # Another Python thread ran while the ingest worked: the GIL was released.
    assert ticks[0] > 1000
    assert db.info()["dictionaries"][0]["nonzeros"] == len(coo["value"])


def visible(info):
    """What a store shows, less its size on disk: a cancel that came while blocks were being
    written leaves them as invisible orphans, as a crash would (`saedb check --repair`)."""
    return {k: v for k, v in info.items() if k != "bytes_on_disk"}


def assert_untouched(db, before):
    assert visible(db.info()) == visible(before)
    assert len(db.top_activations("S/5", k=5)) == 0


def test_exception_in_callback_cancels(big):
    db, coo = big
    before = db.info()

    def fail(phase, done, total):
        raise ValueError("stop here")

    with pytest.raises(ValueError, match="stop here"):
        db.ingest_activations("S", progress=fail, **coo)
    assert_untouched(db, before)
    # Nothing of it was recorded: the same data ingests afterwards.
    db.ingest_activations("S", progress=False, **coo)
    assert db.info()["dictionaries"][0]["nonzeros"] == len(coo["value"])


def test_ctrl_c_cancels_and_leaves_the_store_as_before(big):
    db, coo = big
    before = db.info()
    sent = []

    def interrupt(phase, done, total):
        if not sent:
            sent.append(phase)
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, handled by Python's handler

    with pytest.raises(KeyboardInterrupt):
        db.ingest_activations("S", progress=interrupt, **coo)
    assert sent
    assert_untouched(db, before)
    db.close()
    # And after reopening, too: nothing half-written reached the disk.
    with saedb.open(db.path) as again:
        assert_untouched(again, before)
