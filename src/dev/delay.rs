//! `causeway dev delay`: a WAN stand-in that relays TCP connections and UDP
//! datagrams to a target after a fixed delay each way. The network-namespace
//! tests use it where the kernel has no `tc netem`; it can also put latency
//! between `dev` clusters by hand.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Chunks or datagrams in flight per direction; UDP beyond it is dropped, TCP waits.
const IN_FLIGHT: usize = 1024;
/// UDP clients remembered per relay.
const MAX_UDP_CLIENTS: usize = 256;
const CONNECT_LIMIT: Duration = Duration::from_secs(5);

/// `LISTEN=TARGET`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub listen: SocketAddr,
    pub target: SocketAddr,
}

impl std::str::FromStr for Route {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not LISTEN=TARGET (e.g. 10.0.0.1:15010=10.0.0.2:15010)");
        let (l, t) = s.split_once('=').ok_or_else(bad)?;
        Ok(Route {
            listen: l.parse().map_err(|_| bad())?,
            target: t.parse().map_err(|_| bad())?,
        })
    }
}

/// Binds every route, then relays until the process ends.
pub async fn run(tcp: &[Route], udp: &[Route], delay: Duration) -> std::io::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for r in tcp {
        let l = TcpListener::bind(r.listen).await?;
        tasks.spawn(tcp_relay(l, r.target, delay));
    }
    for r in udp {
        let s = Arc::new(UdpSocket::bind(r.listen).await?);
        tasks.spawn(udp_relay(s, r.target, delay));
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

async fn tcp_relay(listener: TcpListener, target: SocketAddr, delay: Duration) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        tokio::spawn(async move {
            let Ok(Ok(upstream)) =
                tokio::time::timeout(CONNECT_LIMIT, TcpStream::connect(target)).await
            else {
                return;
            };
            let (cr, cw) = client.into_split();
            let (ur, uw) = upstream.into_split();
            tokio::join!(pipe(cr, uw, delay), pipe(ur, cw, delay));
        });
    }
}

/// Copies `r` to `w`, each chunk (and the end) delivered `delay` after it was read.
async fn pipe(mut r: impl AsyncRead + Unpin, mut w: impl AsyncWrite + Unpin, delay: Duration) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Option<Vec<u8>>)>(IN_FLIGHT);
    let read = async move {
        loop {
            let mut buf = vec![0; 16 * 1024];
            let chunk = match r.read(&mut buf).await {
                Ok(0) | Err(_) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some(buf)
                }
            };
            let end = chunk.is_none();
            if tx.send((Instant::now() + delay, chunk)).await.is_err() || end {
                break;
            }
        }
    };
    let write = async move {
        while let Some((at, chunk)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            let Some(c) = chunk else { break };
            if w.write_all(&c).await.is_err() {
                return;
            }
        }
        let _ = w.shutdown().await;
    };
    tokio::join!(read, write);
}

/// One upstream socket per client address, datagrams delayed both ways.
async fn udp_relay(sock: Arc<UdpSocket>, target: SocketAddr, delay: Duration) {
    let mut clients: HashMap<SocketAddr, mpsc::Sender<(Instant, Vec<u8>)>> = HashMap::new();
    let mut buf = vec![0; 65536];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        clients.retain(|_, tx| !tx.is_closed());
        if !clients.contains_key(&from)
            && clients.len() < MAX_UDP_CLIENTS
            && let Ok(tx) = upstream(sock.clone(), from, target, delay).await
        {
            clients.insert(from, tx);
        }
        if let Some(tx) = clients.get(&from) {
            let _ = tx.try_send((Instant::now() + delay, buf[..n].to_vec()));
        }
    }
}

/// A socket towards `target` for one client: forwards what the returned sender
/// gets, and returns the target's answers to the client, both after `delay`.
async fn upstream(
    sock: Arc<UdpSocket>,
    client: SocketAddr,
    target: SocketAddr,
    delay: Duration,
) -> std::io::Result<mpsc::Sender<(Instant, Vec<u8>)>> {
    let bind: SocketAddr = if target.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let up = Arc::new(UdpSocket::bind(bind).await?);
    up.connect(target).await?;
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(IN_FLIGHT);
    let out = up.clone();
    tokio::spawn(async move {
        while let Some((at, d)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            let _ = out.send(&d).await;
        }
    });
    let (back_tx, mut back_rx) = mpsc::channel::<(Instant, Vec<u8>)>(IN_FLIGHT);
    tokio::spawn(async move {
        while let Some((at, d)) = back_rx.recv().await {
            tokio::time::sleep_until(at).await;
            let _ = sock.send_to(&d, client).await;
        }
    });
    tokio::spawn(async move {
        let mut buf = vec![0; 65536];
        loop {
            match up.recv(&mut buf).await {
                Ok(n) => {
                    let _ = back_tx.try_send((Instant::now() + delay, buf[..n].to_vec()));
                }
                // ICMP port unreachable: the target is restarting; keep listening for it.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                Err(_) => return,
            }
        }
    });
    Ok(tx)
}

