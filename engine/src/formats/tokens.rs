//! Tokens as JSON lines, one document a line:
//! `{"doc": 0, "tokens": ["The", " cat"], "token_ids": [464, 3797], "text": "...", "source": "..."}`.
//! `token_ids`, `text` and `source` are optional; blank lines are skipped.

use crate::types::Document;
use crate::{Error, Result};
use serde::Deserialize;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// Longest line accepted.
pub const MAX_LINE: usize = 64 << 20;

#[derive(Deserialize)]
struct Line {
    doc: Option<u32>,
    tokens: Option<Vec<String>>,
    token_ids: Option<Vec<u32>>,
    text: Option<String>,
    source: Option<String>,
}

/// Reads a tokens JSONL file. Errors name the file and the line number.
pub fn read_tokens(path: &Path) -> Result<Vec<Document>> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    read_tokens_from(path, BufReader::with_capacity(1 << 16, f), MAX_LINE)
}

fn read_tokens_from<R: BufRead>(path: &Path, mut r: R, max_line: usize) -> Result<Vec<Document>> {
    let mut docs = Vec::new();
    let mut seen: HashMap<u32, usize> = HashMap::new();
    let mut buf = Vec::new();
    let mut lineno = 0usize;
    loop {
        buf.clear();
        lineno += 1;
        let got = (&mut r)
            .take(max_line as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| Error::io(path, e))?;
        if got == 0 {
            break;
        }
        let bad = |m: String| Error::bad_input(path, format!("line {lineno}: {m}"));
        let mut line: &[u8] = &buf;
        if let Some(l) = line.strip_suffix(b"\n") {
            line = l;
        } else if buf.len() > max_line {
            return Err(bad(format!("line is longer than {}", human(max_line))));
        }
        if let Some(l) = line.strip_suffix(b"\r") {
            line = l;
        }
        if line.len() > max_line {
            return Err(bad(format!("line is longer than {}", human(max_line))));
        }
        let text = std::str::from_utf8(line).map_err(|e| {
            bad(format!(
                "invalid UTF-8 at byte {} of the line",
                e.valid_up_to()
            ))
        })?;
        if text.trim().is_empty() {
            continue;
        }
        let l: Line = serde_json::from_str(text).map_err(|e| {
            bad(format!(
                "invalid JSON ({e}); expected an object with \"doc\", \"tokens\" and optional \"token_ids\", \"text\", \"source\""
            ))
        })?;
        let doc = l.doc.ok_or_else(|| bad("missing field \"doc\"".into()))?;
        let tokens = l
            .tokens
            .ok_or_else(|| bad("missing field \"tokens\"".into()))?;
        let token_ids = l.token_ids.unwrap_or_default();
        if !token_ids.is_empty() && token_ids.len() != tokens.len() {
            return Err(bad(format!(
                "document {doc} has {} tokens but {} token_ids",
                tokens.len(),
                token_ids.len()
            )));
        }
        if let Some(first) = seen.insert(doc, lineno) {
            return Err(bad(format!(
                "duplicate doc id {doc} (first on line {first})"
            )));
        }
        docs.push(Document {
            doc,
            tokens,
            token_ids,
            text: l.text,
            source: l.source,
        });
    }
    Ok(docs)
}

fn human(n: usize) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &[u8]) -> std::result::Result<Vec<Document>, String> {
        read_tokens_from(Path::new("t.jsonl"), s, 100).map_err(|e| e.to_string())
    }

    #[test]
    fn lines() {
        let d = parse(b"{\"doc\":3,\"tokens\":[\"a\",\"b\"],\"token_ids\":[1,2]}\r\n\n  \n{\"doc\":1,\"tokens\":[],\"text\":\"x\",\"source\":\"s\"}").unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].token_ids, vec![1, 2]);
        assert_eq!(d[1].text.as_deref(), Some("x"));
        let e =
            parse(b"{\"doc\":3,\"tokens\":[\"a\"]}\n{\"doc\":3,\"tokens\":[\"a\"]}\n").unwrap_err();
        assert!(
            e.contains("t.jsonl") && e.contains("line 2") && e.contains("duplicate doc id 3"),
            "{e}"
        );
        let e = parse(b"{\"doc\":3,\"tokens\":[\"a\"],\"token_ids\":[1,2]}").unwrap_err();
        assert!(
            e.contains("line 1") && e.contains("1 tokens but 2 token_ids"),
            "{e}"
        );
        let e = parse(b"\n{\"tokens\":[\"a\"]}").unwrap_err();
        assert!(
            e.contains("line 2") && e.contains("missing field \"doc\""),
            "{e}"
        );
        let e = parse(b"{\"doc\":1,\"tokens\":[\"\xff\"]}").unwrap_err();
        assert!(e.contains("invalid UTF-8"), "{e}");
        let e = parse(b"{\"doc\":1,").unwrap_err();
        assert!(e.contains("invalid JSON"), "{e}");
        let e = parse(b"{\"doc\":-1,\"tokens\":[]}").unwrap_err();
        assert!(e.contains("invalid JSON"), "{e}");
        let long = format!("{{\"doc\":1,\"tokens\":[\"{}\"]}}\n", "a".repeat(200));
        let e = parse(long.as_bytes()).unwrap_err();
        assert!(
            e.contains("line 1") && e.contains("longer than 100 bytes"),
            "{e}"
        );
    }
}
