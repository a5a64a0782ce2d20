//! HTML building blocks: escaping, the page frame, links to features, documents and nodes.
//!
//! Every text that comes from the store (tokens, labels, sources, node ids, query text) goes
//! through [`Esc`] or [`esc`]; nothing else writes store text into a page.

use saedb_engine::FeatureRef;
use std::fmt::{self, Display, Write};

/// Text escaped for HTML content and quoted attribute values.
pub struct Esc<'a>(pub &'a str);

impl Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut last = 0;
        for (i, c) in self.0.char_indices() {
            let rep = match c {
                '&' => "&amp;",
                '<' => "&lt;",
                '>' => "&gt;",
                '"' => "&quot;",
                '\'' => "&#39;",
                _ => continue,
            };
            f.write_str(&self.0[last..i])?;
            f.write_str(rep)?;
            last = i + 1;
        }
        f.write_str(&self.0[last..])
    }
}

/// [`Esc`] into a new string.
pub fn esc(s: &str) -> String {
    Esc(s).to_string()
}

/// A path segment or query value percent-encoded (everything but unreserved characters).
pub fn url_part(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The URL of a feature's page.
pub fn feature_url(f: &FeatureRef) -> String {
    format!("/f/{}/{}", url_part(&f.dict), f.index)
}

/// A link to a feature's page, with its name (label or frequent tokens) after it when known.
pub fn feature_link(f: &FeatureRef, name: Option<&str>) -> String {
    let mut s = format!(
        "<a class=\"feat\" href=\"{}\">{}</a>",
        feature_url(f),
        Esc(&f.to_string())
    );
    if let Some(n) = name {
        let _ = write!(s, " <span class=\"name\">{}</span>", Esc(n));
    }
    s
}

/// How a token is shown: whitespace made visible enough to read (a leading space as `␣`
/// would be noisy, so spaces stay, newlines become `↵`), empty tokens as `∅`.
pub fn token_text(t: &str) -> String {
    if t.is_empty() {
        return "∅".into();
    }
    t.replace('\n', "↵").replace('\t', "⇥")
}

pub use saedb_query::render::thousands;

/// A float with 4 significant digits (what the query renderer shows, so numbers match).
pub fn num(x: f64) -> String {
    saedb_query::render::format_float(x)
}

/// Everything a page needs around its body.
pub struct Page {
    pub title: String,
    pub body: String,
    /// Inline the stylesheet and script instead of linking them (exported pages).
    pub standalone: bool,
}

pub const CSS: &str = include_str!("../assets/saedb.css");
pub const JS: &str = include_str!("../assets/saedb.js");

impl Page {
    pub fn new(title: impl Into<String>) -> Page {
        Page {
            title: title.into(),
            body: String::new(),
            standalone: false,
        }
    }

    pub fn push(&mut self, s: impl AsRef<str>) {
        self.body.push_str(s.as_ref());
    }

    /// The whole document.
    pub fn render(&self) -> String {
        let (style, script) = if self.standalone {
            (
                format!("<style>{CSS}</style>"),
                format!("<script>{JS}</script>"),
            )
        } else {
            (
                "<link rel=\"stylesheet\" href=\"/static/saedb.css\">".to_string(),
                "<script src=\"/static/saedb.js\" defer></script>".to_string(),
            )
        };
        let nav = if self.standalone {
            "<nav><b>saedb</b></nav>".to_string()
        } else {
            "<nav><a href=\"/\"><b>saedb</b></a> \
             <form action=\"/search\" method=\"get\" class=\"inline\">\
             <input name=\"q\" placeholder=\"search labels\" aria-label=\"search labels\"></form> \
             <a href=\"/query\">query console</a></nav>"
                .to_string()
        };
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{} · saedb</title>{style}{script}</head><body>{nav}<main>{}</main></body></html>\n",
            Esc(&self.title),
            self.body
        )
    }
}

/// A simple table: header cells are plain text (escaped here), body cells are HTML.
pub fn table(class: &str, header: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = format!("<table class=\"{class}\"><thead><tr>");
    for h in header {
        let _ = write!(s, "<th>{}</th>", Esc(h));
    }
    s.push_str("</tr></thead><tbody>");
    for r in rows {
        s.push_str("<tr>");
        for c in r {
            let _ = write!(s, "<td>{c}</td>");
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
        assert_eq!(esc("plain ü"), "plain ü");
    }

    #[test]
    fn url_parts_are_percent_encoded() {
        assert_eq!(url_part("a b/<c>"), "a%20b%2F%3Cc%3E");
        assert_eq!(feature_url(&FeatureRef::new("L2", 7)), "/f/L2/7");
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
