//! Inbound: streams from authenticated peer gateways to local endpoints.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use causeway_catalog::{ClusterId, Protocol};
use quinn::{ConnectionError, RecvStream, SendStream};
use tracing::Instrument;

use crate::admit::{Caps, Let, hold, permit};
use crate::gate::SetupGate;
use crate::header::{read_request, refuse, respond};
use crate::limits::Grant;
use crate::metrics::{ActiveGuard, Direction, InboundHandshake, ServiceHandles};
use crate::protocol::{Request, Status};
use crate::record::ConnRecord;
use crate::shared::Shared;
use crate::splice::{self, Counters};
use crate::udp::relay::FlowStream;

/// QUIC connection close code for a peer whose certificate maps to no cluster.
const CLOSE_UNKNOWN_PEER: u32 = 0x11;
/// QUIC connection close code for a peer past `limits.max_connections_per_peer`.
const CLOSE_TOO_MANY: u32 = 0x13;

/// Accepts peer connections on worker `w`'s server endpoint; each is driven,
/// and its streams run, on that worker.
pub async fn accept_loop(shared: Arc<Shared>, w: usize) {
    let endpoint = shared.endpoints[w].server.clone();
    accept_on(shared, endpoint).await;
}

/// Accepts peer connections on `endpoint` (a worker's, or the TCP fallback's).
pub async fn accept_on(shared: Arc<Shared>, endpoint: quinn::Endpoint) {
    loop {
        let incoming = tokio::select! {
            i = endpoint.accept() => match i {
                Some(i) => i,
                None => return,
            },
            () = shared.hard.cancelled() => return,
        };
        if shared.shutdown.is_cancelled() {
            // Draining: new peers go elsewhere.
            incoming.refuse();
            continue;
        }
        let Some(incoming) = retry_if_busy(&shared, incoming) else {
            continue;
        };
        shared.tasks.spawn(connection(shared.clone(), incoming));
    }
}

fn handshake_metric(shared: &Shared, result: &str) {
    shared
        .metrics
        .inbound_handshakes
        .get_or_create(&InboundHandshake {
            result: result.to_owned(),
        })
        .inc();
}

async fn handshake(shared: &Shared, incoming: quinn::Incoming) -> Option<quinn::Connection> {
    let res = match incoming.accept() {
        Ok(connecting) => tokio::time::timeout(shared.cfg.timeouts.handshake, connecting).await,
        Err(e) => Ok(Err(e)),
    };
    match res {
        Ok(Ok(conn)) => Some(conn),
        Ok(Err(e)) => {
            // TLS alerts (bad or unknown certificates) are QUIC crypto errors 0x100-0x1ff.
            let tls = matches!(&e, ConnectionError::TransportError(t) if (0x100..0x200).contains(&u64::from(t.code)));
            tracing::warn!(error = %e, "peer handshake failed");
            handshake_metric(shared, if tls { "rejected" } else { "failed" });
            None
        }
        Err(_) => {
            tracing::warn!("peer handshake timed out (gateway.timeouts.handshake)");
            handshake_metric(shared, "failed");
            None
        }
    }
}

/// Counts a handshake in progress while alive.
struct Handshaking<'a>(&'a AtomicUsize);

impl Drop for Handshaking<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Past `limits.retry_above_handshakes` handshakes in progress, a peer whose
/// address is not validated yet must first prove it with a QUIC Retry: a
/// flood of spoofed Initials then costs a stateless packet each, no state.
fn retry_if_busy(shared: &Shared, incoming: quinn::Incoming) -> Option<quinn::Incoming> {
    let busy = shared.handshaking.load(Ordering::Acquire)
        >= shared.cfg.limits.retry_above_handshakes as usize;
    if !busy || incoming.remote_address_validated() {
        return Some(incoming);
    }
    match incoming.retry() {
        Ok(()) => {
            handshake_metric(shared, "retry");
            None
        }
        Err(e) => Some(e.into_incoming()),
    }
}

async fn connection(shared: Arc<Shared>, incoming: quinn::Incoming) {
    let remote = incoming.remote_address();
    let span = tracing::info_span!("inbound", %remote, cluster = tracing::field::Empty, peer_id = tracing::field::Empty);
    async move {
        shared.handshaking.fetch_add(1, Ordering::AcqRel);
        let counted = Handshaking(&shared.handshaking);
        let Some(conn) = handshake(&shared, incoming).await else {
            return;
        };
        drop(counted);
        let Some((cluster, peer_id)) = shared.id.identify(&conn) else {
            tracing::warn!("peer certificate names no configured cluster; closing");
            handshake_metric(&shared, "rejected");
            conn.close(CLOSE_UNKNOWN_PEER.into(), b"unknown peer");
            return;
        };
        let span = tracing::Span::current();
        span.record("cluster", tracing::field::display(&cluster));
        span.record("peer_id", tracing::field::display(&peer_id));
        let limit = shared.cfg.limits.max_connections_per_peer as usize;
        let Some(_held) = shared.peer_connections.enter(&cluster, limit) else {
            tracing::warn!(
                limit,
                "peer holds too many connections (gateway.limits.max_connections_per_peer); closing"
            );
            handshake_metric(&shared, "too_many");
            conn.close(CLOSE_TOO_MANY.into(), b"too many connections");
            return;
        };
        handshake_metric(&shared, "ok");
        // Read its datagrams from the start: probes are answered, and ones
        // naming no flow are counted.
        shared.udp.of(&conn, &shared.udp_metrics);
        let gate = Arc::new(SetupGate::default());
        let peer_id: Arc<str> = peer_id.to_string().into();
        loop {
            let (send, recv) = tokio::select! {
                s = conn.accept_bi() => match s {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::debug!(error = %e, "peer connection ended");
                        return;
                    }
                },
                () = shared.hard.cancelled() => return,
            };
            // A peer unlinked since the handshake gets no further stream.
            if !shared.id.peers.contains(&cluster) {
                tracing::info!("peer is no longer configured (unlinked); closing");
                conn.close(CLOSE_UNKNOWN_PEER.into(), b"unlinked");
                return;
            }
            let (s, peer) = (shared.clone(), (cluster.clone(), peer_id.clone()));
            let task = stream(s, peer, conn.clone(), gate.clone(), send, recv);
            shared.streams.spawn(task.in_current_span());
        }
    }
    .instrument(span)
    .await
}

