//! ClusterSetIP allocation from configured CIDRs.
//!
//! A service's first choice is a hash of its key, probing upward on collision,
//! so allocation is mostly stable even without state; with the persisted
//! `VipState` restored it is exactly stable across restarts.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::names::{ClusterId, NameError, ServiceKey, check_label};

/// What holds a local address: a ClusterSetIP service, or one endpoint of a
/// headless import in another cluster (where the gateway listens for it).
/// Written `ns/name` and `ns/name/cluster/hostname`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum VipKey {
    Service(ServiceKey),
    Endpoint {
        service: ServiceKey,
        cluster: ClusterId,
        hostname: String,
    },
}

impl VipKey {
    pub fn service(&self) -> &ServiceKey {
        match self {
            VipKey::Service(s) | VipKey::Endpoint { service: s, .. } => s,
        }
    }
}

impl fmt::Display for VipKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VipKey::Service(s) => write!(f, "{s}"),
            VipKey::Endpoint {
                service,
                cluster,
                hostname,
            } => write!(f, "{service}/{cluster}/{hostname}"),
        }
    }
}

impl FromStr for VipKey {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        let parts: Vec<&str> = s.splitn(4, '/').collect();
        match parts[..] {
            [_, _] => Ok(VipKey::Service(s.parse()?)),
            [ns, name, cluster, hostname] => {
                check_label("endpoint hostname", hostname, false)?;
                Ok(VipKey::Endpoint {
                    service: ServiceKey::new(ns, name)?,
                    cluster: ClusterId::new(cluster)?,
                    hostname: hostname.to_owned(),
                })
            }
            _ => Err(NameError::NoSlash {
                value: s.to_owned(),
            }),
        }
    }
}

impl TryFrom<String> for VipKey {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        s.parse()
    }
}

impl From<VipKey> for String {
    fn from(k: VipKey) -> String {
        k.to_string()
    }
}

impl From<ServiceKey> for VipKey {
    fn from(k: ServiceKey) -> Self {
        VipKey::Service(k)
    }
}

/// Addresses the cluster already uses (Kubernetes mode): those of causeway's
/// derived Services, kept by their keys, and every other Service's, never
/// handed out. Read from the API server, they win over the allocator's memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VipClaims {
    pub held: BTreeMap<VipKey, Vec<IpAddr>>,
    pub foreign: BTreeSet<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VipError {
    #[error("ClusterSetIP ranges {0} and {1} overlap; give each range its own addresses")]
    Overlap(IpNet, IpNet),
    #[error(
        "no free {family} ClusterSetIP for {key}: every address in {ranges} is taken; add or widen a range"
    )]
    Exhausted {
        key: Box<VipKey>,
        family: &'static str,
        ranges: String,
    },
}

/// Assigned ClusterSetIPs, as persisted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VipState(pub BTreeMap<VipKey, Vec<IpAddr>>);

#[derive(Debug, Clone)]
pub struct VipAllocator {
    ranges: Vec<IpNet>,
    assigned: BTreeMap<VipKey, Vec<IpAddr>>,
    /// Assigned addresses and those the cluster holds otherwise (see [`VipClaims`]).
    used: BTreeSet<IpAddr>,
    reserved: BTreeSet<IpAddr>,
}

impl VipAllocator {
    pub fn new(ranges: Vec<IpNet>) -> Result<Self, VipError> {
        for (i, a) in ranges.iter().enumerate() {
            if let Some(b) = ranges[..i].iter().find(|b| b.contains(a) || a.contains(*b)) {
                return Err(VipError::Overlap(*b, *a));
            }
        }
        Ok(Self {
            ranges: ranges.into_iter().map(|r| r.trunc()).collect(),
            assigned: BTreeMap::new(),
            used: BTreeSet::new(),
            reserved: BTreeSet::new(),
        })
    }

    /// Agrees with what the cluster holds: a key whose derived Service has an
    /// address in range keeps that address (whatever this allocator had), and
    /// addresses other Services hold, or derived Services of keys not in the
    /// next [`sync`](Self::sync), are never handed out. Call before `sync`.
    pub fn claim(&mut self, claims: &VipClaims) {
        self.reserved = claims.foreign.iter().copied().collect();
        for (key, ips) in &claims.held {
            let usable: Vec<IpAddr> = ips.iter().copied().filter(|ip| self.usable(*ip)).collect();
            for ip in usable {
                self.reserved.insert(ip);
                self.take(key, ip);
            }
        }
        let foreign = &claims.foreign;
        for ips in self.assigned.values_mut() {
            ips.retain(|ip| !foreign.contains(ip));
        }
        self.assigned.retain(|_, ips| !ips.is_empty());
        self.used = self.assigned.values().flatten().copied().collect();
        self.used.extend(self.reserved.iter().copied());
    }

