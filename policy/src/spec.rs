//! What a user writes for one service (and optionally one port).

use std::collections::BTreeMap;
use std::time::Duration;

use causeway_catalog::ClusterId;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One service's policy. In causeway.yaml `service` is `namespace/name`; in a
/// `TrafficPolicy` object it is the name alone (the namespace is the object's).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct PolicySpec {
    pub service: String,
    /// Only this service port; without it, every port (a port's own policy wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub port: Option<u16>,
    /// Weighted split across serving clusters: cluster name to weight.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(with = "BTreeMap<String, u32>")]
    pub split: BTreeMap<ClusterId, u32>,
    /// Consistent hash: the same key reaches the same cluster while membership is stable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<HashKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<Fault>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<Mirror>,
    /// Longest wait for the far side to answer a new stream (replaces `gateway.timeouts.status`).
    #[serde(
        default,
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub connect_timeout: Option<Duration>,
    /// Clusters tried per connection (replaces `gateway.limits.max_attempts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10))]
    pub attempts: Option<u32>,
    /// Failover order (replaces `gateway.locality.failover` for this service).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub failover: Vec<ClusterId>,
    /// Exporter side: what each source cluster may use of this service here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
}

/// The L4 key a consistent hash uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HashKey {
    /// The client's IP address (all its connections reach one cluster).
    ClientIp,
    /// The client's IP address and port (one connection; spreads a NATed client).
    ClientAddress,
}

fn hundred() -> f64 {
    100.0
}

/// Drills: delay or reset a share of new connections.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Fault {
    /// Added before the stream opens.
    #[serde(
        default,
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub delay: Option<Duration>,
    /// Share of connections delayed, 0–100 (default 100).
    #[serde(default = "hundred")]
    #[schemars(range(min = 0, max = 100))]
    pub delay_percent: f64,
    /// Share of connections reset before any byte flows, 0–100 (default 0).
    #[serde(default)]
    #[schemars(range(min = 0, max = 100))]
    pub abort_percent: f64,
    /// Only connections from these clusters (the importing side); empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub sources: Vec<ClusterId>,
    /// Only connections routed to these clusters; empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub destinations: Vec<ClusterId>,
}

/// What a fault decided for one connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultAction {
    pub delay: Option<Duration>,
    pub abort: bool,
}

impl Fault {
    /// Whether this fault applies between `source` and `destination`.
    pub fn scoped(&self, source: &ClusterId, destination: &ClusterId) -> bool {
        let any_or = |list: &[ClusterId], c| list.is_empty() || list.contains(c);
        any_or(&self.sources, source) && any_or(&self.destinations, destination)
    }

    /// Decides with two independent rolls in [0, 1).
    pub fn decide(&self, delay_roll: f64, abort_roll: f64) -> FaultAction {
        FaultAction {
            delay: self
                .delay
                .filter(|_| delay_roll * 100.0 < self.delay_percent),
            abort: abort_roll * 100.0 < self.abort_percent,
        }
    }
}

fn default_mirror_buffer() -> u32 {
    1 << 20
}

/// A copy of the client's bytes to a second cluster; its replies are discarded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Mirror {
    #[schemars(with = "String")]
    pub cluster: ClusterId,
    /// Share of connections mirrored, 0–100 (default 100).
    #[serde(default = "hundred")]
    #[schemars(range(min = 0, max = 100))]
    pub percent: f64,
    /// Bytes queued for the mirror before it falls behind and is cut off (default 1 MiB).
    #[serde(default = "default_mirror_buffer")]
    #[schemars(range(min = 4096, max = 67108864))]
    pub buffer_bytes: u32,
}

/// Limits for one source cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct LimitSet {
    /// New connections per second (token bucket refill rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections_per_second: Option<f64>,
    /// Bucket size: connections admitted at once after a quiet spell (default: one second's worth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// Connections open at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// Bytes per second in each direction, shared by the source's connections; shaped, not cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_second: Option<u64>,
}

impl LimitSet {
    /// `self` with `over`'s fields where it sets them.
    pub fn overlaid(self, over: &LimitSet) -> LimitSet {
        LimitSet {
            connections_per_second: over.connections_per_second.or(self.connections_per_second),
            burst: over.burst.or(self.burst),
            max_connections: over.max_connections.or(self.max_connections),
            bytes_per_second: over.bytes_per_second.or(self.bytes_per_second),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == LimitSet::default()
    }

    /// The token bucket's size.
    pub fn burst_or_default(&self) -> Option<u32> {
        let rate = self.connections_per_second?;
        Some(self.burst.unwrap_or_else(|| rate.ceil().max(1.0) as u32))
    }
}

/// Exporter side: each source cluster gets its own buckets and counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Limits {
    /// Applies to every source cluster, each separately.
    #[serde(default)]
    pub each_source: LimitSet,
    /// Per source cluster: fields set here replace `each_source`'s.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(with = "BTreeMap<String, LimitSet>")]
    pub sources: BTreeMap<ClusterId, LimitSet>,
}

impl Limits {
    /// The limits a connection from `source` meets.
    pub fn for_source(&self, source: &ClusterId) -> LimitSet {
        match self.sources.get(source) {
            Some(over) => self.each_source.overlaid(over),
            None => self.each_source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ClusterId {
        ClusterId::new(s).unwrap()
    }

    #[test]
    fn fault_shares_follow_the_rolls() {
        let f = Fault {
            delay: Some(Duration::from_millis(50)),
            delay_percent: 100.0,
            abort_percent: 25.0,
            ..Fault::default()
        };
        let n = 10_000;
        let aborted = (0..n)
            .filter(|i| f.decide(0.5, f64::from(*i) / f64::from(n)).abort)
            .count();
        assert_eq!(aborted, 2500);
        assert_eq!(f.decide(0.999, 0.9).delay, Some(Duration::from_millis(50)));
        let none = Fault::default();
        assert_eq!(none.decide(0.0, 0.0), FaultAction::default());
    }

    #[test]
    fn fault_scope_by_source_and_destination() {
        let f = Fault {
            sources: vec![id("east")],
            destinations: vec![id("west")],
            ..Fault::default()
        };
        assert!(f.scoped(&id("east"), &id("west")));
        assert!(!f.scoped(&id("north"), &id("west")));
        assert!(!f.scoped(&id("east"), &id("east")));
        assert!(Fault::default().scoped(&id("a"), &id("b")));
    }
}
