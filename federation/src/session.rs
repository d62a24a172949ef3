//! The subscriber side: one long-lived task per configured peer that keeps a
//! session open, applies what arrives to that peer's view, and reconnects with
//! jittered backoff. A failing peer only ever affects its own view.

use std::sync::Arc;
use std::time::{Duration, Instant};

use causeway_catalog::ClusterId;
use causeway_identity::{ReloadingCert, Workload};
use rand::Rng;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tonic::transport::Endpoint;

use crate::Config;
use crate::admit::{Reason, Refused};
use crate::metrics::{Kind, Metrics, SessionState};
use crate::proto::{self, federation_client::FederationClient};
use crate::slot::PeerSlot;
use crate::transport::PeerConnector;
use crate::view::{Applied, ViewError};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    #[error("cannot build TLS settings for peer {peer}: {message}")]
    Tls { peer: ClusterId, message: String },
    #[error("cannot connect to peer {peer} at {addr}: {message}")]
    Connect {
        peer: ClusterId,
        addr: String,
        /// The whole cause chain: tonic's own message is only "transport error".
        message: String,
    },
    #[error("peer {peer}: subscribe failed: {status}")]
    Refused {
        peer: ClusterId,
        status: tonic::Status,
    },
    #[error("peer {peer}: stream failed: {status}")]
    Stream {
        peer: ClusterId,
        status: tonic::Status,
    },
    #[error("peer {peer} sent nothing for {idle:?} (heartbeats stopped); reconnecting")]
    Idle { peer: ClusterId, idle: Duration },
    #[error("peer {peer} ended the stream")]
    Ended { peer: ClusterId },
    #[error(transparent)]
    View(#[from] ViewError),
}

/// What every session needs.
pub struct SessionCtx {
    pub cfg: Config,
    pub cert: Arc<ReloadingCert>,
    pub metrics: Metrics,
    /// Woken when a view changed in a way the catalog must reflect.
    pub dirty: Arc<Notify>,
    pub lease: causeway_catalog::LeaseConfig,
}

/// Keeps a session with `slot`'s peer until `shutdown`.
pub async fn run(slot: Arc<PeerSlot>, ctx: Arc<SessionCtx>, shutdown: CancellationToken) {
    let peer = slot.trust.name.to_string();
    let mut failures: u32 = 0;
    loop {
        slot.set_state(SessionState::Connecting, &ctx.metrics);
        let mut got_any = false;
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = session(&slot, &ctx, &mut got_any) => r,
        };
        if let Err(e) = result {
            tracing::warn!(peer, "{e}");
            ctx.metrics
                .session_errors
                .get_or_create(&label(&peer))
                .inc();
            slot.status_mut().last_error = Some(e.to_string());
        }
        failures = if got_any {
            0
        } else {
            failures.saturating_add(1)
        };
        slot.set_state(SessionState::Backoff, &ctx.metrics);
        let wait = backoff(&ctx.cfg, failures);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        slot.status_mut().reconnects += 1;
        ctx.metrics.reconnects.get_or_create(&label(&peer)).inc();
    }
}

fn label(peer: &str) -> crate::metrics::PeerLabel {
    crate::metrics::PeerLabel {
        peer: peer.to_owned(),
    }
}

/// `backoff_min` doubled per consecutive failure, capped at `backoff_max`,
/// then jittered to 50-100% so peers that failed together do not retry together.
pub fn backoff(cfg: &Config, failures: u32) -> Duration {
    let base = cfg
        .backoff_min
        .saturating_mul(1u32 << failures.min(16))
        .min(cfg.backoff_max);
    base.mul_f64(rand::rng().random_range(0.5..=1.0))
}

async fn session(
    slot: &PeerSlot,
    ctx: &SessionCtx,
    got_any: &mut bool,
) -> Result<(), SessionError> {
    let peer = slot.trust.name.clone();
    let mut client = connect(slot, ctx).await?;
    let (epoch, version) = slot.view().resume_point();
    let request = proto::SubscribeRequest { epoch, version };
    let response = tokio::time::timeout(ctx.cfg.connect_timeout, client.subscribe(request))
        .await
        .map_err(|_| SessionError::Idle {
            peer: peer.clone(),
            idle: ctx.cfg.connect_timeout,
        })?
        .map_err(|status| SessionError::Refused {
            peer: peer.clone(),
            status,
        })?;
    let mut stream = response.into_inner();
    slot.view().begin_session();
    slot.set_state(SessionState::Connected, &ctx.metrics);
    loop {
        let idle = ctx.cfg.idle_timeout;
        let next = tokio::time::timeout(idle, stream.message())
            .await
            .map_err(|_| SessionError::Idle {
                peer: peer.clone(),
                idle,
            })?;
        let update = match next {
            Ok(Some(u)) => u,
            Ok(None) => return Err(SessionError::Ended { peer }),
            Err(status) => return Err(SessionError::Stream { peer, status }),
        };
        apply(slot, ctx, update)?;
        *got_any = true;
    }
}

