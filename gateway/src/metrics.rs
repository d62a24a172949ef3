//! Gateway metrics (documented in docs/metrics.md).
//!
//! Hot-path counters are cloned out of their families once per stream, so a chunk
//! costs one atomic add and no lock.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

pub use crate::labels::{Direction, Flow};

/// One pooled connection: a peer gateway address and the slot among its connections.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabels {
    pub cluster: String,
    pub address: String,
    pub slot: String,
}

/// A pooled connection and which way its bytes went (`sent`, `received`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerBytesLabels {
    pub cluster: String,
    pub address: String,
    pub slot: String,
    pub direction: String,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum BufferDir {
    Receive,
    Send,
}

impl EncodeLabelValue for BufferDir {
    fn encode(&self, e: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = match self {
            BufferDir::Receive => "receive",
            BufferDir::Send => "send",
        };
        EncodeLabelValue::encode(&s, e)
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BufferLabel {
    pub direction: BufferDir,
}

/// A pooled connection and the congestion controller quinn runs on it.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    pub cluster: String,
    pub slot: String,
    pub controller: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkerLabels {
    pub worker: String,
    pub direction: Direction,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub cluster: String,
    pub result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabels {
    pub cluster: String,
    pub direction: Direction,
    pub status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabels {
    pub service: String,
    pub direction: Direction,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BytesLabels {
    pub service: String,
    pub direction: Direction,
    pub flow: Flow,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InboundHandshake {
    pub result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabel {
    pub cluster: String,
}

#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub peer_connected: Family<PeerLabels, Gauge>,
    pub peer_rtt: Family<PeerLabels, Gauge<f64, AtomicU64>>,
    pub peer_lost_packets: Family<PeerLabels, Counter>,
    pub peer_congestion_events: Family<PeerLabels, Counter>,
    pub peer_handshakes: Family<ResultLabels, Counter>,
    pub peer_probe_answers: Family<ClusterLabel, Counter>,
    pub inbound_handshakes: Family<InboundHandshake, Counter>,
    pub cluster_ejected: Family<ClusterLabel, Gauge>,
    pub streams: Family<StreamLabels, Counter>,
    pub service_connections: Family<ServiceLabels, Counter>,
    pub service_active: Family<ServiceLabels, Gauge>,
    pub service_bytes: Family<BytesLabels, Counter>,
    pub inbound_streams_open: Gauge,
    pub listener_bind_failures: Counter,
    pub rebinds: Counter,
    pub udp_buffer: Family<BufferLabel, Gauge>,
    /// Datagrams per send / receive call the socket supports (GSO / GRO).
    pub udp_gso_segments: Gauge,
    pub udp_gro_segments: Gauge,
    pub peer_datagrams_sent: Family<PeerLabels, Counter>,
    pub peer_send_calls: Family<PeerLabels, Counter>,
    pub peer_suspect: Family<PeerLabels, Gauge>,
    pub peer_silences: Family<PeerLabels, Counter>,
    pub peer_cwnd: Family<PeerLabels, Gauge>,
    pub peer_mtu: Family<PeerLabels, Gauge>,
    pub peer_controller: Family<ControllerLabels, Gauge>,
    pub peer_streams: Family<PeerLabels, Counter>,
    pub peer_bytes: Family<PeerBytesLabels, Counter>,
    pub worker_streams: Family<WorkerLabels, Counter>,
    pub stream_setup: SetupHistograms,
}

/// Stream setup time per peer cluster: 100 µs to ~26 s, loopback to a congested WAN.
#[derive(Debug, Clone)]
pub struct SetupHistograms(pub Family<ClusterLabel, Histogram, fn() -> Histogram>);

impl Default for SetupHistograms {
    fn default() -> Self {
        Self(Family::new_with_constructor(|| {
            Histogram::new(exponential_buckets(1e-4, 2.0, 19))
        }))
    }
}

impl Metrics {
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("gateway");
        r.register(
            "listener_bind_failures",
            "Outbound listeners that could not be bound (retried with backoff)",
            self.listener_bind_failures.clone(),
        );
        r.register(
            "rebinds",
            "Times the client endpoints moved to a new socket (their connections migrate)",
            self.rebinds.clone(),
        );
        r.register(
            "peer_connected",
            "1 while the connection to a peer gateway address is up",
            self.peer_connected.clone(),
        );
        r.register(
            "peer_rtt_seconds",
            "Smoothed round-trip time to a peer gateway",
            self.peer_rtt.clone(),
        );
        r.register(
            "peer_lost_packets",
            "Packets lost on connections to a peer gateway",
            self.peer_lost_packets.clone(),
        );
        r.register(
            "peer_congestion_events",
            "Congestion events on connections to a peer gateway",
            self.peer_congestion_events.clone(),
        );
        r.register(
            "peer_handshakes",
            "Handshakes dialled to a peer cluster, by result (ok, failed)",
            self.peer_handshakes.clone(),
        );
        r.register(
            "peer_probe_answers",
            "Liveness probes a peer cluster answered on connections we dialled",
            self.peer_probe_answers.clone(),
        );
        r.register(
            "inbound_handshakes",
            "Handshakes from peers, by result (ok, rejected = bad certificate, failed)",
            self.inbound_handshakes.clone(),
        );
        r.register(
            "cluster_ejected",
            "1 while a peer cluster is ejected as an outlier",
            self.cluster_ejected.clone(),
        );
        r.register(
            "streams",
            "Streams by peer cluster, direction and status",
            self.streams.clone(),
        );
        r.register(
            "stream_setup_seconds",
            "Outbound: from opening a stream to the far side's ok status",
            self.stream_setup.0.clone(),
        );
        self.register_services(r);
        self.register_data_plane(r);
    }

    fn register_data_plane(&self, r: &mut Registry) {
        r.register(
            "udp_socket_buffer_bytes",
            "QUIC socket buffer the kernel granted, by direction (compare with transport.udp_socket_buffer)",
            self.udp_buffer.clone(),
        );
        r.register(
            "udp_gso_segments",
            "Datagrams one send call may carry (1: no GSO)",
            self.udp_gso_segments.clone(),
        );
        r.register(
            "udp_gro_segments",
            "Datagrams one receive call may return (1: no GRO)",
            self.udp_gro_segments.clone(),
        );
        r.register(
            "peer_datagrams_sent",
            "UDP datagrams sent on a peer connection",
            self.peer_datagrams_sent.clone(),
        );
        r.register(
            "peer_send_calls",
            "UDP send calls on a peer connection (datagrams / calls = GSO batch)",
            self.peer_send_calls.clone(),
        );
        r.register(
            "peer_suspect",
            "1 while a peer connection has been silent past connections.liveness (no new streams)",
            self.peer_suspect.clone(),
        );
        r.register(
            "peer_silences",
            "Times a peer connection turned suspect (silent past connections.liveness)",
            self.peer_silences.clone(),
        );
        r.register(
            "peer_congestion_window_bytes",
            "Congestion window of a peer connection (quinn's path stats)",
            self.peer_cwnd.clone(),
        );
        r.register(
            "peer_mtu_bytes",
            "UDP payload size MTU discovery reached on a peer connection",
            self.peer_mtu.clone(),
        );
        r.register(
            "peer_congestion_controller",
            "1 for the congestion controller in effect on a peer connection (read from quinn)",
            self.peer_controller.clone(),
        );
        r.register(
            "peer_streams",
            "Outbound streams opened on a pooled peer connection",
            self.peer_streams.clone(),
        );
        r.register(
            "peer_bytes",
            "UDP bytes on a pooled peer connection, by direction (sent, received)",
            self.peer_bytes.clone(),
        );
        r.register(
            "worker_streams",
            "Streams handled by a data-plane worker, by direction",
            self.worker_streams.clone(),
        );
    }

    pub fn udp_buffer(&self, direction: BufferDir) -> Gauge {
        self.udp_buffer
            .get_or_create_owned(&BufferLabel { direction })
    }

    pub fn worker_stream(&self, worker: Option<usize>, direction: Direction) {
        let worker = worker.map_or_else(|| "none".to_owned(), |w| w.to_string());
        self.worker_streams
            .get_or_create(&WorkerLabels { worker, direction })
            .inc();
    }

    fn register_services(&self, r: &mut Registry) {
        r.register(
            "inbound_streams_open",
            "Inbound streams being handled now, in any phase (header, connect, splice)",
            self.inbound_streams_open.clone(),
        );
        r.register(
            "service_connections",
            "TCP connections carried for a service",
            self.service_connections.clone(),
        );
        r.register(
            "service_active_streams",
            "Tunnelled connections open now for a service",
            self.service_active.clone(),
        );
        r.register(
            "service_bytes",
            "Bytes carried for a service, by flow (request: towards the service)",
            self.service_bytes.clone(),
        );
    }

    pub fn stream(&self, cluster: &str, direction: Direction, status: &str) {
        self.streams
            .get_or_create(&StreamLabels {
                cluster: cluster.to_owned(),
                direction,
                status: status.to_owned(),
            })
            .inc();
    }

    /// Counter handles for one tunnelled connection of `service`.
    pub fn service(&self, service: &str, direction: Direction) -> ServiceHandles {
        let labels = ServiceLabels {
            service: service.to_owned(),
            direction,
        };
        let bytes = |flow| {
            self.service_bytes.get_or_create_owned(&BytesLabels {
                service: service.to_owned(),
                direction,
                flow,
            })
        };
        self.service_connections.get_or_create(&labels).inc();
        ServiceHandles {
            request: bytes(Flow::Request),
            response: bytes(Flow::Response),
            active: self.service_active.get_or_create_owned(&labels),
        }
    }
}

pub struct ServiceHandles {
    pub request: Counter,
    pub response: Counter,
    pub active: Gauge,
}

/// Counts an open stream in `active` while alive.
pub struct ActiveGuard(Gauge);

impl ActiveGuard {
    pub fn new(g: &Gauge) -> Self {
        g.inc();
        Self(g.clone())
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
