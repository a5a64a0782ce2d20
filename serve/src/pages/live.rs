//! The model in the loop on a feature page: "test your own text" (`/f/L2/1234/text?text=…`, the
//! feature's value at every token of any text) and steering (`/f/L2/1234/steer?prompt=…`, the
//! default and the clamped or steered continuation side by side). Both need the dictionary to
//! run live on a registered model (`saedb ingest model`, docs/MODELS.md).

use crate::html::{feature_url, num, table, token_text, Esc, Page};
use crate::state::AppState;
use crate::PageResult;
use saedb_engine::model::GenerateOptions;
use saedb_engine::{FeatureRef, Steering, Store};
use std::fmt::Write;

/// New tokens a steering form may ask for (each costs a forward pass of both runs).
pub const MAX_NEW_TOKENS: usize = 64;
/// New tokens when the form does not say.
pub const DEFAULT_NEW_TOKENS: usize = 24;

/// The two forms on the feature page, or why the dictionary cannot run live.
pub fn forms_section(p: &mut Page, store: &Store, f: &FeatureRef) {
    p.push("<h2>Test your own text</h2>");
    let live = store
        .live_dictionaries()
        .into_iter()
        .find(|d| d.dictionary == f.dict);
    match live {
        Some(d) if d.model.is_some() => {
            let url = feature_url(f);
            p.push(format!(
                "<form method=\"get\" action=\"{url}/text\" id=\"text-form\">\
                 <input name=\"text\" size=\"50\" placeholder=\"any text, run through {}\"> \
                 <button>Show {} on it</button></form>",
                Esc(d.model.as_deref().unwrap_or("")),
                Esc(&f.to_string())
            ));
            p.push(format!(
                "<form method=\"get\" action=\"{url}/steer\" id=\"steer-form\">\
                 <input name=\"prompt\" size=\"36\" placeholder=\"a prompt to continue\"> \
                 <select name=\"how\"><option value=\"clamp\">clamp to</option>\
                 <option value=\"steer\">steer by</option></select> \
                 <input name=\"value\" size=\"5\" value=\"2\"> \
                 <label><input type=\"checkbox\" name=\"times_max\" checked> × max</label> \
                 <button>Generate</button></form>"
            ));
        }
        Some(d) => p.push(format!(
            "<p class=\"muted\">{} cannot run live: {} (register a model with \
             <code>saedb ingest model</code>, docs/MODELS.md).</p>",
            Esc(&f.dict),
            Esc(d.reason.as_deref().unwrap_or("no model"))
        )),
        None => {}
    }
}

/// `/f/<dict>/<index>/text?text=…`: the feature's value at every token of `text`, shaded by
/// its fraction of the feature's largest stored activation.
pub fn text_page(st: &AppState, f: &FeatureRef, text: &str) -> PageResult {
    let store = &st.store;
    let max = store.feature_stats(f)?.max;
    let tokens = store.text_features(&f.dict, text)?;
    let mut p = Page::new(format!("{f} on your text"));
    p.push(format!(
        "<h1><a class=\"feat\" href=\"{}\">{}</a> on your text</h1>",
        feature_url(f),
        Esc(&f.to_string())
    ));
    let mut shaded = String::from("<p class=\"ctx\" id=\"shaded\">");
    let mut rows = Vec::new();
    for t in &tokens {
        let v = t
            .features
            .iter()
            .find(|(i, _)| *i == f.index)
            .map_or(0.0, |&(_, v)| v);
        let fraction = if max > 0.0 { v / max } else { 0.0 };
        let _ = write!(
            shaded,
            "<span class=\"tok\" style=\"background:rgba(234,88,12,{:.2})\" title=\"{}\">{}</span> ",
            fraction.clamp(0.0, 1.0),
            num(v as f64),
            Esc(&token_text(&t.token))
        );
        rows.push(vec![
            t.pos.to_string(),
            Esc(&token_text(&t.token)).to_string(),
            format!("<span class=\"value\">{}</span>", num(v as f64)),
            num(fraction as f64),
        ]);
    }
    shaded.push_str("</p>");
    p.push(shaded);
    p.push(table(
        "values",
        &["pos", "token", "value", "fraction of max"],
        &rows,
    ));
    Ok(p.render())
}

/// What a steering form asked for.
pub struct SteerForm {
    pub prompt: String,
    pub clamp: bool,
    pub value: f32,
    pub times_max: bool,
    pub max_tokens: usize,
}

/// `/f/<dict>/<index>/steer?prompt=…&how=clamp|steer&value=v[&times_max=on][&max_tokens=n]`:
/// the default continuation beside the one with the feature clamped or steered.
pub fn steer_page(st: &AppState, f: &FeatureRef, form: &SteerForm) -> PageResult {
    let edit = if form.clamp {
        Steering::Clamp {
            feature: f.clone(),
            value: form.value,
            times_max: form.times_max,
        }
    } else {
        Steering::Steer {
            feature: f.clone(),
            alpha: form.value,
        }
    };
    let opts = GenerateOptions {
        max_new_tokens: form.max_tokens,
        ..GenerateOptions::default()
    };
    let runs = st.store.generate(&form.prompt, &[edit], &opts)?;
    let what = match (form.clamp, form.times_max) {
        (true, true) => format!("clamped to {} × its max", num(form.value as f64)),
        (true, false) => format!("clamped to {}", num(form.value as f64)),
        (false, _) => format!("steered by {}", num(form.value as f64)),
    };
    let mut p = Page::new(format!("{f} steering"));
    p.push(format!(
        "<h1><a class=\"feat\" href=\"{}\">{}</a> {}</h1><p class=\"ctx\">{}</p>",
        feature_url(f),
        Esc(&f.to_string()),
        Esc(&what),
        Esc(&form.prompt)
    ));
    p.push("<div class=\"grid\">");
    for r in &runs {
        let mean_logprob = if r.logprobs.is_empty() {
            0.0
        } else {
            r.logprobs.iter().map(|&l| l as f64).sum::<f64>() / r.logprobs.len() as f64
        };
        p.push(format!(
            "<div><h2>{}</h2><p class=\"ctx\" id=\"run-{}\">{}</p>\
             <p class=\"muted\">{} new tokens, mean log-probability {}</p></div>",
            Esc(&r.run),
            Esc(&r.run),
            Esc(&r.text),
            r.token_ids.len(),
            num(mean_logprob)
        ));
    }
    p.push("</div>");
    Ok(p.render())
}
