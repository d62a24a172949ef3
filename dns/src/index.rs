//! The answer index: every name the server knows, with its precomputed RRsets.
//!
//! Built from a catalog snapshot by a plain function, then shared read-only
//! behind an `ArcSwap`; queries never lock and never build records.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use causeway_catalog::{CatalogSnapshot, Import};
use hickory_proto::rr::rdata::{A, AAAA, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{LowerName, Name, RData, RecordSet, RecordType};
use tracing::warn;

use crate::names;
use crate::wire::{self, Wire};
use crate::zones::Zones;

/// The MCS DNS schema version served at `dns-version.<zone>`.
pub const SCHEMA_VERSION: &str = "1.0.0";
/// SRV priority and weight: the spec leaves them open and each name has a single target.
const SRV_PRIORITY: u16 = 0;
const SRV_WEIGHT: u16 = 100;

/// One owner name: its RRsets (possibly none: an empty non-terminal) and, for SRV
/// names, the A/AAAA RRsets of the target for the additional section.
#[derive(Debug, Default)]
pub struct Node {
    pub rrsets: Vec<Arc<RecordSet>>,
    pub additionals: Vec<Arc<RecordSet>>,
}

impl Node {
    pub fn get(&self, rtype: RecordType) -> Option<&Arc<RecordSet>> {
        self.rrsets.iter().find(|s| s.record_type() == rtype)
    }
}

/// An immutable snapshot of every zone's data.
#[derive(Debug, Default)]
pub struct Index {
    nodes: HashMap<LowerName, Node>,
    serial: u32,
    /// Imports left out because a name could not be built from them.
    pub skipped: usize,
    /// The same answers, encoded for the UDP fast path.
    pub wire: Wire,
}

impl Index {
    pub fn node(&self, name: &LowerName) -> Option<&Node> {
        self.nodes.get(name)
    }

    pub fn serial(&self) -> u32 {
        self.serial
    }

    pub fn name_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn nodes(&self) -> impl Iterator<Item = (&LowerName, &Node)> {
        self.nodes.iter()
    }
}

/// Builds the index for `snapshot`, stamping every SOA with `serial`.
pub fn build(zones: &Zones, snapshot: &CatalogSnapshot, serial: u32) -> Index {
    let mut b = Builder {
        zones,
        nodes: HashMap::new(),
    };
    b.zone_records(serial);
    let mut skipped = 0;
    for import in snapshot.imports.values() {
        if let Err(error) = b.import(import) {
            warn!(service = %import.key, %error, "import left out of DNS");
            skipped += 1;
        }
    }
    b.finish(serial, skipped)
}

struct Builder<'z> {
    zones: &'z Zones,
    /// Built in place (no second table at the end): RRsets are `Arc`s from the
    /// start and are only ever shared once the index is published.
    nodes: HashMap<LowerName, Node>,
}

