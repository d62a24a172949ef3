//! Outbound: a local client's TCP connection becomes a stream to a chosen cluster.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use causeway_catalog::{ClusterId, Freshness, Import, Protocol, ServiceKey};
use causeway_policy::ServicePolicy;
use rand::Rng;
use tokio::net::TcpStream;
use tracing::Instrument;

use crate::attempt::{Opened, attempt_on};
use crate::headless::EndpointTarget;
use crate::lb::{self, Candidate, Policy};
use crate::metrics::{ActiveGuard, ClusterLabel, Direction, ServiceHandles};
use crate::protocol::Request;
use crate::record::ConnRecord;
use crate::shared::Shared;
use crate::splice::{self, Counters, End};
use crate::traffic;

/// One client connection on its way: who, the policy in force, and its
/// record (policy decisions included) for the access log and tracing.
struct Conn<'a> {
    client: SocketAddr,
    policy: Option<Arc<ServicePolicy>>,
    handles: &'a ServiceHandles,
    rec: ConnRecord,
}

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
        let rec =
            ConnRecord::outbound((&shared.local.name, &shared.observe.local_id), client, &req);
        let mut conn = Conn {
            client,
            policy: traffic::lookup(&shared, &req.service, req.port),
            handles: &handles,
            rec,
        };
        if handles.active.get() >= i64::from(shared.cfg.limits.max_streams_per_service) {
            tracing::warn!(
                "too many connections for this service (gateway.limits.max_streams_per_service)"
            );
            conn.rec.refused(None, "overloaded");
            shared.observe.finish(conn.rec);
            return reset(tcp);
        }
        let _active = ActiveGuard::new(&handles.active);
        if let Some(tcp) = route(&shared, tcp, req, &mut conn).await {
            tracing::info!("no cluster could take the connection");
            reset(tcp);
        }
        shared.observe.finish(conn.rec);
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
    c: &mut Conn<'_>,
) -> Option<TcpStream> {
    let snap = shared.catalog();
    let Some(import) = snap.imports.get(&req.service) else {
        return Some(tcp); // withdrawn while the connection was being accepted
    };
    let changed = shared.pool.changed();
    // A headless endpoint lives in one cluster: no other can take it.
    let only = req.target.clone();
    let failover = c.policy.as_ref().map(|p| p.spec.failover.as_slice());
    let pick = |import| {
        let failover = failover.filter(|f| !f.is_empty());
        let mut c = candidates(shared, import, req.port, Protocol::Tcp, failover);
        c.retain(|c| only.as_ref().is_none_or(|o| o == c));
        c
    };
    let mut order = pick(import);
    if order.is_empty() && !import.clusters.is_empty() {
        // Peers not connected yet (start-up, or all re-dialling): wait a handshake's time.
        let _ = tokio::time::timeout(shared.cfg.timeouts.handshake, changed).await;
        order = pick(import);
    }
    if let Some(p) = c.policy.clone() {
        if only.is_none() {
            traffic::pick_first(shared, &p, &mut order, c.client, &mut c.rec.policy);
        }
        if !inject_fault(shared, &p, order.first(), c).await {
            reset(tcp);
            return None;
        }
    }
    let p = c.policy.as_ref().map(|p| &p.spec);
    let attempts = p
        .and_then(|p| p.attempts)
        .unwrap_or(shared.cfg.limits.max_attempts);
    let timeout = p.and_then(|p| p.connect_timeout);
    for cluster in order.into_iter().take(attempts as usize) {
        let served = if cluster == shared.local.name {
            direct(shared, &mut tcp, &req, c.handles, &mut c.rec).await
        } else {
            req.target = Some(cluster.clone());
            let timeout = timeout.unwrap_or(shared.cfg.timeouts.status);
            remote(shared, &cluster, &mut tcp, &req, c, timeout).await
        };
        if served {
            return None;
        }
    }
    Some(tcp)
}

/// Delays or aborts per the policy's fault; false when the connection is to be reset.
async fn inject_fault(
    shared: &Shared,
    p: &ServicePolicy,
    first: Option<&ClusterId>,
    c: &mut Conn<'_>,
) -> bool {
    let Some(first) = first else { return true };
    match traffic::fault(shared, p, first, &mut c.rec.policy) {
        Err(()) => {
            tracing::info!("fault injected: connection reset (policy fault.abort_percent)");
            c.rec.refused(Some(first), "fault_abort");
            false
        }
        Ok(Some(delay)) => {
            tokio::time::sleep(delay).await;
            true
        }
        Ok(None) => true,
    }
}

/// Clusters that can take a connection (or flow) to `port` now, best first: only
/// those whose export has the port (KEP-1645: traffic to a port goes only to
/// the clusters that expose it). A policy's failover order replaces the config's.
pub(crate) fn candidates(
    shared: &Shared,
    import: &Import,
    port: u16,
    protocol: Protocol,
    failover: Option<&[ClusterId]>,
) -> Vec<ClusterId> {
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
        .filter(|c| c.serves(port, protocol))
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
        failover: failover.or_else(|| {
            shared
                .cfg
                .locality
                .failover
                .get(&import.key)
                .map(Vec::as_slice)
        }),
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
    shared: &Arc<Shared>,
    cluster: &ClusterId,
    tcp: &mut TcpStream,
    req: &Request,
    c: &mut Conn<'_>,
    timeout: std::time::Duration,
) -> bool {
    let started = Instant::now();
    let Opened {
        slot, send, recv, ..
    } = match attempt_on(shared, cluster, req, timeout).await {
        None => return false,
        Some(Ok(opened)) => opened,
        Some(Err(e)) => {
            tracing::info!(%cluster, error = %e, "attempt failed; trying the next cluster");
            c.rec.refused(Some(cluster), e.status_label());
            return false;
        }
    };
    let worker = shared.workers.current();
    shared
        .metrics
        .stream_setup
        .0
        .get_or_create(&ClusterLabel {
            cluster: cluster.to_string(),
        })
        .observe(started.elapsed().as_secs_f64());
    let m = &shared.metrics;
    m.worker_stream(worker, Direction::Outbound);
    m.peer_streams.get_or_create(&slot.labels()).inc();
    tracing::debug!(%cluster, "stream open");
    let mirror = c.policy.as_deref().and_then(traffic::mirrored);
    let tee = mirror.and_then(|m| crate::mirror::start(shared, m, req));
    let counters = Counters {
        sent: &c.handles.request,
        received: &c.handles.response,
        load: Some(slot.sent()),
        tee: tee.as_ref(),
        pace: None,
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
    if let Some(tee) = tee {
        tee.close(out.end == End::Done);
    }
    tracing::debug!(sent = out.sent, received = out.received, end = ?out.end, "connection done");
    c.rec.served(cluster, &out);
    true
}
