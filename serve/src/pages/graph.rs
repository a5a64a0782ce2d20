//! An attribution graph: `/graph/NAME`, drawn as circuit-tracer's viewer lays it out (prompt
//! tokens along x, layers up y: embeddings at the bottom, logits at the top), with a CHAINS form
//! whose answers are highlighted on the drawing, and a node's inputs and outputs (`?node=ID`).

use crate::html::{num, table, thousands, token_text, url_part, Esc, Page};
use crate::state::AppState;
use crate::{PageError, PageResult};
use saedb_engine::graph::{Chain, ChainQuery, Graph, Node, NodeKind};
use std::collections::{HashMap, HashSet};
use std::fmt::Write;

/// Edges drawn (the strongest by |weight|, plus every edge of a highlighted chain).
const MAX_EDGES_DRAWN: usize = 600;
/// Inputs and outputs listed for a node.
const MAX_NODE_EDGES: usize = 40;
/// The most chains the form may ask for.
const MAX_CHAINS: usize = 50;

pub fn page(st: &AppState, name: &str, q: &HashMap<String, String>) -> PageResult {
    let g = st.store.graph(name)?;
    let info = g.info();
    let mut p = Page::new(format!("graph {name}"));
    p.push(format!(
        "<h1>Graph {}</h1><p class=\"stats\"><span>prompt <b>{}</b></span><span>{} nodes</span><span>{} edges</span><span>{}</span></p>",
        Esc(name),
        Esc(g.prompt.as_deref().unwrap_or("-")),
        thousands(info.nodes),
        thousands(info.edges),
        Esc(&info.origin)
    ));
    let default_target = info
        .logits
        .iter()
        .find(|l| l.is_target)
        .or(info.logits.first())
        .map(|l| l.node.clone())
        .unwrap_or_default();
    let chains = match q.get("to").filter(|t| !t.is_empty()) {
        Some(to) => Some(run_chains(st, name, to, q)?),
        None => None,
    };
    p.push(chain_form(name, q, &default_target));
    let selected = match q.get("node").filter(|n| !n.is_empty()) {
        Some(id) => Some(g.node_index(id)?),
        None => None,
    };
    p.push(draw(&g, name, chains.as_deref().unwrap_or(&[]), selected));
    p.push("<p class=\"note\">Blue edges excite, red inhibit; width is |weight|. Hover a node for its description, click it for its inputs and outputs.</p>");
    if let Some(chains) = &chains {
        p.push(chain_table(name, chains));
    }
    if let Some(i) = selected {
        p.push(node_section(&g, name, i));
    }
    Ok(p.render())
}

fn run_chains(
    st: &AppState,
    name: &str,
    to: &str,
    q: &HashMap<String, String>,
) -> PageResult<Vec<Chain>> {
    let opt_num = |k: &str| -> PageResult<Option<usize>> {
        match q.get(k).map(|s| s.trim()).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => s.parse::<usize>().map(Some).map_err(|_| {
                PageError::BadRequest(format!("{k} must be a whole number, not '{s}'"))
            }),
        }
    };
    let opt_text = |k: &str| {
        q.get(k)
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let limit = opt_num("limit")?.unwrap_or(5);
    if limit == 0 || limit > MAX_CHAINS {
        return Err(PageError::BadRequest(format!(
            "limit must be 1 to {MAX_CHAINS}"
        )));
    }
    let cq = ChainQuery {
        to: to.to_string(),
        from: opt_text("from"),
        through: opt_text("through"),
        min_length: opt_num("min")?,
        max_length: opt_num("max")?,
        exclude_errors: q.get("errors").is_some_and(|v| v == "exclude"),
        limit,
    };
    Ok(st.store.chains(name, &cq)?)
}

fn chain_form(name: &str, q: &HashMap<String, String>, default_target: &str) -> String {
    let v = |k: &str| Esc(q.get(k).map(String::as_str).unwrap_or("")).to_string();
    let to = q
        .get("to")
        .filter(|t| !t.is_empty())
        .map(String::as_str)
        .unwrap_or(default_target);
    format!(
        "<form method=\"get\" action=\"/graph/{}\" id=\"chains-form\">CHAINS TO <input name=\"to\" value=\"{}\" size=\"14\"> \
         FROM <input name=\"from\" value=\"{}\" size=\"12\"> THROUGH <input name=\"through\" value=\"{}\" size=\"12\"> \
         MIN LENGTH <input name=\"min\" value=\"{}\" size=\"2\"> MAX LENGTH <input name=\"max\" value=\"{}\" size=\"2\"> \
         <label><input type=\"checkbox\" name=\"errors\" value=\"exclude\"{}> EXCLUDE ERRORS</label> \
         LIMIT <input name=\"limit\" value=\"{}\" size=\"2\"> <button id=\"chains-run\">Find chains</button></form>",
        url_part(name),
        Esc(to),
        v("from"),
        v("through"),
        v("min"),
        v("max"),
        if q.get("errors").is_some_and(|e| e == "exclude") { " checked" } else { "" },
        q.get("limit").map(|l| Esc(l).to_string()).unwrap_or_else(|| "5".into())
    )
}

