//! A flow this cluster serves itself: a socket of its own to a ready local
//! endpoint, replies sent back from the listener's address.

use std::net::SocketAddr;
use std::sync::Arc;

use causeway_catalog::Protocol;
use tokio_util::sync::CancellationToken;

use super::open::{Event, FlowCtx};
use super::{Activity, Sink, SinkTo};
use crate::metrics::Direction;

/// Opens the flow to a local endpoint and relays replies until it ends;
/// false when no local endpoint could take it.
pub async fn open(ctx: &FlowCtx, from: SocketAddr, seq: u64) -> bool {
    let shared = &ctx.shared;
    let exports = shared.exports();
    let Some(export) = crate::local::find(&exports, &ctx.service, ctx.port, Protocol::Udp) else {
        return false;
    };
    let targets = crate::local::ready_targets(export, ctx.port);
    let Ok((sock, _load)) =
        crate::local::connect_udp(&shared.loads, &targets, super::flow_buffer(shared)).await
    else {
        return false;
    };
    let service = ctx.service.to_string();
    shared.udp_metrics.flow(&service, Direction::Outbound, "ok");
    let sock = Arc::new(sock);
    let activity = Arc::new(Activity::default());
    activity.touch();
    let end = CancellationToken::new();
    let sink = Sink {
        to: SinkTo::Local(sock.clone()),
        activity: activity.clone(),
        end: end.clone(),
    };
    if ctx
        .events
        .send(Event::Opened(from, seq, sink))
        .await
        .is_err()
    {
        return true;
    }
    let mut buf = vec![0u8; 65_535];
    loop {
        let n = tokio::select! {
            () = end.cancelled() => break,
            r = sock.recv(&mut buf) => match r {
                Ok(n) => n,
                // An ICMP port unreachable from the endpoint: the flow may recover.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                Err(_) => break,
            },
        };
        activity.touch();
        match ctx.socket.try_send_to(&buf[..n], from) {
            Ok(n) => ctx.response.add(n),
            Err(_) => shared.udp_metrics.dropped("socket_full"),
        }
    }
    true
}
