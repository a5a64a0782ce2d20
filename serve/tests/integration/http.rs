//! Every route over real HTTP on 127.0.0.1: status, content type, and the numbers on the page
//! against what the same statements return through the query language.

use crate::common::*;
use saedb_engine::{FeatureRef, Store};
use saedb_query::{render::format_float, ResultSet, Session, Value};
use std::sync::Arc;

fn run(store: &Arc<Store>, statement: &str) -> ResultSet {
    Session::new(store.clone())
        .execute(statement)
        .unwrap()
        .pop()
        .unwrap()
}

fn int(rs: &ResultSet, row: usize, col: &str) -> i64 {
    match rs.get(row, col) {
        Some(Value::Int(i)) => *i,
        other => panic!("{col}: {other:?}"),
    }
}

fn float(rs: &ResultSet, row: usize, col: &str) -> f64 {
    rs.get(row, col).and_then(Value::as_f64).unwrap()
}

fn html_ok(r: &Response) {
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(r
        .header("content-security-policy")
        .unwrap()
        .contains("script-src 'self'"));
    assert!(r.body.starts_with("<!DOCTYPE html>"));
}

/// Rows of the table with class `class`, as the cells' raw HTML.
fn table_rows(body: &str, class: &str) -> Vec<Vec<String>> {
    let Some(start) = body.find(&format!("<table class=\"{class}\"")) else {
        return Vec::new();
    };
    let end = start + body[start..].find("</table>").unwrap();
    let tbody = &body[start..end];
    let Some(tb) = tbody.find("<tbody>") else {
        return Vec::new();
    };
    tbody[tb + 7..]
        .split("<tr>")
        .filter(|r| r.contains("<td"))
        .map(|r| {
            r.split("<td")
                .skip(1)
                .map(|c| {
                    let c = &c[c.find('>').unwrap() + 1..];
                    c[..c.rfind("</td>").unwrap_or(c.len())].to_string()
                })
                .collect()
        })
        .collect()
}

/// Text without tags.
fn text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

