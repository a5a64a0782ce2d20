"""Exception classes and their fields."""

import pytest

import saedb


def test_hierarchy():
    for cls in (saedb.QueryError, saedb.StoreLocked, saedb.InputError):
        assert issubclass(cls, saedb.Error)
    assert issubclass(saedb.Error, Exception)
    assert saedb.Error.__module__ == "saedb"


def test_syntax_error_position_and_caret(ro):
    with pytest.raises(saedb.QueryError) as e:
        ro.sql("SHOW DICTIONARIES;\nDESCRBE L2/7")
    err = e.value
    assert (err.line, err.column) == (2, 1)
    assert err.kind == "syntax"
    text = str(err)
    assert text.startswith("query:2:1: error:")
    assert "  | DESCRBE L2/7\n  | ^" in text
    assert err.hint is not None and "DESCRIBE" in err.hint


def test_not_found_error(ro):
    with pytest.raises(saedb.QueryError) as e:
        ro.sql("TOP 5 ACTIVATIONS OF L9/1")
    err = e.value
    assert err.kind == "not_found"
    assert (err.line, err.column) == (1, 22)
    assert "unknown dictionary 'L9'" in err.message
    assert "L2, L4" in (err.hint or "") + err.message


def test_out_of_range_feature_from_typed_call(ro):
    with pytest.raises(saedb.QueryError, match="out of range") as e:
        ro.describe(("L2", 512))
    assert e.value.kind == "not_found"


@pytest.mark.parametrize("bad", ["L2-7", "L2/x", "/7", ("L2", -1), ("2L", 3)])
def test_bad_feature_argument(ro, bad):
    with pytest.raises(saedb.InputError):
        ro.describe(bad)


def test_where_cannot_add_a_statement(ro):
    with pytest.raises(saedb.InputError, match="one condition"):
        ro.top_activations("L2/7", where='value > 1; LABEL L2/7 AS "x"')
    with pytest.raises(saedb.QueryError) as e:
        ro.top_activations("L2/7", where="valeu > 1")
    assert e.value.kind in ("invalid", "syntax")


def test_bad_numbers(ro):
    with pytest.raises(saedb.InputError, match="k must be at least 1"):
        ro.top_activations("L2/7", k=0)
    with pytest.raises(saedb.InputError, match="context"):
        ro.top_activations("L2/7", context=-1)


def test_ingest_bad_file_is_input_error(fresh, tmp_path):
    bad = tmp_path / "tokens.jsonl"
    bad.write_text('{"doc": 0}\n')
    with pytest.raises(saedb.InputError) as e:
        fresh.ingest_tokens(bad, progress=False)
    assert e.value.path == str(bad)
    assert "tokens" in str(e.value)
    assert fresh.info()["documents"] == 0


def test_label_on_read_only_store(ro):
    with pytest.raises(saedb.Error, match="read-only"):
        ro.label("L2/7", "x")
