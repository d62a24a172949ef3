//! The `gateway` section of causeway.yaml.
//!
//! Every knob has a safe default; `validate()` checks ranges and combinations
//! and names the key, the bad value and what would be valid.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use causeway_catalog::{ClusterId, ServiceKey};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// UDP address the QUIC endpoint binds.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Addresses peers dial to reach this gateway (its replicas); defaults to `listen`.
    #[serde(default)]
    pub advertise: Vec<SocketAddr>,
    /// Ranges ClusterSetIPs are allocated from; outbound listeners bind there.
    #[serde(default)]
    pub vip_ranges: Vec<IpNet>,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub connections: Connections,
    #[serde(default)]
    pub locality: Locality,
    #[serde(default)]
    pub ejection: Ejection,
    #[serde(default)]
    pub transport: Transport,
    /// QUIC over TLS on TCP when UDP to a peer is blocked.
    #[serde(default)]
    pub fallback: crate::fallback::FallbackConfig,
    /// How long open streams may finish after a drain starts (SIGTERM).
    #[serde(default = "d10s", with = "humantime_serde")]
    pub drain_deadline: Duration,
    /// Data-plane threads (each a current-thread runtime owning some peer
    /// connections, listener sockets and streams). Default: every core available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<u16>,
    /// Kubernetes mode: listen on one port per imported service port (from
    /// `causeway_catalog::gateway_ports`) instead of on ClusterSetIPs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesPorts>,
    /// One JSON line per tunnelled connection; off unless a path is set.
    #[serde(default)]
    pub access_log: crate::access_log::AccessLogConfig,
    /// OTLP spans per tunnelled connection; off unless an endpoint is set.
    #[serde(default)]
    pub tracing: crate::otlp_config::TracingConfig,
    /// UDP service ports: flow idle timeout and caps.
    #[serde(default)]
    pub udp: crate::udp::UdpConfig,
}

/// `gateway.kubernetes`: the port range shared with `federation.kubernetes`
/// (both must be equal: the federation points derived Services at these ports).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesPorts {
    #[serde(default = "default_port_base")]
    pub port_base: u16,
    #[serde(default = "default_port_count")]
    pub port_count: u16,
}

fn default_port_base() -> u16 {
    20000
}
fn default_port_count() -> u16 {
    10000
}

/// Timeouts on everything that waits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// TCP connect to a local endpoint.
    #[serde(default = "d1s", with = "humantime_serde")]
    pub connect: Duration,
    /// QUIC + TLS handshake with a peer gateway.
    #[serde(default = "d3s", with = "humantime_serde")]
    pub handshake: Duration,
    /// Reading a stream header (inbound).
    #[serde(default = "d2s", with = "humantime_serde")]
    pub header: Duration,
    /// Waiting for the far side's status (outbound); must exceed `connect`.
    #[serde(default = "d3s", with = "humantime_serde")]
    pub status: Duration,
    /// A tunnelled connection with no bytes either way is closed after this.
    #[serde(default = "d1h", with = "humantime_serde")]
    pub idle: Duration,
}

/// Bounds on concurrency; exceeding one gives status `overloaded` or a clean close.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Concurrent streams on one peer connection (the QUIC stream credit each
    /// side grants); a full connection takes no new outbound streams.
    #[serde(default = "default_per_connection")]
    pub max_streams_per_connection: u32,
    /// Concurrent streams to one peer cluster (outbound, all its connections
    /// together) and from one (inbound; past it: `overloaded`).
    #[serde(default = "default_per_peer")]
    pub max_streams_per_peer: u32,
    /// Inbound QUIC connections one peer cluster may hold (all its gateway
    /// replicas together); more are closed.
    #[serde(default = "default_connections_per_peer")]
    pub max_connections_per_peer: u32,
    /// Inbound handshakes in progress past which a peer whose address is not
    /// yet validated is first sent a QUIC Retry (spoofed floods stay cheap).
    #[serde(default = "default_retry_above")]
    pub retry_above_handshakes: u32,
    /// Concurrent tunnelled connections per service, each direction.
    #[serde(default = "default_per_service")]
    pub max_streams_per_service: u32,
    /// Clusters tried for one outbound connection before giving up.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
}

/// Connections to peer gateways: liveness and re-dialling (`gateway.connections`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connections {
    /// QUIC connections to each peer gateway address, spread over the workers.
    /// Default: one per worker, at most 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_peer: Option<u16>,
    /// QUIC keep-alive (PING) interval; must be below `liveness`.
    #[serde(default = "d500ms", with = "humantime_serde")]
    pub keep_alive: Duration,
    /// A connection that has received nothing for this long (stretched to
    /// `keep_alive` + 3 RTT on long links) takes no new streams: a dead peer is
    /// noticed within about this time. The connection stays up, so a peer that
    /// was only stalled (CPU, GC, a busy node) carries on; if the silence lasts,
    /// a replacement is dialled, and the old connection is retired once the peer
    /// answers the new one.
    #[serde(default = "d750ms", with = "humantime_serde")]
    pub liveness: Duration,
    /// A peer connection silent this long is closed (QUIC idle timeout); its
    /// streams are reset.
    #[serde(default = "d20s", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// First re-dial delay; doubles (with jitter) up to `backoff_max`.
    #[serde(default = "d100ms", with = "humantime_serde")]
    pub backoff_initial: Duration,
    #[serde(default = "d5s", with = "humantime_serde")]
    pub backoff_max: Duration,
}

/// How a cluster is chosen among those serving a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Locality {
    /// Serve from this cluster's own endpoints first, without a tunnel.
    #[serde(default = "yes")]
    pub prefer_local: bool,
    /// Per service, an ordered list of clusters to use instead of region order.
    #[serde(default)]
    pub failover: BTreeMap<ServiceKey, Vec<ClusterId>>,
}

