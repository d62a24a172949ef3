//! Layer 9 (`--service`): a stream to each serving peer's gateway with a real
//! header (its status says why the far side cannot serve), then a TCP
//! connection through our ClusterSetIP, as a client would make it.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use causeway_catalog::{ClusterId, ServiceKey};
use causeway_gateway::protocol::{Response, Status};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::report::{Check, Layer, Problem};
use super::{Ctx, STEP, service, stream};

/// How long a VIP connection is watched for a reset or a first byte.
const FIRST_BYTE: Duration = Duration::from_secs(1);

pub(super) async fn check(ctx: &mut Ctx) -> Vec<Check> {
    let Some(arg) = ctx.opts.service.clone() else {
        return Vec::new();
    };
    let Some(im) = ctx
        .catalog
        .as_ref()
        .and_then(|c| c.imports.get(&arg.key))
        .cloned()
    else {
        return Vec::new();
    };
    let Some(port) = service::port_of(&im, arg.port) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for sc in im.clusters.iter().filter(|c| &c.cluster != ctx.us()) {
        let Some(pc) = ctx.conns.iter().find(|c| c.peer == sc.cluster) else {
            continue;
        };
        let target = format!(
            "{}:{port} via {}'s gateway {}",
            arg.key, sc.cluster, pc.addr
        );
        let r = match stream::ask(&pc.conn, &arg.key, port, &sc.cluster).await {
            Ok(resp) => judge(&sc.cluster, ctx.us(), &arg.key, port, &resp),
            Err(e) => Err((
                "stream failed".into(),
                Problem::new(e.to_string(), format!("read {}'s gateway log", sc.cluster)),
            )),
        };
        out.push(Check::from_result(Layer::Connection, target, r));
    }
    for vip in &im.vips {
        let addr = SocketAddr::new(*vip, port);
        out.push(Check::from_result(
            Layer::Connection,
            format!("{}:{port} via ClusterSetIP {addr}", arg.key),
            through_vip(addr).await,
        ));
    }
    out
}

/// What the far side's status means for this service.
pub(super) fn judge(
    peer: &ClusterId,
    us: &ClusterId,
    key: &ServiceKey,
    port: u16,
    r: &Response,
) -> Result<String, (String, Problem)> {
    let said = stream::describe(r);
    let (cause, fix) = match r.status {
        Status::Ok => {
            return Ok(format!(
                "{peer}'s gateway connected to an endpoint (status ok)"
            ));
        }
        Status::Forbidden => (
            format!("{peer} refuses {key} to {us}: its export_to excludes {us}"),
            format!("on {peer}, add {us} to export_to of {key}"),
        ),
        Status::NoReadyEndpoint => (
            format!("{peer} has no ready endpoint for {key}"),
            format!(
                "check the endpoints of {key} on {peer} (readiness, exports.yaml or EndpointSlices)"
            ),
        ),
        Status::ConnectFailed => (
            format!(
                "{peer}'s gateway could not connect to any endpoint of {key} port {port}: the endpoint refuses connections or does not answer"
            ),
            format!(
                "on {peer}, check that the service listens on the endpoint address it exports (`ss -ltn` on that host) and that the gateway may reach it"
            ),
        ),
        Status::UnknownService => (
            format!("{peer} does not export {key} port {port} (any more)"),
            format!("check {key}'s export on {peer}; our catalog may lag by a heartbeat"),
        ),
        Status::Overloaded | Status::Limited => (
            format!("{peer} refuses new streams for {key}: a limit is reached ({said})"),
            format!(
                "raise the limit on {peer} (gateway.limits or the service's policy), or retry later"
            ),
        ),
        Status::Draining => (
            format!("{peer}'s gateway is shutting down"),
            "retry once it is back; another replica should take over".into(),
        ),
        Status::BadRequest | Status::UnsupportedVersion => (
            format!("{peer}'s gateway did not understand our header ({said})"),
            "run the same causeway version on both sides".into(),
        ),
    };
    Err((
        format!("far side answered {said}"),
        Problem::new(cause, fix),
    ))
}

/// TCP to the ClusterSetIP: our gateway accepts, then resets if no cluster can serve.
async fn through_vip(addr: SocketAddr) -> Result<String, (String, Problem)> {
    let mut s = match tokio::time::timeout(STEP, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(no_listener(addr, &e.to_string())),
        Err(_) => return Err(no_listener(addr, &format!("no answer within {STEP:?}"))),
    };
    let mut buf = [0u8; 64];
    match tokio::time::timeout(FIRST_BYTE, s.read(&mut buf)).await {
        Ok(Ok(n)) if n > 0 => Ok(format!("connected; the service sent {n} bytes first")),
        Ok(Ok(_)) => Err(dropped(addr, "closed")),
        Ok(Err(e)) => Err(dropped(addr, &e.to_string())),
        Err(_) => Ok(format!(
            "connected and held open for {FIRST_BYTE:?} (the service waits for the client to speak first)"
        )),
    }
}

fn no_listener(addr: SocketAddr, why: &str) -> (String, Problem) {
    let local = matches!(addr.ip(), IpAddr::V4(ip) if ip.is_loopback());
    let hint = if local {
        ""
    } else {
        " (or this host cannot route to it)"
    };
    (
        "cannot connect".into(),
        Problem::new(
            format!("our gateway does not accept connections on {addr}{hint}: {why}"),
            "read our gateway log (listener errors); check gateway.vip_ranges",
        ),
    )
}

fn dropped(addr: SocketAddr, how: &str) -> (String, Problem) {
    (
        format!("connection {how}"),
        Problem::new(
            format!(
                "our gateway accepted on {addr}, then ended the connection ({how}): no serving cluster could carry it (see the lines above)"
            ),
            "fix the far side first; then run doctor again",
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: Status) -> Response {
        Response {
            status,
            detail: String::new(),
        }
    }

    #[test]
    fn each_status_gets_its_cause() {
        let (b, a) = (
            ClusterId::new("bravo").unwrap(),
            ClusterId::new("alpha").unwrap(),
        );
        let key: ServiceKey = "demo/db".parse().unwrap();
        let judge = |s| judge(&b, &a, &key, 5432, &answer(s));
        assert!(judge(Status::Ok).is_ok());
        let (detail, p) = judge(Status::ConnectFailed).unwrap_err();
        assert_eq!(detail, "far side answered connect_failed");
        assert!(
            p.cause
                .contains("could not connect to any endpoint of demo/db port 5432")
        );
        let (_, p) = judge(Status::Forbidden).unwrap_err();
        assert!(p.cause.contains("export_to excludes alpha"));
        let (_, p) = judge(Status::NoReadyEndpoint).unwrap_err();
        assert!(p.cause.contains("no ready endpoint"));
    }
}
