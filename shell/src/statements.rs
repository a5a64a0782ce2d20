//! Running statements and printing their results: `saedb query`, `saedb run`, and the shared
//! printer the shell and the demo use.

use crate::cli::{OutputArgs, OutputFormat};
use crate::output::{self, Rendered};
use anyhow::{Context, Result};
use saedb_engine::Store;
use saedb_query::{render, render_table, Format, QueryError, ResultSet, Session};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How results are printed.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    pub format: OutputFormat,
    pub color: bool,
    pub timer: bool,
    /// Results printed so far (to separate them).
    printed: usize,
}

impl Printer {
    pub fn new(format: OutputFormat, color: bool, timer: bool) -> Printer {
        Printer {
            format,
            color,
            timer,
            printed: 0,
        }
    }

    pub fn from_args(o: &OutputArgs) -> Printer {
        Printer::new(o.format, o.color_enabled(), o.timer)
    }

    /// A result as text in the current format.
    pub fn render(&self, rs: &ResultSet) -> String {
        match self.format {
            OutputFormat::Table => render_table(rs, self.color),
            OutputFormat::Json => render(rs, Format::Json),
            OutputFormat::Csv => render(rs, Format::Csv),
        }
    }

    /// Prints a result on stdout, separated from the previous one.
    pub fn print(&mut self, rs: &ResultSet) {
        let text = self.render(rs);
        if text.is_empty() {
            return;
        }
        if self.printed > 0 {
            match self.format {
                OutputFormat::Table => output::print("\n"),
                OutputFormat::Csv => output::print("\r\n"),
                OutputFormat::Json => {}
            }
        }
        output::print(&text);
        self.printed += 1;
    }

    /// Prints how long a statement took, when the timer is on (stderr: stdout stays parseable).
    pub fn time(&self, d: Duration) {
        if self.timer {
            eprintln!("time: {}", human_duration(d));
        }
    }

    /// Forgets earlier results (the shell separates statements by its prompt instead).
    pub fn reset(&mut self) {
        self.printed = 0;
    }
}

pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1e-3 {
        format!("{:.0} µs", s * 1e6)
    } else if s < 1.0 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

/// Runs every statement of `source`, printing each result as its statement finishes. On the first
/// error returns it (statements before it have run and printed).
pub fn execute_printing(
    session: &mut Session,
    source: &str,
    printer: &mut Printer,
) -> Result<usize, QueryError> {
    let mut t = Instant::now();
    session.execute_with(source, |rs| {
        let took = t.elapsed();
        printer.print(&rs);
        printer.time(took);
        t = Instant::now();
    })
}

/// `saedb query STORE "STATEMENT"`.
pub fn run_query(store: Store, statement: &str, o: &OutputArgs) -> Result<()> {
    let mut session = Session::new(Arc::new(store));
    let mut printer = Printer::from_args(o);
    run_source(&mut session, statement, "<query>", &mut printer)
}

/// `saedb run STORE script.sdq`.
pub fn run_script(store: Store, script: &Path, o: &OutputArgs) -> Result<()> {
    let (source, origin) = read_script(script)?;
    let mut session = Session::new(Arc::new(store));
    let mut printer = Printer::from_args(o);
    run_source(&mut session, &source, &origin, &mut printer)
}

/// Reads a script (`-` is stdin); returns its text and the name diagnostics use for it.
pub fn read_script(script: &Path) -> Result<(String, String)> {
    if script.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("<stdin>: cannot read the script")?;
        return Ok((s, "<stdin>".to_string()));
    }
    let bytes = std::fs::read(script)
        .map_err(|e| anyhow::anyhow!("{}: {}", script.display(), io_reason(&e)))?;
    let source = String::from_utf8(bytes).map_err(|e| {
        let (line, col) = saedb_query::error::line_col(
            &String::from_utf8_lossy(&e.as_bytes()[..e.utf8_error().valid_up_to()]),
            usize::MAX,
        );
        anyhow::anyhow!("{}:{line}:{col}: not valid UTF-8 text", script.display())
    })?;
    Ok((source, script.display().to_string()))
}

/// An io::Error's reason without the "(os error 2)" noise.
pub fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::IsADirectory => "is a directory, not a file".into(),
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_string(),
                None => s,
            }
        }
    }
}

/// Runs a source and turns a statement error into its rendered diagnostic.
pub fn run_source(
    session: &mut Session,
    source: &str,
    origin: &str,
    printer: &mut Printer,
) -> Result<()> {
    match execute_printing(session, source, printer) {
        Ok(_) => Ok(()),
        Err(e) => Err(Rendered(e.render(source, origin)).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(human_duration(Duration::from_micros(12)), "12 µs");
        assert_eq!(human_duration(Duration::from_millis(12)), "12.0 ms");
        assert_eq!(human_duration(Duration::from_secs(2)), "2.00 s");
    }
}
