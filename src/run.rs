//! `causeway run` and the single-component commands: the components of one
//! cluster in one process, plus the admin endpoint. Shutdown is a protocol:
//! SIGINT/SIGTERM cancels the token, components drain until their deadline,
//! then the process exits.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::routing::get;
use causeway_catalog::{CatalogSnapshot, ClusterInfo, Export};
use causeway_dns::DnsServer;
use causeway_federation::{Federation, FederationInputs, PeerEndpoint, RemoteCatalog};
use causeway_gateway::{Gateway, GatewayInputs};
use causeway_identity::{PeerSet, PeerTrust, ReloadingCert, Workload};
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use crate::admin::{self, Admin, Readiness};
use crate::cert_metrics;
use crate::config::Config;
use crate::identities::{load_cert, load_own, load_peers, watch_target};
use crate::{policy_merge, policy_watch};
use causeway_policy::Policies;

/// How often certificate files are checked for rotation.
const CERT_POLL: Duration = Duration::from_secs(1);

/// Which components a process runs. The Helm chart runs them apart; `run` runs all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    All,
    Gateway,
    Federation,
    Dns,
}

impl Component {
    fn has(self, c: Component) -> bool {
        self == Component::All || self == c
    }
}

/// What the gateway and DNS follow: the federation's catalog, in-process or remote.
struct Feeds {
    catalog: watch::Receiver<Arc<CatalogSnapshot>>,
    local_exports: watch::Receiver<Arc<Vec<Export>>>,
    /// The TrafficPolicy objects in force (Kubernetes mode; empty otherwise).
    policies: watch::Receiver<Arc<Policies>>,
}

/// State shared while the process starts its components.
struct Start {
    cfg: Config,
    /// Our certificates in use, by workload, for the expiry metric.
    certs: Vec<(String, Arc<ReloadingCert>)>,
    registry: Registry,
    ready: Readiness,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    /// Set once the gateway runs: `POST /v1/gateway/rebind` moves its sockets.
    rebinder: Option<causeway_gateway::Rebinder>,
}

/// Runs `component` until `shutdown` fires and everything has drained.
/// `file` is where `cfg` came from: its `policies:` are re-read while running.
pub async fn run(
    cfg: Config,
    file: Option<std::path::PathBuf>,
    component: Component,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    causeway_identity::install_default_provider();
    let mut cfg = cfg;
    let linked = crate::link::apply::merge_at_start(&mut cfg)?;
    let effective = serde_json::to_value(&cfg).context("serializing the effective config")?;
    info!(config = %effective, ?component, "starting causeway");
    let mut s = Start {
        cfg,
        certs: Vec::new(),
        registry: Registry::with_prefix("causeway"),
        ready: Readiness::default(),
        tasks: TaskTracker::new(),
        shutdown,
        rebinder: None,
    };
    let peers = match component {
        Component::Dns => None,
        _ => Some(load_peers(&s.cfg)?),
    };
    // Peer CA bundles are re-read while running: every clone of a peer's
    // trust (gateway, federation) shares the reloaded bundle.
    let _bundles = peers.as_ref().map(|p| p.1.spawn_watch(CERT_POLL));
    let (feeds, fed) = match (component.has(Component::Federation), &peers) {
        (true, Some(peers)) => s.start_federation(&peers.0).await?,
        _ => (s.follow_remote(component)?, None),
    };
    if component.has(Component::Dns) {
        s.start_dns(&feeds).await?;
    }
    if let (true, Some(peers)) = (component.has(Component::Gateway), &peers) {
        let policies = s.follow_policies(file, feeds.policies.clone())?;
        s.start_gateway(&feeds, peers.1.clone(), policies).await?;
    }
    if let Some(peers) = &peers {
        let (tasks, stop) = (&s.tasks, s.shutdown.clone());
        crate::link::start(&s.cfg, fed.clone(), peers.1.clone(), linked, tasks, stop).await?;
    }
    let watched = cert_metrics::Watched {
        own: std::mem::take(&mut s.certs),
        peers: peers.as_ref().map(|p| p.1.clone()),
    };
    let expiry = cert_metrics::register(&mut s.registry);
    cert_metrics::spawn(expiry, watched, CERT_POLL, &s.tasks, s.shutdown.clone());
    s.serve_admin(effective, &feeds, fed).await?;
    s.tasks.close();
    s.shutdown.cancelled().await;
    info!("shutting down");
    s.tasks.wait().await;
    Ok(())
}

