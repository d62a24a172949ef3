//! Outbound listeners: one TCP listener per imported service port on its ClusterSetIP.
//!
//! Reconciled on every catalog change: listeners for new ports are bound,
//! listeners for withdrawn ports stop accepting (their open connections carry
//! on), and the others are left alone.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use causeway_catalog::{CatalogSnapshot, Protocol, ServiceKey, gateway_ports};
use socket2::{Domain, Socket, Type};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::Config;
use crate::headless::EndpointTarget;
use crate::shared::Shared;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    service: ServiceKey,
    port: u16,
    protocol: Protocol,
    /// One endpoint of a headless import (see `headless`).
    endpoint: Option<EndpointTarget>,
}

struct Listening {
    target: Target,
    cancel: CancellationToken,
}

/// Watches the catalog: keeps listeners and peer connections in line with it.
pub async fn watch_catalog(shared: Arc<Shared>) {
    let mut rx = shared.catalog.clone();
    let mut live: HashMap<Bind, Listening> = HashMap::new();
    let mut retry: Option<Duration> = None;
    loop {
        let snap = rx.borrow_and_update().clone();
        let clusters: Vec<_> = snap.clusters.values().collect();
        shared.pool.reconcile(&shared, &clusters);
        // A listener that failed to bind (address not up yet, or the port held by
        // another socket) is retried, soon at first, then every few seconds.
        retry = if reconcile(&shared, &mut live, &snap).await {
            None
        } else {
            Some(retry.map_or(BIND_RETRY_MIN, |r| (r * 2).min(BIND_RETRY_MAX)))
        };
        tokio::select! {
            () = tokio::time::sleep(retry.unwrap_or(Duration::MAX)) => {}
            r = rx.changed() => if r.is_err() {
                // Catalog source gone: keep serving what we have until shutdown.
                shared.shutdown.cancelled().await;
                break;
            },
            () = shared.shutdown.cancelled() => break,
        }
    }
    for l in live.values() {
        l.cancel.cancel();
    }
}

/// A listening address: TCP and UDP ports of one number are two listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Bind(SocketAddr, Protocol);

/// The protocols the gateway carries (SCTP ports are in the catalog only).
fn carried(p: Protocol) -> bool {
    matches!(p, Protocol::Tcp | Protocol::Udp)
}

fn in_ranges(cfg: &Config, ip: &IpAddr) -> bool {
    let ranges = &cfg.vip_ranges;
    ranges.is_empty() || ranges.iter().any(|r| r.contains(ip))
}

/// The listeners the catalog asks for: on each ClusterSetIP, or in
/// Kubernetes mode on the gateway's own address at each import's gateway port.
fn desired(cfg: &Config, snap: &CatalogSnapshot) -> HashMap<Bind, Target> {
    let mut want: HashMap<Bind, Target> =
        crate::headless::listeners(cfg, snap, |ip| in_ranges(cfg, ip))
            .into_iter()
            .map(|(addr, _, l)| {
                let addr = Bind(addr, Protocol::Tcp);
                let target = Target {
                    service: l.service,
                    port: l.port,
                    protocol: Protocol::Tcp,
                    endpoint: Some(l.endpoint),
                };
                (addr, target)
            })
            .collect();
    if let Some(k) = &cfg.kubernetes {
        let service_ports = gateway_ports(snap, k.port_base, k.port_count)
            .into_iter()
            .filter(|(key, _)| carried(key.protocol) && key.endpoint.is_none())
            .map(|(key, port)| {
                let target = Target {
                    service: key.service,
                    port: key.port,
                    protocol: key.protocol,
                    endpoint: None,
                };
                (
                    Bind(SocketAddr::new(cfg.listen.ip(), port), key.protocol),
                    target,
                )
            });
        want.extend(service_ports);
        return want;
    }
    for import in snap.imports.values() {
        for vip in import.vips.iter().filter(|v| in_ranges(cfg, v)) {
            for port in import.ports.iter().filter(|p| carried(p.protocol)) {
                let target = Target {
                    service: import.key.clone(),
                    port: port.number,
                    protocol: port.protocol,
                    endpoint: None,
                };
                want.insert(
                    Bind(SocketAddr::new(*vip, port.number), port.protocol),
                    target,
                );
            }
        }
    }
    want
}