/// `causeway dev delay`: relays until SIGINT/SIGTERM.
pub fn serve(tcp: &[Route], udp: &[Route], delay: Duration) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let stop = tokio_util::sync::CancellationToken::new();
        crate::run::cancel_on_signal(stop.clone())?;
        eprintln!(
            "relaying {} tcp and {} udp routes with {delay:?} each way",
            tcp.len(),
            udp.len()
        );
        tokio::select! {
            r = run(tcp, udp, delay) => r?,
            () = stop.cancelled() => {}
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse() {
        let r: Route = "10.0.0.1:1=10.0.0.2:2".parse().unwrap();
        assert_eq!(r.target.port(), 2);
        assert!(
            "10.0.0.1:1"
                .parse::<Route>()
                .unwrap_err()
                .contains("LISTEN=TARGET")
        );
    }

    #[tokio::test]
    async fn tcp_and_udp_arrive_late_and_intact() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = echo.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = echo.accept().await.unwrap();
            let (mut r, mut w) = s.split();
            tokio::io::copy(&mut r, &mut w).await.unwrap();
        });
        let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = front.local_addr().unwrap();
        tokio::spawn(tcp_relay(front, target, Duration::from_millis(30)));
        let start = std::time::Instant::now();
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"hello").await.unwrap();
        c.shutdown().await.unwrap();
        let mut back = Vec::new();
        c.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"hello");
        assert!(
            start.elapsed() >= Duration::from_millis(60),
            "{:?}",
            start.elapsed()
        );

        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let target = server.local_addr().unwrap();
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let addr = front.local_addr().unwrap();
        tokio::spawn(udp_relay(front, target, Duration::from_millis(30)));
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let start = std::time::Instant::now();
        client.send_to(b"ping", addr).await.unwrap();
        let mut buf = [0; 16];
        let (n, from) = server.recv_from(&mut buf).await.unwrap();
        server.send_to(&buf[..n], from).await.unwrap();
        let n = client.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"ping");
        assert!(
            start.elapsed() >= Duration::from_millis(60),
            "{:?}",
            start.elapsed()
        );
    }

    /// A restarted target behind the relay is heard again (ICMP port unreachable
    /// while it was down must not end the relay's receive loop).
    #[tokio::test]
    async fn udp_survives_a_target_restart() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let target = server.local_addr().unwrap();
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let addr = front.local_addr().unwrap();
        tokio::spawn(udp_relay(front, target, Duration::from_millis(1)));
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut buf = [0; 16];
        client.send_to(b"one", addr).await.unwrap();
        let (n, from) = server.recv_from(&mut buf).await.unwrap();
        server.send_to(&buf[..n], from).await.unwrap();
        assert_eq!(client.recv(&mut buf).await.unwrap(), 3);
        drop(server);
        // Sent while the target is down: the relay's upstream socket gets port unreachable.
        for _ in 0..3 {
            client.send_to(b"lost", addr).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let server = UdpSocket::bind(target).await.unwrap();
        let answered = async {
            loop {
                client.send_to(b"two", addr).await.unwrap();
                let got =
                    tokio::time::timeout(Duration::from_millis(200), server.recv_from(&mut buf))
                        .await;
                let Ok(Ok((n, from))) = got else { continue };
                if &buf[..n] != b"two" {
                    continue;
                }
                server.send_to(b"back", from).await.unwrap();
                let mut back = [0; 16];
                let n = client.recv(&mut back).await.unwrap();
                return back[..n].to_vec();
            }
        };
        let back = tokio::time::timeout(Duration::from_secs(5), answered).await;
        assert_eq!(
            back.expect("relay stopped relaying after the restart"),
            b"back"
        );
    }
}
