//! `causeway status`: peers, imports and recent errors of one cluster (`--admin`)
//! or of every cluster of a `dev up` directory (`--dir`), as tables or JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use causeway_catalog::{CatalogSnapshot, Import};
use serde::{Deserialize, Serialize};

use crate::dev::ClustersFile;
use crate::dev::http::{get, get_json};

const LIMIT: Duration = Duration::from_secs(3);

/// One peer as `/v1/peers` reports it, plus the gateway's RTT from `/metrics`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerRow {
    pub name: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub freshness: Option<String>,
    #[serde(default)]
    pub last_heard_ms_ago: Option<u64>,
    #[serde(default)]
    pub reconnects: u64,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub rtt_ms: Option<f64>,
    #[serde(default)]
    pub transport: Option<String>,
}

/// Everything shown for one cluster.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    pub cluster: String,
    pub admin: SocketAddr,
    /// Set when the admin endpoint could not be read.
    pub error: Option<String>,
    pub peers: Vec<PeerRow>,
    pub imports: Vec<Import>,
}

/// Reads one cluster's admin endpoint. Never fails: problems land in `error`.
pub async fn collect(cluster: &str, admin: SocketAddr) -> ClusterStatus {
    let mut st = ClusterStatus {
        cluster: cluster.to_owned(),
        admin,
        error: None,
        peers: Vec::new(),
        imports: Vec::new(),
    };
    let peers = get_json::<Vec<PeerRow>>(admin, "/v1/peers", LIMIT).await;
    let catalog = get_json::<CatalogSnapshot>(admin, "/v1/catalog", LIMIT).await;
    match (peers, catalog) {
        (Ok(peers), Ok(catalog)) => {
            st.peers = peers;
            st.imports = catalog.imports.into_values().collect();
        }
        (Err(e), _) | (_, Err(e)) => st.error = Some(e.to_string()),
    }
    let body = match get(admin, "/metrics", LIMIT).await {
        Ok((200, body)) => body,
        _ => String::new(),
    };
    let (rtts, transports) = (peer_rtts(&body), peer_transports(&body));
    for p in &mut st.peers {
        p.rtt_ms = rtts.get(&p.name).map(|s| s * 1000.0);
        p.transport = transports.get(&p.name).cloned();
    }
    st
}

/// `peer_rtt_seconds{cluster="x",...} 0.0012` lines of the gateway's metrics.
fn peer_rtts(metrics: &str) -> BTreeMap<String, f64> {
    samples(metrics, "peer_rtt_seconds{")
        .map(|(c, _, v)| (c.to_owned(), v))
        .collect()
}

/// `gateway_peer_transport{cluster="x",transport="tcp"} 1`: what new streams use.
fn peer_transports(metrics: &str) -> BTreeMap<String, String> {
    samples(metrics, "peer_transport{")
        .filter(|(_, _, v)| *v == 1.0)
        .filter_map(|(c, line, _)| Some((c.to_owned(), label(line, "transport")?.to_owned())))
        .collect()
}

/// (cluster label, line, value) of the samples whose line contains `needle`.
fn samples<'a>(metrics: &'a str, needle: &'a str) -> impl Iterator<Item = (&'a str, &'a str, f64)> {
    metrics
        .lines()
        .filter(move |l| l.contains(needle))
        .filter_map(|line| {
            let value = line.rsplit(' ').next()?.parse::<f64>().ok()?;
            Some((label(line, "cluster")?, line, value))
        })
}

fn label<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let (_, rest) = line.split_once(&format!("{name}=\""))?;
    rest.split_once('"').map(|(v, _)| v)
}

/// Which admin endpoints to read.
pub enum Target {
    Admin(SocketAddr),
    Dir(PathBuf),
}

pub fn status(target: Target, json: bool) -> anyhow::Result<bool> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let all = rt.block_on(collect_all(target))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else {
        print!("{}", render(&all));
    }
    Ok(all.iter().all(|s| s.error.is_none()))
}

async fn collect_all(target: Target) -> anyhow::Result<Vec<ClusterStatus>> {
    let list: Vec<(String, SocketAddr)> = match target {
        Target::Admin(addr) => vec![(cluster_name(addr).await, addr)],
        Target::Dir(dir) => ClustersFile::load(&dir)
            .map_err(|e| {
                anyhow::anyhow!(
                    "{}: {e} (is it a `causeway dev up` directory?)",
                    ClustersFile::path(&dir).display()
                )
            })?
            .clusters
            .into_iter()
            .map(|c| (c.name, c.admin))
            .collect(),
    };
    let mut out = Vec::new();
    for (name, admin) in list {
        out.push(collect(&name, admin).await);
    }
    Ok(out)
}

/// `cluster.name` from `/v1/config`, or the address when unreadable.
async fn cluster_name(admin: SocketAddr) -> String {
    let cfg = get_json::<serde_json::Value>(admin, "/v1/config", LIMIT).await;
    cfg.ok()
        .and_then(|v| v["cluster"]["name"].as_str().map(str::to_owned))
        .unwrap_or_else(|| admin.to_string())
}

