//! DNS over TCP behind a bounded front door. hickory-server spawns a task for
//! every TCP connection it accepts, without a limit; here the public listener
//! admits at most [`MAX_TCP`] connections ([`MAX_TCP_PER_SOURCE`] from one
//! address) and relays each to hickory's listener on loopback. A connection
//! over a cap is closed at once; each relay ends after [`IDLE`] without bytes.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

/// TCP connections relayed at once.
pub const MAX_TCP: usize = 1024;
/// TCP connections relayed at once from one source address.
pub const MAX_TCP_PER_SOURCE: usize = 128;
/// A relay with no bytes either way for this long is closed.
const IDLE: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Counts {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

/// One admitted connection; dropping it frees its place.
struct Place(Arc<Mutex<Counts>>, IpAddr);

impl Drop for Place {
    fn drop(&mut self) {
        let mut c = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.by_source.get_mut(&self.1) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.by_source.remove(&self.1);
            }
        }
    }
}

fn admit(counts: &Arc<Mutex<Counts>>, src: IpAddr) -> Option<Place> {
    let mut c = counts.lock().unwrap_or_else(PoisonError::into_inner);
    let n = c.by_source.get(&src).copied().unwrap_or(0);
    if c.total >= MAX_TCP || n >= MAX_TCP_PER_SOURCE {
        return None;
    }
    c.total += 1;
    c.by_source.insert(src, n + 1);
    Some(Place(counts.clone(), src))
}

/// Where hickory listens behind the gate: a port on 127.0.0.2 where the
/// system has it (Linux: all of 127/8), so it never takes a port someone
/// may want on 127.0.0.1 or the wildcard address; else on 127.0.0.1.
pub async fn bind_inner() -> Result<(TcpListener, SocketAddr), crate::DnsError> {
    let mut last = None;
    for ip in [[127, 0, 0, 2], [127, 0, 0, 1]] {
        let addr = SocketAddr::from((ip, 0));
        match TcpListener::bind(addr).await.and_then(|l| {
            let a = l.local_addr()?;
            Ok((l, a))
        }) {
            Ok(bound) => return Ok(bound),
            Err(source) => last = Some((addr, source)),
        }
    }
    let (addr, source) = last.unwrap_or_else(|| unreachable!("two addresses were tried"));
    Err(crate::DnsError::Bind {
        proto: "tcp",
        addr,
        source,
    })
}

/// Relays connections from `public` to hickory's `inner` address until `stop`.
pub fn spawn(public: TcpListener, inner: SocketAddr, stop: CancellationToken) -> TaskTracker {
    let tasks = TaskTracker::new();
    let t = tasks.clone();
    let counts = Arc::new(Mutex::new(Counts::default()));
    tasks.spawn(async move {
        loop {
            let (conn, src) = tokio::select! {
                _ = stop.cancelled() => return,
                a = public.accept() => match a {
                    Ok(a) => a,
                    Err(e) => { debug!(error = %e, "dns: TCP accept failed"); continue; }
                },
            };
            let Some(place) = admit(&counts, src.ip()) else {
                debug!(%src, "dns: too many TCP connections; closing");
                continue;
            };
            t.spawn(relay(conn, inner, place, stop.clone()));
        }
    });
    tasks.close();
    tasks
}

async fn relay(mut client: TcpStream, inner: SocketAddr, _place: Place, stop: CancellationToken) {
    let Ok(mut server) = TcpStream::connect(inner).await else {
        return;
    };
    let (mut cr, mut cw) = client.split();
    let (mut sr, mut sw) = server.split();
    let up = copy_idle(&mut cr, &mut sw);
    let down = copy_idle(&mut sr, &mut cw);
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = async { tokio::join!(up, down) } => {}
    }
}

/// Copies until EOF, an error, or [`IDLE`] without a byte.
async fn copy_idle<R, W>(r: &mut R, w: &mut W)
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match tokio::time::timeout(IDLE, r.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => break,
        };
        if w.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = w.shutdown().await;
}
