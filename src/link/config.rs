//! The `link:` section of causeway.yaml: where the link endpoint listens and
//! the addresses this cluster gives peers when it links.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::config::Config;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkConfig {
    /// The link endpoint (TLS over TCP): token redemption and unlink from
    /// peers. Served by the process that runs the federation.
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
    #[error("{key}: {value:?} is not host:port (e.g. east.example.com:15012)")]
    Address { key: &'static str, value: String },
    #[error(
        "identity.ca is not set: linking sends this cluster's CA certificate to the peer; set identity.ca to ca.pem (no key)"
    )]
    NoCa,
}

impl LinkConfig {
    pub fn validate(&self) -> Result<(), LinkConfigError> {
        let keys = [
            ("link.advertise", &self.advertise),
            ("link.federation", &self.federation),
        ];
        for (key, value) in keys {
            if let Some(v) = value.as_ref().filter(|v| !super::is_host_port(v)) {
                return Err(LinkConfigError::Address {
                    key,
                    value: v.clone(),
                });
            }
        }
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::config::tests::BASE;

    fn load(extra: &str) -> Result<Config, String> {
        let cfg = Config::parse(&format!("{BASE}{extra}"))?;
        cfg.validate().map_err(|e| e.to_string())?;
        Ok(cfg)
    }

    #[test]
    fn addresses_default_to_the_listeners_and_unspecified_ones_are_named() {
        let cfg = load(
            "federation: { listen: \"10.0.0.1:15010\" }\nlink: { listen: \"10.0.0.1:15012\" }",
        )
        .unwrap();
        let (link, fed) = super::advertised(&cfg).unwrap();
        assert_eq!(
            (link.as_str(), fed.as_str()),
            ("10.0.0.1:15012", "10.0.0.1:15010")
        );
        let cfg = load("link: { listen: \"0.0.0.0:15012\" }").unwrap();
        let e = super::advertised(&cfg).unwrap_err().to_string();
        assert!(e.contains("link.advertise"), "{e}");
        let cfg =
            load("link: { listen: \"0.0.0.0:15012\", advertise: \"e.example:15012\" }").unwrap();
        let e = super::advertised(&cfg).unwrap_err().to_string();
        assert!(
            e.contains("federation.listen") && e.contains("link.federation"),
            "{e}"
        );
        let e = super::advertised(&load("").unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("link:"), "{e}");
    }

    #[test]
    fn a_bad_address_is_refused_by_key() {
        let e = load("link: { listen: \"127.0.0.1:1\", advertise: \"nowhere\" }").unwrap_err();
        assert!(e.contains("link.advertise") && e.contains("nowhere"), "{e}");
    }
}
