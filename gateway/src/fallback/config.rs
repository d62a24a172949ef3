//! `gateway.fallback`: QUIC over TLS 1.3 on TCP when UDP to a peer is blocked.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config_check::{ConfigError, positive, within};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FallbackConfig {
    /// Dial peers over TCP when QUIC gets no handshake, and listen for theirs.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// TCP address of our fallback listener. Default: `gateway.listen`'s
    /// address and (bound) port. Peers dial the port of our advertised
    /// address on TCP, so keep the number equal where they reach us.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// A QUIC dial with no handshake after this long goes over TCP instead.
    #[serde(default = "d3s", with = "humantime_serde")]
    pub after: Duration,
    /// While on TCP, QUIC is tried again this often; new streams move back
    /// to it once it works.
    #[serde(default = "d30s", with = "humantime_serde")]
    pub reprobe: Duration,
    /// TCP connections one source IP address may hold on the fallback port.
    #[serde(default = "default_per_source")]
    pub max_per_source: u32,
}

fn yes() -> bool {
    true
}
fn d3s() -> Duration {
    Duration::from_secs(3)
}
fn d30s() -> Duration {
    Duration::from_secs(30)
}
fn default_per_source() -> u32 {
    16
}

impl Default for FallbackConfig {
    fn default() -> Self {
        Self {
            enabled: yes(),
            listen: None,
            after: d3s(),
            reprobe: d30s(),
            max_per_source: default_per_source(),
        }
    }
}

impl FallbackConfig {
    pub fn check(&self) -> Result<(), ConfigError> {
        positive("fallback.after", self.after)?;
        positive("fallback.reprobe", self.reprobe)?;
        if self.reprobe < self.after {
            return Err(ConfigError::Duration {
                key: "fallback.reprobe",
                value: self.reprobe,
                valid: "use at least fallback.after (a probe waits that long for QUIC)",
            });
        }
        within(
            "fallback.max_per_source",
            u64::from(self.max_per_source),
            1,
            1024,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_and_bad_values_name_their_key() {
        FallbackConfig::default().check().unwrap();
        let bad = |f: fn(&mut FallbackConfig)| {
            let mut c = FallbackConfig::default();
            f(&mut c);
            c.check().unwrap_err().to_string()
        };
        let e = bad(|c| c.after = Duration::ZERO);
        assert!(e.contains("gateway.fallback.after"), "{e}");
        let e = bad(|c| c.reprobe = Duration::from_secs(1));
        assert!(
            e.contains("gateway.fallback.reprobe") && e.contains("fallback.after"),
            "{e}"
        );
        let e = bad(|c| c.max_per_source = 0);
        assert!(
            e.contains("gateway.fallback.max_per_source") && e.contains("1 to 1024"),
            "{e}"
        );
    }
}
