//! Wiring: inputs in, bound sockets, then run until drained.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use causeway_catalog::{CatalogSnapshot, ClusterInfo, Export};
use causeway_identity::{PeerSet, ReloadingCert};
use causeway_policy::Policies;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::config_check::ConfigError;
use crate::endpoint::{self, EndpointError, WorkerEndpoints};
use crate::fallback::Fallback;
use crate::fallback::metrics::FallbackMetrics;
use crate::metrics::Metrics;
use crate::policy_metrics::PolicyMetrics;
use crate::protocol::CLOSE_DRAINING;
use crate::shared::Shared;
use crate::tls::Identity;
use crate::workers::{Threads, Workers};

/// Everything the gateway needs from the rest of the process.
pub struct GatewayInputs {
    pub cfg: Config,
    /// This cluster: name, region, zone.
    pub local: ClusterInfo,
    /// Our gateway certificate (reloaded by its owner).
    pub cert: Arc<ReloadingCert>,
    /// Trust per peer cluster.
    pub peers: Arc<PeerSet>,
    /// Imports (with VIPs) and every cluster's info (gateway addresses).
    pub catalog: watch::Receiver<Arc<CatalogSnapshot>>,
    /// What this cluster exports: inbound authorization and local endpoints.
    pub local_exports: watch::Receiver<Arc<Vec<Export>>>,
    /// Traffic policy; a new value applies to new connections only.
    pub policies: watch::Receiver<Arc<Policies>>,
    /// Cancel to drain: stop accepting, finish streams until `drain_deadline`, close.
    pub shutdown: CancellationToken,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error(transparent)]
    Observe(#[from] crate::observe::ObserveError),
    #[error(transparent)]
    Fallback(#[from] crate::fallback::FallbackError),
    #[error("cannot start the gateway's worker threads: {0}")]
    Workers(#[source] std::io::Error),
}

pub struct Gateway {
    shared: Arc<Shared>,
    /// Stops and joins the workers when the gateway is done or dropped.
    threads: Threads,
}

impl Gateway {
    /// Validates the config, binds the QUIC endpoint and registers metrics.
    pub async fn bind(inputs: GatewayInputs, registry: &mut Registry) -> Result<Gateway, Error> {
        inputs.cfg.validate()?;
        let id = Identity {
            cert: inputs.cert,
            peers: inputs.peers,
        };
        let (workers, threads) =
            Workers::start(inputs.cfg.worker_count()).map_err(Error::Workers)?;
        let metrics = Metrics::default();
        metrics.register(registry);
        let policy_metrics = PolicyMetrics::default();
        policy_metrics.register(registry);
        let udp_metrics = crate::udp::UdpMetrics::default();
        udp_metrics.register(registry);
        let observe = crate::observe::Observe::start(&inputs.cfg, &inputs.local, registry)?;
        let (endpoints, reserved) = bind_ports(&inputs.cfg, &id, &workers, &metrics)?;
        let fallback = bind_fallback(&inputs.cfg, &id, &workers, &endpoints, reserved, registry)?;
        tracing::info!(cluster = %inputs.local.name, listen = ?endpoints[0].server.local_addr().ok(), workers = workers.len(), cfg = ?inputs.cfg, "gateway bound");
        crate::listeners::warn_if_ephemeral(&inputs.cfg);
        let shared = Shared {
            cfg: inputs.cfg,
            local: inputs.local,
            id,
            metrics,
            observe,
            endpoints,
            workers,
            fallback,
            pool: Default::default(),
            catalog: inputs.catalog,
            exports: inputs.local_exports,
            policies: inputs.policies,
            policy_metrics,
            limits: Default::default(),
            loads: Default::default(),
            peer_connections: Default::default(),
            peer_streams: Default::default(),
            peer_flows: Default::default(),
            udp: Default::default(),
            udp_metrics,
            handshaking: Default::default(),
            hard: CancellationToken::new(),
            shutdown: inputs.shutdown,
            tasks: TaskTracker::new(),
            streams: TaskTracker::new(),
        };
        Ok(Gateway {
            shared: Arc::new(shared),
            threads,
        })
    }

    /// The bound UDP address of the QUIC endpoint.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.shared.endpoints[0].server.local_addr()
    }

    /// A handle to move the dialling sockets to a new address while running.
    pub fn rebinder(&self) -> crate::rebind::Rebinder {
        crate::rebind::Rebinder(self.shared.clone())
    }

    /// The bound TCP address of the fallback listener, if enabled.
    pub fn fallback_addr(&self) -> Option<SocketAddr> {
        self.shared.fallback.local_addr()
    }

    /// Serves until `shutdown` is cancelled, then drains.
    pub async fn run(self) -> Result<(), Error> {
        let s = self.shared;
        for w in 0..s.workers.len() {
            let accept = crate::inbound::accept_loop(s.clone(), w);
            s.tasks.spawn_on(accept, s.workers.handle(w));
        }
        crate::fallback::Fallback::start(&s);
        s.tasks.spawn(crate::listeners::watch_catalog(s.clone()));
        s.shutdown.cancelled().await;
        drain(&s).await;
        drop(self.threads);
        Ok(())
    }
}

/// Attempts at finding one port number free on both UDP and TCP.
const PORT_TRIES: usize = 16;

/// Binds the QUIC endpoints and, when the listen port is left to the kernel
/// and the TCP fallback shares it, reserves that number on TCP first: an
/// ephemeral UDP port is often taken on TCP by an outbound connection.
fn bind_ports(
    cfg: &Config,
    id: &Identity,
    workers: &Workers,
    metrics: &Metrics,
) -> Result<(Vec<WorkerEndpoints>, Option<std::net::TcpListener>), Error> {
    let mut tries = 0;
    loop {
        tries += 1;
        let reserved = crate::fallback::reserve(cfg)?;
        let port = reserved
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map_or(cfg.listen.port(), |a| a.port());
        match bind_endpoints(cfg, id, workers, metrics, port) {
            Ok(e) => return Ok((e, reserved)),
            Err(_) if reserved.is_some() && tries < PORT_TRIES => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Binds every worker's endpoints on that worker (quinn runs an endpoint's
/// driver, every datagram it receives, on the runtime that binds it).
fn bind_endpoints(
    cfg: &Config,
    id: &Identity,
    workers: &Workers,
    metrics: &Metrics,
    mut port: u16,
) -> Result<Vec<WorkerEndpoints>, Error> {
    let mut out = Vec::with_capacity(workers.len());
    for w in 0..workers.len() {
        let _worker = workers.handle(w).enter();
        let server = endpoint::server_config(cfg, id)?;
        let e = endpoint::bind(cfg, server, (w, workers.len()), port, metrics)?;
        port = e.server.local_addr().map_or(port, |a| a.port());
        out.push(e);
    }
    Ok(out)
}

/// Binds the TCP fallback on worker 0, its TCP port defaulting to the QUIC one.
fn bind_fallback(
    cfg: &Config,
    id: &Identity,
    workers: &Workers,
    endpoints: &[WorkerEndpoints],
    reserved: Option<std::net::TcpListener>,
    registry: &mut Registry,
) -> Result<Fallback, Error> {
    let metrics = FallbackMetrics::default();
    metrics.register(registry);
    let port = endpoints[0]
        .server
        .local_addr()
        .map_or(cfg.listen.port(), |a| a.port());
    let _worker = workers.handle(0).enter();
    Ok(Fallback::bind(cfg, id, port, metrics, reserved)?)
}

/// Resolves once every endpoint has no connection left.
async fn all_idle(s: &Shared) {
    for e in s.all_endpoints() {
        e.wait_idle().await;
    }
}

/// Stops accepting (listeners watch `shutdown`), lets streams finish until the
/// deadline, then closes every peer connection with "draining, go elsewhere".
async fn drain(s: &Shared) {
    let deadline = s.cfg.drain_deadline;
    tracing::info!(?deadline, open = s.streams.len(), "draining");
    s.streams.close();
    if tokio::time::timeout(deadline, s.streams.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = s.streams.len(),
            "drain deadline passed; closing open streams"
        );
    }
    // Close first: tasks that stop on `hard` drop their connection handles, and a
    // dropped connection would otherwise close with code 0, which peers count as a failure.
    for e in s.all_endpoints() {
        e.close(CLOSE_DRAINING, b"draining");
    }
    s.hard.cancel();
    s.tasks.close();
    // Both are bounded: every task watches `hard`, and closing needs at most a few RTTs.
    let grace = Duration::from_secs(1);
    let _ = tokio::time::timeout(grace, s.tasks.wait()).await;
    let idle = all_idle(s);
    let _ = tokio::time::timeout(grace, idle).await;
    s.observe.flush(grace).await;
    tracing::info!("drained");
}
