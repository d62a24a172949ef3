//! One flow of the importing side: choose a cluster, open the flow's stream,
//! and hold it until the flow ends. Clusters are chosen as for a TCP
//! connection: locality, failover order, ejection, split and hash policy.

use std::net::SocketAddr;
use std::sync::Arc;

use causeway_catalog::{ClusterId, Protocol, ServiceKey};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Activity, Route, Sink, SinkTo, metrics::Way};
use crate::attempt::{Opened, attempt_on};
use crate::metrics::{ActiveGuard, Direction};
use crate::protocol::Request;
use crate::shared::Shared;

/// What a listener's flows tell it.
pub enum Event {
    Opened(SocketAddr, u64, Sink),
    Refused(SocketAddr, u64),
    Ended(SocketAddr, u64),
}

/// One UDP listener: the service port it serves and where events go.
pub struct FlowCtx {
    pub shared: Arc<Shared>,
    pub service: ServiceKey,
    pub port: u16,
    /// The listener's socket: replies leave from the address clients sent to.
    pub socket: Arc<UdpSocket>,
    pub events: mpsc::Sender<Event>,
    pub request: Way,
    pub response: Way,
}

/// Runs flow `seq` of client `from`, counted in `_active` while it lives.
pub async fn run(ctx: Arc<FlowCtx>, from: SocketAddr, seq: u64, _active: ActiveGuard) {
    let shared = &ctx.shared;
    let m = &shared.udp_metrics;
    let service = ctx.service.to_string();
    let p = crate::traffic::lookup(shared, &ctx.service, ctx.port);
    let attempts = p.as_ref().and_then(|p| p.spec.attempts);
    let attempts = attempts.unwrap_or(shared.cfg.limits.max_attempts) as usize;
    for cluster in order(&ctx, from).await.into_iter().take(attempts) {
        let opened = if cluster == shared.local.name {
            super::local::open(&ctx, from, seq).await
        } else {
            peer(&ctx, &cluster, from, seq).await
        };
        if opened {
            let _ = ctx.events.send(Event::Ended(from, seq)).await;
            return;
        }
    }
    tracing::info!(%from, service, "no cluster took the UDP flow");
    m.flow(&service, Direction::Outbound, "no_cluster");
    let _ = ctx.events.send(Event::Refused(from, seq)).await;
}

/// Candidate clusters, best first, waiting a handshake's time for peers not
/// connected yet (start-up, re-dialling).
async fn order(ctx: &FlowCtx, from: SocketAddr) -> Vec<ClusterId> {
    let shared = &ctx.shared;
    let p = crate::traffic::lookup(shared, &ctx.service, ctx.port);
    let failover = p.as_ref().map(|p| p.spec.failover.as_slice());
    let failover = failover.filter(|f| !f.is_empty());
    let changed = shared.pool.changed();
    let pick = || {
        let snap = shared.catalog();
        let import = snap.imports.get(&ctx.service)?;
        let c = crate::outbound::candidates(shared, import, ctx.port, Protocol::Udp, failover);
        Some((c, import.clusters.is_empty()))
    };
    let mut order = match pick() {
        Some((c, none)) if c.is_empty() && !none => {
            let _ = tokio::time::timeout(shared.cfg.timeouts.handshake, changed).await;
            pick().map(|(c, _)| c).unwrap_or_default()
        }
        Some((c, _)) => c,
        None => Vec::new(),
    };
    if let Some(p) = p {
        crate::traffic::pick_first(shared, &p, &mut order, from, &mut Vec::new());
    }
    order
}

/// Opens the flow through `cluster` and holds it; false when it could not open.
async fn peer(ctx: &FlowCtx, cluster: &ClusterId, from: SocketAddr, seq: u64) -> bool {
    let shared = &ctx.shared;
    let req = Request {
        service: ctx.service.clone(),
        port: ctx.port,
        protocol: Protocol::Udp,
        target: Some(cluster.clone()),
        endpoint: None,
        traceparent: None,
    };
    let service = ctx.service.to_string();
    let opened = attempt_on(shared, cluster, &req, shared.cfg.timeouts.status).await;
    let Opened {
        slot,
        conn,
        mut send,
        mut recv,
    } = match opened {
        None => return false,
        Some(Ok(opened)) => opened,
        Some(Err(e)) => {
            tracing::info!(%cluster, %from, error = %e, "UDP flow refused; trying the next cluster");
            let status = e.status_label();
            shared
                .udp_metrics
                .flow(&service, Direction::Outbound, status);
            return false;
        }
    };
    shared.udp_metrics.flow(&service, Direction::Outbound, "ok");
    let id = send.id().index();
    let activity = Arc::new(Activity::default());
    activity.touch();
    let flows = shared.udp.of(&conn, &shared.udp_metrics);
    let route = Route {
        socket: ctx.socket.clone(),
        to: Some(from),
        activity: activity.clone(),
        delivered: ctx.response.clone(),
    };
    flows.insert(id, route);
    let end = CancellationToken::new();
    let sink = Sink {
        to: SinkTo::Peer(conn.clone(), id),
        activity,
        end: end.clone(),
    };
    if ctx
        .events
        .send(Event::Opened(from, seq, sink))
        .await
        .is_ok()
    {
        let mut ctl = [0u8; 64];
        // Whatever comes first ends the flow: idle (the listener closes it), the
        // far side ending the stream, or the connection going silent or away.
        tokio::select! {
            () = end.cancelled() => {}
            _ = recv.read(&mut ctl) => {}
            () = slot.silent(&shared.pool) => {}
            _ = conn.closed() => {}
        }
    }
    flows.remove(id);
    let _ = send.finish();
    true
}
