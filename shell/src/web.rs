//! `saedb serve`, `saedb export html` and `saedb ingest labels`: the web pages and the labels
//! that make them readable.

use crate::stores::{must_exist, naming, open_existing, open_existing_read_only, store_error};
use anyhow::{anyhow, bail, Context, Result};
use saedb_engine::{FeatureRef, Store};
use saedb_query::render::thousands;
use saedb_serve::{ServeOptions, Server};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub fn serve(store: &Path, host: IpAddr, port: u16, writable: bool, timeout: f64) -> Result<()> {
    if !(timeout.is_finite() && timeout > 0.0 && timeout <= 3600.0) {
        bail!("--query-timeout must be a number of seconds between 0 and 3600, not {timeout}");
    }
    let opened = if writable {
        if !store.is_dir() {
            bail!(
                "{}: no such store (a store is a directory made by `saedb ingest`)",
                store.display()
            );
        }
        Store::open(store).map_err(|e| store_error(store, e))?
    } else {
        open_existing_read_only(store)?
    };
    let opts = ServeOptions {
        host,
        port,
        writable,
        query_timeout: Duration::from_secs_f64(timeout),
        ..ServeOptions::default()
    };
    let server = Server::start(Arc::new(opened), opts)
        .map_err(|e| anyhow!("cannot listen on {host}:{port}: {e}"))?;
    if !host.is_loopback() {
        eprintln!(
            "warning: listening on {host}: anyone who can reach this address can read the store"
        );
    }
    eprintln!(
        "serving {} at http://{}/ ({}); Ctrl-C stops",
        store.display(),
        server.addr(),
        if writable { "writable" } else { "read-only" }
    );
    server
        .wait()
        .map_err(|e| anyhow!("the server stopped: {e}"))
}

pub fn export_html(store: &Path, feature: &str, out: &Path) -> Result<()> {
    let f = parse_feature(feature)?;
    let opened = Arc::new(open_existing_read_only(store)?);
    let html = saedb_serve::feature_page_standalone(&opened, &f).map_err(|e| naming(store, e))?;
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let file = out.join(format!("{}-{}.html", f.dict, f.index));
    let tmp = out.join(format!(".{}-{}.html.tmp", f.dict, f.index));
    std::fs::write(&tmp, html).with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::rename(&tmp, &file).with_context(|| format!("{}: cannot write", file.display()))?;
    crate::output::println(&format!("wrote {}", file.display()));
    Ok(())
}

/// `L2/1234` → the feature; the dictionary name may itself hold no '/'.
fn parse_feature(s: &str) -> Result<FeatureRef> {
    let (d, i) = s
        .rsplit_once('/')
        .ok_or_else(|| anyhow!("--feature '{s}': expected DICTIONARY/INDEX, e.g. L2/1234"))?;
    let i = i
        .parse::<u32>()
        .map_err(|_| anyhow!("--feature '{s}': '{i}' is not a feature number"))?;
    if d.is_empty() {
        bail!("--feature '{s}': the dictionary name is missing");
    }
    Ok(FeatureRef::new(d, i))
}

pub fn ingest_labels(store: &Path, dict: &str, file: &Path) -> Result<()> {
    must_exist(file)?;
    let opened = open_existing(store)?;
    let r = opened
        .import_labels(dict, file)
        .map_err(|e| naming(file, e))?;
    crate::output::println(&format!(
        "imported labels into {} from {}: {} new, {} replaced, {} skipped ({} empty, {} repeated, {} unchanged) of {} entries",
        r.dictionary,
        r.path,
        thousands(r.new),
        thousands(r.replaced),
        thousands(r.skipped),
        thousands(r.skipped_empty),
        thousands(r.skipped_duplicate),
        thousands(r.skipped_unchanged),
        thousands(r.entries)
    ));
    Ok(())
}
