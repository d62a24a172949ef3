//! What the MCS API carries about a service besides its ports: the
//! service-wide properties every exporting cluster must agree on (KEP-1645
//! "global properties") and the per-endpoint records of headless services.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::names::ClusterId;

/// Session affinity of the exported Service (`spec.sessionAffinity` and
/// `spec.sessionAffinityConfig`), carried to the ServiceImport unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SessionAffinity {
    #[default]
    None,
    /// `ClientIP`, with the Service's `sessionAffinityConfig.clientIP.timeoutSeconds` if set.
    ClientIp {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_seconds: Option<i32>,
    },
}

impl SessionAffinity {
    /// The Kubernetes name: `None` or `ClientIP`.
    pub fn kube_name(self) -> &'static str {
        match self {
            SessionAffinity::None => "None",
            SessionAffinity::ClientIp { .. } => "ClientIP",
        }
    }
}

/// An IP family, written as Kubernetes does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum IpFamily {
    IPv4,
    IPv6,
}

impl IpFamily {
    pub fn of(ip: &IpAddr) -> Self {
        if ip.is_ipv4() {
            IpFamily::IPv4
        } else {
            IpFamily::IPv6
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            IpFamily::IPv4 => "IPv4",
            IpFamily::IPv6 => "IPv6",
        }
    }
}

/// Service-wide properties an export carries; on conflict the oldest export's win.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceProps {
    #[serde(default, skip_serializing_if = "is_default")]
    pub session_affinity: SessionAffinity,
    /// `Cluster` or `Local`, as the Service says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_traffic_policy: Option<String>,
    /// e.g. `PreferClose`, as the Service says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_distribution: Option<String>,
    /// The Service's `ipFamilies`, in its order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_families: Vec<IpFamily>,
    /// The ServiceExport's `spec.exportedLabels`, for the ServiceImport.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The ServiceExport's `spec.exportedAnnotations`, for the ServiceImport.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ServiceProps {
    pub fn is_default(&self) -> bool {
        *self == ServiceProps::default()
    }
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// One ready endpoint of a headless import, as this cluster reaches it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct HeadlessEndpoint {
    pub cluster: ClusterId,
    /// A DNS label: the endpoint's hostname, or its address with dashes.
    pub hostname: String,
    /// Its addresses in its own cluster (the stream header names it by hostname).
    pub addresses: Vec<IpAddr>,
    /// Where clients here reach it: its own addresses for this cluster's
    /// endpoints, addresses the local gateway listens on for remote ones.
    pub local: Vec<IpAddr>,
}

/// The DNS label of an endpoint without a hostname: its address with `.` and
/// `:` turned into `-` (as the MCS conformance suite expects), kept a valid label.
pub fn address_label(ip: &IpAddr) -> String {
    let mut label = ip.to_string().replace(['.', ':'], "-");
    if label.starts_with('-') {
        label.insert(0, '0');
    }
    if label.ends_with('-') {
        label.push('0');
    }
    label
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_labels_are_dns_labels() {
        let l = |s: &str| address_label(&s.parse().unwrap());
        assert_eq!(l("10.244.0.5"), "10-244-0-5");
        assert_eq!(l("fd00::1"), "fd00--1");
        assert_eq!(l("::1"), "0--1");
        assert_eq!(l("fd00::"), "fd00--0");
    }

    #[test]
    fn props_parse_from_yaml_keys() {
        let p: ServiceProps = serde_json::from_str(
            r#"{"session_affinity":{"client_ip":{"timeout_seconds":10}},"ip_families":["IPv6"]}"#,
        )
        .unwrap();
        assert_eq!(
            p.session_affinity,
            SessionAffinity::ClientIp {
                timeout_seconds: Some(10)
            }
        );
        assert_eq!(p.session_affinity.kube_name(), "ClientIP");
        assert_eq!(p.ip_families, [IpFamily::IPv6]);
        assert!(serde_json::from_str::<ServiceProps>(r#"{"affinity":1}"#).is_err());
    }
}