/// Warns when the Kubernetes gateway ports overlap the kernel's ephemeral
/// range: any outbound connection of the node (or pod) can then hold a port
/// the gateway must listen on, and the import stays unserved until it closes.
pub(crate) fn warn_if_ephemeral(cfg: &Config) {
    let Some(k) = &cfg.kubernetes else { return };
    let Ok(text) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range") else {
        return;
    };
    let gateway = (
        u32::from(k.port_base),
        u32::from(k.port_base) + u32::from(k.port_count),
    );
    if let Some((lo, hi)) = overlap(gateway, &text) {
        tracing::warn!(
            port_base = k.port_base,
            port_count = k.port_count,
            "gateway.kubernetes ports {lo}-{hi} are inside the kernel's ephemeral port range \
             (net.ipv4.ip_local_port_range); outbound connections can take them and block \
             listeners: move the range below it, or reserve it with net.ipv4.ip_local_reserved_ports"
        );
    }
}

/// The ports of `[base, end)` inside the ephemeral range `"lo\thi"`, if any.
fn overlap((base, end): (u32, u32), ephemeral: &str) -> Option<(u32, u32)> {
    let mut it = ephemeral.split_whitespace().map(str::parse::<u32>);
    let (lo, hi) = (it.next()?.ok()?, it.next()?.ok()?);
    let (from, to) = (base.max(lo), (end - 1).min(hi));
    (end > base && from <= to).then_some((from, to))
}

const BIND_RETRY_MIN: Duration = Duration::from_millis(50);
const BIND_RETRY_MAX: Duration = Duration::from_secs(5);

/// Returns false when some listener could not be bound.
async fn reconcile(
    shared: &Arc<Shared>,
    live: &mut HashMap<Bind, Listening>,
    snap: &CatalogSnapshot,
) -> bool {
    let want = desired(&shared.cfg, snap);
    let mut complete = true;
    live.retain(|addr, l| {
        let keep = want.get(addr) == Some(&l.target);
        if !keep {
            tracing::info!(addr = %addr.0, service = %l.target.service, "closing outbound listener");
            l.cancel.cancel();
        }
        keep
    });
    for (addr, target) in want {
        if live.contains_key(&addr) {
            continue;
        }
        match listen(shared, addr, &target) {
            Ok(cancel) => {
                live.insert(addr, Listening { target, cancel });
            }
            Err(e) => {
                complete = false;
                shared.metrics.listener_bind_failures.inc();
                tracing::error!(addr = %addr.0, error = %e, "cannot bind outbound listener (is the VIP range on a local interface, or the port taken?); retrying");
            }
        }
    }
    complete
}

/// Binds one socket per worker on `addr` and serves each on its worker.
fn listen(shared: &Arc<Shared>, addr: Bind, target: &Target) -> std::io::Result<CancellationToken> {
    let Bind(addr, protocol) = addr;
    let buffer = shared.cfg.transport.udp_socket_buffer as usize;
    let sockets = bind_per_worker(addr, protocol, shared.workers.len(), buffer)?;
    tracing::info!(%addr, protocol = protocol.as_str(), service = %target.service, workers = sockets.len(), "outbound listener up");
    let cancel = shared.shutdown.child_token();
    for (w, socket) in sockets.into_iter().enumerate() {
        let span = tracing::info_span!("listener", %addr, service = %target.service, worker = w);
        let (s, t, c) = (shared.clone(), target.clone(), cancel.clone());
        let handle = shared.workers.handle(w);
        match socket {
            Sock::Tcp(l) => shared
                .tasks
                .spawn_on(accept_loop(s, l, t, c).instrument(span), handle),
            Sock::Udp(u) => {
                let task = crate::udp::listen::serve(s, u, t.service, t.port, c);
                shared.tasks.spawn_on(task.instrument(span), handle)
            }
        };
    }
    Ok(cancel)
}

enum Sock {
    Tcp(std::net::TcpListener),
    Udp(std::net::UdpSocket),
}

/// One listening socket per worker on `addr` (`SO_REUSEPORT`): the kernel
/// spreads new connections (UDP: client addresses) over them, and each stays
/// on the worker that took it. All or none: a port another socket holds fails the lot.
fn bind_per_worker(
    addr: SocketAddr,
    protocol: Protocol,
    workers: usize,
    udp_buffer: usize,
) -> std::io::Result<Vec<Sock>> {
    let udp = protocol == Protocol::Udp;
    (0..workers.max(1))
        .map(|_| {
            let ty = if udp { Type::DGRAM } else { Type::STREAM };
            let s = Socket::new(Domain::for_address(addr), ty, None)?;
            s.set_reuse_address(true)?;
            #[cfg(unix)]
            s.set_reuse_port(true)?;
            s.set_nonblocking(true)?;
            s.bind(&addr.into())?;
            if udp {
                // A burst must wait in the socket while the worker is busy, as on the QUIC socket.
                let _ = s.set_recv_buffer_size(udp_buffer);
                let _ = s.set_send_buffer_size(udp_buffer);
                return Ok(Sock::Udp(s.into()));
            }
            s.listen(1024)?;
            Ok(Sock::Tcp(s.into()))
        })
        .collect()
}

