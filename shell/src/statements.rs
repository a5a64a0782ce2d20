//! Running statements and printing their results: `saedb query`, `saedb run`, and the shared
//! printer the shell and the demo use.

use crate::cli::{OutputArgs, OutputFormat};
use crate::output::{self, Rendered};
use anyhow::{Context, Result};
use saedb_engine::Store;
use saedb_query::{
    render, render_table, Format, QueryError, ResultKind, ResultSet, Session, Value,
};
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

    /// A result as text in the current format (with a bar chart under a DESCRIBE in table form).
    pub fn render(&self, rs: &ResultSet) -> String {
        match self.format {
            OutputFormat::Table => {
                let mut s = render_table(rs, self.color);
                if rs.kind == ResultKind::Describe {
                    for row in 0..rs.rows.len() {
                        if let Some(Value::Histogram(bins)) = rs.get(row, "histogram") {
                            s.push_str(&histogram_chart(bins, 40, 12, self.color));
                        }
                    }
                }
                s
            }
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

const EIGHTHS: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];

/// A horizontal bar chart of a feature's activation histogram: one row per (merged) bin,
/// at most `max_rows` rows, bars `width` characters at most.
pub fn histogram_chart(
    bins: &[(f32, f32, u64)],
    width: usize,
    max_rows: usize,
    color: bool,
) -> String {
    if bins.is_empty() {
        return String::new();
    }
    // Merge consecutive bins so that at most `max_rows` remain.
    let per = bins.len().div_ceil(max_rows.max(1));
    let rows: Vec<(f32, f32, u64)> = bins
        .chunks(per)
        .map(|c| (c[0].0, c[c.len() - 1].1, c.iter().map(|b| b.2).sum()))
        .collect();
    let total: u64 = rows.iter().map(|r| r.2).sum();
    let max = rows.iter().map(|r| r.2).max().unwrap_or(1).max(1);
    let edge = |x: f32| saedb_query::render::format_float(f64::from(x));
    let lo_w = rows.iter().map(|r| edge(r.0).len()).max().unwrap_or(1);
    let hi_w = rows.iter().map(|r| edge(r.1).len()).max().unwrap_or(1);
    let mut out = format!(
        "activation histogram ({} activations, log-spaced bins)\n",
        crate::output::thousands(total)
    );
    for (lo, hi, n) in rows {
        let eighths = ((n as f64 / max as f64) * (width * 8) as f64).round() as usize;
        let eighths = if n > 0 { eighths.max(1) } else { 0 };
        let mut bar = "█".repeat(eighths / 8);
        if eighths % 8 > 0 {
            bar.push(EIGHTHS[eighths % 8]);
        }
        let pad = width + 1 - bar.chars().count().min(width + 1);
        let bar = if color {
            format!("\x1b[36m{bar}\x1b[0m")
        } else {
            bar
        };
        out.push_str(&format!(
            "  {:>lo_w$} .. {:<hi_w$} │{bar}{} {n}\n",
            edge(lo),
            edge(hi),
            " ".repeat(pad)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_scales_to_the_largest_bin() {
        let bins = [(0.5, 0.6, 10), (0.6, 0.7, 5), (0.7, 0.8, 1)];
        let c = histogram_chart(&bins, 8, 12, false);
        let lines: Vec<&str> = c.lines().collect();
        assert_eq!(lines.len(), 4, "{c}");
        assert!(lines[0].contains("16 activations"), "{c}");
        assert!(lines[1].contains("████████"), "{c}");
        assert!(lines[2].contains("████ "), "{c}");
        assert!(lines[1].ends_with(" 10"), "{c}");
        assert!(
            lines[3].contains('▊') || lines[3].contains('▉') || lines[3].contains('▋'),
            "{c}"
        );
    }

    #[test]
    fn chart_merges_bins() {
        let bins: Vec<(f32, f32, u64)> = (0..30).map(|i| (i as f32, i as f32 + 1.0, 1)).collect();
        let c = histogram_chart(&bins, 10, 12, false);
        assert!(c.lines().count() <= 13, "{c}");
        assert!(c.contains("30 activations"), "{c}");
        assert!(histogram_chart(&[], 10, 12, false).is_empty());
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(Duration::from_micros(12)), "12 µs");
        assert_eq!(human_duration(Duration::from_millis(12)), "12.0 ms");
        assert_eq!(human_duration(Duration::from_secs(2)), "2.00 s");
    }
}
