//! `causeway status`: peers, imports and recent errors of one cluster (`--admin`)
//! or of every cluster of a `dev up` directory (`--dir`), as tables or JSON.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use causeway_catalog::Import;
use serde::{Deserialize, Serialize};

use crate::dev::ClustersFile;
use crate::dev::http::get_json;
use crate::ui::rates::PeerRates;

const LIMIT: Duration = Duration::from_secs(3);

/// One peer as `/v1/peers` reports it, plus the gateway's figures from its metrics.
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
    /// `quic` or `tcp`: the gateway transport in use (`gateway_peer_transport`); None when unknown.
    #[serde(default)]
    pub transport: Option<String>,
    /// Traffic with this peer per second, over the admin endpoint's last sampling interval.
    #[serde(default)]
    pub rates: Option<PeerRates>,
}

/// Everything shown for one cluster: what the admin endpoint's `/v1/status` serves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub cluster: String,
    pub admin: SocketAddr,
    /// Set when the admin endpoint could not be read.
    pub error: Option<String>,
    pub peers: Vec<PeerRow>,
    pub imports: Vec<Import>,
}

/// Reads one cluster's `/v1/status`. Never fails: problems land in `error`.
pub async fn collect(cluster: &str, admin: SocketAddr) -> ClusterStatus {
    collect_within(cluster, admin, LIMIT).await
}

/// [`collect`] with its own time limit.
pub async fn collect_within(cluster: &str, admin: SocketAddr, limit: Duration) -> ClusterStatus {
    match get_json::<ClusterStatus>(admin, "/v1/status", limit).await {
        Ok(st) => ClusterStatus { admin, ..st },
        Err(e) => ClusterStatus {
            cluster: cluster.to_owned(),
            admin,
            error: Some(e.to_string()),
            peers: Vec::new(),
            imports: Vec::new(),
        },
    }
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
        Target::Admin(addr) => vec![(addr.to_string(), addr)],
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
                rates: None,
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
