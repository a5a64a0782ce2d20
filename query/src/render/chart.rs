//! The bar chart of a feature's activation histogram, drawn under a DESCRIBE in table form.

use super::text::{format_float, thousands};

const EIGHTHS: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];

/// A horizontal bar chart of a histogram `(lower edge, upper edge, count)`: one row per (merged)
/// bin, at most `max_rows` rows, bars `width` characters at most (in eighths of a character).
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
    let edge = |x: f32| format_float(f64::from(x));
    let lo_w = rows.iter().map(|r| edge(r.0).len()).max().unwrap_or(1);
    let hi_w = rows.iter().map(|r| edge(r.1).len()).max().unwrap_or(1);
    let mut out = format!(
        "activation histogram ({} activations, log-spaced bins)\n",
        thousands(total)
    );
    for (lo, hi, n) in rows {
        let bar = bar(n, max, width);
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

/// A bar of `n` out of `max`, `width` characters for `max`; never empty for a bin that has counts.
fn bar(n: u64, max: u64, width: usize) -> String {
    let eighths = ((n as f64 / max as f64) * (width * 8) as f64).round() as usize;
    let eighths = if n > 0 { eighths.max(1) } else { 0 };
    let mut bar = "█".repeat(eighths / 8);
    if eighths % 8 > 0 {
        bar.push(EIGHTHS[eighths % 8]);
    }
    bar
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
}