/// Outlier ejection of failing clusters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ejection {
    /// Consecutive failed attempts that eject a cluster.
    #[serde(default = "default_failures")]
    pub consecutive_failures: u32,
    /// First ejection time; doubles on each repeat up to `max_time`.
    #[serde(default = "d5s", with = "humantime_serde")]
    pub base_time: Duration,
    #[serde(default = "d60s", with = "humantime_serde")]
    pub max_time: Duration,
}

/// QUIC flow-control windows and buffers, in bytes (see docs/protocol.md for the measurements).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transport {
    #[serde(default = "default_stream_window")]
    pub stream_receive_window: u32,
    /// Per peer connection: bounds what one peer can make us buffer. Stalled
    /// tunnelled connections each hold up to a stream window of it; when they hold
    /// all of it, new streams from that peer wait, so keep it many stream windows.
    #[serde(default = "default_conn_window")]
    pub receive_window: u32,
    #[serde(default = "default_send_window")]
    pub send_window: u32,
    /// SO_RCVBUF / SO_SNDBUF of the UDP socket.
    #[serde(default = "default_udp_buffer")]
    pub udp_socket_buffer: u32,
    /// Largest read from a tunnelled TCP connection, in bytes; the buffer is
    /// allocated when data arrives and handed to QUIC without a copy.
    #[serde(default = "default_splice_buffer")]
    pub splice_buffer: u32,
    /// QUIC congestion controller of peer connections.
    #[serde(default)]
    pub congestion: Congestion,
    /// Ask the peer (ACK frequency extension; both ends are causeway) to
    /// acknowledge every N ack-eliciting packets instead of every second one.
    /// 0: the RFC 9000 default, no extension.
    #[serde(default)]
    pub ack_every: u32,
    /// Largest UDP payload MTU discovery may reach (and we accept). Paths with
    /// a larger MTU (jumbo frames, loopback) carry more per packet, for less
    /// CPU per byte; others settle at what they carry (1452 on Ethernet).
    #[serde(default = "default_udp_payload")]
    pub max_udp_payload: u16,
    /// quinn's send fairness: round-robin streams of equal priority packet by
    /// packet (true), or send each stream's queued data in turn (false, the
    /// default: with many bulk streams, packet-by-packet round robin wakes each
    /// stream for a packet or two and cost twice the CPU per byte; a stream's
    /// first bytes go out first either way, at a higher priority).
    #[serde(default)]
    pub send_fairness: bool,
}

/// Congestion control for peer connections. Every tunnelled connection to a peer
/// shares its one QUIC connection's window, so on lossy links this decides the
/// throughput of all of them (see docs/protocol.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Congestion {
    /// quinn's default: reacts to each loss; collapses on lossy WAN links.
    Cubic,
    /// quinn's BBR: models bandwidth and RTT instead of reacting to each loss.
    #[default]
    Bbr,
    NewReno,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 15443))
}
fn yes() -> bool {
    true
}
fn d100ms() -> Duration {
    Duration::from_millis(100)
}
fn d500ms() -> Duration {
    Duration::from_millis(500)
}
fn d750ms() -> Duration {
    Duration::from_millis(750)
}
fn d1s() -> Duration {
    Duration::from_secs(1)
}
fn d2s() -> Duration {
    Duration::from_secs(2)
}
fn d3s() -> Duration {
    Duration::from_secs(3)
}
fn d5s() -> Duration {
    Duration::from_secs(5)
}
fn d10s() -> Duration {
    Duration::from_secs(10)
}
fn d20s() -> Duration {
    Duration::from_secs(20)
}
fn d60s() -> Duration {
    Duration::from_secs(60)
}
fn d1h() -> Duration {
    Duration::from_secs(3600)
}
fn default_per_connection() -> u32 {
    1024
}
fn default_per_peer() -> u32 {
    4096
}
fn default_per_service() -> u32 {
    10_000
}
fn default_connections_per_peer() -> u32 {
    32
}
fn default_retry_above() -> u32 {
    16
}
fn default_attempts() -> u32 {
    3
}
fn default_failures() -> u32 {
    3
}
fn default_stream_window() -> u32 {
    // One tunnelled connection: 670 Mbit/s at 50 ms RTT, 335 at 100 ms. Larger
    // windows let fewer stalled readers fill a connection's window (docs/protocol.md).
    4 << 20
}
fn default_conn_window() -> u32 {
    // 32 stream windows: 32 stalled readers before a connection stalls; 1 Gbit/s
    // of streams together at up to 1 s RTT.
    128 << 20
}
fn default_send_window() -> u32 {
    16 << 20
}
fn default_udp_buffer() -> u32 {
    4 << 20
}
fn default_udp_payload() -> u16 {
    1472
}
fn default_splice_buffer() -> u32 {
    64 << 10
}

macro_rules! default_from_serde {
    ($($t:ty),*) => {$(
        impl Default for $t {
            fn default() -> Self {
                // Every field has a serde default, so an empty map is the default.
                serde_default::<$t>()
            }
        }
    )*};
}
default_from_serde!(
    Config,
    Timeouts,
    Limits,
    Connections,
    Locality,
    Ejection,
    Transport
);

/// Builds a section from its serde field defaults, so defaults live in one place.
fn serde_default<T: serde::de::DeserializeOwned>() -> T {
    use serde::de::value::{Error, MapDeserializer};
    let empty = std::iter::empty::<(&str, &str)>();
    match T::deserialize(MapDeserializer::<_, Error>::new(empty)) {
        Ok(v) => v,
        // Unreachable while every field has #[serde(default)]; the unit test guards it.
        Err(e) => panic!("config defaults must deserialize from an empty map: {e}"),
    }
}
