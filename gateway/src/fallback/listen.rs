//! The fallback listener: TLS 1.3 on TCP from peer gateways.
//!
//! Handshakes in flight are bounded, each has the handshake timeout, and one
//! source address may hold at most `fallback.max_per_source` connections. A
//! client without a certificate from a configured peer's CA, naming that
//! peer, is refused by the outer TLS and never reaches QUIC.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

use super::socket::FrameSocket;
use crate::quota::{Held, PeerCounts};
use crate::shared::Shared;

/// TLS handshakes on the fallback port in progress at once; more are closed.
const MAX_HANDSHAKES: usize = 64;
/// Pause after a failed accept (e.g. out of file descriptors).
const ACCEPT_PAUSE: Duration = Duration::from_millis(50);

pub async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    sock: Arc<FrameSocket>,
    tls: Arc<rustls::ServerConfig>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    let sources = Arc::new(PeerCounts::<IpAddr>::default());
    let per_source = shared.cfg.fallback.max_per_source as usize;
    loop {
        let (tcp, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting on the fallback port failed");
                    tokio::time::sleep(ACCEPT_PAUSE).await;
                    continue;
                }
            },
            // Draining: new peers go elsewhere; open links carry on.
            () = shared.shutdown.cancelled() => return,
        };
        let metrics = &shared.fallback.metrics;
        let Ok(permit) = handshakes.clone().try_acquire_owned() else {
            metrics.accept("busy");
            continue;
        };
        let Some(held) = sources.enter(&remote.ip(), per_source) else {
            tracing::warn!(%remote, per_source, "source holds too many fallback connections (gateway.fallback.max_per_source)");
            metrics.accept("over_limit");
            continue;
        };
        let link = link(
            shared.clone(),
            sock.clone(),
            acceptor.clone(),
            (tcp, remote),
            (permit, held),
        );
        shared.tasks.spawn(link);
    }
}

async fn link(
    shared: Arc<Shared>,
    sock: Arc<FrameSocket>,
    acceptor: TlsAcceptor,
    (tcp, remote): (TcpStream, SocketAddr),
    (permit, _held): (OwnedSemaphorePermit, Held),
) {
    let metrics = &shared.fallback.metrics;
    let _ = tcp.set_nodelay(true);
    let limit = shared.cfg.timeouts.handshake;
    let stream = match tokio::time::timeout(limit, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::warn!(%remote, error = %e, "fallback TLS handshake refused");
            metrics.accept("rejected");
            return;
        }
        Err(_) => {
            tracing::warn!(%remote, "fallback TLS handshake timed out (gateway.timeouts.handshake)");
            metrics.accept("timeout");
            return;
        }
    };
    drop(permit);
    metrics.accept("ok");
    tracing::info!(%remote, "peer gateway connected over TLS on TCP");
    let idle = shared.cfg.connections.idle_timeout;
    sock.attach(remote, stream, idle, shared.hard.clone()).await;
}
