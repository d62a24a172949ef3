//! The local `WatchCatalog` API: the merged catalog and this cluster's
//! exports for a gateway or DNS process running apart from the federation,
//! and the client that follows it.
//!
//! The gateway takes its local exports (which endpoints peers may reach)
//! from this feed, so both ends authenticate: the server accepts only this
//! cluster's own gateway and DNS certificates (`spiffe://<td>/gateway`,
//! `/dns`, chained to this cluster's CA), and the client accepts only this
//! cluster's federation (`spiffe://<td>/federation`).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use causeway_catalog::{CatalogSnapshot, Export};
use causeway_policy::Policies;
use futures::Stream;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status};

use crate::policy_feed;
use crate::proto::{self, catalog_watch_client::CatalogWatchClient};
use crate::transport::PeerConnector;

/// Largest catalog message either side accepts.
pub const MAX_CATALOG_MESSAGE: usize = 64 * 1024 * 1024;

pub struct WatchService {
    pub catalog: watch::Receiver<Arc<CatalogSnapshot>>,
    pub local_exports: watch::Receiver<Arc<Vec<Export>>>,
    /// The TrafficPolicies in force, for the gateway.
    pub policies: watch::Receiver<Arc<Policies>>,
    /// Only the leader serves (its ClusterSetIPs are the ones in the derived
    /// Services); a follower refuses, and ends its streams when it stops leading,
    /// so clients behind one Service retry until they reach the leader.
    pub leading: watch::Receiver<bool>,
    pub tasks: TaskTracker,
    pub shutdown: CancellationToken,
}

type CatalogStream = Pin<Box<dyn Stream<Item = Result<proto::Catalog, Status>> + Send>>;

#[tonic::async_trait]
impl proto::catalog_watch_server::CatalogWatch for WatchService {
    type WatchCatalogStream = CatalogStream;

