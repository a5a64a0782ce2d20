//! A result as an Arrow record batch (handed to pyarrow through the C data interface) and as
//! numpy columns. Column types are inferred from the cells: integers `int64`, numbers `float64`,
//! text `string`, contexts `struct<tokens: list<string>, center: int64>`, histograms
//! `list<struct<lo: float64, hi: float64, count: uint64>>`, lists of text `list<string>`. A null
//! cell is a null in any type. Numeric buffers are moved, not copied, into Arrow and numpy.

use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, ListArray, RecordBatch, RecordBatchOptions,
    StringArray, StructArray, UInt64Array,
};
use arrow_buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, DataType, Field, Fields, Schema};
use saedb_query::{ResultSet, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// The type of a result column, from the cells it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// Only nulls (or no rows): a column of `int64` nulls.
    Null,
    Int,
    Float,
    Bool,
    Str,
    StrList,
    Context,
    Histogram,
    /// Cells of kinds that do not share a type: their text.
    Mixed,
}

impl ColumnType {
    fn of(v: &Value) -> ColumnType {
        match v {
            Value::Null => ColumnType::Null,
            Value::Int(_) => ColumnType::Int,
            Value::Float(_) => ColumnType::Float,
            Value::Bool(_) => ColumnType::Bool,
            Value::Str(_) => ColumnType::Str,
            Value::List(items) if items.iter().all(|i| matches!(i, Value::Str(_))) => {
                ColumnType::StrList
            }
            Value::List(_) => ColumnType::Mixed,
            Value::Context { .. } => ColumnType::Context,
            Value::Histogram(_) => ColumnType::Histogram,
        }
    }

    fn join(self, other: ColumnType) -> ColumnType {
        use ColumnType::*;
        match (self, other) {
            (Null, t) | (t, Null) => t,
            (a, b) if a == b => a,
            (Int, Float) | (Float, Int) => Float,
            _ => Mixed,
        }
    }
}

/// The type of column `c` of `rs`.
pub fn column_type(rs: &ResultSet, c: usize) -> ColumnType {
    rs.rows
        .iter()
        .filter_map(|r| r.get(c))
        .fold(ColumnType::Null, |t, v| t.join(ColumnType::of(v)))
}

fn cells<'a>(rs: &'a ResultSet, c: usize) -> impl Iterator<Item = &'a Value> + 'a {
    rs.rows
        .iter()
        .map(move |r| r.get(c).unwrap_or(&Value::Null))
}

/// Column `c` as `i64`s (nulls as 0) and which cells are valid.
pub fn int_column(rs: &ResultSet, c: usize) -> (Vec<i64>, Vec<bool>) {
    cells(rs, c)
        .map(|v| match v {
            Value::Int(i) => (*i, true),
            _ => (0, false),
        })
        .unzip()
}

/// Column `c` as `f64`s; nulls (and NaN) are NaN and not valid.
pub fn float_column(rs: &ResultSet, c: usize) -> (Vec<f64>, Vec<bool>) {
    cells(rs, c)
        .map(|v| match v.as_f64() {
            Some(x) if !x.is_nan() => (x, true),
            _ => (f64::NAN, false),
        })
        .unzip()
}

fn null_buffer(valid: Vec<bool>) -> Option<NullBuffer> {
    if valid.iter().all(|v| *v) {
        None
    } else {
        Some(NullBuffer::from(valid))
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Str(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::List(items) => Some(items.iter().filter_map(text).collect::<Vec<_>>().join(", ")),
        Value::Context { tokens, center } => Some(saedb_query::render::context_text(
            tokens,
            Some(*center),
            "[",
            "]",
        )),
        Value::Histogram(bins) => Some(saedb_query::render::sparkline(bins)),
    }
}

fn string_list(items: Vec<Option<&[String]>>) -> ListArray {
    let valid: Vec<bool> = items.iter().map(Option::is_some).collect();
    let lengths = items.iter().map(|i| i.map_or(0, <[String]>::len));
    let offsets = OffsetBuffer::from_lengths(lengths);
    let values: Vec<&str> = items
        .iter()
        .flatten()
        .flat_map(|i| i.iter().map(String::as_str))
        .collect();
    ListArray::new(
        Arc::new(Field::new("item", DataType::Utf8, false)),
        offsets,
        Arc::new(StringArray::from(values)),
        null_buffer(valid),
    )
}

fn context_fields() -> Fields {
    Fields::from(vec![
        Field::new(
            "tokens",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, false))),
            false,
        ),
        Field::new("center", DataType::Int64, false),
    ])
}

fn histogram_fields() -> Fields {
    Fields::from(vec![
        Field::new("lo", DataType::Float64, false),
        Field::new("hi", DataType::Float64, false),
        Field::new("count", DataType::UInt64, false),
    ])
}

