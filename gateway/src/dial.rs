//! The dialler of one peer gateway address: connect, hold, re-dial with backoff.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::{Connection, ConnectionError};
use rand::Rng;
use tracing::Instrument;

use crate::endpoint::{self, EndpointError};
use crate::fallback::{FallbackError, Via};
use crate::liveness::{Heard, Liveness};
use crate::metrics::ResultLabels;
use crate::pool::PeerConn;
use crate::protocol::{CLOSE_DRAINING, CLOSE_REPLACED};
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
    #[error("no QUIC handshake, and the fallback over TCP failed: {0}")]
    Fallback(#[from] FallbackError),
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
    let span =
        tracing::info_span!("peer", cluster = %peer.cluster, addr = %peer.addr, slot = peer.slot);
    async move {
        let p = &shared.cfg.connections;
        let mut backoff = Backoff::new(p.backoff_initial, p.backoff_max);
        while !peer.cancelled().is_cancelled() && !shared.shutdown.is_cancelled() {
            match crate::fallback::connect(&shared, &peer).await {
                Ok((mut conn, mut via)) => {
                    backoff.reset();
                    handshake_metric(&shared, &peer, "ok");
                    while let Some(next) = hold(&shared, &peer, conn, via).await {
                        (conn, via) = next;
                    }
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
        shared.fallback.export(&shared, &peer.cluster);
    }
    .instrument(span)
    .await
}

/// One QUIC handshake with `peer`, given `limit` to finish.
pub async fn dial(
    shared: &Shared,
    peer: &PeerConn,
    limit: Duration,
) -> Result<Connection, DialError> {
    let cc = endpoint::client_config(&shared.cfg, &shared.id, &peer.cluster, peer.worker)?;
    let name = shared
        .id
        .server_name(&peer.cluster)
        .ok_or(DialError::NoTrust)?;
    let client = &shared.endpoints[peer.worker % shared.endpoints.len()].client;
    let connecting = client.connect_with(cc, peer.addr, &name)?;
    match tokio::time::timeout(limit, connecting).await {
        Ok(res) => Ok(res?),
        Err(_) => Err(DialError::Timeout(limit)),
    }
}

/// Longest and shortest time between liveness checks of a held connection.
/// Each check wakes the worker: checking every 50 ms tripled the p99 of 64-byte
/// round trips on the other connections of a loaded 2-core host. So a check
/// comes every 150 ms, closer together only just before silence would turn
/// the connection suspect (suspicion comes at most ~200 ms late).
const CHECK_MAX: Duration = Duration::from_millis(150);
const CHECK_MIN: Duration = Duration::from_millis(50);
/// How often its stats are exported and its send rate sampled.
const SAMPLE: Duration = Duration::from_secs(1);

/// Why holding a connection ended.
enum End {
    Closed(ConnectionError),
    Removed,
    /// The peer answered a new connection while this one stayed silent.
    Replaced((Connection, Via)),
}

/// Publishes the connection, watches its liveness and stats, and handles its
/// end. Returns a replacement connection to hold next, if one took over (on
/// TCP: QUIC works again).
async fn hold(
    shared: &Shared,
    peer: &PeerConn,
    conn: Connection,
    via: Via,
) -> Option<(Connection, Via)> {
    tracing::info!(transport = via.as_str(), "connected to peer gateway");
    let labels = peer.labels();
    shared.pool.publish_via(peer, Some(conn.clone()), via);
    shared.fallback.export(shared, &peer.cluster);
    shared.metrics.peer_connected.get_or_create(&labels).set(1);
    let mut stats = crate::stats::Tracker::new(shared.metrics.clone(), labels.clone());
    stats.controller(&conn);
    stats.update(&conn);
    let end = watch(shared, peer, &conn, via, &mut stats).await;
    shared.pool.publish(peer, None);
    shared.fallback.export(shared, &peer.cluster);
    shared.metrics.peer_connected.get_or_create(&labels).set(0);
    stats.update(&conn);
    match end {
        End::Removed => conn.close(0u32.into(), b"peer removed"),
        End::Replaced(next) if via == Via::Tcp && next.1 == Via::Quic => {
            // Open streams finish on TCP: the connection closes with its last one.
            tracing::info!("QUIC to the peer gateway works again; new streams move to it");
            return Some(next);
        }
        End::Replaced(next) => {
            tracing::warn!(
                transport = next.1.as_str(),
                "peer answered a new connection while this one stayed silent (restarted?); replacing it"
            );
            conn.close(CLOSE_REPLACED, b"replaced");
            return Some(next);
        }
        End::Closed(ConnectionError::ApplicationClosed(c)) if c.error_code == CLOSE_DRAINING => {
            // The peer asked us to go elsewhere: not a failure, no ejection.
            tracing::info!("peer gateway is draining");
        }
        End::Closed(e) => {
            tracing::warn!(error = %e, "connection to peer gateway lost");
            if !shared.pool.any_live(&peer.cluster) {
                shared.pool.connection_lost(shared, &peer.cluster);
            }
        }
    }
    None
}

/// Watches a held connection until it closes, is removed, or is replaced.
/// Silence makes it suspect (no new streams); long silence dials a
/// replacement, which takes over only if this one is still silent when the
/// peer has answered the new handshake.
async fn watch(
    shared: &Shared,
    peer: &PeerConn,
    conn: &Connection,
    via: Via,
    stats: &mut crate::stats::Tracker,
) -> End {
    let cfg = &shared.cfg.connections;
    let tcp = via == Via::Tcp;
    let every = shared.cfg.fallback.reprobe;
    let mut reprobe = std::pin::pin!(tokio::time::sleep(every));
    let mut live = Liveness::new(cfg.liveness, cfg.keep_alive, Instant::now());
    let flows = shared.udp.of(conn, &shared.udp_metrics);
    let label = crate::metrics::ClusterLabel {
        cluster: peer.cluster.to_string(),
    };
    let answers = shared
        .metrics
        .peer_probe_answers
        .get_or_create(&label)
        .clone();
    let mut counted = 0;
    let mut check = std::pin::pin!(tokio::time::sleep(CHECK_MAX));
    let mut sampled = Instant::now();
    let mut replacing: Option<Dialling<'_>> = None;
    loop {
        tokio::select! {
            e = conn.closed() => return End::Closed(e),
            () = peer.cancelled().cancelled() => return End::Removed,
            r = poll_opt(&mut replacing) => {
                replacing = None;
                match r {
                    Ok(next) if peer.is_suspect() || tcp => return End::Replaced(next),
                    Ok((next, _)) => next.close(CLOSE_REPLACED, b"not needed"),
                    Err(e) => tracing::info!(error = %e, "replacement dial for a silent connection failed"),
                }
            }
            () = reprobe.as_mut(), if tcp && replacing.is_none() => {
                reprobe.as_mut().reset(tokio::time::Instant::now() + every);
                replacing = Some(Box::pin(crate::fallback::reprobe(shared, peer)));
            }
            () = check.as_mut() => {
                let now = Instant::now();
                let s = conn.stats();
                let heard = Heard {
                    received: s.udp_rx.datagrams,
                    answered: flows.answered(),
                };
                answers.inc_by(heard.answered - counted);
                counted = heard.answered;
                let suspect = live.observe(heard, s.path.rtt, now);
                if live.wants_probe(now) && crate::udp::probe(conn) {
                    live.probed(now);
                }
                if suspect != peer.is_suspect() {
                    tracing::warn!(suspect, quiet = ?live.quiet(now), "peer connection liveness changed");
                    shared.pool.set_suspect(peer, suspect);
                    shared.fallback.export(shared, &peer.cluster);
                }
                stats.suspect(suspect);
                let next = live.until_suspect(now).clamp(CHECK_MIN, CHECK_MAX);
                check.as_mut().reset(tokio::time::Instant::now() + next);
                if live.wants_replacement(now) && replacing.is_none() {
                    // UDP may have been cut: this dial falls back to TCP.
                    replacing = Some(Box::pin(crate::fallback::connect(shared, peer)));
                }
                if now - sampled >= SAMPLE {
                    peer.sample_rate((now - sampled).as_secs_f64());
                    sampled = now;
                    stats.update(conn);
                    shared.pool.refresh_ejected(shared, &peer.cluster);
                }
            }
        }
    }
}

type Dialled = Result<(Connection, Via), DialError>;
type Dialling<'a> = Pin<Box<dyn Future<Output = Dialled> + Send + 'a>>;

/// Awaits the dial in the slot; pending forever while the slot is empty.
async fn poll_opt(slot: &mut Option<Dialling<'_>>) -> Dialled {
    match slot {
        Some(f) => f.await,
        None => std::future::pending().await,
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
