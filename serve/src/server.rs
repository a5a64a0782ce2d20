//! The HTTP side: options, routes, limits, and running store work off the async workers.

use crate::html::{Esc, Page, CSS, JS};
use crate::pages;
use crate::pages::console::Outcome;
use crate::state::{AppState, ServeOptions, MAX_BODY_BYTES, MAX_STATEMENT_BYTES};
use crate::{PageError, PageResult};
use axum::extract::{DefaultBodyLimit, Form, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use saedb_engine::Store;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, Semaphore};

/// A running server; dropping it stops it.
pub struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Server {
    /// Binds and starts serving `store` on a thread of its own; returns once it accepts
    /// connections. A store opened read-only refuses `writable`.
    pub fn start(store: Arc<Store>, opts: ServeOptions) -> std::io::Result<Server> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_io()
            .enable_time()
            .thread_name("saedb-serve")
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind((opts.host, opts.port)))?;
        let addr = listener.local_addr()?;
        // Pages name dozens of features by their frequent tokens: the engine's per-dictionary
        // summary behind those names is computed now, beside the first requests.
        let names = store.clone();
        std::thread::Builder::new()
            .name("saedb-serve-names".into())
            .spawn(move || {
                if let Err(e) = names.prepare_names() {
                    eprintln!("warning: feature names not prepared: {e}");
                }
            })?;
        let state = Arc::new(AppState {
            store,
            statements: Arc::new(Semaphore::new(opts.max_running_statements.max(1))),
            opts,
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(state);
        let thread = std::thread::Builder::new()
            .name("saedb-serve".into())
            .spawn(move || {
                runtime.block_on(async move {
                    axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = stopped.await;
                        })
                        .await
                })
            })?;
        Ok(Server {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Blocks until the server stops (it runs until the process ends).
    pub fn wait(mut self) -> std::io::Result<()> {
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(std::io::Error::other("the server thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/search", get(search))
        .route("/query", get(console_get).post(console_post))
        .route("/f/{dict}/{index}", get(feature))
        .route("/f/{dict}/{index}/label", axum::routing::post(set_label))
        .route("/f/{dict}/{index}/text", get(text_on_feature))
        .route("/f/{dict}/{index}/steer", get(steer_feature))
        .route("/map/{dict}", get(map))
        .route("/doc/{doc}", get(document))
        .route("/doc/{doc}/at/{pos}", get(features_at))
        .route("/graph/{name}", get(graph))
        .route(
            "/static/saedb.css",
            get(|| async { asset("text/css; charset=utf-8", CSS) }),
        )
        .route(
            "/static/saedb.js",
            get(|| async { asset("text/javascript; charset=utf-8", JS) }),
        )
        .fallback(|| async { error_page(PageError::NotFound("no such page".into())) })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

type Params = Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>;
type St = State<Arc<AppState>>;

async fn home(State(st): St) -> Response {
    render(&st, pages::home::page).await
}

async fn search(State(st): St, q: Params) -> Response {
    let q = match params(q) {
        Ok(q) => q,
        Err(e) => return error_page(e),
    };
    let text = q.get("q").cloned().unwrap_or_default();
    render(&st, move |st| pages::home::search(st, &text)).await
}

async fn console_get(State(st): St, q: Params) -> Response {
    let q = match params(q) {
        Ok(q) => q,
        Err(e) => return error_page(e),
    };
    console(st, q.get("q").cloned()).await
}

async fn console_post(
    State(st): St,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, axum::extract::rejection::FormRejection>,
) -> Response {
    if let Err(e) = same_origin(&headers) {
        return error_page(e);
    }
    match form {
        Ok(Form(f)) => console(st, f.get("q").cloned()).await,
        Err(e) => form_error(e),
    }
}

/// A form that could not be read: too large (413) or malformed (400).
fn form_error(e: axum::extract::rejection::FormRejection) -> Response {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return error_page(PageError::TooLarge(format!(
            "the request body is over the limit of {MAX_BODY_BYTES} bytes"
        )));
    }
    error_page(PageError::BadRequest(format!("malformed form: {e}")))
}

/// Runs a console statement under the statement slots and the query time limit.
async fn console(st: Arc<AppState>, statement: Option<String>) -> Response {
    let Some(text) = statement.filter(|s| !s.trim().is_empty()) else {
        return respond(Ok(pages::console::page(&st, None, None)));
    };
    if text.len() > MAX_STATEMENT_BYTES {
        return error_page(PageError::BadRequest(format!(
            "the statement has {} bytes; the console takes at most {MAX_STATEMENT_BYTES}",
            text.len()
        )));
    }
    let limit = st.opts.query_timeout;
    let started = tokio::time::Instant::now();
    let permit = match tokio::time::timeout(limit, st.statements.clone().acquire_owned()).await {
        Ok(Ok(p)) => p,
        _ => {
            return respond(Ok(pages::console::page(
                &st,
                Some(&text),
                Some(Outcome::failed(timeout_message(
                    limit,
                    Some(st.opts.max_running_statements),
                ))),
            )))
        }
    };
    let remaining = limit.saturating_sub(started.elapsed());
    let st2 = st.clone();
    let t2 = text.clone();
    let session = saedb_query::Session::new(st.store.clone());
    let cancel = session.cancel_handle();
    let work = tokio::task::spawn_blocking(move || {
        let _permit = permit; // held until the statement stops
        pages::console::run(&st2, session, &t2)
    });
    let outcome = match tokio::time::timeout(remaining, work).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Outcome::failed(
            "internal error: the statement panicked (this is a bug in saedb)".into(),
        ),
        Err(_) => {
            // Long reads and scripts watch the flag: the statement stops and frees its slot.
            cancel.cancel();
            Outcome::failed(timeout_message(limit, None))
        }
    };
    respond(Ok(pages::console::page(&st, Some(&text), Some(outcome))))
}

/// The console's answer when the time limit passed: while waiting for one of the `busy`
/// statement slots, or while the statement ran.
fn timeout_message(limit: Duration, busy: Option<usize>) -> String {
    if let Some(n) = busy {
        format!(
            "the server is busy: {n} statements are running and none finished within the time \
             limit of {} s; try again",
            limit.as_secs_f64()
        )
    } else {
        format!(
            "time limit exceeded: the statement ran longer than {} s and was stopped \
             (narrow it with LIMIT or WHERE, or run it with `saedb query`, which has no limit)",
            limit.as_secs_f64()
        )
    }
}

async fn feature(State(st): St, Path((dict, index)): Path<(String, String)>) -> Response {
    let f = match pages::parse_feature(&dict, &index) {
        Ok(f) => f,
        Err(e) => return error_page(e),
    };
    render(&st, move |st| pages::feature::page(st, &f)).await
}

/// "Test your own text": the feature's value at every token of `?text=`.
async fn text_on_feature(
    State(st): St,
    Path((dict, index)): Path<(String, String)>,
    q: Params,
) -> Response {
    let (f, q) = match pages::parse_feature(&dict, &index).and_then(|f| Ok((f, params(q)?))) {
        Ok(x) => x,
        Err(e) => return error_page(e),
    };
    let text = q.get("text").cloned().unwrap_or_default();
    if text.len() > MAX_STATEMENT_BYTES {
        return error_page(PageError::BadRequest(format!(
            "the text has {} bytes; this page takes at most {MAX_STATEMENT_BYTES}",
            text.len()
        )));
    }
    render(&st, move |st| pages::live::text_page(st, &f, &text)).await
}

/// Steering: the default continuation of `?prompt=` beside the one with the feature clamped
/// (`how=clamp`, `value`, `times_max`) or steered (`how=steer`, `value`).
async fn steer_feature(
    State(st): St,
    Path((dict, index)): Path<(String, String)>,
    q: Params,
) -> Response {
    let (f, q) = match pages::parse_feature(&dict, &index).and_then(|f| Ok((f, params(q)?))) {
        Ok(x) => x,
        Err(e) => return error_page(e),
    };
    let form = match steer_form(&q) {
        Ok(form) => form,
        Err(e) => return error_page(e),
    };
    render(&st, move |st| pages::live::steer_page(st, &f, &form)).await
}

/// The steering form's fields, checked.
fn steer_form(q: &HashMap<String, String>) -> PageResult<pages::live::SteerForm> {
    let bad = |m: String| PageError::BadRequest(m);
    let prompt = q.get("prompt").cloned().unwrap_or_default();
    if prompt.len() > MAX_STATEMENT_BYTES {
        return Err(bad(format!(
            "the prompt has {} bytes; this page takes at most {MAX_STATEMENT_BYTES}",
            prompt.len()
        )));
    }
    let clamp = match q.get("how").map(String::as_str) {
        None | Some("clamp") => true,
        Some("steer") => false,
        Some(other) => return Err(bad(format!("how= is clamp or steer, not '{other}'"))),
    };
    let value = match q.get("value").map(|v| v.trim().parse::<f32>()) {
        None => 2.0,
        Some(Ok(v)) if v.is_finite() => v,
        _ => return Err(bad("value= must be a finite number".into())),
    };
    let max_tokens = match q.get("max_tokens").map(|v| v.trim().parse::<usize>()) {
        None => pages::live::DEFAULT_NEW_TOKENS,
        Some(Ok(n)) if (1..=pages::live::MAX_NEW_TOKENS).contains(&n) => n,
        _ => {
            return Err(bad(format!(
                "max_tokens= must be between 1 and {}",
                pages::live::MAX_NEW_TOKENS
            )))
        }
    };
    Ok(pages::live::SteerForm {
        prompt,
        clamp,
        value,
        times_max: q.get("times_max").is_some_and(|v| v != "off" && v != "0"),
        max_tokens,
    })
}

async fn set_label(
    State(st): St,
    headers: HeaderMap,
    Path((dict, index)): Path<(String, String)>,
    form: Result<Form<HashMap<String, String>>, axum::extract::rejection::FormRejection>,
) -> Response {
    if !st.opts.writable {
        return error_page(PageError::Forbidden(
            "this server is read-only: start it with `saedb serve --writable` to edit labels"
                .into(),
        ));
    }
    if let Err(e) = same_origin(&headers) {
        return error_page(e);
    }
    let f = match pages::parse_feature(&dict, &index) {
        Ok(f) => f,
        Err(e) => return error_page(e),
    };
    let label = match form {
        Ok(Form(m)) => m.get("label").cloned().unwrap_or_default(),
        Err(e) => return form_error(e),
    };
    let url = crate::html::feature_url(&f);
    let r = blocking(&st, st.opts.page_timeout, move |st| {
        st.store.set_label(&f, &label).map_err(PageError::from)
    })
    .await;
    match r {
        Ok(()) => Redirect::to(&url).into_response(),
        Err(e) => error_page(e),
    }
}

async fn map(State(st): St, Path(dict): Path<String>, q: Params) -> Response {
    let q = match params(q) {
        Ok(q) => q,
        Err(e) => return error_page(e),
    };
    let focus = q.get("focus").and_then(|s| s.parse::<u32>().ok());
    // The first map of a large dictionary takes seconds: allowed the page time limit.
    render(&st, move |st| pages::map::page(st, &dict, focus)).await
}

async fn document(State(st): St, Path(doc): Path<String>) -> Response {
    let Ok(doc) = doc.parse::<u32>() else {
        return error_page(PageError::NotFound(format!(
            "'{doc}' is not a document number"
        )));
    };
    render(&st, move |st| pages::document::page(st, doc, None)).await
}

async fn features_at(State(st): St, Path((doc, pos)): Path<(String, String)>) -> Response {
    let (Ok(doc), Ok(pos)) = (doc.parse::<u32>(), pos.parse::<u32>()) else {
        return error_page(PageError::NotFound(
            "a token is /doc/<document number>/at/<position>".into(),
        ));
    };
    render(&st, move |st| pages::document::page(st, doc, Some(pos))).await
}

async fn graph(State(st): St, Path(name): Path<String>, q: Params) -> Response {
    let q = match params(q) {
        Ok(q) => q,
        Err(e) => return error_page(e),
    };
    render(&st, move |st| pages::graph::page(st, &name, &q)).await
}

/// A page built off the async workers within the page time limit, with the time it took in a
/// `Server-Timing` header (what the benchmark reads).
async fn render(
    st: &Arc<AppState>,
    work: impl FnOnce(&AppState) -> PageResult + Send + 'static,
) -> Response {
    let started = std::time::Instant::now();
    let r = blocking(st, st.opts.page_timeout, work).await;
    let mut resp = respond(r);
    let ms = started.elapsed().as_secs_f64() * 1e3;
    if let Ok(v) = HeaderValue::from_str(&format!("page;dur={ms:.2}")) {
        resp.headers_mut().insert("server-timing", v);
    }
    resp
}

/// Runs store work on the blocking pool within `limit`; a panic becomes a 500.
async fn blocking<T: Send + 'static>(
    st: &Arc<AppState>,
    limit: Duration,
    work: impl FnOnce(&AppState) -> PageResult<T> + Send + 'static,
) -> PageResult<T> {
    let st = st.clone();
    let task = tokio::task::spawn_blocking(move || work(&st));
    match tokio::time::timeout(limit, task).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err(PageError::Internal(
            "internal error while building the page (this is a bug in saedb)".into(),
        )),
        Err(_) => Err(PageError::Timeout(format!(
            "the page took longer than {} s and was abandoned",
            limit.as_secs_f64()
        ))),
    }
}

