//! The `dns` section of causeway.yaml.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
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
    /// TTL of every answer, and the negative-caching TTL (SOA minimum).
    #[serde(default = "default_ttl", with = "humantime_serde")]
    pub ttl: Duration,
    /// Networks holding ClusterSetIPs, e.g. `10.96.0.0/16` or `fd00:77::/64`; the server is
    /// authoritative for their `in-addr.arpa` / `ip6.arpa` zones and answers PTR for every
    /// ClusterSetIP inside them. Empty (the default): no reverse zones, no PTR records.
    /// IPv4 prefixes must be a multiple of 8 bits long, IPv6 prefixes a multiple of 4.
    #[serde(default)]
    pub reverse_zones: Vec<IpNet>,
    /// Target of the zones' NS records and SOA MNAME; defaults to `ns.dns.<zone>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nameserver: Option<String>,
    /// A/AAAA records for `nameserver` when it lies inside the zone (e.g. the DNS Service's IP).
    #[serde(default)]
    pub nameserver_addresses: Vec<IpAddr>,
    /// Threads answering UDP, each with its own `SO_REUSEPORT` socket; default: one per core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp_workers: Option<usize>,
    /// Answer common UDP queries from precomputed wire-format answers (the default). `false`
    /// serves UDP through hickory-server on the shared runtime, as before the fast path existed.
    #[serde(default = "default_true")]
    pub udp_fast_path: bool,
}

/// Upper bound for `udp_workers`: more threads than this only add contention.
pub const MAX_UDP_WORKERS: usize = 64;

fn default_true() -> bool {
    true
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
            reverse_zones: Vec::new(),
            nameserver: None,
            nameserver_addresses: Vec::new(),
            udp_workers: None,
            udp_fast_path: true,
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
    #[error(
        "dns.reverse_zones entry {0} is not on a reverse-zone boundary: use a prefix length that is a multiple of 8 for IPv4 (e.g. 10.96.0.0/16) or of 4 for IPv6 (e.g. fd00:77::/64), with the host bits zero"
    )]
    ReverseZone(IpNet),
    #[error(
        "dns.reverse_zones entries {0} and {1} overlap; list each network once, or only the larger one"
    )]
    ReverseOverlap(IpNet, IpNet),
    #[error("dns.nameserver {0:?} is not a valid DNS name (e.g. ns.dns.clusterset.local)")]
    Nameserver(String),
    #[error(
        "dns.nameserver {0:?} lies under svc.<zone>, where service names live; pick a name such as ns.dns.<zone>"
    )]
    NameserverUnderSvc(String),
    #[error(
        "dns.nameserver_addresses is set but dns.nameserver {0:?} is outside zone {1:?}; addresses are only served for a nameserver inside the zone"
    )]
    NameserverOutside(String, String),
    #[error(
        "dns.udp_workers {0} must be between 1 and {MAX_UDP_WORKERS} (or left out: one per core)"
    )]
    UdpWorkers(usize),
    #[error(
        "dns.udp_workers is set but dns.udp_fast_path is false; the workers only run the fast path (remove one of the two)"
    )]
    UdpWorkersWithoutFastPath,
}

