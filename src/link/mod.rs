//! Linking clusters without copying files by hand: one-time expiring
//! tokens (`causeway token issue` / `redeem`), `causeway unlink`, and CA
//! bundle rotation told to linked peers over the federation channel
//! (`causeway ca rotate`). Operations are in
//! docs/operations.md, the wire format in docs/protocol.md, the attacks in
//! docs/security.md.

pub mod apply;
pub mod cli;
pub mod client;
pub mod config;
pub mod kube_store;
pub mod server;
pub mod store;
pub mod token;
pub mod wire;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use causeway_catalog::ClusterId;
use causeway_federation::Federation;
use causeway_identity::{PeerSet, Workload};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{LinkConfig, LinkConfigError};

use crate::config::Config;

/// How often `links.yaml` is re-read (a redemption here wakes it at once).
const POLL: Duration = Duration::from_secs(1);

/// The longest CA rotation overlap taken from a peer.
pub const MAX_OVERLAP: Duration = Duration::from_secs(30 * 24 * 3600);

/// The trust in `bundle` (PEM), a CA bundle for `name` in `trust_domain`.
pub fn bundle_trust(
    name: &ClusterId,
    trust_domain: &causeway_identity::TrustDomain,
    bundle: &[u8],
) -> Result<causeway_identity::PeerTrust, String> {
    // CA bundles are public; the links directory may not exist yet.
    let mut tmp = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    std::io::Write::write_all(&mut tmp, bundle).map_err(|e| e.to_string())?;
    causeway_identity::PeerTrust::load(name.clone(), trust_domain.clone(), tmp.path())
        .map_err(|e| e.to_string())
}

/// Whether `bundle` (PEM) is a CA bundle for `name` in `trust_domain`.
pub fn usable_bundle(
    name: &ClusterId,
    trust_domain: &causeway_identity::TrustDomain,
    bundle: &[u8],
) -> Result<(), String> {
    bundle_trust(name, trust_domain, bundle).map(drop)
}

fn is_host_port(s: &str) -> bool {
    s.rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p != 0))
}

/// This cluster as a peer will record it.
pub fn local_card(cfg: &Config) -> Result<wire::Card, client::ClientError> {
    let (link, federation) = config::advertised(cfg)?;
    let ca = cfg.identity.ca.as_ref().ok_or(LinkConfigError::NoCa)?;
    let ca_bundle = std::fs::read_to_string(ca)
        .map_err(|e| client::ClientError::Identity(format!("identity.ca {}: {e}", ca.display())))?;
    let trust_domain = cfg
        .cluster
        .trust_domain()
        .map_err(|e| client::ClientError::Identity(e.to_string()))?;
    Ok(wire::Card {
        cluster: cfg.cluster.name.clone(),
        trust_domain,
        federation,
        link,
        ca_bundle,
    })
}

/// In `causeway run` (or `federation`): follows the linked peers and, with a
/// `link:` section, serves the link endpoint. `linked` are the peers
/// [`apply::merge_at_start`] added; `peers` is the process's peer set.
pub async fn start(
    cfg: &Config,
    fed: Option<Arc<Federation>>,
    peers: Arc<PeerSet>,
    linked: BTreeSet<ClusterId>,
    tasks: &TaskTracker,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let Ok(store) = store::Store::new(cfg.federation.state_dir.as_deref()) else {
        return Ok(());
    };
    let secret = secret_store(cfg, fed.is_some()).await?;
    let changed = Arc::new(Notify::new());
    let busy = Arc::new(Mutex::new(()));
    let fixed = cfg
        .peers
        .iter()
        .map(|p| p.name.clone())
        .filter(|n| !linked.contains(n))
        .collect::<BTreeSet<_>>();
    if let (Some(link), true) = (&cfg.link, fed.is_some()) {
        let listener = tokio::net::TcpListener::bind(link.listen)
            .await
            .with_context(|| format!("link.listen {}: cannot listen", link.listen))?;
        tracing::info!(addr = %listener.local_addr()?, "link endpoint listening");
        let card = local_card(cfg)?;
        let cert = crate::identities::load_cert(cfg, Workload::Federation)?;
        cert.spawn_watch(POLL);
        let ep = server::Endpoint {
            store: secret.as_ref().map_or(&store, |s| s.scratch()).clone(),
            secret: secret.clone(),
            card,
            ca_path: cfg.identity.ca.clone().unwrap_or_default(),
            static_peers: fixed.iter().cloned().collect(),
            peers: peers.clone(),
            changed: changed.clone(),
            limiter: Mutex::new(server::Limiter::new(
                server::REDEEMS_PER_MINUTE,
                server::REDEEMS_PER_MINUTE_ALL,
                Duration::from_secs(60),
            )),
            busy: busy.clone(),
        };
        server::spawn(ep, listener, cert, tasks, shutdown.clone())?;
    }
    // In Kubernetes mode only the federation writes (through the API); the
    // other pods follow the mounted Secret.
    let writes_here = fed.is_some() || cfg.federation.kubernetes.is_none();
    let linker = apply::Linker {
        store,
        peers,
        fed,
        applied: linked,
        fixed,
        changed,
        busy,
        errors: Default::default(),
        rotations: match (secret, writes_here) {
            (Some(s), _) => apply::Rotations::Secret(s),
            (None, true) => apply::Rotations::Here,
            (None, false) => apply::Rotations::Elsewhere,
        },
    };
    tasks.spawn(linker.run(POLL, shutdown));
    Ok(())
}

/// The links Secret, for the process that writes it (Kubernetes mode, the
/// federation).
async fn secret_store(
    cfg: &Config,
    writes: bool,
) -> anyhow::Result<Option<Arc<kube_store::SecretStore>>> {
    if !writes || cfg.federation.kubernetes.is_none() {
        return Ok(None);
    }
    match kube_store::Writer::for_config(cfg).await? {
        kube_store::Writer::Secret(s) => Ok(Some(s)),
        kube_store::Writer::Files(_) => Ok(None),
    }
}
