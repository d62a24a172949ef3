//! Fallback transport metrics (documented in docs/metrics.md).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::metrics::ResultLabels;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransportLabels {
    pub cluster: String,
    pub transport: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AcceptLabel {
    pub result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabel {
    pub direction: String,
}

#[derive(Debug, Clone, Default)]
pub struct FallbackMetrics {
    pub transport: Family<TransportLabels, Gauge>,
    pub dials: Family<ResultLabels, Counter>,
    pub reprobes: Family<ResultLabels, Counter>,
    pub accepts: Family<AcceptLabel, Counter>,
    pub dropped: Family<DropLabel, Counter>,
}

impl FallbackMetrics {
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("gateway");
        r.register(
            "peer_transport",
            "1 for the transport new streams to a peer cluster use now (quic or tcp), 0 for the other",
            self.transport.clone(),
        );
        r.register(
            "fallback_dials",
            "Peer connections dialled over TLS on TCP after QUIC gave no handshake, by result",
            self.dials.clone(),
        );
        r.register(
            "fallback_reprobes",
            "QUIC handshakes tried while a peer is on TCP, by result (ok: new streams move back to QUIC)",
            self.reprobes.clone(),
        );
        r.register(
            "fallback_accepts",
            "Inbound TCP connections on the fallback port, by result (ok, rejected: TLS or identity refused, timeout, busy, over_limit)",
            self.accepts.clone(),
        );
        r.register(
            "fallback_dropped_datagrams",
            "QUIC datagrams dropped on fallback links because a queue was full, by direction",
            self.dropped.clone(),
        );
    }

    pub fn drops(&self) -> Drops {
        let c = |d: &str| {
            self.dropped
                .get_or_create(&DropLabel {
                    direction: d.to_owned(),
                })
                .clone()
        };
        Drops {
            inbound: c("inbound"),
            outbound: c("outbound"),
        }
    }

    pub fn accept(&self, result: &str) {
        self.accepts
            .get_or_create(&AcceptLabel {
                result: result.to_owned(),
            })
            .inc();
    }

    pub fn result(family: &Family<ResultLabels, Counter>, cluster: &str, ok: bool) {
        family
            .get_or_create(&ResultLabels {
                cluster: cluster.to_owned(),
                result: if ok { "ok" } else { "failed" }.to_owned(),
            })
            .inc();
    }

    /// Sets the transport gauge of `cluster`: 1 for `now`, 0 for the other.
    pub fn set_transport(&self, cluster: &str, now: Option<&str>) {
        for t in ["quic", "tcp"] {
            let labels = TransportLabels {
                cluster: cluster.to_owned(),
                transport: t.to_owned(),
            };
            self.transport
                .get_or_create(&labels)
                .set(i64::from(now == Some(t)));
        }
    }
}

/// Drop counters a socket holds (no lock per datagram).
#[derive(Debug, Clone)]
pub struct Drops {
    inbound: Counter,
    outbound: Counter,
}

impl Drops {
    pub fn inbound(&self) {
        self.inbound.inc();
    }

    pub fn outbound(&self) {
        self.outbound.inc();
    }
}
