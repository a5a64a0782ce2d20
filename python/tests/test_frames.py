"""Result.df(), .arrow() and .pl(): column types."""

import pytest


def test_df_column_types(ro):
    pd = pytest.importorskip("pandas")
    df = ro.top_activations("L2/150", k=10, context=2).df()
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == ["doc", "pos", "token", "value", "context"]
    assert str(df["doc"].dtype) == "int64" and str(df["pos"].dtype) == "int64"
    assert str(df["value"].dtype) == "float64"
    assert df["token"].map(type).eq(str).all()
    assert set(df["context"].iloc[0]) == {"tokens", "center"}
    assert len(df) == 10


def test_df_nullable_int(ro):
    pytest.importorskip("pandas")
    df = ro.sql("SHOW DICTIONARIES").df()
    assert str(df["d_sae"].dtype) == "int64"
    assert list(df["name"]) == ["L2", "L4"]


def test_arrow_column_types(ro):
    pa = pytest.importorskip("pyarrow")
    t = ro.top_activations("L2/150", k=10, context=2).arrow()
    assert isinstance(t, pa.Table)
    assert t.schema.field("doc").type == pa.int64()
    assert t.schema.field("value").type == pa.float64()
    assert t.schema.field("token").type == pa.string()
    ctx = t.schema.field("context").type
    assert pa.types.is_struct(ctx)
    assert ctx.field("tokens").type == pa.list_(pa.field("item", pa.string(), nullable=False))
    assert ctx.field("center").type == pa.int64()
    assert t.num_rows == 10
    assert t.to_pylist() == ro.top_activations("L2/150", k=10, context=2).rows()
    assert t.schema.metadata[b"saedb.kind"] == b"top_activations"


def test_arrow_histogram_and_empty(ro):
    pa = pytest.importorskip("pyarrow")
    t = ro.describe("L2/150").arrow()
    h = t.schema.field("histogram").type
    assert pa.types.is_list(h) and pa.types.is_struct(h.value_type)
    assert [h.value_type.field(i).name for i in range(3)] == ["lo", "hi", "count"]
    assert t.to_pylist() == ro.describe("L2/150").rows()
    empty = ro.top_activations("L2/150", k=5, where="value > 1000").arrow()
    assert empty.num_rows == 0 and empty.schema.field("doc").type == pa.int64()


def test_polars(ro):
    pl = pytest.importorskip("polars")
    pytest.importorskip("pyarrow")
    df = ro.top_activations("L2/150", k=10).pl()
    assert isinstance(df, pl.DataFrame)
    assert df.schema["doc"] == pl.Int64 and df.schema["value"] == pl.Float64
    assert df["doc"].to_list() == [r["doc"] for r in ro.top_activations("L2/150", k=10).rows()]
