//! Layer 7 (`--service`): the service is in our catalog, served by a cluster
//! with ready endpoints, with a ClusterSetIP. When it is absent and a port is
//! known, each peer gateway is asked directly, which tells "not exported to
//! us" (`forbidden`) from "not exported at all" (`unknown_service`).

use causeway_catalog::{ClusterId, Freshness, Import, Protocol};
use causeway_gateway::protocol::Status;

use super::report::{Check, Layer, Problem};
use super::{Ctx, ServiceArg, stream};

pub(super) async fn check(ctx: &mut Ctx) -> Vec<Check> {
    let Some(arg) = ctx.opts.service.clone() else {
        return Vec::new();
    };
    let target = arg.key.to_string();
    let found = ctx
        .catalog
        .as_ref()
        .and_then(|c| c.imports.get(&arg.key))
        .cloned();
    let r = match found {
        Some(im) => judge(&im, arg.port),
        None => Err(absent(ctx, &arg).await),
    };
    vec![Check::from_result(Layer::Service, target, r)]
}

/// The service port to use: the one asked for, else the import's first TCP port.
pub(super) fn port_of(im: &Import, asked: Option<u16>) -> Option<u16> {
    asked.or_else(|| {
        im.ports
            .iter()
            .find(|p| p.protocol == Protocol::Tcp)
            .map(|p| p.number)
    })
}

pub(super) fn judge(im: &Import, asked: Option<u16>) -> Result<String, (String, Problem)> {
    let ports: Vec<String> = im
        .ports
        .iter()
        .map(|p| format!("{}/{}", p.number, p.protocol.as_str()))
        .collect();
    if let Some(p) = asked.filter(|p| !im.ports.iter().any(|x| x.number == *p)) {
        let cause = format!(
            "{} has no port {p} (its ports: {})",
            im.key,
            ports.join(", ")
        );
        return Err((
            "no such port".into(),
            Problem::new(cause, "ask for one of its ports"),
        ));
    }
    let serving: Vec<String> = im
        .clusters
        .iter()
        .map(|c| {
            format!(
                "{} ({} ready, {:?})",
                c.cluster, c.ready_endpoints, c.freshness
            )
            .to_lowercase()
        })
        .collect();
    let usable = im
        .clusters
        .iter()
        .any(|c| c.ready_endpoints > 0 && c.freshness != Freshness::Expired);
    if !usable {
        let cause = format!(
            "no cluster serving {} has a ready endpoint: {}",
            im.key,
            serving.join(", ")
        );
        let fix = "check the service's endpoints on those clusters (readiness probes, exports.yaml or EndpointSlices)";
        return Err(("no ready endpoint".into(), Problem::new(cause, fix)));
    }
    if !im.headless && im.vips.is_empty() {
        let cause = format!(
            "{} has no ClusterSetIP here: gateway.vip_ranges may be exhausted",
            im.key
        );
        let fix = "widen gateway.vip_ranges and read our log for the allocation error";
        return Err(("no ClusterSetIP".into(), Problem::new(cause, fix)));
    }
    let vips: Vec<String> = im.vips.iter().map(ToString::to_string).collect();
    Ok(format!(
        "imported, served by {}; ports {}; ClusterSetIP {}",
        serving.join(", "),
        ports.join(", "),
        if vips.is_empty() {
            "none (headless)".into()
        } else {
            vips.join(", ")
        }
    ))
}

/// Not in our catalog: ask each peer gateway (when the port is known) why.
async fn absent(ctx: &Ctx, arg: &ServiceArg) -> (String, Problem) {
    let (key, us) = (&arg.key, ctx.us());
    let detail = "not in our catalog".to_string();
    let Some(port) = arg.port else {
        let cause = format!(
            "no peer exports {key} to {us}, or our import policy (peers[].import) drops it"
        );
        let fix = format!(
            "pass --service {key}:PORT so doctor asks each peer's gateway directly (`forbidden` means its export_to excludes {us})"
        );
        return (detail, Problem::new(cause, fix));
    };
    let mut answers: Vec<(ClusterId, Status, String)> = Vec::new();
    for pc in &ctx.conns {
        if answers.iter().any(|(p, ..)| *p == pc.peer) {
            continue;
        }
        match stream::ask(&pc.conn, key, port, &pc.peer).await {
            Ok(r) => answers.push((pc.peer.clone(), r.status, stream::describe(&r))),
            Err(e) => answers.push((pc.peer.clone(), Status::BadRequest, e.to_string())),
        }
    }
    (detail, explain_absent(arg, port, us, &answers))
}

pub(super) fn explain_absent(
    arg: &ServiceArg,
    port: u16,
    us: &ClusterId,
    answers: &[(ClusterId, Status, String)],
) -> Problem {
    let key = &arg.key;
    if let Some((peer, _, said)) = answers.iter().find(|(_, s, _)| *s == Status::Forbidden) {
        return Problem::new(
            format!(
                "{peer} exports {key} but its export_to excludes {us} ({peer}'s gateway answered {said})"
            ),
            format!("on {peer}, add {us} to export_to of {key} (or set it to `all`)"),
        );
    }
    if let Some((peer, ..)) = answers.iter().find(|(_, s, _)| *s == Status::Ok) {
        return Problem::new(
            format!(
                "{peer} serves {key}:{port} to us, but it is not in our catalog: our import policy for {peer} (peers.{peer}.import) drops it, or {peer}'s catalog has not reached us yet"
            ),
            format!("check peers.{peer}.import; run doctor again in a few seconds"),
        );
    }
    let said: Vec<String> = answers
        .iter()
        .map(|(p, _, s)| format!("{p}: {s}"))
        .collect();
    Problem::new(
        format!(
            "no peer exports {key} port {port} to {us} (peer gateways answered: {})",
            said.join("; ")
        ),
        format!(
            "export it on the cluster that runs it (exports.yaml, or a ServiceExport in Kubernetes) with export_to including {us}"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explains_why_a_service_is_missing() {
        let arg: ServiceArg = "demo/secret:80".parse().unwrap_or_else(|e| panic!("{e}"));
        let (a, b) = (
            ClusterId::new("alpha").unwrap(),
            ClusterId::new("bravo").unwrap(),
        );
        let forbidden = [(b.clone(), Status::Forbidden, "forbidden".into())];
        let p = explain_absent(&arg, 80, &a, &forbidden);
        assert!(p.cause.contains("export_to excludes alpha") && p.fix.contains("on bravo"));
        let unknown = [(b, Status::UnknownService, "unknown_service".into())];
        let p = explain_absent(&arg, 80, &a, &unknown);
        assert!(
            p.cause.starts_with("no peer exports demo/secret port 80"),
            "{}",
            p.cause
        );
    }
}
