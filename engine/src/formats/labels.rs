//! Feature labels made elsewhere: Neuronpedia's explanation exports and plain CSV.
//!
//! - Neuronpedia (its public dataset exports and its API): JSON lines, or one JSON array, of
//!   objects with `index` (the feature, a number or a string of digits, as those exports write
//!   it) and `description` (the explanation); other fields (`modelId`, `layer`,
//!   `explanationModelName`, …) are ignored. A `.gz` file is read through gzip.
//! - CSV: `feature,label` rows, with or without that header; fields quoted as RFC 4180 says.
//!
//! Pure: no store. The store applies the entries all or nothing (`Store::import_labels`).

use crate::{Error, Result};
use serde_json::Value;
use std::io::Read;
use std::path::Path;

/// One label read from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelEntry {
    /// Where in the file it was: a line (JSON lines, CSV) or an array element (JSON), 1-based.
    pub at: usize,
    pub feature: u64,
    /// The label, trimmed; empty when the file gave an empty description.
    pub label: String,
}

/// The formats a label file can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelFormat {
    JsonArray,
    JsonLines,
    Csv,
}

/// Reads every entry of a label file, in file order. The format is told by the first
/// non-blank character: `[` a JSON array, `{` JSON lines, anything else CSV.
pub fn read_label_file(path: &Path) -> Result<(LabelFormat, Vec<LabelEntry>)> {
    let text = read_text(path)?;
    let bad = |m: String| Error::bad_input(path, m);
    match text.trim_start().chars().next() {
        None => Err(bad("the file is empty: no labels to import".into())),
        Some('[') => Ok((
            LabelFormat::JsonArray,
            parse_json_array(&text).map_err(bad)?,
        )),
        Some('{') => Ok((
            LabelFormat::JsonLines,
            parse_json_lines(&text).map_err(bad)?,
        )),
        Some(_) => Ok((LabelFormat::Csv, parse_csv(&text).map_err(bad)?)),
    }
}

fn read_text(path: &Path) -> Result<String> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut text = String::new();
    let gz = path.extension().is_some_and(|e| e == "gz");
    let read = if gz {
        flate2::read::GzDecoder::new(file).read_to_string(&mut text)
    } else {
        std::io::BufReader::new(file).read_to_string(&mut text)
    };
    read.map_err(|e| Error::bad_input(path, format!("cannot be read as UTF-8 text: {e}")))?;
    Ok(text)
}

/// A JSON array of explanation objects.
pub fn parse_json_array(text: &str) -> std::result::Result<Vec<LabelEntry>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let Value::Array(items) = v else {
        return Err("expected a JSON array of objects with index and description".into());
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let (feature, label) =
                explanation(item).map_err(|m| format!("element {}: {m}", i + 1))?;
            Ok(LabelEntry {
                at: i + 1,
                feature,
                label,
            })
        })
        .collect()
}

/// JSON lines of explanation objects (blank lines are allowed).
pub fn parse_json_lines(text: &str) -> std::result::Result<Vec<LabelEntry>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = i + 1;
        let v: Value =
            serde_json::from_str(line).map_err(|e| format!("line {at}: not valid JSON: {e}"))?;
        let (feature, label) = explanation(&v).map_err(|m| format!("line {at}: {m}"))?;
        out.push(LabelEntry { at, feature, label });
    }
    Ok(out)
}

/// `index` and `description` of one explanation object.
fn explanation(v: &Value) -> std::result::Result<(u64, String), String> {
    let Value::Object(o) = v else {
        return Err("expected an object with index and description".into());
    };
    let index = o
        .get("index")
        .ok_or("no \"index\" field (the feature number)")?;
    let feature = match index {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    }
    .ok_or_else(|| format!("\"index\" is {index}, not a feature number"))?;
    let label = match o.get("description") {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Null) => String::new(),
        Some(other) => return Err(format!("\"description\" is {other}, not text")),
        None => return Err("no \"description\" field (the label)".into()),
    };
    Ok((feature, label))
}

/// `feature,label` rows; a first row whose first field is not a number is a header.
pub fn parse_csv(text: &str) -> std::result::Result<Vec<LabelEntry>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut out = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| format!("not valid CSV: {e}"))?;
        let at = record.position().map_or(i + 1, |p| p.line() as usize);
        let first = record.get(0).unwrap_or("").trim();
        if record.len() == 1 && first.is_empty() {
            continue; // a blank line
        }
        let feature = first.parse::<u64>();
        if i == 0 && feature.is_err() {
            continue; // the header
        }
        let feature = feature.map_err(|_| {
            format!("line {at}: \"{first}\" is not a feature number (expected feature,label)")
        })?;
        if record.len() != 2 {
            return Err(format!(
                "line {at}: expected 2 fields (feature,label), found {} (quote labels that contain commas)",
                record.len()
            ));
        }
        out.push(LabelEntry {
            at,
            feature,
            label: record.get(1).unwrap_or("").trim().to_string(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neuronpedia_lines_take_string_and_number_indexes() {
        let text = r#"{"modelId":"gpt2-small","layer":"0-res-jb","index":"14057","description":" the word money","explanationModelName":"gpt-4o-mini","typeName":"oai_token-act-pair"}

{"index": 3, "description": "Python keywords"}
"#;
        let e = parse_json_lines(text).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(
            (e[0].at, e[0].feature, e[0].label.as_str()),
            (1, 14057, "the word money")
        );
        assert_eq!(
            (e[1].at, e[1].feature, e[1].label.as_str()),
            (3, 3, "Python keywords")
        );
    }

    #[test]
    fn json_errors_name_the_element() {
        let e =
            parse_json_array(r#"[{"index":1,"description":"a"},{"index":"x1","description":"b"}]"#)
                .unwrap_err();
        assert!(e.starts_with("element 2:"), "{e}");
        let e = parse_json_lines("{\"index\":1}\n").unwrap_err();
        assert!(e.contains("line 1") && e.contains("description"), "{e}");
    }

    #[test]
    fn csv_with_header_quotes_and_commas() {
        let text = "feature,label\n7,\"money, coins\"\n9,  plain  \n";
        let e = parse_csv(text).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(
            (e[0].at, e[0].feature, e[0].label.as_str()),
            (2, 7, "money, coins")
        );
        assert_eq!(
            (e[1].at, e[1].feature, e[1].label.as_str()),
            (3, 9, "plain")
        );
        let e = parse_csv("1,a\n2,b,c\n").unwrap_err();
        assert!(e.starts_with("line 2:"), "{e}");
        let e = parse_csv("1,a\nx,b\n").unwrap_err();
        assert!(e.contains("\"x\" is not a feature number"), "{e}");
    }
}
