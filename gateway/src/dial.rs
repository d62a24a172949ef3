//! The dialler of one peer gateway address: connect, hold, re-dial with backoff.

use std::sync::Arc;
use std::time::Duration;

use quinn::{Connection, ConnectionError};
use rand::Rng;
use tracing::Instrument;

use crate::endpoint::{self, EndpointError};
use crate::metrics::{PeerLabels, ResultLabels};
use crate::pool::PeerConn;
use crate::protocol::CLOSE_DRAINING;
use crate::shared::Shared;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DialError {
    #[error(transparent)]
    Config(#[from] EndpointError),
    #[error("no trust configured for the peer; add it to peers")]
    NoTrust,
    #[error("cannot start a connection: {0}")]
    Connect(#[from] quinn::ConnectError),
    #[error("handshake failed: {0}")]
    Handshake(#[from] ConnectionError),
    #[error("handshake did not finish within {0:?} (gateway.timeouts.handshake)")]
    Timeout(Duration),
}

/// Jittered exponential backoff: each delay is drawn from [base/2, base], base doubles up to max.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    base: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            base: initial,
        }
    }

    pub fn next(&mut self, rng: &mut impl Rng) -> Duration {
        let d = self.base.mul_f64(rng.random_range(0.5..=1.0));
        self.base = (self.base * 2).min(self.max);
        d
    }

    pub fn reset(&mut self) {
        self.base = self.initial;
    }
}

pub async fn run(shared: Arc<Shared>, peer: Arc<PeerConn>) {
    let span = tracing::info_span!("peer", cluster = %peer.cluster, addr = %peer.addr);
    async move {
        let p = &shared.cfg.connections;
        let mut backoff = Backoff::new(p.backoff_initial, p.backoff_max);
        while !peer.cancelled().is_cancelled() && !shared.shutdown.is_cancelled() {
            match dial(&shared, &peer).await {
                Ok(conn) => {
                    backoff.reset();
                    hold(&shared, &peer, conn).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "dialling peer gateway failed");
                    handshake_metric(&shared, &peer, "failed");
                    shared.pool.refresh_ejected(&shared, &peer.cluster);
                }
            }
            let delay = backoff.next(&mut rand::rng());
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = peer.cancelled().cancelled() => {}
                () = shared.shutdown.cancelled() => {}
            }
        }
        shared.pool.publish(&peer, None);
    }
    .instrument(span)
    .await
}

async fn dial(shared: &Shared, peer: &PeerConn) -> Result<Connection, DialError> {
    let cc = endpoint::client_config(&shared.cfg, &shared.id, &peer.cluster)?;
    let name = shared
        .id
        .server_name(&peer.cluster)
        .ok_or(DialError::NoTrust)?;
    let connecting = shared.endpoint.connect_with(cc, peer.addr, &name)?;
    let limit = shared.cfg.timeouts.handshake;
    match tokio::time::timeout(limit, connecting).await {
        Ok(res) => Ok(res?),
        Err(_) => Err(DialError::Timeout(limit)),
    }
}

/// Publishes the connection, keeps its stats fresh, and handles its end.
async fn hold(shared: &Shared, peer: &PeerConn, conn: Connection) {
    tracing::info!("connected to peer gateway");
    handshake_metric(shared, peer, "ok");
    let labels = PeerLabels {
        cluster: peer.cluster.to_string(),
        address: peer.addr.to_string(),
    };
    shared.pool.publish(peer, Some(conn.clone()));
    shared.metrics.peer_connected.get_or_create(&labels).set(1);
    let mut stats = crate::stats::Tracker::new(shared.metrics.clone(), labels.clone());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let reason = loop {
        tokio::select! {
            r = conn.closed() => break Some(r),
            _ = tick.tick() => {
                stats.update(&conn);
                shared.pool.refresh_ejected(shared, &peer.cluster);
            }
            () = peer.cancelled().cancelled() => break None,
        }
    };
    shared.pool.publish(peer, None);
    shared.metrics.peer_connected.get_or_create(&labels).set(0);
    stats.update(&conn);
    match reason {
        None => conn.close(0u32.into(), b"peer removed"),
        Some(ConnectionError::ApplicationClosed(c)) if c.error_code == CLOSE_DRAINING => {
            // The peer asked us to go elsewhere: not a failure, no ejection.
            tracing::info!("peer gateway is draining");
        }
        Some(e) => {
            tracing::warn!(error = %e, "connection to peer gateway lost");
            if !shared.pool.any_live(&peer.cluster) {
                shared.pool.connection_lost(shared, &peer.cluster);
            }
        }
    }
}

fn handshake_metric(shared: &Shared, peer: &PeerConn, result: &str) {
    shared
        .metrics
        .peer_handshakes
        .get_or_create(&ResultLabels {
            cluster: peer.cluster.to_string(),
            result: result.to_owned(),
        })
        .inc();
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_doubles_with_jitter_up_to_max_and_resets() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(100), ms(500));
        let got: Vec<Duration> = (0..5).map(|_| b.next(&mut rng)).collect();
        let bases = [100, 200, 400, 500, 500];
        for (d, base) in got.iter().zip(bases) {
            assert!(*d >= ms(base / 2) && *d <= ms(base), "{d:?} vs base {base}");
        }
        b.reset();
        assert!(b.next(&mut rng) <= ms(100));
    }
}
