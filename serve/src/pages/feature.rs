//! The feature page: `/f/L2/1234`.

use super::{context_html, Names};
use crate::html::{feature_url, num, table, thousands, token_text, url_part, Esc, Page};
use crate::state::AppState;
use crate::svg::{self, Dot};
use crate::{PageError, PageResult};
use saedb_engine::{FeatureRef, NoProgress, QuantileQuery, Store, TokenActivation};
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

/// Top activations shown, with this many tokens of context on each side.
pub const TOP_SHOWN: usize = 20;
pub const CONTEXT: usize = 10;
/// Activation quantiles sampled, and samples from each.
pub const QUANTILES: usize = 5;
pub const PER_QUANTILE: usize = 3;
/// Neighbours listed per dictionary, and laid out on the neighbourhood map.
pub const NEIGHBOURS_SHOWN: usize = 10;
pub const MAP_NEIGHBOURS: usize = 24;
/// Token effects listed each way.
pub const EFFECTS_SHOWN: usize = 10;

pub fn page(st: &AppState, f: &FeatureRef) -> PageResult {
    build(&st.store, f, st.opts.writable, false, &mut Laps::default())
}

/// Milliseconds each part of a feature page took, in page order: the profile behind the
/// page-time benchmark (`serve/examples/feature_pages.rs`).
pub type Profile = Vec<(&'static str, f64)>;

/// The feature page as the server builds it, with the time each part took.
pub fn feature_page_profiled(
    store: &Arc<Store>,
    f: &FeatureRef,
) -> Result<(String, Profile), PageError> {
    let mut laps = Laps::default();
    let html = build(store, f, false, false, &mut laps)?;
    Ok((html, laps.done))
}

/// Times the parts of a page one after the other.
struct Laps {
    since: std::time::Instant,
    done: Profile,
}

impl Default for Laps {
    fn default() -> Laps {
        Laps {
            since: std::time::Instant::now(),
            done: Vec::new(),
        }
    }
}

impl Laps {
    fn lap(&mut self, part: &'static str) {
        let now = std::time::Instant::now();
        self.done
            .push((part, (now - self.since).as_secs_f64() * 1e3));
        self.since = now;
    }
}

/// The feature page as one self-contained HTML file (`saedb export html`): stylesheet and
/// script inline, no form, links to other pages kept as plain text.
pub fn feature_page_standalone(store: &Arc<Store>, f: &FeatureRef) -> Result<String, PageError> {
    let html = build(store, f, false, true, &mut Laps::default())?;
    Ok(html.replace("href=\"/", "data-href=\"/"))
}

fn build(
    store: &Arc<Store>,
    f: &FeatureRef,
    writable: bool,
    standalone: bool,
    laps: &mut Laps,
) -> PageResult {
    let stats = store.feature_stats(f)?;
    let acts = store.activations_of(f)?;
    let values: HashMap<(u32, u32), f32> = acts.iter().map(|a| ((a.doc, a.pos), a.value)).collect();
    laps.lap("activations");
    let mut names = Names::new(store);
    let mut p = Page::new(f.to_string());
    p.standalone = standalone;

    let shown_name = match &stats.label {
        Some(l) => format!("<span id=\"label\">{}</span>", Esc(l)),
        None => match store.frequent_tokens(f, 5)? {
            t if t.is_empty() => {
                "<span class=\"muted\" id=\"label\">unlabelled; never fires</span>".into()
            }
            t => format!(
                "<span class=\"muted\" id=\"label\">unlabelled; fires most on {}</span>",
                t.iter()
                    .map(|t| format!(
                        "<span class=\"pill\">{}</span> ×{}",
                        Esc(&token_text(&t.token)),
                        t.count
                    ))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        },
    };
    p.push(format!(
        "<h1><span class=\"feat\" id=\"feature\">{}</span> {shown_name}</h1>",
        Esc(&f.to_string())
    ));
    if writable {
        p.push(format!(
            "<form method=\"post\" action=\"{}/label\"><input name=\"label\" id=\"label-input\" size=\"50\" \
             value=\"{}\" placeholder=\"a label for this feature\"> <button>Save label</button></form>",
            feature_url(f),
            Esc(stats.label.as_deref().unwrap_or(""))
        ));
    }
    p.push(format!(
        "<p class=\"stats\"><span>activations <b id=\"count\">{}</b></span>\
         <span>density <b id=\"density\">{}</b></span><span>max <b id=\"max\">{}</b></span>\
         <span>mean <b id=\"mean\">{}</b></span>{}</p>",
        thousands(stats.count),
        num(stats.frequency),
        num(stats.max as f64),
        num(stats.mean),
        if standalone {
            String::new()
        } else {
            format!(
                "<span><a href=\"/map/{}?focus={}\">on the map of {}</a></span>",
                url_part(&f.dict),
                f.index,
                Esc(&f.dict)
            )
        }
    ));
    let bins: Vec<(f32, f32, u64)> = stats
        .histogram
        .iter()
        .map(|b| (b.lo, b.hi, b.count))
        .collect();
    p.push("<h2>Activation histogram</h2>");
    p.push(svg::histogram(&bins, 520, 90));
    laps.lap("header");

    p.push("<div class=\"grid\"><div>");
    top_section(&mut p, store, f, &values, stats.max)?;
    laps.lap("top");
    quantile_section(&mut p, store, f, &values, stats.max)?;
    laps.lap("quantiles");
    if !standalone {
        super::live::forms_section(&mut p, store, f);
        laps.lap("live");
    }
    p.push("</div><div>");
    neighbourhood_section(&mut p, store, f, &mut names, standalone)?;
    laps.lap("map");
    neighbours_section(&mut p, store, f, &mut names)?;
    laps.lap("neighbours");
    effects_section(&mut p, store, f)?;
    laps.lap("effects");
    sources_section(&mut p, store, f)?;
    laps.lap("sources");
    p.push("</div></div>");
    let html = p.render();
    laps.lap("render");
    Ok(html)
}

fn top_section(
    p: &mut Page,
    store: &Store,
    f: &FeatureRef,
    values: &HashMap<(u32, u32), f32>,
    max: f32,
) -> PageResult<()> {
    let top = store.top_activations(f, TOP_SHOWN, None)?;
    p.push(format!("<h2>Top activations <span class=\"note\">({} strongest; hover a token for its value)</span></h2>", top.len()));
    p.push(activation_rows("top", store, &top, values, max)?);
    Ok(())
}

fn activation_rows(
    id: &str,
    store: &Store,
    acts: &[TokenActivation],
    values: &HashMap<(u32, u32), f32>,
    max: f32,
) -> PageResult {
    let mut rows = Vec::new();
    for a in acts {
        let doc = store.document(a.doc)?;
        rows.push(vec![
            format!("<span class=\"n\">{}</span>", num(a.value as f64)),
            format!(
                "<a href=\"/doc/{}/at/{}\">{}:{}</a>",
                a.doc, a.pos, a.doc, a.pos
            ),
            context_html(&doc.tokens, a.doc, a.pos, CONTEXT, CONTEXT, values, max),
        ]);
    }
    Ok(table(id, &["value", "doc:pos", "context"], &rows))
}

fn quantile_section(
    p: &mut Page,
    store: &Store,
    f: &FeatureRef,
    values: &HashMap<(u32, u32), f32>,
    max: f32,
) -> PageResult<()> {
    p.push(format!(
        "<h2>Samples by activation quantile <span class=\"note\">({PER_QUANTILE} from each of {QUANTILES}, as SAMPLE … FROM QUANTILE q OF {QUANTILES})</span></h2>"
    ));
    if values.is_empty() {
        p.push("<p class=\"muted\">no activations</p>");
        return Ok(());
    }
    for q in (1..=QUANTILES).rev() {
        let s = store.sample_quantile(
            f,
            QuantileQuery {
                k: PER_QUANTILE,
                quantile: q,
                of: QUANTILES,
            },
            None,
            &NoProgress,
        )?;
        p.push(format!(
            "<h3 class=\"note\">quantile {q} of {QUANTILES}: values {}–{} ({} activations)</h3>",
            num(s.lo as f64),
            num(s.hi as f64),
            thousands(s.size as u64)
        ));
        p.push(activation_rows(
            &format!("q{q}"),
            store,
            &s.picks,
            values,
            max,
        )?);
    }
    Ok(())
}

fn neighbourhood_section(
    p: &mut Page,
    store: &Store,
    f: &FeatureRef,
    names: &mut Names,
    standalone: bool,
) -> PageResult<()> {
    p.push("<h2>Neighbourhood map <span class=\"note\">(UMAP of the feature and its nearest neighbours by decoder cosine)</span></h2>");
    if !store.has_ann_file(&f.dict)? {
        p.push(no_index_note(&f.dict));
        return Ok(());
    }
    let m = store.neighbourhood_map(f, MAP_NEIGHBOURS)?;
    if m.points.len() < 2 {
        p.push("<p class=\"muted\">this feature has no neighbours (a zero decoder row)</p>");
        return Ok(());
    }
    let mut dots: Vec<Dot> = m
        .points
        .iter()
        .map(|pt| {
            let g = FeatureRef::new(&f.dict, pt.feature);
            let name = names.get(&g).unwrap_or_default();
            Dot {
                x: pt.x,
                y: pt.y,
                href: feature_url(&g),
                name: format!("{g} {name}"),
                labelled: true,
                me: pt.feature == f.index,
            }
        })
        .collect();
    svg::centre_on_me(&mut dots);
    p.push(svg::map(&dots, 460, 4.0));
    if !standalone {
        p.push("<p class=\"note\">scroll to zoom, drag to pan</p>");
    }
    Ok(())
}

fn no_index_note(dict: &str) -> String {
    format!(
        "<p class=\"muted\">the neighbour index of {} is not built yet (it was deferred at ingest); \
         run <code>NEIGHBOURS OF {}/0</code> in the console or <code>saedb check --repair</code> once</p>",
        Esc(dict),
        Esc(dict)
    )
}

fn neighbours_section(
    p: &mut Page,
    store: &Store,
    f: &FeatureRef,
    names: &mut Names,
) -> PageResult<()> {
    p.push("<h2>Neighbours <span class=\"note\">(decoder cosine, in every dictionary of the same width)</span></h2>");
    let d_in = store.dictionary(&f.dict)?.d_in;
    for d in store.dictionaries().into_iter().filter(|d| d.d_in == d_in) {
        p.push(format!("<h3 class=\"note\">in {}</h3>", Esc(&d.name)));
        if !store.has_ann_file(&d.name)? {
            p.push(no_index_note(&d.name));
            continue;
        }
        let hits = store.neighbours(f, Some(&d.name), NEIGHBOURS_SHOWN)?;
        let rows: Vec<Vec<String>> = hits
            .iter()
            .map(|n| {
                vec![
                    format!("<span class=\"n\">{}</span>", num(n.cosine as f64)),
                    names.link(&n.feature),
                ]
            })
            .collect();
        p.push(table(
            &format!("nb-{}", url_part(&d.name)),
            &["cosine", "feature"],
            &rows,
        ));
    }
    Ok(())
}

fn effects_section(p: &mut Page, store: &Store, f: &FeatureRef) -> PageResult<()> {
    p.push("<h2>Token effects <span class=\"note\">(W_dec[f] · W_U: the output tokens it pushes up and down)</span></h2>");
    let e = match store.token_effects(f, EFFECTS_SHOWN) {
        Ok(e) => e,
        Err(saedb_engine::Error::Missing(m)) | Err(saedb_engine::Error::Mismatch(m)) => {
            p.push(format!("<p class=\"muted\">{}</p>", Esc(&m)));
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let list = |items: &[saedb_engine::TokenEffect]| {
        items
            .iter()
            .map(|t| {
                format!(
                    "<span class=\"pill\">{}</span> {}",
                    Esc(&token_text(&t.token)),
                    num(t.effect as f64)
                )
            })
            .collect::<Vec<_>>()
            .join("<br>")
    };
    p.push(table(
        "effects",
        &["positive", "negative"],
        &[vec![list(&e.positive), list(&e.negative)]],
    ));
    Ok(())
}

fn sources_section(p: &mut Page, store: &Store, f: &FeatureRef) -> PageResult<()> {
    p.push(format!(
        "<h2>Where it fires <span class=\"note\">(by document source, as DESCRIBE {} BY SOURCE)</span></h2>",
        Esc(&f.to_string())
    ));
    let sources = store.activations_by_source(f)?;
    if sources.is_empty() {
        p.push("<p class=\"muted\">no activations</p>");
        return Ok(());
    }
    let mut rows = Vec::new();
    for s in sources.iter().take(30) {
        let mut bar = String::new();
        let _ = write!(
            bar,
            "<span class=\"bar\" style=\"width:{:.0}px\"></span> {}%",
            s.share * 120.0,
            num(s.share * 100.0)
        );
        rows.push(vec![
            Esc(&s.source).to_string(),
            format!("<span class=\"n\">{}</span>", thousands(s.count)),
            bar,
            thousands(s.documents),
            num(s.max as f64),
        ]);
    }
    p.push(table(
        "sources",
        &["source", "activations", "share", "documents", "max"],
        &rows,
    ));
    if sources.len() > 30 {
        p.push(format!(
            "<p class=\"note\">{} more sources: run DESCRIBE {} BY SOURCE in the console</p>",
            sources.len() - 30,
            Esc(&f.to_string())
        ));
    }
    Ok(())
}