    async fn watch_catalog(
        &self,
        _: Request<proto::WatchRequest>,
    ) -> Result<Response<Self::WatchCatalogStream>, Status> {
        if !*self.leading.borrow() {
            return Err(not_leader());
        }
        // One message in flight: a slow watcher skips to the newest catalog.
        let (tx, rx) = mpsc::channel(1);
        let (mut catalog, shutdown) = (self.catalog.clone(), self.shutdown.clone());
        let (mut local, mut leading) = (self.local_exports.clone(), self.leading.clone());
        let mut policies = self.policies.clone();
        self.tasks.spawn(async move {
            loop {
                let msg = encode(
                    &catalog.borrow_and_update(),
                    &local.borrow_and_update(),
                    &policies.borrow_and_update(),
                );
                if tx.send(msg).await.is_err() {
                    return;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tx.closed() => return,
                    r = catalog.changed() => if r.is_err() { return },
                    r = local.changed() => if r.is_err() { return },
                    r = policies.changed() => if r.is_err() { return },
                    _ = lost(&mut leading) => {
                        let _ = tx.send(Err(not_leader())).await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Completes when this replica stops leading; never when nothing elects
/// (the sender is gone while this replica serves).
async fn lost(leading: &mut watch::Receiver<bool>) {
    if leading.wait_for(|l| !*l).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn not_leader() -> Status {
    Status::unavailable("this federation replica does not lead; reconnect to reach the leader")
}

fn encode(
    catalog: &CatalogSnapshot,
    local: &[Export],
    policies: &Policies,
) -> Result<proto::Catalog, Status> {
    let err = |e: serde_json::Error| Status::internal(format!("cannot encode the catalog: {e}"));
    Ok(proto::Catalog {
        json: serde_json::to_vec(catalog).map_err(err)?,
        local_exports_json: serde_json::to_vec(local).map_err(err)?,
        policies_json: policy_feed::encode(policies).map_err(err)?,
    })
}

/// What a component run apart from the federation follows.
pub struct RemoteCatalog {
    pub catalog: watch::Receiver<Arc<CatalogSnapshot>>,
    pub local_exports: watch::Receiver<Arc<Vec<Export>>>,
    /// The federation's TrafficPolicies in force; a message whose policies
    /// are not valid leaves the last good ones.
    pub policies: watch::Receiver<Arc<Policies>>,
}

/// Where and how to reach the federation's `WatchCatalog` endpoint.
#[derive(Clone)]
pub struct WatchTarget {
    /// host:port
    pub addr: String,
    /// From `causeway_identity::client_config(our cert, this cluster's own
    /// trust, Workload::Federation)`.
    pub tls: rustls::ClientConfig,
    /// This cluster's trust domain (the server name the client sends).
    pub trust_domain: String,
}

/// Follows the `WatchCatalog` endpoint at `target` until `shutdown`,
/// reconnecting with backoff; the receivers start empty and hold the newest values.
pub fn watch_remote(target: WatchTarget, shutdown: CancellationToken) -> RemoteCatalog {
    let addr = target.addr.clone();
    let (tx, catalog) = watch::channel(Arc::default());
    let (local_tx, local_exports) = watch::channel(Arc::default());
    let (policies_tx, policies) = watch::channel(Arc::default());
    let txs = Senders {
        catalog: tx,
        local: local_tx,
        policies: policies_tx,
    };
    tokio::spawn(async move {
        let mut wait = Duration::from_millis(100);
        loop {
            let mut got_any = false;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                r = follow(&target, &txs, &mut got_any) => if let Err(e) = r {
                    tracing::warn!(%addr, "catalog watch: {e}; retrying");
                },
            }
            if got_any {
                wait = Duration::from_millis(100);
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(Duration::from_secs(5));
        }
    });
    RemoteCatalog {
        catalog,
        local_exports,
        policies,
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    #[error("cannot connect: {0}")]
    Connect(#[from] tonic::transport::Error),
    #[error(
        "{0:?} is not a usable server name (it is this cluster's trust domain, from cluster.name and cluster.clusterset)"
    )]
    ServerName(String),
    #[error("stream failed: {0}")]
    Stream(#[from] Status),
    #[error("the catalog is not valid JSON: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("the federation ended the stream")]
    Ended,
}

struct Senders {
    catalog: watch::Sender<Arc<CatalogSnapshot>>,
    local: watch::Sender<Arc<Vec<Export>>>,
    policies: watch::Sender<Arc<Policies>>,
}

async fn follow(target: &WatchTarget, txs: &Senders, got_any: &mut bool) -> Result<(), WatchError> {
    let timeout = Duration::from_secs(5);
    let connector = PeerConnector::new(
        target.addr.clone(),
        target.tls.clone(),
        &target.trust_domain,
        timeout,
    )
    .map_err(|_| WatchError::ServerName(target.trust_domain.clone()))?;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", target.addr))?
        .connect_timeout(timeout)
        // The stream is quiet while nothing changes: pings find a dead peer.
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true)
        .connect_with_connector(connector)
        .await?;
    let mut client =
        CatalogWatchClient::new(channel).max_decoding_message_size(MAX_CATALOG_MESSAGE);
    let mut stream = client
        .watch_catalog(proto::WatchRequest {})
        .await?
        .into_inner();
    while let Some(msg) = stream.message().await? {
        let catalog: CatalogSnapshot = serde_json::from_slice(&msg.json)?;
        let local: Vec<Export> = serde_json::from_slice(&msg.local_exports_json)?;
        take_policies(&msg.policies_json, &txs.policies);
        txs.catalog.send_replace(Arc::new(catalog));
        txs.local.send_replace(Arc::new(local));
        *got_any = true;
    }
    Err(WatchError::Ended)
}

/// Publishes the policies in `json` when valid and different; keeps the
/// last good ones otherwise.
fn take_policies(json: &[u8], tx: &watch::Sender<Arc<Policies>>) {
    match policy_feed::decode(json) {
        Ok(new) => {
            tx.send_if_modified(|cur| {
                let changed = **cur != new;
                if changed {
                    tracing::info!(count = new.len(), "policies from the federation changed");
                    *cur = Arc::new(new);
                }
                changed
            });
        }
        Err(e) => tracing::error!(
            error = %e,
            "the federation sent policies that are not valid; the last good ones stay in force"
        ),
    }
}