/// True for a name of 1-253 characters made of 1-63 character labels of letters, digits and '-'.
fn valid_dns_name(name: &str) -> bool {
    let labels_ok = name.split('.').all(|l| {
        !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    labels_ok && name.len() <= 253
}

/// True when `name` equals `zone` or lies under it (case-insensitively).
pub(crate) fn in_zone(name: &str, zone: &str) -> bool {
    let (name, zone) = (name.to_ascii_lowercase(), zone.to_ascii_lowercase());
    name == zone || name.ends_with(&format!(".{zone}"))
}

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !valid_dns_name(&self.zone) {
            return Err(ConfigError::Zone(self.zone.clone()));
        }
        if self.ttl > Duration::from_secs(3600) {
            return Err(ConfigError::Ttl(self.ttl));
        }
        self.validate_reverse_zones()?;
        self.validate_nameserver()?;
        self.validate_udp_workers()
    }

    /// How many UDP worker threads to run: `udp_workers`, or one per available core.
    pub fn udp_worker_count(&self) -> usize {
        self.udp_workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_UDP_WORKERS))
        })
    }

    fn validate_udp_workers(&self) -> Result<(), ConfigError> {
        match self.udp_workers {
            Some(n) if n == 0 || n > MAX_UDP_WORKERS => Err(ConfigError::UdpWorkers(n)),
            Some(_) if !self.udp_fast_path => Err(ConfigError::UdpWorkersWithoutFastPath),
            _ => Ok(()),
        }
    }

    /// The NS target: `nameserver`, or `ns.dns.<zone>`.
    pub fn nameserver_name(&self) -> String {
        match &self.nameserver {
            Some(n) => n.clone(),
            None => format!("ns.dns.{}", self.zone),
        }
    }

    fn validate_reverse_zones(&self) -> Result<(), ConfigError> {
        for (i, net) in self.reverse_zones.iter().enumerate() {
            let step = match net {
                IpNet::V4(_) => 8,
                IpNet::V6(_) => 4,
            };
            if net.prefix_len() % step != 0 || net.trunc() != *net {
                return Err(ConfigError::ReverseZone(*net));
            }
            let overlap = self.reverse_zones[..i]
                .iter()
                .find(|o| o.contains(net) || net.contains(*o));
            if let Some(other) = overlap {
                return Err(ConfigError::ReverseOverlap(*other, *net));
            }
        }
        Ok(())
    }

    fn validate_nameserver(&self) -> Result<(), ConfigError> {
        let ns = self.nameserver_name();
        if !valid_dns_name(&ns) {
            return Err(ConfigError::Nameserver(ns));
        }
        if in_zone(&ns, &format!("svc.{}", self.zone)) {
            return Err(ConfigError::NameserverUnderSvc(ns));
        }
        if !self.nameserver_addresses.is_empty() && !in_zone(&ns, &self.zone) {
            return Err(ConfigError::NameserverOutside(ns, self.zone.clone()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Config {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn defaults() {
        let c = parse("{}");
        assert_eq!(c, Config::default());
        assert_eq!(c.ttl, Duration::from_secs(5));
        assert_eq!(c.nameserver_name(), "ns.dns.clusterset.local");
        c.validate().unwrap();
    }

    #[test]
    fn full_section_parses() {
        let c = parse(
            "listen: 0.0.0.0:53\nzone: mesh.example\nttl: 30s\nreverse_zones: [10.96.0.0/16, 'fd00:77::/64']\nnameserver: ns.dns.mesh.example\nnameserver_addresses: [10.96.0.10]\nudp_workers: 2\n",
        );
        c.validate().unwrap();
        assert_eq!(c.reverse_zones.len(), 2);
        assert_eq!(c.ttl, Duration::from_secs(30));
    }

    #[test]
    fn unknown_key_is_rejected() {
        let r: Result<Config, _> = serde_saphyr::from_str("zones: x\n");
        assert!(r.is_err());
    }

    fn err(c: Config) -> String {
        c.validate().unwrap_err().to_string()
    }

    #[test]
    fn bad_values_are_named() {
        let bad = |f: fn(&mut Config)| {
            let mut c = Config::default();
            f(&mut c);
            err(c)
        };
        assert!(bad(|c| c.zone = "bad zone".into()).contains("dns.zone \"bad zone\""));
        assert!(bad(|c| c.zone = "a..b".into()).contains("dns.zone"));
        assert!(bad(|c| c.ttl = Duration::from_secs(7200)).contains("dns.ttl"));
        let e = bad(|c| c.reverse_zones = vec!["10.96.0.0/12".parse().unwrap()]);
        assert!(
            e.contains("10.96.0.0/12") && e.contains("multiple of 8"),
            "{e}"
        );
        let e = bad(|c| c.reverse_zones = vec!["10.96.1.0/16".parse().unwrap()]);
        assert!(e.contains("10.96.1.0/16"), "{e}");
        let e = bad(|c| c.reverse_zones = vec!["fd00::/62".parse().unwrap()]);
        assert!(e.contains("fd00::/62"), "{e}");
        let e = bad(|c| {
            c.reverse_zones = vec![
                "10.0.0.0/8".parse().unwrap(),
                "10.1.0.0/16".parse().unwrap(),
            ]
        });
        assert!(e.contains("overlap"), "{e}");
        let e = bad(|c| c.nameserver = Some("ns.x.svc.clusterset.local".into()));
        assert!(e.contains("svc.<zone>"), "{e}");
        let e = bad(|c| c.nameserver = Some("ns_1.example".into()));
        assert!(e.contains("dns.nameserver \"ns_1.example\""), "{e}");
        let e = bad(|c| {
            c.nameserver = Some("ns.example.org".into());
            c.nameserver_addresses = vec!["10.0.0.1".parse().unwrap()];
        });
        assert!(e.contains("outside zone"), "{e}");
        let e = bad(|c| c.udp_workers = Some(0));
        assert!(e.contains("dns.udp_workers 0"), "{e}");
        let e = bad(|c| c.udp_workers = Some(65));
        assert!(e.contains("between 1 and 64"), "{e}");
        let e = bad(|c| {
            c.udp_workers = Some(2);
            c.udp_fast_path = false;
        });
        assert!(e.contains("udp_fast_path is false"), "{e}");
    }

    #[test]
    fn udp_workers_default_to_the_cores() {
        let c = parse("udp_workers: 3\n");
        c.validate().unwrap();
        assert_eq!(c.udp_worker_count(), 3);
        assert!(Config::default().udp_worker_count() >= 1);
        assert!(parse("udp_fast_path: false\n").validate().is_ok());
    }

    /// Every `yaml` block in docs/dns.md is a valid `dns:` section.
    #[test]
    fn docs_examples_load() {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Doc {
            dns: Config,
        }
        let doc = include_str!("../../docs/dns.md");
        let blocks: Vec<&str> = doc
            .split("```yaml\n")
            .skip(1)
            .filter_map(|b| b.split("```").next())
            .collect();
        assert!(!blocks.is_empty(), "docs/dns.md has no yaml example");
        for block in blocks {
            let d: Doc = serde_saphyr::from_str(block).unwrap();
            d.dns.validate().unwrap();
            assert_eq!(d.dns.reverse_zones.len(), 2);
        }
    }

    #[test]
    fn in_zone_is_label_aware() {
        assert!(in_zone("a.clusterset.local", "clusterset.local"));
        assert!(in_zone("Clusterset.Local", "clusterset.local"));
        assert!(!in_zone("xclusterset.local", "clusterset.local"));
    }
}
