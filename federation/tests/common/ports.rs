//! Ports for listeners a test starts later (shared with the root tests).

use std::net::SocketAddr;

/// A loopback address for a listener the test starts later. The port is
/// below Linux's ephemeral range (32768-60999): a port from `bind(:0)`,
/// released and bound again later, can meanwhile be given to any outbound
/// connection (seen under load: `AddrInUse`). Each process takes its own
/// 200 ports of 25000-28999 (29000+ are the MCS tests' gateway ports) and
/// hands each out once.
pub fn free_addr() -> SocketAddr {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 25_000 + (std::process::id() % 20) as u16 * 200;
    for _ in 0..200 {
        let port = base + NEXT.fetch_add(1, Ordering::Relaxed) % 200;
        if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            return l.local_addr().unwrap();
        }
    }
    panic!("no free port in 127.0.0.1:{base}-{}", base + 199);
}