#[test]
fn home_lists_what_the_store_holds() {
    let dir = tempfile::tempdir().unwrap();
    let store = fixture_store(dir.path());
    let server = start(store.clone(), false);
    let r = get(server.addr(), "/");
    html_ok(&r);
    let info = store.info().unwrap();
    assert!(r.body.contains(&format!("{} documents", info.documents)));
    let rows = table_rows(&r.body, "dicts");
    assert_eq!(rows.len(), 2);
    for (row, d) in rows.iter().zip(&info.dictionaries) {
        assert!(row[0].contains(&format!("<b>{}</b>", d.name)));
        assert_eq!(text(&row[1]), d.d_sae.to_string());
        assert_eq!(text(&row[6]).replace(',', ""), d.nonzeros.to_string());
    }
    assert!(r.body.contains("href=\"/graph/small\""));
    assert!(r.body.contains("read-only"));
    // The assets the pages link.
    let css = get(server.addr(), "/static/saedb.css");
    assert_eq!(css.status, 200);
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    let js = get(server.addr(), "/static/saedb.js");
    assert_eq!(
        js.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
}

#[test]
fn feature_page_numbers_are_the_query_results() {
    let dir = tempfile::tempdir().unwrap();
    let store = fixture_store(dir.path());
    let server = start(store.clone(), false);
    for index in [3u32, 42, 200] {
        let f = format!("L2/{index}");
        let r = get(server.addr(), &format!("/f/L2/{index}"));
        html_ok(&r);
        let d = run(&store, &format!("DESCRIBE {f};"));
        assert_eq!(
            r.by_id("count").unwrap().replace(',', ""),
            int(&d, 0, "count").to_string()
        );
        assert_eq!(r.by_id("max").unwrap(), format_float(float(&d, 0, "max")));
        assert_eq!(
            r.by_id("density").unwrap(),
            format_float(float(&d, 0, "frequency"))
        );
        // Top activations: values and (doc, pos) in order.
        let top = run(&store, &format!("TOP 20 ACTIVATIONS OF {f};"));
        let rows = table_rows(&r.body, "top");
        assert_eq!(rows.len(), top.rows.len(), "{f}");
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(
                text(&row[0]),
                format_float(float(&top, i, "value")),
                "{f} row {i}"
            );
            assert_eq!(
                text(&row[1]),
                format!("{}:{}", int(&top, i, "doc"), int(&top, i, "pos"))
            );
        }
        // Neighbours in the other dictionary: cosines and features.
        let nb = run(&store, &format!("NEIGHBOURS OF {f} IN L4 LIMIT 10;"));
        let rows = table_rows(&r.body, "nb-L4");
        assert_eq!(rows.len(), nb.rows.len());
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(text(&row[0]), format_float(float(&nb, i, "cosine")));
            let want = format!(
                "{}/{}",
                nb.get(i, "dict").unwrap().as_str().unwrap(),
                int(&nb, i, "feature")
            );
            assert!(
                row[1].contains(&format!(">{want}</a>")),
                "{} vs {want}",
                row[1]
            );
        }
        // Where it fires: the statement DESCRIBE … BY SOURCE.
        let by = run(&store, &format!("DESCRIBE {f} BY SOURCE;"));
        let rows = table_rows(&r.body, "sources");
        assert_eq!(rows.len(), by.rows.len());
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(
                text(&row[0]),
                by.get(i, "source").unwrap().as_str().unwrap()
            );
            assert_eq!(
                text(&row[1]).replace(',', ""),
                int(&by, i, "count").to_string()
            );
        }
        // The neighbourhood map: the feature and its 24 nearest, each a link.
        let nn = store
            .neighbours(&FeatureRef::new("L2", index), None, 24)
            .unwrap();
        assert_eq!(r.body.matches("<circle class=\"pt").count(), nn.len() + 1);
        for n in &nn {
            assert!(r
                .body
                .contains(&format!("href=\"/f/L2/{}\"", n.feature.index)));
        }
    }
    // A labelled feature shows its label; an unlabelled one its most frequent tokens.
    let r = get(server.addr(), "/f/L2/3");
    assert_eq!(r.by_id("label").unwrap(), "Python keywords");
    let r = get(server.addr(), "/f/L2/42");
    let tokens = store
        .frequent_tokens(&FeatureRef::new("L2", 42), 5)
        .unwrap();
    assert!(!tokens.is_empty());
    assert!(text(&r.body).contains(&format!("{} ×{}", tokens[0].token, tokens[0].count)));
    // No vocabulary in this store: token effects say so instead of failing.
    assert!(r.body.contains("no vocabulary matrix"));
}

#[test]
fn documents_and_features_at_match_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = fixture_store(dir.path());
    let server = start(store.clone(), false);
    let doc = store.document(5).unwrap();
    let r = get(server.addr(), "/doc/5");
    html_ok(&r);
    for pos in 0..doc.tokens.len() {
        let rs = run(&store, &format!("FEATURES AT DOC 5 POS {pos};"));
        let cell = r.by_id(&format!("t{pos}")).unwrap_or_default();
        let shown = r.body.find(&format!("id=\"t{pos}\"")).map(|at| {
            let s = &r.body[at..];
            let sup = s.find("<sup>").unwrap() + 5;
            s[sup..sup + s[sup..].find('<').unwrap()].to_string()
        });
        assert_eq!(
            shown.as_deref(),
            Some(rs.rows.len().to_string().as_str()),
            "pos {pos} {cell}"
        );
    }
    // The tokens read as text, as the shell shows a context: WordPiece words spaced, `##`
    // pieces glued on (document 3 has three of them).
    let doc = store.document(3).unwrap();
    let r3 = get(server.addr(), "/doc/3");
    let div = &r3.body[r3.body.find("id=\"doc\"").unwrap()..];
    let div = &div[div.find('>').unwrap() + 1..div.find("</div>").unwrap()];
    let mut without_counts = String::new();
    let mut rest = div;
    while let Some(at) = rest.find("<sup>") {
        without_counts.push_str(&rest[..at]);
        rest = &rest[at + rest[at..].find("</sup>").unwrap() + 6..];
    }
    without_counts.push_str(rest);
    let shown = text(&without_counts)
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    let want = saedb_query::render::context_text(&doc.tokens, None, "", "");
    assert_eq!(shown, want);
    assert!(
        doc.tokens.iter().any(|t| t.starts_with("##")) && !want.contains("##"),
        "{want}"
    );
    let r = get(server.addr(), "/doc/5/at/3");
    html_ok(&r);
    let rs = run(&store, "FEATURES AT DOC 5 POS 3;");
    let rows = table_rows(&r.body, "at");
    assert_eq!(rows.len(), rs.rows.len());
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(text(&row[0]), format_float(float(&rs, i, "value")));
        let want = format!(
            "{}/{}",
            rs.get(i, "dict").unwrap().as_str().unwrap(),
            int(&rs, i, "feature")
        );
        assert!(row[1].contains(&format!(">{want}</a>")));
    }
}

