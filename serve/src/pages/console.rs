//! The query console: any statement of the language, results as tables, errors with the caret.

use crate::html::{feature_url, num, thousands, token_text, Esc, Page};
use crate::state::AppState;
use saedb_engine::FeatureRef;
use saedb_query::{ResultSet, Session, Value};
use std::fmt::Write;

/// What running a console request gave: the results of the statements that ran, then the
/// error that stopped it, if any (rendered with its caret).
pub struct Outcome {
    pub results: Vec<ResultSet>,
    pub error: Option<String>,
}

impl Outcome {
    pub fn failed(message: String) -> Outcome {
        Outcome {
            results: Vec::new(),
            error: Some(message),
        }
    }
}

/// Runs every statement of `text` in `session`, a fresh one (USE and SET last for one request).
pub fn run(st: &AppState, mut session: Session, text: &str) -> Outcome {
    if !st.opts.writable && writes(text) {
        return Outcome::failed(
            "this server is read-only: LABEL is refused (start it with `saedb serve --writable`)"
                .into(),
        );
    }
    let mut results = Vec::new();
    let error = session
        .execute_with(text, |rs| results.push(rs))
        .err()
        .map(|e| e.render(text, "query"));
    Outcome { results, error }
}

/// Whether any statement of `text` changes the store (LABEL). Text that does not parse is left
/// to the session, which reports the error with its caret.
fn writes(text: &str) -> bool {
    saedb_query::parse(text).is_ok_and(|stmts| {
        stmts
            .iter()
            .any(|s| matches!(s.statement, saedb_query::ast::Statement::Label { .. }))
    })
}

pub fn form(text: &str) -> String {
    format!(
        "<form action=\"/query\" method=\"post\"><textarea name=\"q\" id=\"console\" rows=\"4\" \
         placeholder=\"DESCRIBE L2/7; TOP 10 ACTIVATIONS OF L2/7 CONTEXT 6;\">{}</textarea>\
         <br><button id=\"run\">Run</button></form>",
        Esc(text)
    )
}

pub fn page(st: &AppState, text: Option<&str>, outcome: Option<Outcome>) -> String {
    let mut p = Page::new("query console");
    p.push("<h1>Query console</h1>");
    p.push(form(text.unwrap_or("")));
    p.push(format!(
        "<p class=\"note\">Each request runs in a fresh session (USE and SET last for one request). \
         Time limit {} s; at most {} rows a result.{}</p>",
        num(st.opts.query_timeout.as_secs_f64()),
        thousands(st.opts.max_rows as u64),
        if st.opts.writable {
            ""
        } else {
            " The server is read-only: LABEL fails."
        }
    ));
    if let Some(o) = outcome {
        let known: Vec<String> = st
            .store
            .dictionaries()
            .into_iter()
            .map(|d| d.name)
            .collect();
        for rs in &o.results {
            p.push(result_html(rs, st.opts.max_rows, &known));
        }
        if let Some(e) = o.error {
            p.push(format!(
                "<pre class=\"error\" id=\"query-error\">{}</pre>",
                Esc(&e)
            ));
        }
    }
    p.render()
}

/// One result set as a table; feature names and (doc, pos) pairs become links.
pub fn result_html(rs: &ResultSet, max_rows: usize, dicts: &[String]) -> String {
    let mut s = String::from("<section class=\"result\">");
    if let Some(t) = &rs.title {
        let _ = write!(s, "<h2>{}</h2>", Esc(t));
    }
    if !rs.columns.is_empty() {
        s.push_str("<table class=\"rs\"><thead><tr>");
        for c in &rs.columns {
            let _ = write!(s, "<th>{}</th>", Esc(c));
        }
        s.push_str("</tr></thead><tbody>");
        let doc_col = rs.column("doc");
        let pos_col = rs.column("pos");
        for row in rs.rows.iter().take(max_rows) {
            s.push_str("<tr>");
            for (i, v) in row.iter().enumerate() {
                let cell = cell_html(v, dicts);
                let linked = match (Some(i) == pos_col, doc_col.and_then(|d| row.get(d)), v) {
                    (true, Some(Value::Int(d)), Value::Int(p)) => {
                        format!("<a href=\"/doc/{d}/at/{p}\">{cell}</a>")
                    }
                    _ => cell,
                };
                let class = if matches!(v, Value::Int(_) | Value::Float(_)) {
                    " class=\"n\""
                } else {
                    ""
                };
                let _ = write!(s, "<td{class}>{linked}</td>");
            }
            s.push_str("</tr>");
        }
        s.push_str("</tbody></table>");
        if rs.rows.len() > max_rows {
            let _ = write!(
                s,
                "<p class=\"note\">showing {} of {} rows</p>",
                thousands(max_rows as u64),
                thousands(rs.rows.len() as u64)
            );
        }
    }
    if let Some(n) = &rs.note {
        let _ = write!(s, "<p class=\"note\">{}</p>", Esc(n));
    }
    s.push_str("</section>");
    s
}

fn cell_html(v: &Value, dicts: &[String]) -> String {
    match v {
        Value::Null => "<span class=\"muted\">-</span>".into(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => num(*f),
        Value::Bool(b) => b.to_string(),
        Value::Str(t) => match as_feature(t, dicts) {
            Some(f) => format!(
                "<a class=\"feat\" href=\"{}\">{}</a>",
                feature_url(&f),
                Esc(t)
            ),
            None => Esc(t).to_string(),
        },
        Value::List(items) => items
            .iter()
            .map(|i| cell_html(i, dicts))
            .collect::<Vec<_>>()
            .join(", "),
        Value::Context { tokens, center } => {
            let mut s = String::from("<span class=\"ctx\">");
            for (i, t) in tokens.iter().enumerate() {
                let class = if i == *center { "tok hit" } else { "tok" };
                let _ = write!(s, "<span class=\"{class}\">{}</span>", Esc(&token_text(t)));
            }
            s.push_str("</span>");
            s
        }
        Value::Histogram(bins) => crate::svg::histogram(bins, 240, 40),
    }
}

/// `L2/123` naming a dictionary of the store.
fn as_feature(t: &str, dicts: &[String]) -> Option<FeatureRef> {
    let (d, i) = t.rsplit_once('/')?;
    let i = i.parse::<u32>().ok()?;
    dicts.iter().any(|x| x == d).then(|| FeatureRef::new(d, i))
}
