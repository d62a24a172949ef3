//! The clusterset across network namespaces: each cluster in its own
//! namespace, linked through a "wan" namespace whose links delay 25 ms and
//! drop 1% each way. Needs root, `ip` and `tc`; prints why it skips otherwise.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use causeway::dev::{ECHO_PORT, HELLO_PORT};
use support::netns::{Wan, unavailable};
use support::{BIN, Mesh, command, have, skip, wait_for};

const LINK: Duration = Duration::from_secs(60);

/// Lays out `n` clusters in namespaces `<prefix>-<i>`; alpha serves only its own hello.
async fn mesh_in(prefix: &str, n: usize, subnet: u8) -> Option<(Wan, Mesh)> {
    if let Some(why) = unavailable() {
        skip(prefix, &why);
        return None;
    }
    let wan = match Wan::create(prefix, n, subnet) {
        Ok(w) => w,
        Err(e) => {
            skip(
                prefix,
                &format!("cannot create network namespaces here: {e}"),
            );
            return None;
        }
    };
    let ips = wan.ips.clone();
    let mut mesh = Mesh::plan(n, 24000, Ipv4Addr::new(127, 77, 0, 0), |o| {
        o.ips = Some(ips)
    })
    .await;
    mesh.netns = wan.namespaces.iter().cloned().map(Some).collect();
    if !wan.netem {
        let relay = wan.relay(&mut mesh.plan);
        mesh.extra.push(relay);
    }
    mesh.plan.clusters[0]
        .exports
        .retain(|e| e.key.name() == "hello-alpha");
    mesh.start_all();
    mesh.wait_linked(LINK).await;
    Some((wan, mesh))
}

/// Who answers `GET /` at `addr`, asked by curl inside `ns`.
fn who(ns: &str, addr: SocketAddr) -> Option<String> {
    let url = format!("http://{addr}/");
    let out = command(Some(ns), "curl", &["-s", "--max-time", "2", &url])
        .output()
        .ok()?;
    let body = String::from_utf8_lossy(&out.stdout).into_owned();
    body.strip_prefix("hello from ")
        .map(|s| s.trim().to_owned())
}

#[tokio::test]
async fn two_clusters_across_a_lossy_wan() {
    let Some((wan, mesh)) = mesh_in("cwtwo", 2, 2).await else {
        return;
    };
    let ns = wan.namespaces[0].as_str();
    let vip = mesh.wait_vip(0, "echo").await;
    let hello = mesh.wait_vip(0, "hello").await;
    if have("dig") {
        let name = "echo.demo.svc.clusterset.local";
        let got = support::clients::dig(Some(ns), mesh.dns(0), name);
        assert_eq!(got, [vip.to_string()]);
    }
    let addr = SocketAddr::from((vip, ECHO_PORT)).to_string();
    let probe = |bytes: usize| {
        command(
            Some(ns),
            BIN,
            &[
                "dev",
                "probe",
                "--echo",
                &addr,
                "--bytes",
                &bytes.to_string(),
                "--timeout-secs",
                "90",
            ],
        )
        .output()
        .unwrap()
    };
    wait_for("a first echo across the wan", LINK, || async {
        probe(64).status.success().then_some(())
    })
    .await;
    let start = Instant::now();
    let out = probe(10 << 20);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "netns: 10 MiB echoed identically across the wan in {:?}",
        start.elapsed()
    );
    let web = SocketAddr::from((hello, HELLO_PORT));
    if have("curl") {
        assert_eq!(who(ns, web).as_deref(), Some("bravo"));
    }
    // The delay is real: the gateway's smoothed RTT to bravo is at least 2 x 25 ms.
    let admin = mesh.c(0).admin.to_string();
    let rtt = wait_for("alpha's RTT to bravo", LINK, || async {
        let out = command(Some(ns), BIN, &["status", "--json", "--admin", &admin])
            .output()
            .ok()?;
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        json[0]["peers"][0]["rtt_ms"].as_f64()
    })
    .await;
    eprintln!("netns: gateway RTT alpha -> bravo {rtt:.1} ms");
    assert!(rtt >= 45.0, "RTT {rtt} ms: the wan adds no delay");
}

#[tokio::test]
async fn cut_link_fails_over_to_another_region_and_back() {
    if !have("curl") {
        return skip(
            "cut_link_fails_over_to_another_region_and_back",
            "curl is not installed",
        );
    }
    let Some((wan, mesh)) = mesh_in("cwcut", 3, 3).await else {
        return;
    };
    let ns = wan.namespaces[0].clone();
    let vip = mesh.wait_vip(0, "hello").await;
    let web = SocketAddr::from((vip, HELLO_PORT));
    let ask = || {
        let ns = ns.clone();
        async move { who(&ns, web) }
    };
    wait_for("bravo (same region) to answer", LINK, || async {
        (ask().await? == "bravo").then_some(())
    })
    .await;

    wan.cut(1);
    let cut = Instant::now();
    wait_for(
        "charlie to answer after bravo's link is cut",
        LINK,
        || async { (ask().await? == "charlie").then_some(()) },
    )
    .await;
    eprintln!(
        "netns: traffic moved to charlie {:?} after bravo's link was cut",
        cut.elapsed()
    );

    wan.restore(1);
    let restored = Instant::now();
    wait_for(
        "bravo to answer again after its link is restored",
        LINK,
        || async { (ask().await? == "bravo").then_some(()) },
    )
    .await;
    eprintln!(
        "netns: traffic back on bravo {:?} after its link was restored",
        restored.elapsed()
    );
}