async fn stream(
    shared: Arc<Shared>,
    (cluster, peer_id): (ClusterId, Arc<str>),
    conn: quinn::Connection,
    gate: Arc<SetupGate>,
    mut send: SendStream,
    mut recv: RecvStream,
) {
    let span = tracing::debug_span!("stream", id = %send.id(), service = tracing::field::Empty, trace = tracing::field::Empty);
    async move {
        let metrics = &shared.metrics;
        let _open = ActiveGuard::new(&metrics.inbound_streams_open);
        metrics.worker_stream(shared.workers.current(), Direction::Inbound);
        let mut rec = ConnRecord::inbound(&cluster, &peer_id, &shared.local.name);
        let req = match read_request(&mut recv, shared.cfg.timeouts.header).await {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(error = %e, "bad stream header");
                let label = refuse(&mut send, &mut recv, &gate, &e).await;
                metrics.stream(cluster.as_str(), Direction::Inbound, label);
                rec.refused(None, label);
                shared.observe.finish(rec);
                return;
            }
        };
        rec.request(&req);
        let span = tracing::Span::current();
        span.record("service", tracing::field::display(&req.service));
        if let Some(t) = &req.traceparent {
            span.record("trace", t.as_str());
        }
        if req.protocol == Protocol::Udp {
            let s = FlowStream {
                conn: &conn,
                gate: &gate,
                send,
                recv,
            };
            crate::udp::relay::serve(&shared, &cluster, &req, s, &mut rec).await;
        } else {
            serve(&shared, &cluster, &gate, &req, send, recv, &mut rec).await;
        }
        shared.observe.finish(rec);
    }
    .instrument(span)
    .await
}

async fn serve(
    shared: &Arc<Shared>,
    cluster: &ClusterId,
    gate: &SetupGate,
    req: &Request,
    mut send: SendStream,
    mut recv: RecvStream,
    rec: &mut ConnRecord,
) {
    let admitted = match admit(shared, cluster, req, &mut rec.policy).await {
        Ok(a) => a,
        Err((status, detail)) => {
            rec.refused(None, status.as_str());
            respond(&mut send, &mut recv, gate, status, &detail).await;
            shared
                .metrics
                .stream(cluster.as_str(), Direction::Inbound, status.as_str());
            return;
        }
    };
    respond(&mut send, &mut recv, gate, Status::Ok, "").await;
    shared
        .metrics
        .stream(cluster.as_str(), Direction::Inbound, Status::Ok.as_str());
    rec.endpoint = admitted.tcp.peer_addr().ok();
    let t = &shared.cfg.transport;
    let h = &admitted.handles;
    let shaped = admitted.grant.as_ref().and_then(|g| g.pace()).map(|pace| {
        rec.policy.push("limit:bandwidth".into());
        let waited = shared
            .policy_metrics
            .shaped(&req.service.to_string(), cluster.as_str());
        (pace, waited)
    });
    let counters = Counters {
        sent: &h.response,
        received: &h.request,
        load: None,
        tee: None,
        pace: shaped.as_ref().map(|(p, w)| (*p, w)),
    };
    let out = splice::splice(
        &admitted.tcp,
        send,
        recv,
        t.splice_buffer as usize,
        shared.cfg.timeouts.idle,
        counters,
        gate,
    )
    .await;
    tracing::debug!(sent = out.sent, received = out.received, end = ?out.end, "stream done");
    rec.served(&shared.local.name, &out);
}

/// A stream let in: its endpoint connection and what it holds while it lives.
struct Admitted {
    tcp: tokio::net::TcpStream,
    handles: ServiceHandles,
    grant: Option<Grant>,
    _load: crate::local::LoadGuard,
    _let: Let,
}

async fn admit(
    shared: &Shared,
    cluster: &ClusterId,
    req: &Request,
    decisions: &mut Vec<String>,
) -> Result<Admitted, (Status, String)> {
    let targets = permit(shared, cluster, req)?;
    let handles = shared
        .metrics
        .service(&req.service.to_string(), Direction::Inbound);
    let l = &shared.cfg.limits;
    let caps = Caps {
        peer: (&shared.peer_streams, l.max_streams_per_peer),
        service: (&handles.active, l.max_streams_per_service),
    };
    let mut ok = hold(shared, cluster, req, decisions, caps, targets)?;
    let (tcp, load) =
        crate::local::connect(&shared.loads, &ok.targets, shared.cfg.timeouts.connect)
            .await
            .map_err(|s| (s, String::new()))?;
    Ok(Admitted {
        tcp,
        handles,
        grant: ok.grant.take(),
        _load: load,
        _let: ok,
    })
}
