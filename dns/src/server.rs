//! The DNS server: sockets, the UDP workers, the hickory `Server` (TCP, and UDP
//! when the fast path is off), and the task that keeps the answer index in step
//! with the catalog.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use causeway_catalog::CatalogSnapshot;
use hickory_server::Server;
use hickory_server::net::NetError;
use hickory_server::proto::rr::LowerName;
use hickory_server::zone_handler::Catalog;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{Config, ConfigError};
use crate::index::{self, Index};
use crate::metrics::{Handler, Metrics};
use crate::names::NameError;
use crate::udp;
use crate::zone::Zone;
use crate::zones::Zones;

/// A TCP connection that sends no query for this long is closed (slowloris guard).
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Responses queued per TCP connection before the connection applies back-pressure.
const TCP_RESPONSE_BUFFER: usize = 32;
/// How long in-flight work may take to finish after shutdown is triggered.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts at finding a port free on both UDP and TCP when `listen` asks for port 0.
const BIND_ATTEMPTS: usize = 16;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("dns: cannot bind {proto} {addr}: {source} (is another DNS server on that port?)")]
    Bind {
        proto: &'static str,
        addr: SocketAddr,
        source: io::Error,
    },
    #[error("dns: building the answer index failed: {0}")]
    Build(#[source] tokio::task::JoinError),
    #[error("dns: the server stopped unexpectedly: {0}")]
    Serve(#[source] NetError),
    #[error("dns: cannot start the UDP worker threads: {0}")]
    Workers(#[source] io::Error),
}

/// A bound DNS server; call [`DnsServer::run`] to answer queries.
pub struct DnsServer {
    /// One socket per UDP worker (one for hickory without the fast path), same address.
    udp: Vec<std::net::UdpSocket>,
    fast_path: bool,
    tcp: TcpListener,
    zones: Arc<Zones>,
    index: Arc<ArcSwap<Index>>,
    metrics: Metrics,
    catalog: watch::Receiver<Arc<CatalogSnapshot>>,
}

impl DnsServer {
    /// Registers the metrics, validates `cfg`, binds UDP and TCP on `cfg.listen`
    /// (port 0: one free port for both) and builds the index from the current catalog.
    pub async fn bind(
        cfg: &Config,
        catalog: watch::Receiver<Arc<CatalogSnapshot>>,
        registry: &mut Registry,
    ) -> Result<Self, DnsError> {
        Self::bind_with(cfg, catalog, Metrics::register(registry)).await
    }

    async fn bind_with(
        cfg: &Config,
        mut catalog: watch::Receiver<Arc<CatalogSnapshot>>,
        metrics: Metrics,
    ) -> Result<Self, DnsError> {
        cfg.validate()?;
        info!(config = ?cfg, "dns: effective config");
        let zones = Arc::new(Zones::from_config(cfg)?);
        let workers = if cfg.udp_fast_path {
            cfg.udp_worker_count()
        } else {
            1
        };
        let (udp, tcp) = bind_sockets(cfg.listen, workers).await?;
        let first = catalog.borrow_and_update().clone();
        let index = build_off_runtime(zones.clone(), first, initial_serial())
            .await
            .map_err(DnsError::Build)?;
        metrics.catalog_updates.inc();
        observe(&metrics, &index);
        Ok(Self {
            udp,
            fast_path: cfg.udp_fast_path,
            tcp,
            zones,
            index: Arc::new(ArcSwap::from_pointee(index)),
            metrics,
            catalog,
        })
    }

    /// The bound UDP address (TCP listens on the same address).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self.udp.first() {
            Some(udp) => udp.local_addr(),
            None => self.tcp.local_addr(),
        }
    }

    /// Answers queries until `shutdown` is cancelled, then drains (bounded).
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), DnsError> {
        let handler = Handler {
            catalog: Arc::new(self.build_catalog()),
            metrics: self.metrics.clone(),
        };
        let mut server = Server::new(handler.clone());
        let workers_stop = shutdown.child_token();
        info!(
            addr = ?self.local_addr().ok(),
            fast_path = self.fast_path,
            udp_sockets = self.udp.len(),
            "dns: serving UDP and TCP"
        );
        let fast = self.fast_path.then(|| udp::Shared {
            index: self.index.clone(),
            handler,
            metrics: self.metrics.clone(),
        });
        let workers = start_udp(self.udp, fast, &mut server, &workers_stop)?;
        // hickory's TCP accept is unbounded: it listens on loopback behind the gate.
        let (inner, inner_addr) = crate::tcp_gate::bind_inner().await?;
        server.register_listener(inner, TCP_IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);
        let _gate = crate::tcp_gate::spawn(self.tcp, inner_addr, workers_stop.clone());
        let updater = tokio::spawn(follow_catalog(
            self.catalog,
            self.zones,
            self.index,
            self.metrics,
            shutdown.clone(),
        ));
        let ended = tokio::select! {
            _ = shutdown.cancelled() => None,
            r = server.block_until_done() => Some(r),
        };
        updater.abort();
        workers_stop.cancel();
        let drained = drain(server, workers);
        if let Some(result) = ended {
            drained.await?;
            return result.map_err(DnsError::Serve);
        }
        drained.await
    }

    /// One handler per zone apex, all reading the same index.
    fn build_catalog(&self) -> Catalog {
        let mut catalog = Catalog::new();
        for apex in self.zones.apexes() {
            let origin = LowerName::new(apex);
            let zone = Zone::new(origin.clone(), self.index.clone());
            catalog.upsert(origin, vec![Arc::new(zone)]);
        }
        catalog
    }
}

