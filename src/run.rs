//! `causeway run`: every component of one cluster in one process, plus the
//! admin endpoint. Shutdown is a protocol: SIGINT/SIGTERM cancels the token,
//! components drain until their deadline, then the process exits.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::routing::get;
use causeway_catalog::ClusterInfo;
use causeway_dns::DnsServer;
use causeway_federation::{Federation, FederationInputs, PeerEndpoint};
use causeway_gateway::{Gateway, GatewayInputs};
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

    let fed = Arc::new(start_federation(&cfg, &ids, &mut registry, &shutdown).await?);
    info!(addr = %fed.listen_addr(), "federation listening");
    let dns = DnsServer::bind(&cfg.dns, fed.catalog(), &mut registry).await?;
    info!(addr = %dns.local_addr()?, "dns listening");
    tasks.spawn(dns.run(shutdown.clone()));
    let f = fed.clone();
    tasks.spawn(async move { f.closed().await });
    let gw = Gateway::bind(gateway_inputs(&cfg, &ids, &fed, &shutdown)?, &mut registry).await?;
    info!(addr = %gw.local_addr()?, "gateway listening");
    tasks.spawn(gw.run());

    let admin_listener = admin::bind(cfg.admin.listen).await?;
    info!(addr = %admin_listener.local_addr()?, "admin listening");
    let admin = Admin::new(Arc::new(registry), effective, ready.clone());
    let admin = with_federation_routes(admin, &fed);
    tasks.spawn(admin.serve(admin_listener, shutdown.clone()));
    ready.register("causeway").set(true);

    tasks.close();
    shutdown.cancelled().await;
    info!("shutting down");
    tasks.wait().await;
    Ok(())
}

async fn start_federation(
    cfg: &Config,
    ids: &Identities,
    registry: &mut Registry,
    shutdown: &CancellationToken,
) -> anyhow::Result<Federation> {
    let peers = ids
        .peers
        .iter()
        .zip(&cfg.peers)
        .map(|(trust, p)| PeerEndpoint {
            trust: trust.clone(),
            addr: p.federation.clone(),
        })
        .collect();
    let inputs = FederationInputs {
        cfg: cfg.federation.clone(),
        source: cfg.source.clone(),
        local: local_info(cfg)?,
        cert: ids.federation.clone(),
        peers,
        vip_ranges: cfg.gateway.vip_ranges.clone(),
        shutdown: shutdown.clone(),
    };
    Ok(Federation::start(inputs, registry).await?)
}

fn gateway_inputs(
    cfg: &Config,
    ids: &Identities,
    fed: &Federation,
    shutdown: &CancellationToken,
) -> anyhow::Result<GatewayInputs> {
    Ok(GatewayInputs {
        cfg: cfg.gateway.clone(),
        local: local_info(cfg)?,
        cert: ids.gateway.clone(),
        peers: ids.peer_set.clone(),
        catalog: fed.catalog(),
        local_exports: fed.local_exports(),
        shutdown: shutdown.clone(),
    })
}

/// This cluster as peers see it.
pub fn local_info(cfg: &Config) -> anyhow::Result<ClusterInfo> {
    Ok(ClusterInfo {
        name: cfg.cluster.name.clone(),
        region: cfg.cluster.region.clone(),
        zone: cfg.cluster.zone.clone(),
        trust_domain: cfg.cluster.trust_domain()?.to_string(),
        gateways: cfg.gateway.advertised(),
    })
}

/// `/v1/catalog` and `/v1/peers`, served from the federation's published state.
fn with_federation_routes(admin: Admin, fed: &Arc<Federation>) -> Admin {
    let catalog = fed.catalog();
    let f = fed.clone();
    admin
        .route(
            "/v1/catalog",
            get(move || {
                let json = serde_json::to_value(&**catalog.borrow());
                async move { json.map(axum::Json).map_err(|e| e.to_string()) }
            }),
        )
        .route(
            "/v1/peers",
            get(move || {
                let peers = f.peers_status();
                async move { axum::Json(peers) }
            }),
        )
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