#[test]
fn graph_page_draws_layers_chains_and_node_edges() {
    let dir = tempfile::tempdir().unwrap();
    let store = fixture_store(dir.path());
    let server = start(store.clone(), false);
    let r = get(server.addr(), "/graph/small");
    html_ok(&r);
    let g = store.graph("small").unwrap();
    assert_eq!(
        r.body.matches("<circle class=\"node").count(),
        g.nodes.len()
    );
    assert!(r.body.contains("&lt;bos&gt;"), "prompt tokens escaped");
    let r = get(
        server.addr(),
        "/graph/small?to=9_500_3&limit=3&errors=exclude",
    );
    html_ok(&r);
    let rs = run(
        &store,
        "CHAINS TO \"9_500_3\" IN GRAPH small EXCLUDE ERRORS LIMIT 3;",
    );
    let rows = table_rows(&r.body, "chains");
    assert_eq!(rows.len(), rs.rows.len());
    assert!(!rows.is_empty());
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(text(&row[1]), format_float(float(&rs, i, "score")));
    }
    // Highlighted: every edge of every chain, and no other.
    let chains = store
        .chains(
            "small",
            &saedb_engine::graph::ChainQuery {
                to: "9_500_3".into(),
                exclude_errors: true,
                limit: 3,
                ..Default::default()
            },
        )
        .unwrap();
    let mut pairs: Vec<(String, String)> = chains
        .iter()
        .flat_map(|c| c.nodes.windows(2).map(|w| (w[0].clone(), w[1].clone())))
        .collect();
    pairs.sort();
    pairs.dedup();
    assert_eq!(r.body.matches("class=\"edge on\"").count(), pairs.len());
    // A node's inputs and outputs: the edges of the file that end and start there.
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("fixtures/graphs/small.json")).unwrap(),
    )
    .unwrap();
    let links = json["links"].as_array().unwrap();
    for id in ["3_20_2", "9_500_3", "E_200_2"] {
        let r = get(server.addr(), &format!("/graph/small?node={id}"));
        html_ok(&r);
        let ins = links.iter().filter(|l| l["target"] == id).count();
        let outs = links.iter().filter(|l| l["source"] == id).count();
        assert_eq!(table_rows(&r.body, "inputs").len(), ins, "{id}");
        assert_eq!(table_rows(&r.body, "outputs").len(), outs, "{id}");
    }
}

#[test]
fn map_lays_out_every_live_feature_and_links_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = fixture_store(dir.path());
    let server = start(store.clone(), false);
    let r = get(server.addr(), "/map/L4?focus=9");
    html_ok(&r);
    let alive = (0..512)
        .filter(|&i| {
            store
                .decoder_row(&FeatureRef::new("L4", i))
                .unwrap()
                .iter()
                .any(|v| *v != 0.0)
        })
        .count();
    assert_eq!(r.body.matches("<circle class=\"pt").count(), alive);
    assert!(r.body.contains("<circle class=\"pt me\""));
    assert!(r.body.contains("href=\"/f/L4/511\"") || alive < 512);
    assert!(r
        .by_id("map-note")
        .unwrap()
        .contains(&format!("{alive} of {alive} live features")));
}

