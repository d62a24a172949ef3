//! Dialling a peer: QUIC first, then TLS on TCP when QUIC gives no handshake.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use quinn::Connection;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::metrics::FallbackMetrics;
use super::{Ends, FallbackError, Via, outer_client};
use crate::dial::{DialError, dial};
use crate::endpoint;
use crate::pool::PeerConn;
use crate::shared::Shared;

/// Dials `peer` over QUIC. Slot 0 of each peer address falls back to TCP
/// (one connection per address) when QUIC has no handshake within
/// `fallback.after`; the other slots keep trying QUIC with backoff.
pub async fn connect(shared: &Shared, peer: &PeerConn) -> Result<(Connection, Via), DialError> {
    let ends = shared.fallback.ends.as_ref().filter(|_| peer.slot == 0);
    let Some(ends) = ends else {
        let c = dial(shared, peer, shared.cfg.timeouts.handshake).await?;
        return Ok((c, Via::Quic));
    };
    match dial(shared, peer, shared.cfg.fallback.after).await {
        Err(DialError::Timeout(after)) => {
            tracing::warn!(
                ?after,
                "no QUIC handshake from the peer gateway; dialling it over TLS on TCP"
            );
            let r = over_tcp(shared, ends, peer).await;
            let metrics = &shared.fallback.metrics;
            FallbackMetrics::result(&metrics.dials, peer.cluster.as_str(), r.is_ok());
            Ok((r?, Via::Tcp))
        }
        r => r.map(|c| (c, Via::Quic)),
    }
}

/// One QUIC handshake attempt while on TCP, counted.
pub async fn reprobe(shared: &Shared, peer: &PeerConn) -> Result<(Connection, Via), DialError> {
    let r = dial(shared, peer, shared.cfg.timeouts.handshake).await;
    let metrics = &shared.fallback.metrics;
    FallbackMetrics::result(&metrics.reprobes, peer.cluster.as_str(), r.is_ok());
    r.map(|c| (c, Via::Quic))
}

/// TCP, outer TLS, then QUIC over the link, each within the handshake timeout.
async fn over_tcp(
    shared: &Shared,
    ends: &Ends,
    peer: &PeerConn,
) -> Result<Connection, FallbackError> {
    let name = shared
        .id
        .server_name(&peer.cluster)
        .ok_or(FallbackError::NoTrust)?;
    let limit = shared.cfg.timeouts.handshake;
    let tls = outer_client(&shared.id, &peer.cluster)?;
    let server =
        ServerName::try_from(name.clone()).map_err(|_| FallbackError::Name(name.clone()))?;
    let addr = peer.addr;
    let tcp = in_time(limit, TcpStream::connect(addr))
        .await?
        .map_err(|source| FallbackError::Connect { addr, source })?;
    let _ = tcp.set_nodelay(true);
    let stream = in_time(limit, TlsConnector::from(tls).connect(server, tcp))
        .await?
        .map_err(|source| FallbackError::Handshake { addr, source })?;
    let link = ends.client_sock.dialled_addr();
    let stop = shared.hard.child_token();
    let idle = shared.cfg.connections.idle_timeout;
    let carry = Arc::clone(&ends.client_sock).attach(link, stream, idle, stop.clone());
    shared.tasks.spawn(carry);
    let inner = async {
        let mut cc = endpoint::client_config(&shared.cfg, &shared.id, &peer.cluster, peer.worker)?;
        cc.transport_config(ends.transport.clone());
        let connecting = ends.client.connect_with(cc, link, &name)?;
        Ok(in_time(limit, connecting).await??)
    };
    let r: Result<Connection, FallbackError> = inner.await;
    if r.is_err() {
        stop.cancel();
    }
    r
}

async fn in_time<T>(limit: Duration, f: impl Future<Output = T>) -> Result<T, FallbackError> {
    tokio::time::timeout(limit, f)
        .await
        .map_err(|_| FallbackError::Timeout(limit))
}
