//! Transport fallback: the same QUIC connections, carried over TLS 1.3 on TCP
//! where UDP to a peer is blocked.
//!
//! A second pair of quinn endpoints (client and server) runs over
//! [`socket::FrameSocket`], whose datagrams are frames on TLS-over-TCP links.
//! The outer TLS uses the gateway certificate and the same peer verification
//! as QUIC, so a stranger is refused before reaching the inner handshake; the
//! inner QUIC keeps ALPN, mutual TLS identity, streams and limits, so
//! everything above the connection is unchanged. The dialler (`dial`) tries
//! QUIC first and re-probes it while on TCP (docs/operations.md).

mod config;
mod dial;
mod listen;
pub mod metrics;
mod socket;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use causeway_catalog::ClusterId;
use causeway_identity::Workload;
use quinn::TransportConfig;

pub use config::FallbackConfig;
pub use dial::{connect, reprobe};
use metrics::FallbackMetrics;
use socket::FrameSocket;

use crate::config::Config;
use crate::endpoint::{self, EndpointError};
use crate::pool::lock;
use crate::shared::Shared;
use crate::tls::{Identity, TlsError};

/// ALPN of the outer TLS on fallback links.
pub const TCP_ALPN: &[u8] = b"causeway-tcp/1";
/// Datagram size of the inner QUIC: TCP carries any size without IP
/// fragmentation, and larger packets cost less CPU per byte.
const FRAME_MTU: u16 = 16 << 10;

/// The transport a peer connection runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Quic,
    Tcp,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Quic => "quic",
            Via::Tcp => "tcp",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FallbackError {
    #[error(
        "binding the fallback TCP listener on {addr} failed (is the port free? set gateway.fallback.listen, or gateway.fallback.enabled: false): {source}"
    )]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("TCP connection to the peer's fallback port {addr} failed: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS over TCP with {addr} failed (is its certificate from the peer's CA?): {source}")]
    Handshake {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the peer's trust domain {0} is not a valid TLS server name")]
    Name(String),
    #[error("the fallback over TCP did not connect within {0:?} (gateway.timeouts.handshake)")]
    Timeout(std::time::Duration),
    #[error("QUIC over the TCP link failed: {0}")]
    Quic(#[from] quinn::ConnectError),
    #[error("QUIC handshake over the TCP link failed: {0}")]
    Inner(#[from] quinn::ConnectionError),
    #[error("no trust configured for the peer; add it to peers")]
    NoTrust,
}

/// The fallback's endpoints (when enabled) and metrics.
pub struct Fallback {
    pub metrics: FallbackMetrics,
    ends: Option<Ends>,
}

struct Ends {
    client: quinn::Endpoint,
    client_sock: Arc<FrameSocket>,
    server: quinn::Endpoint,
    server_sock: Arc<FrameSocket>,
    listen: SocketAddr,
    /// Taken by `start`.
    listener: Mutex<Option<tokio::net::TcpListener>>,
    transport: Arc<TransportConfig>,
}

impl Fallback {
    /// Binds the TCP listener and both endpoints; call it on the worker that
    /// will drive them. `quic_port` is the port the QUIC endpoint got.
    pub fn bind(
        cfg: &Config,
        id: &Identity,
        quic_port: u16,
        metrics: FallbackMetrics,
        reserved: Option<std::net::TcpListener>,
    ) -> Result<Self, FallbackError> {
        if !cfg.fallback.enabled {
            return Ok(Self {
                metrics,
                ends: None,
            });
        }
        let addr = (cfg.fallback.listen).unwrap_or(SocketAddr::new(cfg.listen.ip(), quic_port));
        let bind_err = |source| FallbackError::Bind { addr, source };
        let listener = match reserved {
            Some(l) => tokio::net::TcpListener::from_std(l),
            None => tcp_listener(addr),
        }
        .map_err(bind_err)?;
        let listen = listener.local_addr().map_err(bind_err)?;
        let transport = Arc::new(transport(cfg)?);
        let mut sc = endpoint::server_config(cfg, id)?;
        sc.transport_config(transport.clone());
        let drops = metrics.drops();
        let server_sock = FrameSocket::new(listen, drops.clone());
        let client_sock = FrameSocket::new(SocketAddr::new(listen.ip(), 0), drops);
        let server = quic(Some(sc), server_sock.clone(), addr)?;
        let client = quic(None, client_sock.clone(), addr)?;
        let ends = Ends {
            client,
            client_sock,
            server,
            server_sock,
            listen,
            listener: Mutex::new(Some(listener)),
            transport,
        };
        Ok(Self {
            metrics,
            ends: Some(ends),
        })
    }

    /// The bound TCP address of the fallback listener.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.ends.as_ref().map(|e| e.listen)
    }

    pub fn endpoints(&self) -> impl Iterator<Item = &quinn::Endpoint> {
        self.ends.iter().flat_map(|e| [&e.server, &e.client])
    }

    /// Starts the TCP listener and the inner QUIC accept loop on worker 0.
    pub fn start(shared: &Arc<Shared>) {
        let Some(ends) = &shared.fallback.ends else {
            return;
        };
        let Some(listener) = lock(&ends.listener).take() else {
            return;
        };
        let worker = shared.workers.handle(0);
        let tls = match outer_server(&shared.id) {
            Ok(tls) => tls,
            Err(e) => {
                tracing::error!(error = %e, "cannot build TLS for the fallback listener; TCP fallback is off");
                return;
            }
        };
        let serve = listen::serve(shared.clone(), listener, ends.server_sock.clone(), tls);
        shared.tasks.spawn_on(serve, worker);
        let accept = crate::inbound::accept_on(shared.clone(), ends.server.clone());
        shared.tasks.spawn_on(accept, worker);
    }

    /// Sets the transport gauge of `cluster` from the pool.
    pub fn export(&self, shared: &Shared, cluster: &ClusterId) {
        let now = shared.pool.transport(cluster).map(Via::as_str);
        self.metrics.set_transport(cluster.as_str(), now);
    }
}

/// The fallback's TCP listener bound ahead of the QUIC port, when that port
/// is left to the kernel (`listen` port 0) and shared with the fallback:
/// the QUIC endpoints then take this number.
pub fn reserve(cfg: &Config) -> Result<Option<std::net::TcpListener>, FallbackError> {
    let f = &cfg.fallback;
    if !f.enabled || f.listen.is_some() || cfg.listen.port() != 0 {
        return Ok(None);
    }
    let addr = cfg.listen;
    std_listener(addr)
        .map(Some)
        .map_err(|source| FallbackError::Bind { addr, source })
}

/// A listener that rebinds at once after a restart (`SO_REUSEADDR`: old
/// connections in TIME_WAIT do not hold the port).
fn std_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    sock.set_reuse_address(true)?;
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    sock.listen(1024)?;
    Ok(sock.into())
}