impl Start {
    async fn start_federation(
        &mut self,
        trust: &[PeerTrust],
    ) -> anyhow::Result<(Feeds, Option<Arc<Federation>>)> {
        let cert = load_cert(&self.cfg, Workload::Federation)?;
        cert.spawn_watch(CERT_POLL);
        self.certs.push(("federation".into(), cert.clone()));
        let peers = trust
            .iter()
            .zip(&self.cfg.peers)
            .map(|(trust, p)| PeerEndpoint {
                trust: trust.clone(),
                addr: p.federation.clone(),
                policy: p.policy(),
            })
            .collect();
        let inputs = FederationInputs {
            cfg: self.cfg.federation.clone(),
            source: self.cfg.source.clone(),
            local: local_info(&self.cfg)?,
            cert,
            peers,
            own: load_own(&self.cfg)?,
            vip_ranges: self.cfg.gateway.vip_ranges.clone(),
            shutdown: self.shutdown.clone(),
        };
        let fed = Arc::new(Federation::start(inputs, &mut self.registry).await?);
        info!(addr = %fed.listen_addr(), "federation listening");
        let f = fed.clone();
        self.tasks.spawn(async move { f.closed().await });
        let feeds = Feeds {
            catalog: fed.catalog(),
            local_exports: fed.local_exports(),
            policies: fed.policies(),
        };
        Ok((feeds, Some(fed)))
    }

    /// Follows a federation in another process over mutual TLS, as this
    /// cluster's gateway or DNS; ready once its first catalog arrives.
    fn follow_remote(&mut self, component: Component) -> anyhow::Result<Feeds> {
        let addr = self.cfg.federation.watch_target().context(
            "a component run apart follows the federation's catalog: set federation.watch_connect (host:port of its watch_listen)",
        )?;
        let workload = match component {
            Component::Dns => Workload::Dns,
            _ => Workload::Gateway,
        };
        info!(%addr, %workload, "following the federation's catalog");
        let (target, cert) = watch_target(&self.cfg, workload, addr)?;
        cert.spawn_watch(CERT_POLL);
        if workload == Workload::Dns {
            self.certs.push(("dns".into(), cert));
        }
        let RemoteCatalog {
            catalog,
            local_exports,
            policies,
        } = causeway_federation::watch_remote(target, self.shutdown.clone());
        let ready = self.ready.register("catalog");
        let mut first = catalog.clone();
        self.tasks.spawn(async move {
            if first.changed().await.is_ok() {
                ready.set(true);
            }
        });
        Ok(Feeds {
            catalog,
            local_exports,
            policies,
        })
    }

    async fn start_dns(&mut self, feeds: &Feeds) -> anyhow::Result<()> {
        let dns = DnsServer::bind(&self.cfg.dns, feeds.catalog.clone(), &mut self.registry).await?;
        info!(addr = %dns.local_addr()?, "dns listening");
        self.tasks.spawn(dns.run(self.shutdown.clone()));
        Ok(())
    }

    /// The policies in force: the config's (followed in the config file when
    /// there is one) plus the federation's TrafficPolicy `objects`.
    fn follow_policies(
        &mut self,
        file: Option<std::path::PathBuf>,
        objects: watch::Receiver<Arc<Policies>>,
    ) -> anyhow::Result<watch::Receiver<Arc<Policies>>> {
        let config = match file {
            None => watch::channel(Arc::new(self.cfg.policies()?)).1,
            Some(path) => {
                let watched = policy_watch::Watched {
                    path,
                    running: self.cfg.clone(),
                };
                let (poll, stop) = (CERT_POLL, self.shutdown.clone());
                policy_watch::spawn(watched, poll, &mut self.registry, stop)?
            }
        };
        let stop = self.shutdown.clone();
        Ok(policy_merge::spawn(
            config,
            objects,
            &mut self.registry,
            stop,
        ))
    }

