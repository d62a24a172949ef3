//! Local endpoints: finding an exported service, picking a ready endpoint, connecting.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use causeway_catalog::{Export, Protocol, ServiceKey};
use tokio::net::{TcpStream, UdpSocket};

use crate::lb::pick_endpoint;
use crate::pool::lock;
use crate::protocol::Status;

/// Open connections per local endpoint, for least-connections picks.
#[derive(Default)]
pub struct EndpointLoads(Mutex<HashMap<SocketAddr, usize>>);

/// Counts one connection to an endpoint while alive.
pub struct LoadGuard {
    loads: Arc<EndpointLoads>,
    addr: SocketAddr,
}

impl Drop for LoadGuard {
    fn drop(&mut self) {
        let mut map = lock(&self.loads.0);
        if let Some(n) = map.get_mut(&self.addr) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.addr);
            }
        }
    }
}

/// The export of `service` that has the port for `protocol`, if this cluster exports it.
pub fn find<'a>(
    exports: &'a [Export],
    service: &ServiceKey,
    port: u16,
    protocol: Protocol,
) -> Option<&'a Export> {
    exports.iter().find(|e| {
        &e.key == service
            && e.ports
                .iter()
                .any(|p| p.number == port && p.protocol == protocol)
    })
}

/// Where to connect for `port`: a single-port service uses each endpoint's
/// address as written (its target port); a multi-port service uses the endpoint
/// IP with the service port.
pub fn ready_targets(export: &Export, port: u16) -> Vec<SocketAddr> {
    let single = export.ports.len() == 1;
    export
        .endpoints
        .iter()
        .filter(|e| e.ready)
        .map(|e| {
            if single {
                e.addr
            } else {
                SocketAddr::new(e.addr.ip(), port)
            }
        })
        .collect()
}

/// Picks the least-loaded target, counted while the guard lives.
fn pick(loads: &Arc<EndpointLoads>, targets: &[SocketAddr]) -> Result<LoadGuard, Status> {
    let mut map = lock(&loads.0);
    let addr = pick_endpoint(
        targets,
        |a| map.get(a).copied().unwrap_or(0),
        &mut rand::rng(),
    )
    .ok_or(Status::NoReadyEndpoint)?;
    *map.entry(addr).or_default() += 1;
    Ok(LoadGuard {
        loads: loads.clone(),
        addr,
    })
}

/// A UDP socket of its own, connected to the least-loaded target: one per
/// flow, so the endpoint's replies come back to that flow alone.
pub async fn connect_udp(
    loads: &Arc<EndpointLoads>,
    targets: &[SocketAddr],
    buffer: usize,
) -> Result<(UdpSocket, LoadGuard), Status> {
    let guard = pick(loads, targets)?;
    let addr = guard.addr;
    let any = match addr {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    };
    let sock = flow_socket(any, buffer).map_err(|e| {
        tracing::warn!(error = %e, "cannot bind a UDP socket for a flow");
        Status::ConnectFailed
    })?;
    sock.connect(addr).await.map_err(|e| {
        tracing::debug!(%addr, error = %e, "connecting a UDP socket to a local endpoint failed");
        Status::ConnectFailed
    })?;
    Ok((sock, guard))
}

/// An unconnected UDP socket on `any` with `buffer` bytes each way (bursts
/// wait there while the worker is busy).
fn flow_socket(any: SocketAddr, buffer: usize) -> std::io::Result<UdpSocket> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(any),
        socket2::Type::DGRAM,
        None,
    )?;
    let _ = s.set_recv_buffer_size(buffer);
    let _ = s.set_send_buffer_size(buffer);
    s.set_nonblocking(true)?;
    s.bind(&any.into())?;
    UdpSocket::from_std(s.into())
}

/// Picks the least-loaded target and connects within `limit`.
pub async fn connect(
    loads: &Arc<EndpointLoads>,
    targets: &[SocketAddr],
    limit: Duration,
) -> Result<(TcpStream, LoadGuard), Status> {
    let guard = pick(loads, targets)?;
    let addr = guard.addr;
    match tokio::time::timeout(limit, TcpStream::connect(addr)).await {
        Ok(Ok(tcp)) => {
            let _ = tcp.set_nodelay(true);
            Ok((tcp, guard))
        }
        Ok(Err(e)) => {
            tracing::debug!(%addr, error = %e, "connecting to local endpoint failed");
            Err(Status::ConnectFailed)
        }
        Err(_) => {
            tracing::debug!(%addr, "connecting to local endpoint timed out");
            Err(Status::ConnectFailed)
        }
    }
}
