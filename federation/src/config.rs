//! The `federation` and `source` sections of causeway.yaml.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use causeway_catalog::{Export, ExportError, LeaseConfig, LeaseError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address peers' subscribers connect to (gRPC over mutual TLS).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Local, plaintext `WatchCatalog` endpoint for a gateway or DNS run apart.
    #[serde(default)]
    pub watch_listen: Option<SocketAddr>,
    /// Where peer snapshots, the merged view and ClusterSetIPs persist.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// Silence after which a peer is stale.
    #[serde(default = "default_stale", with = "humantime_serde")]
    pub stale_after: Duration,
    /// Silence after which a peer's exports are withdrawn.
    #[serde(default = "default_expire", with = "humantime_serde")]
    pub expire_after: Duration,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 15010))
}

fn default_stale() -> Duration {
    LeaseConfig::default().stale_after()
}

fn default_expire() -> Duration {
    LeaseConfig::default().expire_after()
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            watch_listen: None,
            state_dir: None,
            stale_after: default_stale(),
            expire_after: default_expire(),
        }
    }
}

/// Where this cluster's own exports come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum SourceConfig {
    /// Exports listed inline and/or in a YAML file that is re-read on change.
    Static {
        #[serde(default)]
        exports: Vec<Export>,
        #[serde(default)]
        file: Option<PathBuf>,
    },
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig::Static {
            exports: Vec::new(),
            file: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("federation: {0}")]
    Lease(#[from] LeaseError),
    #[error("source.static.exports: {0}")]
    Export(#[from] ExportError),
    #[error("source.static.exports: {0} is listed twice; list each service once")]
    DuplicateExport(String),
}

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.lease()?;
        Ok(())
    }

    pub fn lease(&self) -> Result<LeaseConfig, LeaseError> {
        LeaseConfig::new(self.stale_after, self.expire_after)
    }
}

impl SourceConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let SourceConfig::Static { exports, .. } = self;
        for (i, e) in exports.iter().enumerate() {
            e.validate()?;
            if exports[..i].iter().any(|o| o.key == e.key) {
                return Err(ConfigError::DuplicateExport(e.key.to_string()));
            }
        }
        Ok(())
    }
}