    async fn start_gateway(
        &mut self,
        feeds: &Feeds,
        peers: Arc<PeerSet>,
        policies: watch::Receiver<Arc<Policies>>,
    ) -> anyhow::Result<()> {
        let cert = load_cert(&self.cfg, Workload::Gateway)?;
        cert.spawn_watch(CERT_POLL);
        self.certs.push(("gateway".into(), cert.clone()));
        let inputs = GatewayInputs {
            cfg: self.cfg.gateway.clone(),
            local: local_info(&self.cfg)?,
            cert,
            peers,
            catalog: feeds.catalog.clone(),
            local_exports: feeds.local_exports.clone(),
            policies,
            shutdown: self.shutdown.clone(),
        };
        let gw = Gateway::bind(inputs, &mut self.registry).await?;
        info!(addr = %gw.local_addr()?, "gateway listening");
        self.rebinder = Some(gw.rebinder());
        self.tasks.spawn(gw.run());
        Ok(())
    }

    async fn serve_admin(
        &mut self,
        effective: serde_json::Value,
        feeds: &Feeds,
        fed: Option<Arc<Federation>>,
    ) -> anyhow::Result<()> {
        let listener = admin::bind(self.cfg.admin.listen).await?;
        info!(addr = %listener.local_addr()?, "admin listening");
        if !listener.local_addr()?.ip().is_loopback() {
            tracing::warn!(
                "admin.listen is not loopback: /v1/config and /v1/catalog are readable by anyone who reaches it; use admin.metrics_listen for probes and scraping"
            );
        }
        let registry = Arc::new(std::mem::take(&mut self.registry));
        if let Some(addr) = self.cfg.admin.metrics_listen {
            let probes = admin::bind_key("admin.metrics_listen", addr).await?;
            info!(addr = %probes.local_addr()?, "metrics and probes listening");
            let only = Admin::probes(registry.clone(), self.ready.clone());
            self.tasks.spawn(only.serve(probes, self.shutdown.clone()));
        }
        let mut admin = Admin::new(registry.clone(), effective, self.ready.clone());
        admin = with_catalog_route(admin, feeds.catalog.clone());
        if let Some(fed) = fed {
            let local = crate::ui::local::Local {
                cluster: self.cfg.cluster.name.to_string(),
                admin: listener.local_addr()?,
                federation: fed.clone(),
                catalog: feeds.catalog.clone(),
                sampled: crate::ui::local::sample(registry, &self.tasks, self.shutdown.clone()),
            };
            admin = crate::ui::routes(admin, local, self.shutdown.clone());
            admin = admin.route(
                "/v1/peers",
                get(move || {
                    let peers = fed.peers_status();
                    async move { axum::Json(peers) }
                }),
            );
        }
        if let Some(r) = self.rebinder.take() {
            admin = admin.route("/v1/gateway/rebind", rebind_route(r));
        }
        self.tasks
            .spawn(admin.serve(listener, self.shutdown.clone()));
        self.ready.register("started").set(true);
        Ok(())
    }
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

/// `/v1/catalog`: the catalog this process follows, as JSON.
fn with_catalog_route(admin: Admin, catalog: watch::Receiver<Arc<CatalogSnapshot>>) -> Admin {
    admin.route(
        "/v1/catalog",
        get(move || {
            let json = serde_json::to_value(&**catalog.borrow());
            async move { json.map(axum::Json).map_err(|e| e.to_string()) }
        }),
    )
}

/// `POST /v1/gateway/rebind` (body: an IP address, or empty for the current
/// one): moves the gateway's dialling sockets; peer connections migrate.
fn rebind_route(r: causeway_gateway::Rebinder) -> axum::routing::MethodRouter {
    axum::routing::post(move |body: String| {
        let r = r.clone();
        async move {
            let bad = axum::http::StatusCode::BAD_REQUEST;
            let ip = match body.trim() {
                "" => None,
                text => Some(text.parse().map_err(|e| {
                    (bad, format!("{text:?} is not an IP address ({e}); send one, or nothing to keep the current address"))
                })?),
            };
            let addrs = r
                .rebind(ip)
                .map_err(|e| (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            Ok::<_, (axum::http::StatusCode, String)>(axum::Json(addrs))
        }
    })
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
