//! The QUIC endpoint: UDP socket, transport settings and TLS configs.
//!
//! One server and one client endpoint per worker (see `WorkerEndpoints`).
//! Settings come from measurement on loopback (see docs/protocol.md): 4 MiB UDP
//! socket buffers (no drops at full rate), GSO on (quinn's default), a bounded
//! connection receive window, and stream credit sized for thousands of
//! tunnelled connections per peer.

use std::net::SocketAddr;
use std::sync::Arc;

use causeway_catalog::ClusterId;
use quinn::congestion::{BbrConfig, CubicConfig, NewRenoConfig};
use quinn::{
    AckFrequencyConfig, IdleTimeout, MtuDiscoveryConfig, Runtime, TransportConfig, VarInt,
};
use socket2::{Domain, Protocol, Socket, Type};

use crate::config::{Config, Congestion};
use crate::metrics::{BufferDir, Metrics};
use crate::tls::{Identity, TlsError};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    #[error(
        "binding the QUIC endpoint on UDP {addr} failed (is the address local and the port free?): {source}"
    )]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("gateway.connections.idle_timeout {0:?} is too large for QUIC (at most 2^62 ms)")]
    IdleTimeout(std::time::Duration),
}

/// Time before MTU discovery runs again after a (possibly false) black hole.
const BLACK_HOLE_COOLDOWN: std::time::Duration = std::time::Duration::from_secs(3);

/// Inbound QUIC handshakes in progress at once.
const MAX_HANDSHAKES: usize = 1024;

pub fn transport(cfg: &Config) -> Result<Arc<TransportConfig>, EndpointError> {
    transport_config(cfg).map(Arc::new)
}

pub fn transport_config(cfg: &Config) -> Result<TransportConfig, EndpointError> {
    let (t, p, l) = (&cfg.transport, &cfg.connections, &cfg.limits);
    let idle = IdleTimeout::try_from(p.idle_timeout)
        .map_err(|_| EndpointError::IdleTimeout(p.idle_timeout))?;
    let mut tc = TransportConfig::default();
    tc.max_concurrent_bidi_streams(VarInt::from_u32(l.max_streams_per_connection))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .stream_receive_window(VarInt::from_u32(t.stream_receive_window))
        .receive_window(VarInt::from_u32(t.receive_window))
        .send_window(t.send_window.into())
        .keep_alive_interval(Some(p.keep_alive))
        .max_idle_timeout(Some(idle))
        .send_fairness(t.send_fairness);
    let mut mtu = MtuDiscoveryConfig::default();
    mtu.upper_bound(t.max_udp_payload)
        // quinn takes a burst of congestion loss of full-size packets for an
        // MTU black hole and drops to 1200 bytes (20 % more packets per byte);
        // search again soon instead of after a minute.
        .black_hole_cooldown(BLACK_HOLE_COOLDOWN);
    tc.mtu_discovery_config(Some(mtu));
    if t.ack_every > 0 {
        let mut ack = AckFrequencyConfig::default();
        ack.ack_eliciting_threshold(VarInt::from_u32(t.ack_every - 1));
        tc.ack_frequency_config(Some(ack));
    }
    match t.congestion {
        Congestion::Cubic => tc.congestion_controller_factory(Arc::new(CubicConfig::default())),
        Congestion::Bbr => tc.congestion_controller_factory(Arc::new(BbrConfig::default())),
        Congestion::NewReno => tc.congestion_controller_factory(Arc::new(NewRenoConfig::default())),
    };
    Ok(tc)
}

pub fn server_config(cfg: &Config, id: &Identity) -> Result<quinn::ServerConfig, EndpointError> {
    let mut sc = quinn::ServerConfig::with_crypto(Arc::new(id.server()?));
    sc.transport_config(transport(cfg)?);
    // Peers are a handful of gateways: bound the handshakes in flight well below
    // quinn's default (2^16), so a flood of unauthenticated Initials stays cheap.
    sc.max_incoming(MAX_HANDSHAKES);
    Ok(sc)
}

