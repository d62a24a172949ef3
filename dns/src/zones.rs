//! The zones this server is authoritative for, resolved from config once at start.

use std::net::IpAddr;
use std::time::Duration;

use hickory_proto::rr::Name;
use ipnet::IpNet;

use crate::config::Config;
use crate::names::{self, NameError};

/// SOA timers (seconds) for secondaries, which causeway does not support; values follow CoreDNS.
const REFRESH: i32 = 7200;
const RETRY: i32 = 1800;
const EXPIRE: i32 = 86400;

/// The clusterset zone, the reverse zones and what their SOA/NS records say.
#[derive(Debug, Clone)]
pub struct Zones {
    /// The clusterset zone apex, e.g. `clusterset.local.`.
    pub zone: Name,
    /// Configured networks and their reverse zone apexes.
    pub reverse: Vec<(IpNet, Name)>,
    /// TTL of every record and the SOA minimum (negative-caching TTL, RFC 2308).
    pub ttl: u32,
    /// Target of NS records and SOA MNAME.
    pub nameserver: Name,
    pub nameserver_addresses: Vec<IpAddr>,
    /// SOA RNAME: `hostmaster.<zone>`.
    pub hostmaster: Name,
    pub refresh: i32,
    pub retry: i32,
    pub expire: i32,
}

impl Zones {
    /// Resolves a validated config; fails only on names `Config::validate` let through.
    pub fn from_config(cfg: &Config) -> Result<Self, NameError> {
        let zone = names::fqdn("dns.zone", &cfg.zone)?;
        let nameserver = names::fqdn("dns.nameserver", &cfg.nameserver_name())?;
        let hostmaster = names::fqdn("dns.zone", &format!("hostmaster.{}", cfg.zone))?;
        let reverse = cfg
            .reverse_zones
            .iter()
            .map(|net| (*net, names::reverse_zone(*net)))
            .collect();
        Ok(Self {
            zone,
            reverse,
            ttl: ttl_secs(cfg.ttl),
            nameserver,
            nameserver_addresses: cfg.nameserver_addresses.clone(),
            hostmaster,
            refresh: REFRESH,
            retry: RETRY,
            expire: EXPIRE,
        })
    }

    /// Every apex: the clusterset zone first, then the reverse zones.
    pub fn apexes(&self) -> impl Iterator<Item = &Name> {
        std::iter::once(&self.zone).chain(self.reverse.iter().map(|(_, n)| n))
    }

    /// The apex of the zone holding `name`, if this server is authoritative for it.
    pub fn apex_of(&self, name: &Name) -> Option<&Name> {
        self.apexes().find(|apex| apex.zone_of(name))
    }

    /// The reverse zone apex whose network holds `ip`.
    pub fn reverse_zone_for(&self, ip: IpAddr) -> Option<&Name> {
        self.reverse
            .iter()
            .find(|(net, _)| net.contains(&ip))
            .map(|(_, apex)| apex)
    }
}

fn ttl_secs(ttl: Duration) -> u32 {
    u32::try_from(ttl.as_secs()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_config() {
        let cfg = Config {
            zone: "Mesh.Example".into(),
            reverse_zones: vec!["10.96.0.0/16".parse().unwrap()],
            ..Config::default()
        };
        let z = Zones::from_config(&cfg).unwrap();
        assert_eq!(z.zone.to_ascii(), "mesh.example.");
        assert_eq!(z.nameserver.to_ascii(), "ns.dns.mesh.example.");
        assert_eq!(z.hostmaster.to_ascii(), "hostmaster.mesh.example.");
        assert_eq!(z.ttl, 5);
        let apexes: Vec<String> = z.apexes().map(|a| a.to_ascii()).collect();
        assert_eq!(apexes, ["mesh.example.", "96.10.in-addr.arpa."]);
        let ip = "10.96.3.4".parse().unwrap();
        assert_eq!(
            z.reverse_zone_for(ip).unwrap().to_ascii(),
            "96.10.in-addr.arpa."
        );
        assert!(z.reverse_zone_for("10.97.0.1".parse().unwrap()).is_none());
        let n = names::fqdn("t", "a.b.mesh.example").unwrap();
        assert_eq!(z.apex_of(&n), Some(&z.zone));
    }
}