async fn connect(
    slot: &PeerSlot,
    ctx: &SessionCtx,
) -> Result<FederationClient<tonic::transport::Channel>, SessionError> {
    let peer = slot.trust.name.clone();
    let tls_err = |message: String| SessionError::Tls {
        peer: peer.clone(),
        message,
    };
    let config =
        causeway_identity::client_config(ctx.cert.clone(), &slot.trust, Workload::Federation)
            .map_err(|e| tls_err(e.to_string()))?;
    let connector = PeerConnector::new(
        slot.addr.clone(),
        config,
        slot.trust.trust_domain.as_str(),
        ctx.cfg.connect_timeout,
    )
    .map_err(|e| tls_err(e.to_string()))?;
    // The URI only names the peer for HTTP/2; the connector does the dialling.
    let endpoint = Endpoint::from_shared(format!("http://{}", slot.addr))
        .map_err(|e| SessionError::Connect {
            peer: peer.clone(),
            addr: slot.addr.clone(),
            message: chain(&e),
        })?
        .connect_timeout(ctx.cfg.connect_timeout);
    let channel = endpoint
        .connect_with_connector(connector)
        .await
        .map_err(|e| SessionError::Connect {
            peer: peer.clone(),
            addr: slot.addr.clone(),
            message: chain(&e),
        })?;
    Ok(FederationClient::new(channel)
        .max_decoding_message_size(ctx.cfg.max_message_size)
        .max_encoding_message_size(ctx.cfg.max_message_size))
}

fn apply(slot: &PeerSlot, ctx: &SessionCtx, update: proto::Update) -> Result<(), SessionError> {
    let now = Instant::now();
    let peer = slot.trust.name.as_str();
    if let Some(proto::update::Kind::TrustBundle(b)) = &update.kind {
        let rotation = crate::rotation::Rotation::from_proto(b.clone());
        tracing::info!(
            peer,
            until = rotation.as_ref().map(|r| r.overlap_until),
            "peer announced a CA rotation"
        );
        slot.set_rotation(rotation);
    }
    let (applied, was_fresh) = {
        let mut view = slot.view();
        let was_fresh = view.freshness(&ctx.lease, now) == Some(causeway_catalog::Freshness::Fresh);
        let before = view.refused().clone();
        let applied = view.apply(update, now)?;
        report_refused(peer, &before, view.refused(), &ctx.metrics);
        (applied, was_fresh)
    };
    let mut status = slot.status_mut();
    let changed = match applied {
        Applied::Snapshot => {
            status.snapshots += 1;
            Metrics::count(&ctx.metrics.received, peer, Kind::Snapshot);
            true
        }
        Applied::Delta { changed } => {
            status.deltas += 1;
            Metrics::count(&ctx.metrics.received, peer, Kind::Delta);
            changed
        }
        Applied::Heartbeat => {
            status.heartbeats += 1;
            Metrics::count(&ctx.metrics.received, peer, Kind::Heartbeat);
            false
        }
        Applied::TrustBundle => {
            Metrics::count(&ctx.metrics.received, peer, Kind::TrustBundle);
            false
        }
        // The peer's ClusterInfo may have changed across its restart.
        Applied::Resumed => {
            Metrics::count(&ctx.metrics.received, peer, Kind::Resumed);
            true
        }
    };
    if changed || !was_fresh {
        ctx.dirty.notify_one();
    }
    Ok(())
}

/// Logs what the peer's policy newly leaves out, and sets the gauges.
fn report_refused(peer: &str, before: &Refused, now: &Refused, metrics: &Metrics) {
    for reason in Reason::ALL {
        let (was, is) = (before.get(&reason), now.get(&reason));
        let count = is.copied().unwrap_or(0);
        metrics.set_refused(peer, reason.as_str(), count);
        if was != is && count > 0 {
            tracing::warn!(
                %peer,
                reason = reason.as_str(),
                count,
                "peer {peer}: {count} left out ({}); raise peers.{peer}.limits or widen peers.{peer}.import if they should be imported",
                reason.as_str()
            );
        }
    }
}

/// An error and its sources, joined: "transport error: tls handshake: ...".
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        let s_text = s.to_string();
        if !out.ends_with(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        next = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        let cfg = Config {
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(1),
            ..Config::default()
        };
        for (failures, full) in [(0, 100), (1, 200), (3, 800), (4, 1000), (60, 1000)] {
            let full = Duration::from_millis(full);
            for _ in 0..20 {
                let d = backoff(&cfg, failures);
                assert!(d <= full && d >= full / 2, "{failures}: {d:?}");
            }
        }
    }
}
