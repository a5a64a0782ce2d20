//! Writing to stdout and stderr the way a command-line tool should: a closed pipe (`| head`) ends
//! the program quietly, and every error is reported in one line (statement diagnostics excepted:
//! they carry their own caret picture).

use std::fmt;
use std::io::{self, Write};

/// An error whose full text was already rendered (a statement diagnostic with its caret).
/// `report_error` prints it as is rather than as a one-line `error: …`.
#[derive(Debug)]
pub struct Rendered(pub String);

impl fmt::Display for Rendered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Rendered {}

/// Prints an error on stderr: `error: …` in one line, or a rendered diagnostic as it is.
pub fn report_error(e: &anyhow::Error) {
    if let Some(r) = e.downcast_ref::<Rendered>() {
        // `origin:line:col: error: message` and its caret picture, as rendered.
        eprintln!("{}", r.0.trim_end());
    } else {
        eprintln!("error: {}", crate::one_line(&format!("{e:#}")));
    }
}

/// Writes `s` to stdout and flushes. A closed pipe ends the process with status 0: the reader
/// has seen all it wanted.
pub fn print(s: &str) {
    let mut out = io::stdout().lock();
    let r = out.write_all(s.as_bytes()).and_then(|_| out.flush());
    if let Err(e) = r {
        if e.kind() == io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

/// `print` with a trailing newline unless `s` already ends in one.
pub fn println(s: &str) {
    if s.ends_with('\n') {
        print(s);
    } else {
        let mut owned = String::with_capacity(s.len() + 1);
        owned.push_str(s);
        owned.push('\n');
        print(&owned);
    }
}

/// Formats a byte count for people.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Formats a count with thousands separators: 1234567 → 1,234,567.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Lays out rows as aligned columns (left-aligned text, right-aligned numbers).
pub fn columns(header: &[&str], rows: &[Vec<String>], numeric: &[bool]) -> String {
    let n = header.len();
    let mut w: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(n) {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::from(" ");
        for (i, c) in cells.iter().enumerate().take(n) {
            let pad = w[i] - c.chars().count();
            if numeric.get(i).copied().unwrap_or(false) {
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            } else {
                s.push_str(c);
                if i + 1 < n {
                    s.push_str(&" ".repeat(pad));
                }
            }
            if i + 1 < n {
                s.push_str("  ");
            }
        }
        s.trim_end().to_string()
    };
    let mut out = String::new();
    out.push_str(&line(
        &header.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
    ));
    out.push('\n');
    out.push(' ');
    out.push_str(
        &w.iter()
            .map(|&x| "-".repeat(x))
            .collect::<Vec<_>>()
            .join("  "),
    );
    out.push('\n');
    for r in rows {
        out.push_str(&line(r));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn human_bytes_units() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(2048), "2.0 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.0 MiB");
    }

    #[test]
    fn columns_align() {
        let t = columns(
            &["name", "n"],
            &[
                vec!["a".into(), "10".into()],
                vec!["bbb".into(), "2".into()],
            ],
            &[false, true],
        );
        assert_eq!(t, " name   n\n ----  --\n a     10\n bbb    2\n");
    }
}
