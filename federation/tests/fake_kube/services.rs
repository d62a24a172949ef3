//! Service admission as the real API server does it, for what causeway
//! touches: defaults (type, sessionAffinity and its config, internal traffic
//! policy, IP families), port rules (names on multi-port Services, unique
//! names and number/protocol pairs, known protocols) and ClusterIPs (inside
//! the service CIDR, not taken, allocated when unset, immutable).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;
use serde_json::{Value, json};

/// The fake cluster's service CIDR.
pub const SERVICE_CIDR: &str = "10.96.0.0/16";

/// Checks and completes a Service; `old` is the stored one on update,
/// `taken` the ClusterIPs other Services hold.
pub fn admit(
    mut svc: Value,
    old: Option<&Value>,
    taken: &BTreeSet<IpAddr>,
) -> Result<Value, String> {
    let spec = svc["spec"].as_object_mut().ok_or("spec: Required value")?;
    let ty = spec.entry("type").or_insert(json!("ClusterIP")).clone();
    if ty == "ExternalName" {
        if spec
            .get("clusterIP")
            .is_some_and(|ip| !ip.is_null() && ip != "")
        {
            return Err(
                "spec.clusterIP: Invalid value: must be empty for ExternalName services".into(),
            );
        }
        return Ok(svc);
    }
    ports(&mut svc["spec"])?;
    defaults(&mut svc["spec"]);
    cluster_ip(&mut svc["spec"], old, taken)?;
    Ok(svc)
}

fn ports(spec: &mut Value) -> Result<(), String> {
    let headless = spec["clusterIP"] == "None";
    let ports = spec["ports"].as_array_mut();
    let Some(ports) = ports.filter(|p| !p.is_empty()) else {
        return if headless {
            Ok(())
        } else {
            Err("spec.ports: Required value".into())
        };
    };
    let several = ports.len() > 1;
    let (mut names, mut slots) = (BTreeSet::new(), BTreeSet::new());
    for (i, p) in ports.iter_mut().enumerate() {
        let proto = p["protocol"].as_str().unwrap_or("TCP").to_owned();
        if !["TCP", "UDP", "SCTP"].contains(&proto.as_str()) {
            return Err(format!(
                "spec.ports[{i}].protocol: Unsupported value: {proto:?}"
            ));
        }
        p["protocol"] = json!(proto);
        let name = p["name"].as_str().unwrap_or("").to_owned();
        if several && name.is_empty() {
            return Err(format!("spec.ports[{i}].name: Required value"));
        }
        if !names.insert(name.clone()) {
            return Err(format!("spec.ports[{i}].name: Duplicate value: {name:?}"));
        }
        let number = p["port"]
            .as_i64()
            .ok_or(format!("spec.ports[{i}].port: Required value"))?;
        if !slots.insert((number, proto.clone())) {
            return Err(format!(
                "spec.ports[{i}]: Duplicate value: {number}/{proto}"
            ));
        }
        if p["targetPort"].is_null() {
            p["targetPort"] = json!(number);
        }
    }
    Ok(())
}

fn defaults(spec: &mut Value) {
    if spec["sessionAffinity"].is_null() {
        spec["sessionAffinity"] = json!("None");
    }
    if spec["sessionAffinity"] == "ClientIP"
        && spec["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"].is_null()
    {
        spec["sessionAffinityConfig"] = json!({"clientIP": {"timeoutSeconds": 10800}});
    }
    if spec["internalTrafficPolicy"].is_null() {
        spec["internalTrafficPolicy"] = json!("Cluster");
    }
    if spec["ipFamilies"].is_null() {
        spec["ipFamilies"] = json!(["IPv4"]);
        spec["ipFamilyPolicy"] = json!("SingleStack");
    }
}

fn cluster_ip(
    spec: &mut Value,
    old: Option<&Value>,
    taken: &BTreeSet<IpAddr>,
) -> Result<(), String> {
    let was = old
        .and_then(|o| o["spec"]["clusterIP"].as_str())
        .map(str::to_owned);
    let asked = spec["clusterIP"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    if let (Some(w), Some(a)) = (&was, &asked)
        && w != a
    {
        return Err(format!(
            "spec.clusterIP: Invalid value: {a:?}: field is immutable"
        ));
    }
    let ip = match asked.or(was) {
        Some(s) if s == "None" => return Ok(()),
        Some(s) => {
            let ip: IpAddr = s.parse().map_err(|_| {
                format!("spec.clusterIP: Invalid value: {s:?}: must be a valid IP address")
            })?;
            check(ip, taken, old.is_some())?;
            ip
        }
        None => allocate(taken).ok_or("spec.clusterIP: the service CIDR is full")?,
    };
    spec["clusterIP"] = json!(ip.to_string());
    spec["clusterIPs"] = json!([ip.to_string()]);
    Ok(())
}

fn cidr() -> Ipv4Net {
    SERVICE_CIDR.parse().unwrap()
}

fn check(ip: IpAddr, taken: &BTreeSet<IpAddr>, updating: bool) -> Result<(), String> {
    let inside = matches!(ip, IpAddr::V4(v4) if cidr().contains(&v4) && v4 != cidr().network() && v4 != cidr().broadcast());
    if !inside {
        return Err(format!(
            "spec.clusterIP: Invalid value: {ip:?}: provided IP is not in the valid range. The range of valid IPs is {SERVICE_CIDR}"
        ));
    }
    if !updating && taken.contains(&ip) {
        return Err(format!(
            "spec.clusterIP: Invalid value: {ip:?}: provided IP is already allocated"
        ));
    }
    Ok(())
}

/// Dynamic allocation: above the static band (the first 256 addresses), as the real allocator prefers.
fn allocate(taken: &BTreeSet<IpAddr>) -> Option<IpAddr> {
    let base = u32::from(cidr().network());
    (256..65534u32)
        .map(|i| IpAddr::V4(Ipv4Addr::from(base + i)))
        .find(|ip| !taken.contains(ip))
}
