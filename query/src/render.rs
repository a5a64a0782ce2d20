//! Renderers of a [`ResultSet`]: an aligned table for people, JSON and CSV for programs.
//!
//! - Table: one line per row, columns aligned (numbers to the right), a `(n rows)` footer and the
//!   result's note. Records (DESCRIBE) are shown one field per line. The token an activation fired
//!   on is marked inside its context with brackets (`over [##flow] if`), or, with
//!   [`render_table`]`(rs, true)`, with ANSI reverse video.
//! - JSON: one array of row objects whose field names are the column names (documented, stable).
//!   Contexts become `{"tokens": [...], "center": i}`, histograms `[{"lo", "hi", "count"}]`.
//! - CSV: RFC 4180 (CRLF line ends, fields quoted when they hold `,` `"` CR LF or edge spaces),
//!   a header line first. Contexts are written as in the table, lists joined with `|`.

use crate::result::{ResultKind, ResultSet, Value};
use serde_json::{json, Map, Value as Json};
use std::fmt;
use std::str::FromStr;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Csv,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        match s.to_ascii_lowercase().as_str() {
            "table" => Ok(Format::Table),
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            other => Err(format!(
                "unknown format '{other}' (expected table, json or csv)"
            )),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Table => "table",
            Format::Json => "json",
            Format::Csv => "csv",
        })
    }
}

/// Renders a result in a format. Table output is plain text (no ANSI codes) and ends with a newline.
pub fn render(rs: &ResultSet, fmt: Format) -> String {
    match fmt {
        Format::Table => render_table(rs, false),
        Format::Json => render_json(rs),
        Format::Csv => render_csv(rs),
    }
}

/// Formats a float for people: 4 decimals, or 3 significant digits in scientific form when tiny.
pub fn format_float(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else if x == 0.0 {
        "0".into()
    } else if x.abs() >= 1e-3 && x.abs() < 1e15 {
        format!("{x:.4}")
    } else {
        format!("{x:.3e}")
    }
}

/// Joins tokens for reading. WordPiece continuation pieces (`##ing`) are glued to the word before;
/// when the tokens carry their own spaces (GPT-style ` the`), they are concatenated as they are.
/// The center token is wrapped in `open`/`close`. Truncated sides get an ellipsis.
pub fn context_text(
    tokens: &[String],
    center: usize,
    open: &str,
    close: &str,
    left_cut: bool,
    right_cut: bool,
) -> String {
    let spaced = tokens
        .iter()
        .any(|t| t.starts_with(' ') || t.starts_with('Ġ') || t.starts_with('▁'));
    let mut out = String::new();
    if left_cut {
        out.push('…');
    }
    for (i, t) in tokens.iter().enumerate() {
        let piece: &str = t;
        if !spaced && i > 0 && !piece.starts_with("##") {
            out.push(' ');
        }
        let shown = if spaced {
            piece.replace(['Ġ', '▁'], " ")
        } else {
            piece.to_string()
        };
        let shown = escape_controls(&shown);
        if i == center {
            out.push_str(open);
            out.push_str(&shown);
            out.push_str(close);
        } else if !spaced && i > 0 && piece.starts_with("##") {
            out.push_str(&shown[2..]);
        } else {
            out.push_str(&shown);
        }
    }
    if right_cut {
        out.push('…');
    }
    out
}

fn escape_controls(s: &str) -> String {
    if !s.chars().any(|c| c.is_control()) {
        return s.to_string();
    }
    s.chars()
        .map(|c| match c {
            '\n' => "\\n".to_string(),
            '\t' => "\\t".to_string(),
            '\r' => "\\r".to_string(),
            c if c.is_control() => format!("\\u{{{:x}}}", c as u32),
            c => c.to_string(),
        })
        .collect()
}

const SPARKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// A one-line picture of a histogram: its range and one bar per bin.
pub fn sparkline(bins: &[(f32, f32, u64)]) -> String {
    if bins.is_empty() {
        return String::new();
    }
    let max = bins.iter().map(|b| b.2).max().unwrap_or(1).max(1);
    let bars: String = bins
        .iter()
        .map(|b| {
            let i = ((b.2 as f64 / max as f64) * 7.0).round() as usize;
            SPARKS[i.min(7)]
        })
        .collect();
    format!(
        "{}..{} {}",
        format_float(f64::from(bins[0].0)),
        format_float(f64::from(bins[bins.len() - 1].1)),
        bars
    )
}