async fn accept_loop(
    shared: Arc<Shared>,
    socket: std::net::TcpListener,
    target: Target,
    cancel: CancellationToken,
) {
    // Registered here, with this worker's reactor.
    let listener = match TcpListener::from_std(socket) {
        Ok(l) => l,
        Err(e) => return tracing::error!(error = %e, "cannot register outbound listener"),
    };
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = cancel.cancelled() => return,
        };
        match accepted {
            Ok((tcp, client)) => {
                let task = crate::outbound::client(
                    shared.clone(),
                    tcp,
                    client,
                    target.service.clone(),
                    target.port,
                    target.endpoint.clone(),
                );
                shared.streams.spawn(task);
            }
            Err(e) => {
                // Usually out of file descriptors: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KubernetesPorts;
    use causeway_catalog::{Import, Port};

    fn snapshot() -> CatalogSnapshot {
        let mut snap = CatalogSnapshot::default();
        for (key, vip) in [("demo/web", "10.96.0.7"), ("demo/dns", "10.96.0.8")] {
            let key: ServiceKey = key.parse().unwrap();
            let mut dns = Port::tcp("dns", 53);
            dns.protocol = Protocol::Udp;
            let import = Import {
                key: key.clone(),
                ports: vec![Port::tcp("http", 80), Port::tcp("grpc", 9000), dns],
                clusters: vec![],
                vips: vec![vip.parse().unwrap()],
                serve_stale: false,
                conditions: vec![],
                endpoints: Vec::new(),
                headless: false,
                props: Default::default(),
            };
            snap.imports.insert(key, import);
        }
        snap
    }

    #[test]
    fn gateway_ports_inside_the_ephemeral_range_are_found() {
        let linux = "32768\t60999\n";
        assert_eq!(overlap((20000, 30000), linux), None, "the default range");
        assert_eq!(overlap((47300, 47364), linux), Some((47300, 47363)));
        assert_eq!(overlap((30000, 40000), linux), Some((32768, 39999)));
        assert_eq!(overlap((60999, 61000), linux), Some((60999, 60999)));
        assert_eq!(overlap((61000, 65536), linux), None);
        assert_eq!(overlap((40000, 40000), linux), None, "no ports");
        assert_eq!(overlap((40000, 40001), "garbage"), None);
    }

    #[test]
    fn vip_mode_listens_on_each_clusterset_ip() {
        let cfg = Config::default();
        let want = desired(&cfg, &snapshot());
        assert_eq!(want.len(), 6, "three ports on each of two VIPs: {want:?}");
        let web = Bind(SocketAddr::from(([10, 96, 0, 7], 9000)), Protocol::Tcp);
        assert_eq!(want[&web].service.to_string(), "demo/web");
        assert_eq!(want[&web].port, 9000);
        let dns = Bind(SocketAddr::from(([10, 96, 0, 7], 53)), Protocol::Udp);
        assert_eq!(
            want[&dns].protocol,
            Protocol::Udp,
            "UDP ports get UDP listeners"
        );
        let tcp53 = Bind(SocketAddr::from(([10, 96, 0, 7], 53)), Protocol::Tcp);
        assert!(
            !want.contains_key(&tcp53),
            "no TCP listener on a UDP-only port"
        );
    }

    #[test]
    fn kubernetes_mode_listens_on_the_recorded_gateway_ports() {
        let cfg = Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 15443)),
            kubernetes: Some(KubernetesPorts {
                port_base: 20000,
                port_count: 100,
            }),
            ..Config::default()
        };
        let snap = snapshot();
        let want = desired(&cfg, &snap);
        let ports = gateway_ports(&snap, 20000, 100);
        assert_eq!(want.len(), 6, "TCP and UDP ports: {want:?}");
        for (Bind(addr, protocol), target) in &want {
            assert!(addr.ip().is_unspecified());
            assert_eq!(*protocol, target.protocol);
            let key = causeway_catalog::PortKey {
                service: target.service.clone(),
                port: target.port,
                protocol: target.protocol,
                endpoint: None,
            };
            assert_eq!(ports[&key], addr.port(), "the port the federation records");
        }
    }
}
