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
        eprintln!("error: {}", one_line(&format!("{e:#}")));
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

/// Joins a multi-line message into one line.
pub fn one_line(s: &str) -> String {
    s.split('\n')
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
