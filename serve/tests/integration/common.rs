//! What the server tests share: a store built from the real MiniLM fixture (plus a document of
//! hostile tokens and a graph), a server on a free port, and a minimal HTTP/1.1 client over a
//! plain TCP socket (so the tests see exactly the bytes a browser gets).
#![allow(dead_code)]

use saedb_engine::{FeatureRef, NoProgress, Store};
use saedb_serve::{ServeOptions, Server};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The document of hostile tokens the escaping tests look at.
pub const HOSTILE_DOC: u32 = 900;
pub const HOSTILE_LABEL: &str = "<script>alert('x')</script> & \"money\"";
/// The feature that carries it.
pub const HOSTILE_FEATURE: u32 = 7;

/// minilm-mini's L2 and L4 with their latents and documents, the small graph, a document of
/// hostile tokens, and two labels (one hostile).
pub fn fixture_store(dir: &Path) -> Arc<Store> {
    let data = repo().join("fixtures/minilm-mini");
    let store = Store::create_or_open(dir.join("store")).unwrap();
    for d in ["L2", "L4"] {
        store
            .ingest_dictionary(d, &data.join(format!("sae_{d}")), &NoProgress)
            .unwrap();
    }
    store
        .ingest_tokens(&data.join("tokens.jsonl"), &NoProgress)
        .unwrap();
    for d in ["L2", "L4"] {
        store
            .ingest_latents(
                d,
                &data.join(format!("latents_{d}.safetensors")),
                &NoProgress,
            )
            .unwrap();
    }
    let hostile = dir.join("hostile.jsonl");
    std::fs::write(
        &hostile,
        format!(
            "{}\n",
            serde_json::json!({
                "doc": HOSTILE_DOC,
                "source": "<b>src</b>",
                "text": "<script>alert(1)</script>",
                "tokens": ["<script>", "alert('&amp;')", "\"q\"", "</script>"],
                "token_ids": [1, 2, 3, 4]
            })
        ),
    )
    .unwrap();
    store.ingest_tokens(&hostile, &NoProgress).unwrap();
    store
        .ingest_graph(
            "small",
            &repo().join("fixtures/graphs/small.json"),
            &NoProgress,
        )
        .unwrap();
    store
        .set_label(&FeatureRef::new("L2", HOSTILE_FEATURE), HOSTILE_LABEL)
        .unwrap();
    store
        .set_label(&FeatureRef::new("L2", 3), "Python keywords")
        .unwrap();
    Arc::new(store)
}

pub fn start(store: Arc<Store>, writable: bool) -> Server {
    start_with(
        store,
        ServeOptions {
            port: 0,
            writable,
            ..ServeOptions::default()
        },
    )
}

pub fn start_with(store: Arc<Store>, opts: ServeOptions) -> Server {
    Server::start(store, opts).unwrap()
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The text of the element with `id="..."` (up to its first closing tag).
    pub fn by_id(&self, id: &str) -> Option<String> {
        let at = self.body.find(&format!("id=\"{id}\""))?;
        let open_end = at + self.body[at..].find('>')? + 1;
        let close = open_end + self.body[open_end..].find("</")?;
        Some(self.body[open_end..close].to_string())
    }
}

pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, &[], b"")
}

pub fn post_form(
    addr: SocketAddr,
    path: &str,
    form: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> Response {
    let body = form
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let mut h = vec![("Content-Type", "application/x-www-form-urlencoded")];
    h.extend_from_slice(headers);
    request(addr, "POST", path, &h, body.as_bytes())
}

pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    parse(&raw)
}

fn parse(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body: String::from_utf8(body).expect("UTF-8 body"),
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 2 + n + 2..];
    }
    out
}
