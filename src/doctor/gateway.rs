//! Layer 5: a QUIC connection to each peer gateway address (from our catalog)
//! with our gateway certificate and the data plane's TLS, ALPN and transport
//! settings, proven by one `causeway/1` stream. The connections stay open for
//! the MTU, service and connection layers.

use std::net::SocketAddr;
use std::time::Duration;

use causeway_catalog::{ClusterId, ServiceKey};
use causeway_identity::Workload;
use quinn::ConnectionError;

use super::report::{Check, Layer, Problem};
use super::tls_why::{Link, Refusal, ours_rejects, theirs_rejects};
use super::{Ctx, STEP, stream};

/// An authenticated connection to one peer gateway address.
pub(crate) struct PeerConn {
    pub peer: ClusterId,
    pub addr: SocketAddr,
    pub conn: quinn::Connection,
}

pub(super) async fn check(ctx: &mut Ctx) -> Vec<Check> {
    let mut out = Vec::new();
    for p in ctx.peers.clone() {
        let addrs = ctx
            .catalog
            .as_ref()
            .and_then(|c| c.clusters.get(&p.name))
            .map(|i| i.gateways.clone())
            .unwrap_or_default();
        if addrs.is_empty() {
            out.push(no_address(&p.name));
        }
        for addr in addrs {
            let target = format!("{} {addr}", p.name);
            let r = dial(ctx, &p.name, addr).await;
            out.push(Check::from_result(Layer::Gateway, target, r));
        }
    }
    out
}

fn no_address(peer: &ClusterId) -> Check {
    let p = Problem::new(
        format!(
            "our catalog has no gateway address for {peer}: {peer} advertises none, or its catalog has not reached us"
        ),
        format!(
            "set gateway.advertise (or gateway.listen) on {peer} to an address we can reach over UDP"
        ),
    );
    Check::fail(Layer::Gateway, peer.to_string(), "no address", p)
}

async fn dial(
    ctx: &mut Ctx,
    peer: &ClusterId,
    addr: SocketAddr,
) -> Result<String, (String, Problem)> {
    let setup = |e: String| {
        (
            "cannot set up QUIC".to_string(),
            Problem::new(e, "check the gateway certificate and the peer's CA bundle"),
        )
    };
    let cert = ctx
        .gateway_cert
        .clone()
        .ok_or_else(|| setup("no gateway certificate".into()))?;
    let peers = ctx.peer_set().map_err(|e| setup(e.to_string()))?;
    let cc = causeway_gateway::probe_client_config(&ctx.cfg.gateway, cert, peers, peer)
        .map_err(|e| setup(e.to_string()))?;
    let endpoint = endpoint(ctx, addr).map_err(|e| setup(format!("binding a UDP socket: {e}")))?;
    let td = ctx
        .trusts
        .get(peer)
        .map(|t| t.trust_domain.to_string())
        .unwrap_or_default();
    let connecting = endpoint
        .connect_with(cc, addr, &td)
        .map_err(|e| setup(e.to_string()))?;
    let conn = match tokio::time::timeout(STEP, connecting).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Err(refused(ctx, peer, addr, &e)),
        Err(_) => return Err(silent(peer, addr)),
    };
    let probe = ServiceKey::new("doctor", "probe").map_err(|e| setup(e.to_string()))?;
    let answer = match stream::ask(&conn, &probe, 1, peer).await {
        Ok(a) if stream::answered(&a) => a,
        Ok(a) => {
            return Err((
                "stream refused".into(),
                Problem::new(
                    format!("{peer}'s gateway answered {}", stream::describe(&a)),
                    "upgrade causeway on both sides to the same protocol version",
                ),
            ));
        }
        Err(stream::StreamError::Connection(e)) => return Err(refused(ctx, peer, addr, &e)),
        Err(e) => {
            return Err((
                "stream failed".into(),
                Problem::new(
                    format!("after the QUIC handshake with {addr}: {e}"),
                    format!("read {peer}'s gateway log"),
                ),
            ));
        }
    };
    let detail = format!(
        "QUIC handshake ok (ALPN causeway/1, RTT {:.1}ms); a test stream was answered: {}",
        conn.rtt().as_secs_f64() * 1000.0,
        stream::describe(&answer)
    );
    ctx.conns.push(PeerConn {
        peer: peer.clone(),
        addr,
        conn,
    });
    Ok(detail)
}

/// One client endpoint for every dial, bound to the address family needed.
fn endpoint(ctx: &mut Ctx, to: SocketAddr) -> std::io::Result<quinn::Endpoint> {
    if let Some(e) = &ctx.endpoint {
        return Ok(e.clone());
    }
    let bind: SocketAddr = if to.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let e = quinn::Endpoint::client(bind)?;
    ctx.endpoint = Some(e.clone());
    Ok(e)
}

fn silent(peer: &ClusterId, addr: SocketAddr) -> (String, Problem) {
    let p = Problem::new(
        format!(
            "no QUIC answer from {addr} within {STEP:?}: either UDP to {addr} is blocked (firewall, security group, NAT) or {peer}'s gateway is down"
        ),
        format!(
            "allow UDP from this host to {addr} (port {}); and check that {peer}'s gateway runs and listens there (`causeway status` on {peer}, gateway.listen / gateway.advertise)",
            addr.port()
        ),
    );
    ("QUIC handshake timed out".into(), p)
}

fn refused(
    ctx: &Ctx,
    peer: &ClusterId,
    addr: SocketAddr,
    e: &ConnectionError,
) -> (String, Problem) {
    let our_td = ctx.our_td();
    let bundle = ctx
        .peers
        .iter()
        .find(|p| &p.name == peer)
        .map(|p| p.ca.clone())
        .unwrap_or_default();
    let link = Link {
        us: ctx.us(),
        our_td: &our_td,
        peer,
        what: Workload::Gateway,
        bundle: &bundle,
    };
    let detail = "QUIC handshake failed".to_string();
    match e {
        ConnectionError::TransportError(t) if is_crypto(t.code) => (
            format!("{detail}: we reject their certificate"),
            ours_rejects(&link, Refusal::of_text(&t.reason), &t.reason),
        ),
        ConnectionError::ConnectionClosed(c) if is_crypto(c.error_code) => {
            let alert = rustls::AlertDescription::from((u64::from(c.error_code) & 0xff) as u8);
            (
                format!("{detail}: refused by {peer}"),
                theirs_rejects(&link, alert),
            )
        }
        ConnectionError::ApplicationClosed(c) => (
            format!("closed by {peer}"),
            Problem::new(
                format!(
                    "{peer}'s gateway closed the connection: {}",
                    String::from_utf8_lossy(&c.reason)
                ),
                format!(
                    "on {peer}, list {} in peers with our CA; see {peer}'s gateway log",
                    ctx.us()
                ),
            ),
        ),
        other => (
            detail,
            Problem::new(
                format!("connecting to {addr}: {other}"),
                format!(
                    "check that {addr} is {peer}'s gateway (gateway.listen / gateway.advertise)"
                ),
            ),
        ),
    }
}

fn is_crypto(code: quinn::TransportErrorCode) -> bool {
    (0x100..0x200).contains(&u64::from(code))
}

/// Closes every doctor connection politely and waits briefly for the goodbyes.
pub(super) async fn close(ctx: &mut Ctx) {
    for pc in ctx.conns.drain(..) {
        pc.conn.close(0u32.into(), b"doctor done");
    }
    if let Some(e) = ctx.endpoint.take() {
        let _ = tokio::time::timeout(Duration::from_millis(300), e.wait_idle()).await;
    }
}