/// The tables for people.
pub fn render(all: &[ClusterStatus]) -> String {
    let mut out = String::new();
    for st in all {
        let _ = writeln!(out, "cluster {} (admin {})", st.cluster, st.admin);
        if let Some(e) = &st.error {
            let _ = writeln!(out, "  unreachable: {e}\n");
            continue;
        }
        render_peers(&mut out, &st.peers);
        render_imports(&mut out, &st.imports);
        let errors: Vec<_> = st
            .peers
            .iter()
            .filter_map(|p| p.last_error.as_ref().map(|e| (p, e)))
            .collect();
        if !errors.is_empty() {
            let _ = writeln!(out, "  recent errors (last per peer):");
            for (p, e) in errors {
                let _ = writeln!(out, "    {} (now {}): {e}", p.name, p.state);
            }
        }
        out.push('\n');
    }
    out
}

fn render_peers(out: &mut String, peers: &[PeerRow]) {
    let _ = writeln!(
        out,
        "  {:<10} {:<11} {:<9} {:>9} {:>15} {:<8} {:>10}",
        "PEER", "STATE", "TRANSPORT", "RTT", "LAST HEARD", "LEASE", "RECONNECTS"
    );
    for p in peers {
        let rtt = p.rtt_ms.map_or("-".into(), |r| format!("{r:.1}ms"));
        let heard = p.last_heard_ms_ago.map_or("never".into(), |ms| {
            format!("{:.1}s ago", ms as f64 / 1000.0)
        });
        let lease = p.freshness.as_deref().unwrap_or("-");
        let via = p.transport.as_deref().unwrap_or("-");
        let _ = writeln!(
            out,
            "  {:<10} {:<11} {:<9} {:>9} {:>15} {:<8} {:>10}",
            p.name, p.state, via, rtt, heard, lease, p.reconnects
        );
    }
}

fn render_imports(out: &mut String, imports: &[Import]) {
    let _ = writeln!(
        out,
        "  {:<24} {:<18} {:<15} CLUSTERS",
        "SERVICE", "PORTS", "CLUSTERSET-IP"
    );
    for i in imports {
        let ports: Vec<String> = i
            .ports
            .iter()
            .map(|p| format!("{}/{}", p.number, p.protocol.as_str()))
            .collect();
        let vips: Vec<String> = i.vips.iter().map(ToString::to_string).collect();
        let clusters: Vec<String> = i
            .clusters
            .iter()
            .map(|c| {
                format!(
                    "{} ({:?}, {} ready)",
                    c.cluster, c.freshness, c.ready_endpoints
                )
                .to_lowercase()
            })
            .collect();
        let vip = if vips.is_empty() {
            "-".into()
        } else {
            vips.join(",")
        };
        let _ = writeln!(
            out,
            "  {:<24} {:<18} {:<15} {}",
            i.key.to_string(),
            ports.join(","),
            vip,
            clusters.join(", ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rtt_from_metrics() {
        let m = "# TYPE x gauge\ncauseway_gateway_peer_rtt_seconds{cluster=\"bravo\",address=\"127.0.0.1:1\"} 0.0025\nother 1\n";
        let r = peer_rtts(m);
        assert_eq!(r.get("bravo"), Some(&0.0025));
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn reads_the_transport_new_streams_use_from_metrics() {
        let m = "causeway_gateway_peer_transport{cluster=\"bravo\",transport=\"quic\"} 0\n\
                 causeway_gateway_peer_transport{cluster=\"bravo\",transport=\"tcp\"} 1\n\
                 causeway_gateway_peer_transport{cluster=\"charlie\",transport=\"quic\"} 0\n";
        let t = peer_transports(m);
        assert_eq!(t.get("bravo").map(String::as_str), Some("tcp"));
        assert_eq!(t.get("charlie"), None, "no connection: no transport");
    }

    #[test]
    fn renders_unreachable_and_errors() {
        let st = ClusterStatus {
            cluster: "alpha".into(),
            admin: SocketAddr::from(([127, 0, 0, 1], 1)),
            error: None,
            peers: vec![PeerRow {
                name: "bravo".into(),
                state: "backoff".into(),
                freshness: Some("stale".into()),
                last_heard_ms_ago: Some(2500),
                reconnects: 3,
                last_error: Some("connection refused".into()),
                rtt_ms: Some(1.25),
                transport: Some("tcp".into()),
            }],
            imports: vec![],
        };
        let down = ClusterStatus {
            error: Some("refused".into()),
            cluster: "bravo".into(),
            ..st.clone()
        };
        let text = render(&[st, down]);
        assert!(text.contains("bravo      backoff     tcp"), "{text}");
        assert!(
            text.contains("1.2ms") && text.contains("2.5s ago") && text.contains("stale"),
            "{text}"
        );
        assert!(
            text.contains("bravo (now backoff): connection refused"),
            "{text}"
        );
        assert!(text.contains("unreachable: refused"), "{text}");
    }
}
