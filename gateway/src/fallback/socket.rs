//! A quinn socket whose datagrams travel as frames on TLS-over-TCP links.
//!
//! Each link is one TCP connection, known to the QUIC endpoint by an address
//! of its own. A datagram is written as a 2-byte big-endian length and its
//! bytes (docs/protocol.md). Queues are bounded both ways: a datagram that
//! finds its queue full is dropped and counted, as a full UDP buffer would
//! drop it, and QUIC's loss recovery and congestion control take over.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::metrics::Drops;
use crate::pool::lock;

/// Datagrams queued per link towards the peer, and in from all links.
const QUEUE: usize = 1024;
/// Write buffer per link: frames queued together go out in one write.
const WRITE_BUFFER: usize = 64 << 10;

pub struct FrameSocket {
    local: SocketAddr,
    links: Mutex<HashMap<SocketAddr, mpsc::Sender<Bytes>>>,
    inbox_tx: mpsc::Sender<(SocketAddr, Bytes)>,
    inbox: Mutex<mpsc::Receiver<(SocketAddr, Bytes)>>,
    /// Source of the addresses of links we dial.
    next: AtomicU32,
    drops: Drops,
}

impl fmt::Debug for FrameSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameSocket")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl FrameSocket {
    pub fn new(local: SocketAddr, drops: Drops) -> Arc<Self> {
        let (inbox_tx, inbox) = mpsc::channel(QUEUE);
        Arc::new(Self {
            local,
            links: Mutex::default(),
            inbox_tx,
            inbox: Mutex::new(inbox),
            next: AtomicU32::new(1),
            drops,
        })
    }

    /// A fresh address for a link we dial (in 240.0.0.0/4, which no host
    /// uses), so a new link never takes over an older one still draining.
    pub fn dialled_addr(&self) -> SocketAddr {
        let n = self.next.fetch_add(1, Ordering::Relaxed) & 0x0fff_ffff;
        SocketAddr::from((Ipv4Addr::from(0xf000_0000 | n), 1))
    }

    /// Carries datagrams between the endpoint and `addr` over `stream` until
    /// the stream ends, nothing arrives for `idle`, or `stop` fires.
    pub async fn attach<S>(
        self: Arc<Self>,
        addr: SocketAddr,
        stream: S,
        idle: Duration,
        stop: CancellationToken,
    ) where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (tx, rx) = mpsc::channel(QUEUE);
        lock(&self.links).insert(addr, tx.clone());
        let (rd, wr) = tokio::io::split(stream);
        let why = tokio::select! {
            r = self.read_frames(addr, rd, idle) => r,
            r = write_frames(rx, wr) => r,
            () = stop.cancelled() => Ok(()),
        };
        if let Err(e) = why {
            tracing::debug!(%addr, error = %e, "fallback link ended");
        }
        let mut links = lock(&self.links);
        if links.get(&addr).is_some_and(|t| t.same_channel(&tx)) {
            links.remove(&addr);
        }
    }

    async fn read_frames(
        &self,
        addr: SocketAddr,
        mut rd: impl AsyncRead + Unpin,
        idle: Duration,
    ) -> io::Result<()> {
        loop {
            let len = match tokio::time::timeout(idle, rd.read_u16()).await {
                Ok(r) => r?,
                Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "link idle")),
            };
            let mut buf = BytesMut::zeroed(usize::from(len));
            rd.read_exact(&mut buf).await?;
            if self.inbox_tx.try_send((addr, buf.freeze())).is_err() {
                self.drops.inbound();
            }
        }
    }

    fn send_one(&self, to: SocketAddr, datagram: &[u8]) {
        let links = lock(&self.links);
        let sent = links
            .get(&to)
            .is_some_and(|tx| tx.try_send(Bytes::copy_from_slice(datagram)).is_ok());
        if !sent {
            self.drops.outbound();
        }
    }
}

async fn write_frames(
    mut rx: mpsc::Receiver<Bytes>,
    wr: impl AsyncWrite + Unpin,
) -> io::Result<()> {
    let mut w = BufWriter::with_capacity(WRITE_BUFFER, wr);
    while let Some(d) = rx.recv().await {
        write_frame(&mut w, &d).await?;
        // Whatever else is queued goes out in the same flush.
        while let Ok(d) = rx.try_recv() {
            write_frame(&mut w, &d).await?;
        }
        w.flush().await?;
    }
    Ok(())
}

async fn write_frame(w: &mut (impl AsyncWrite + Unpin), d: &[u8]) -> io::Result<()> {
    // Datagrams never exceed the endpoint's payload limit, far below 64 KiB.
    let len = u16::try_from(d.len()).map_err(|_| io::Error::other("datagram over 64 KiB"))?;
    w.write_u16(len).await?;
    w.write_all(d).await
}

impl AsyncUdpSocket for FrameSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(AlwaysWritable)
    }

    /// Never blocks: a full queue drops the datagram, as UDP would.
    fn try_send(&self, t: &Transmit) -> io::Result<()> {
        match t.segment_size {
            Some(size) if size > 0 => {
                for d in t.contents.chunks(size) {
                    self.send_one(t.destination, d);
                }
            }
            _ => self.send_one(t.destination, t.contents),
        }
        Ok(())
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let mut inbox = lock(&self.inbox);
        let Some(mut next) = ready!(inbox.poll_recv(cx)) else {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        };
        let mut n = 0;
        let room = bufs.len().min(meta.len());
        loop {
            let (addr, d) = next;
            if d.len() <= bufs[n].len() {
                bufs[n][..d.len()].copy_from_slice(&d);
                meta[n] = RecvMeta {
                    addr,
                    len: d.len(),
                    stride: d.len(),
                    ecn: None,
                    dst_ip: None,
                };
                n += 1;
            } else {
                self.drops.inbound();
            }
            if n == room {
                break;
            }
            match inbox.try_recv() {
                Ok(d) => next = d,
                Err(_) => break,
            }
        }
        if n == 0 {
            // Everything taken was oversized: look again (registers the waker).
            drop(inbox);
            return self.poll_recv(cx, bufs, meta);
        }
        Poll::Ready(Ok(n))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    fn may_fragment(&self) -> bool {
        false
    }
}

/// `try_send` never says `WouldBlock`, so the socket is always writable.
#[derive(Debug)]
struct AlwaysWritable;

impl UdpPoller for AlwaysWritable {
    fn poll_writable(self: Pin<&mut Self>, _: &mut Context) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
