//! Letting a peer's stream or UDP flow in: authorization first, then policy
//! limits and caps (shared by `inbound` and `udp::relay`).

use causeway_catalog::ClusterId;
use prometheus_client::metrics::gauge::Gauge;

use crate::limits::Grant;
use crate::metrics::ActiveGuard;
use crate::protocol::{Request, Status};
use crate::quota::{Held, PeerCounts};
use crate::shared::Shared;

/// What an authorized stream or flow holds while it lives.
pub(crate) struct Let {
    /// Ready endpoints to connect to.
    pub targets: Vec<std::net::SocketAddr>,
    /// The source cluster's hold on the service's policy limits.
    pub grant: Option<Grant>,
    _active: ActiveGuard,
    _peer: Held,
}

/// The caps a stream or flow counts against: the peer's count and the
/// service's open gauge, with their limits.
pub(crate) struct Caps<'a> {
    pub peer: (&'a PeerCounts, u32),
    pub service: (&'a Gauge, u32),
}

/// Whether a request may proceed at all: the service and port exist for its
/// protocol and are exported to the peer; gives the ready endpoints. This
/// comes first: a peer learns nothing and creates no metric label for a
/// service not exported to it.
pub(crate) fn permit(
    shared: &Shared,
    cluster: &ClusterId,
    req: &Request,
) -> Result<Vec<std::net::SocketAddr>, (Status, String)> {
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
    let Some(export) = crate::local::find(&exports, &req.service, req.port, req.protocol) else {
        return Err((
            Status::UnknownService,
            format!(
                "{} port {}/{} is not exported here",
                req.service,
                req.port,
                req.protocol.as_str()
            ),
        ));
    };
    if !export.export_to.allows(cluster) {
        tracing::warn!(peer = %cluster, service = %req.service, "forbidden: service is not exported to this peer");
        return Err((
            Status::Forbidden,
            format!("{} is not exported to cluster {cluster}", req.service),
        ));
    }
    Ok(match &req.endpoint {
        Some(host) => crate::headless::targets(export, req.port, host),
        None => crate::local::ready_targets(export, req.port),
    })
}

/// Takes what a permitted stream or flow holds: its policy limits' grant and
/// a place under the caps.
pub(crate) fn hold(
    shared: &Shared,
    cluster: &ClusterId,
    req: &Request,
    decisions: &mut Vec<String>,
    caps: Caps<'_>,
    targets: Vec<std::net::SocketAddr>,
) -> Result<Let, (Status, String)> {
    let grant = policy_limits(shared, cluster, req, decisions)?;
    let overloaded = |what: &str| (Status::Overloaded, format!("too many {what}"));
    let (peers, peer_limit) = caps.peer;
    let peer = peers
        .enter(cluster, peer_limit as usize)
        .ok_or_else(|| overloaded("from this peer"))?;
    let (open, service_limit) = caps.service;
    // Counted first, then checked: concurrent streams cannot overrun the limit.
    let active = ActiveGuard::new(open);
    if open.get() > i64::from(service_limit) {
        return Err(overloaded("for this service"));
    }
    Ok(Let {
        targets,
        grant,
        _active: active,
        _peer: peer,
    })
}

/// The service's policy limits for connections from `cluster` (verified).
fn policy_limits(
    shared: &Shared,
    cluster: &ClusterId,
    req: &Request,
    decisions: &mut Vec<String>,
) -> Result<Option<Grant>, (Status, String)> {
    let Some(policy) = crate::traffic::lookup(shared, &req.service, req.port) else {
        return Ok(None);
    };
    shared.limits.admit(&policy, cluster).map_err(|refusal| {
        let what = refusal.as_str();
        decisions.push(format!("limit:{what}"));
        shared
            .policy_metrics
            .limited(&req.service.to_string(), cluster.as_str(), what);
        tracing::info!(peer = %cluster, service = %req.service, limit = what, "refused by a policy limit");
        let detail = format!("{} limits cluster {cluster} ({what})", req.service);
        (Status::Limited, detail)
    })
}
