//! The aligned table for people: one line per row (numbers to the right), a `(n rows)` footer
//! and the result's note; records (DESCRIBE) one field per line, with the histogram drawn as a
//! bar chart under a DESCRIBE.

use super::chart::histogram_chart;
use super::highlight::activation_text;
use super::text::{context_text, escape_controls, format_float, sparkline, thousands};
use crate::result::{ResultKind, ResultSet, Value};

/// How a table is drawn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableStyle {
    /// ANSI codes: a bold header and title, the firing token of a context in reverse video
    /// (instead of brackets), a coloured chart.
    pub color: bool,
    /// Integers with thousands separators (`19,744`), for summaries read by people.
    pub group_digits: bool,
}

/// Bars of the DESCRIBE chart: at most this wide and this many rows.
const CHART_WIDTH: usize = 40;
const CHART_ROWS: usize = 12;

fn cell_text(v: &Value, kind: ResultKind, style: TableStyle) -> String {
    match v {
        Value::Null => String::new(),
        Value::Int(i) if style.group_digits && *i >= 0 => thousands(i.unsigned_abs()),
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
                .map(|i| cell_text(i, kind, style))
                .collect::<Vec<_>>()
                .join(sep)
        }
        Value::Context { tokens, center } => {
            let (open, close) = if style.color {
                ("\x1b[7m", "\x1b[0m")
            } else {
                ("[", "]")
            };
            context_text(tokens, Some(*center), open, close)
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

fn bold(text: &str, style: TableStyle) -> String {
    if style.color {
        format!("\x1b[1m{text}\x1b[0m\n")
    } else {
        format!("{text}\n")
    }
}

/// Renders a table in plain text, or with `color` (see [`TableStyle::color`]).
pub fn render_table(rs: &ResultSet, color: bool) -> String {
    render_table_styled(
        rs,
        TableStyle {
            color,
            ..TableStyle::default()
        },
    )
}

/// Renders a table in a [`TableStyle`].
pub fn render_table_styled(rs: &ResultSet, style: TableStyle) -> String {
    let mut out = String::new();
    if let Some(t) = &rs.title {
        out.push_str(&bold(t, style));
    }
    if rs.kind.is_record() && !rs.rows.is_empty() {
        records(rs, style, &mut out);
    } else if !rs.columns.is_empty() {
        rows(rs, style, &mut out);
    }
    if rs.kind == ResultKind::TextActivation && !rs.rows.is_empty() {
        out.push_str(&activation_text(rs, style.color));
    }
    if let Some(note) = &rs.note {
        out.push_str(note);
        out.push('\n');
    }
    out
}

/// One field per line; a histogram also as a bar chart under its record.
fn records(rs: &ResultSet, style: TableStyle, out: &mut String) {
    let name_w = rs.columns.iter().map(|c| width(c)).max().unwrap_or(0);
    for (ri, row) in rs.rows.iter().enumerate() {
        if ri > 0 {
            out.push('\n');
        }
        for (c, v) in rs.columns.iter().zip(row) {
            let text = cell_text(v, rs.kind, style);
            let line = format!("{c:<name_w$}  {text}");
            out.push_str(line.trim_end());
            out.push('\n');
        }
        for v in row {
            if let Value::Histogram(bins) = v {
                out.push_str(&histogram_chart(bins, CHART_WIDTH, CHART_ROWS, style.color));
            }
        }
    }
}

/// A column is right-aligned when every non-null value in it is a number.
fn right_aligned(rs: &ResultSet, column: usize) -> bool {
    let mut any = false;
    for r in &rs.rows {
        match r.get(column) {
            Some(Value::Null) | None => {}
            Some(v) if is_numeric(v) => any = true,
            Some(_) => return false,
        }
    }
    any
}

/// A header, a rule, one line per row, and the row count.
fn rows(rs: &ResultSet, style: TableStyle, out: &mut String) {
    let cells: Vec<Vec<String>> = rs
        .rows
        .iter()
        .map(|r| r.iter().map(|v| cell_text(v, rs.kind, style)).collect())
        .collect();
    let n = rs.columns.len();
    let mut widths: Vec<usize> = rs.columns.iter().map(|c| width(c)).collect();
    for r in &cells {
        for (i, c) in r.iter().enumerate().take(n) {
            widths[i] = widths[i].max(width(c));
        }
    }
    let right: Vec<bool> = (0..n).map(|i| right_aligned(rs, i)).collect();
    let line = |vals: &[String], header: bool| -> String {
        let mut s = String::new();
        for i in 0..n {
            if i > 0 {
                s.push_str(" | ");
            }
            let v = vals.get(i).map(String::as_str).unwrap_or("");
            let pad = " ".repeat(widths[i].saturating_sub(width(v)));
            if right[i] && !header {
                s.push_str(&pad);
                s.push_str(v);
            } else {
                s.push_str(v);
                s.push_str(&pad);
            }
        }
        s.trim_end().to_string()
    };
    out.push_str(&bold(&line(&rs.columns, true), style));
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
