//! JSON and CSV: results for programs.

use super::text::context_text;
use crate::result::{ResultSet, Value};
use serde_json::{json, Map, Value as Json};

fn to_json(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Int(i) => json!(i),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Json::Number)
            .unwrap_or(Json::Null),
        Value::Str(s) => json!(s),
        Value::Bool(b) => json!(b),
        Value::List(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Context { tokens, center } => json!({ "tokens": tokens, "center": center }),
        Value::Histogram(bins) => Json::Array(
            bins.iter()
                .map(|(lo, hi, count)| {
                    json!({
                        "lo": to_json(&Value::from_f32(*lo)),
                        "hi": to_json(&Value::from_f32(*hi)),
                        "count": count
                    })
                })
                .collect(),
        ),
    }
}

/// The rows as JSON values (objects keyed by column name).
pub fn rows_to_json(rs: &ResultSet) -> Vec<Json> {
    rs.rows
        .iter()
        .map(|r| {
            let mut m = Map::new();
            for (c, v) in rs.columns.iter().zip(r) {
                m.insert(c.clone(), to_json(v));
            }
            Json::Object(m)
        })
        .collect()
}

/// One JSON array of row objects, one row per line, fields in column order, newline-terminated.
pub fn render_json(rs: &ResultSet) -> String {
    if rs.rows.is_empty() {
        return "[]\n".into();
    }
    let mut out = String::from("[\n");
    for (i, r) in rs.rows.iter().enumerate() {
        out.push_str("  {");
        for (j, (c, v)) in rs.columns.iter().zip(r).enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str(&Json::String(c.clone()).to_string());
            out.push(':');
            out.push_str(&to_json(v).to_string());
        }
        out.push('}');
        if i + 1 < rs.rows.len() {
            out.push(',');
        }
        out.push('\n');
    }
    out.push_str("]\n");
    out
}

fn csv_field(s: &str) -> String {
    let needs = s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ');
    if needs {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => {
            if f.is_finite() {
                format!("{f}")
            } else {
                String::new()
            }
        }
        Value::Str(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::List(items) => items.iter().map(csv_text).collect::<Vec<_>>().join("|"),
        Value::Context { tokens, center } => context_text(tokens, Some(*center), "[", "]"),
        Value::Histogram(bins) => bins
            .iter()
            .map(|(lo, hi, c)| {
                format!(
                    "{}..{}:{c}",
                    Value::from_f32(*lo).as_f64().unwrap_or(0.0),
                    Value::from_f32(*hi).as_f64().unwrap_or(0.0)
                )
            })
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// RFC 4180 CSV with a header line; CRLF line ends.
pub fn render_csv(rs: &ResultSet) -> String {
    let mut out = String::new();
    if rs.columns.is_empty() {
        return out;
    }
    out.push_str(
        &rs.columns
            .iter()
            .map(|c| csv_field(c))
            .collect::<Vec<_>>()
            .join(","),
    );
    out.push_str("\r\n");
    for r in &rs.rows {
        out.push_str(
            &r.iter()
                .map(|v| csv_field(&csv_text(v)))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push_str("\r\n");
    }
    out
}
