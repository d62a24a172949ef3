//! Transport fallback between two real `causeway run` processes: nftables
//! drops UDP to bravo's gateway inside a network namespace; new connections
//! from alpha succeed over TLS on TCP within the stated time; with UDP
//! restored, new streams go back to QUIC. Needs root, `ip` and `nft`; prints
//! why it skips otherwise.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use causeway::dev::HELLO_PORT;
use support::netns::Solo;
use support::{BIN, Mesh, command, have, skip, wait_for};

const LINK: Duration = Duration::from_secs(60);

/// Who answers `GET /` at `addr` (a new connection each time), asked inside `ns`.
fn who(ns: &str, addr: SocketAddr) -> Option<String> {
    let url = format!("http://{addr}/");
    let out = command(Some(ns), "curl", &["-s", "--max-time", "3", &url])
        .output()
        .ok()?;
    let body = String::from_utf8_lossy(&out.stdout).into_owned();
    body.strip_prefix("hello from ")
        .map(|s| s.trim().to_owned())
}

/// The transport `causeway status --json` shows for alpha's peer bravo.
fn transport(mesh: &Mesh, ns: &str) -> Option<String> {
    let admin = mesh.c(0).admin.to_string();
    let out = command(Some(ns), BIN, &["status", "--json", "--admin", &admin])
        .output()
        .ok()?;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let peers = json[0]["peers"].as_array()?;
    let bravo = peers.iter().find(|p| p["name"] == "bravo")?;
    bravo["transport"].as_str().map(str::to_owned)
}

/// Whether alpha's gateway has had a liveness probe answered by bravo (what
/// tells a path cut one way from a peer that never answers probes).
fn probes_answered(mesh: &Mesh, ns: &str) -> Option<()> {
    let url = format!("http://{}/metrics", mesh.c(0).admin);
    let out = command(Some(ns), "curl", &["-s", "--max-time", "3", &url])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let sample = "causeway_gateway_peer_probe_answers_total{cluster=\"bravo\"} ";
    let n: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix(sample)?.parse().ok())?;
    (n > 0.0).then_some(())
}

async fn bravo_answers_over(mesh: &Mesh, ns: &str, web: SocketAddr, via: &str) -> Option<()> {
    (transport(mesh, ns).as_deref() == Some(via) && who(ns, web).as_deref() == Some("bravo"))
        .then_some(())
}

#[tokio::test]
async fn blocked_udp_moves_new_connections_to_tcp_and_back() {
    const TEST: &str = "blocked_udp_moves_new_connections_to_tcp_and_back";
    if !rustix::process::geteuid().is_root() || !have("ip") || !have("nft") || !have("curl") {
        return skip(
            TEST,
            "needs root, `ip`, `nft` and `curl` for a network namespace",
        );
    }
    let solo = match Solo::create("cwfallback") {
        Ok(s) => s,
        Err(e) => {
            return skip(
                TEST,
                &format!("cannot create a network namespace here: {e}"),
            );
        }
    };
    let ns = solo.name.clone();
    let mut mesh = Mesh::plan(2, 26800, Ipv4Addr::new(127, 95, 0, 0), |_| {}).await;
    mesh.netns = vec![Some(ns.clone()); 2];
    // Alpha serves only its own hello: demo/hello from alpha is bravo's.
    mesh.plan.clusters[0]
        .exports
        .retain(|e| e.key.name() == "hello-alpha");
    mesh.start_all();
    mesh.wait_linked(LINK).await;
    let web = SocketAddr::from((mesh.wait_vip(0, "hello").await, HELLO_PORT));
    wait_for("bravo over QUIC", LINK, || {
        bravo_answers_over(&mesh, &ns, web, "quic")
    })
    .await;

    wait_for("a probe answered", LINK, || async {
        probes_answered(&mesh, &ns)
    })
    .await;
    solo.drop_udp(mesh.c(1).gateway.port()).unwrap();
    let t0 = Instant::now();
    // Stated: 2 x liveness + fallback.after + handshakes, about 5 s by default.
    wait_for("bravo over TCP", Duration::from_secs(60), || {
        bravo_answers_over(&mesh, &ns, web, "tcp")
    })
    .await;
    let took = t0.elapsed();
    println!("new connections went over TCP {took:?} after UDP was cut one way");
    assert!(
        took < Duration::from_secs(12),
        "fallback took {took:?}\n{}",
        mesh.logs()
    );
    for _ in 0..10 {
        assert_eq!(
            who(&ns, web).as_deref(),
            Some("bravo"),
            "a new connection over TCP"
        );
    }
    assert!(mesh.logs().contains("dialling it over TLS on TCP"));

    solo.allow_udp().unwrap();
    // Other slots re-dial QUIC with backoff (at most 5 s); slot 0 re-probes every 30 s.
    wait_for("bravo over QUIC again", Duration::from_secs(90), || {
        bravo_answers_over(&mesh, &ns, web, "quic")
    })
    .await;
    for _ in 0..10 {
        assert_eq!(
            who(&ns, web).as_deref(),
            Some("bravo"),
            "a new connection over QUIC"
        );
    }
}
