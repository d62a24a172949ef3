//! The `gateway` section of causeway.yaml.

use std::net::SocketAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// UDP address the QUIC endpoint binds.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Addresses peers dial to reach this gateway (its replicas); defaults to `listen`.
    #[serde(default)]
    pub advertise: Vec<SocketAddr>,
    /// Ranges ClusterSetIPs are allocated from; outbound listeners bind there.
    #[serde(default)]
    pub vip_ranges: Vec<IpNet>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 15443))
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            advertise: Vec::new(),
            vip_ranges: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("gateway.advertise: {0} is unspecified or port 0; list addresses peers can dial")]
    BadAdvertise(SocketAddr),
    #[error(
        "gateway.advertise is empty and gateway.listen {0} is unspecified; list addresses peers can dial in gateway.advertise"
    )]
    NoAdvertise(SocketAddr),
}

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(a) = self
            .advertise
            .iter()
            .find(|a| a.ip().is_unspecified() || a.port() == 0)
        {
            return Err(ConfigError::BadAdvertise(*a));
        }
        if self.advertise.is_empty() && self.listen.ip().is_unspecified() {
            return Err(ConfigError::NoAdvertise(self.listen));
        }
        Ok(())
    }

    /// The addresses peers should dial.
    pub fn advertised(&self) -> Vec<SocketAddr> {
        if self.advertise.is_empty() {
            vec![self.listen]
        } else {
            self.advertise.clone()
        }
    }
}
