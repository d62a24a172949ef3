//! The `/ui` topology page in a real browser (headless Chromium over
//! WebDriver) against a `causeway dev up` clusterset: every cluster and link
//! drawn, rates that move with traffic through the tunnel, and a killed
//! cluster's links red within 2 s. Regenerates docs/ui.png.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use causeway::dev::http::get_json;
use causeway::dev::{ClustersFile, HELLO_PORT, PlanOptions};
use causeway::status::ClusterStatus;
use rustix::process::{Pid, Signal, kill_process};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::webdriver::Browser;
use support::{BIN, Guard, skip, wait_for};

const LIMIT: Duration = Duration::from_secs(90);
/// The bound: a dead cluster's links turn red within 2 s.
const RED_WITHIN: Duration = Duration::from_secs(2);
const LINKS: &str = "return [...document.querySelectorAll('g.link')].map(g => ({a: g.dataset.a, b: g.dataset.b, state: g.dataset.state, bytes: +g.dataset.bytes, conns: +g.dataset.conns, stroke: getComputedStyle(g.querySelector('line')).stroke}));";

/// A base port whose whole plan (and the page's port) is free now.
async fn free_base(n: usize, dir: &Path) -> u16 {
    let mut base = 23000;
    for _ in 0..50 {
        let mut o = PlanOptions::new(n, dir);
        o.base_port = base;
        let plan = causeway::dev::plan(&o).unwrap();
        if causeway::dev::busy(&plan).await.is_empty() {
            return base;
        }
        base += 100;
    }
    panic!("no free ports");
}

/// `dev up --json` for three clusters: the child and its clusters.json line.
async fn dev_up(dir: &Path) -> (Guard, ClustersFile) {
    let base = free_base(3, dir).await;
    let out = dir.with_extension("stdout");
    let child = Command::new(BIN)
        .args(["dev", "up", "--json", "--clusters", "3", "--base-port"])
        .arg(base.to_string())
        .arg("--dir")
        .arg(dir)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let guard = Guard(Some(child));
    let line = wait_for("dev up --json", LIMIT, || async {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        text.lines()
            .next()
            .filter(|_| text.ends_with('\n'))
            .map(str::to_owned)
    })
    .await;
    let file: ClustersFile = serde_json::from_str(&line).unwrap();
    assert_eq!(file.clusters.len(), 3, "{line}");
    assert_eq!(
        file.ui.as_deref(),
        Some(format!("http://127.0.0.1:{}/ui", base + 9).as_str())
    );
    (guard, file)
}

/// One connection to `vip`: `n` pipelined GETs with a 16 KiB header each; the
/// number of answers from bravo.
async fn burst(vip: SocketAddr, n: usize) -> usize {
    let Ok(Ok(mut s)) = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(vip)).await
    else {
        return 0;
    };
    let pad = "x".repeat(16 << 10);
    let req = format!("GET / HTTP/1.1\r\nHost: hello\r\nX-Pad: {pad}\r\n\r\n").repeat(n);
    let work = async {
        s.write_all(req.as_bytes()).await?;
        let (mut got, mut buf) = (Vec::new(), [0u8; 8192]);
        while count(&got) < n {
            let k = s.read(&mut buf).await?;
            if k == 0 {
                break;
            }
            got.extend_from_slice(&buf[..k]);
        }
        std::io::Result::Ok(count(&got))
    };
    tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(0)
}

fn count(got: &[u8]) -> usize {
    String::from_utf8_lossy(got)
        .matches("hello from bravo\n")
        .count()
}

/// The clusters `dev up` started, killed if the test ends early (dev up
/// itself is killed by its [`Guard`] and cannot stop them then).
struct Clusters(Vec<u32>);

impl Drop for Clusters {
    fn drop(&mut self) {
        for pid in &self.0 {
            signal(*pid, Signal::KILL);
        }
    }
}

fn signal(pid: u32, sig: Signal) {
    let _ = kill_process(Pid::from_raw(pid as i32).unwrap(), sig);
}