fn tcp_listener(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::from_std(std_listener(addr)?)
}

/// The inner QUIC's transport: the gateway's, with a fixed large MTU.
fn transport(cfg: &Config) -> Result<TransportConfig, EndpointError> {
    let mut tc = endpoint::transport_config(cfg)?;
    tc.initial_mtu(FRAME_MTU)
        .min_mtu(FRAME_MTU)
        .mtu_discovery_config(None);
    Ok(tc)
}

fn quic(
    server: Option<quinn::ServerConfig>,
    sock: Arc<FrameSocket>,
    addr: SocketAddr,
) -> Result<quinn::Endpoint, FallbackError> {
    let mut ec = quinn::EndpointConfig::default();
    // FRAME_MTU is within quinn's range (1200..=65527).
    let _ = ec.max_udp_payload_size(FRAME_MTU);
    let runtime = Arc::new(quinn::TokioRuntime);
    quinn::Endpoint::new_with_abstract_socket(ec, server, sock, runtime)
        .map_err(|source| FallbackError::Bind { addr, source })
}

/// Outer TLS of the listener: mutual, peers verified as for QUIC.
fn outer_server(id: &Identity) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut rc =
        causeway_identity::server_config(id.cert.clone(), id.peers.clone(), Workload::Gateway)?;
    rc.alpn_protocols = vec![TCP_ALPN.to_vec()];
    Ok(Arc::new(rc))
}

/// Outer TLS for dialling `peer`.
fn outer_client(id: &Identity, peer: &ClusterId) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let trust = id
        .peers
        .get(peer)
        .ok_or_else(|| TlsError::UnknownPeer(peer.clone()))?;
    let mut rc = causeway_identity::client_config(id.cert.clone(), &trust, Workload::Gateway)?;
    rc.alpn_protocols = vec![TCP_ALPN.to_vec()];
    Ok(Arc::new(rc))
}
