//! Two clusters as real `causeway run` processes on loopback: DNS by name,
//! TCP echo and HTTP through the mesh, real clients (curl, redis-benchmark),
//! and a restart that keeps ClusterSetIPs.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use causeway::dev::{ECHO_PORT, HELLO_PORT, demo_key, service_export};
use support::clients::{dig, echo, http_body, payload, resolve};
use support::{Guard, Mesh, have, skip, wait_for};

const LINK: Duration = Duration::from_secs(30);

/// The heavy phases (10 MiB echo, redis-benchmark) take turns: on a 2-core machine
/// shared with builds, running them together starves the processes under test.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const ECHO_NAME: &str = "echo.demo.svc.clusterset.local";

/// Waits until a small echo through `addr` works (the outbound listener is up and the peer reachable).
async fn wait_echo(addr: SocketAddr) {
    wait_for(&format!("echo through {addr}"), LINK, || async {
        let back = echo(addr, b"ping", Duration::from_secs(2)).await.ok()?;
        (back == b"ping").then_some(())
    })
    .await;
}

#[tokio::test]
async fn echo_and_http_by_name_reach_the_other_cluster() {
    let mut mesh = Mesh::alpha_calls_bravo(23000, Ipv4Addr::new(127, 81, 0, 0)).await;
    mesh.start_all();
    mesh.wait_linked(LINK).await;
    let vip = mesh.wait_vip(0, "echo").await;
    assert!(
        mesh.c(0).vip_range.contains(&vip),
        "{vip} is not in alpha's range"
    );

    // The name resolves on alpha to alpha's ClusterSetIP, by two resolvers.
    assert_eq!(resolve(mesh.dns(0), ECHO_NAME).await.unwrap(), [vip]);
    if have("dig") {
        assert_eq!(dig(None, mesh.dns(0), ECHO_NAME), [vip.to_string()]);
    } else {
        skip(
            "dig part",
            "dig is not installed (apt-get install bind9-dnsutils)",
        );
    }

    // 10 MiB through the tunnel to bravo's echo, byte for byte.
    let addr = SocketAddr::from((vip, ECHO_PORT));
    wait_echo(addr).await;
    let data = payload(10 << 20);
    let heavy = HEAVY.lock().await;
    let start = Instant::now();
    let back = echo(addr, &data, Duration::from_secs(60)).await.unwrap();
    let took = start.elapsed();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "echoed bytes differ");
    drop(heavy);
    eprintln!(
        "10 MiB echoed through the mesh in {took:?} ({:.1} MiB/s each way)",
        10.0 / took.as_secs_f64()
    );

    // HTTP: bravo answers, to our client and to curl.
    let hello = mesh.wait_vip(0, "hello").await;
    let web = SocketAddr::from((hello, HELLO_PORT));
    assert_eq!(
        http_body(web, Duration::from_secs(5)).await.unwrap(),
        "hello from bravo\n"
    );
    if have("curl") {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", &format!("http://{web}/")])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "curl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from bravo\n");
    } else {
        skip("curl part", "curl is not installed");
    }
}

#[tokio::test]
async fn redis_benchmark_through_the_mesh() {
    if !have("redis-server") || !have("redis-benchmark") {
        return skip(
            "redis_benchmark_through_the_mesh",
            "redis-server/redis-benchmark not installed (apt-get install redis-server)",
        );
    }
    let mut mesh = Mesh::alpha_calls_bravo(23100, Ipv4Addr::new(127, 82, 0, 0)).await;
    let port = mesh.c(1).demo_http.port() + 2;
    let redis_addr = SocketAddr::from(([127, 0, 0, 1], port));
    let key = demo_key("redis");
    mesh.plan.clusters[1]
        .exports
        .push(service_export(key, 6379, "redis", redis_addr));
    let server = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let _server = Guard(Some(server));
    mesh.start_all();
    mesh.wait_linked(LINK).await;
    let vip = mesh.wait_vip(0, "redis").await;
    let host = vip.to_string();
    wait_for("redis PING through the mesh", LINK, || async {
        let out = Command::new("redis-benchmark")
            .args([
                "-h", &host, "-p", "6379", "-q", "-n", "10", "-c", "1", "-t", "ping",
            ])
            .output()
            .ok()?;
        out.status.success().then_some(())
    })
    .await;
    let _heavy = HEAVY.lock().await;
    let start = Instant::now();
    let out = Command::new("redis-benchmark")
        .args(["-h", &host, "-p", "6379", "-q", "-n", "20000"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "\n");
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "redis-benchmark through the mesh ({:?}):\n{}",
        start.elapsed(),
        summary(&text)
    );
    assert!(out.status.success(), "redis-benchmark failed: {err}");
    assert!(
        !text.to_lowercase().contains("error") && !err.to_lowercase().contains("error"),
        "{text}{err}"
    );
    let lines = text
        .lines()
        .filter(|l| l.contains("requests per second"))
        .count();
    assert!(lines >= 10, "expected a result per test: {text}");
}

/// Final result lines only (the progress lines are overwritten on a terminal).
fn summary(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("requests per second"))
        .collect();
    lines.join("\n")
}

#[tokio::test]
async fn restart_keeps_cluster_set_ips_and_traffic_resumes() {
    let mut mesh = Mesh::alpha_calls_bravo(23200, Ipv4Addr::new(127, 83, 0, 0)).await;
    mesh.start_all();
    mesh.wait_linked(LINK).await;
    let vip = mesh.wait_vip(0, "echo").await;
    wait_echo(SocketAddr::from((vip, ECHO_PORT))).await;
    // The merged view is persisted (debounced) before we pull the plug.
    let saved = mesh.c(0).state_dir().join("catalog.json");
    wait_for("alpha's persisted catalog", LINK, || async {
        std::fs::read_to_string(&saved)
            .ok()?
            .contains(&vip.to_string())
            .then_some(())
    })
    .await;

    mesh.kill(0);
    mesh.start(0);
    // The first answer alpha's DNS gives after the restart already has the old ClusterSetIP.
    let answer = wait_for("alpha's DNS after restart", LINK, || async {
        resolve(mesh.dns(0), ECHO_NAME).await.ok()
    })
    .await;
    assert_eq!(answer, [vip], "ClusterSetIP changed across the restart");
    let start = Instant::now();
    wait_echo(SocketAddr::from((vip, ECHO_PORT))).await;
    eprintln!(
        "traffic resumed {:?} after alpha's DNS answered",
        start.elapsed()
    );
    let data = payload(256 << 10);
    assert!(
        echo(SocketAddr::from((vip, ECHO_PORT)), &data, LINK)
            .await
            .unwrap()
            == data
    );
}
