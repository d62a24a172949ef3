//! UDP services between real `causeway run` processes: a cluster's own DNS
//! server asked over UDP through the tunnel, iperf3 -u through it, and the
//! gateway's sockets moved by the admin endpoint while flows run.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::Duration;

use causeway::dev::demo_key;
use causeway_catalog::{Port, Protocol};
use support::clients::{dig, resolve};
use support::{Guard, Mesh, have, skip, wait_for};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LINK: Duration = Duration::from_secs(30);
const NAME: &str = "hello-alpha.demo.svc.clusterset.local";

/// One HTTP/1.1 POST; the status code and body.
async fn post(addr: SocketAddr, path: &str, body: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let code = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (code, body)
}

#[tokio::test]
async fn another_clusters_dns_answers_over_udp_through_its_clusterset_ip() {
    let mut mesh = Mesh::alpha_calls_bravo(23800, Ipv4Addr::new(127, 88, 0, 0)).await;
    mesh.start_all();
    mesh.wait_linked(LINK).await;
    let vip = mesh.wait_vip(0, "dns-bravo").await;
    let bravo_dns = SocketAddr::from((vip, mesh.dns(1).port()));
    // Bravo's own answer: its ClusterSetIP for hello-alpha, from bravo's range.
    let theirs = mesh.wait_vip(1, "hello-alpha").await;
    let ours = mesh.wait_vip(0, "hello-alpha").await;
    assert_ne!(
        theirs, ours,
        "the two clusters allocate from different ranges"
    );
    let got = wait_for("bravo's DNS through the tunnel", LINK, || async {
        resolve(bravo_dns, NAME)
            .await
            .ok()
            .filter(|a| !a.is_empty())
    })
    .await;
    assert_eq!(got, [theirs], "answered by bravo's DNS, not alpha's");
    if have("dig") {
        assert_eq!(dig(None, bravo_dns, NAME), [theirs.to_string()]);
    } else {
        skip(
            "dig part",
            "dig is not installed (apt-get install bind9-dnsutils)",
        );
    }

    // The admin endpoint moves alpha's gateway sockets; flows carry on.
    let admin = mesh.c(0).admin;
    let (code, body) = post(admin, "/v1/gateway/rebind", "not-an-ip").await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("\"not-an-ip\" is not an IP address"),
        "{body}"
    );
    let (code, body) = post(admin, "/v1/gateway/rebind", "127.0.0.1").await;
    assert_eq!(code, 200, "{body}");
    let moved: Vec<SocketAddr> = serde_json::from_str(&body).unwrap();
    assert!(!moved.is_empty() && moved.iter().all(|a| a.ip() == Ipv4Addr::LOCALHOST));
    let again = wait_for("a query after the rebind", LINK, || async {
        resolve(bravo_dns, NAME)
            .await
            .ok()
            .filter(|a| !a.is_empty())
    })
    .await;
    assert_eq!(again, [theirs]);
}

/// iperf3's summary of a UDP run, from the client's JSON.
fn udp_summary(json: &serde_json::Value) -> (f64, f64, f64) {
    let sum = &json["end"]["sum"];
    let bits = sum["bits_per_second"].as_f64().unwrap_or(0.0);
    let lost = sum["lost_percent"].as_f64().unwrap_or(100.0);
    let packets = sum["packets"].as_f64().unwrap_or(0.0);
    (bits, lost, packets)
}

#[tokio::test]
async fn iperf3_udp_through_the_tunnel() {
    if !have("iperf3") {
        return skip(
            "iperf3_udp_through_the_tunnel",
            "iperf3 is not installed (apt-get install iperf3)",
        );
    }
    let mut mesh = Mesh::alpha_calls_bravo(23900, Ipv4Addr::new(127, 89, 0, 0)).await;
    let port = mesh.c(1).demo_http.port() + 3;
    let server_addr = SocketAddr::from(([127, 0, 0, 1], port));
    // iperf3 talks over TCP (control) and UDP (data) on one port number.
    let mut e = causeway::dev::service_export(demo_key("iperf"), port, "control", server_addr);
    let mut data = Port::tcp("data", port);
    data.protocol = Protocol::Udp;
    e.ports.push(data);
    mesh.plan.clusters[1].exports.push(e);
    let server = Command::new("iperf3")
        .args(["-s", "-B", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _server = Guard(Some(server));
    mesh.start_all();
    mesh.wait_linked(LINK).await;
    let vip = mesh.wait_vip(0, "iperf").await.to_string();
    // 20 Mbit/s for 2 s in 1,200-byte datagrams: a short slice, bounded in time.
    let run = || {
        let out = Command::new("iperf3")
            .args([
                "-c",
                &vip,
                "-p",
                &port.to_string(),
                "-u",
                "-b",
                "20M",
                "-t",
                "2",
                "-l",
                "1200",
                "--json",
            ])
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout).ok()
    };
    let json = wait_for("an iperf3 run through the tunnel", LINK, || async {
        run().filter(|j| j["error"].is_null() && udp_summary(j).2 > 0.0)
    })
    .await;
    let (bits, lost, packets) = udp_summary(&json);
    println!(
        "iperf3 -u through the tunnel: {packets} packets at {:.1} Mbit/s, {lost:.2} % lost",
        bits / 1e6
    );
    assert!(packets > 2000.0, "the load ran: {packets} datagrams");
    assert!(lost < 20.0, "{lost} % lost at 20 Mbit/s");
}
