//! Layers 1 and 2: the config loads and validates; our own certificates load,
//! name this cluster's trust domain and are valid now.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use causeway_identity::{ReloadingCert, Validity, Workload};
use humantime_serde::re::humantime;

use super::report::{Check, Layer, Problem};
use super::{Ctx, Options};
use crate::config::Config;
use crate::identities::{IdentityError, load_cert};

/// Layer 1. Returns the context for the other layers when the config is usable.
pub(super) fn config(path: &Path, opts: &Options, out: &mut Vec<Check>) -> Option<Ctx> {
    let target = path.display().to_string();
    // Peers linked by token count as configured, as in `causeway run`.
    let loaded = Config::load(path)
        .map_err(anyhow::Error::from)
        .and_then(|mut c| {
            crate::link::apply::merge_at_start(&mut c)?;
            Ok(c)
        });
    let cfg = match loaded {
        Ok(c) => c,
        Err(e) => {
            let fix = "correct the key named in the cause (docs/config.md lists every key); \
                       `causeway config check FILE` prints the effective config once it loads";
            let p = Problem::new(e.to_string(), fix);
            out.push(Check::fail(Layer::Config, target, "does not load", p));
            return None;
        }
    };
    let peers = match select_peers(&cfg, opts) {
        Ok(p) => p,
        Err(p) => {
            out.push(Check::fail(Layer::Config, target, "--peer", p));
            return None;
        }
    };
    let detail = format!(
        "cluster {} (trust domain {}), {} peer(s) to check",
        cfg.cluster.name,
        cfg.cluster
            .trust_domain
            .as_ref()
            .map_or("?".into(), |t| t.to_string()),
        peers.len()
    );
    out.push(Check::pass(Layer::Config, target, detail));
    Some(Ctx {
        cfg,
        config_path: path.to_owned(),
        opts: opts.clone(),
        peers,
        gateway_cert: None,
        federation_cert: None,
        trusts: Default::default(),
        catalog: None,
        conns: Vec::new(),
        endpoint: None,
    })
}

fn select_peers(cfg: &Config, opts: &Options) -> Result<Vec<crate::config::PeerConfig>, Problem> {
    let Some(want) = &opts.peer else {
        return Ok(cfg.peers.clone());
    };
    match cfg.peers.iter().find(|p| &p.name == want) {
        Some(p) => Ok(vec![p.clone()]),
        None => {
            let names: Vec<String> = cfg.peers.iter().map(|p| p.name.to_string()).collect();
            Err(Problem::new(
                format!(
                    "peer {want} is not in this config's peers (configured: {})",
                    names.join(", ")
                ),
                "pass one of the configured peers to --peer, or add the peer to `peers:`",
            ))
        }
    }
}

/// Layer 2: the gateway and federation certificates (and DNS's, when set).
pub(super) fn check(ctx: &mut Ctx) -> Vec<Check> {
    let mut out = Vec::new();
    let mut workloads = vec![Workload::Gateway, Workload::Federation];
    if ctx.cfg.identity.dns.is_some() {
        workloads.push(Workload::Dns);
    }
    for w in workloads {
        let (check, cert) = one(&ctx.cfg, w);
        out.push(check);
        match w {
            Workload::Gateway => ctx.gateway_cert = cert,
            Workload::Federation => ctx.federation_cert = cert,
            Workload::Dns => {}
        }
    }
    out
}

fn one(cfg: &Config, w: Workload) -> (Check, Option<Arc<ReloadingCert>>) {
    let target = w.as_str();
    let cert = match load_cert(cfg, w) {
        Ok(c) => c,
        Err(e) => {
            let p = Problem::new(e.to_string(), load_fix(cfg, w, &e));
            return (
                Check::fail(Layer::Certificates, target, "cannot use", p),
                None,
            );
        }
    };
    let key = cert.certified_key();
    let validity = key.cert.first().and_then(causeway_identity::validity_of);
    let id = cert.spiffe_id().to_string();
    let r = match validity {
        Some(v) => judge(&id, v, SystemTime::now(), &issue_hint(cfg, w)),
        None => Ok(format!("{id} (validity unreadable)")),
    };
    (
        Check::from_result(Layer::Certificates, target, r),
        Some(cert),
    )
}