fn contexts(rs: &ResultSet, c: usize) -> StructArray {
    let mut tokens = Vec::new();
    let mut centers = Vec::new();
    for v in cells(rs, c) {
        match v {
            Value::Context { tokens: t, center } => {
                tokens.push(Some(t.as_slice()));
                centers.push((*center as i64, true));
            }
            _ => {
                tokens.push(None);
                centers.push((0, false));
            }
        }
    }
    let (center, valid): (Vec<i64>, Vec<bool>) = centers.into_iter().unzip();
    let nulls = null_buffer(valid);
    // A null context has an empty token list underneath, as Arrow requires of struct children.
    let token_lists = string_list(tokens.iter().map(|t| Some(t.unwrap_or(&[]))).collect());
    StructArray::new(
        context_fields(),
        vec![
            Arc::new(token_lists) as ArrayRef,
            Arc::new(Int64Array::new(ScalarBuffer::from(center), None)),
        ],
        nulls,
    )
}

fn histograms(rs: &ResultSet, c: usize) -> ListArray {
    let (mut lo, mut hi, mut count, mut lengths, mut valid) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for v in cells(rs, c) {
        let bins: &[(f32, f32, u64)] = match v {
            Value::Histogram(b) => b,
            _ => &[],
        };
        valid.push(matches!(v, Value::Histogram(_)));
        lengths.push(bins.len());
        for (l, h, n) in bins {
            // The same decimal the JSON rows show (`Value::from_f32`).
            lo.push(Value::from_f32(*l).as_f64().unwrap_or(f64::NAN));
            hi.push(Value::from_f32(*h).as_f64().unwrap_or(f64::NAN));
            count.push(*n);
        }
    }
    let bins = StructArray::new(
        histogram_fields(),
        vec![
            Arc::new(Float64Array::from(lo)) as ArrayRef,
            Arc::new(Float64Array::from(hi)),
            Arc::new(UInt64Array::from(count)),
        ],
        None,
    );
    ListArray::new(
        Arc::new(Field::new(
            "item",
            DataType::Struct(histogram_fields()),
            false,
        )),
        OffsetBuffer::from_lengths(lengths),
        Arc::new(bins),
        null_buffer(valid),
    )
}

fn column_array(rs: &ResultSet, c: usize) -> ArrayRef {
    match column_type(rs, c) {
        ColumnType::Null | ColumnType::Int => {
            let (v, valid) = int_column(rs, c);
            Arc::new(Int64Array::new(ScalarBuffer::from(v), null_buffer(valid)))
        }
        ColumnType::Float => {
            let (v, valid) = float_column(rs, c);
            Arc::new(Float64Array::new(ScalarBuffer::from(v), null_buffer(valid)))
        }
        ColumnType::Bool => Arc::new(BooleanArray::from(
            cells(rs, c)
                .map(|v| match v {
                    Value::Bool(b) => Some(*b),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        )),
        ColumnType::Str => Arc::new(StringArray::from(
            cells(rs, c).map(Value::as_str).collect::<Vec<_>>(),
        )),
        ColumnType::StrList => Arc::new(string_list(
            cells(rs, c)
                .map(|v| match v {
                    Value::List(items) => Some(items),
                    _ => None,
                })
                .map(|items| {
                    items.map(|items| {
                        items
                            .iter()
                            .filter_map(|i| i.as_str().map(str::to_string))
                            .collect::<Vec<_>>()
                    })
                })
                .collect::<Vec<_>>()
                .iter()
                .map(|o| o.as_deref())
                .collect(),
        )),
        ColumnType::Context => Arc::new(contexts(rs, c)),
        ColumnType::Histogram => Arc::new(histograms(rs, c)),
        ColumnType::Mixed => Arc::new(StringArray::from(
            cells(rs, c).map(text).collect::<Vec<_>>(),
        )),
    }
}

/// The whole result as one record batch; the schema's metadata holds the statement's kind,
/// title and note (`saedb.kind`, `saedb.title`, `saedb.note`).
pub fn record_batch(rs: &ResultSet, kind: &str) -> Result<RecordBatch, ArrowError> {
    let arrays: Vec<ArrayRef> = (0..rs.columns.len()).map(|c| column_array(rs, c)).collect();
    let fields: Vec<Field> = rs
        .columns
        .iter()
        .zip(&arrays)
        .map(|(name, a)| Field::new(name, a.data_type().clone(), a.null_count() > 0))
        .collect();
    let mut meta = HashMap::from([("saedb.kind".to_string(), kind.to_string())]);
    if let Some(t) = &rs.title {
        meta.insert("saedb.title".into(), t.clone());
    }
    if let Some(n) = &rs.note {
        meta.insert("saedb.note".into(), n.clone());
    }
    let schema = Arc::new(Schema::new(fields).with_metadata(meta));
    RecordBatch::try_new_with_options(
        schema,
        arrays,
        &RecordBatchOptions::new().with_row_count(Some(rs.rows.len())),
    )
}
