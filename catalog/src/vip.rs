//! ClusterSetIP allocation from configured CIDRs.
//!
//! A service's first choice is a hash of its key, probing upward on collision,
//! so allocation is mostly stable even without state; with the persisted
//! `VipState` restored it is exactly stable across restarts.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::vip_key::VipKey;

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
#[path = "vip_tests.rs"]
mod tests;
