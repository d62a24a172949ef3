//! Metrics for every policy decision (documented in docs/metrics.md).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub service: String,
    pub cluster: String,
    pub rule: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FaultLabels {
    pub service: String,
    pub fault: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    pub service: String,
    pub source: String,
    pub limit: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    pub service: String,
    pub source: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MirrorLabels {
    pub service: String,
    pub cluster: String,
    pub result: String,
}

#[derive(Default)]
pub struct PolicyMetrics {
    pub routed: Family<RouteLabels, Counter>,
    pub faults: Family<FaultLabels, Counter>,
    pub limited: Family<LimitLabels, Counter>,
    pub shaped_bytes: Family<SourceLabels, Counter>,
    pub mirror_bytes: Family<MirrorLabels, Counter>,
    pub mirror_streams: Family<MirrorLabels, Counter>,
}

fn s(v: impl ToString) -> String {
    v.to_string()
}

impl PolicyMetrics {
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("gateway_policy");
        r.register(
            "routed",
            "Connections whose first cluster a policy chose, by rule (split, hash)",
            self.routed.clone(),
        );
        r.register(
            "faults",
            "Faults injected (delay, abort)",
            self.faults.clone(),
        );
        r.register(
            "limited",
            "Connections refused by an exporter-side limit (rate, concurrency), by source cluster",
            self.limited.clone(),
        );
        r.register(
            "shaped_bytes",
            "Bytes that waited for a bandwidth limit, by source cluster",
            self.shaped_bytes.clone(),
        );
        r.register(
            "mirror_bytes",
            "Bytes copied to a mirror cluster (sent) or dropped because it fell behind (dropped)",
            self.mirror_bytes.clone(),
        );
        r.register(
            "mirror_streams",
            "Mirrored connections by result (ok, unavailable, refused, cut)",
            self.mirror_streams.clone(),
        );
    }

    pub fn routed(&self, service: &str, cluster: &str, rule: &str) {
        let l = RouteLabels {
            service: s(service),
            cluster: s(cluster),
            rule: s(rule),
        };
        self.routed.get_or_create(&l).inc();
    }

    pub fn fault(&self, service: &str, fault: &str) {
        let l = FaultLabels {
            service: s(service),
            fault: s(fault),
        };
        self.faults.get_or_create(&l).inc();
    }

    pub fn limited(&self, service: &str, source: &str, limit: &str) {
        let l = LimitLabels {
            service: s(service),
            source: s(source),
            limit: s(limit),
        };
        self.limited.get_or_create(&l).inc();
    }

    pub fn shaped(&self, service: &str, source: &str) -> Counter {
        let l = SourceLabels {
            service: s(service),
            source: s(source),
        };
        self.shaped_bytes.get_or_create(&l).clone()
    }

    pub fn mirror_bytes(&self, service: &str, cluster: &str, result: &str) -> Counter {
        self.mirror_bytes
            .get_or_create(&mirror(service, cluster, result))
            .clone()
    }

    pub fn mirror_stream(&self, service: &str, cluster: &str, result: &str) {
        self.mirror_streams
            .get_or_create(&mirror(service, cluster, result))
            .inc();
    }
}

fn mirror(service: &str, cluster: &str, result: &str) -> MirrorLabels {
    MirrorLabels {
        service: s(service),
        cluster: s(cluster),
        result: s(result),
    }
}