/// Row of a node on the drawing: embeddings 0, features and errors by layer, logits on top.
fn rows(g: &Graph) -> (Vec<usize>, usize) {
    let max_layer = g
        .nodes
        .iter()
        .filter(|n| matches!(n.kind, NodeKind::Feature | NodeKind::Error))
        .filter_map(|n| n.layer)
        .max()
        .unwrap_or(0)
        .max(0) as usize;
    let top = max_layer + 2;
    let r = g
        .nodes
        .iter()
        .map(|n| match n.kind {
            NodeKind::Embedding => 0,
            NodeKind::Logit => top,
            _ => n
                .layer
                .map_or(1, |l| l.clamp(0, max_layer as i64) as usize + 1),
        })
        .collect();
    (r, top + 1)
}

/// Node positions in pixels.
fn positions(g: &Graph, width: f32, height: f32) -> Vec<(f32, f32)> {
    let (row, n_rows) = rows(g);
    let n_ctx = g
        .nodes
        .iter()
        .map(|n| n.ctx_idx as usize + 1)
        .max()
        .unwrap_or(1)
        .max(g.prompt_tokens.len())
        .max(1);
    let col_w = (width - 80.0) / n_ctx as f32;
    let row_h = (height - 60.0) / n_rows as f32;
    let mut cells: HashMap<(usize, u32), Vec<usize>> = HashMap::new();
    for (i, n) in g.nodes.iter().enumerate() {
        cells.entry((row[i], n.ctx_idx)).or_default().push(i);
    }
    let mut pos = vec![(0.0, 0.0); g.nodes.len()];
    for ((r, c), members) in cells {
        let k = members.len() as f32;
        for (j, &i) in members.iter().enumerate() {
            let x = 70.0 + c as f32 * col_w + col_w * (j as f32 + 0.5) / k;
            let y = height - 40.0 - (r as f32 + 0.5) * row_h;
            pos[i] = (x, y);
        }
    }
    pos
}

fn draw(g: &Graph, name: &str, chains: &[Chain], selected: Option<u32>) -> String {
    let (w, h) = (1160.0f32, 620.0f32);
    let pos = positions(g, w, h);
    let index = g.id_index();
    let mut on_chain_nodes: HashSet<u32> = HashSet::new();
    let mut on_chain_edges: HashSet<(u32, u32)> = HashSet::new();
    for c in chains {
        let ids: Vec<u32> = c
            .nodes
            .iter()
            .filter_map(|n| index.get(n.as_str()).copied())
            .collect();
        on_chain_nodes.extend(&ids);
        on_chain_edges.extend(ids.windows(2).map(|p| (p[0], p[1])));
    }
    let mut order: Vec<usize> = (0..g.edges.len()).collect();
    order.sort_by(|&a, &b| g.edges[b].weight.abs().total_cmp(&g.edges[a].weight.abs()));
    let max_w = order
        .first()
        .map_or(1.0, |&e| g.edges[e].weight.abs())
        .max(1e-12);
    let mut s = format!(
        "<svg class=\"graph\" id=\"graph\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\">"
    );
    // Tokens along the bottom, layer numbers up the side.
    let n_ctx = g.prompt_tokens.len().max(1);
    for (i, t) in g.prompt_tokens.iter().enumerate() {
        let x = 70.0 + (i as f32 + 0.5) * (w - 80.0) / n_ctx as f32;
        let _ = write!(
            s,
            "<text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            h - 12.0,
            Esc(&token_text(t))
        );
    }
    let (_, n_rows) = rows(g);
    let row_h = (h - 60.0) / n_rows as f32;
    for r in 0..n_rows {
        let label = if r == 0 {
            "emb".to_string()
        } else if r == n_rows - 1 {
            "logit".to_string()
        } else {
            format!("L{}", r - 1)
        };
        let _ = write!(
            s,
            "<text x=\"4\" y=\"{:.1}\" class=\"muted\">{label}</text>",
            h - 40.0 - (r as f32 + 0.5) * row_h + 4.0
        );
    }
    let drawn: Vec<usize> = order
        .iter()
        .copied()
        .enumerate()
        .filter(|&(rank, e)| {
            rank < MAX_EDGES_DRAWN
                || on_chain_edges.contains(&(g.edges[e].source, g.edges[e].target))
        })
        .map(|(_, e)| e)
        .collect();
    for &e in drawn.iter().rev() {
        let edge = &g.edges[e];
        let (a, b) = (pos[edge.source as usize], pos[edge.target as usize]);
        let on = on_chain_edges.contains(&(edge.source, edge.target));
        let colour = if on {
            "#f59e0b"
        } else if edge.weight >= 0.0 {
            "#2563eb"
        } else {
            "#dc2626"
        };
        let width = 0.4 + 4.0 * (edge.weight.abs() / max_w) as f32;
        let _ = write!(
            s,
            "<line class=\"edge{}\" x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{colour}\" stroke-width=\"{:.2}\" stroke-opacity=\"{}\"/>",
            if on { " on" } else { "" },
            a.0,
            a.1,
            b.0,
            b.1,
            if on { width.max(2.5) } else { width },
            if on { "0.95" } else { "0.3" }
        );
    }
    for (i, n) in g.nodes.iter().enumerate() {
        let (x, y) = pos[i];
        let on = on_chain_nodes.contains(&(i as u32));
        let sel = selected == Some(i as u32);
        let fill = match n.kind {
            NodeKind::Embedding => "#6b7280",
            NodeKind::Feature => "#4f7cc4",
            NodeKind::Error => "#a3a3a3",
            NodeKind::Logit => "#16a34a",
        };
        let _ = write!(
            s,
            "<a href=\"/graph/{}?node={}\"><circle class=\"node{}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{}\" fill=\"{fill}\" stroke=\"{}\" stroke-width=\"{}\"><title>{}</title></circle>",
            url_part(name),
            url_part(&n.id),
            if on { " on" } else { "" },
            if on || sel { 6.5 } else { 4.0 },
            if sel { "#111" } else if on { "#f59e0b" } else { "#fff" },
            if on || sel { 2.5 } else { 0.8 },
            Esc(&node_title(n))
        );
        if on || sel {
            let short: String = n.display_label().chars().take(28).collect();
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                x + 8.0,
                y - 6.0,
                Esc(&short)
            );
        }
        s.push_str("</a>");
    }
    s.push_str("</svg>");
    s
}

