//! Config for Kubernetes mode: the `source.kubernetes` and
//! `federation.kubernetes` (sink) sections of causeway.yaml.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// `source.kubernetes`: exports from MCS ServiceExports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeSourceConfig {
    /// API server URL; default: in-cluster service account, else kubeconfig.
    #[serde(default)]
    pub api_url: Option<String>,
    /// How long start waits for the first complete list of each kind.
    #[serde(default = "default_sync", with = "humantime_serde")]
    pub sync_timeout: Duration,
}

impl Default for KubeSourceConfig {
    fn default() -> Self {
        Self {
            api_url: None,
            sync_timeout: default_sync(),
        }
    }
}

/// `federation.kubernetes`: write ServiceImports and derived Services.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeSinkConfig {
    #[serde(default)]
    pub api_url: Option<String>,
    /// Namespace of the gateway pods and of the leader-election Lease.
    pub namespace: String,
    /// Labels selecting the gateway pods the derived Services send traffic to.
    pub gateway_selector: BTreeMap<String, String>,
    /// First gateway port handed to imported service ports.
    #[serde(default = "default_port_base")]
    pub port_base: u16,
    /// How many gateway ports may be handed out from `port_base`.
    #[serde(default = "default_port_count")]
    pub port_count: u16,
    #[serde(default = "default_lease_name")]
    pub lease_name: String,
    /// This replica's name in the Lease; default: the host name (the pod name).
    #[serde(default)]
    pub identity: Option<String>,
    /// A leader that has not renewed for this long loses the Lease.
    #[serde(default = "default_lease_duration", with = "humantime_serde")]
    pub lease_duration: Duration,
    /// How often the leader renews and followers retry.
    #[serde(default = "default_renew", with = "humantime_serde")]
    pub renew_interval: Duration,
    /// Label the leader's own pod (`identity` is its name) with
    /// `causeway.io/federation-leader: "true"`, for a Service selecting the leader.
    #[serde(default)]
    pub label_leader_pod: bool,
    /// Full reconcile even without catalog changes (repairs manual edits).
    #[serde(default = "default_resync", with = "humantime_serde")]
    pub resync_interval: Duration,
    /// The Secret in `namespace` that holds the linked peers and link tokens
    /// (`causeway token issue|redeem`); every pod mounts it at
    /// `<federation.state_dir>/links`.
    #[serde(default = "default_links_secret")]
    pub links_secret: String,
}

fn default_sync() -> Duration {
    Duration::from_secs(30)
}
fn default_port_base() -> u16 {
    20000
}
fn default_port_count() -> u16 {
    10000
}
fn default_lease_name() -> String {
    "causeway-federation".into()
}
fn default_lease_duration() -> Duration {
    Duration::from_secs(15)
}
fn default_renew() -> Duration {
    Duration::from_secs(5)
}
fn default_links_secret() -> String {
    "causeway-links".into()
}
fn default_resync() -> Duration {
    Duration::from_secs(30)
}

fn range(key: &'static str, value: impl std::fmt::Debug, valid: &'static str) -> ConfigError {
    ConfigError::Kube {
        key,
        value: format!("{value:?}"),
        valid,
    }
}

impl KubeSourceConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.sync_timeout.is_zero() {
            return Err(range(
                "source.kubernetes.sync_timeout",
                self.sync_timeout,
                "use a value above zero",
            ));
        }
        Ok(())
    }
}

impl KubeSinkConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let end = u32::from(self.port_base) + u32::from(self.port_count);
        if self.port_count == 0 || self.port_base == 0 || end > 65536 {
            return Err(range(
                "federation.kubernetes.port_count",
                self.port_count,
                "use 1 or more ports, with port_base + port_count at most 65536",
            ));
        }
        if self.renew_interval.is_zero() || self.renew_interval * 2 > self.lease_duration {
            return Err(range(
                "federation.kubernetes.renew_interval",
                self.renew_interval,
                "use a value above zero and at most half of lease_duration",
            ));
        }
        if self.gateway_selector.is_empty() {
            return Err(range(
                "federation.kubernetes.gateway_selector",
                &self.gateway_selector,
                "list at least one label of the gateway pods",
            ));
        }
        if !is_dns_subdomain(&self.links_secret) {
            return Err(range(
                "federation.kubernetes.links_secret",
                &self.links_secret,
                "use a Secret name: lowercase letters, digits, '-' and '.', at most 253",
            ));
        }
        if self.namespace.is_empty() || self.lease_name.is_empty() {
            return Err(range(
                "federation.kubernetes.namespace",
                &self.namespace,
                "name the namespace causeway runs in",
            ));
        }
        Ok(())
    }
}

/// A DNS subdomain name (RFC 1123), as Kubernetes wants object names.
fn is_dns_subdomain(name: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    name.len() <= 253
        && name.starts_with(alnum)
        && name.ends_with(alnum)
        && name.chars().all(|c| alnum(c) || c == '-' || c == '.')
}
