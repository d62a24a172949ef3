//! Per-peer figures read from this process's own metrics text: RTT and
//! transport as they are, bytes and streams as rates between two samples.
//! Pure: the sampler in [`super::local`] feeds it text and times.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Traffic with one peer cluster, per second, over the last sampling interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PeerRates {
    /// QUIC bytes this cluster sent to the peer on the connections it dialled.
    pub sent_bytes_per_s: f64,
    /// QUIC bytes this cluster received from the peer on those connections.
    pub received_bytes_per_s: f64,
    /// Streams local clients opened to the peer's services.
    pub outbound_streams_per_s: f64,
    /// Streams the peer's clients opened to local services.
    pub inbound_streams_per_s: f64,
}

/// Cumulative counters per peer cluster at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    pub sent_bytes: f64,
    pub received_bytes: f64,
    pub outbound_streams: f64,
    pub inbound_streams: f64,
}

/// What one metrics text says per peer cluster.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    pub totals: BTreeMap<String, Totals>,
    /// Seconds, the lowest over the peer's connections.
    pub rtt: BTreeMap<String, f64>,
    /// `quic` or `tcp`, from `gateway_peer_transport` (1 for the one in use).
    pub transport: BTreeMap<String, String>,
}

/// Reads the gateway's per-peer series from Prometheus/OpenMetrics text.
pub fn read(metrics: &str) -> Reading {
    let mut r = Reading::default();
    for (name, labels, value) in metrics.lines().filter_map(sample) {
        let Some(cluster) = labels.get("cluster").cloned() else {
            continue;
        };
        let label = |k: &str| labels.get(k).map(String::as_str);
        let t = || Totals::default();
        match name.rsplit_once("gateway_").map_or("", |(_, n)| n) {
            "peer_rtt_seconds" => {
                let rtt = r.rtt.entry(cluster).or_insert(value);
                *rtt = rtt.min(value);
            }
            "peer_transport" if value >= 1.0 => {
                if let Some(tr) = label("transport") {
                    r.transport.insert(cluster, tr.to_owned());
                }
            }
            "peer_bytes_total" => {
                let e = r.totals.entry(cluster).or_insert_with(t);
                match label("direction") {
                    Some("sent") => e.sent_bytes += value,
                    Some("received") => e.received_bytes += value,
                    _ => {}
                }
            }
            "streams_total" => {
                let e = r.totals.entry(cluster).or_insert_with(t);
                match label("direction") {
                    Some("outbound") => e.outbound_streams += value,
                    Some("inbound") => e.inbound_streams += value,
                    _ => {}
                }
            }
            _ => {}
        }
    }
    r
}

/// Rates between two readings `dt` apart. A counter that went down (restart)
/// counts from zero; a peer only in `now` counts from zero.
pub fn rates(
    prev: &BTreeMap<String, Totals>,
    now: &BTreeMap<String, Totals>,
    dt: Duration,
) -> BTreeMap<String, PeerRates> {
    let secs = dt.as_secs_f64();
    if secs <= 0.0 {
        return BTreeMap::new();
    }
    let per_s = |a: f64, b: f64| if b >= a { (b - a) / secs } else { b / secs };
    now.iter()
        .map(|(cluster, n)| {
            let p = prev.get(cluster).copied().unwrap_or_default();
            let r = PeerRates {
                sent_bytes_per_s: per_s(p.sent_bytes, n.sent_bytes),
                received_bytes_per_s: per_s(p.received_bytes, n.received_bytes),
                outbound_streams_per_s: per_s(p.outbound_streams, n.outbound_streams),
                inbound_streams_per_s: per_s(p.inbound_streams, n.inbound_streams),
            };
            (cluster.clone(), r)
        })
        .collect()
}

/// `name{k="v",...} value` (comments and label-less lines give None).
fn sample(line: &str) -> Option<(&str, BTreeMap<String, String>, f64)> {
    if line.starts_with('#') {
        return None;
    }
    let (name, rest) = line.split_once('{')?;
    let (labels, value) = rest.rsplit_once('}')?;
    let value = value.split_whitespace().next()?.parse().ok()?;
    Some((name, parse_labels(labels), value))
}

fn parse_labels(mut s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    while let Some((k, rest)) = s.split_once("=\"") {
        let Some(end) = closing_quote(rest) else {
            break;
        };
        let key = k.trim_start_matches(',').trim().to_owned();
        out.insert(key, rest[..end].replace("\\\"", "\"").replace("\\\\", "\\"));
        s = &rest[end + 1..];
    }
    out
}

/// The index of the first unescaped `"`.
fn closing_quote(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}

#[cfg(test)]
#[path = "rates_tests.rs"]
mod tests;