fn cell_text(v: &Value, kind: ResultKind, color: bool) -> String {
    match v {
        Value::Null => String::new(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => format_float(*f),
        Value::Str(s) => escape_controls(s),
        Value::Bool(b) => b.to_string(),
        Value::List(items) => {
            let sep = if kind == ResultKind::Chains {
                " → "
            } else {
                ", "
            };
            items
                .iter()
                .map(|i| cell_text(i, kind, color))
                .collect::<Vec<_>>()
                .join(sep)
        }
        Value::Context { tokens, center } => {
            let (open, close) = if color {
                ("\x1b[7m", "\x1b[0m")
            } else {
                ("[", "]")
            };
            context_text(tokens, *center, open, close, false, false)
        }
        Value::Histogram(bins) => sparkline(bins),
    }
}

fn width(s: &str) -> usize {
    // ANSI escapes take no room on screen.
    let mut w = 0;
    let mut in_esc = false;
    for c in s.chars() {
        if in_esc {
            if c == 'm' {
                in_esc = false;
            }
        } else if c == '\x1b' {
            in_esc = true;
        } else {
            w += 1;
        }
    }
    w
}

fn is_numeric(v: &Value) -> bool {
    matches!(v, Value::Int(_) | Value::Float(_))
}

/// Renders a table; with `color`, the center token of a context is shown in reverse video and the
/// header in bold instead of brackets and plain text.
pub fn render_table(rs: &ResultSet, color: bool) -> String {
    let mut out = String::new();
    if let Some(t) = &rs.title {
        if color {
            out.push_str(&format!("\x1b[1m{t}\x1b[0m\n"));
        } else {
            out.push_str(t);
            out.push('\n');
        }
    }
    if rs.kind.is_record() && !rs.rows.is_empty() {
        let name_w = rs.columns.iter().map(|c| width(c)).max().unwrap_or(0);
        for (ri, row) in rs.rows.iter().enumerate() {
            if ri > 0 {
                out.push('\n');
            }
            for (c, v) in rs.columns.iter().zip(row) {
                let text = cell_text(v, rs.kind, color);
                let line = format!("{c:<name_w$}  {text}");
                out.push_str(line.trim_end());
                out.push('\n');
            }
        }
    } else if !rs.columns.is_empty() {
        let cells: Vec<Vec<String>> = rs
            .rows
            .iter()
            .map(|r| r.iter().map(|v| cell_text(v, rs.kind, color)).collect())
            .collect();
        let n = rs.columns.len();
        let mut widths: Vec<usize> = rs.columns.iter().map(|c| width(c)).collect();
        for r in &cells {
            for (i, c) in r.iter().enumerate().take(n) {
                widths[i] = widths[i].max(width(c));
            }
        }
        // A column is right-aligned when every non-null value in it is a number.
        let right: Vec<bool> = (0..n)
            .map(|i| {
                let mut any = false;
                for r in &rs.rows {
                    match r.get(i) {
                        Some(Value::Null) | None => {}
                        Some(v) if is_numeric(v) => any = true,
                        Some(_) => return false,
                    }
                }
                any
            })
            .collect();
        let line = |vals: &[String], header: bool| -> String {
            let mut s = String::new();
            for i in 0..n {
                if i > 0 {
                    s.push_str(" | ");
                }
                let v = vals.get(i).map(String::as_str).unwrap_or("");
                let pad = widths[i].saturating_sub(width(v));
                if right[i] && !header {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(v);
                } else {
                    s.push_str(v);
                    s.push_str(&" ".repeat(pad));
                }
            }
            s.trim_end().to_string()
        };
        let header = line(&rs.columns, true);
        if color {
            out.push_str(&format!("\x1b[1m{header}\x1b[0m\n"));
        } else {
            out.push_str(&header);
            out.push('\n');
        }
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        out.push_str(&rule.join("-+-"));
        out.push('\n');
        for r in &cells {
            out.push_str(&line(r, false));
            out.push('\n');
        }
        out.push_str(&match rs.rows.len() {
            1 => "(1 row)\n".to_string(),
            n => format!("({n} rows)\n"),
        });
    }
    if let Some(note) = &rs.note {
        out.push_str(note);
        out.push('\n');
    }
    out
}

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
        Value::Context { tokens, center } => context_text(tokens, *center, "[", "]", false, false),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rs() -> ResultSet {
        let mut rs = ResultSet::new(
            ResultKind::TopActivations,
            &["doc", "token", "value", "context"],
        );
        rs.rows.push(vec![
            Value::Int(3),
            Value::str("over"),
            Value::from_f32(2.6),
            Value::Context {
                tokens: vec!["the".into(), "over".into(), "##flow".into()],
                center: 1,
            },
        ]);
        rs.rows.push(vec![
            Value::Int(12),
            Value::str("a,\"b\""),
            Value::Float(0.5),
            Value::Context {
                tokens: vec!["x".into(), "##y".into()],
                center: 1,
            },
        ]);
        rs
    }

    #[test]
    fn table() {
        assert_eq!(
            render(&rs(), Format::Table),
            "doc | token | value  | context\n\
             ----+-------+--------+---------------\n  \
               3 | over  | 2.6000 | the [over]flow\n \
              12 | a,\"b\" | 0.5000 | x[##y]\n\
             (2 rows)\n"
        );
    }

    #[test]
    fn json() {
        let j = render(&rs(), Format::Json);
        let v: Json = serde_json::from_str(&j).unwrap();
        assert_eq!(v[0]["value"], json!(2.6));
        assert_eq!(v[0]["context"]["center"], json!(1));
    }

    #[test]
    fn csv() {
        assert_eq!(
            render(&rs(), Format::Csv),
            "doc,token,value,context\r\n3,over,2.6,the [over]flow\r\n12,\"a,\"\"b\"\"\",0.5,x[##y]\r\n"
        );
    }
}