/// The one-call entry point for `causeway run`: registers the metrics now (the
/// registry borrow ends when this returns, so `/metrics` can serve it while DNS
/// runs), then the returned future validates, binds and serves until `shutdown`.
pub fn serve(
    cfg: &Config,
    catalog: watch::Receiver<Arc<CatalogSnapshot>>,
    registry: &mut Registry,
    shutdown: CancellationToken,
) -> impl Future<Output = Result<(), DnsError>> + Send + 'static {
    let metrics = Metrics::register(registry);
    let cfg = cfg.clone();
    async move {
        let server = DnsServer::bind_with(&cfg, catalog, metrics).await?;
        server.run(shutdown).await
    }
}

/// Starts the UDP workers, or without the fast path hands the socket to hickory.
fn start_udp(
    sockets: Vec<std::net::UdpSocket>,
    fast: Option<udp::Shared>,
    server: &mut Server<Handler>,
    stop: &CancellationToken,
) -> Result<Vec<std::thread::JoinHandle<()>>, DnsError> {
    let Some(shared) = fast else {
        for socket in sockets {
            socket.set_nonblocking(true).map_err(DnsError::Workers)?;
            let socket = tokio::net::UdpSocket::from_std(socket).map_err(DnsError::Workers)?;
            server.register_socket(socket);
        }
        return Ok(Vec::new());
    };
    // Threads already started stop on the token if a later one fails to start.
    udp::spawn(sockets, &shared, stop).map_err(|e| {
        stop.cancel();
        DnsError::Workers(e)
    })
}

/// Waits (bounded) for TCP connections to finish and UDP workers to stop.
async fn drain(
    mut server: Server<Handler>,
    workers: Vec<std::thread::JoinHandle<()>>,
) -> Result<(), DnsError> {
    let joined = tokio::task::spawn_blocking(move || {
        for worker in workers {
            if worker.join().is_err() {
                warn!("dns: a UDP worker thread panicked");
            }
        }
    });
    let both = async { tokio::join!(server.shutdown_gracefully(), joined).0 };
    match tokio::time::timeout(DRAIN_TIMEOUT, both).await {
        Ok(result) => result.map_err(DnsError::Serve),
        Err(_) => {
            warn!("dns: drain timed out; closing remaining connections");
            Ok(())
        }
    }
}

/// Binds `udp` UDP sockets (`SO_REUSEPORT`) and a TCP listener on one address;
/// with port 0, retries until one port is free on both.
async fn bind_sockets(
    listen: SocketAddr,
    udp: usize,
) -> Result<(Vec<std::net::UdpSocket>, TcpListener), DnsError> {
    let attempts = if listen.port() == 0 { BIND_ATTEMPTS } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let first = udp::bind(listen).map_err(bind_error("UDP", listen))?;
        let addr = first.local_addr().map_err(bind_error("UDP", listen))?;
        match TcpListener::bind(addr).await {
            Ok(tcp) => {
                let mut sockets = vec![first];
                for _ in 1..udp {
                    sockets.push(udp::bind(addr).map_err(bind_error("UDP", addr))?);
                }
                return Ok((sockets, tcp));
            }
            Err(source) => last = Some(bind_error("TCP", addr)(source)),
        }
    }
    Err(last
        .unwrap_or_else(|| bind_error("TCP", listen)(io::Error::from(io::ErrorKind::AddrInUse))))
}

fn bind_error(proto: &'static str, addr: SocketAddr) -> impl Fn(io::Error) -> DnsError {
    move |source| DnsError::Bind {
        proto,
        addr,
        source,
    }
}

/// Rebuilds the index on every catalog change and swaps it in; queries keep
/// reading the previous index until the swap, so they never wait for a rebuild.
async fn follow_catalog(
    mut catalog: watch::Receiver<Arc<CatalogSnapshot>>,
    zones: Arc<Zones>,
    index: Arc<ArcSwap<Index>>,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = catalog.changed() => if changed.is_err() {
                info!("dns: catalog source closed; serving the last snapshot");
                return;
            },
        }
        let snapshot = catalog.borrow_and_update().clone();
        let serial = index.load().serial().wrapping_add(1);
        match build_off_runtime(zones.clone(), snapshot, serial).await {
            Ok(new) => {
                observe(&metrics, &new);
                index.store(Arc::new(new));
                metrics.catalog_updates.inc();
            }
            Err(error) => warn!(%error, "dns: index rebuild failed; keeping the previous answers"),
        }
    }
}

/// Index builds are O(imports) CPU work: keep them off the runtime's workers,
/// which are answering queries.
async fn build_off_runtime(
    zones: Arc<Zones>,
    snapshot: Arc<CatalogSnapshot>,
    serial: u32,
) -> Result<Index, tokio::task::JoinError> {
    tokio::task::spawn_blocking(move || index::build(&zones, &snapshot, serial)).await
}

fn observe(metrics: &Metrics, index: &Index) {
    metrics
        .index_names
        .set(i64::try_from(index.name_count()).unwrap_or(i64::MAX));
    metrics
        .imports_skipped
        .set(i64::try_from(index.skipped).unwrap_or(i64::MAX));
}

/// SOA serials start at the Unix time, so a restarted server never goes backwards.
fn initial_serial() -> u32 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    u32::try_from(secs).unwrap_or(u32::MAX)
}