/// Client config for dialling `peer` from `worker`: our first destination
/// connection ID says which worker dials (see `steer`).
pub fn client_config(
    cfg: &Config,
    id: &Identity,
    peer: &ClusterId,
    worker: usize,
) -> Result<quinn::ClientConfig, EndpointError> {
    let mut cc = quinn::ClientConfig::new(Arc::new(id.client(peer)?));
    cc.transport_config(transport(cfg)?);
    cc.initial_dst_cid_provider(crate::steer::initial_cids(worker));
    Ok(cc)
}

/// Client config for a one-off connection to `peer` (`causeway doctor`):
/// the dialler's TLS, ALPN and transport settings, without worker steering.
pub fn probe_client_config(
    cfg: &Config,
    cert: Arc<causeway_identity::ReloadingCert>,
    peers: Arc<causeway_identity::PeerSet>,
    peer: &ClusterId,
) -> Result<quinn::ClientConfig, EndpointError> {
    let id = Identity { cert, peers };
    let mut cc = quinn::ClientConfig::new(Arc::new(id.client(peer)?));
    cc.transport_config(transport(cfg)?);
    Ok(cc)
}

/// One worker's QUIC endpoints: `server` shares the listen port with the
/// other workers' (`SO_REUSEPORT`: the kernel keeps each peer's 4-tuple on
/// one of them) and accepts; `client` has a port of its own and dials. A
/// connection's datagrams, its driver and its streams then all stay on the
/// worker, with no hand-off between threads. Dialling from the shared port
/// would not work: connections from two workers to one peer would have the
/// same 4-tuple, and the kernel would deliver both to one socket.
pub struct WorkerEndpoints {
    pub server: quinn::Endpoint,
    pub client: quinn::Endpoint,
}

/// Binds one worker's endpoints; call it on that worker's runtime (quinn
/// spawns the endpoint drivers there). `port` is the listen port the first
/// worker got (`cfg.listen`'s may be 0).
pub fn bind(
    cfg: &Config,
    server: quinn::ServerConfig,
    (worker, workers): (usize, usize),
    port: u16,
    metrics: &Metrics,
) -> Result<WorkerEndpoints, EndpointError> {
    let listen = SocketAddr::new(cfg.listen.ip(), port);
    let steer = Steer { worker, workers };
    let server = endpoint(cfg, listen, Some((server, steer)), metrics)?;
    let client = endpoint(cfg, SocketAddr::new(cfg.listen.ip(), 0), None, metrics)?;
    Ok(WorkerEndpoints { server, client })
}

/// A server socket's place in the listen port's reuseport group.
#[derive(Clone, Copy)]
struct Steer {
    worker: usize,
    workers: usize,
}

/// Binds a UDP socket with large buffers (and `SO_REUSEPORT` for a server),
/// then a quinn endpoint on it.
fn endpoint(
    cfg: &Config,
    addr: SocketAddr,
    server: Option<(quinn::ServerConfig, Steer)>,
    metrics: &Metrics,
) -> Result<quinn::Endpoint, EndpointError> {
    let err = |source| EndpointError::Bind { addr, source };
    let sock = udp_socket(cfg, addr, metrics)?;
    let mut config = endpoint_config(cfg);
    if let Some((_, steer)) = &server {
        #[cfg(unix)]
        sock.set_reuse_port(true).map_err(err)?;
        let worker = (steer.worker % 256) as u8;
        config.cid_generator(move || Box::new(crate::steer::WorkerCids(worker)));
    }
    sock.bind(&addr.into()).map_err(err)?;
    if let Some((_, steer)) = server.as_ref().filter(|(_, s)| s.worker == 0) {
        // One program for the whole group; without it the kernel hashes.
        if let Err(e) = crate::steer::attach(&sock, steer.workers) {
            tracing::warn!(error = %e, "cannot steer QUIC datagrams to their worker; the kernel's hash decides");
        }
    }
    sock.set_nonblocking(true).map_err(err)?;
    let runtime = Arc::new(quinn::TokioRuntime);
    let socket = runtime.wrap_udp_socket(sock.into()).map_err(err)?;
    metrics
        .udp_gso_segments
        .set(socket.max_transmit_segments() as i64);
    metrics
        .udp_gro_segments
        .set(socket.max_receive_segments() as i64);
    let server = server.map(|(sc, _)| sc);
    quinn::Endpoint::new_with_abstract_socket(config, server, socket, runtime).map_err(err)
}

