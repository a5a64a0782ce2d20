//! The home page (what the store holds) and label search.

use crate::html::{feature_link, num, table, thousands, url_part, Esc, Page};
use crate::state::AppState;
use crate::PageResult;
use std::fmt::Write;

/// Most label search hits shown.
pub const SEARCH_LIMIT: usize = 200;

pub fn page(st: &AppState) -> PageResult {
    let store = &st.store;
    let info = store.info()?;
    let mut p = Page::new("store");
    p.push(format!(
        "<h1>{}</h1><p class=\"stats\"><span>{} documents</span><span>{} tokens</span>\
         <span>{} labels</span><span>{}</span></p>",
        Esc(&info.path),
        thousands(info.documents),
        thousands(info.tokens),
        thousands(info.labels),
        if st.opts.writable {
            "writable: labels can be edited"
        } else {
            "read-only"
        }
    ));
    p.push(search_form(""));
    p.push("<h2>Dictionaries</h2>");
    if info.dictionaries.is_empty() {
        p.push("<p class=\"muted\">none: ingest one with <code>saedb ingest dictionary</code></p>");
    } else {
        let rows: Vec<Vec<String>> = info
            .dictionaries
            .iter()
            .map(|d| {
                vec![
                    format!(
                        "<b>{}</b> · <a href=\"/map/{}\">map</a> · <a href=\"/f/{}/0\">first feature</a>",
                        Esc(&d.name),
                        url_part(&d.name),
                        url_part(&d.name)
                    ),
                    format!("<span class=\"n\">{}</span>", thousands(d.d_sae.into())),
                    d.d_in.to_string(),
                    format!(
                        "{}{}",
                        d.architecture,
                        d.k.map(|k| format!(" k={k}")).unwrap_or_default()
                    ),
                    Esc(d.hook.as_deref().unwrap_or("-")).to_string(),
                    thousands(d.tokens_encoded),
                    thousands(d.nonzeros),
                ]
            })
            .collect();
        p.push(table(
            "dicts",
            &[
                "name",
                "features",
                "d_in",
                "architecture",
                "hook",
                "tokens encoded",
                "activations",
            ],
            &rows,
        ));
    }
    p.push("<h2>Vocabulary</h2>");
    match &info.vocabulary {
        None => p.push(
            "<p class=\"muted\">none (token effects need one: <code>saedb ingest vocab</code>)</p>",
        ),
        Some(v) => p.push(format!(
            "<p><code>{}</code>: {} tokens × {} from {}</p>",
            Esc(&v.tensor),
            thousands(v.n_vocab.into()),
            v.d_model,
            Esc(&v.source_path)
        )),
    }
    p.push("<h2>Attribution graphs</h2>");
    let graphs = store.graphs()?;
    if graphs.is_empty() {
        p.push("<p class=\"muted\">none</p>");
    } else {
        let rows: Vec<Vec<String>> = graphs
            .iter()
            .map(|g| {
                vec![
                    format!(
                        "<a href=\"/graph/{}\">{}</a>",
                        url_part(&g.name),
                        Esc(&g.name)
                    ),
                    thousands(g.nodes),
                    thousands(g.edges),
                    Esc(g.prompt.as_deref().unwrap_or("")).to_string(),
                ]
            })
            .collect();
        p.push(table(
            "graphs",
            &["name", "nodes", "edges", "prompt"],
            &rows,
        ));
    }
    p.push("<h2>Query console</h2>");
    p.push(super::console::form(""));
    p.push(format!(
        "<p class=\"note\">Statements run with a time limit of {} s; results show at most {} rows.</p>",
        num(st.opts.query_timeout.as_secs_f64()),
        thousands(st.opts.max_rows as u64)
    ));
    Ok(p.render())
}

pub fn search_form(q: &str) -> String {
    format!(
        "<form action=\"/search\" method=\"get\"><input name=\"q\" id=\"label-search\" value=\"{}\" \
         placeholder=\"search labels, e.g. money\" size=\"40\"> <button>Search labels</button></form>",
        Esc(q)
    )
}

pub fn search(st: &AppState, q: &str) -> PageResult {
    let mut p = Page::new(format!("labels matching {q}"));
    p.push("<h1>Label search</h1>");
    p.push(search_form(q));
    let q = q.trim();
    if q.is_empty() {
        p.push("<p class=\"muted\">Type part of a label.</p>");
        return Ok(p.render());
    }
    let hits = st.store.search_labels(q, SEARCH_LIMIT)?;
    let _ = write!(
        p.body,
        "<p id=\"hits\">{} feature{} labelled with “{}”{}</p>",
        hits.len(),
        if hits.len() == 1 { "" } else { "s" },
        Esc(q),
        if hits.len() == SEARCH_LIMIT {
            format!(" (the first {SEARCH_LIMIT})")
        } else {
            String::new()
        }
    );
    let rows: Vec<Vec<String>> = hits
        .iter()
        .map(|(f, label)| vec![feature_link(f, Some(label))])
        .collect();
    p.push(table("hits", &["feature"], &rows));
    Ok(p.render())
}