impl Builder<'_> {
    /// SOA and NS at every apex, the schema version TXT, the nameserver's addresses.
    fn zone_records(&mut self, serial: u32) {
        let z = self.zones;
        for apex in z.apexes() {
            let soa = SOA::new(
                z.nameserver.clone(),
                z.hostmaster.clone(),
                serial,
                z.refresh,
                z.retry,
                z.expire,
                z.ttl,
            );
            self.add(apex, RData::SOA(soa));
            self.add(apex, RData::NS(NS(z.nameserver.clone())));
        }
        if let Ok(version) = Name::from_ascii("dns-version").and_then(|n| n.append_domain(&z.zone))
        {
            self.add(&version, RData::TXT(TXT::new(vec![SCHEMA_VERSION.into()])));
        }
        if z.zone.zone_of(&z.nameserver) {
            self.touch(&z.nameserver);
            for ip in &z.nameserver_addresses {
                self.add(&z.nameserver, address(*ip));
            }
        }
    }

    /// A/AAAA at the service name, SRV per named port (and per port number
    /// at the service name itself), PTR per ClusterSetIP; a headless import's
    /// records are built by [`Self::headless`].
    fn import(&mut self, import: &Import) -> Result<(), names::NameError> {
        let svc = names::service(&import.key, &self.zones.zone)?;
        if import.headless {
            return self.headless(import, &svc);
        }
        let srvs = srv_names(import, &svc)?;
        self.touch(&svc);
        for ip in &import.vips {
            self.add(&svc, address(*ip));
        }
        for (name, port) in srvs {
            self.add(&name, srv(port, &svc));
        }
        for port in port_numbers(import) {
            self.add(&svc, srv(port, &svc));
        }
        for ip in &import.vips {
            self.ptr(*ip, &svc);
        }
        Ok(())
    }

    /// MCS DNS 2.4: the ready endpoints' addresses at the service name and at
    /// `<hostname>.<clusterid>.<svc>`, N x M SRV records, nothing at all (so
    /// NXDOMAIN) while no endpoint is ready. The addresses are the local ones:
    /// this cluster's endpoints' own, the local gateway's for remote ones.
    fn headless(&mut self, import: &Import, svc: &Name) -> Result<(), names::NameError> {
        let srvs = srv_names(import, svc)?;
        let mut hosts = Vec::new();
        for e in import.endpoints.iter().filter(|e| !e.local.is_empty()) {
            hosts.push((names::endpoint(&e.hostname, &e.cluster, svc)?, &e.local));
        }
        for (host, ips) in &hosts {
            for ip in ips.iter() {
                self.add(svc, address(*ip));
                self.add(host, address(*ip));
                self.ptr(*ip, host);
            }
            for (name, port) in &srvs {
                self.add(name, srv(*port, host));
            }
            for port in port_numbers(import) {
                self.add(svc, srv(port, host));
            }
        }
        Ok(())
    }

    /// Only one PTR may exist per address (MCS 2.3.3): the first import wins.
    fn ptr(&mut self, ip: IpAddr, svc: &Name) {
        if self.zones.reverse_zone_for(ip).is_none() {
            return;
        }
        let name = names::reverse(ip);
        let taken = self
            .nodes
            .get(&LowerName::new(&name))
            .map(|n| !n.rrsets.is_empty());
        if taken == Some(true) {
            warn!(%ip, service = %svc, "ClusterSetIP shared by several services; PTR kept for the first");
            return;
        }
        self.add(&name, RData::PTR(PTR(svc.clone())));
    }

    /// Makes `name` and its empty non-terminals exist.
    fn touch(&mut self, name: &Name) -> &mut Vec<Arc<RecordSet>> {
        let zones = self.zones;
        if let Some(apex) = zones.apex_of(name) {
            for ent in names::between(name, apex) {
                self.nodes.entry(ent).or_default();
            }
        }
        &mut self.nodes.entry(LowerName::new(name)).or_default().rrsets
    }

    fn add(&mut self, name: &Name, rdata: RData) {
        let ttl = self.zones.ttl;
        let sets = self.touch(name);
        let rtype = rdata.record_type();
        match sets.iter_mut().find(|s| s.record_type() == rtype) {
            Some(set) => {
                // Unshared while building, so this never actually clones.
                Arc::make_mut(set).add_rdata(rdata);
            }
            None => {
                let mut set = RecordSet::with_ttl(name.clone(), rtype, ttl);
                set.add_rdata(rdata);
                sets.push(Arc::new(set));
            }
        }
    }

    fn finish(self, serial: u32, skipped: usize) -> Index {
        let mut nodes = self.nodes;
        for node in nodes.values_mut() {
            // A fixed order makes the RFC 8482 minimal ANY answer deterministic.
            node.rrsets.sort_by_key(|s| any_rank(s.record_type()));
        }
        nodes.shrink_to_fit();
        link_srv_targets(&mut nodes);
        let mut index = Index {
            nodes,
            serial,
            skipped,
            wire: Wire::default(),
        };
        index.wire = wire::build(&index);
        index
    }
}

fn any_rank(t: RecordType) -> u8 {
    match t {
        RecordType::SOA => 0,
        RecordType::A => 1,
        RecordType::AAAA => 2,
        RecordType::SRV => 3,
        RecordType::PTR => 4,
        RecordType::TXT => 5,
        _ => 6,
    }
}

/// MCS 2.3.2: the additional section of an SRV answer may carry the target's A/AAAA.
fn link_srv_targets(nodes: &mut HashMap<LowerName, Node>) {
    let mut links = Vec::new();
    for (name, node) in nodes.iter() {
        let Some(srv) = node.get(RecordType::SRV) else {
            continue;
        };
        for rec in srv.records_without_rrsigs() {
            let RData::SRV(srv) = &rec.data else { continue };
            let target = nodes.get(&LowerName::new(&srv.target));
            let sets = target.iter().flat_map(|t| {
                [t.get(RecordType::A), t.get(RecordType::AAAA)]
                    .into_iter()
                    .flatten()
            });
            links.push((name.clone(), sets.cloned().collect::<Vec<_>>()));
        }
    }
    for (name, sets) in links {
        if let Some(node) = nodes.get_mut(&name) {
            node.additionals.extend(sets);
        }
    }
}

fn srv_names(import: &Import, svc: &Name) -> Result<Vec<(Name, u16)>, names::NameError> {
    import
        .ports
        .iter()
        .filter_map(|p| names::srv(p, svc).map(|n| n.map(|n| (n, p.number))))
        .collect()
}

/// The distinct numbers of the service's named ports, for the SRV records at
/// its own name (what the MCS conformance suite asks for with
/// `nslookup -type=SRV <svc>`; unnamed ports have no SRV record, as in 2.3.2).
fn port_numbers(import: &Import) -> std::collections::BTreeSet<u16> {
    let named = import.ports.iter().filter(|p| p.name.is_some());
    named.map(|p| p.number).collect()
}

fn srv(port: u16, target: &Name) -> RData {
    RData::SRV(SRV::new(SRV_PRIORITY, SRV_WEIGHT, port, target.clone()))
}

fn address(ip: IpAddr) -> RData {
    match ip {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    }
}
