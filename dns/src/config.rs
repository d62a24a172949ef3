//! The `dns` section of causeway.yaml.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// UDP and TCP address the server binds.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The clusterset zone.
    #[serde(default = "default_zone")]
    pub zone: String,
    /// TTL of every answer.
    #[serde(default = "default_ttl", with = "humantime_serde")]
    pub ttl: Duration,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 15053))
}

fn default_zone() -> String {
    "clusterset.local".into()
}

fn default_ttl() -> Duration {
    Duration::from_secs(5)
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            zone: default_zone(),
            ttl: default_ttl(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("dns.zone {0:?} is not a valid DNS name (e.g. clusterset.local)")]
    Zone(String),
    #[error("dns.ttl {0:?} must be between 0s and 1h")]
    Ttl(Duration),
}

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let labels_ok = self.zone.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
        if !labels_ok || self.zone.len() > 253 {
            return Err(ConfigError::Zone(self.zone.clone()));
        }
        if self.ttl > Duration::from_secs(3600) {
            return Err(ConfigError::Ttl(self.ttl));
        }
        Ok(())
    }
}
