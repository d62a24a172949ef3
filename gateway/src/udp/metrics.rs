//! UDP flow metrics (`gateway_udp_*`, documented in docs/metrics.md).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::metrics::{Direction, Flow};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FlowLabels {
    pub service: String,
    pub direction: Direction,
    pub result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SideLabels {
    pub service: String,
    pub direction: Direction,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WayLabels {
    pub service: String,
    pub direction: Direction,
    /// `request`: client to endpoint; `response`: back.
    pub way: Flow,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    pub reason: &'static str,
}

#[derive(Default, Clone)]
pub struct UdpMetrics {
    flows: Family<FlowLabels, Counter>,
    active: Family<SideLabels, Gauge>,
    datagrams: Family<WayLabels, Counter>,
    bytes: Family<WayLabels, Counter>,
    dropped: Family<DropLabels, Counter>,
}

/// Datagrams and bytes of one service, direction and way.
#[derive(Clone)]
pub struct Way {
    datagrams: Counter,
    bytes: Counter,
}

impl Way {
    pub fn add(&self, bytes: usize) {
        self.datagrams.inc();
        self.bytes.inc_by(bytes as u64);
    }
}

impl UdpMetrics {
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("gateway_udp");
        r.register(
            "flows",
            "UDP flows set up (result ok) or refused, by service and side",
            self.flows.clone(),
        );
        r.register("flows_active", "UDP flows open now", self.active.clone());
        r.register(
            "datagrams",
            "UDP datagrams carried, by way (request: client to endpoint)",
            self.datagrams.clone(),
        );
        r.register(
            "bytes",
            "UDP payload bytes carried, by way",
            self.bytes.clone(),
        );
        r.register(
            "dropped",
            "UDP datagrams dropped, by reason (too_large, flow_cap, refused, ...)",
            self.dropped.clone(),
        );
    }

    pub fn flow(&self, service: &str, direction: Direction, result: &str) {
        let l = FlowLabels {
            service: service.to_owned(),
            direction,
            result: result.to_owned(),
        };
        self.flows.get_or_create(&l).inc();
    }

    pub fn active(&self, service: &str, direction: Direction) -> Gauge {
        let l = SideLabels {
            service: service.to_owned(),
            direction,
        };
        self.active.get_or_create(&l).clone()
    }

    pub fn way(&self, service: &str, direction: Direction, way: Flow) -> Way {
        let l = WayLabels {
            service: service.to_owned(),
            direction,
            way,
        };
        Way {
            datagrams: self.datagrams.get_or_create(&l).clone(),
            bytes: self.bytes.get_or_create(&l).clone(),
        }
    }

    pub fn dropped(&self, reason: &'static str) {
        self.dropped.get_or_create(&DropLabels { reason }).inc();
    }
}
