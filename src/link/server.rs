//! The link endpoint, served by the process that runs the federation:
//! redeems tokens (no client certificate), and takes unlink requests from
//! linked peers (their federation certificate). Bounded: a
//! few connections at a time, one request each, a deadline on the whole
//! exchange, and at most [`REDEEMS_PER_MINUTE`] redemptions a minute from
//! one address ([`REDEEMS_PER_MINUTE_ALL`] from all).

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use causeway_catalog::ClusterId;
use causeway_federation::AcceptLimit;
use causeway_identity::{PeerSet, ReloadingCert, Workload};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::store::{LinkedPeer, Store};
use super::token::now_unix;
use super::wire::{self, Card, Hello, Request, Response};

/// Redemption attempts allowed per minute from one source address, right or wrong.
pub const REDEEMS_PER_MINUTE: usize = 10;
/// Redemption attempts allowed per minute from all sources together.
pub const REDEEMS_PER_MINUTE_ALL: usize = 60;
/// The whole exchange, TLS handshake included.
const DEADLINE: Duration = Duration::from_secs(10);

/// At most `per_source` events from one address, and `overall` from all, in
/// any `window`: one guesser cannot lock out a genuine redeemer elsewhere,
/// and many together are still bounded.
#[derive(Debug)]
pub struct Limiter {
    window: Duration,
    per_source: usize,
    overall: usize,
    recent: VecDeque<(Instant, IpAddr)>,
}

impl Limiter {
    pub fn new(per_source: usize, overall: usize, window: Duration) -> Self {
        Self {
            window,
            per_source,
            overall,
            recent: VecDeque::new(),
        }
    }

    /// Counts an event from `source` at `now` if the limits allow it.
    pub fn allow(&mut self, source: IpAddr, now: Instant) -> bool {
        while self
            .recent
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) >= self.window)
        {
            self.recent.pop_front();
        }
        let from_source = self.recent.iter().filter(|(_, s)| *s == source).count();
        if self.recent.len() >= self.overall || from_source >= self.per_source {
            return false;
        }
        self.recent.push_back((now, source));
        true
    }
}

/// What the endpoint needs.
pub struct Endpoint {
    pub store: Store,
    /// This cluster as peers see it (its CA bundle is re-read per request).
    pub card: Card,
    pub ca_path: std::path::PathBuf,
    /// Peers from causeway.yaml: never linked or unlinked here.
    pub static_peers: Vec<ClusterId>,
    /// Every peer trusted now; identifies a client certificate.
    pub peers: Arc<PeerSet>,
    /// Wakes the linker after a change to the store.
    pub changed: Arc<Notify>,
    pub limiter: Mutex<Limiter>,
    /// One change to the store at a time (shared with the linker).
    pub busy: Arc<Mutex<()>>,
    /// Kubernetes mode: `store` is this Secret's scratch copy; each request
    /// runs on fresh files and its changes are written back.
    pub secret: Option<Arc<super::kube_store::SecretStore>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn refused(reason: impl ToString) -> Response {
    Response::Refused {
        reason: reason.to_string(),
    }
}

/// Serves the endpoint on `listener` until `shutdown`.
pub fn spawn(
    ep: Endpoint,
    listener: TcpListener,
    cert: Arc<ReloadingCert>,
    tasks: &TaskTracker,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut tls =
        causeway_identity::link_server_config(cert, ep.peers.clone(), Workload::Federation)?;
    tls.alpn_protocols = vec![wire::ALPN.to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let (ep, limit, t) = (
        Arc::new(ep),
        Arc::new(AcceptLimit::new(16, 4)),
        tasks.clone(),
    );
    tasks.spawn(async move {
        loop {
            let (tcp, remote) = tokio::select! {
                _ = shutdown.cancelled() => return,
                a = listener.accept() => match a {
                    Ok(a) => a,
                    Err(e) => { tracing::warn!(error = %e, "link accept failed"); continue; }
                },
            };
            let Ok(slot) = limit.try_admit(remote.ip()) else {
                continue;
            };
            let (ep, acceptor) = (ep.clone(), acceptor.clone());
            t.spawn(async move {
                match tokio::time::timeout(DEADLINE, ep.serve(acceptor, tcp, remote.ip())).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::info!(%remote, error = %e, "link request failed"),
                    Err(_) => tracing::info!(%remote, "link request timed out"),
                }
                drop(slot);
            });
        }
    });
    Ok(())
}

impl Endpoint {
    async fn serve(
        &self,
        acceptor: TlsAcceptor,
        tcp: TcpStream,
        source: IpAddr,
    ) -> Result<(), wire::WireError> {
        let mut tls = acceptor.accept(tcp).await?;
        let client = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|leaf| self.peers.identify(leaf))
            .map(|(cluster, _)| cluster);
        let hello = Hello {
            cluster: self.card.cluster.clone(),
            trust_domain: self.card.trust_domain.clone(),
            ca_bundle: std::fs::read_to_string(&self.ca_path)?,
        };
        wire::send(&mut tls, &hello).await?;
        let request = wire::recv(&mut tls).await?;
        // Counted once here: a Secret write may run the handler again on a conflict.
        let limited = matches!(request, Request::Redeem { .. })
            && !lock(&self.limiter).allow(source, Instant::now());
        let response = match &self.secret {
            _ if limited => refused("too many link attempts; try again in a minute"),
            None => self.handle(request, client, hello),
            Some(s) => s
                .write(|_| self.handle(request.clone(), client.clone(), hello.clone()))
                .await
                .unwrap_or_else(|e| {
                    tracing::error!(error = %e, "cannot save a link change");
                    refused(e)
                }),
        };
        wire::send(&mut tls, &response).await?;
        tls.shutdown().await?;
        Ok(())
    }