#[test]
fn console_shows_results_and_errors_with_the_caret() {
    let dir = tempfile::tempdir().unwrap();
    let store = fixture_store(dir.path());
    let server = start(store.clone(), false);
    let r = post_form(
        server.addr(),
        "/query",
        &[("q", "DESCRIBE L2/42; TOP 3 ACTIVATIONS OF L2/42;")],
        &[],
    );
    html_ok(&r);
    let d = run(&store, "DESCRIBE L2/42;");
    let rows = table_rows(&r.body, "rs");
    assert_eq!(text(&rows[0][2]), int(&d, 0, "count").to_string());
    assert_eq!(r.body.matches("<table class=\"rs\"").count(), 2);
    // GET works too (links to a statement).
    let r = get(
        server.addr(),
        &format!("/query?q={}", encode("SHOW DICTIONARIES;")),
    );
    html_ok(&r);
    assert_eq!(table_rows(&r.body, "rs").len(), 2);
    // An error: the message, the line and the caret under the offending word.
    let r = post_form(
        server.addr(),
        "/query",
        &[("q", "TOP 5 ACTIVATONS OF L2/5;")],
        &[],
    );
    html_ok(&r);
    let e = r.by_id("query-error").unwrap();
    assert!(e.contains("query:1:7: error"), "{e}");
    assert!(e.contains("  |       ^"), "{e}");
    // A write on a read-only server fails as a statement error, not a crash.
    let r = post_form(
        server.addr(),
        "/query",
        &[("q", "LABEL L2/5 AS \"x\";")],
        &[],
    );
    assert!(r.by_id("query-error").unwrap().contains("read-only"));
    // Oversized statements are refused.
    let long = "-".repeat(20_000);
    let r = post_form(server.addr(), "/query", &[("q", &long)], &[]);
    assert_eq!(r.status, 400);
}

#[test]
fn the_time_limit_answers_instead_of_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let store = fixture_store(dir.path());
    let server = start_with(
        store,
        saedb_serve::ServeOptions {
            port: 0,
            query_timeout: std::time::Duration::from_millis(20),
            ..Default::default()
        },
    );
    // 380 exact searches (as long a script as the console takes): longer than the limit.
    let slow = "NEIGHBOURS OF L2/5 IN L4 EXACT LIMIT 500;\n".repeat(380);
    let started = std::time::Instant::now();
    let r = post_form(server.addr(), "/query", &[("q", &slow)], &[]);
    html_ok(&r);
    let e = r.by_id("query-error").unwrap();
    assert!(e.contains("time limit exceeded"), "{e}");
    assert!(
        started.elapsed().as_secs_f64() < 5.0,
        "answered after the limit"
    );
}

#[test]
fn store_text_is_escaped_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let store = fixture_store(dir.path());
    let server = start(store.clone(), false);
    let pages = [
        format!("/doc/{HOSTILE_DOC}"),
        format!("/doc/{HOSTILE_DOC}/at/0"),
        format!("/f/L2/{HOSTILE_FEATURE}"),
        "/search?q=script".to_string(),
        "/map/L2".to_string(),
        format!("/query?q={}", encode("SHOW LABELS;")),
        format!("/query?q={}", encode(&format!("SHOW DOC {HOSTILE_DOC};"))),
        "/graph/small".to_string(),
    ];
    for p in &pages {
        let r = get(server.addr(), p);
        html_ok(&r);
        // The page's own script tag aside, no markup from the store.
        let body = r
            .body
            .replace("<script src=\"/static/saedb.js\" defer></script>", "");
        assert!(!body.contains("<script>"), "{p} holds a raw <script>");
        assert!(!body.contains("</script>"), "{p} holds a raw </script>");
        assert!(
            !r.body.contains("<b>src"),
            "{p} holds raw markup from the store"
        );
    }
    let r = get(server.addr(), &format!("/doc/{HOSTILE_DOC}"));
    assert!(r.body.contains("&lt;script&gt;"));
    assert!(r.body.contains("alert(&#39;&amp;amp;&#39;)"));
    let r = get(server.addr(), "/search?q=script");
    assert!(r
        .body
        .contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;money&quot;"));
    assert_eq!(table_rows(&r.body, "hits").len(), 1);
}