    /// Gives `ip` to `key` in place of its address of that family, taking it
    /// from any other key that had it.
    fn take(&mut self, key: &VipKey, ip: IpAddr) {
        for (k, ips) in self.assigned.iter_mut() {
            if k != key {
                ips.retain(|a| *a != ip);
            }
        }
        let mine = self.assigned.entry(key.clone()).or_default();
        mine.retain(|a| a.is_ipv4() != ip.is_ipv4());
        mine.push(ip);
        mine.sort_by_key(|a| !a.is_ipv4());
    }

    fn usable(&self, ip: IpAddr) -> bool {
        self.range_of(ip).is_some_and(|r| in_hosts(r, ip))
    }

    /// Takes back persisted assignments. Addresses outside the configured ranges,
    /// or already taken, are dropped and will be allocated afresh.
    pub fn restore(&mut self, state: VipState) {
        for (key, ips) in state.0 {
            for ip in ips {
                let family_taken = self.get(&key).iter().any(|o| o.is_ipv4() == ip.is_ipv4());
                if self.usable(ip) && !family_taken && self.used.insert(ip) {
                    self.assigned.entry(key.clone()).or_default().push(ip);
                }
            }
        }
    }

    pub fn state(&self) -> VipState {
        VipState(self.assigned.clone())
    }

    pub fn get(&self, key: &VipKey) -> &[IpAddr] {
        self.assigned.get(key).map_or(&[], Vec::as_slice)
    }

    /// Makes the assigned set exactly `keys`: keeps existing assignments,
    /// releases those of keys no longer present, allocates one address per
    /// configured IP family to new keys. Returns what could not be allocated.
    pub fn sync<'a>(&mut self, keys: impl IntoIterator<Item = &'a VipKey>) -> Vec<VipError> {
        let keys: BTreeSet<&VipKey> = keys.into_iter().collect();
        let gone: Vec<VipKey> = self
            .assigned
            .keys()
            .filter(|k| !keys.contains(k))
            .cloned()
            .collect();
        for key in gone {
            for ip in self.assigned.remove(&key).unwrap_or_default() {
                if !self.reserved.contains(&ip) {
                    self.used.remove(&ip);
                }
            }
        }
        let mut errors = Vec::new();
        // Once a family's ranges are full, nothing frees up during this loop:
        // later keys of that family fail without probing (probing a full range
        // walks all of it, which made a sync with more services than addresses
        // take O(keys x range size); docs/benchmarks.md, "Catalog at scale").
        let mut full = [false, false];
        for key in keys {
            for v4 in [true, false] {
                if let Err(e) = self.ensure(key, v4, full[usize::from(v4)]) {
                    full[usize::from(v4)] = true;
                    errors.push(e);
                }
            }
        }
        errors
    }

    fn ensure(&mut self, key: &VipKey, v4: bool, full: bool) -> Result<(), VipError> {
        let family: Vec<IpNet> = self
            .ranges
            .iter()
            .filter(|r| matches!(r, IpNet::V4(_)) == v4)
            .copied()
            .collect();
        if family.is_empty() || self.get(key).iter().any(|ip| ip.is_ipv4() == v4) {
            return Ok(());
        }
        let hash = fnv1a(key.to_string().as_bytes());
        let found = if full {
            None
        } else {
            family.iter().find_map(|r| self.probe(*r, hash))
        };
        let ip = found.ok_or_else(|| VipError::Exhausted {
            key: Box::new(key.clone()),
            family: if v4 { "IPv4" } else { "IPv6" },
            ranges: family
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        })?;
        self.used.insert(ip);
        self.assigned.entry(key.clone()).or_default().push(ip);
        Ok(())
    }

    /// The first free host address at or after the hash's slot, wrapping once.
    /// Most ranges are sparse, so a short probe usually succeeds; only past it
    /// is the range's occupancy counted, to stop early when it is full.
    fn probe(&self, range: IpNet, hash: u64) -> Option<IpAddr> {
        const QUICK: u128 = 64;
        let (lo, count) = hosts(range);
        let start = u128::from(hash) % count;
        let slot = |i: u128| to_ip(range, lo + (start + i) % count);
        if let Some(ip) = (0..count.min(QUICK))
            .map(slot)
            .find(|ip| !self.used.contains(ip))
        {
            return Some(ip);
        }
        let (first, last) = (to_ip(range, lo), to_ip(range, lo + count - 1));
        if self.used.range(first..=last).count() as u128 >= count {
            return None;
        }
        (QUICK..count).map(slot).find(|ip| !self.used.contains(ip))
    }

    fn range_of(&self, ip: IpAddr) -> Option<IpNet> {
        self.ranges.iter().copied().find(|r| r.contains(&ip))
    }
}

