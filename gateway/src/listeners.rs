//! Outbound listeners: one TCP listener per imported service port on its ClusterSetIP.
//!
//! Reconciled on every catalog change: listeners for new ports are bound,
//! listeners for withdrawn ports stop accepting (their open connections carry
//! on), and the others are left alone.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use causeway_catalog::{CatalogSnapshot, Protocol, ServiceKey};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::shared::Shared;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    service: ServiceKey,
    port: u16,
}

struct Listening {
    target: Target,
    cancel: CancellationToken,
}

/// Watches the catalog: keeps listeners and peer connections in line with it.
pub async fn watch_catalog(shared: Arc<Shared>) {
    let mut rx = shared.catalog.clone();
    let mut live: HashMap<SocketAddr, Listening> = HashMap::new();
    loop {
        let snap = rx.borrow_and_update().clone();
        let clusters: Vec<_> = snap.clusters.values().collect();
        shared.pool.reconcile(&shared, &clusters);
        let complete = reconcile(&shared, &mut live, &snap).await;
        // A listener that failed to bind (address not up yet) is retried every few seconds.
        let retry = if complete { Duration::MAX } else { BIND_RETRY };
        tokio::select! {
            () = tokio::time::sleep(retry) => {}
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

fn in_ranges(shared: &Shared, ip: &IpAddr) -> bool {
    let ranges = &shared.cfg.vip_ranges;
    ranges.is_empty() || ranges.iter().any(|r| r.contains(ip))
}

fn desired(shared: &Shared, snap: &CatalogSnapshot) -> HashMap<SocketAddr, Target> {
    let mut want = HashMap::new();
    for import in snap.imports.values() {
        for vip in import.vips.iter().filter(|v| in_ranges(shared, v)) {
            for port in import.ports.iter().filter(|p| p.protocol == Protocol::Tcp) {
                let target = Target {
                    service: import.key.clone(),
                    port: port.number,
                };
                want.insert(SocketAddr::new(*vip, port.number), target);
            }
        }
    }
    want
}

const BIND_RETRY: Duration = Duration::from_secs(5);

/// Returns false when some listener could not be bound.
async fn reconcile(
    shared: &Arc<Shared>,
    live: &mut HashMap<SocketAddr, Listening>,
    snap: &CatalogSnapshot,
) -> bool {
    let want = desired(shared, snap);
    let mut complete = true;
    live.retain(|addr, l| {
        let keep = want.get(addr) == Some(&l.target);
        if !keep {
            tracing::info!(%addr, service = %l.target.service, "closing outbound listener");
            l.cancel.cancel();
        }
        keep
    });
    for (addr, target) in want {
        if live.contains_key(&addr) {
            continue;
        }
        match TcpListener::bind(addr).await {
            Ok(listener) => {
                tracing::info!(%addr, service = %target.service, "outbound listener up");
                let cancel = shared.shutdown.child_token();
                let span = tracing::info_span!("listener", %addr, service = %target.service);
                let task = accept_loop(shared.clone(), listener, target.clone(), cancel.clone());
                shared.tasks.spawn(task.instrument(span));
                live.insert(addr, Listening { target, cancel });
            }
            Err(e) => {
                complete = false;
                tracing::error!(%addr, error = %e, "cannot bind outbound listener (is the VIP range on a local interface?); retrying");
            }
        }
    }
    complete
}

async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    target: Target,
    cancel: CancellationToken,
) {
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
