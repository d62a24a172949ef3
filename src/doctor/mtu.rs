//! Layer 6: the path MTU each gateway connection discovered (quinn's DPLPMTUD,
//! bounded by `gateway.transport.max_udp_payload`), and the QUIC datagram
//! size UDP service ports get.

use std::time::Duration;

use super::Ctx;
use super::report::{Check, Layer, Problem};

/// How long MTU discovery may run, and how often it is looked at.
const MTU_WAIT: Duration = Duration::from_millis(1500);
const MTU_POLL: Duration = Duration::from_millis(50);

/// Layer 6: the path MTU each connection discovered.
pub(super) async fn check(ctx: &mut Ctx) -> Vec<Check> {
    let upper = ctx.cfg.gateway.transport.max_udp_payload;
    let mut out = Vec::new();
    for pc in &ctx.conns {
        let stats = settle(&pc.conn, upper).await;
        let r = judge_mtu(&stats.path, pc.conn.max_datagram_size(), upper);
        out.push(Check::from_result(
            Layer::Mtu,
            format!("{} {}", pc.peer, pc.addr),
            r,
        ));
    }
    out
}

/// Waits (bounded) until discovery reaches `upper` or stops moving.
async fn settle(conn: &quinn::Connection, upper: u16) -> quinn::ConnectionStats {
    let rounds = (MTU_WAIT.as_millis() / MTU_POLL.as_millis()) as usize;
    let mut last = conn.stats();
    let mut still = 0;
    for _ in 0..rounds {
        tokio::time::sleep(MTU_POLL).await;
        let now = conn.stats();
        still = if now.path.current_mtu == last.path.current_mtu {
            still + 1
        } else {
            0
        };
        last = now;
        if last.path.current_mtu >= upper || still >= 10 {
            break;
        }
    }
    last
}

pub(super) fn judge_mtu(
    path: &quinn::PathStats,
    datagram: Option<usize>,
    upper: u16,
) -> Result<String, (String, Problem)> {
    let mtu = path.current_mtu;
    let lost = path.lost_plpmtud_probes;
    let detail = format!(
        "UDP payloads up to {mtu} bytes pass (configured ceiling {upper}); QUIC datagrams up to {} bytes; {lost} probe(s) lost",
        datagram.unwrap_or(0)
    );
    if path.black_holes_detected > 0 {
        let p = Problem::new(
            format!(
                "full-size packets vanished on the path ({} black hole(s) detected): a link or tunnel on the way has a smaller MTU and drops instead of fragmenting",
                path.black_holes_detected
            ),
            format!(
                "lower gateway.transport.max_udp_payload to {mtu} or below, or fix the path MTU (allow ICMP 'fragmentation needed')"
            ),
        );
        return Err((detail, p));
    }
    if datagram.is_none() {
        let p = Problem::new(
            "the peer gateway does not accept QUIC datagrams: UDP service ports cannot cross this link",
            "run the same causeway version on both sides",
        );
        return Err((detail, p));
    }
    Ok(detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn black_holes_and_missing_datagrams_fail() {
        let mut path = quinn::PathStats::default();
        path.current_mtu = 1452;
        let ok = judge_mtu(&path, Some(1400), 1472).unwrap_or_default();
        assert!(
            ok.contains("up to 1452 bytes") && ok.contains("datagrams up to 1400"),
            "{ok}"
        );
        path.black_holes_detected = 1;
        let (_, p) = judge_mtu(&path, Some(1400), 1472).unwrap_err();
        assert!(p.fix.contains("max_udp_payload to 1452"), "{}", p.fix);
        path.black_holes_detected = 0;
        assert!(judge_mtu(&path, None, 1472).is_err());
    }
}
