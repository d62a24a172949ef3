//! `causeway run`: every component of one cluster in one process, plus the
//! admin endpoint. Shutdown is a protocol: SIGINT/SIGTERM cancels the token,
//! components drain until their deadline, then the process exits.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use crate::admin::{self, Admin, Readiness};
use crate::config::Config;
use crate::identities::Identities;

/// How often certificate files are checked for rotation.
const CERT_POLL: Duration = Duration::from_secs(1);

/// Runs until `shutdown` fires and every component has drained.
pub async fn run(cfg: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    causeway_identity::install_default_provider();
    let effective = serde_json::to_value(&cfg).context("serializing the effective config")?;
    info!(config = %effective, "starting causeway");
    let ids = Identities::load(&cfg)?;
    ids.gateway.spawn_watch(CERT_POLL);
    ids.federation.spawn_watch(CERT_POLL);

    let mut registry = Registry::with_prefix("causeway");
    let ready = Readiness::default();
    let tasks = TaskTracker::new();
    let admin_listener = admin::bind(cfg.admin.listen).await?;
    info!(addr = %admin_listener.local_addr()?, "admin listening");

    let admin = Admin::new(Arc::new(std::mem::take(&mut registry)), effective, ready);
    let stop = shutdown.clone();
    tasks.spawn(async move { admin.serve(admin_listener, stop).await });
    tasks.close();
    shutdown.cancelled().await;
    info!("shutting down");
    tasks.wait().await;
    Ok(())
}

/// Cancels `token` on SIGINT or SIGTERM.
pub fn cancel_on_signal(token: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => info!("SIGTERM received"),
            _ = int.recv() => info!("SIGINT received"),
        }
        token.cancel();
    });
    Ok(())
}
