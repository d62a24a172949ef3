//! The QUIC endpoint: UDP socket, transport settings and TLS configs.
//!
//! Settings come from measurement on loopback (see docs/protocol.md): 4 MiB UDP
//! socket buffers (no drops at full rate), GSO on (quinn's default), a bounded
//! connection receive window, and stream credit sized for thousands of
//! tunnelled connections per peer.

use std::net::SocketAddr;
use std::sync::Arc;

use causeway_catalog::ClusterId;
use quinn::congestion::{BbrConfig, CubicConfig, NewRenoConfig};
use quinn::{IdleTimeout, TransportConfig, VarInt};
use socket2::{Domain, Protocol, Socket, Type};

use crate::config::{Config, Congestion};
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

/// Inbound QUIC handshakes in progress at once.
const MAX_HANDSHAKES: usize = 1024;

pub fn transport(cfg: &Config) -> Result<Arc<TransportConfig>, EndpointError> {
    let (t, p, l) = (&cfg.transport, &cfg.connections, &cfg.limits);
    let idle = IdleTimeout::try_from(p.idle_timeout)
        .map_err(|_| EndpointError::IdleTimeout(p.idle_timeout))?;
    let mut tc = TransportConfig::default();
    tc.max_concurrent_bidi_streams(VarInt::from_u32(l.max_streams_per_peer))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .stream_receive_window(VarInt::from_u32(t.stream_receive_window))
        .receive_window(VarInt::from_u32(t.receive_window))
        .send_window(t.send_window.into())
        .keep_alive_interval(Some(p.keep_alive))
        .max_idle_timeout(Some(idle));
    match t.congestion {
        Congestion::Cubic => tc.congestion_controller_factory(Arc::new(CubicConfig::default())),
        Congestion::Bbr => tc.congestion_controller_factory(Arc::new(BbrConfig::default())),
        Congestion::NewReno => tc.congestion_controller_factory(Arc::new(NewRenoConfig::default())),
    };
    Ok(Arc::new(tc))
}

pub fn server_config(cfg: &Config, id: &Identity) -> Result<quinn::ServerConfig, EndpointError> {
    let mut sc = quinn::ServerConfig::with_crypto(Arc::new(id.server()?));
    sc.transport_config(transport(cfg)?);
    // Peers are a handful of gateways: bound the handshakes in flight well below
    // quinn's default (2^16), so a flood of unauthenticated Initials stays cheap.
    sc.max_incoming(MAX_HANDSHAKES);
    Ok(sc)
}

pub fn client_config(
    cfg: &Config,
    id: &Identity,
    peer: &ClusterId,
) -> Result<quinn::ClientConfig, EndpointError> {
    let mut cc = quinn::ClientConfig::new(Arc::new(id.client(peer)?));
    cc.transport_config(transport(cfg)?);
    Ok(cc)
}

/// Binds the UDP socket with large buffers, then the endpoint on it.
pub fn bind(cfg: &Config, server: quinn::ServerConfig) -> Result<quinn::Endpoint, EndpointError> {
    let addr = cfg.listen;
    let err = |source| EndpointError::Bind { addr, source };
    let sock =
        Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(err)?;
    let size = cfg.transport.udp_socket_buffer as usize;
    // The kernel caps these at net.core.[rw]mem_max; a smaller buffer still works.
    if let Err(e) = sock
        .set_recv_buffer_size(size)
        .and_then(|()| sock.set_send_buffer_size(size))
    {
        tracing::warn!(error = %e, size, "could not set UDP socket buffers; expect packet loss at high rates");
    }
    sock.bind(&addr.into()).map_err(err)?;
    sock.set_nonblocking(true).map_err(err)?;
    let runtime = Arc::new(quinn::TokioRuntime);
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(server),
        sock.into(),
        runtime,
    )
    .map_err(err)
}
