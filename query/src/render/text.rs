//! Values as text for people: numbers, token sequences read as text, sparklines.

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

/// Formats a byte count for people: `12 B`, `2.0 KiB`, `3.0 MiB`.
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

/// A WordPiece continuation (`##ly`): a piece glued to the token before it.
fn continuation(token: &str) -> Option<&str> {
    token.strip_prefix("##").filter(|rest| !rest.is_empty())
}

/// Tokens read as text, the token at `center` (if any) wrapped in `open`/`close`.
///
/// WordPiece tokens (BERT-style, no spaces of their own) are joined with spaces, and a
/// continuation piece is glued to the token before it without its `##`: `sign ##ly` reads
/// `signly`, and with the second piece marked, `sign[ly]`. A continuation that opens the sequence
/// (a word cut by the window's edge) is shown as `…ly`. Tokens that carry their own spaces
/// (GPT-style ` the`, `Ġthe`, `▁the`) are concatenated as they are. Control characters are
/// escaped (`\n`), so the text stays on one line.
pub fn context_text(tokens: &[String], center: Option<usize>, open: &str, close: &str) -> String {
    tokens_as_text(tokens, |i, shown| {
        if center == Some(i) {
            format!("{open}{shown}{close}")
        } else {
            shown.to_string()
        }
    })
}

/// Tokens read as text as [`context_text`] reads them, each token's piece (its `##` or `Ġ` gone,
/// control characters escaped) passed through `mark(position, piece)`.
pub(crate) fn tokens_as_text(
    tokens: &[String],
    mut mark: impl FnMut(usize, &str) -> String,
) -> String {
    let mut out = String::new();
    for (i, piece) in reading_pieces(tokens).into_iter().enumerate() {
        out.push_str(piece.before);
        out.push_str(&mark(i, &escape_controls(&piece.text)));
    }
    out
}

/// One token as it reads in running text (see [`context_text`]): what goes before it (a space,
/// `…` for a word cut by the window's edge, or nothing) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadingPiece {
    pub before: &'static str,
    pub text: String,
}

/// The tokens of a window as they read in running text, one piece per token (the rule of
/// [`context_text`], for renderers that mark up each token, like the web pages).
pub fn reading_pieces(tokens: &[String]) -> Vec<ReadingPiece> {
    let spaced = tokens
        .iter()
        .any(|t| t.starts_with(' ') || t.starts_with('Ġ') || t.starts_with('▁'));
    tokens
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let (before, text) = if spaced {
                ("", t.replace(['Ġ', '▁'], " "))
            } else {
                match continuation(t) {
                    Some(rest) if i == 0 => ("…", rest.to_string()),
                    Some(rest) => ("", rest.to_string()),
                    None if i > 0 => (" ", t.clone()),
                    None => ("", t.clone()),
                }
            };
            ReadingPiece { before, text }
        })
        .collect()
}

/// Control characters as escapes (`\n`, `\u{1b}`), so that a value stays on its line.
pub(crate) fn escape_controls(s: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn wordpiece_reads_as_text() {
        let t = toks("max compares numerical ##ly and");
        assert_eq!(
            context_text(&t, None, "[", "]"),
            "max compares numerically and"
        );
        assert_eq!(
            context_text(&t, Some(3), "[", "]"),
            "max compares numerical[ly] and"
        );
        assert_eq!(
            context_text(&t, Some(2), "[", "]"),
            "max compares [numerical]ly and"
        );
        // A word cut by the window's start; a lone `##` is a token of its own.
        let t = toks("##nd . ## >");
        assert_eq!(context_text(&t, Some(1), "<", ">"), "…nd <.> ## >");
    }

    #[test]
    fn spaced_tokens_are_concatenated() {
        let t: Vec<String> = ["The", " cat", "Ġsat", "\n"].map(String::from).to_vec();
        assert_eq!(context_text(&t, Some(1), "[", "]"), "The[ cat] sat\\n");
    }

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
}
