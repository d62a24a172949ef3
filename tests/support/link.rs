//! Linking by token in end-to-end tests: clusters started unlinked (with
//! `identity.ca` and a link endpoint), the `causeway token`/`unlink` commands,
//! and raw clients of the link endpoint.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use causeway::link::wire::{self, Hello};
use causeway_identity::{CertPaths, PeerTrust, ReloadingCert, Workload};

use super::clients::echo;
use super::{BIN, Mesh, free_addr, wait_for};

pub const LINK: Duration = Duration::from_secs(60);

/// Clusters planned and started with no peers, `identity.ca` and a link endpoint.
pub async fn unlinked(n: usize, base: u16, vip_base: Ipv4Addr) -> Mesh {
    let mut mesh = Mesh::plan(n, base, vip_base, |_| {}).await;
    // alpha imports; bravo serves demo/echo.
    mesh.plan.clusters[0]
        .exports
        .retain(|e| e.key.name() == "hello-alpha");
    mesh.plan.write().unwrap();
    for i in 0..n {
        let c = mesh.c(i);
        let yaml = mesh.plan.config_yaml(c);
        let head = yaml.split("peers:").next().unwrap();
        let fed = "federation: { cert: federation.pem, key: federation-key.pem }\n";
        let head = head.replace(fed, &format!("{fed}  ca: ca.pem\n"));
        let link = free_addr();
        let yaml = format!("{head}peers: []\nlink: {{ listen: \"{link}\" }}\n");
        std::fs::write(c.config_path(), yaml).unwrap();
    }
    for i in 0..n {
        mesh.start_demo(i);
        mesh.start(i);
    }
    mesh
}

pub fn cli(args: &[&str]) -> Output {
    std::process::Command::new(BIN).args(args).output().unwrap()
}

pub fn config(mesh: &Mesh, i: usize) -> String {
    mesh.c(i).config_path().to_str().unwrap().to_owned()
}

pub fn issue(mesh: &Mesh, i: usize, expires: &str) -> String {
    let out = cli(&[
        "token",
        "issue",
        "--config",
        &config(mesh, i),
        "--expires",
        expires,
        "--json",
    ]);
    assert!(
        out.status.success(),
        "issue: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    json["token"].as_str().unwrap().to_owned()
}

/// Redeems on cluster i; (success, stdout, stderr).
pub fn redeem(mesh: &Mesh, i: usize, token: &str) -> (bool, String, String) {
    let out = cli(&[
        "token",
        "redeem",
        token,
        "--config",
        &config(mesh, i),
        "--json",
    ]);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

pub async fn peers(mesh: &Mesh, i: usize) -> Option<Vec<String>> {
    let v: serde_json::Value =
        causeway::dev::http::get_json(mesh.c(i).admin, "/v1/peers", Duration::from_secs(5))
            .await
            .ok()?;
    let names = v.as_array()?.iter().filter_map(|p| p["name"].as_str());
    Some(names.map(str::to_owned).collect())
}

pub async fn wait_peers(mesh: &Mesh, i: usize, want: &[&str]) {
    let what = format!("{} to have peers {want:?}", mesh.c(i).name);
    wait_for(&what, LINK, || async {
        (peers(mesh, i).await? == want).then_some(())
    })
    .await;
}

/// Echoes `n` bytes through alpha's ClusterSetIP for demo/echo (served by bravo).
pub async fn echo_through_alpha(mesh: &Mesh, n: usize) {
    let vip = mesh.wait_vip(0, "echo").await;
    let addr = SocketAddr::from((vip, causeway::dev::ECHO_PORT));
    let data: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
    let back = wait_for("an echo through alpha's ClusterSetIP", LINK, || async {
        echo(addr, &data, Duration::from_secs(10)).await.ok()
    })
    .await;
    assert!(back == data, "echoed bytes differ");
}

/// Sends `req` to a link endpoint without a client certificate, from
/// `source` (an address on lo) when given.
pub async fn unauthenticated(
    link: SocketAddr,
    source: Option<std::net::IpAddr>,
    req: &wire::Request,
) -> wire::Response {
    let mut tls = causeway_identity::pinning_client_config().unwrap();
    tls.alpn_protocols = vec![wire::ALPN.to_vec()];
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0)).unwrap();
    }
    let tcp = socket.connect(link).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("bravo.dev.causeway").unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let mut s = connector.connect(name, tcp).await.unwrap();
    let _: Hello = wire::recv(&mut s).await.unwrap();
    wire::send(&mut s, req).await.unwrap();
    wire::recv(&mut s).await.unwrap()
}

/// Connects to alpha's link endpoint with bravo's federation certificate from
/// `dir`: Ok when alpha accepts it (it sends its hello), Err when it refuses.
pub async fn alpha_accepts(mesh: &Mesh, dir: &Path, link: SocketAddr) -> Result<(), String> {
    let a = mesh.c(0);
    let trust = PeerTrust::load(
        a.name.clone(),
        "alpha.dev.causeway".parse().unwrap(),
        &a.dir.join("ca.pem"),
    )
    .unwrap();
    let cert = ReloadingCert::load(CertPaths {
        cert: dir.join("federation.pem"),
        key: dir.join("federation-key.pem"),
    })
    .unwrap();
    let mut tls = causeway_identity::client_config(cert, &trust, Workload::Federation).unwrap();
    tls.alpn_protocols = vec![wire::ALPN.to_vec()];
    let tcp = tokio::net::TcpStream::connect(link)
        .await
        .map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("alpha.dev.causeway").unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let mut s = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let hello: Hello = wire::recv(&mut s).await.map_err(|e| e.to_string())?;
    assert_eq!(hello.cluster.as_str(), "alpha");
    Ok(())
}

pub fn link_addr(mesh: &Mesh, i: usize) -> SocketAddr {
    let text = std::fs::read_to_string(mesh.c(i).config_path()).unwrap();
    let at = text.find("link: { listen: \"").unwrap() + 17;
    text[at..].split('"').next().unwrap().parse().unwrap()
}
