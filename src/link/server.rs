//! The link endpoint, served by the process that runs the federation:
//! redeems tokens (no client certificate), and takes unlink and CA rotation
//! requests from linked peers (their federation certificate). Bounded: a
//! few connections at a time, one request each, a deadline on the whole
//! exchange, and at most [`REDEEMS_PER_MINUTE`] redemptions a minute.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use causeway_catalog::ClusterId;
use causeway_federation::AcceptLimit;
use causeway_identity::{PeerSet, PeerTrust, ReloadingCert, Workload};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::store::{LinkedPeer, Store};
use super::token::now_unix;
use super::wire::{self, Card, Hello, Request, Response};

/// Redemption attempts allowed per minute, right or wrong.
pub const REDEEMS_PER_MINUTE: usize = 10;
/// The whole exchange, TLS handshake included.
const DEADLINE: Duration = Duration::from_secs(10);
/// The longest CA rotation overlap a peer may ask for.
const MAX_OVERLAP: Duration = Duration::from_secs(30 * 24 * 3600);

/// At most `max` events in any `window`.
#[derive(Debug)]
pub struct Limiter {
    window: Duration,
    max: usize,
    recent: VecDeque<Instant>,
}

impl Limiter {
    pub fn new(max: usize, window: Duration) -> Self {
        Self {
            window,
            max,
            recent: VecDeque::new(),
        }
    }

    /// Counts an event at `now` if fewer than `max` happened in the window before it.
    pub fn allow(&mut self, now: Instant) -> bool {
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.max {
            return false;
        }
        self.recent.push_back(now);
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
                match tokio::time::timeout(DEADLINE, ep.serve(acceptor, tcp)).await {
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
    async fn serve(&self, acceptor: TlsAcceptor, tcp: TcpStream) -> Result<(), wire::WireError> {
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
        let response = match &self.secret {
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
            Request::RotateCa {
                ca_bundle,
                overlap_secs,
            } => self.rotate(client, ca_bundle, overlap_secs),
        }
    }

    fn redeem(&self, id: &str, secret: &str, card: Card, hello: Hello) -> Response {
        let _busy = lock(&self.busy);
        if !lock(&self.limiter).allow(Instant::now()) {
            return refused("too many link attempts; try again in a minute");
        }
        if let Err(r) = self.store.redeem(id, secret, now_unix()) {
            tracing::warn!(cluster = %card.cluster, "refused a link token: {r}");
            return refused(r);
        }
        if let Err(why) = self.accept(&card) {
            return refused(why);
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

    /// Records the redeemer as a linked peer, if it can be one.
    fn accept(&self, card: &Card) -> Result<(), String> {
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
        let peer = LinkedPeer {
            name: name.clone(),
            trust_domain: card.trust_domain.clone(),
            federation: card.federation.clone(),
            link: card.link.clone(),
            rotation_until: None,
        };
        self.store
            .add(peer, card.ca_bundle.as_bytes())
            .map_err(|e| e.to_string())?;
        let path = self.store.ca_path(name);
        if let Err(e) = PeerTrust::load(name.clone(), card.trust_domain.clone(), &path) {
            let _ = self.store.remove(name);
            return Err(format!("the CA bundle of {name} is not usable: {e}"));
        }
        Ok(())
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

    fn rotate(&self, client: Option<ClusterId>, bundle: String, overlap: u64) -> Response {
        let _busy = lock(&self.busy);
        let peer = match self.linked(client) {
            Ok(p) => p,
            Err(why) => return refused(why),
        };
        if let Err(why) = self.check_bundle(&peer, bundle.as_bytes()) {
            return refused(why);
        }
        let overlap = Duration::from_secs(overlap).min(MAX_OVERLAP).as_secs();
        let until = now_unix().saturating_add(overlap);
        if let Err(e) = self.store.rotate(&peer.name, bundle.as_bytes(), until) {
            return refused(e);
        }
        self.changed.notify_one();
        tracing::info!(peer = %peer.name, overlap, "CA rotation started: both bundles trusted until the overlap ends");
        Response::Done
    }

    fn check_bundle(&self, peer: &LinkedPeer, bundle: &[u8]) -> Result<(), String> {
        let mut tmp =
            tempfile::NamedTempFile::new_in(self.store.dir()).map_err(|e| e.to_string())?;
        std::io::Write::write_all(&mut tmp, bundle).map_err(|e| e.to_string())?;
        PeerTrust::load(peer.name.clone(), peer.trust_domain.clone(), tmp.path())
            .map(|_| ())
            .map_err(|e| format!("the new CA bundle is not usable: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_allows_max_per_window_then_recovers() {
        let mut l = Limiter::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        assert!((0..3).all(|i| l.allow(t0 + Duration::from_secs(i))));
        assert!(!l.allow(t0 + Duration::from_secs(30)));
        assert!(!l.allow(t0 + Duration::from_secs(59)));
        assert!(l.allow(t0 + Duration::from_secs(60)));
    }
}