fn params(q: Params) -> PageResult<HashMap<String, String>> {
    q.map(|Query(m)| m)
        .map_err(|e| PageError::BadRequest(format!("malformed query string: {e}")))
}

/// Forms are only taken from pages of this server: a browser names the page a form came from
/// in `Origin` (and `Sec-Fetch-Site`), and another site's page must not edit labels.
fn same_origin(headers: &HeaderMap) -> PageResult<()> {
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if matches!(site, Some("cross-site") | Some("same-site")) {
        return Err(PageError::Forbidden(
            "forms are only accepted from this server's own pages".into(),
        ));
    }
    let (Some(origin), Some(host)) = (headers.get(header::ORIGIN), headers.get(header::HOST))
    else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("");
    let host = host.to_str().unwrap_or("");
    let bare = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or(origin);
    if origin == "null" || bare != host {
        return Err(PageError::Forbidden(
            "forms are only accepted from this server's own pages".into(),
        ));
    }
    Ok(())
}

fn respond(r: PageResult<String>) -> Response {
    match r {
        Ok(body) => html_response(StatusCode::OK, body),
        Err(e) => error_page(e),
    }
}

/// The page shown for an error, with its status.
pub(crate) fn error_page(e: PageError) -> Response {
    let (status, title) = match &e {
        PageError::NotFound(_) => (StatusCode::NOT_FOUND, "Not found"),
        PageError::BadRequest(_) => (StatusCode::BAD_REQUEST, "Bad request"),
        PageError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "Too large"),
        PageError::Forbidden(_) => (StatusCode::FORBIDDEN, "Not allowed"),
        PageError::Timeout(_) => (StatusCode::SERVICE_UNAVAILABLE, "Too slow"),
        PageError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "Error"),
    };
    let mut page = Page::new(title);
    page.push(format!(
        "<h1>{} <span class=\"muted\">{}</span></h1><p class=\"error\">{}</p>\
         <p><a href=\"/\">Back to the store</a></p>",
        Esc(title),
        status.as_u16(),
        Esc(&e.to_string())
    ));
    html_response(status, page.render())
}

fn html_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    security_headers(h);
    r
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    security_headers(h);
    r
}

/// Scripts only from this server, nothing from elsewhere, no framing.
fn security_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}
