//! Inbound: streams from authenticated peer gateways to local endpoints.

use std::sync::Arc;

use causeway_catalog::ClusterId;
use quinn::{ConnectionError, RecvStream, SendStream};
use tracing::Instrument;

use crate::gate::SetupGate;
use crate::header::{read_request, refuse, respond};
use crate::metrics::{ActiveGuard, Direction, InboundHandshake};
use crate::protocol::{Request, Status};
use crate::shared::Shared;
use crate::splice::{self, Counters};

/// QUIC connection close code for a peer whose certificate maps to no cluster.
const CLOSE_UNKNOWN_PEER: u32 = 0x11;

/// Accepts peer connections on worker `w`'s server endpoint; each is driven,
/// and its streams run, on that worker.
pub async fn accept_loop(shared: Arc<Shared>, w: usize) {
    let endpoint = &shared.endpoints[w].server;
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

async fn connection(shared: Arc<Shared>, incoming: quinn::Incoming) {
    let remote = incoming.remote_address();
    let span = tracing::info_span!("inbound", %remote, cluster = tracing::field::Empty, peer_id = tracing::field::Empty);
    async move {
        let Some(conn) = handshake(&shared, incoming).await else {
            return;
        };
        let Some((cluster, peer_id)) = shared.id.identify(&conn) else {
            tracing::warn!("peer certificate names no configured cluster; closing");
            handshake_metric(&shared, "rejected");
            conn.close(CLOSE_UNKNOWN_PEER.into(), b"unknown peer");
            return;
        };
        let span = tracing::Span::current();
        span.record("cluster", tracing::field::display(&cluster));
        span.record("peer_id", tracing::field::display(&peer_id));
        handshake_metric(&shared, "ok");
        let gate = Arc::new(SetupGate::default());
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
            let s = shared.clone();
            shared
                .streams
                .spawn(stream(s, cluster.clone(), gate.clone(), send, recv).in_current_span());
        }
    }
    .instrument(span)
    .await
}

async fn stream(
    shared: Arc<Shared>,
    cluster: ClusterId,
    gate: Arc<SetupGate>,
    mut send: SendStream,
    mut recv: RecvStream,
) {
    let span = tracing::debug_span!("stream", id = %send.id(), service = tracing::field::Empty, trace = tracing::field::Empty);
    async move {
        let metrics = &shared.metrics;
        let _open = ActiveGuard::new(&metrics.inbound_streams_open);
        metrics.worker_stream(shared.workers.current(), Direction::Inbound);
        let req = match read_request(&mut recv, shared.cfg.timeouts.header).await {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(error = %e, "bad stream header");
                let label = refuse(&mut send, &mut recv, &gate, &e).await;
                metrics.stream(cluster.as_str(), Direction::Inbound, label);
                return;
            }
        };
        let span = tracing::Span::current();
        span.record("service", tracing::field::display(&req.service));
        if let Some(t) = &req.traceparent {
            span.record("trace", t.as_str());
        }
        serve(&shared, &cluster, &gate, &req, send, recv).await;
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
) {
    let service = req.service.to_string();
    let handles = shared.metrics.service(&service, Direction::Inbound);
    let admitted = admit(shared, cluster, req, handles.active.get()).await;
    let (tcp, _load) = match admitted {
        Ok(x) => x,
        Err((status, detail)) => {
            respond(&mut send, &mut recv, gate, status, &detail).await;
            shared
                .metrics
                .stream(cluster.as_str(), Direction::Inbound, status.as_str());
            return;
        }
    };
    let _active = ActiveGuard::new(&handles.active);
    respond(&mut send, &mut recv, gate, Status::Ok, "").await;
    shared
        .metrics
        .stream(cluster.as_str(), Direction::Inbound, Status::Ok.as_str());
    let t = &shared.cfg.transport;
    let counters = Counters {
        sent: &handles.response,
        received: &handles.request,
        load: None,
    };
    let out = splice::splice(
        &tcp,
        send,
        recv,
        t.splice_buffer as usize,
        shared.cfg.timeouts.idle,
        counters,
        gate,
    )
    .await;
    tracing::debug!(sent = out.sent, received = out.received, end = ?out.end, "stream done");
}

type Admitted = (tokio::net::TcpStream, crate::local::LoadGuard);

/// Decides whether a request may proceed and connects to a local endpoint.
async fn admit(
    shared: &Shared,
    cluster: &ClusterId,
    req: &Request,
    active: i64,
) -> Result<Admitted, (Status, String)> {
    if shared.shutdown.is_cancelled() {
        return Err((Status::Draining, "gateway is draining; use another".into()));
    }
    if req.target.as_ref().is_some_and(|t| *t != shared.local.name) {
        return Err((
            Status::UnknownService,
            format!("this is cluster {}", shared.local.name),
        ));
    }
    let exports = shared.exports();
    let Some(export) = crate::local::find(&exports, &req.service, req.port) else {
        return Err((
            Status::UnknownService,
            format!("{} port {} is not exported here", req.service, req.port),
        ));
    };
    if !export.export_to.allows(cluster) {
        tracing::warn!(peer = %cluster, service = %req.service, "forbidden: service is not exported to this peer");
        return Err((
            Status::Forbidden,
            format!("{} is not exported to cluster {cluster}", req.service),
        ));
    }
    if active >= i64::from(shared.cfg.limits.max_streams_per_service) {
        return Err((
            Status::Overloaded,
            "too many connections for this service".into(),
        ));
    }
    let targets = match &req.endpoint {
        Some(host) => crate::headless::targets(export, req.port, host),
        None => crate::local::ready_targets(export, req.port),
    };
    crate::local::connect(&shared.loads, &targets, shared.cfg.timeouts.connect)
        .await
        .map_err(|s| (s, String::new()))
}
