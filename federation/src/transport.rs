//! Mutual TLS under tonic, with identity's per-peer trust.
//!
//! tonic's own TLS settings cannot take a custom certificate verifier, so the
//! server accepts TCP and TLS itself and hands tonic finished connections that
//! carry the peer's verified cluster name; the client dials through a
//! connector built for one specific peer.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use causeway_catalog::ClusterId;
use causeway_identity::PeerSet;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::server::Connected;

use crate::accept_limit::AcceptLimit;

/// A client must send its first byte (the TLS ClientHello) this soon after
/// connecting, or at most within the handshake timeout.
const FIRST_BYTE: Duration = Duration::from_secs(2);

/// Who is on the other end of a server connection, as TLS verified it.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub cluster: ClusterId,
    pub remote: SocketAddr,
}

/// A server-side TLS connection whose peer is known.
#[derive(Debug)]
pub struct PeerConn {
    stream: tokio_rustls::server::TlsStream<TcpStream>,
    info: PeerInfo,
}

impl Connected for PeerConn {
    type ConnectInfo = PeerInfo;
    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl AsyncRead for PeerConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for PeerConn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, b)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Accepts TLS connections from configured peers until `shutdown`.
///
/// The loop never waits for a handshake: each runs in its own task under
/// [`AcceptLimit`] (connections over a cap are closed at once), must send its
/// first byte within [`FIRST_BYTE`] and finish within `handshake_timeout`.
pub fn incoming(
    listener: TcpListener,
    config: rustls::ServerConfig,
    peers: Arc<PeerSet>,
    handshake_timeout: Duration,
    tasks: TaskTracker,
    shutdown: CancellationToken,
) -> ReceiverStream<Result<PeerConn, io::Error>> {
    let limit = AcceptLimit::default();
    incoming_limited(
        listener,
        config,
        peers,
        handshake_timeout,
        limit,
        tasks,
        shutdown,
    )
}

/// [`incoming`] with explicit caps.
pub fn incoming_limited(
    listener: TcpListener,
    config: rustls::ServerConfig,
    peers: Arc<PeerSet>,
    handshake_timeout: Duration,
    limit: AcceptLimit,
    tasks: TaskTracker,
    shutdown: CancellationToken,
) -> ReceiverStream<Result<PeerConn, io::Error>> {
    let acceptor = TlsAcceptor::from(Arc::new(with_h2(config)));
    let (tx, rx) = mpsc::channel(16);
    let t = tasks.clone();
    tasks.spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => return,
                a = listener.accept() => a,
            };
            let (tcp, remote) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "federation accept failed");
                    continue;
                }
            };
            let slot = match limit.try_admit(remote.ip()) {
                Ok(slot) => slot,
                Err(full) => {
                    tracing::debug!(%remote, ?full, "too many federation handshakes in flight; closing");
                    continue;
                }
            };
            let (acceptor, peers, tx) = (acceptor.clone(), peers.clone(), tx.clone());
            t.spawn(async move {
                let conn = handshake(acceptor, tcp, remote, &peers, handshake_timeout).await;
                drop(slot);
                if let Some(conn) = conn {
                    // The server is gone when this fails; the connection just closes.
                    let _ = tx.send(Ok(conn)).await;
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    remote: SocketAddr,
    peers: &PeerSet,
    limit: Duration,
) -> Option<PeerConn> {
    let first = FIRST_BYTE.min(limit);
    let started = tokio::time::Instant::now();
    match tokio::time::timeout(first, tcp.peek(&mut [0u8; 1])).await {
        Ok(Ok(n)) if n > 0 => {}
        Ok(_) => return None,
        Err(_) => {
            tracing::debug!(%remote, "federation client sent nothing within {first:?}; closing");
            return None;
        }
    }
    let rest = limit.saturating_sub(started.elapsed());
    let stream = match tokio::time::timeout(rest, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::warn!(%remote, error = %e, "federation TLS handshake refused");
            return None;
        }
        Err(_) => {
            tracing::warn!(%remote, "federation TLS handshake timed out after {limit:?}");
            return None;
        }
    };
    let leaf = stream.get_ref().1.peer_certificates()?.first()?.clone();
    let Some((cluster, _id)) = peers.identify(&leaf) else {
        tracing::warn!(%remote, "federation client certificate names no configured peer");
        return None;
    };
    Some(PeerConn {
        stream,
        info: PeerInfo { cluster, remote },
    })
}

fn with_h2(mut config: rustls::ServerConfig) -> rustls::ServerConfig {
    config.alpn_protocols = vec![b"h2".to_vec()];
    config
}

/// Dials one peer's federation listener over mutual TLS.
#[derive(Clone)]
pub struct PeerConnector {
    addr: String,
    tls: TlsConnector,
    server_name: ServerName<'static>,
    timeout: Duration,
}

impl PeerConnector {
    /// `server_name` is the peer's trust domain (its certificate carries only
    /// a SPIFFE ID, which the verifier checks).
    pub fn new(
        addr: String,
        mut config: rustls::ClientConfig,
        server_name: &str,
        timeout: Duration,
    ) -> Result<Self, rustls::pki_types::InvalidDnsNameError> {
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Self {
            addr,
            tls: TlsConnector::from(Arc::new(config)),
            server_name: ServerName::try_from(server_name.to_owned())?,
            timeout,
        })
    }

    async fn dial(self) -> io::Result<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>> {
        let connect = async {
            let tcp = TcpStream::connect(&self.addr).await?;
            tcp.set_nodelay(true)?;
            self.tls.connect(self.server_name.clone(), tcp).await
        };
        match tokio::time::timeout(self.timeout, connect).await {
            Ok(r) => r.map(TokioIo::new),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "connect and TLS handshake with {} took over {:?}",
                    self.addr, self.timeout
                ),
            )),
        }
    }
}

type Dialed = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;

impl tower_service::Service<tonic::codegen::http::Uri> for PeerConnector {
    type Response = Dialed;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Dialed>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: tonic::codegen::http::Uri) -> Self::Future {
        Box::pin(self.clone().dial())
    }
}