/// The `causeway ca issue` line for `w`, with the directories filled in where
/// the config tells them (identity.ca's directory, or a CA key beside our certs).
fn issue_hint(cfg: &Config, w: Workload) -> String {
    let id = &cfg.identity;
    let paths = match w {
        Workload::Gateway => Some(&id.gateway),
        Workload::Federation => Some(&id.federation),
        Workload::Dns => id.dns.as_ref(),
    };
    let out = paths.and_then(|p| p.cert.parent());
    let beside = [Some(id.gateway.cert.as_path()), id.ca.as_deref()]
        .into_iter()
        .flatten()
        .filter_map(Path::parent)
        .find(|d| d.join(causeway_identity::CA_KEY_FILE).exists());
    let show = |d: Option<&Path>, none: &str| d.map_or(none.into(), |d| d.display().to_string());
    format!(
        "causeway ca issue --ca {} --workload {w} --out {} --force",
        show(beside, "CA_DIR"),
        show(out, "DIR")
    )
}

fn load_fix(cfg: &Config, w: Workload, e: &IdentityError) -> String {
    match e {
        IdentityError::WrongId { .. } => format!(
            "issue the {w} certificate from this cluster's CA (trust domain {}): `{}`",
            cfg.cluster
                .trust_domain
                .as_ref()
                .map_or("?".into(), |t| t.to_string()),
            issue_hint(cfg, w)
        ),
        _ => format!(
            "check identity.{w}.cert and identity.{w}.key; to issue a new pair: `{}`",
            issue_hint(cfg, w)
        ),
    }
}

/// Whether a certificate is valid at `now`. A notBefore in the future and a
/// clock running behind are the same thing from here: both sides compare
/// the same two times.
pub(super) fn judge(
    id: &str,
    v: Validity,
    now: SystemTime,
    issue: &str,
) -> Result<String, (String, Problem)> {
    let at = |t: SystemTime| humantime::format_rfc3339_seconds(t).to_string();
    if let Ok(ago) = now.duration_since(v.not_after) {
        let cause = format!(
            "{id} expired at {} ({} ago); every peer rejects it",
            at(v.not_after),
            rough(ago)
        );
        let fix = format!(
            "renew it: `{issue}` (running processes pick up the new files without a restart); if it should still be valid, this host's clock is ahead: sync it (chrony, timedatectl)"
        );
        return Err(("expired".into(), Problem::new(cause, fix)));
    }
    if let Ok(ahead) = v.not_before.duration_since(now) {
        let cause = format!(
            "{id} is not valid until {} ({} from now): this host's clock is behind the clock that issued it (clock skew), or it was issued with a future start",
            at(v.not_before),
            rough(ahead)
        );
        let fix = format!(
            "sync this host's clock (chrony, timedatectl) and the issuer's; or reissue it: `{issue}`"
        );
        return Err(("not yet valid".into(), Problem::new(cause, fix)));
    }
    let left = v.not_after.duration_since(now).unwrap_or_default();
    Ok(format!(
        "{id}, valid until {} ({} left)",
        at(v.not_after),
        rough(left)
    ))
}

/// A duration in its largest unit (days, hours, minutes, seconds), for people.
fn rough(d: std::time::Duration) -> String {
    match d.as_secs() {
        s @ 86400.. => {
            let n = s / 86400;
            format!("{n} day{}", if n == 1 { "" } else { "s" })
        }
        s @ 3600.. => format!("{}h", s / 3600),
        s @ 60.. => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const DAY: Duration = Duration::from_secs(86400);

    fn at(now: SystemTime, before: i64, after: i64) -> Validity {
        let shift = |d: i64| {
            if d < 0 {
                now - DAY * d.unsigned_abs() as u32
            } else {
                now + DAY * d as u32
            }
        };
        Validity {
            not_before: shift(before),
            not_after: shift(after),
        }
    }

    #[test]
    fn judges_expired_future_and_valid() {
        let now = SystemTime::now();
        let (detail, p) = judge("id", at(now, -2, -1), now, "ISSUE").unwrap_err();
        assert_eq!(detail, "expired");
        assert!(p.cause.contains("expired at") && p.cause.contains("(1 day ago)"));
        assert!(p.fix.contains("ISSUE"));
        let (detail, p) = judge("id", at(now, 1, 2), now, "ISSUE").unwrap_err();
        assert_eq!(detail, "not yet valid");
        assert!(p.cause.contains("clock skew"), "{}", p.cause);
        let ok = judge("id", at(now, -1, 30), now, "ISSUE").unwrap_or_default();
        assert!(
            ok.contains("valid until") && ok.contains("(30 days left)"),
            "{ok}"
        );
    }
}
