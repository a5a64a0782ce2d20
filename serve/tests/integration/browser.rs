//! A real browser (Debian's chromium, driven through chromedriver by fantoccini) walks the pages
//! on the MiniLM fixture: home → label search → feature page → a neighbour → its map → a
//! document token → the features at it; then the graph page with a CHAINS form. It asserts on
//! what the pages show and saves screenshots under the target directory's `screenshots/`.
//! Skips with a message when chromium or chromedriver is not installed (.ci/run installs both).

use crate::common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"));
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, dir: &Path, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(dir.join(name), png).unwrap();
}

async fn text_of(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[test]
fn a_browser_walks_from_home_to_features_at_a_token() {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        eprintln!("skipping: {CHROMIUM} or {CHROMEDRIVER} is not installed (apt-get install chromium chromium-driver)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = fixture_store(dir.path());
    let server = start(store.clone(), false);
    let base = format!("http://{}", server.addr());
    let port = free_port();
    let driver = Driver(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "chromedriver did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let shots = screenshots_dir();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1400,1100", "--user-data-dir=".to_string() + &dir.path().join("chrome").display().to_string()]
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let c = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a chromedriver session");

        // Home: the dictionaries, then a label search.
        c.goto(&format!("{base}/")).await.unwrap();
        assert!(text_of(&c, "table.dicts").await.contains("L4"));
        shot(&c, &shots, "home.png").await;
        let search = c.find(Locator::Id("label-search")).await.unwrap();
        search.send_keys("python").await.unwrap();
        search.send_keys("\u{E007}").await.unwrap(); // Enter submits the form
        c.wait().for_element(Locator::Id("hits")).await.unwrap();
        assert!(text_of(&c, "#hits").await.starts_with("1 feature"));

        // The hit's feature page.
        c.find(Locator::Css("table.hits a.feat")).await.unwrap().click().await.unwrap();
        c.wait().for_element(Locator::Id("feature")).await.unwrap();
        assert_eq!(text_of(&c, "#feature").await, "L2/3");
        assert_eq!(text_of(&c, "#label").await, "Python keywords");
        let count = store.feature_stats(&saedb_engine::FeatureRef::new("L2", 3)).unwrap().count;
        assert_eq!(text_of(&c, "#count").await.replace(',', ""), count.to_string());
        // Hovering a token shows its value: the title of the outlined token of the first row.
        let hit = c.find(Locator::Css("table.top span.tok.hit")).await.unwrap();
        let title = hit.attr("title").await.unwrap().unwrap();
        let first_value = c.find(Locator::Css("table.top td span.n")).await.unwrap().text().await.unwrap();
        assert!(title.ends_with(&format!("· {first_value}")), "{title} vs {first_value}");
        shot(&c, &shots, "feature.png").await;

        // Its nearest neighbour in the same dictionary.
        let nb = c.find(Locator::Css("table.nb-L2 a.feat")).await.unwrap();
        let nb_name = nb.text().await.unwrap();
        nb.click().await.unwrap();
        c.wait().for_element(Locator::Id("feature")).await.unwrap();
        assert_eq!(text_of(&c, "#feature").await, nb_name);
        let nb_index: u32 = nb_name.trim_start_matches("L2/").parse().unwrap();

        // Its map: the neighbour is drawn as the map's subject; the search box finds labels.
        c.find(Locator::LinkText("on the map of L2")).await.unwrap().click().await.unwrap();
        c.wait().for_element(Locator::Id("map")).await.unwrap();
        assert!(c.current_url().await.unwrap().as_str().ends_with(&format!("/map/L2?focus={nb_index}")));
        let me = c.find(Locator::Css("circle.pt.me")).await.unwrap();
        assert!(me.attr("data-name").await.unwrap().unwrap().starts_with(&nb_name));
        c.find(Locator::Id("map-search")).await.unwrap().send_keys("python keywords").await.unwrap();
        assert_eq!(text_of(&c, "#map-count").await, "1 match");
        assert_eq!(c.find_all(Locator::Css("circle.pt.hl")).await.unwrap().len(), 1);
        shot(&c, &shots, "map.png").await;

        // A document: click a token, see the features at it.
        c.goto(&format!("{base}/doc/5")).await.unwrap();
        c.find(Locator::Id("t3")).await.unwrap().click().await.unwrap();
        c.wait().for_element(Locator::Id("features-at")).await.unwrap();
        assert!(c.current_url().await.unwrap().as_str().ends_with("/doc/5/at/3"));
        let at = store.features_at(5, 3, None).unwrap();
        let rows = c.find_all(Locator::Css("table.at tbody tr")).await.unwrap();
        assert_eq!(rows.len(), at.len());
        let first = c.find(Locator::Css("table.at a.feat")).await.unwrap().text().await.unwrap();
        assert_eq!(first, at[0].feature.to_string());
        shot(&c, &shots, "document.png").await;

        // The graph, with the chains to the target logit highlighted.
        c.goto(&format!("{base}/graph/small")).await.unwrap();
        c.find(Locator::Id("chains-run")).await.unwrap().click().await.unwrap();
        c.wait().for_element(Locator::Id("chains")).await.unwrap();
        let on = c.find_all(Locator::Css("line.edge.on")).await.unwrap();
        assert!(!on.is_empty(), "chains are highlighted on the drawing");
        shot(&c, &shots, "graph.png").await;
        c.close().await.unwrap();
    });
    drop(driver);
    eprintln!("screenshots in {}", shots.display());
}
