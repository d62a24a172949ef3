//! The `federation` and `source` sections of causeway.yaml.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use causeway_catalog::{Export, ExportError, LeaseConfig, LeaseError, check_range};
use serde::{Deserialize, Serialize};

use crate::k8s::{KubeSinkConfig, KubeSourceConfig};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address peers' subscribers connect to (gRPC over mutual TLS).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Local, plaintext `WatchCatalog` endpoint for a gateway or DNS run apart.
    #[serde(default)]
    pub watch_listen: Option<SocketAddr>,
    /// host:port where a gateway or DNS run apart (`causeway gateway`, `causeway dns`)
    /// reaches the `WatchCatalog` API; defaults to `watch_listen`.
    #[serde(default)]
    pub watch_connect: Option<String>,
    /// Where peer snapshots, the merged view and ClusterSetIPs persist.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// Silence after which a peer is stale.
    #[serde(default = "default_stale", with = "humantime_serde")]
    pub stale_after: Duration,
    /// Silence after which a peer's exports are withdrawn.
    #[serde(default = "default_expire", with = "humantime_serde")]
    pub expire_after: Duration,
    /// How often an exporter sends a heartbeat on an idle stream.
    #[serde(default = "default_heartbeat", with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// A session that receives nothing for this long is dropped and retried.
    #[serde(default = "default_idle", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Limit on TCP connect plus TLS handshake, both directions.
    #[serde(default = "default_connect", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// First retry delay after a failed session; doubles up to `backoff_max`, jittered.
    #[serde(default = "default_backoff_min", with = "humantime_serde")]
    pub backoff_min: Duration,
    #[serde(default = "default_backoff_max", with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Largest gRPC message sent or accepted, in bytes (a snapshot is one message).
    #[serde(default = "default_max_message")]
    pub max_message_size: usize,
    /// How long state changes settle before they are written to `state_dir`.
    #[serde(default = "default_debounce", with = "humantime_serde")]
    pub persist_debounce: Duration,
    /// Recent changes kept for resuming subscribers; older resume points get a snapshot.
    #[serde(default = "default_log_len")]
    pub delta_log_len: usize,
    /// Kubernetes mode: write ServiceImports and derived Services (leader only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubeSinkConfig>,
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
fn default_heartbeat() -> Duration {
    Duration::from_secs(2)
}
fn default_idle() -> Duration {
    Duration::from_secs(6)
}
fn default_connect() -> Duration {
    Duration::from_secs(5)
}
fn default_backoff_min() -> Duration {
    Duration::from_millis(200)
}
fn default_backoff_max() -> Duration {
    Duration::from_secs(10)
}
fn default_max_message() -> usize {
    16 * 1024 * 1024
}
fn default_debounce() -> Duration {
    Duration::from_millis(500)
}
fn default_log_len() -> usize {
    1024
}
fn default_poll() -> Duration {
    Duration::from_millis(500)
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            watch_listen: None,
            watch_connect: None,
            state_dir: None,
            stale_after: default_stale(),
            expire_after: default_expire(),
            heartbeat_interval: default_heartbeat(),
            idle_timeout: default_idle(),
            connect_timeout: default_connect(),
            backoff_min: default_backoff_min(),
            backoff_max: default_backoff_max(),
            max_message_size: default_max_message(),
            persist_debounce: default_debounce(),
            delta_log_len: default_log_len(),
            kubernetes: None,
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
        /// A YAML file `exports: [...]`; checked for changes every `poll_interval`.
        #[serde(default)]
        file: Option<PathBuf>,
        #[serde(default = "default_poll", with = "humantime_serde")]
        poll_interval: Duration,
    },
    /// Exports from MCS ServiceExports and the Services and EndpointSlices they name.
    Kubernetes(KubeSourceConfig),
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig::Static {
            exports: Vec::new(),
            file: None,
            poll_interval: default_poll(),
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
    #[error("{key}: {value} is out of range; {valid}")]
    Kube {
        key: &'static str,
        value: String,
        valid: &'static str,
    },
    #[error("federation.{key}: {value} is out of range; {valid}")]
    Range {
        key: &'static str,
        value: String,
        valid: &'static str,
    },
}

/// The longest duration any federation setting may name: 30 days.
const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

