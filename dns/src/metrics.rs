//! Prometheus metrics, and the request handler that records them around the hickory `Catalog`.
//!
//! Counters are created once per (transport, rcode) at start, so a query only
//! increments an atomic: no label hashing, no lock on the answer path.

use std::sync::Arc;

use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::ResponseCode;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::Catalog;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Response codes counted separately; anything else is counted as `other`.
const RCODES: [(ResponseCode, &str); 6] = [
    (ResponseCode::NoError, "NOERROR"),
    (ResponseCode::NXDomain, "NXDOMAIN"),
    (ResponseCode::Refused, "REFUSED"),
    (ResponseCode::FormErr, "FORMERR"),
    (ResponseCode::ServFail, "SERVFAIL"),
    (ResponseCode::NotImp, "NOTIMP"),
];
const TRANSPORTS: [&str; 2] = ["udp", "tcp"];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResponseLabels {
    transport: &'static str,
    rcode: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabels {
    worker: String,
}

/// The DNS server's metrics; cheap to clone (every metric is an `Arc` inside).
#[derive(Debug, Clone)]
pub struct Metrics {
    /// `[transport][rcode]`, the last rcode slot being `other`.
    responses: [[Counter; RCODES.len() + 1]; TRANSPORTS.len()],
    truncated: Counter,
    worker_packets: Family<WorkerLabels, Counter>,
    pub(crate) catalog_updates: Counter,
    pub(crate) index_names: Gauge,
    pub(crate) imports_skipped: Gauge,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Self {
        let family = Family::<ResponseLabels, Counter>::default();
        let responses = TRANSPORTS.map(|transport| {
            let rcode = |i: usize| RCODES.get(i).map_or("other", |(_, s)| *s);
            std::array::from_fn(|i| {
                let labels = ResponseLabels {
                    transport,
                    rcode: rcode(i),
                };
                family.get_or_create(&labels).clone()
            })
        });
        let m = Self {
            responses,
            truncated: Counter::default(),
            worker_packets: Family::default(),
            catalog_updates: Counter::default(),
            index_names: Gauge::default(),
            imports_skipped: Gauge::default(),
        };
        let help = "DNS responses sent, by transport and response code";
        registry.register("dns_responses", help, family);
        let help =
            "UDP responses truncated (TC bit set) because they exceeded the client's size limit";
        registry.register("dns_truncated_responses", help, m.truncated.clone());
        let help = "UDP datagrams received, by fast-path worker thread";
        registry.register("dns_udp_worker_packets", help, m.worker_packets.clone());
        let help = "Catalog snapshots applied to the DNS answer index";
        registry.register("dns_catalog_updates", help, m.catalog_updates.clone());
        let help = "Owner names in the DNS answer index";
        registry.register("dns_index_names", help, m.index_names.clone());
        let help = "Imports left out of DNS in the last update because a name could not be built";
        registry.register("dns_imports_skipped", help, m.imports_skipped.clone());
        m
    }

    fn record(&self, protocol: Protocol, info: &ResponseInfo) {
        self.count(usize::from(protocol != Protocol::Udp), info.response_code);
        if info.truncation {
            self.truncated.inc();
        }
    }

    /// A fast-path answer: UDP, never truncated.
    pub(crate) fn record_udp(&self, rcode: ResponseCode) {
        self.count(0, rcode);
    }

    fn count(&self, transport: usize, rcode: ResponseCode) {
        let r = RCODES
            .iter()
            .position(|(c, _)| *c == rcode)
            .unwrap_or(RCODES.len());
        if let Some(counter) = self.responses.get(transport).and_then(|row| row.get(r)) {
            counter.inc();
        }
    }

    /// The packet counter of UDP worker `worker`.
    pub(crate) fn worker_packets(&self, worker: usize) -> Counter {
        let labels = WorkerLabels {
            worker: worker.to_string(),
        };
        self.worker_packets.get_or_create(&labels).clone()
    }
}

/// The hickory `Catalog` (zone routing, REFUSED outside our zones, FORMERR for
/// several questions, BADVERS, negative answers with SOA) plus metrics.
/// Shared by the TCP server and every UDP worker's fallback.
#[derive(Clone)]
pub(crate) struct Handler {
    pub catalog: Arc<Catalog>,
    pub metrics: Metrics,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        let info = self
            .catalog
            .handle_request::<R, T>(request, response_handle)
            .await;
        self.metrics.record(request.protocol(), &info);
        info
    }
}
