//! Clients: DNS via hickory-resolver and `dig`, TCP echo, HTTP GET.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::rr::RecordType;
use hickory_resolver::Resolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::command;

/// A records for `name` from the server at `dns`, via hickory-resolver (no cache).
pub async fn resolve(dns: SocketAddr, name: &str) -> Result<Vec<Ipv4Addr>, String> {
    let mut conn = ConnectionConfig::udp();
    conn.port = dns.port();
    let ns = NameServerConfig::new(dns.ip(), true, vec![conn]);
    let cfg = ResolverConfig::from_parts(None, vec![], vec![ns]);
    let mut b = Resolver::builder_with_config(cfg, TokioRuntimeProvider::default());
    let o = b.options_mut();
    o.cache_size = 0;
    o.attempts = 2;
    o.timeout = Duration::from_secs(1);
    let r = b.build().map_err(|e| e.to_string())?;
    let l = r
        .lookup(name, RecordType::A)
        .await
        .map_err(|e| e.to_string())?;
    Ok(l.answers()
        .iter()
        .filter_map(|r| r.data.to_string().parse().ok())
        .collect())
}

/// `dig +short` output lines, run in `netns` when given.
pub fn dig(netns: Option<&str>, dns: SocketAddr, name: &str) -> Vec<String> {
    let (server, port) = (format!("@{}", dns.ip()), dns.port().to_string());
    let out = command(
        netns,
        "dig",
        &[&server, "-p", &port, "+short", "+time=2", "+tries=2", name],
    )
    .output()
    .expect("run dig");
    assert!(
        out.status.success(),
        "dig failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Sends `data`, half-closes, reads everything back.
pub async fn echo(addr: SocketAddr, data: &[u8], limit: Duration) -> std::io::Result<Vec<u8>> {
    let work = async {
        let s = TcpStream::connect(addr).await?;
        let (mut r, mut w) = s.into_split();
        let data = data.to_vec();
        let writer = tokio::spawn(async move {
            w.write_all(&data).await?;
            w.shutdown().await
        });
        let mut back = Vec::new();
        r.read_to_end(&mut back).await?;
        writer.await.map_err(std::io::Error::other)??;
        Ok(back)
    };
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "echo timed out"))?
}

/// `GET /` through a plain socket: the body.
pub async fn http_body(addr: SocketAddr, limit: Duration) -> std::io::Result<String> {
    let (status, body) = causeway::dev::http::get(addr, "/", limit)
        .await
        .map_err(std::io::Error::other)?;
    if status != 200 {
        return Err(std::io::Error::other(format!("status {status}")));
    }
    Ok(body)
}

pub use causeway::dev::probe::payload;
