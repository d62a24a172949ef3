//! The two gRPC servers: the federation listener (mutual TLS, peers only)
//! and the local catalog watch listener (mutual TLS, this cluster's own
//! gateway and DNS only).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use causeway_catalog::{CatalogSnapshot, Export};
use futures::Stream;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::Server;

use causeway_identity::{PeerSet, PeerTrust, ReloadingCert, Workload};
use causeway_policy::Policies;

use crate::Config;
use crate::error::Error;
use crate::exporter::Exporter;
use crate::metrics::Metrics;
use crate::proto::{catalog_watch_server::CatalogWatchServer, federation_server::FederationServer};
use crate::server::FederationService;
use crate::transport::PeerConn;
use crate::watch_api::{MAX_CATALOG_MESSAGE, WatchService};

/// HTTP/2 pings find dead connections that TCP alone would not notice.
const KEEPALIVE: Duration = Duration::from_secs(10);

/// A subscriber needs one stream per connection; a few spare cover reconnect races.
const MAX_STREAMS_PER_CONNECTION: u32 = 4;

pub struct ServeInputs<'a> {
    pub cfg: &'a Config,
    pub cert: Arc<ReloadingCert>,
    pub peers: Arc<PeerSet>,
    /// This cluster's own CA and trust domain: who may follow the watch feed.
    pub own: Option<PeerTrust>,
    /// Whether this replica may serve the watch feed (it leads, or there is no election).
    pub leading: watch::Receiver<bool>,
    pub exporter: Arc<std::sync::Mutex<Exporter>>,
    pub changes: watch::Receiver<u64>,
    pub catalog: watch::Receiver<Arc<CatalogSnapshot>>,
    pub local_exports: watch::Receiver<Arc<Vec<Export>>>,
    pub policies: watch::Receiver<Arc<Policies>>,
    pub rotation: watch::Receiver<Option<Arc<crate::Rotation>>>,
    pub metrics: Metrics,
    pub tasks: &'a TaskTracker,
    pub shutdown: &'a CancellationToken,
}

/// Binds and serves the federation listener and, if configured, the watch
/// listener; returns their bound addresses.
pub async fn spawn(i: ServeInputs<'_>) -> Result<(SocketAddr, Option<SocketAddr>), Error> {
    let addr = i.cfg.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    let listen = listener
        .local_addr()
        .map_err(|source| Error::Bind { addr, source })?;
    let tls =
        causeway_identity::server_config(i.cert.clone(), i.peers.clone(), Workload::Federation)?;
    let svc = FederationService {
        exporter: i.exporter,
        changes: i.changes,
        heartbeat: i.cfg.heartbeat_interval,
        send_timeout: i.cfg.idle_timeout,
        metrics: i.metrics,
        peers: i.peers.clone(),
        rotation: i.rotation,
        tasks: i.tasks.clone(),
        shutdown: i.shutdown.clone(),
    };
    let (tasks, stop) = (i.tasks.clone(), i.shutdown.clone());
    let incoming =
        crate::transport::incoming(listener, tls, i.peers, i.cfg.connect_timeout, tasks, stop);
    let serving = federation(svc, incoming, i.cfg.max_message_size, i.shutdown.clone());
    i.tasks.spawn(serving);
    let watch_listen = match (i.cfg.watch_listen, i.own) {
        (Some(addr), Some(own)) => {
            let svc = WatchService {
                catalog: i.catalog,
                local_exports: i.local_exports,
                policies: i.policies,
                leading: i.leading,
                tasks: i.tasks.clone(),
                shutdown: i.shutdown.clone(),
            };
            let tls = WatchTls {
                cert: i.cert,
                own,
                handshake_timeout: i.cfg.connect_timeout,
            };
            Some(spawn_watch(addr, svc, tls, i.tasks, i.shutdown).await?)
        }
        (Some(_), None) => return Err(Error::WatchWithoutCa),
        (None, _) => None,
    };
    Ok((listen, watch_listen))
}

pub async fn federation(
    svc: FederationService,
    incoming: impl Stream<Item = Result<PeerConn, std::io::Error>> + Send + 'static,
    max_message: usize,
    shutdown: CancellationToken,
) {
    let svc = FederationServer::new(svc)
        .max_decoding_message_size(max_message)
        .max_encoding_message_size(max_message);
    let result = Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE))
        .http2_keepalive_timeout(Some(KEEPALIVE))
        .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
        .add_service(svc)
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
        .await;
    if let Err(e) = result {
        tracing::error!("federation server stopped: {e}");
    }
}

/// Who the watch listener is and whom it lets in.
pub struct WatchTls {
    /// The federation's certificate.
    pub cert: Arc<ReloadingCert>,
    /// This cluster's own CA and trust domain.
    pub own: PeerTrust,
    pub handshake_timeout: Duration,
}

/// The workloads that may follow the catalog feed.
pub const WATCHERS: [Workload; 2] = [Workload::Gateway, Workload::Dns];

/// Binds the watch listener and serves it until `shutdown`; returns its address.
pub async fn spawn_watch(
    addr: SocketAddr,
    svc: WatchService,
    tls: WatchTls,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) -> Result<SocketAddr, Error> {
    let bind_err = |source| Error::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_err)?;
    let bound = listener.local_addr().map_err(bind_err)?;
    let config = causeway_identity::local_server_config(tls.cert, &tls.own, &WATCHERS)?;
    let own = Arc::new(PeerSet::one(tls.own));
    let (t, stop) = (tasks.clone(), shutdown.clone());
    let incoming =
        crate::transport::incoming(listener, config, own, tls.handshake_timeout, t, stop);
    let svc = CatalogWatchServer::new(svc).max_encoding_message_size(MAX_CATALOG_MESSAGE);
    let stop = shutdown.clone();
    tasks.spawn(async move {
        let result = Server::builder()
            .http2_keepalive_interval(Some(KEEPALIVE))
            .http2_keepalive_timeout(Some(KEEPALIVE))
            .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
            .add_service(svc)
            .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
            .await;
        if let Err(e) = result {
            tracing::error!("catalog watch server stopped: {e}");
        }
    });
    Ok(bound)
}
