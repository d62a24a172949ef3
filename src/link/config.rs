//! The `link:` section of causeway.yaml: where the link endpoint listens and
//! the addresses this cluster gives peers when it links.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::config::Config;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkConfig {
    /// The link endpoint (TLS over TCP): token redemption, unlink and CA
    /// rotation from peers. Served by the process that runs the federation.
    pub listen: SocketAddr,
    /// host:port peers dial for the link endpoint; defaults to `listen`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertise: Option<String>,
    /// host:port peers dial for this cluster's federation; defaults to
    /// `federation.listen`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkConfigError {
    #[error(
        "linking needs a `link:` section (link.listen: the link endpoint's address); see docs/operations.md"
    )]
    Missing,
    #[error("{key}: {addr} is unspecified; set {fix} to the host:port peers dial")]
    Unspecified {
        key: &'static str,
        addr: SocketAddr,
        fix: &'static str,
    },
    #[error(
        "identity.ca is not set: linking sends this cluster's CA certificate to the peer; set identity.ca to ca.pem (no key)"
    )]
    NoCa,
}

/// The addresses a peer dials: (link endpoint, federation).
pub fn advertised(cfg: &Config) -> Result<(String, String), LinkConfigError> {
    let link = cfg.link.as_ref().ok_or(LinkConfigError::Missing)?;
    let dial = |key, addr: SocketAddr, fix| match addr.ip().is_unspecified() {
        true => Err(LinkConfigError::Unspecified { key, addr, fix }),
        false => Ok(addr.to_string()),
    };
    let endpoint = match &link.advertise {
        Some(a) => a.clone(),
        None => dial("link.listen", link.listen, "link.advertise")?,
    };
    let federation = match &link.federation {
        Some(a) => a.clone(),
        None => dial(
            "federation.listen",
            cfg.federation.listen,
            "link.federation",
        )?,
    };
    Ok((endpoint, federation))
}
