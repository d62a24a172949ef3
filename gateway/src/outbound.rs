//! Outbound: a local client's TCP connection becomes a stream to a chosen cluster.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use causeway_catalog::{ClusterId, Freshness, Import, Protocol, ServiceKey};
use rand::Rng;
use tokio::net::TcpStream;
use tracing::Instrument;

use crate::attempt::{AttemptError, attempt};
use crate::headless::EndpointTarget;
use crate::lb::{self, Candidate, Policy};
use crate::metrics::{ActiveGuard, ClusterLabel, Direction, ServiceHandles};
use crate::pool::Caps;
use crate::protocol::Request;
use crate::record::ConnRecord;
use crate::shared::Shared;
use crate::splice::{self, Counters};

pub async fn client(
    shared: Arc<Shared>,
    tcp: TcpStream,
    client: SocketAddr,
    service: ServiceKey,
    port: u16,
    endpoint: Option<EndpointTarget>,
) {
    let trace = new_traceparent(&mut rand::rng());
    let span = tracing::info_span!("outbound", %client, %service, port, trace = %trace);
    async move {
        let _ = tcp.set_nodelay(true);
        let handles = shared
            .metrics
            .service(&service.to_string(), Direction::Outbound);
        let req = Request {
            service,
            port,
            protocol: Protocol::Tcp,
            target: endpoint.as_ref().map(|e| e.cluster.clone()),
            endpoint: endpoint.map(|e| e.hostname),
            traceparent: Some(trace),
        };
        let mut rec =
            ConnRecord::outbound((&shared.local.name, &shared.observe.local_id), client, &req);
        if handles.active.get() >= i64::from(shared.cfg.limits.max_streams_per_service) {
            tracing::warn!(
                "too many connections for this service (gateway.limits.max_streams_per_service)"
            );
            rec.refused(None, "overloaded");
            shared.observe.finish(rec);
            return reset(tcp);
        }
        let _active = ActiveGuard::new(&handles.active);
        if let Some(tcp) = route(&shared, tcp, req, &handles, &mut rec).await {
            tracing::info!("no cluster could take the connection");
            reset(tcp);
        }
        shared.observe.finish(rec);
    }
    .instrument(span)
    .await
}

/// Closes with RST so the client sees a failure rather than an empty reply.
fn reset(tcp: TcpStream) {
    let _ = tcp.set_zero_linger();
}

fn new_traceparent(rng: &mut impl Rng) -> String {
    format!(
        "00-{:032x}-{:016x}-01",
        rng.random::<u128>() | 1,
        rng.random::<u64>() | 1
    )
}

/// Tries candidate clusters in order; gives the TCP connection back if none took it.
async fn route(
    shared: &Arc<Shared>,
    mut tcp: TcpStream,
    mut req: Request,
    h: &ServiceHandles,
    rec: &mut ConnRecord,
) -> Option<TcpStream> {
    let snap = shared.catalog();
    let Some(import) = snap.imports.get(&req.service) else {
        return Some(tcp); // withdrawn while the connection was being accepted
    };
    let changed = shared.pool.changed();
    // A headless endpoint lives in one cluster: no other can take it.
    let only = req.target.clone();
    let pick = |import| {
        let mut c = candidates(shared, import, req.port);
        c.retain(|c| only.as_ref().is_none_or(|o| o == c));
        c
    };
    let mut order = pick(import);
    if order.is_empty() && !import.clusters.is_empty() {
        // Peers not connected yet (start-up, or all re-dialling): wait a handshake's time.
        let _ = tokio::time::timeout(shared.cfg.timeouts.handshake, changed).await;
        order = pick(import);
    }
    let attempts = shared.cfg.limits.max_attempts as usize;
    for cluster in order.into_iter().take(attempts) {
        let served = if cluster == shared.local.name {
            direct(shared, &mut tcp, &req, h, rec).await
        } else {
            req.target = Some(cluster.clone());
            remote(shared, &cluster, &mut tcp, &req, h, rec).await
        };
        if served {
            return None;
        }
    }
    Some(tcp)
}