fn range(key: &'static str, value: impl std::fmt::Debug, valid: &'static str) -> ConfigError {
    ConfigError::Range {
        key,
        value: format!("{value:?}"),
        valid,
    }
}

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.lease()?;
        self.check_durations()?;
        let checks = [
            (
                self.heartbeat_interval.is_zero() || self.heartbeat_interval >= self.stale_after,
                range(
                    "heartbeat_interval",
                    self.heartbeat_interval,
                    "use a value above zero and below stale_after",
                ),
            ),
            (
                self.idle_timeout <= self.heartbeat_interval,
                range(
                    "idle_timeout",
                    self.idle_timeout,
                    "use a value above heartbeat_interval (3x is a good choice)",
                ),
            ),
            (
                self.connect_timeout.is_zero(),
                range(
                    "connect_timeout",
                    self.connect_timeout,
                    "use a value above zero",
                ),
            ),
            (
                self.backoff_min.is_zero() || self.backoff_min > self.backoff_max,
                range(
                    "backoff_min",
                    self.backoff_min,
                    "use a value above zero and at most backoff_max",
                ),
            ),
            (
                self.max_message_size < 64 * 1024,
                range(
                    "max_message_size",
                    self.max_message_size,
                    "use at least 65536 bytes",
                ),
            ),
            (
                self.persist_debounce > Duration::from_secs(60),
                range("persist_debounce", self.persist_debounce, "use at most 60s"),
            ),
            (
                self.delta_log_len == 0,
                range("delta_log_len", self.delta_log_len, "use at least 1"),
            ),
        ];
        match checks.into_iter().find(|(bad, _)| *bad) {
            Some((_, err)) => Err(err),
            None => self
                .kubernetes
                .as_ref()
                .map_or(Ok(()), KubeSinkConfig::validate),
        }
    }

    /// Every duration is added to an `Instant` somewhere; a typo such as
    /// `stale_after: 99999999999h` is refused instead of overflowing it.
    fn check_durations(&self) -> Result<(), ConfigError> {
        let all = [
            ("stale_after", self.stale_after),
            ("expire_after", self.expire_after),
            ("heartbeat_interval", self.heartbeat_interval),
            ("idle_timeout", self.idle_timeout),
            ("connect_timeout", self.connect_timeout),
            ("backoff_min", self.backoff_min),
            ("backoff_max", self.backoff_max),
        ];
        check_range(all, ..=MAX_DURATION).map_err(|e| range(e.key, e.value, "use at most 30 days"))
    }

    /// Where components run apart follow the catalog: `watch_connect`, else
    /// `watch_listen` (an unspecified address read as loopback).
    pub fn watch_target(&self) -> Option<String> {
        self.watch_connect.clone().or_else(|| {
            self.watch_listen.map(|mut a| {
                if a.ip().is_unspecified() {
                    a.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                a.to_string()
            })
        })
    }

    pub fn lease(&self) -> Result<LeaseConfig, LeaseError> {
        LeaseConfig::new(self.stale_after, self.expire_after)
    }
}

impl SourceConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let (exports, poll_interval) = match self {
            SourceConfig::Kubernetes(k) => return k.validate(),
            SourceConfig::Static {
                exports,
                poll_interval,
                ..
            } => (exports, poll_interval),
        };
        if poll_interval.is_zero() || *poll_interval > Duration::from_secs(1) {
            return Err(ConfigError::Range {
                key: "source.static.poll_interval",
                value: format!("{poll_interval:?}"),
                valid: "use a value above zero and at most 1s (edits apply within it)",
            });
        }
        check_exports(exports)
    }
}

/// Each export valid, each service listed once.
pub(crate) fn check_exports(exports: &[Export]) -> Result<(), ConfigError> {
    // A set, not a scan of the earlier exports: the scan was quadratic and took
    // most of the start-up (and of every reload) of a source with 10,000s of
    // exports (docs/benchmarks.md, "Catalog at scale").
    let mut seen = std::collections::HashSet::with_capacity(exports.len());
    for e in exports {
        e.validate()?;
        if !seen.insert(&e.key) {
            return Err(ConfigError::DuplicateExport(e.key.to_string()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export(key: &str) -> Export {
        Export {
            key: key.parse().unwrap(),
            ports: vec![causeway_catalog::Port::tcp("http", 80)],
            endpoints: Vec::new(),
            export_to: causeway_catalog::ExportTo::All,
            created_at: causeway_catalog::UnixMillis(0),
            serve_stale: false,
            headless: false,
            props: Default::default(),
        }
    }

    #[test]
    fn duplicate_exports_are_named() {
        let mut list: Vec<Export> = (0..1000).map(|i| export(&format!("ns/s{i}"))).collect();
        check_exports(&list).unwrap();
        list.push(export("ns/s7"));
        let e = check_exports(&list).unwrap_err();
        assert!(
            matches!(&e, ConfigError::DuplicateExport(k) if k == "ns/s7"),
            "{e}"
        );
    }

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
        SourceConfig::default().validate().unwrap();
    }

    #[test]
    fn errors_name_the_key_and_value() {
        let c = Config {
            heartbeat_interval: Duration::from_secs(30),
            ..Config::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("federation.heartbeat_interval: 30s"), "{e}");
        let c = Config {
            max_message_size: 10,
            ..Config::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("max_message_size: 10") && e.contains("65536"),
            "{e}"
        );
    }

    #[test]
    fn parses_with_humantime() {
        let c: Config = serde_json::from_str(
            r#"{"listen":"127.0.0.1:1","stale_after":"300ms","expire_after":"1s","heartbeat_interval":"100ms","idle_timeout":"250ms"}"#,
        )
        .unwrap();
        c.validate().unwrap();
        let bad: Result<Config, _> = serde_json::from_str(r#"{"listen":"127.0.0.1:1","nope":1}"#);
        assert!(bad.is_err());
    }

    #[test]
    fn huge_durations_are_refused() {
        let c = Config {
            expire_after: Duration::from_secs(u64::MAX / 2),
            stale_after: Duration::from_secs(u64::MAX / 4),
            ..Config::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("at most 30 days"), "{e}");
    }
}
