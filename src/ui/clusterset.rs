//! The page for a whole clusterset (`causeway dev up`): every cluster's
//! `/v1/status`, read each push, drawn as one topology. A cluster whose admin
//! does not answer is down, and so are its links.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::Redirect;
use axum::routing::get;
use futures::FutureExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::events::{Events, Source};
use crate::status::{ClusterStatus, collect_within};

/// Per cluster and push: short, so a hung cluster does not hold the page for
/// long, yet long enough that a busy one is not drawn down. A dead process
/// refuses the connection at once.
const LIMIT: Duration = Duration::from_millis(1500);

/// Every cluster's status, read concurrently.
pub async fn poll(clusters: &[(String, SocketAddr)]) -> Vec<ClusterStatus> {
    let reads = clusters
        .iter()
        .map(|(name, admin)| collect_within(name, *admin, LIMIT));
    futures::future::join_all(reads).await
}

/// Serves `/ui` and `/ui/events` for `clusters` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    clusters: Vec<(String, SocketAddr)>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let clusters = Arc::new(clusters);
    let source: Source = Arc::new(move || {
        let c = clusters.clone();
        async move { poll(&c).await }.boxed()
    });
    let app = Router::new()
        .route("/", get(|| async { Redirect::to("/ui") }))
        .route("/ui", get(|| async { super::page() }))
        .route_service("/ui/events", Events::new(source, shutdown.clone()).route())
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

#[cfg(test)]
#[path = "clusterset_tests.rs"]
mod tests;