#[test]
fn malformed_or_unknown_urls_are_404_pages() {
    let dir = tempfile::tempdir().unwrap();
    let store = fixture_store(dir.path());
    let server = start(store, false);
    for p in [
        "/nothing",
        "/f/L2",
        "/f/L2/abc",
        "/f/L2/-1",
        "/f/L2/512",
        "/f/L2/99999999999",
        "/f/NOPE/1",
        "/f/%3Cscript%3E/1",
        "/map/NOPE",
        "/doc/xyz",
        "/doc/99999",
        "/doc/5/at/9999",
        "/doc/5/at/x",
        "/graph/nope",
        "/graph/small?node=nope",
        "/static/../Cargo.toml",
        "/static/%2e%2e/%2e%2e/Cargo.toml",
        "/../../etc/passwd",
        "/f/L2/1/../../../../etc/passwd",
    ] {
        let r = get(server.addr(), p);
        assert_eq!(r.status, 404, "{p}: {}", r.body);
        assert_eq!(
            r.header("content-type"),
            Some("text/html; charset=utf-8"),
            "{p}"
        );
        assert!(r.body.contains("Not found"), "{p}");
        assert!(!r.body.contains("<script>"), "{p}");
        assert!(
            !r.body.contains("[workspace]") && !r.body.contains("root:"),
            "{p}"
        );
    }
    // Bad parameters are 400 pages.
    let r = get(server.addr(), "/graph/small?to=9_500_3&limit=abc");
    assert_eq!(r.status, 400);
    let r = get(server.addr(), "/graph/small?to=9_500_3&limit=100000");
    assert_eq!(r.status, 400);
    // A body over the limit is refused.
    let big = vec![b'a'; 200_000];
    let r = request(
        server.addr(),
        "POST",
        "/query",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &big,
    );
    assert_eq!(r.status, 413);
}

#[test]
fn labels_are_edited_only_when_writable_and_only_from_this_server() {
    let dir = tempfile::tempdir().unwrap();
    let store = fixture_store(dir.path());
    {
        let ro = start(store.clone(), false);
        let r = post_form(ro.addr(), "/f/L2/11/label", &[("label", "eleven")], &[]);
        assert_eq!(r.status, 403);
        assert!(!get(ro.addr(), "/f/L2/11").body.contains("label-input"));
    }
    let server = start(store.clone(), true);
    assert!(get(server.addr(), "/f/L2/11").body.contains("label-input"));
    let origin = format!("http://{}", server.addr());
    let r = post_form(
        server.addr(),
        "/f/L2/11/label",
        &[("label", "eleven <i>")],
        &[("Origin", &origin)],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some("/f/L2/11"));
    assert_eq!(
        store.label(&FeatureRef::new("L2", 11)).unwrap().as_deref(),
        Some("eleven <i>")
    );
    assert_eq!(
        get(server.addr(), "/f/L2/11").by_id("label").unwrap(),
        "eleven &lt;i&gt;"
    );
    // Another site's form is refused and changes nothing.
    let r = post_form(
        server.addr(),
        "/f/L2/11/label",
        &[("label", "evil")],
        &[("Origin", "http://evil.example")],
    );
    assert_eq!(r.status, 403);
    let r = post_form(
        server.addr(),
        "/f/L2/11/label",
        &[("label", "evil")],
        &[("Sec-Fetch-Site", "cross-site")],
    );
    assert_eq!(r.status, 403);
    assert_eq!(
        store.label(&FeatureRef::new("L2", 11)).unwrap().as_deref(),
        Some("eleven <i>")
    );
    // An empty label is a 400, not a crash.
    let r = post_form(server.addr(), "/f/L2/11/label", &[("label", "  ")], &[]);
    assert_eq!(r.status, 400);
}

#[test]
fn export_writes_one_self_contained_page() {
    let dir = tempfile::tempdir().unwrap();
    let store = fixture_store(dir.path());
    let html = saedb_serve::feature_page_standalone(&store, &FeatureRef::new("L2", 3)).unwrap();
    assert!(html.contains("<style>") && html.contains("<script>"));
    assert!(!html.contains(" href=\"/"), "no link needs the server");
    assert!(!html.contains("/static/"));
    assert!(html.contains("Python keywords"));
    let e = saedb_serve::feature_page_standalone(&store, &FeatureRef::new("L2", 999)).unwrap_err();
    assert!(e.to_string().contains("out of range"));
}