/// Clusters that can take a connection to `port` now, best first: only
/// those whose export has the port (KEP-1645: traffic to a port goes only to
/// the clusters that expose it).
fn candidates(shared: &Shared, import: &Import, port: u16) -> Vec<ClusterId> {
    let reachable = shared.pool.reachable();
    let now = Instant::now();
    let exports = shared.exports();
    let local_ready = exports
        .iter()
        .any(|e| e.key == import.key && e.ready_endpoints() > 0);
    let cands = import
        .clusters
        .iter()
        .filter(|c| c.ready_endpoints > 0 && c.freshness != Freshness::Expired)
        .filter(|c| c.serves(port, Protocol::Tcp))
        .filter_map(|c| {
            let local = c.cluster == shared.local.name;
            let active = if local {
                Some(0)
            } else {
                reachable.get(&c.cluster).copied()
            };
            let active = active.filter(|_| !local || local_ready)?;
            Some(Candidate {
                cluster: c.cluster.clone(),
                region: c.region.clone(),
                active,
                ejected: !local && shared.pool.is_ejected(&c.cluster, now),
                stale: c.freshness == Freshness::Stale,
            })
        })
        .collect();
    let policy = Policy {
        local: &shared.local.name,
        region: &shared.local.region,
        prefer_local: shared.cfg.locality.prefer_local,
        failover: shared
            .cfg
            .locality
            .failover
            .get(&import.key)
            .map(Vec::as_slice),
    };
    lb::order(cands, &policy, &mut rand::rng())
}

async fn direct(
    shared: &Shared,
    tcp: &mut TcpStream,
    req: &Request,
    h: &ServiceHandles,
    rec: &mut ConnRecord,
) -> bool {
    match crate::direct::serve(shared, tcp, req, h, rec).await {
        Ok(()) => true,
        Err(status) => {
            rec.refused(Some(&shared.local.name), status.as_str());
            tracing::info!(
                status = status.as_str(),
                "local endpoints failed; trying the next cluster"
            );
            false
        }
    }
}

/// One attempt through `cluster`; true when the connection was carried.
async fn remote(
    shared: &Shared,
    cluster: &ClusterId,
    tcp: &mut TcpStream,
    req: &Request,
    h: &ServiceHandles,
    rec: &mut ConnRecord,
) -> bool {
    let l = &shared.cfg.limits;
    let caps = Caps {
        per_connection: l.max_streams_per_connection as usize,
        per_peer: l.max_streams_per_peer as usize,
    };
    let worker = shared.workers.current();
    let Some((slot, conn)) = shared.pool.pick(cluster, worker, &caps) else {
        return false;
    };
    let started = Instant::now();
    // No byte has reached the client yet: if the connection turns silent, give
    // up on it now and try the next cluster instead of waiting for the timeout.
    let tried = tokio::select! {
        r = attempt(shared.cfg.timeouts.status, &conn, slot.gate(), req) => r,
        () = slot.silent(&shared.pool) => Err(AttemptError::Silent),
    };
    let (send, recv) = match tried {
        Ok(streams) => streams,
        Err(e) => {
            tracing::info!(%cluster, error = %e, "attempt failed; trying the next cluster");
            rec.refused(Some(cluster), e.status_label());
            shared
                .metrics
                .stream(cluster.as_str(), Direction::Outbound, e.status_label());
            if e.counts_as_failure() {
                shared.pool.failure(shared, cluster);
            }
            return false;
        }
    };
    shared.pool.success(shared, cluster);
    shared
        .metrics
        .stream_setup
        .0
        .get_or_create(&ClusterLabel {
            cluster: cluster.to_string(),
        })
        .observe(started.elapsed().as_secs_f64());
    let m = &shared.metrics;
    m.stream(cluster.as_str(), Direction::Outbound, "ok");
    m.worker_stream(worker, Direction::Outbound);
    m.peer_streams.get_or_create(&slot.labels()).inc();
    tracing::debug!(%cluster, "stream open");
    let counters = Counters {
        sent: &h.request,
        received: &h.response,
        load: Some(slot.sent()),
    };
    let buffer = shared.cfg.transport.splice_buffer as usize;
    let out = splice::splice(
        tcp,
        send,
        recv,
        buffer,
        shared.cfg.timeouts.idle,
        counters,
        slot.gate(),
    )
    .await;
    tracing::debug!(sent = out.sent, received = out.received, end = ?out.end, "connection done");
    rec.served(cluster, &out);
    true
}
