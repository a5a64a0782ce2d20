//! Renderers of a [`ResultSet`]: an aligned table for people, JSON and CSV for programs, and the
//! summaries the command-line tool prints (`saedb info`, `saedb check`). Everything the shell
//! prints is rendered here, so that an embedder gets the same text.
//!
//! - Table ([`table`]): one line per row, columns aligned (numbers to the right), a `(n rows)`
//!   footer and the result's note. Records (DESCRIBE) are shown one field per line, a DESCRIBE's
//!   histogram also as a bar chart. A context reads as text (`sign [ly]` for the tokens
//!   `sign ##ly`, see [`context_text`]): the token an activation fired on is marked with brackets
//!   (`the [over]flow`), or, with [`render_table`]`(rs, true)`, with ANSI reverse video.
//! - JSON: one array of row objects whose field names are the column names (documented, stable).
//!   Contexts become `{"tokens": [...], "center": i}` (the tokens as stored), histograms
//!   `[{"lo", "hi", "count"}]`.
//! - CSV: RFC 4180 (CRLF line ends, fields quoted when they hold `,` `"` CR LF or edge spaces),
//!   a header line first. Contexts are written as in the table, lists joined with `|`.

mod chart;
mod data;
mod highlight;
mod store;
mod table;
mod text;

pub use chart::histogram_chart;
pub use data::{render_csv, render_json, rows_to_json};
pub use highlight::activation_text;
pub use store::{render_check, render_info, render_ingest, render_models};
pub use table::{render_table, render_table_styled, TableStyle};
pub use text::{
    context_text, format_float, human_bytes, reading_pieces, sparkline, thousands, ReadingPiece,
};

use crate::result::ResultSet;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::{ResultKind, Value};
    use serde_json::{json, Value as Json};

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
              12 | a,\"b\" | 0.5000 | x[y]\n\
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
            "doc,token,value,context\r\n3,over,2.6,the [over]flow\r\n12,\"a,\"\"b\"\"\",0.5,x[y]\r\n"
        );
    }
}
