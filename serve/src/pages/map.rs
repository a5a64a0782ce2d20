//! The dictionary map: `/map/L2`, every feature (or a stated sample) laid out by UMAP.

use crate::html::{feature_url, num, thousands, token_text, Esc, Page};
use crate::state::AppState;
use crate::svg::{self, Dot};
use crate::PageResult;
use saedb_engine::{FeatureMap, FeatureRef, NoProgress};
use std::collections::HashMap;

/// Labels are written beside the points when a map has at most this many labelled features.
const MAX_WRITTEN_LABELS: usize = 300;

/// A computed map with each point's most frequent tokens (what an unlabelled point shows).
struct MapData {
    map: FeatureMap,
    tokens: Vec<String>,
}

pub fn page(st: &AppState, dict: &str, focus: Option<u32>) -> PageResult {
    let info = st.store.dictionary(dict)?;
    let data = map_data(st, &info.name)?;
    let labels: HashMap<u32, String> = st
        .store
        .labels()?
        .into_iter()
        .filter(|(f, _)| f.dict == info.name)
        .map(|(f, l)| (f.index, l))
        .collect();
    let m = &data.map;
    let mut p = Page::new(format!("map of {}", info.name));
    p.push(format!(
        "<h1>Map of {}</h1><p class=\"note\" id=\"map-note\">{} of {} live features ({} in the dictionary){}; \
         UMAP over each feature's {} nearest neighbours by decoder cosine ({}), computed in {} s{}.</p>",
        Esc(&info.name),
        thousands(m.points.len() as u64),
        thousands(m.alive.into()),
        thousands(m.d_sae.into()),
        if m.sampled {
            format!(
                ": an evenly spaced sample, since maps lay out at most {}",
                thousands(saedb_engine::MAP_MAX_POINTS as u64)
            )
        } else {
            String::new()
        },
        m.neighbours,
        if m.sampled { "exact, within the sample" } else { "the HNSW index" },
        num(m.seconds),
        if m.from_cache { " (then cached)" } else { "" }
    ));
    p.push(
        "<p><input id=\"map-search\" placeholder=\"highlight features whose label or tokens contain…\" size=\"44\"> \
         <span id=\"map-count\" class=\"note\"></span> <button id=\"map-reset\" type=\"button\">reset zoom</button> \
         <span class=\"note\">scroll to zoom, drag to pan, click a point for its page</span></p>",
    );
    let write_labels = labels.len() <= MAX_WRITTEN_LABELS;
    let dots: Vec<Dot> = m
        .points
        .iter()
        .zip(&data.tokens)
        .map(|(pt, tokens)| {
            let f = FeatureRef::new(&info.name, pt.feature);
            let label = labels.get(&pt.feature);
            let me = focus == Some(pt.feature);
            Dot {
                x: pt.x,
                y: pt.y,
                href: feature_url(&f),
                name: format!("{f} {}", label.unwrap_or(tokens)),
                labelled: me || (write_labels && label.is_some()),
                me,
            }
        })
        .collect();
    let radius = if dots.len() > 2000 { 2.2 } else { 3.5 };
    p.push(svg::map(&dots, 860, radius));
    if let Some(f) = focus {
        if !m.points.iter().any(|pt| pt.feature == f) {
            p.push(format!(
                "<p class=\"note\">{}/{f} is not on this map (a dead feature, or not in the sample)</p>",
                Esc(&info.name)
            ));
        }
    }
    Ok(p.render())
}

/// The map of `dict` with its points' tokens (the engine keeps both computed: the map in the
/// store when it is writable and in memory, the tokens in its per-dictionary summary).
fn map_data(st: &AppState, dict: &str) -> PageResult<MapData> {
    let map = st.store.dictionary_map(dict, &NoProgress)?;
    let mut tokens = Vec::with_capacity(map.points.len());
    for pt in &map.points {
        let t = st.store.name_tokens(&FeatureRef::new(dict, pt.feature))?;
        tokens.push(
            t.iter()
                .map(|t| format!("“{}”", token_text(&t.token)))
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    Ok(MapData { map, tokens })
}
