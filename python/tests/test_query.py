"""Answers from Python against numpy brute force on fixtures/minilm-mini."""

import json

import numpy as np
import pytest

import saedb

# Features with many activations and a few with few, in both dictionaries.
def sample_features(mini, d, n=6):
    _, _, feat, _ = mini.coo(d)
    counts = np.bincount(feat, minlength=512)
    order = np.argsort(-counts, kind="stable")
    some = [int(order[0]), int(order[1]), int(order[len(order) // 2])]
    rare = [int(f) for f in np.nonzero(counts == 1)[0][:2]]
    return some + rare + [7, 150][: n - len(some) - len(rare)]


def brute_top(mini, d, f, k):
    doc, pos, feat, value = mini.coo(d)
    m = feat == f
    rows = sorted(zip(-value[m], doc[m], pos[m]))[:k]
    return [(int(dd), int(pp), float(-v)) for v, dd, pp in rows]


@pytest.mark.parametrize("d", ["L2", "L4"])
def test_top_activations_equal_brute_force(ro, mini, d):
    for f in sample_features(mini, d):
        for k in (1, 5, 200):  # 200 is past the materialised top list: a scan
            got = ro.top_activations((d, f), k=k, context=2).rows()
            want = brute_top(mini, d, f, k)
            assert [(r["doc"], r["pos"]) for r in got] == [(w[0], w[1]) for w in want], (d, f, k)
            np.testing.assert_allclose([r["value"] for r in got], [w[2] for w in want], rtol=1e-6)


def test_top_activations_where_filters_before_k(ro, mini):
    doc, pos, feat, value = mini.coo("L2")
    m = (feat == 150) & (value > 2.5)
    want = sorted(zip(-value[m], doc[m], pos[m]))[:10]
    got = ro.top_activations("L2/150", k=10, where="value > 2.5").rows()
    assert [(r["doc"], r["pos"]) for r in got] == [(int(d), int(p)) for _, d, p in want]


def test_top_activations_context_is_the_document(ro):
    for r in ro.top_activations("L2/7", k=5, context=3).rows():
        tokens = ro.document(r["doc"])["tokens"]
        ctx = r["context"]
        assert ctx["tokens"][ctx["center"]] == r["token"] == tokens[r["pos"]]
        lo = max(0, r["pos"] - 3)
        assert ctx["tokens"] == tokens[lo : r["pos"] + 4]


@pytest.mark.parametrize("d", ["L2", "L4"])
def test_features_at_equal_brute_force(ro, mini, d):
    doc, pos, feat, value = mini.coo(d)
    rng = np.random.default_rng(15)
    for i in rng.choice(len(doc), 8, replace=False):
        m = (doc == doc[i]) & (pos == pos[i])
        want = sorted(zip(-value[m], feat[m]))
        got = ro.features_at(int(doc[i]), int(pos[i]), dictionary=d).rows()
        assert [r["feature"] for r in got] == [int(f) for _, f in want]
        assert all(r["dict"] == d for r in got)
        np.testing.assert_allclose([r["value"] for r in got], [-v for v, _ in want], rtol=1e-6)


def brute_neighbours(mini, d, f, other, k):
    a = mini.weights[d]["W_dec"].astype(np.float64)
    b = mini.weights[other]["W_dec"].astype(np.float64)
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    cos = b @ a[f]
    if other == d:
        cos[f] = -np.inf
    order = np.argsort(-cos, kind="stable")[:k]
    return [int(i) for i in order], cos[order]


@pytest.mark.parametrize("d,other", [("L2", "L2"), ("L4", "L4"), ("L2", "L4")])
def test_neighbours_exact_equal_decoder_cosine(ro, mini, d, other):
    for f in sample_features(mini, d):
        want_ids, want_cos = brute_neighbours(mini, d, f, other, 10)
        got = ro.neighbours((d, f), dictionary=other, k=10, exact=True).rows()
        assert [r["feature"] for r in got] == want_ids
        np.testing.assert_allclose([r["cosine"] for r in got], want_cos, atol=1e-4)


def test_neighbours_approximate_recall(ro, mini):
    found = total = 0
    for f in range(0, 512, 16):
        want, _ = brute_neighbours(mini, "L2", f, "L2", 10)
        got = [r["feature"] for r in ro.neighbours(f"L2/{f}", k=10).rows()]
        found += len(set(got) & set(want))
        total += 10
    assert found / total >= 0.95


def test_describe_counts(ro, mini):
    _, _, feat, value = mini.coo("L2")
    r = ro.describe("L2/150").rows()[0]
    assert r["count"] == int((feat == 150).sum())
    assert r["max"] == pytest.approx(float(value[feat == 150].max()), rel=1e-6)
    assert sum(b["count"] for b in r["histogram"]) == r["count"]


def test_rows_are_the_json_rows(ro):
    for q in [
        "TOP 5 ACTIVATIONS OF L2/7 CONTEXT 3",
        "DESCRIBE L2/150",
        "SHOW DICTIONARIES",
        "FEATURES AT DOC 17 POS 5 IN L2 LIMIT 4",
        "NEIGHBOURS OF L2/7 IN L4 EXACT LIMIT 3",
        "SHOW DOC 3",
    ]:
        res = ro.sql(q)
        assert res.rows() == json.loads(res.json()), q
        assert len(res) == len(res.rows())


def test_repr_is_the_shell_table(ro):
    text = repr(ro.sql("TOP 5 ACTIVATIONS OF L2/7 CONTEXT 3;"))
    lines = text.splitlines()
    assert lines[0] == "TOP 5 ACTIVATIONS OF L2/7"
    assert lines[1].split("|")[0].strip() == "doc"
    assert lines[-1] == "(5 rows)"
    assert "[sets]" in text


def test_typed_and_sql_agree(ro):
    assert ro.top_activations("L2/150", k=7, context=1).rows() == ro.sql(
        "TOP 7 ACTIVATIONS OF L2/150 CONTEXT 1").rows()
    assert ro.neighbours(("L4", 3), k=4).rows() == ro.sql("NEIGHBOURS OF L4/3 LIMIT 4").rows()
    assert ro.features_at(17, 5).rows() == ro.sql("FEATURES AT DOC 17 POS 5").rows()


def test_script_returns_last_result_and_session_persists(ro):
    res = ro.sql("USE L4; SET $f = 150;\n-- a comment\nTOP 2 ACTIVATIONS OF $f CONTEXT 1")
    assert res.title.startswith("TOP 2 ACTIVATIONS OF L4/150")
    assert ro.sql("TOP 1 ACTIVATIONS OF 150").title.startswith("TOP 1 ACTIVATIONS OF L4/150")
    assert len(ro.sql("-- nothing but a comment")) == 0


def test_numeric_columns_are_numpy(ro):
    res = ro.top_activations("L2/150", k=50)
    doc = res.column("doc")
    value = res.column("value")
    assert isinstance(doc, np.ndarray) and doc.dtype == np.int64
    assert isinstance(value, np.ndarray) and value.dtype == np.float64
    assert list(doc) == [r["doc"] for r in res.rows()]
    assert isinstance(res.column("token"), list)
    with pytest.raises(KeyError, match="no column 'nope'"):
        res.column("nope")


def test_ctrl_c_stops_a_long_script_and_the_session_stays(ro):
    """Ctrl-C (here `_thread.interrupt_main`, which Python treats as a SIGINT) stops a running
    script at its next statement instead of after all of them, and the Database stays usable."""
    import _thread
    import threading
    import time

    one = "SHOW DICTIONARIES;"
    t = time.perf_counter()
    ro.sql(one * 2000)
    per_statement = (time.perf_counter() - t) / 2000
    # A script that would run for about 60 s uninterrupted.
    n = max(10_000, int(60 / max(per_statement, 1e-7)))
    timer = threading.Timer(0.5, _thread.interrupt_main)
    timer.start()
    t = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        ro.sql(one * n)
    elapsed = time.perf_counter() - t
    timer.join()
    assert elapsed < 20, f"the interrupt took {elapsed:.1f} s to stop a {n}-statement script"
    assert [r["name"] for r in ro.sql("SHOW DICTIONARIES").rows()] == ["L2", "L4"]