/// A UDP socket with the configured buffers, not yet bound.
fn udp_socket(cfg: &Config, addr: SocketAddr, metrics: &Metrics) -> Result<Socket, EndpointError> {
    let err = |source| EndpointError::Bind { addr, source };
    let sock =
        Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(err)?;
    size_buffers(&sock, cfg.transport.udp_socket_buffer as usize, metrics);
    Ok(sock)
}

/// Moves a client endpoint to a new socket on `ip` (a new port): its
/// connections carry on from the new address, which each peer validates
/// (QUIC connection migration). Call it on the endpoint's own runtime.
pub fn rebind(
    cfg: &Config,
    e: &quinn::Endpoint,
    ip: std::net::IpAddr,
    metrics: &Metrics,
) -> Result<SocketAddr, EndpointError> {
    let addr = SocketAddr::new(ip, 0);
    let err = |source| EndpointError::Bind { addr, source };
    let sock = udp_socket(cfg, addr, metrics)?;
    sock.bind(&addr.into()).map_err(err)?;
    sock.set_nonblocking(true).map_err(err)?;
    e.rebind(sock.into()).map_err(err)?;
    e.local_addr().map_err(err)
}

fn endpoint_config(cfg: &Config) -> quinn::EndpointConfig {
    let mut ec = quinn::EndpointConfig::default();
    // Checked by config validation (1200..=65527); quinn's default otherwise.
    let _ = ec.max_udp_payload_size(cfg.transport.max_udp_payload);
    ec
}

/// Sets SO_RCVBUF/SO_SNDBUF, reads back what the kernel granted, exports it,
/// and warns when it is less than asked: the kernel silently caps both at
/// net.core.rmem_max / wmem_max unless the process may force them (CAP_NET_ADMIN).
fn size_buffers(sock: &Socket, want: usize, metrics: &Metrics) {
    let _ = sock.set_recv_buffer_size(want);
    let _ = sock.set_send_buffer_size(want);
    let (mut rcv, mut snd) = granted(sock);
    if rcv < want || snd < want {
        force(sock, want);
        (rcv, snd) = granted(sock);
    }
    metrics.udp_buffer(BufferDir::Receive).set(rcv as i64);
    metrics.udp_buffer(BufferDir::Send).set(snd as i64);
    if rcv < want || snd < want {
        tracing::warn!(
            wanted = want,
            receive = rcv,
            send = snd,
            "the kernel capped the QUIC socket buffers (net.core.rmem_max / wmem_max); \
             expect packet loss at high rates: raise those sysctls (docs/operations.md)"
        );
    }
}

/// The buffer sizes in effect: Linux reports twice the usable size (the rest is
/// its bookkeeping), so halve it to compare with what was asked.
fn granted(sock: &Socket) -> (usize, usize) {
    let half = |r: std::io::Result<usize>| r.map_or(0, |v| v / 2);
    (half(sock.recv_buffer_size()), half(sock.send_buffer_size()))
}

#[cfg(target_os = "linux")]
fn force(sock: &Socket, want: usize) {
    use rustix::net::sockopt;
    let r = sockopt::set_socket_recv_buffer_size_force(sock, want)
        .and_then(|()| sockopt::set_socket_send_buffer_size_force(sock, want));
    if let Err(e) = r {
        tracing::debug!(error = %e, "cannot force UDP socket buffers (needs CAP_NET_ADMIN)");
    }
}

#[cfg(not(target_os = "linux"))]
fn force(_: &Socket, _: usize) {}
