//! `gateway.udp`: UDP flows' idle timeout and caps.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config_check::{ConfigError, positive, within};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UdpConfig {
    /// A flow with no datagram either way for this long is closed.
    #[serde(default = "d30s", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Flows open at once per service on each side (importing: past it, new
    /// clients' datagrams are dropped; exporting: refused `overloaded`).
    #[serde(default = "default_per_service")]
    pub max_flows_per_service: u32,
    /// Flows one peer cluster may hold open on this gateway.
    #[serde(default = "default_per_peer")]
    pub max_flows_per_peer: u32,
}

impl Default for UdpConfig {
    fn default() -> Self {
        Self {
            idle_timeout: d30s(),
            max_flows_per_service: default_per_service(),
            max_flows_per_peer: default_per_peer(),
        }
    }
}

impl UdpConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        positive("udp.idle_timeout", self.idle_timeout)?;
        let (service, peer) = (self.max_flows_per_service, self.max_flows_per_peer);
        within("udp.max_flows_per_service", service.into(), 1, 1_000_000)?;
        within("udp.max_flows_per_peer", peer.into(), 1, 1_000_000)
    }
}

fn d30s() -> Duration {
    Duration::from_secs(30)
}
fn default_per_service() -> u32 {
    10_000
}
fn default_per_peer() -> u32 {
    4096
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_timeouts_and_caps_are_refused_by_name() {
        assert_eq!(UdpConfig::default().validate(), Ok(()));
        let c = UdpConfig {
            idle_timeout: Duration::ZERO,
            ..UdpConfig::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("gateway.udp.idle_timeout"), "{e}");
        let c = UdpConfig {
            max_flows_per_peer: 0,
            ..UdpConfig::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("gateway.udp.max_flows_per_peer is 0"), "{e}");
    }
}