fn link<'a>(links: &'a Value, a: &str, b: &str) -> Option<&'a Value> {
    links
        .as_array()?
        .iter()
        .find(|l| l["a"] == a && l["b"] == b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_shows_clusters_links_traffic_and_a_dead_cluster() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dev");
    let (mut up, file) = dev_up(&dir).await;
    let _clusters = Clusters(file.clusters.iter().filter_map(|c| c.pid).collect());
    let (alpha, charlie) = (&file.clusters[0], &file.clusters[2]);

    // A cluster's own /v1/status is what `status --json` prints, with rates.
    let st: ClusterStatus = get_json(alpha.admin, "/v1/status", LIMIT).await.unwrap();
    assert_eq!(st.cluster, "alpha");
    let peers: Vec<_> = st.peers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(peers, ["bravo", "charlie"]);
    let raw = causeway::dev::http::get(alpha.admin, "/v1/status", LIMIT)
        .await
        .unwrap()
        .1;
    assert!(
        !raw.contains("PRIVATE KEY") && !raw.contains("key.pem"),
        "{raw}"
    );
    let page = causeway::dev::http::get(alpha.admin, "/ui", LIMIT)
        .await
        .unwrap();
    assert!(page.0 == 200 && page.1.contains("EventSource(\"/ui/events\")"));

    let browser = match Browser::start().await {
        Ok(b) => b,
        Err(why) => return skip("ui_shows_clusters_links_traffic_and_a_dead_cluster", &why),
    };
    // One cluster's own page: itself, and its peers as it sees them.
    let nodes = "return [...document.querySelectorAll('g.node')].map(g => g.dataset.name + ':' + g.dataset.state);";
    browser.goto(&format!("http://{}/ui", alpha.admin)).await;
    wait_for("alpha's own page", LIMIT, || async {
        let n = browser.script(nodes).await;
        let want = serde_json::json!(["alpha:up", "bravo:unknown", "charlie:unknown"]);
        let l = browser.script(LINKS).await;
        let up = |b| link(&l, "alpha", b).is_some_and(|l| l["state"] == "up");
        (n == want && up("bravo") && up("charlie")).then_some(())
    })
    .await;

    browser.goto(file.ui.as_deref().unwrap()).await;
    wait_for("three clusters up on the page", LIMIT, || async {
        let v = browser.script(nodes).await;
        (v == serde_json::json!(["alpha:up", "bravo:up", "charlie:up"])).then_some(())
    })
    .await;
    wait_for("three links up on the page", LIMIT, || async {
        let v = browser.script(LINKS).await;
        let pairs = [
            ("alpha", "bravo"),
            ("alpha", "charlie"),
            ("bravo", "charlie"),
        ];
        let all = pairs
            .iter()
            .all(|(a, b)| link(&v, a, b).is_some_and(|l| l["state"] == "up"));
        (all && v.as_array().unwrap().len() == 3).then_some(())
    })
    .await;

    // Traffic from alpha to bravo's own service: the alpha–bravo counters move.
    let vip = file
        .services
        .iter()
        .find(|s| s.name == "demo/hello-bravo")
        .unwrap();
    let vip = SocketAddr::new(vip.cluster_set_ips["alpha"], HELLO_PORT);
    let idle = browser.script(LINKS).await;
    let idle = link(&idle, "alpha", "bravo").unwrap()["bytes"]
        .as_f64()
        .unwrap();
    let (mut answered, started) = (0, Instant::now());
    let mut seen = None;
    for _ in 0..300 {
        answered += burst(vip, 20).await;
        let v = browser.script(LINKS).await;
        let l = link(&v, "alpha", "bravo").unwrap().clone();
        if l["conns"].as_f64().unwrap() > 0.0 && l["bytes"].as_f64().unwrap() > 200_000.0 {
            seen = Some(l);
            break;
        }
        if started.elapsed() > LIMIT {
            break;
        }
    }
    assert!(
        answered >= 20,
        "the load did not run: {answered} answers from bravo"
    );
    let l = seen.unwrap_or_else(|| panic!("alpha–bravo rates never moved (idle {idle} B/s)"));
    eprintln!("alpha–bravo under load: {l} (idle {idle} B/s, {answered} answers)");

    // Click the link: its details stay open across pushes.
    let click = "document.querySelector('g.link[data-a=alpha][data-b=bravo]').dispatchEvent(new MouseEvent('click', {bubbles: true}));";
    browser.script(click).await;
    let detail = "const t = document.getElementById('link-detail'); return t ? t.dataset.link + ' ' + t.textContent : null;";
    let text = wait_for("the link's details", LIMIT, || async {
        browser.script(detail).await.as_str().map(str::to_owned)
    })
    .await;
    assert!(
        text.starts_with("alpha|bravo") && text.contains("transportquic"),
        "{text}"
    );
    assert!(text.contains("alpha sessionconnected"), "{text}");
    let png = browser.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/ui.png"), png).unwrap();

    // Kill charlie: both its links turn red within 2 s; alpha–bravo stays up.
    signal(charlie.pid.unwrap(), Signal::KILL);
    let killed = Instant::now();
    let red = "rgb(220, 38, 38)";
    let v = wait_for("charlie's links red", LIMIT, || async {
        let v = browser.script(LINKS).await;
        let down =
            |a, b| link(&v, a, b).is_some_and(|l| l["state"] == "down" && l["stroke"] == red);
        (down("alpha", "charlie") && down("bravo", "charlie")).then_some(v)
    })
    .await;
    let took = killed.elapsed();
    eprintln!("charlie's links red {took:?} after the kill");
    assert!(
        took <= RED_WITHIN,
        "red after {took:?}, over {RED_WITHIN:?}"
    );
    assert_eq!(link(&v, "alpha", "bravo").unwrap()["state"], "up", "{v}");

    // dev up stops cleanly while the page still holds its event stream.
    signal(up.pid(), Signal::TERM);
    let status = wait_for("dev up to exit", Duration::from_secs(30), || {
        let s = up.0.as_mut().unwrap().try_wait().unwrap();
        async move { s }
    })
    .await;
    assert!(status.success(), "dev up exited with {status}");
    drop(browser);
}
