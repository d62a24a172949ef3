//! UDP worker threads: each owns a `SO_REUSEPORT` socket on the listen address
//! (the kernel spreads clients across them) and runs a blocking receive loop that
//! answers from the wire index, handing anything else to hickory on the same thread.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::{ArcSwap, Cache};
use socket2::{Domain, Protocol, Socket, Type};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::fallback::Fallback;
use crate::fast;
use crate::index::Index;
use crate::metrics::{Handler, Metrics};

/// How often an idle worker looks at the shutdown token.
const RECV_TIMEOUT: Duration = Duration::from_millis(100);
/// hickory-server reads datagrams into a buffer this size; longer ones are cut alike.
const MAX_DATAGRAM: usize = 4096;

/// A UDP socket on `addr` that other sockets on the same address can join.
pub fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// What every worker shares.
#[derive(Clone)]
pub struct Shared {
    pub index: Arc<ArcSwap<Index>>,
    pub handler: Handler,
    pub metrics: Metrics,
}

/// Starts one thread per socket; each returns once `shutdown` is cancelled.
pub fn spawn(
    sockets: Vec<UdpSocket>,
    shared: &Shared,
    shutdown: &CancellationToken,
) -> io::Result<Vec<JoinHandle<()>>> {
    let mut threads = Vec::with_capacity(sockets.len());
    for (id, socket) in sockets.into_iter().enumerate() {
        socket.set_read_timeout(Some(RECV_TIMEOUT))?;
        let worker = Worker {
            id,
            socket,
            fallback: Fallback::new(shared.handler.clone())?,
            shared: shared.clone(),
            shutdown: shutdown.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("dns-udp-{id}"))
            .spawn(move || worker.run())?;
        threads.push(thread);
    }
    Ok(threads)
}

struct Worker {
    id: usize,
    socket: UdpSocket,
    fallback: Fallback,
    shared: Shared,
    shutdown: CancellationToken,
}

impl Worker {
    fn run(self) {
        let packets = self.shared.metrics.worker_packets(self.id);
        // Reloads the index only when a rebuild swapped it in.
        let mut index = Cache::new(self.shared.index.clone());
        let mut buf = [0u8; MAX_DATAGRAM];
        let mut out = Vec::with_capacity(MAX_DATAGRAM);
        while !self.shutdown.is_cancelled() {
            let (len, src) = match self.socket.recv_from(&mut buf) {
                Ok(got) => got,
                Err(e) if is_idle(&e) => {
                    // Lets go of a replaced index even when no query comes.
                    index.load();
                    continue;
                }
                Err(error) => {
                    debug!(%error, worker = self.id, "dns: UDP receive failed");
                    continue;
                }
            };
            packets.inc();
            let Some(packet) = buf.get(..len) else {
                continue;
            };
            if !answerable(src) {
                continue;
            }
            // A bug triggered by one packet must not take this worker's share of clients down.
            let wire = &index.load().wire;
            let answered = catch_unwind(AssertUnwindSafe(|| {
                self.answer(wire, packet, src, &mut out)
            }));
            if answered.is_err() {
                warn!(%src, worker = self.id, "dns: answering a UDP packet panicked; dropped it");
            }
        }
    }

    fn answer(&self, wire: &crate::wire::Wire, packet: &[u8], src: SocketAddr, out: &mut Vec<u8>) {
        let sent = match fast::respond(wire, packet, out) {
            Some(rcode) => {
                self.shared.metrics.record_udp(rcode);
                self.socket.send_to(out, src)
            }
            None => match self.fallback.respond(packet, src) {
                Some(bytes) => self.socket.send_to(&bytes, src),
                None => return,
            },
        };
        if let Err(error) = sent {
            debug!(%error, %src, "dns: UDP send failed");
        }
    }
}

fn is_idle(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// As hickory-server: never reply to port 0, unspecified or broadcast sources.
fn answerable(src: SocketAddr) -> bool {
    let ip_ok = match src.ip() {
        std::net::IpAddr::V4(v4) => !v4.is_unspecified() && !v4.is_broadcast(),
        std::net::IpAddr::V6(v6) => !v6.is_unspecified(),
    };
    src.port() != 0 && ip_ok
}
