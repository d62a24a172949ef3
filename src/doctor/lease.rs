//! Layer 4: each peer's session and lease as our running causeway sees them
//! (`/v1/peers` on our admin endpoint); also fetches our catalog for the
//! layers after it.

use causeway_catalog::CatalogSnapshot;

use super::Ctx;
use super::STEP;
use super::report::{Check, Layer, Problem};
use crate::dev::http::get_json;
use crate::status::PeerRow;

pub(super) async fn check(ctx: &mut Ctx) -> Vec<Check> {
    let admin = Ctx::local(ctx.cfg.admin.listen);
    let peers = get_json::<Vec<PeerRow>>(admin, "/v1/peers", STEP).await;
    let catalog = get_json::<CatalogSnapshot>(admin, "/v1/catalog", STEP).await;
    let (peers, catalog) = match (peers, catalog) {
        (Ok(p), Ok(c)) => (p, c),
        (Err(e), _) | (_, Err(e)) => {
            let p = Problem::new(
                format!("our causeway is not running, or not on admin.listen {admin}: {e}"),
                format!(
                    "start it (`causeway run --config {}`); the lease, gateway, catalog and DNS checks read its admin endpoint",
                    ctx.config_path.display()
                ),
            );
            return vec![Check::fail(
                Layer::Lease,
                format!("admin {admin}"),
                "unreachable",
                p,
            )];
        }
    };
    ctx.catalog = Some(catalog);
    ctx.peers
        .iter()
        .map(|p| {
            let row = peers.iter().find(|r| r.name == p.name.as_str());
            Check::from_result(
                Layer::Lease,
                p.name.to_string(),
                judge(p.name.as_str(), row),
            )
        })
        .collect()
}

/// Whether a peer's session is up and its lease fresh.
pub(super) fn judge(peer: &str, row: Option<&PeerRow>) -> Result<String, (String, Problem)> {
    let Some(row) = row else {
        let p = Problem::new(
            format!(
                "our running causeway has no session for {peer}: it started with another config"
            ),
            "restart causeway with this config (peers are read at start)",
        );
        return Err(("no session".into(), p));
    };
    let fresh = row.freshness.as_deref();
    let heard = row
        .last_heard_ms_ago
        .map_or("never heard from".into(), |ms| {
            format!("last heard {:.1}s ago", ms as f64 / 1000.0)
        });
    let detail = format!(
        "session {}, lease {}, {heard}",
        row.state,
        fresh.unwrap_or("none")
    );
    if row.state == "connected" && fresh == Some("fresh") {
        return Ok(detail);
    }
    let last = row
        .last_error
        .as_deref()
        .map_or(String::new(), |e| format!("; last error: {e}"));
    let cause = match fresh {
        Some("expired") => format!("{peer}'s lease expired: its exports were withdrawn{last}"),
        Some("stale") => {
            format!("{peer}'s heartbeats stopped arriving: its exports are stale{last}")
        }
        _ => format!("our federation has no live session with {peer}{last}"),
    };
    let fix = format!(
        "the federation check above passed, so the link may be recovering: run doctor again in a few seconds; if it persists, read the last error and {peer}'s log"
    );
    Err((detail, Problem::new(cause, fix)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(state: &str, fresh: Option<&str>, err: Option<&str>) -> PeerRow {
        PeerRow {
            name: "bravo".into(),
            state: state.into(),
            freshness: fresh.map(str::to_owned),
            last_heard_ms_ago: Some(1500),
            reconnects: 0,
            last_error: err.map(str::to_owned),
            rtt_ms: None,
            transport: None,
            rates: None,
        }
    }

    #[test]
    fn judges_sessions_and_leases() {
        let ok = judge("bravo", Some(&row("connected", Some("fresh"), None)));
        assert_eq!(
            ok.ok().as_deref(),
            Some("session connected, lease fresh, last heard 1.5s ago")
        );
        let stale = row("backoff", Some("stale"), Some("connection refused"));
        let (_, p) = judge("bravo", Some(&stale)).unwrap_err();
        assert!(p.cause.contains("heartbeats stopped") && p.cause.contains("connection refused"));
        let (detail, _) = judge("bravo", None).unwrap_err();
        assert_eq!(detail, "no session");
    }
}
