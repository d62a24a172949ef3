//! State shared by the gateway's tasks.

use std::sync::Arc;

use causeway_catalog::{CatalogSnapshot, ClusterInfo, Export};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use causeway_policy::Policies;

use crate::config::Config;
use crate::endpoint::WorkerEndpoints;
use crate::limits::LimitTable;
use crate::local::EndpointLoads;
use crate::metrics::Metrics;
use crate::observe::Observe;
use crate::policy_metrics::PolicyMetrics;
use crate::pool::Pool;
use crate::quota::PeerCounts;
use crate::tls::Identity;
use crate::workers::Workers;

pub struct Shared {
    pub cfg: Config,
    pub local: ClusterInfo,
    pub id: Identity,
    pub metrics: Metrics,
    /// Access log and spans of finished connections.
    pub observe: Observe,
    /// Each worker's QUIC endpoints, by worker index.
    pub endpoints: Vec<WorkerEndpoints>,
    /// The data-plane runtimes; connections, listeners and streams run there.
    pub workers: Arc<Workers>,
    /// QUIC over TLS on TCP, for peers whose UDP is blocked.
    pub fallback: crate::fallback::Fallback,
    pub pool: Pool,
    pub catalog: watch::Receiver<Arc<CatalogSnapshot>>,
    pub exports: watch::Receiver<Arc<Vec<Export>>>,
    /// Traffic policy in force (re-read by its owner while running).
    pub policies: watch::Receiver<Arc<Policies>>,
    pub policy_metrics: PolicyMetrics,
    /// Exporter-side limit state per policy and source cluster.
    pub limits: LimitTable,
    pub loads: Arc<EndpointLoads>,
    /// Inbound connections and streams each peer cluster holds open.
    pub peer_connections: PeerCounts,
    pub peer_streams: PeerCounts,
    /// UDP flows each peer cluster holds open here.
    pub peer_flows: PeerCounts,
    /// UDP flows of every peer connection, and their metrics.
    pub udp: crate::udp::Routes,
    pub udp_metrics: crate::udp::UdpMetrics,
    /// Inbound handshakes in progress (past a limit, unvalidated peers get a Retry).
    pub handshaking: std::sync::atomic::AtomicUsize,
    /// Drain started: stop accepting, answer `draining`.
    pub shutdown: CancellationToken,
    /// Drain deadline passed: close everything.
    pub hard: CancellationToken,
    /// Background tasks: diallers, accept loops.
    pub tasks: TaskTracker,
    /// Tunnelled connections; the drain waits for these.
    pub streams: TaskTracker,
}

impl Shared {
    pub fn exports(&self) -> Arc<Vec<Export>> {
        self.exports.borrow().clone()
    }

    pub fn catalog(&self) -> Arc<CatalogSnapshot> {
        self.catalog.borrow().clone()
    }

    /// Every QUIC endpoint, servers and clients, the fallback's included.
    pub fn all_endpoints(&self) -> impl Iterator<Item = &quinn::Endpoint> {
        let fallback = self.fallback.endpoints();
        self.endpoints
            .iter()
            .flat_map(|e| [&e.server, &e.client])
            .chain(fallback)
    }
}
