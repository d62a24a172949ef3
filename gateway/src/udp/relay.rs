//! The exporting side of a flow: authorized like a TCP stream, then relayed
//! between the peer connection's datagrams and a socket of its own connected
//! to one ready local endpoint.

use std::sync::Arc;
use std::time::Duration;

use causeway_catalog::ClusterId;
use quinn::{Connection, RecvStream, SendStream};
use tokio::net::UdpSocket;

use super::metrics::Way;
use super::{Activity, Route};
use crate::admit::{Caps, hold, permit};
use crate::gate::SetupGate;
use crate::header::respond;
use crate::metrics::{Direction, Flow};
use crate::protocol::{Request, Status};
use crate::record::ConnRecord;
use crate::shared::Shared;

/// The flow's stream, kept open while the flow lives.
pub struct FlowStream<'a> {
    pub conn: &'a Connection,
    pub gate: &'a SetupGate,
    pub send: SendStream,
    pub recv: RecvStream,
}

pub async fn serve(
    shared: &Arc<Shared>,
    cluster: &ClusterId,
    req: &Request,
    mut s: FlowStream<'_>,
    rec: &mut ConnRecord,
) {
    let service = req.service.to_string();
    let m = &shared.udp_metrics;
    let (sock, _held) = match admit(shared, cluster, req, &service, rec).await {
        Ok(a) => a,
        Err((status, detail)) => {
            rec.refused(None, status.as_str());
            respond(&mut s.send, &mut s.recv, s.gate, status, &detail).await;
            shared
                .metrics
                .stream(cluster.as_str(), Direction::Inbound, status.as_str());
            // A name not exported here makes no label: peers cannot grow our metrics.
            if status != Status::UnknownService {
                m.flow(&service, Direction::Inbound, status.as_str());
            }
            return;
        }
    };
    respond(&mut s.send, &mut s.recv, s.gate, Status::Ok, "").await;
    shared
        .metrics
        .stream(cluster.as_str(), Direction::Inbound, "ok");
    m.flow(&service, Direction::Inbound, "ok");
    rec.endpoint = sock.peer_addr().ok();
    let id = s.recv.id().index();
    let activity = Arc::new(Activity::default());
    activity.touch();
    let flows = shared.udp.of(s.conn, m);
    let route = Route {
        socket: sock.clone(),
        to: None,
        activity: activity.clone(),
        delivered: m.way(&service, Direction::Inbound, Flow::Request),
    };
    flows.insert(id, route);
    let response = m.way(&service, Direction::Inbound, Flow::Response);
    relay(shared, &mut s, id, &sock, &activity, &response).await;
    flows.remove(id);
    let _ = s.send.finish();
}

/// What an admitted flow holds while it lives.
type Held = (crate::admit::Let, crate::local::LoadGuard);

async fn admit(
    shared: &Shared,
    cluster: &ClusterId,
    req: &Request,
    service: &str,
    rec: &mut ConnRecord,
) -> Result<(Arc<UdpSocket>, Held), (Status, String)> {
    let targets = permit(shared, cluster, req)?;
    let active = shared.udp_metrics.active(service, Direction::Inbound);
    let u = &shared.cfg.udp;
    let caps = Caps {
        peer: (&shared.peer_flows, u.max_flows_per_peer),
        service: (&active, u.max_flows_per_service),
    };
    let ok = hold(shared, cluster, req, &mut rec.policy, caps, targets)?;
    let (sock, load) =
        crate::local::connect_udp(&shared.loads, &ok.targets, super::flow_buffer(shared))
            .await
            .map_err(|s| (s, String::new()))?;
    Ok((Arc::new(sock), (ok, load)))
}

/// Endpoint replies go out as datagrams until the caller ends the stream, the
/// flow idles out, or the gateway stops.
async fn relay(
    shared: &Shared,
    s: &mut FlowStream<'_>,
    id: u64,
    sock: &UdpSocket,
    activity: &Activity,
    response: &Way,
) {
    let idle = shared.cfg.udp.idle_timeout;
    let mut tick = tokio::time::interval((idle / 4).max(Duration::from_millis(100)));
    let mut buf = vec![0u8; 65_535];
    let mut ctl = [0u8; 64];
    loop {
        tokio::select! {
            r = sock.recv(&mut buf) => match r {
                Ok(n) => {
                    activity.touch();
                    super::to_peer(s.conn, id, &buf[..n], &shared.udp_metrics, response);
                }
                // ICMP port unreachable: the endpoint is not listening (yet).
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    shared.udp_metrics.dropped("endpoint_refused");
                }
                Err(_) => return,
            },
            _ = s.recv.read(&mut ctl) => return,
            _ = tick.tick() => if activity.idle() >= idle {
                return;
            },
            () = shared.hard.cancelled() => return,
        }
    }
}
