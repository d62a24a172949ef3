//! `causeway doctor`: checks one cluster layer by layer (config, own
//! certificates, federation, lease, gateway QUIC, MTU, service export, DNS,
//! an end-to-end connection), in that order, and stops at the first broken
//! layer with its cause and a fix. Each layer lives in its own module; they
//! share a [`Ctx`] that earlier layers fill for later ones.

mod certs;
mod connect;
mod dns;
mod federation;
mod gateway;
mod lease;
mod mtu;
pub mod report;
mod service;
mod stream;
mod tls_why;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use causeway_catalog::{CatalogSnapshot, ClusterId, ServiceKey};
use causeway_identity::{PeerSet, PeerTrust, ReloadingCert};

use crate::config::{Config, PeerConfig};
use crate::dev::ClustersFile;
pub use report::{Check, Layer, Problem};

/// How long any one network step may take.
pub(crate) const STEP: Duration = Duration::from_secs(3);

/// What to check, besides the config's own peers.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Only this peer.
    pub peer: Option<ClusterId>,
    /// A service to follow through export, DNS and a connection.
    pub service: Option<ServiceArg>,
}

/// `namespace/name` with an optional `:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceArg {
    pub key: ServiceKey,
    pub port: Option<u16>,
}

impl std::str::FromStr for ServiceArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (key, port) = match s.rsplit_once(':') {
            Some((k, p)) => {
                let port = p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
                    format!("{s:?}: the port after ':' must be 1-65535 (e.g. demo/hello:8080)")
                })?;
                (k, Some(port))
            }
            None => (s, None),
        };
        let key = key
            .parse::<ServiceKey>()
            .map_err(|e| format!("{s:?} is not namespace/name[:port]: {e}"))?;
        Ok(ServiceArg { key, port })
    }
}

/// What the layers learn and hand on.
pub(crate) struct Ctx {
    pub cfg: Config,
    pub config_path: PathBuf,
    pub opts: Options,
    /// The peers to check (all, or `--peer`).
    pub peers: Vec<PeerConfig>,
    pub gateway_cert: Option<Arc<ReloadingCert>>,
    pub federation_cert: Option<Arc<ReloadingCert>>,
    /// Peers whose CA bundle loaded.
    pub trusts: BTreeMap<ClusterId, PeerTrust>,
    /// From our admin endpoint.
    pub catalog: Option<CatalogSnapshot>,
    /// Authenticated QUIC connections to peer gateways, from the gateway layer.
    pub conns: Vec<gateway::PeerConn>,
    pub endpoint: Option<quinn::Endpoint>,
}

impl Ctx {
    pub fn us(&self) -> &ClusterId {
        &self.cfg.cluster.name
    }

    /// Our trust domain as the loaded config spells it (filled in by `Config::load`).
    pub fn our_td(&self) -> String {
        let td = self.cfg.cluster.trust_domain.as_ref();
        td.map_or(String::new(), |t| t.to_string())
    }

    /// Every peer whose bundle loaded; names and trust domains were checked
    /// with the config, so this fails only if the config did not hold.
    pub fn peer_set(&self) -> Result<Arc<PeerSet>, causeway_identity::PeerSetError> {
        PeerSet::new(self.trusts.values().cloned().collect()).map(Arc::new)
    }

    /// Where to reach one of our listeners: loopback when it binds every address.
    pub fn local(addr: SocketAddr) -> SocketAddr {
        match addr.ip() {
            std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
                SocketAddr::from(([127, 0, 0, 1], addr.port()))
            }
            std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
                SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port()))
            }
            _ => addr,
        }
    }
}

/// Runs every layer in order for the cluster configured in `path`.
pub async fn diagnose(path: &Path, opts: &Options) -> Vec<Check> {
    let mut out = Vec::new();
    let Some(mut ctx) = certs::config(path, opts, &mut out) else {
        return out;
    };
    run_layers(&mut ctx, &mut out).await;
    gateway::close(&mut ctx).await;
    let name = ctx.us().to_string();
    for c in &mut out {
        c.cluster = Some(name.clone());
    }
    out
}

async fn run_layers(ctx: &mut Ctx, out: &mut Vec<Check>) {
    for layer in &Layer::ALL[1..] {
        let checks = match layer {
            Layer::Config => Vec::new(),
            Layer::Certificates => certs::check(ctx),
            Layer::Federation => federation::check(ctx).await,
            Layer::Lease => lease::check(ctx).await,
            Layer::Gateway => gateway::check(ctx).await,
            Layer::Mtu => mtu::check(ctx).await,
            Layer::Service => service::check(ctx).await,
            Layer::Dns => dns::check(ctx).await,
            Layer::Connection => connect::check(ctx).await,
        };
        let broken = checks.iter().any(|c| !c.ok);
        out.extend(checks);
        if broken {
            return;
        }
    }
}

/// Which clusters to check.
pub enum Target {
    Config(PathBuf),
    /// Every cluster of a `causeway dev up` directory.
    Dir(PathBuf),
}

/// Checks, prints (text or JSON) and returns whether everything passed.
pub fn doctor(target: Target, opts: &Options, json: bool) -> anyhow::Result<bool> {
    let configs = match target {
        Target::Config(p) => vec![p],
        Target::Dir(dir) => dir_configs(&dir)?,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut all = Vec::new();
    for path in &configs {
        let checks = rt.block_on(diagnose(path, opts));
        if !json {
            println!("causeway doctor: {}", path.display());
            println!("{}", report::render(&checks));
        }
        all.extend(checks);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    }
    Ok(all.iter().all(|c| c.ok))
}

fn dir_configs(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let file = ClustersFile::load(dir).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e} (is it a `causeway dev up` directory?)",
            ClustersFile::path(dir).display()
        )
    })?;
    Ok(file.clusters.into_iter().map(|c| c.config).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_service_arguments() {
        let s: ServiceArg = "demo/hello:8080".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (s.key.to_string(), s.port),
            ("demo/hello".into(), Some(8080))
        );
        let s: ServiceArg = "demo/hello".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.port, None);
        assert!("demo/hello:0".parse::<ServiceArg>().is_err());
        assert!("hello".parse::<ServiceArg>().is_err());
    }

    #[test]
    fn unspecified_listeners_are_reached_on_loopback() {
        let any = SocketAddr::from(([0, 0, 0, 0], 53));
        assert_eq!(Ctx::local(any), SocketAddr::from(([127, 0, 0, 1], 53)));
        let one = SocketAddr::from(([10, 0, 0, 1], 53));
        assert_eq!(Ctx::local(one), one);
    }
}