/// First usable host as an integer and how many there are: the network and
/// broadcast addresses of IPv4 ranges wider than /31 are skipped, as is the
/// subnet-router anycast address of IPv6 ranges wider than /127.
fn hosts(range: IpNet) -> (u128, u128) {
    let bits = u32::from(range.max_prefix_len() - range.prefix_len());
    let size = 1u128.checked_shl(bits).unwrap_or(u128::MAX);
    let base = to_int(range.network());
    match (range, bits) {
        (_, 0 | 1) => (base, size),
        (IpNet::V4(_), _) => (base + 1, size - 2),
        (IpNet::V6(_), _) => (base + 1, size - 1),
    }
}

fn in_hosts(range: IpNet, ip: IpAddr) -> bool {
    let (lo, count) = hosts(range);
    let n = to_int(ip);
    n >= lo && n - lo < count
}

fn to_int(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn to_ip(range: IpNet, n: u128) -> IpAddr {
    match range {
        // Host numbers of an IPv4 range always fit in 32 bits.
        IpNet::V4(_) => IpAddr::V4((n as u32).into()),
        IpNet::V6(_) => IpAddr::V6(n.into()),
    }
}

/// FNV-1a: a hash that never changes between builds, unlike std's.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(s: &str) -> VipKey {
        s.parse().unwrap()
    }

    #[test]
    fn keys_round_trip_as_text() {
        for k in ["ns/web", "ns/db/west/db-0"] {
            assert_eq!(key(k).to_string(), k);
        }
        assert!(matches!(key("ns/db/west/db-0"), VipKey::Endpoint { .. }));
        assert!("ns/db/west/Bad_Host".parse::<VipKey>().is_err());
        assert!("ns/db/west".parse::<VipKey>().is_err());
        let old: VipState = serde_json::from_str(r#"{"ns/web":["10.96.0.130"]}"#).unwrap();
        assert_eq!(old.0.keys().next(), Some(&key("ns/web")));
    }

    #[test]
    fn claims_from_the_cluster_win_and_foreign_addresses_are_never_handed_out() {
        let mut a = alloc(&["10.96.0.128/30"]); // .129 and .130
        let (x, y) = (key("ns/x"), key("ns/y"));
        assert!(a.sync([&x]).is_empty());
        let mine = a.get(&x)[0];
        let other: IpAddr = if mine.to_string() == "10.96.0.129" {
            "10.96.0.130".parse().unwrap()
        } else {
            "10.96.0.129".parse().unwrap()
        };
        // The derived Service of x (say, written by the previous leader) has `other`.
        let claims = VipClaims {
            held: [(x.clone(), vec![other])].into(),
            foreign: BTreeSet::new(),
        };
        a.claim(&claims);
        assert!(a.sync([&x]).is_empty());
        assert_eq!(a.get(&x), [other], "the cluster's address is kept");
        // Another Service took `mine`: y cannot have it, and there is nothing else.
        a.claim(&VipClaims {
            held: claims.held.clone(),
            foreign: [mine].into(),
        });
        let errs = a.sync([&x, &y]);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(a.get(&y).is_empty());
        // x is unexported but its Service is still there: its address stays taken.
        a.claim(&VipClaims {
            held: claims.held.clone(),
            foreign: BTreeSet::new(),
        });
        assert!(a.sync([&y]).is_empty());
        assert_eq!(a.get(&y), [mine]);
    }

    fn alloc(ranges: &[&str]) -> VipAllocator {
        VipAllocator::new(ranges.iter().map(|r| r.parse().unwrap()).collect()).unwrap()
    }

    #[test]
    fn dual_stack_gets_one_of_each() {
        let mut a = alloc(&["127.77.1.0/24", "fd00:77::/120"]);
        assert!(a.sync([&key("ns/web")]).is_empty());
        let ips = a.get(&key("ns/web"));
        assert_eq!(ips.len(), 2);
        assert!(ips[0].is_ipv4() && ips[1].is_ipv6());
        assert!("127.77.1.0/24".parse::<IpNet>().unwrap().contains(&ips[0]));
        assert_ne!(ips[0], "127.77.1.0".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn every_key_past_a_full_range_gets_its_own_error() {
        let mut a = alloc(&["127.77.1.0/24"]); // 254 usable hosts
        let keys: Vec<VipKey> = (0..1000).map(|i| key(&format!("ns/s{i}"))).collect();
        let errs = a.sync(&keys);
        assert_eq!(errs.len(), 1000 - 254);
        let unallocated: BTreeSet<String> = keys
            .iter()
            .filter(|k| a.get(k).is_empty())
            .map(ToString::to_string)
            .collect();
        let named: BTreeSet<String> = errs
            .iter()
            .map(|e| match e {
                VipError::Exhausted { key, .. } => key.to_string(),
                other => panic!("{other}"),
            })
            .collect();
        assert_eq!(named, unallocated);
    }

    #[test]
    fn full_range_is_a_clear_error() {
        let mut a = alloc(&["127.77.1.0/30"]); // two usable hosts
        let keys = [key("ns/a"), key("ns/b"), key("ns/c")];
        let errs = a.sync(&keys);
        assert_eq!(errs.len(), 1);
        let msg = errs[0].to_string();
        assert!(
            msg.contains("127.77.1.0/30") && msg.contains("IPv4"),
            "{msg}"
        );
        let all: BTreeSet<_> = keys.iter().flat_map(|k| a.get(k)).collect();
        assert_eq!(all.len(), 2);
        // Releasing one frees its address for the waiting key.
        assert!(a.sync([&keys[0], &keys[2]]).is_empty() || a.get(&keys[2]).is_empty());
    }

    #[test]
    fn overlapping_ranges_are_refused() {
        let r = VipAllocator::new(vec![
            "10.0.0.0/8".parse().unwrap(),
            "10.1.0.0/16".parse().unwrap(),
        ]);
        assert!(matches!(r, Err(VipError::Overlap(..))));
    }

    #[test]
    fn restore_keeps_addresses_and_drops_bad_ones() {
        let mut a = alloc(&["127.77.1.0/24"]);
        let mut state = BTreeMap::new();
        state.insert(key("ns/a"), vec!["127.77.1.9".parse().unwrap()]);
        state.insert(key("ns/b"), vec!["127.77.1.9".parse().unwrap()]); // duplicate
        state.insert(key("ns/c"), vec!["10.9.9.9".parse().unwrap()]); // outside
        a.restore(VipState(state));
        assert!(
            a.sync([&key("ns/a"), &key("ns/b"), &key("ns/c")])
                .is_empty()
        );
        assert_eq!(
            a.get(&key("ns/a")),
            ["127.77.1.9".parse::<IpAddr>().unwrap()]
        );
        assert_ne!(a.get(&key("ns/b")), a.get(&key("ns/a")));
        assert!(a.get(&key("ns/c"))[0].to_string().starts_with("127.77.1."));
    }

    #[test]
    fn hash_choice_is_stable_without_state() {
        let mut a = alloc(&["127.77.1.0/24"]);
        let mut b = alloc(&["127.77.1.0/24"]);
        a.sync([&key("ns/x")]);
        b.sync([&key("ns/y"), &key("ns/x")]);
        // Both start from the hash slot; ns/y only moves ns/x if they collide.
        let (ax, bx) = (a.get(&key("ns/x")), b.get(&key("ns/x")));
        assert!(ax == bx || b.get(&key("ns/y")) == ax);
    }

    proptest! {
        #[test]
        fn never_duplicates_and_is_stable(
            rounds in prop::collection::vec(prop::collection::btree_set(0u8..40, 0..40), 1..8),
        ) {
            let mut a = alloc(&["127.77.1.0/27", "fd00::/122"]);
            let mut prev: BTreeMap<VipKey, Vec<IpAddr>> = BTreeMap::new();
            for round in rounds {
                let keys: Vec<VipKey> = round.iter().map(|i| key(&format!("ns/s{i}"))).collect();
                a.sync(&keys);
                let mut seen = BTreeSet::new();
                for k in &keys {
                    for ip in a.get(k) {
                        prop_assert!(seen.insert(*ip), "duplicate {}", ip);
                    }
                    // Stable: an address held before is still held.
                    for ip in prev.get(k).into_iter().flatten() {
                        prop_assert!(a.get(k).contains(ip));
                    }
                }
                // Restoring the state into a fresh allocator gives the same answer.
                let mut b = alloc(&["127.77.1.0/27", "fd00::/122"]);
                b.restore(a.state());
                b.sync(&keys);
                prop_assert_eq!(b.state(), a.state());
                prev = a.state().0;
            }
        }
    }
}
