//! A document: `/doc/17` (its tokens with how many features fire on each) and
//! `/doc/17/at/5` (the same, with the features at token 5 listed).

use super::Names;
use crate::html::{num, table, thousands, token_text, Esc, Page};
use crate::state::AppState;
use crate::PageResult;
use std::fmt::Write;

/// Longest document drawn whole; longer ones show a window around the selected token.
const MAX_TOKENS_SHOWN: usize = 2_000;
/// Features listed at one token.
const MAX_FEATURES_AT: usize = 500;

pub fn page(st: &AppState, doc: u32, at: Option<u32>) -> PageResult {
    let store = &st.store;
    let d = store.document(doc)?;
    if let Some(pos) = at {
        if pos as usize >= d.tokens.len() {
            return Err(saedb_engine::Error::PositionOutOfRange {
                doc: doc.into(),
                pos: pos.into(),
                len: d.tokens.len(),
            }
            .into());
        }
    }
    let mut p = Page::new(match at {
        Some(pos) => format!("doc {doc} at {pos}"),
        None => format!("doc {doc}"),
    });
    p.push(format!(
        "<h1>Document {doc}</h1><p class=\"stats\"><span>source <b>{}</b></span><span>{} tokens</span>{}</p>",
        Esc(d.source.as_deref().unwrap_or(saedb_engine::NO_SOURCE)),
        thousands(d.tokens.len() as u64),
        if doc > 0 {
            format!("<span><a href=\"/doc/{}\">previous</a></span>", doc - 1)
        } else {
            String::new()
        }
    ) + &format!("<span><a href=\"/doc/{}\">next</a></span>", doc.saturating_add(1)));
    p.push("<p class=\"note\">Each token shows how many features fire on it (all dictionaries); click a token for the features at it.</p>");
    let centre = at.unwrap_or(0) as usize;
    let lo = centre
        .saturating_sub(MAX_TOKENS_SHOWN / 2)
        .min(d.tokens.len().saturating_sub(MAX_TOKENS_SHOWN));
    let hi = (lo + MAX_TOKENS_SHOWN).min(d.tokens.len());
    let mut text = String::from("<div class=\"doc\" id=\"doc\">");
    // Tokens read as text: WordPiece words spaced, their `##` pieces glued on (the shell's rule).
    let pieces = saedb_query::render::reading_pieces(&d.tokens[lo..hi]);
    for ((i, _), piece) in d.tokens.iter().enumerate().take(hi).skip(lo).zip(&pieces) {
        text.push_str(piece.before);
        let n = store.features_at(doc, i as u32, None)?.len();
        let class = if at == Some(i as u32) {
            "tok sel"
        } else {
            "tok"
        };
        let _ = write!(
            text,
            "<a class=\"{class}\" id=\"t{i}\" href=\"/doc/{doc}/at/{i}\" title=\"position {i}: {n} features\">{}<sup>{n}</sup></a>",
            Esc(&token_text(&piece.text))
        );
    }
    text.push_str("</div>");
    if hi - lo < d.tokens.len() {
        let _ = write!(
            text,
            "<p class=\"note\">tokens {lo}–{} of {} shown</p>",
            hi - 1,
            d.tokens.len()
        );
    }
    p.push(text);
    if let Some(pos) = at {
        features_at(&mut p, st, doc, pos, &d.tokens[pos as usize])?;
    }
    Ok(p.render())
}

fn features_at(p: &mut Page, st: &AppState, doc: u32, pos: u32, token: &str) -> PageResult<()> {
    let feats = st.store.features_at(doc, pos, None)?;
    p.push(format!(
        "<h2 id=\"features-at\">Features at {}:{} <span class=\"pill\">{}</span> <span class=\"note\">({} features, as FEATURES AT DOC {doc} POS {pos})</span></h2>",
        doc,
        pos,
        Esc(&token_text(token)),
        feats.len()
    ));
    let mut names = Names::new(&st.store);
    let rows: Vec<Vec<String>> = feats
        .iter()
        .take(MAX_FEATURES_AT)
        .map(|a| {
            vec![
                format!("<span class=\"n\">{}</span>", num(a.value as f64)),
                names.link(&a.feature),
            ]
        })
        .collect();
    p.push(table("at", &["value", "feature"], &rows));
    if feats.len() > MAX_FEATURES_AT {
        p.push(format!(
            "<p class=\"note\">the strongest {MAX_FEATURES_AT} shown</p>"
        ));
    }
    Ok(())
}
