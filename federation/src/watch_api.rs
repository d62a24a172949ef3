//! The local `WatchCatalog` API: the merged catalog for a gateway or DNS
//! process running apart from the federation, over plaintext gRPC on a
//! loopback address, and the client that follows it.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use causeway_catalog::CatalogSnapshot;
use futures::Stream;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status};

use crate::proto::{self, catalog_watch_client::CatalogWatchClient};

/// Largest catalog message either side accepts.
pub const MAX_CATALOG_MESSAGE: usize = 64 * 1024 * 1024;

pub struct WatchService {
    pub catalog: watch::Receiver<Arc<CatalogSnapshot>>,
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
        // One message in flight: a slow watcher skips to the newest catalog.
        let (tx, rx) = mpsc::channel(1);
        let (mut catalog, shutdown) = (self.catalog.clone(), self.shutdown.clone());
        self.tasks.spawn(async move {
            loop {
                let json = serde_json::to_vec(&**catalog.borrow_and_update())
                    .map_err(|e| Status::internal(format!("cannot encode the catalog: {e}")));
                if tx
                    .send(json.map(|json| proto::Catalog { json }))
                    .await
                    .is_err()
                {
                    return;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tx.closed() => return,
                    r = catalog.changed() => if r.is_err() { return },
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Follows the `WatchCatalog` endpoint at `addr` until `shutdown`, reconnecting
/// with backoff; the receiver starts empty and holds the newest catalog.
pub fn watch_remote(
    addr: SocketAddr,
    shutdown: CancellationToken,
) -> watch::Receiver<Arc<CatalogSnapshot>> {
    let (tx, rx) = watch::channel(Arc::default());
    tokio::spawn(async move {
        let mut wait = Duration::from_millis(100);
        loop {
            let mut got_any = false;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                r = follow(addr, &tx, &mut got_any) => if let Err(e) = r {
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
    rx
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    #[error("cannot connect: {0}")]
    Connect(#[from] tonic::transport::Error),
    #[error("stream failed: {0}")]
    Stream(#[from] Status),
    #[error("the catalog is not valid JSON: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("the federation ended the stream")]
    Ended,
}

async fn follow(
    addr: SocketAddr,
    tx: &watch::Sender<Arc<CatalogSnapshot>>,
    got_any: &mut bool,
) -> Result<(), WatchError> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(5))
        // The stream is quiet while nothing changes: pings find a dead peer.
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true)
        .connect()
        .await?;
    let mut client =
        CatalogWatchClient::new(channel).max_decoding_message_size(MAX_CATALOG_MESSAGE);
    let mut stream = client
        .watch_catalog(proto::WatchRequest {})
        .await?
        .into_inner();
    while let Some(msg) = stream.message().await? {
        let catalog: CatalogSnapshot = serde_json::from_slice(&msg.json)?;
        tx.send_replace(Arc::new(catalog));
        *got_any = true;
    }
    Err(WatchError::Ended)
}
