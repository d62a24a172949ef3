//! The importing side's UDP listener of one service port: one flow per
//! client address, each set up (and ended) by a task of its own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use causeway_catalog::ServiceKey;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Sink;
use super::open::{Event, FlowCtx};
use super::table::{Table, Verdict};
use crate::metrics::{ActiveGuard, Direction, Flow};
use crate::shared::Shared;

/// How long a client no cluster would take is dropped before trying again.
const REFUSED_HOLD: Duration = Duration::from_secs(1);
/// How often idle flows are looked for.
const SWEEP: Duration = Duration::from_millis(500);

pub async fn serve(
    shared: Arc<Shared>,
    socket: std::net::UdpSocket,
    service: ServiceKey,
    port: u16,
    cancel: CancellationToken,
) {
    let socket = match UdpSocket::from_std(socket) {
        Ok(s) => Arc::new(s),
        Err(e) => return tracing::error!(error = %e, "cannot register UDP listener"),
    };
    let (events, mut rx) = mpsc::channel(1024);
    let m = &shared.udp_metrics;
    let name = service.to_string();
    let ctx = Arc::new(FlowCtx {
        request: m.way(&name, Direction::Outbound, Flow::Request),
        response: m.way(&name, Direction::Outbound, Flow::Response),
        shared: shared.clone(),
        service,
        port,
        socket: socket.clone(),
        events,
    });
    let active = m.active(&name, Direction::Outbound);
    let cap = i64::from(shared.cfg.udp.max_flows_per_service);
    let mut table: Table<Sink> = Table::default();
    let mut buf = vec![0u8; 65_535];
    let mut sweep = tokio::time::interval(SWEEP);
    loop {
        tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, from)) => {
                    let full = active.get() >= cap;
                    match table.datagram(from, &buf[..n], full, Instant::now()) {
                        Verdict::Send(sink) => sink.send(&buf[..n], m, &ctx.request),
                        Verdict::Start(seq) => {
                            let guard = ActiveGuard::new(&active);
                            shared.streams.spawn(super::open::run(ctx.clone(), from, seq, guard));
                        }
                        Verdict::Queued => {}
                        Verdict::Drop(reason) => m.dropped(reason),
                    }
                }
                // ICMP errors of earlier replies, or no memory: not the listener's end.
                Err(e) => tracing::debug!(error = %e, "UDP listener receive failed"),
            },
            Some(ev) = rx.recv() => on_event(&mut table, ev, &ctx),
            _ = sweep.tick() => {
                let idle = shared.cfg.udp.idle_timeout;
                for sink in table.sweep(Instant::now(), idle, Sink::idle) {
                    sink.close();
                }
            }
            () = cancel.cancelled() => break,
        }
    }
    table.drain().iter().for_each(Sink::close);
}

fn on_event(table: &mut Table<Sink>, ev: Event, ctx: &FlowCtx) {
    let m = &ctx.shared.udp_metrics;
    match ev {
        Event::Opened(from, seq, sink) => match table.opened(from, seq, sink) {
            Ok(queued) => {
                if let Some(sink) = table.open(from) {
                    queued.iter().for_each(|d| sink.send(d, m, &ctx.request));
                }
            }
            Err(sink) => sink.close(),
        },
        Event::Refused(from, seq) => table.refused(from, seq, Instant::now() + REFUSED_HOLD),
        Event::Ended(from, seq) => {
            if let Some(sink) = table.ended(from, seq) {
                sink.close();
            }
        }
    }
}
