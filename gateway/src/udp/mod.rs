//! UDP service ports carried as QUIC datagrams (RFC 9221), one flow per client address.
//!
//! A flow opens a stream with the usual header (protocol `udp`): the far side
//! authorizes it exactly like a TCP stream and answers with a status. While
//! that stream stays open, datagrams `varint flow id | payload` carry the
//! flow both ways; the flow id is the stream's index (its id divided by 4).
//! Ending the stream ends the flow. See docs/protocol.md.

mod config;
pub mod listen;
mod local;
mod metrics;
mod open;
pub mod relay;
mod table;
mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use quinn::Connection;
use tokio::net::UdpSocket;

pub use config::UdpConfig;
pub use metrics::UdpMetrics;

use crate::pool::lock;

/// Where one flow's datagrams from the peer connection go.
pub struct Route {
    pub socket: Arc<UdpSocket>,
    /// `None`: the socket is connected (the exporter's per-flow socket).
    pub to: Option<SocketAddr>,
    pub activity: Arc<Activity>,
    pub delivered: metrics::Way,
}

/// The flows of one peer connection, by flow id, and the answers its
/// liveness probes got (`liveness`).
#[derive(Default)]
pub struct ConnFlows {
    flows: Mutex<HashMap<u64, Route>>,
    answered: AtomicU64,
}

impl ConnFlows {
    /// Probe answers received so far.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    pub fn insert(&self, id: u64, route: Route) {
        lock(&self.flows).insert(id, route);
    }

    pub fn remove(&self, id: u64) {
        lock(&self.flows).remove(&id);
    }
}

/// Every peer connection's flows, by `Connection::stable_id`; each entry has a
/// reader task that ends, and removes it, when its connection closes.
#[derive(Default)]
pub struct Routes(Arc<Mutex<HashMap<usize, Arc<ConnFlows>>>>);

impl Routes {
    /// The flows of `conn`, its datagram reader started on first use.
    pub fn of(&self, conn: &Connection, m: &UdpMetrics) -> Arc<ConnFlows> {
        let mut map = lock(&self.0);
        let id = conn.stable_id();
        if let Some(f) = map.get(&id) {
            return f.clone();
        }
        let flows = Arc::new(ConnFlows::default());
        map.insert(id, flows.clone());
        let (conn, f, m, all) = (conn.clone(), flows.clone(), m.clone(), self.0.clone());
        tokio::spawn(async move {
            while let Ok(d) = conn.read_datagram().await {
                deliver(&conn, &f, &d, &m);
            }
            lock(&all).remove(&id);
        });
        flows
    }
}

/// Sends one datagram from the peer to its flow's socket. Never waits: a full
/// socket drops it, as the network would.
fn deliver(conn: &Connection, flows: &ConnFlows, d: &Bytes, m: &UdpMetrics) {
    let Some((id, payload)) = wire::decode(d) else {
        return m.dropped("malformed");
    };
    if id == wire::CONTROL {
        return control(conn, flows, payload, m);
    }
    // Sent under the lock (a non-blocking call): no clone of the route per datagram.
    let map = lock(&flows.flows);
    let Some(route) = map.get(&id) else {
        drop(map);
        return m.dropped("unknown_flow");
    };
    route.activity.touch();
    let sent = match route.to {
        Some(to) => route.socket.try_send_to(payload, to),
        None => route.socket.try_send(payload),
    };
    match sent {
        Ok(n) => route.delivered.add(n),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => m.dropped("socket_full"),
        Err(e) => {
            tracing::debug!(error = %e, "delivering a datagram failed");
            m.dropped("send_failed");
        }
    }
}

/// A liveness probe is answered at once; an answer is counted.
fn control(conn: &Connection, flows: &ConnFlows, kind: &[u8], m: &UdpMetrics) {
    match kind {
        [wire::PROBE] => {
            let _ = conn.send_datagram(wire::encode(wire::CONTROL, &[wire::ANSWER]));
        }
        [wire::ANSWER] => {
            flows.answered.fetch_add(1, Ordering::Relaxed);
        }
        _ => m.dropped("malformed"),
    }
}

/// Sends a liveness probe (see `liveness`); false when it could not go out.
pub fn probe(conn: &Connection) -> bool {
    conn.send_datagram(wire::encode(wire::CONTROL, &[wire::PROBE]))
        .is_ok()
}

/// When a flow last carried a datagram, in milliseconds since process start.
#[derive(Debug, Default)]
pub struct Activity(AtomicU64);

impl Activity {
    pub fn touch(&self) {
        self.0.store(now_ms(), Ordering::Relaxed);
    }

    pub fn idle(&self) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.0.load(Ordering::Relaxed)))
    }
}

fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Socket buffer of each flow's own socket: a quarter of the QUIC socket's,
/// as there is one per flow.
fn flow_buffer(shared: &crate::shared::Shared) -> usize {
    (shared.cfg.transport.udp_socket_buffer / 4) as usize
}

/// Sends one datagram of flow `id` to the peer: counted and dropped when the
/// path cannot carry it whole (never fragmented), or the connection is gone.
pub fn to_peer(conn: &Connection, id: u64, payload: &[u8], m: &UdpMetrics, way: &metrics::Way) {
    let Some(max) = conn.max_datagram_size() else {
        return m.dropped("unsupported");
    };
    if wire::id_len(id) + payload.len() > max {
        return m.dropped("too_large");
    }
    match conn.send_datagram(wire::encode(id, payload)) {
        Ok(()) => way.add(payload.len()),
        Err(quinn::SendDatagramError::TooLarge) => m.dropped("too_large"),
        Err(e) => {
            tracing::debug!(error = %e, "sending a flow datagram failed");
            m.dropped("connection_lost");
        }
    }
}

/// The importing side's handle on one open flow: where the client's
/// datagrams go, and how to end it.
pub struct Sink {
    to: SinkTo,
    activity: Arc<Activity>,
    end: tokio_util::sync::CancellationToken,
}

enum SinkTo {
    /// Flow `id` on a peer connection.
    Peer(Connection, u64),
    /// A local endpoint's connected socket (this cluster serves the service).
    Local(Arc<UdpSocket>),
}

impl Sink {
    pub fn send(&self, payload: &[u8], m: &UdpMetrics, way: &metrics::Way) {
        self.activity.touch();
        match &self.to {
            SinkTo::Peer(conn, id) => to_peer(conn, *id, payload, m, way),
            SinkTo::Local(sock) => match sock.try_send(payload) {
                Ok(n) => way.add(n),
                Err(_) => m.dropped("socket_full"),
            },
        }
    }

    pub fn idle(&self) -> Duration {
        self.activity.idle()
    }

    /// Ends the flow: its task closes the stream (or the local socket).
    pub fn close(&self) {
        self.end.cancel();
    }
}