fn node_title(n: &Node) -> String {
    let mut t = format!("{} · {}", n.id, n.display_label());
    if let Some(a) = n.activation {
        let _ = write!(t, " · activation {}", num(a));
    }
    if let Some(p) = n.probability {
        let _ = write!(t, " · p {}", num(p));
    }
    t
}

fn node_link(name: &str, n: &Node) -> String {
    format!(
        "<a href=\"/graph/{}?node={}\">{}</a> <span class=\"name\">{}</span>",
        url_part(name),
        url_part(&n.id),
        Esc(&n.id),
        Esc(&n.display_label())
    )
}

fn chain_table(name: &str, chains: &[Chain]) -> String {
    if chains.is_empty() {
        return "<p class=\"muted\" id=\"chains\">no chain matches</p>".into();
    }
    let rows: Vec<Vec<String>> = chains
        .iter()
        .map(|c| {
            let path = c
                .nodes
                .iter()
                .zip(&c.labels)
                .map(|(id, label)| {
                    format!(
                        "<a href=\"/graph/{}?node={}\" title=\"{}\">{}</a>",
                        url_part(name),
                        url_part(id),
                        Esc(id),
                        Esc(label)
                    )
                })
                .collect::<Vec<_>>()
                .join(" → ");
            vec![
                c.rank.to_string(),
                num(c.score),
                if c.sign >= 0 {
                    "+".into()
                } else {
                    "−".into()
                },
                path,
            ]
        })
        .collect();
    format!(
        "<h2>Chains</h2><div id=\"chains\">{}</div>",
        table("chains", &["rank", "score", "sign", "path"], &rows)
    )
}

fn node_section(g: &Graph, name: &str, i: u32) -> String {
    let n = &g.nodes[i as usize];
    let mut ins: Vec<_> = g.edges.iter().filter(|e| e.target == i).collect();
    let mut outs: Vec<_> = g.edges.iter().filter(|e| e.source == i).collect();
    ins.sort_by(|a, b| b.weight.abs().total_cmp(&a.weight.abs()));
    outs.sort_by(|a, b| b.weight.abs().total_cmp(&a.weight.abs()));
    let rows = |edges: &[&saedb_engine::graph::Edge],
                other: fn(&saedb_engine::graph::Edge) -> u32| {
        edges
            .iter()
            .take(MAX_NODE_EDGES)
            .map(|e| {
                vec![
                    format!("<span class=\"n\">{}</span>", num(e.weight)),
                    node_link(name, &g.nodes[other(e) as usize]),
                ]
            })
            .collect::<Vec<_>>()
    };
    format!(
        "<h2 id=\"node\">Node {} <span class=\"name\">{}</span></h2><p class=\"note\">{}</p>\
         <div class=\"grid\"><div><h3>Inputs ({})</h3>{}</div><div><h3>Outputs ({})</h3>{}</div></div>",
        Esc(&n.id),
        Esc(&n.display_label()),
        Esc(&node_title(n)),
        ins.len(),
        table("inputs", &["weight", "from"], &rows(&ins, |e| e.source)),
        outs.len(),
        table("outputs", &["weight", "to"], &rows(&outs, |e| e.target)),
    )
}