    fn handle(&self, request: Request, client: Option<ClusterId>, hello: Hello) -> Response {
        match request {
            Request::Redeem { id, secret, card } => self.redeem(&id, &secret, card, hello),
            Request::Unlink => self.unlink(client),
        }
    }

    fn redeem(&self, id: &str, secret: &str, card: Card, hello: Hello) -> Response {
        let _busy = lock(&self.busy);
        if let Err(r) = self.store.check(id, secret, now_unix()) {
            tracing::warn!(cluster = %card.cluster, "refused a link token: {r}");
            return refused(r);
        }
        // Vetted before the token is used up: a refused link leaves it redeemable.
        if let Err(why) = self.vet(&card) {
            tracing::warn!(cluster = %card.cluster, "refused a link: {why}");
            return refused(why);
        }
        if let Err(e) = self.store.consume(id) {
            tracing::error!(error = %e, "cannot mark the token redeemed; refusing it");
            return refused(super::store::Refusal::Refused);
        }
        let peer = LinkedPeer::from_card(&card);
        if let Err(e) = self.store.add(peer, card.ca_bundle.as_bytes()) {
            tracing::error!(error = %e, "cannot record the linked peer");
            return refused(format!("{} cannot record the link: {e}", self.card.cluster));
        }
        self.changed.notify_one();
        tracing::info!(peer = %card.cluster, "linked by token");
        Response::Linked {
            card: Card {
                ca_bundle: hello.ca_bundle,
                ..self.card.clone()
            },
        }
    }

    /// Whether the redeemer can be a linked peer: writes nothing.
    fn vet(&self, card: &Card) -> Result<(), String> {
        let name = &card.cluster;
        if *name == self.card.cluster {
            return Err(format!("{name} cannot link to itself"));
        }
        let taken = self.static_peers.contains(name)
            || self.peers.get(name).is_some()
            || self.peers.by_trust_domain(&card.trust_domain).is_some();
        if taken {
            return Err(format!(
                "{name} (or trust domain {}) is already a peer of {}; unlink it first",
                card.trust_domain, self.card.cluster
            ));
        }
        for (key, addr) in [("federation", &card.federation), ("link", &card.link)] {
            if !super::is_host_port(addr) {
                return Err(format!("{key} address {addr:?} is not host:port"));
            }
        }
        super::usable_bundle(name, &card.trust_domain, card.ca_bundle.as_bytes())
            .map_err(|e| format!("the CA bundle of {name} is not usable: {e}"))
    }

    /// The linked peer `client` authenticated as, if any.
    fn linked(&self, client: Option<ClusterId>) -> Result<LinkedPeer, String> {
        let name = client.ok_or("this request needs a linked peer's federation certificate")?;
        let links = self.store.links().map_err(|e| e.to_string())?;
        links.peers.into_iter().find(|p| p.name == name).ok_or_else(|| {
            format!(
                "{name} is configured in {}'s causeway.yaml, not linked by token; remove it from peers: there",
                self.card.cluster
            )
        })
    }

    fn unlink(&self, client: Option<ClusterId>) -> Response {
        let _busy = lock(&self.busy);
        let peer = match self.linked(client) {
            Ok(p) => p,
            Err(why) => return refused(why),
        };
        if let Err(e) = self.store.remove(&peer.name) {
            return refused(e);
        }
        self.changed.notify_one();
        tracing::info!(peer = %peer.name, "unlinked at the peer's request");
        Response::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_allows_max_per_source_then_recovers() {
        let mut l = Limiter::new(3, 5, Duration::from_secs(60));
        let (a, b): (IpAddr, IpAddr) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        let t0 = Instant::now();
        assert!((0..3).all(|i| l.allow(a, t0 + Duration::from_secs(i))));
        assert!(!l.allow(a, t0 + Duration::from_secs(30)));
        assert!(!l.allow(a, t0 + Duration::from_secs(59)));
        // Another source is not locked out by the first one's guessing.
        assert!(l.allow(b, t0 + Duration::from_secs(59)));
        assert!(l.allow(a, t0 + Duration::from_secs(60)));
    }

    #[test]
    fn the_limiter_bounds_all_sources_together() {
        let mut l = Limiter::new(3, 5, Duration::from_secs(60));
        let t0 = Instant::now();
        let allowed = (0u8..10)
            .filter(|i| l.allow([10, 0, 0, *i].into(), t0))
            .count();
        assert_eq!(allowed, 5);
        assert!(l.allow([10, 0, 0, 99].into(), t0 + Duration::from_secs(60)));
    }
}
