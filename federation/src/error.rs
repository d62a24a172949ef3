//! Why the federation could not start.

use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{0}")]
    Config(#[from] crate::ConfigError),
    #[error("source: {0}")]
    Source(#[from] crate::source::SourceError),
    #[error("{0}")]
    Kube(#[from] crate::k8s::KubeError),
    #[error("state_dir: {0}")]
    Persist(#[from] crate::persist::PersistError),
    #[error("ClusterSetIP ranges: {0}")]
    Vip(#[from] causeway_catalog::VipError),
    #[error("peers: {0}")]
    Peers(#[from] causeway_identity::PeerSetError),
    #[error("federation TLS: {0}")]
    Tls(#[from] causeway_identity::TlsError),
    #[error(
        "federation.watch_listen is set but this cluster's CA is not: set identity.ca (the CA certificate, no key) so the catalog feed can check its gateway and DNS clients"
    )]
    WatchWithoutCa,
    #[error("cannot listen on {addr}: {source}; is another process using it?")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}
